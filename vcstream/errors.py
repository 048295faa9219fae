"""Errors that carry a one-line message meant for the user.

The CLI prints ``str(err)`` of any ``VcstreamError`` and exits non-zero; the network
edges turn them into error events with ``code``. Anything else is a bug.
"""


class VcstreamError(Exception):
    """Base class: a clear, one-line, user-facing problem."""

    code = "error"


class InputError(VcstreamError):
    """The user's input is malformed (text, phonemes, arguments, messages)."""

    code = "bad_input"


class AudioFileError(InputError):
    """A WAV file is missing, unreadable or not audio."""

    code = "bad_audio"


class NoVoiceError(InputError):
    """There is no voiced audio to build a speaker embedding from."""

    code = "no_voice"


class UnknownPhonemesError(InputError):
    """Phoneme input contains symbols outside the inventory."""

    code = "unknown_phonemes"

    def __init__(self, unknown: list[str]) -> None:
        self.unknown = unknown
        shown = " ".join(repr(s) for s in unknown)
        super().__init__(f"unknown phoneme symbols: {shown}")


class BadTextError(InputError):
    """Text holds a lone surrogate or a Unicode non-character (see vcstream.safetext)."""

    code = "bad_text"


class VoiceNotFoundError(InputError):
    code = "unknown_voice"


class ModelMissingError(VcstreamError):
    """A weight file or model package is not installed."""

    code = "model_missing"


class DeviceUnavailableError(VcstreamError):
    """A requested compute or sound device is not available."""

    code = "device_unavailable"


class QueueFullError(VcstreamError):
    """A bounded request queue is full; the request is rejected, not queued."""

    code = "queue_full"


class ClientQueueFullError(QueueFullError):
    """One client's own queue is full; other clients' lines are still accepted."""

    code = "client_queue_full"


class ForbiddenError(VcstreamError):
    """The command is reserved for the operator (``[control] operator_only``)."""

    code = "forbidden"


class ConsentError(InputError):
    """The live voice may not be used for this yet: its speaker has not consented."""

    code = "no_consent"
