"""Who a network client is, who the operator is, and what only the operator may do.

Identity always comes from the connection, never from a message field: a WebSocket
connection is one client, unless it authenticated with an operator token (then every
connection holding that token is the same operator client); a ZeroMQ peer is its CURVE
public key when CURVE is on, else its ROUTER routing id. Labels shown in status are
``ws#N``, ``zmq#N``, ``operator``: never a token, key or address.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Hashable

from vcstream.config import ControlConfig
from vcstream.errors import InputError
from vcstream.net.security import token_matches
from vcstream.scheduler import ClientId

# What [control] operator_only may reserve for the operator.
CANCEL_ALL = "cancel_all"  # cancel every client's requests, or another client's by id
VOICE = "voice"  # freeze, unfreeze, reset, save, load, adapt, consent_approve
ACTIONS = (CANCEL_ALL, VOICE)
MAX_LABELLED_PEERS = 4096  # ZeroMQ peers remembered for their label (least recent forgotten)


class Access:
    def __init__(self, cfg: ControlConfig) -> None:
        unknown = [a for a in cfg.operator_only if a not in ACTIONS]
        if unknown:
            raise InputError(
                f"control.operator_only: unknown {unknown[0]!r} (known: {', '.join(ACTIONS)})"
            )
        for name in ("operator_tokens", "operator_zmq_identities"):
            values = getattr(cfg, name)
            if not all(isinstance(v, str) and v for v in values):
                raise InputError(f"control.{name} must be a list of non-empty strings")
        self.operator_only = frozenset(cfg.operator_only)
        self._tokens = list(cfg.operator_tokens)
        self._zmq_operators = frozenset(cfg.operator_zmq_identities)
        self._ws_numbers = itertools.count(1)
        self._zmq_numbers = itertools.count(1)
        self._zmq_labels: OrderedDict[Hashable, str] = OrderedDict()

    def allows(self, client: ClientId, action: str) -> bool:
        return client.operator or action not in self.operator_only

    def ws_client(self) -> ClientId:
        """A fresh identity for a new WebSocket connection."""
        n = next(self._ws_numbers)
        return ClientId(("ws", n), f"ws#{n}")

    def operator_for_token(self, token: str | None) -> ClientId | None:
        """The operator identity of ``token`` if it is an operator token, else None."""
        for i, expected in enumerate(self._tokens):
            if token_matches(token, expected):
                return ClientId(
                    ("operator", i), "operator" if i == 0 else f"operator#{i + 1}", True
                )
        return None

    def zmq_client(self, identity: bytes | str) -> ClientId:
        """The identity of a ZeroMQ peer: its CURVE key (str) or its routing id (bytes)."""
        label = self._zmq_labels.get(identity)
        if label is None:
            label = self._zmq_labels[identity] = f"zmq#{next(self._zmq_numbers)}"
            while len(self._zmq_labels) > MAX_LABELLED_PEERS:
                self._zmq_labels.popitem(last=False)
        else:
            self._zmq_labels.move_to_end(identity)
        if isinstance(identity, bytes):
            try:
                name = identity.decode("utf-8")
            except UnicodeDecodeError:
                name = None
        else:
            name = identity
        return ClientId(("zmq", identity), label, name in self._zmq_operators)

    @property
    def has_operator(self) -> bool:
        return bool(self._tokens or self._zmq_operators)
