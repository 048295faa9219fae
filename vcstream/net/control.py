"""Carries out parsed control commands on the engine; shared by the WebSocket and ZeroMQ edges.

Engine calls run in a worker thread (``asyncio.to_thread``) so that a slow one (a voice
file written to disk, a long text through the front end) never holds up the event loop,
which every client's audio passes through.

Every command comes with the sender's identity (``ClientId``), decided by the edge from
the connection; what the operator alone may do is ``Access``'s to say.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any

from vcstream.config import ControlConfig
from vcstream.errors import ForbiddenError, VcstreamError
from vcstream.net import protocol as p
from vcstream.net.access import CANCEL_ALL, VOICE, Access
from vcstream.scheduler import LOCAL, ClientId

log = logging.getLogger(__name__)


class Controller:
    def __init__(
        self,
        engine,
        network_status: Callable[[], dict] | None = None,
        access: Access | None = None,
    ) -> None:
        self.engine = engine
        self._network_status = network_status
        self.access = access or Access(ControlConfig())

    async def execute(self, cmd: p.Command, client: ClientId = LOCAL) -> dict[str, Any]:
        """The reply message for ``cmd`` from ``client``, or an error message; never raises
        for bad input."""
        name = p.command_name(cmd)
        try:
            return await self._run(cmd, name, client)
        except VcstreamError as err:
            rid = err.request_id if isinstance(err, p.ProtocolError) else None
            return p.error_message(err.code, str(err), rid or cmd.ref, to=name)
        except Exception as err:  # a bug: logged with its traceback, reported without detail
            log.exception("control command %s failed", name)
            return p.error_message(
                p.INTERNAL, f"{name} failed: {type(err).__name__}", cmd.ref, to=name
            )

    def _require(self, client: ClientId, action: str, name: str) -> None:
        if not self.access.allows(client, action):
            raise ForbiddenError(f"{name} is reserved for the operator (control.operator_only)")

    async def _run(self, cmd: p.Command, name: str, client: ClientId) -> dict[str, Any]:
        e = self.engine
        voice_cmds = (p.Freeze, p.Unfreeze, p.Reset, p.Save, p.Load, p.Adapt, p.ConsentApprove)
        if isinstance(cmd, voice_cmds):
            self._require(client, VOICE, name)
        match cmd:
            case p.Speak():
                rid = cmd.ref or uuid.uuid4().hex[:12]
                await asyncio.to_thread(
                    e.speak,
                    request_id=rid,
                    text=cmd.text,
                    phonemes=cmd.phonemes,
                    mode=cmd.mode,
                    voice=cmd.voice,
                    client=client,
                )
                return p.reply_message(name, rid, mode=cmd.mode)
            case p.Cancel():
                cancelled = await asyncio.to_thread(
                    e.cancel,
                    cmd.ref,
                    client=client,
                    everyone=cmd.all,
                    others_allowed=self.access.allows(client, CANCEL_ALL),
                )
                return p.reply_message(name, cmd.ref, cancelled=bool(cancelled))
            case p.Freeze():
                return p.reply_message(name, cmd.ref, voice=await asyncio.to_thread(e.voice_freeze))
            case p.Unfreeze():
                return p.reply_message(
                    name, cmd.ref, voice=await asyncio.to_thread(e.voice_unfreeze)
                )
            case p.Reset():
                return p.reply_message(name, cmd.ref, voice=await asyncio.to_thread(e.voice_reset))
            case p.Adapt():
                return p.reply_message(name, cmd.ref, adapt=await asyncio.to_thread(e.voice_adapt))
            case p.Save():
                return p.reply_message(
                    name, cmd.ref, voice=await asyncio.to_thread(e.voice_save, cmd.name)
                )
            case p.Load():
                return p.reply_message(
                    name, cmd.ref, voice=await asyncio.to_thread(e.voice_load, cmd.name)
                )
            case p.ListVoices():
                return p.reply_message(name, cmd.ref, voices=await asyncio.to_thread(e.voice_list))
            case p.ConsentApprove():
                return p.reply_message(
                    name, cmd.ref, voice=await asyncio.to_thread(e.consent_approve)
                )
            case p.Status():
                status = await asyncio.to_thread(e.status)
                if self._network_status is not None:
                    status = {**status, "network": self._network_status()}
                return p.reply_message(name, cmd.ref, status=status)
        # auth and subscribe are connection-level and handled by the edge itself
        raise p.ProtocolError(p.UNKNOWN_TYPE, f"{name} is not valid here", cmd.ref)
