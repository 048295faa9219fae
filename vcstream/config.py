"""Configuration: typed sections read from TOML over built-in defaults.

``configs/default.toml`` documents every key; this module defines the same tree as
dataclasses so that code reads ``cfg.vocoder.chunk_frames`` rather than dict lookups.
Unknown keys are an error, so a typo never silently keeps a default.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vcstream.errors import InputError


@dataclass
class DeviceConfig:
    compute: str = "auto"
    cpu_threads: int = 0


@dataclass
class CaptureConfig:
    source: str = "sounddevice"
    device: str = ""
    file: str = ""
    loop: bool = False
    sample_rate_hz: int = 16000
    block_ms: int = 20
    ring_seconds: float = 10.0
    stall_s: float = 2.0
    retry_initial_s: float = 1.0
    retry_max_s: float = 30.0


@dataclass
class EmbedderConfig:
    vad_threshold_db: float = 9.0
    vad_floor_dbfs: float = -55.0
    vad_hangover_ms: int = 200
    partial_seconds: float = 1.6
    partial_step_seconds: float = 0.8
    auto_freeze_seconds: float = 0.0
    initial_voice: str = ""


@dataclass
class SynthConfig:
    backend: str = "fastpitch"
    speed: float = 1.0
    pitch_shift_semitones: float = 0.0
    max_text_chars: int = 2000
    restore_spread: bool = False


@dataclass
class VocoderConfig:
    checkpoint: str = "universal"
    chunk_frames: int = 32
    left_context_frames: int = 12
    right_context_frames: int = 12
    first_chunk_frames: int = 16
    cpu_chunk_frames: int = 32
    cpu_chunk_growth: float = 1.25
    cpu_fast: bool = True
    quality: str = "auto"
    lite_checkpoint: str = ""
    lite_chunk_frames: int = 24
    lite_first_chunk_frames: int = 4
    lite_chunk_growth: float = 2.0
    auto_full_max_rtf: float = 0.5


@dataclass
class EngineConfig:
    request_queue: int = 16
    client_queue: int = 4
    lookahead_seconds: float = 1.0
    output_buffer_seconds: float = 30.0
    release_memory_after_idle_s: float = 60.0
    request_stall_s: float = 30.0


@dataclass
class WatchdogConfig:
    loop_stall_s: float = 10.0
    synth_stall_s: float = 30.0
    check_interval_s: float = 1.0


@dataclass
class OutputConfig:
    frame_ms: int = 40
    playback: bool = False
    playback_device: str = ""


@dataclass
class VoicesConfig:
    dir: str = ""


@dataclass
class ConsentConfig:
    mode: str = "none"
    phrase: str = "I agree that this installation may copy my voice."
    max_phrase_error: float = 0.25
    min_similarity: float = 0.75
    min_phrase_seconds: float = 1.0
    max_phrase_seconds: float = 12.0
    forget_after_s: float = 600.0


@dataclass
class WebSocketConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8765
    token: str = ""
    allowed_origins: list[str] = field(default_factory=list)
    max_message_bytes: int = 65536
    client_queue_frames: int = 100
    overflow_disconnect_seconds: float = 10.0
    requests_per_second: float = 5.0
    max_clients: int = 32


@dataclass
class ZmqConfig:
    enabled: bool = True
    pub: str = "tcp://127.0.0.1:5556"
    router: str = "tcp://127.0.0.1:5555"
    send_hwm: int = 1000
    curve_server_secret: str = ""
    curve_allowed_clients: str = ""


@dataclass
class NetworkConfig:
    websocket: WebSocketConfig = field(default_factory=WebSocketConfig)
    zmq: ZmqConfig = field(default_factory=ZmqConfig)


@dataclass
class ControlConfig:
    operator_tokens: list[str] = field(default_factory=list)
    operator_zmq_identities: list[str] = field(default_factory=list)
    operator_only: list[str] = field(default_factory=list)


@dataclass
class LogConfig:
    level: str = "INFO"


@dataclass
class AdaptConfig:
    auto_every_s: float = 0.0
    min_seconds: float = 3.0
    max_buffer_s: float = 60.0
    max_wall_s: float = 60.0
    steps: int = 0
    nice: int = 10
    threads: int = 1
    measure: bool = True


@dataclass
class Config:
    device: DeviceConfig = field(default_factory=DeviceConfig)
    capture: CaptureConfig = field(default_factory=CaptureConfig)
    embedder: EmbedderConfig = field(default_factory=EmbedderConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)
    vocoder: VocoderConfig = field(default_factory=VocoderConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    watchdog: WatchdogConfig = field(default_factory=WatchdogConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    voices: VoicesConfig = field(default_factory=VoicesConfig)
    adapt: AdaptConfig = field(default_factory=AdaptConfig)
    consent: ConsentConfig = field(default_factory=ConsentConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    log: LogConfig = field(default_factory=LogConfig)


def _merge(obj: Any, data: dict[str, Any], where: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(obj)}
    for key, value in data.items():
        if key not in fields:
            raise InputError(f"config: unknown key {where}{key!r}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise InputError(f"config: {where}{key} must be a table")
            _merge(current, value, f"{where}{key}.")
            continue
        expected = type(current)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise InputError(
                f"config: {where}{key} must be {expected.__name__}, got {type(value).__name__}"
            )
        setattr(obj, key, value)
    return obj


def from_dict(data: dict[str, Any]) -> Config:
    return _merge(Config(), data, "")


def load_config(path: str | Path | None = None) -> Config:
    """Defaults, overlaid with the TOML file at ``path`` when given."""
    if path is None:
        return Config()
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise InputError(f"config file not found: {p}") from err
    except tomllib.TOMLDecodeError as err:
        raise InputError(f"config file {p}: invalid TOML ({err})") from err
    return from_dict(data)
