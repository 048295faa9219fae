"""Units of the core plumbing: ring buffer, output buffer, config, voices, WAV I/O."""

from __future__ import annotations

import struct
import tomllib
from pathlib import Path

import numpy as np
import pytest

from vcstream.audio.io import decode_wav, encode_wav, from_pcm16, read_wav, to_pcm16, write_wav
from vcstream.capture import WavFileSource
from vcstream.config import CaptureConfig, Config, from_dict, load_config
from vcstream.errors import AudioFileError, InputError, VoiceNotFoundError
from vcstream.metrics import StageTimer
from vcstream.outbuf import OutputBuffer
from vcstream.ringbuffer import SampleRing
from vcstream.testing import FakeClock
from vcstream.voices import VoiceProfile, VoiceStore

ROOT = Path(__file__).resolve().parent.parent


def test_ring_roundtrip_and_wrap():
    ring = SampleRing(10)
    ring.write(np.arange(6, dtype=np.float32))
    assert ring.read(4).tolist() == [0, 1, 2, 3]
    ring.write(np.arange(6, 12, dtype=np.float32))  # wraps around the end
    assert ring.read().tolist() == [4, 5, 6, 7, 8, 9, 10, 11]
    assert ring.dropped_samples == 0


def test_ring_overflow_drops_oldest_and_counts():
    ring = SampleRing(8)
    ring.write(np.arange(5, dtype=np.float32))
    ring.write(np.arange(5, 12, dtype=np.float32))  # 12 written, capacity 8
    out = ring.read()
    assert out.tolist() == list(range(4, 12))
    assert ring.dropped_samples == 4
    ring.write(np.arange(100, dtype=np.float32))  # a write larger than the ring
    assert ring.read().tolist() == list(range(92, 100))


def test_ring_read_into_does_not_overrun():
    ring = SampleRing(8)
    ring.write(np.ones(3, np.float32))
    out = np.full(5, -1.0, np.float32)
    assert ring.read_into(out) == 3
    assert out.tolist() == [1, 1, 1, -1, -1]


def test_output_buffer_frames_and_end_of_utterance():
    buf = OutputBuffer(10_000)
    assert buf.take(4) is None
    buf.put("a", np.arange(6, dtype=np.float32))
    first = buf.take(4)
    assert first.request_id == "a" and first.pcm.tolist() == [0, 1, 2, 3]
    assert not first.end_of_utterance
    assert buf.take(4) is None  # 2 left, not ended: underrun
    buf.end("a")
    last = buf.take(4)
    assert last.pcm.tolist() == [4, 5] and last.end_of_utterance
    assert buf.take(4) is None and buf.buffered_samples == 0


def test_output_buffer_clear_releases_producer_and_reports_cancel():
    buf = OutputBuffer(4)
    assert buf.put("a", np.zeros(4, np.float32))
    assert not buf.put("a", np.zeros(4, np.float32), timeout=0.05)  # full: producer waits
    assert buf.clear("a") == ["a"]
    assert not buf.put("a", np.zeros(1, np.float32))  # cleared requests take no more audio
    taken = buf.take(4)
    assert taken.cancelled and taken.request_id == "a"
    # The pacer has discarded the cancelled segment; a producer still running for "a" must
    # not start a new one (barge-in would otherwise let the rest of the request play).
    assert not buf.put("a", np.ones(8, np.float32))
    buf.end("a")
    assert buf.take(4) is None and buf.buffered_samples == 0


def test_output_buffer_clear_of_a_request_not_yet_started():
    buf = OutputBuffer(100)
    buf.clear("b")  # cancelled while still queued: it never produced audio
    assert not buf.put("b", np.ones(4, np.float32))
    assert buf.take(4) is None


def test_default_toml_matches_dataclass_defaults():
    data = tomllib.loads((ROOT / "configs" / "default.toml").read_text())
    assert from_dict(data) == Config()


def test_config_rejects_unknown_keys_and_wrong_types(tmp_path):
    with pytest.raises(InputError, match="unknown key"):
        from_dict({"vocoder": {"chunk_frame": 3}})
    with pytest.raises(InputError, match="must be int"):
        from_dict({"vocoder": {"chunk_frames": "3"}})
    bad = tmp_path / "bad.toml"
    bad.write_text("[vocoder\n")
    with pytest.raises(InputError, match="invalid TOML"):
        load_config(bad)
    with pytest.raises(InputError, match="not found"):
        load_config(tmp_path / "missing.toml")


def test_wav_roundtrip(tmp_path):
    x = (0.5 * np.sin(np.linspace(0, 100, 2205))).astype(np.float32)
    path = tmp_path / "x.wav"
    write_wav(path, x, 22050)
    y, sr = read_wav(path)
    assert sr == 22050 and len(y) == len(x)
    assert np.max(np.abs(x - y)) < 1e-4
    assert np.allclose(from_pcm16(to_pcm16(x)), x, atol=1e-4)


def test_wav_float_and_stereo(tmp_path):
    frames = np.stack([np.full(100, 0.5), np.full(100, -0.25)], 1).astype("<f4")
    data = frames.tobytes()
    fmt = struct.pack("<HHIIHH", 3, 2, 16000, 16000 * 8, 8, 32)
    riff = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    riff += b"data" + struct.pack("<I", len(data)) + data
    blob = b"RIFF" + struct.pack("<I", len(riff)) + riff
    y, sr = decode_wav(blob)
    assert sr == 16000 and np.allclose(y, 0.125)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "not a WAV"),
        (b"hello world, not audio at all", "not a WAV"),
        (b"RIFF\x10\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00", "corrupt"),
    ],
)
def test_broken_wavs_give_clear_errors(tmp_path, content, message):
    path = tmp_path / "broken.wav"
    path.write_bytes(content)
    with pytest.raises(AudioFileError, match=message):
        read_wav(path)


def test_missing_wav(tmp_path):
    with pytest.raises(AudioFileError, match="no such file"):
        read_wav(tmp_path / "nope.wav")
    with pytest.raises(AudioFileError, match="directory"):
        read_wav(tmp_path)


def test_empty_wav_is_an_error(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(encode_wav(np.zeros(0, np.float32), 16000))
    with pytest.raises(AudioFileError, match="no audio"):
        read_wav(path)


def test_voice_store_roundtrip_atomic_and_errors(tmp_path):
    store = VoiceStore(tmp_path)
    emb = np.random.default_rng(0).standard_normal(256).astype(np.float32)
    emb /= np.linalg.norm(emb)
    store.save(VoiceProfile("alice", emb, 12.5, "ge2e", log_f0_mean=5.0, log_f0_std=0.2))
    got = store.load("alice")
    assert np.allclose(got.embedding, emb) and got.voiced_seconds == 12.5
    assert [v["name"] for v in store.list()] == ["alice"]
    assert not list(tmp_path.glob(".*tmp"))  # no temp files left behind
    with pytest.raises(VoiceNotFoundError, match=r"unknown voice 'bob'.*alice"):
        store.load("bob")
    with pytest.raises(InputError, match="invalid voice name"):
        store.load("../etc/passwd")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(InputError, match="corrupt"):
        store.load("broken")
    assert {"name": "broken", "error": "corrupt profile"} in store.list()


def test_wav_file_source_is_paced_in_real_time(tmp_path):
    path = tmp_path / "in.wav"
    write_wav(path, np.zeros(16000, np.float32), 16000)
    clock = FakeClock()
    cfg = CaptureConfig(source="file", file=str(path), block_ms=20)
    src = WavFileSource(cfg, clock=clock.monotonic, sleep=clock.sleep)
    src._run()  # synchronously, with the fake clock
    assert src.blocks == 50
    assert sum(clock.slept) == pytest.approx(1.0, abs=1e-6)  # 1 s of audio took 1 s
    assert src.ring.available() == 16000


def test_stage_timer_snapshot():
    t = StageTimer("x")
    for ms in (1.0, 2.0, 3.0, 100.0):
        t.add(ms, units=1)
    snap = t.snapshot()
    assert snap["count"] == 4 and snap["p50_ms"] == 3.0 and snap["units"] == 4


def test_fastpitch_backend_is_selectable_and_says_when_untrained():
    import torch

    from vcstream.app import build_synthesizer
    from vcstream.errors import ModelMissingError
    from vcstream.synth.fastpitch import DEFAULT_CHECKPOINT

    cfg = Config()
    cfg.synth.backend = "fastpitch"
    if DEFAULT_CHECKPOINT.is_file():
        assert build_synthesizer(cfg, torch.device("cpu")).clones
    else:
        with pytest.raises(ModelMissingError, match="vcstream train"):
            build_synthesizer(cfg, torch.device("cpu"))
    cfg.synth.backend = "nope"
    with pytest.raises(InputError, match="available: piper, fastpitch"):
        build_synthesizer(cfg, torch.device("cpu"))


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads RSS from /proc")
def test_release_free_memory_returns_freed_heap_pages() -> None:
    from netutil import rss_bytes

    from vcstream.memory import release_free_memory

    # Blocks under glibc's mmap threshold live in the heap; the last one kept alive stops
    # the heap top from shrinking by itself, as a model's long-lived tensors do.
    blocks = [np.ones(100_000 // 8) for _ in range(2000)]
    keep = blocks[-1]
    del blocks
    held = rss_bytes()
    assert release_free_memory()
    assert held - rss_bytes() > 100 * 2**20
    assert keep.sum() == len(keep)
