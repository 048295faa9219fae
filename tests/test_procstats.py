"""The daemon's footprint in status (vcstream.procstats)."""

from __future__ import annotations

from vcstream.procstats import process_stats


def test_process_stats_count_what_the_process_holds(tmp_path):
    before = process_stats()
    assert before["rss_mb"] > 10 and before["threads"] >= 1
    with open(tmp_path / "a", "w"), open(tmp_path / "b", "w"):
        assert process_stats()["fds"] == before["fds"] + 2
    assert process_stats(pid=2**22 + 12345) == {}  # no such process: nothing made up
