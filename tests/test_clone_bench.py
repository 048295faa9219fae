"""`vcstream bench --clone` end to end at tiny scale (one real speaker, one sentence, the
3 s reference), and its option errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vcstream import cli
from vcstream.bench import clone
from vcstream.corpus import realvoice as rv
from vcstream.errors import InputError
from vcstream.synth.knn import check_settings

SPEAKER = "hedgewars/British"  # dev split: a unit test is no figure to steer by


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[dict, str]:
    if not rv.HEDGEWARS.is_dir():
        pytest.skip("Debian package hedgewars-data is needed")
    out = tmp_path_factory.mktemp("clone") / "clone.json"
    argv = ["bench", "--clone", "--speakers", SPEAKER, "--sentences", "1", "--lengths", "3"]
    argv += ["--no-adapt", "--device", "cpu", "--json-out", str(out)]
    import contextlib
    import io

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert cli.main(argv) == 0
    return json.loads(out.read_text()), printed.getvalue()


def test_tiny_run_prints_the_tables_and_writes_a_well_formed_report(run) -> None:
    report, printed = run
    assert "per speaker and reference length" in printed and "summary: mean" in printed
    # a file is written: auto means HiFi-GAN V1, and the report says so
    assert report["vocoder"]["quality"] == "full" and "full vocoder" in printed
    assert json.loads(printed[printed.index("\n{") :]) == report  # the JSON after the tables
    assert report["sentences"] == list(clone.SENTENCES[:1])
    assert report["adaptation"] == {
        "available": False,
        "note": "adapted rows left out (--no-adapt)",
    }
    (entry,) = report["speakers"].values()
    assert list(report["speakers"]) == [SPEAKER] and entry["split"] == "dev"
    assert list(entry["lengths"]) == ["3"] and entry["lengths"]["3"]["reference_s"] == 3.0
    rows = entry["lengths"]["3"]["rows"]
    # the voice with the reference's spread of spectral detail restored is a row too
    assert set(rows) == {
        "default",
        "zero-shot",
        "zero-shot+spread",
        "zero-shot+knn-envelope",
        "ceiling",
    }
    assert rows["zero-shot+spread"]["transcripts"][0]
    for name, r in rows.items():
        assert -1.0 <= r["cosine"] <= 1.0, name
    # the scale's ends, by definition, and a real speaker's own clips above the default voice
    assert rows["default"]["gap_closed"] == 0.0 and rows["ceiling"]["gap_closed"] == 1.0
    assert rows["ceiling"]["cosine"] > rows["default"]["cosine"] + 0.1
    for name in ("default", "zero-shot"):
        assert 0.0 <= rows[name]["cer"] <= 1.0 and rows[name]["transcripts"][0]
        assert rows[name]["f0_error_st"] is not None
    for name in ("default", "zero-shot", "ceiling"):  # speech, so partly voiced
        assert 0.05 < rows[name]["voiced"] < 1.0, name
    assert report["summary"]["3"]["zero-shot"]["speakers"] == 1
    assert report["targets"]["adapted_10s_gap"]["met"] is None  # nothing measured
    assert "adapted rows left out (--no-adapt)" in printed


def test_option_errors_are_specific() -> None:
    with pytest.raises(InputError, match="--lengths"):
        clone.parse_lengths("3,ten")
    with pytest.raises(InputError, match="--lengths"):
        clone.parse_lengths("0")
    with pytest.raises(InputError, match="--knn"):
        clone.parse_knn("nearest")
    assert clone.parse_knn("none") == [] and clone.parse_knn("frame,envelope") == [
        "frame",
        "envelope",
    ]
    with pytest.raises(InputError, match="unknown real-voice speaker"):
        clone.pick_speakers("nobody/here", None, None)
    with pytest.raises(InputError, match="alpha"):
        check_settings(alpha=2.0)
    with pytest.raises(InputError, match="--max-speakers"):
        clone.pick_speakers(None, "test", 0)


def test_clone_only_options_are_refused_elsewhere(capsys, tmp_path: Path) -> None:
    assert cli.main(["bench", "--lengths", "3"]) == 2
    assert "--lengths belongs to --clone" in capsys.readouterr().err
    assert cli.main(["bench", "--clone", "--sentences", "9"]) == 2
    assert "--sentences: 1 to 6" in capsys.readouterr().err


def test_gap_closed_reads_the_scale() -> None:
    assert clone.gap_closed(0.7, 0.5, 0.9) == pytest.approx(0.5)
    assert clone.gap_closed(0.7, 0.9, 0.9) is None  # no gap to close
