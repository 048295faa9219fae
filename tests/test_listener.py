"""Per-listener bounded queues and the rate limiter, driven by a fake clock."""

from __future__ import annotations

import pytest

from vcstream.net.listener import AUDIO, EVENT, STATUS, ListenerQueue
from vcstream.net.ratelimit import BucketTable, TokenBucket
from vcstream.testing import FakeClock


def _drain(q: ListenerQueue) -> list[tuple[str, object]]:
    out = []
    while (item := q.pop()) is not None:
        out.append(item)
    return out


def test_items_come_out_in_the_order_they_went_in():
    q = ListenerQueue(10)
    q.put(AUDIO, 1)
    q.put(EVENT, "accepted")
    q.put(AUDIO, 2)
    q.put(STATUS, "m1")
    q.put(AUDIO, 3)
    q.put(EVENT, "done")
    assert _drain(q) == [
        (AUDIO, 1),
        (EVENT, "accepted"),
        (AUDIO, 2),
        (STATUS, "m1"),
        (AUDIO, 3),
        (EVENT, "done"),
    ]
    assert len(q) == 0 and q.pop() is None


def test_full_audio_drops_oldest_and_counts():
    q = ListenerQueue(3)
    for i in range(5):
        q.put(AUDIO, i)
    assert q.stats.dropped_audio == 2
    assert [v for _, v in _drain(q)] == [2, 3, 4]


def test_audio_overflow_never_drops_events():
    q = ListenerQueue(3, event_capacity=50)
    for i in range(40):
        q.put(AUDIO, i)
        if i % 4 == 0:
            q.put(EVENT, f"e{i}")
    items = _drain(q)
    events = [v for k, v in items if k == EVENT]
    assert events == [f"e{i}" for i in range(0, 40, 4)]
    assert [v for k, v in items if k == AUDIO] == [37, 38, 39]
    assert q.stats.dropped_events == 0 and q.stats.dropped_audio == 37


def test_status_keeps_only_the_latest_few():
    q = ListenerQueue(10, status_capacity=2)
    for i in range(6):
        q.put(STATUS, i)
    assert [v for _, v in _drain(q)] == [4, 5]
    assert q.stats.dropped_status == 4 and q.stats.dropped_events == 0


def test_events_have_their_own_bound():
    q = ListenerQueue(2, event_capacity=4)
    for i in range(10):
        q.put(EVENT, i)
    assert [v for _, v in _drain(q)] == [6, 7, 8, 9]
    assert q.stats.dropped_events == 6


def test_sustained_overflow_leads_to_disconnect():
    clock = FakeClock()
    q = ListenerQueue(4, overflow_disconnect_s=10.0, clock=clock.monotonic)
    for i in range(4):
        q.put(AUDIO, i)
    assert not q.should_disconnect() and q.overflowing_s == 0.0
    for i in range(4, 8):  # a stalled reader: every new frame pushes out an old one
        q.put(AUDIO, i)
        clock.sleep(2.0)
        assert not q.should_disconnect()
    assert q.overflowing_s == pytest.approx(8.0)
    clock.sleep(2.0)
    q.put(AUDIO, 8)
    assert q.should_disconnect()
    assert q.stats.overflow_episodes == 1
    snap = q.snapshot()
    assert (
        snap["dropped_audio"] == 5 and snap["queued_audio"] == 4 and snap["overflowing_s"] == 10.0
    )


def test_an_overflow_episode_ends_when_the_reader_catches_up():
    clock = FakeClock()
    q = ListenerQueue(4, overflow_disconnect_s=10.0, clock=clock.monotonic)
    for i in range(6):
        q.put(AUDIO, i)
    clock.sleep(6.0)
    q.pop()  # 3 left: not yet at half
    assert q.overflowing_s == pytest.approx(6.0)
    q.pop()  # 2 left = half: caught up
    assert q.overflowing_s == 0.0
    clock.sleep(6.0)
    for i in range(6, 9):  # a new, short episode starts its own clock
        q.put(AUDIO, i)
    clock.sleep(6.0)
    assert not q.should_disconnect()
    assert q.stats.overflow_episodes == 2


def test_bad_capacity_is_refused():
    with pytest.raises(ValueError):
        ListenerQueue(0)


def test_token_bucket_burst_then_rate():
    clock = FakeClock()
    bucket = TokenBucket(rate=5.0, burst=10.0, clock=clock.monotonic)
    assert all(bucket.take() for _ in range(10))
    assert not bucket.take()
    assert bucket.refused == 1
    assert bucket.retry_after_s() == pytest.approx(0.2)
    clock.sleep(0.2)
    assert bucket.take() and not bucket.take()
    clock.sleep(100.0)  # never saves more than the burst
    assert sum(bucket.take() for _ in range(20)) == 10


def test_token_bucket_validates():
    with pytest.raises(ValueError):
        TokenBucket(0.0, 1.0)
    with pytest.raises(ValueError):
        TokenBucket(1.0, 0.5)


def test_bucket_table_is_per_client_and_bounded():
    clock = FakeClock()
    table = BucketTable(1.0, 2.0, max_clients=3, clock=clock.monotonic)
    a = table.get("a")
    assert a.take() and a.take() and not a.take()
    assert table.get("b").take()  # another client is unaffected
    assert table.get("a") is a
    for key in ("c", "d", "e"):
        table.get(key)
    assert len(table) == 3
    assert table.get("a") is not a  # the least recently used was forgotten
