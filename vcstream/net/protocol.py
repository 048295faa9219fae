"""The wire protocol, with no I/O: bytes in, typed values out, and back.

* Audio: binary messages of a fixed 64-byte little-endian header, then PCM16 samples.
* Control: JSON objects from clients, parsed into typed commands, each failure a
  ``ProtocolError`` with a specific ``code``.
* Events and replies: JSON objects to clients.
* ZeroMQ: a 24-byte header for the ``event`` and ``status`` topics (the ``audio`` topic
  carries the audio header).

``docs/protocol.md`` documents all of it byte by byte; keep the two in step.
"""

from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from vcstream import safetext
from vcstream.audio.io import to_pcm16
from vcstream.errors import InputError
from vcstream.hub import AudioFrame, Event
from vcstream.voices import valid_name

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 65536  # the hard ceiling; the configured limit may only be lower

# ---- error codes sent in error events (besides the VcstreamError codes) ---------------
BAD_JSON = "bad_json"  # not UTF-8 or not JSON, or a number beyond the limits below
BAD_TEXT = "bad_text"  # a string holds a lone surrogate or a non-character
BAD_MESSAGE = "bad_message"  # JSON but not an object, or a binary message on the control channel
UNKNOWN_TYPE = "unknown_type"
BAD_FIELD = "bad_field"  # a field is missing, unknown or of the wrong type or value
TOO_LARGE = "too_large"  # message over the size limit
TOO_LONG = "too_long"  # text or phonemes over the length cap
UNAUTHORIZED = "unauthorized"
FORBIDDEN_ORIGIN = "forbidden_origin"
RATE_LIMITED = "rate_limited"
OVERFLOW = "overflow"  # a listener overflowed for too long and is disconnected
TOO_MANY_CLIENTS = "too_many_clients"  # the connection cap is reached (HTTP 503)
INTERNAL = "internal"


class ProtocolError(InputError):
    """A message the daemon refuses; ``code`` names the reason for clients to act on."""

    def __init__(self, code: str, message: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.request_id = request_id


# ---- audio frames ---------------------------------------------------------------------
AUDIO_MAGIC = b"VCSA"
# magic, version, header bytes, flags, seq, timestamp_ns, sample rate, channels,
# sample format, request id (ASCII, NUL-padded)
AUDIO_HEADER = struct.Struct("<4sBBHQQIHH32s")
AUDIO_HEADER_BYTES = AUDIO_HEADER.size  # 64
FLAG_SILENCE = 0x0001
FLAG_END_OF_UTTERANCE = 0x0002
SAMPLE_FORMAT_PCM16 = 1
REQUEST_ID_BYTES = 32
# Matched with fullmatch: "$" alone would also match before a trailing newline.
REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,32}")
# JSON numbers: an integer literal of more digits (int64 and uint64 fit) or a float literal
# longer than this is refused, as are floats that overflow to infinity and the non-JSON
# constants NaN/Infinity, which Python's json would otherwise accept.
MAX_INT_DIGITS = 20
MAX_FLOAT_CHARS = 64


@dataclass(frozen=True)
class AudioHeader:
    seq: int
    timestamp_ns: int
    sample_rate_hz: int
    request_id: str  # "" for silence between requests
    silence: bool = False
    end_of_utterance: bool = False
    channels: int = 1
    sample_format: int = SAMPLE_FORMAT_PCM16

    @property
    def flags(self) -> int:
        return (FLAG_SILENCE if self.silence else 0) | (
            FLAG_END_OF_UTTERANCE if self.end_of_utterance else 0
        )


def pack_audio_header(h: AudioHeader) -> bytes:
    rid = h.request_id.encode("ascii")
    if len(rid) > REQUEST_ID_BYTES:
        raise ValueError(f"request id longer than {REQUEST_ID_BYTES} bytes: {h.request_id!r}")
    return AUDIO_HEADER.pack(
        AUDIO_MAGIC,
        PROTOCOL_VERSION,
        AUDIO_HEADER_BYTES,
        h.flags,
        h.seq,
        h.timestamp_ns,
        h.sample_rate_hz,
        h.channels,
        h.sample_format,
        rid,
    )


def unpack_audio_header(data: bytes | memoryview) -> AudioHeader:
    if len(data) < AUDIO_HEADER_BYTES:
        raise ProtocolError(
            BAD_MESSAGE, f"audio message shorter than its {AUDIO_HEADER_BYTES}-byte header"
        )
    magic, version, hlen, flags, seq, ts, sr, ch, fmt, rid = AUDIO_HEADER.unpack_from(data)
    if magic != AUDIO_MAGIC:
        raise ProtocolError(BAD_MESSAGE, f"not a vcstream audio message (magic {magic!r})")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(BAD_MESSAGE, f"unsupported audio protocol version {version}")
    if hlen < AUDIO_HEADER_BYTES or hlen > len(data):
        raise ProtocolError(BAD_MESSAGE, f"bad audio header length {hlen}")
    return AudioHeader(
        seq=seq,
        timestamp_ns=ts,
        sample_rate_hz=sr,
        request_id=rid.rstrip(b"\0").decode("ascii", "replace"),
        silence=bool(flags & FLAG_SILENCE),
        end_of_utterance=bool(flags & FLAG_END_OF_UTTERANCE),
        channels=ch,
        sample_format=fmt,
    )


def _wire_request_id(request_id: str) -> str:
    # Ids that arrive over the network already fit; one made in-process might not, and a
    # published frame must never fail to encode.
    rid = request_id.encode("ascii", "replace")[:REQUEST_ID_BYTES]
    return rid.decode("ascii")


def audio_header_of(frame: AudioFrame) -> bytes:
    return pack_audio_header(
        AudioHeader(
            seq=frame.seq,
            timestamp_ns=frame.timestamp_ns,
            sample_rate_hz=frame.sample_rate_hz,
            request_id=_wire_request_id(frame.request_id),
            silence=frame.silence,
            end_of_utterance=frame.end_of_utterance,
        )
    )


def encode_audio_parts(frame: AudioFrame) -> tuple[bytes, bytes]:
    """(header, PCM16 payload): the ZeroMQ frames; WebSocket sends them concatenated."""
    return audio_header_of(frame), to_pcm16(frame.pcm)


def encode_audio(frame: AudioFrame) -> bytes:
    header, pcm = encode_audio_parts(frame)
    return header + pcm


def decode_audio(data: bytes | memoryview) -> tuple[AudioHeader, np.ndarray]:
    """A binary audio message to its header and int16 samples."""
    h = unpack_audio_header(data)
    if h.sample_format != SAMPLE_FORMAT_PCM16:
        raise ProtocolError(BAD_MESSAGE, f"unsupported sample format {h.sample_format}")
    hlen = data[5]
    body = memoryview(data)[hlen:]
    if len(body) % 2:
        raise ProtocolError(BAD_MESSAGE, "PCM16 payload has an odd number of bytes")
    return h, np.frombuffer(body, dtype="<i2").copy()


# ---- ZeroMQ event/status header --------------------------------------------------------
MESSAGE_MAGIC = b"VCSM"
# magic, version, header bytes, reserved, per-topic seq, timestamp_ns
MESSAGE_HEADER = struct.Struct("<4sBBHQQ")
MESSAGE_HEADER_BYTES = MESSAGE_HEADER.size  # 24
TOPIC_AUDIO = b"audio"
TOPIC_EVENT = b"event"
TOPIC_STATUS = b"status"


def pack_message_header(seq: int, timestamp_ns: int) -> bytes:
    return MESSAGE_HEADER.pack(
        MESSAGE_MAGIC, PROTOCOL_VERSION, MESSAGE_HEADER_BYTES, 0, seq, timestamp_ns
    )


def unpack_message_header(data: bytes | memoryview) -> tuple[int, int]:
    """(seq, timestamp_ns) of a ZeroMQ ``event``/``status`` header."""
    if len(data) < MESSAGE_HEADER_BYTES:
        raise ProtocolError(BAD_MESSAGE, "message header too short")
    magic, version, _hlen, _reserved, seq, ts = MESSAGE_HEADER.unpack_from(data)
    if magic != MESSAGE_MAGIC or version != PROTOCOL_VERSION:
        raise ProtocolError(BAD_MESSAGE, f"not a vcstream v{PROTOCOL_VERSION} message header")
    return seq, ts


# ---- JSON out ------------------------------------------------------------------------
def _jsonable(obj: Any, depth: int = 0) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    if depth > 64:  # a cycle or a bug, not data
        return None
    if isinstance(obj, dict):
        return {_safe_str(k): _jsonable(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v, depth + 1) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist(), depth + 1)
    if isinstance(obj, np.generic):
        return _jsonable(obj.item(), depth + 1)
    return _safe_str(obj)


def _safe_str(obj: Any) -> str:
    if isinstance(obj, str):
        return obj
    try:
        return str(obj)
    except Exception:  # a __str__ that fails: the value is lost, the message is not
        return f"<{type(obj).__name__}>"


_SEPARATORS = (",", ":")
# Outgoing messages that needed repair (a surrogate replaced, an unencodable value made a
# string); reported in status.network as encode_repairs.
encode_repairs = 0
_UNENCODABLE_MESSAGE = '{"type":"error","code":"internal","message":"message not encodable"}'


def dumps(obj: dict[str, Any]) -> str:
    """Compact, strict JSON that always encodes as UTF-8, whatever ``obj`` holds.

    Non-finite floats become null, numpy values plain numbers, other objects their ``str``;
    a lone surrogate (which ``json`` writes but no UTF-8 encoder takes) becomes U+FFFD. So
    one bad value costs one field of one message, never the message or the connection.
    """
    global encode_repairs
    try:
        text = json.dumps(obj, separators=_SEPARATORS, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        text = None
    if text is not None and not safetext.has_surrogates(text):
        return text
    encode_repairs += 1
    try:
        return json.dumps(
            safetext.repair(_jsonable(obj)), separators=_SEPARATORS, ensure_ascii=False
        )
    except (TypeError, ValueError, RecursionError):
        return _UNENCODABLE_MESSAGE


def encode_event(event: Event) -> str:
    return dumps(event.to_dict())


def error_message(
    code: str, message: str, request_id: str | None = None, to: str | None = None, **extra: Any
) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if request_id is not None:
        out["id"] = request_id
    if to is not None:
        out["to"] = to
    out.update(extra)
    return out


def reply_message(to: str, ref: str | None, **data: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "reply", "to": to}
    if ref is not None:
        out["id"] = ref
    out.update(data)
    return out


# ---- commands ------------------------------------------------------------------------
MODES = ("queue", "interrupt")


@dataclass(frozen=True)
class Command:
    """Base of every parsed control message. ``ref`` is the message's ``id``, echoed back."""

    ref: str | None


@dataclass(frozen=True)
class Speak(Command):
    text: str | None = None
    phonemes: str | None = None
    mode: str = "queue"
    voice: str | None = None


@dataclass(frozen=True)
class Cancel(Command):
    """``ref`` is the request to cancel; None cancels the sender's own requests, or with
    ``all`` every client's."""

    all: bool = False


@dataclass(frozen=True)
class Freeze(Command):
    pass


@dataclass(frozen=True)
class Unfreeze(Command):
    pass


@dataclass(frozen=True)
class Reset(Command):
    pass


@dataclass(frozen=True)
class Adapt(Command):
    """Adapt the synthesiser to the live voice heard so far (in the background)."""


@dataclass(frozen=True)
class Save(Command):
    name: str = ""


@dataclass(frozen=True)
class Load(Command):
    name: str = ""


@dataclass(frozen=True)
class ListVoices(Command):
    pass


@dataclass(frozen=True)
class Status(Command):
    pass


@dataclass(frozen=True)
class ConsentApprove(Command):
    """The operator approves the live voice (consent mode 'operator')."""


@dataclass(frozen=True)
class Auth(Command):
    token: str = ""


@dataclass(frozen=True)
class Subscribe(Command):
    """Which published streams a WebSocket client receives (all on by default)."""

    audio: bool | None = None
    events: bool | None = None
    status: bool | None = None


# type name -> (class, {field: (python type, required)})
_SCHEMAS: dict[str, tuple[type[Command], dict[str, tuple[type, bool]]]] = {
    "speak": (
        Speak,
        {
            "text": (str, False),
            "phonemes": (str, False),
            "mode": (str, False),
            "voice": (str, False),
        },
    ),
    "cancel": (Cancel, {"all": (bool, False)}),
    "freeze": (Freeze, {}),
    "unfreeze": (Unfreeze, {}),
    "reset": (Reset, {}),
    "adapt": (Adapt, {}),
    "save": (Save, {"name": (str, True)}),
    "load": (Load, {"name": (str, True)}),
    "list": (ListVoices, {}),
    "status": (Status, {}),
    "consent_approve": (ConsentApprove, {}),
    "auth": (Auth, {"token": (str, True)}),
    "subscribe": (
        Subscribe,
        {"audio": (bool, False), "events": (bool, False), "status": (bool, False)},
    ),
}
COMMAND_TYPES = tuple(_SCHEMAS)
COMMAND_NAMES = {cls: name for name, (cls, _) in _SCHEMAS.items()}


def command_name(cmd: Command) -> str:
    return COMMAND_NAMES[type(cmd)]


def _decode_json(data: bytes | str, max_bytes: int) -> Any:
    if isinstance(data, str):
        # A str can only exceed the byte limit if it could when encoded: skip the encode
        # for the common short message.
        size = len(data) if len(data) * 4 <= max_bytes else len(data.encode("utf-8", "replace"))
    else:
        size = len(data)
    if size > max_bytes:
        raise ProtocolError(
            TOO_LARGE, f"message of {size} bytes exceeds the {max_bytes}-byte limit"
        )
    try:
        return json.loads(
            data, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant
        )
    except UnicodeDecodeError as err:
        raise ProtocolError(BAD_JSON, f"message is not UTF-8 ({err.reason})") from None
    except json.JSONDecodeError as err:
        raise ProtocolError(BAD_JSON, f"malformed JSON: {err.msg} at position {err.pos}") from None
    except RecursionError:
        raise ProtocolError(BAD_JSON, "malformed JSON: nested too deeply") from None
    except (ValueError, TypeError, MemoryError) as err:  # whatever else json may raise
        raise ProtocolError(BAD_JSON, f"malformed JSON: {type(err).__name__}") from None


def _parse_int(literal: str) -> int:
    digits = len(literal) - literal.startswith("-")
    if digits > MAX_INT_DIGITS:
        raise ProtocolError(
            BAD_JSON, f"integer of {digits} digits (at most {MAX_INT_DIGITS} are accepted)"
        )
    return int(literal)


def _parse_float(literal: str) -> float:
    if len(literal) > MAX_FLOAT_CHARS:
        raise ProtocolError(
            BAD_JSON, f"number of {len(literal)} characters (at most {MAX_FLOAT_CHARS})"
        )
    value = float(literal)
    if not math.isfinite(value):
        raise ProtocolError(BAD_JSON, f"number {literal[:20]} is out of range")
    return value


def _parse_constant(name: str) -> Any:
    raise ProtocolError(BAD_JSON, f"{name} is not JSON (numbers must be finite)")


def _check_encodable(msg: dict[str, Any], ref: str | None) -> None:
    """Every string in the message, field names too, nested or not: no lone surrogate or
    non-character (``bad_text``). Names in the error are shown escaped (``repr``)."""
    stack: list[tuple[str, Any]] = []
    for key, value in msg.items():
        _check_string(key, "a field name", ref)
        stack.append((f"field {key[:40]!r}", value))
    while stack:
        where, value = stack.pop()
        if isinstance(value, str):
            _check_string(value, where, ref)
        elif isinstance(value, dict):
            for k, v in value.items():
                _check_string(k, f"a field name inside {where}", ref)
                stack.append((where, v))
        elif isinstance(value, list):
            stack.extend((where, v) for v in value)


def _check_string(value: str, where: str, ref: str | None) -> None:
    i = safetext.first_unencodable(value)
    if i is not None:
        raise ProtocolError(
            BAD_TEXT,
            f"{where} holds {safetext.describe(value[i])} at character {i}: "
            "text must be valid Unicode",
            ref,
        )


def parse_command(
    data: bytes | str,
    *,
    max_bytes: int = MAX_MESSAGE_BYTES,
    max_text_chars: int = 2000,
) -> Command:
    """A control message to its typed command; ``ProtocolError`` with a specific code otherwise."""
    msg = _decode_json(data, max_bytes)
    if not isinstance(msg, dict):
        raise ProtocolError(
            BAD_MESSAGE, f"a control message is a JSON object, not {type(msg).__name__}"
        )
    ref = msg.get("id")
    if ref is not None and not (isinstance(ref, str) and REQUEST_ID_RE.fullmatch(ref)):
        _check_encodable(msg, None)
        raise ProtocolError(BAD_FIELD, "id must be 1-32 characters of A-Z a-z 0-9 . _ : -")
    _check_encodable(msg, ref)
    kind = msg.get("type")
    if not isinstance(kind, str):
        raise ProtocolError(BAD_FIELD, "missing field 'type' (a string)", ref)
    schema = _SCHEMAS.get(kind)
    if schema is None:
        shown = kind if len(kind) <= 40 else kind[:40] + "..."
        raise ProtocolError(
            UNKNOWN_TYPE, f"unknown message type {shown!r} (known: {', '.join(COMMAND_TYPES)})", ref
        )
    cls, fields = schema
    values: dict[str, Any] = {}
    for key, value in msg.items():
        if key in ("type", "id"):
            continue
        if key not in fields:
            raise ProtocolError(BAD_FIELD, f"unknown field {key[:40]!r} in {kind}", ref)
        expected, _ = fields[key]
        if value is None and not fields[key][1]:
            continue
        if not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
            raise ProtocolError(BAD_FIELD, f"{kind}.{key} must be {expected.__name__}", ref)
        values[key] = value
    for key, (_, required) in fields.items():
        if required and key not in values:
            raise ProtocolError(BAD_FIELD, f"{kind} needs field {key!r}", ref)
    if cls is Speak:
        _check_speak(values, ref, max_text_chars)
    elif cls is Cancel and values.get("all") and ref is not None:
        raise ProtocolError(BAD_FIELD, "cancel takes an 'id' or 'all', not both", ref)
    elif cls in (Save, Load):
        _check_voice_name(values["name"], f"{kind}.name", ref)
    return cls(ref=ref, **values)


def _check_speak(values: dict[str, Any], ref: str | None, max_text_chars: int) -> None:
    has_text, has_phonemes = "text" in values, "phonemes" in values
    if has_text == has_phonemes:
        raise ProtocolError(BAD_FIELD, "speak needs exactly one of 'text' or 'phonemes'", ref)
    body = values["text"] if has_text else values["phonemes"]
    which = "text" if has_text else "phonemes"
    if not body.strip():
        raise ProtocolError(BAD_FIELD, f"speak.{which} is empty", ref)
    if len(body) > max_text_chars:
        raise ProtocolError(
            TOO_LONG, f"speak.{which} has {len(body)} characters (limit {max_text_chars})", ref
        )
    mode = values.get("mode", "queue")
    if mode not in MODES:
        raise ProtocolError(
            BAD_FIELD, f"speak.mode must be 'queue' or 'interrupt', not {mode[:20]!r}", ref
        )
    if "voice" in values:
        _check_voice_name(values["voice"], "speak.voice", ref)


def _check_voice_name(name: str, where: str, ref: str | None) -> None:
    if not name.strip():
        raise ProtocolError(BAD_FIELD, f"{where} must not be empty", ref)
    if not valid_name(name):
        raise ProtocolError(
            BAD_FIELD,
            f"{where} {name[:70]!r} is not a voice name: 1-64 letters, digits, '_', '-' or "
            "'.', starting with a letter or digit",
            ref,
        )


def hello_message(
    *,
    sample_rate_hz: int,
    frame_ms: int,
    max_message_bytes: int,
    max_text_chars: int,
    auth_required: bool,
    requests_per_second: float,
) -> dict[str, Any]:
    """First message on a WebSocket connection: what a client needs to know."""
    return {
        "type": "hello",
        "protocol": PROTOCOL_VERSION,
        "sample_rate_hz": sample_rate_hz,
        "frame_ms": frame_ms,
        "audio_header_bytes": AUDIO_HEADER_BYTES,
        "sample_format": "pcm16le",
        "max_message_bytes": max_message_bytes,
        "max_text_chars": max_text_chars,
        "requests_per_second": requests_per_second,
        "auth_required": auth_required,
    }
