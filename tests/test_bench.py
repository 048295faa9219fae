"""`vcstream bench`: the Piper comparison and the capacity search, at tiny scale with the
real models. Figures are checked for being real measurements, never against speed targets."""

from __future__ import annotations

from pathlib import Path

import pytest
from netutil import daemon_config

from vcstream.bench.compare import comparison_table
from vcstream.bench.quality import parse_qualities
from vcstream.bench.speed import measure_speed
from vcstream.errors import InputError

SHORT = {"short": "Hello there."}
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def runtime(voices_dir):
    from vcstream.app import build_runtime

    cfg = daemon_config(voices_dir)
    return cfg, build_runtime(cfg)


def test_piper_side_by_side_on_one_short_sentence(runtime) -> None:
    cfg, rt = runtime
    report = measure_speed(cfg, rt, qualities=["full"], repeat=1, texts=SHORT)
    ours, piper = report["pipeline"]["full"]["short"], report["piper"]["short"]
    for row in (ours, piper):
        assert row["words"] == 2
        assert 0.3 < row["audio_seconds"] < 3.0  # two words of speech, not silence or noise
        assert row["time_to_first_audio_ms"]["median"] > 0
        assert row["rtf"]["median"] > 0
    # Piper's first audio is its whole first sentence: it cannot come before 1 ms of compute.
    assert piper["time_to_first_audio_ms"]["median"] >= 1.0
    ratio = report["vs_piper"]["full"]["short"]
    ttfa = ours["time_to_first_audio_ms"]["median"] / piper["time_to_first_audio_ms"]["median"]
    assert ratio["ttfa_ratio"] == pytest.approx(ttfa, rel=1e-2)
    assert ratio["rtf_ratio"] == pytest.approx(
        ours["rtf"]["median"] / piper["rtf"]["median"], rel=1e-2
    )
    assert "full.rtf_le_0.30" in report["targets"]
    assert comparison_table(report).row_count == 2


def test_quality_list_is_checked() -> None:
    assert parse_qualities(None) == ["full"]
    assert parse_qualities("full, lite") == ["full", "lite"]
    with pytest.raises(InputError, match="unknown vocoder quality 'best'"):
        parse_qualities("full,best")
    with pytest.raises(InputError, match="twice"):
        parse_qualities("full,full")


def _log(arrivals: list[float], silent: list[bool]):
    from vcstream.bench.capacity import StreamLog

    log = StreamLog("r1")
    for a, s in zip(arrivals, silent, strict=True):
        log.add(a, s, 882, round(a * 1e9))
    return log


def test_a_stream_is_judged_on_its_cadence_and_underruns() -> None:
    from vcstream.bench.capacity import judge_stream

    period = 0.04
    on_time = [1.0 + k * period + 0.01 * (k % 2) for k in range(10)]
    good = judge_stream(_log([0.9, *on_time], [True] + [False] * 10), period, sent_s=0.5)
    assert good["ok"] and good["underrun_frames"] == 0  # the wait before audio is no underrun
    assert good["time_to_first_audio_ms"] == pytest.approx(500.0)
    late = [*on_time[:5], on_time[5] + 0.05, *on_time[6:]]
    bad = judge_stream(_log(late, [False] * 10), period, sent_s=0.5)
    assert not bad["ok"] and "behind the cadence" in bad["reason"]
    assert bad["max_late_ms"] == pytest.approx(60.0, abs=1.0)  # 10 ms jitter + 50 ms
    assert bad["pacer_max_late_ms"] == pytest.approx(60.0, abs=1.0)
    gap = judge_stream(_log(on_time, [False] * 4 + [True] + [False] * 5), period, sent_s=0.5)
    assert not gap["ok"] and gap["underrun_frames"] == 1
    assert not judge_stream(_log([1.0], [True]), period, sent_s=0.5)["ok"]


def test_capacity_search_on_a_tiny_configuration(runtime) -> None:
    from vcstream.bench.capacity import capacity_table, measure_capacity

    cfg, rt = runtime
    r = measure_capacity(cfg, rt, text="Hello there.", max_streams=2, daemons="thread")
    levels = r["levels"]
    assert [lv["streams"] for lv in levels] == list(range(1, len(levels) + 1))
    # The search climbs while levels pass and stops at the first that fails.
    assert all(lv["ok"] for lv in levels[:-1])
    assert len(levels) == 2 or not levels[-1]["ok"]
    assert r["capacity"] == sum(lv["ok"] for lv in levels)
    for lv in levels:
        assert len(lv["per_stream"]) == lv["streams"]
        for s in lv["per_stream"]:
            assert s["frames"] > 0 and s["time_to_first_audio_ms"] > 0
            assert 0.3 < s["audio_seconds"] < 3.0
            assert s["ok"] == (s["reason"] is None)
    assert capacity_table({"capacity": {"full": r}}).row_count == len(levels)


def test_vocoder_variants_measure_cost_and_difference() -> None:
    from vcstream.audio.io import read_wav, resample
    from vcstream.bench.vocoder_variants import measure_vocoder_variants, vocoder_variants_table
    from vcstream.vocoder import load_vocoder

    audio, rate = read_wav(FIXTURES / "speech_joe.wav")
    report = measure_vocoder_variants(
        load_vocoder(device="cpu"),
        audio=resample(audio, rate, 22050),
        seconds=0.3,
        variants=("channels_last", "no_such_variant"),
        repeat=1,
    )
    rows = report["variants"]
    assert list(rows) == ["float32", "channels_last", "no_such_variant"]
    assert rows["float32"]["diff_db_vs_float32"] is None  # identical to itself
    assert not rows["float32"]["pays"]
    # The same weights in 2-D channels-last layout: the same sound, to rounding.
    assert rows["channels_last"]["diff_db_vs_float32"] < -60.0
    assert rows["channels_last"]["same_sound"]
    for name in ("float32", "channels_last"):
        assert rows[name]["ms_per_audio_s"] > 0 and rows[name]["cpu_ms_per_audio_s"] > 0
    assert "unknown variant" in rows["no_such_variant"]["error"]
    assert vocoder_variants_table(report).row_count == 3


def test_capacity_shares_the_cores_out_among_process_daemons() -> None:
    import os

    from vcstream.bench.capacity import _Daemons
    from vcstream.config import Config

    cfg = Config()
    cores = os.cpu_count() or 1
    shared = _Daemons(cfg, None, "process")
    assert shared.threads_for(1) == cores and shared.threads_for(2 * cores) == 1
    cfg.device.cpu_threads = 3  # a configured count is kept at every level
    assert _Daemons(cfg, None, "process").threads_for(8) == 3
