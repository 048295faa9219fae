"""The fair request scheduler as a plain object: turn order, limits, operators first."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vcstream.errors import ClientQueueFullError, QueueFullError
from vcstream.scheduler import ClientId, FairScheduler

A, B, C = (ClientId(("ws", i), f"ws#{i}") for i in (1, 2, 3))
OP = ClientId(("operator", 0), "operator", operator=True)


def drain(s: FairScheduler) -> list[str]:
    out = []
    while (got := s.pop()) is not None:
        out.append(got[1])
    return out


def test_round_robin_between_clients():
    s = FairScheduler(max_total=16, max_per_client=8)
    for i in range(4):
        s.push(A, f"a{i}")
    s.push(B, "b0")
    s.push(B, "b1")
    s.push(C, "c0")
    assert drain(s) == ["a0", "b0", "c0", "a1", "b1", "a2", "a3"]
    assert len(s) == 0 and s.pop() is None


def test_a_newcomer_waits_for_no_more_of_a_backlog_than_the_line_in_service():
    s = FairScheduler(max_total=16, max_per_client=8)
    for i in range(5):
        s.push(A, f"a{i}")
    assert s.pop() == (A, "a0")  # being synthesised when B arrives
    assert s.push(B, "b0") == 0  # nothing queued comes before it
    assert s.pop() == (B, "b0")
    assert s.pop() == (A, "a1")
    # B again while A still has a backlog: after one more line of A at most
    s.push(B, "b1")
    assert drain(s)[:2] in (["b1", "a2"], ["a2", "b1"])


def test_one_at_a_time_clients_alternate_with_a_flood():
    """A flooder that keeps its queue full cannot push a well-behaved client back."""
    s = FairScheduler(max_total=16, max_per_client=4)
    order = []
    for i in range(4):
        s.push(A, f"a{i}")
    for round_ in range(6):
        s.push(B, f"b{round_}")  # B sends its next line when the last was served
        for _ in range(2):
            client, item = s.pop()
            order.append(item)
            if client == A:
                s.push(A, f"a{round_}x")  # A refills at once
        assert f"b{round_}" in order[-2:]


def test_positions_predict_the_service_order():
    s = FairScheduler(max_total=16, max_per_client=8)
    positions = {}
    for client, item in [(A, "a0"), (A, "a1"), (A, "a2"), (B, "b0"), (C, "c0"), (B, "b1")]:
        positions[item] = s.push(client, item)
    order = drain(s)
    # a position counts only what was queued when the line arrived
    assert positions == {"a0": 0, "a1": 1, "a2": 2, "b0": 1, "c0": 2, "b1": 4}
    assert order == ["a0", "b0", "c0", "a1", "b1", "a2"]


def test_per_client_limit_is_its_own_error_and_spares_others():
    s = FairScheduler(max_total=16, max_per_client=2)
    s.push(A, "a0")
    s.push(A, "a1")
    with pytest.raises(ClientQueueFullError, match="limit 2") as err:
        s.push(A, "a2")
    assert err.value.code == "client_queue_full"
    with pytest.raises(ClientQueueFullError):
        s.check(A)  # the same refusal, before any work is spent on the request
    s.check(B)
    s.push(B, "b0")  # another client is still accepted
    assert s.queued(A) == 2 and s.queued(B) == 1


def test_global_limit_is_queue_full_and_the_operator_is_exempt():
    s = FairScheduler(max_total=3, max_per_client=2)
    s.push(A, "a0")
    s.push(A, "a1")
    s.push(B, "b0")
    with pytest.raises(QueueFullError) as err:
        s.push(C, "c0")
    assert err.value.code == "queue_full" and not isinstance(err.value, ClientQueueFullError)
    assert s.push(OP, "op0") == 0  # the flood does not lock the operator out
    s.push(OP, "op1")
    with pytest.raises(ClientQueueFullError):
        s.push(OP, "op2")


def test_operator_lines_go_first():
    s = FairScheduler(max_total=16, max_per_client=8)
    for i in range(3):
        s.push(A, f"a{i}")
    s.push(B, "b0")
    assert s.push(OP, "op0") == 0
    assert s.push(OP, "op1") == 1
    assert s.push(B, "b1") == 2 + 3  # both operator lines, then a0, b0, a1
    assert drain(s) == ["op0", "op1", "a0", "b0", "a1", "b1", "a2"]


def test_front_goes_before_the_clients_own_lines_only():
    s = FairScheduler(max_total=16, max_per_client=8)
    s.push(A, "a0")
    s.push(A, "a1")
    s.push(B, "b0")
    s.push(A, "urgent", front=True)
    assert drain(s) == ["urgent", "b0", "a0", "a1"]


def test_remove_takes_lines_out_and_frees_their_room():
    s = FairScheduler(max_total=3, max_per_client=3)
    for i in range(3):
        s.push(A, f"a{i}")
    with pytest.raises(QueueFullError):
        s.push(B, "b0")
    assert s.remove(lambda client, item: client == A and item != "a1") == ["a0", "a2"]
    s.push(B, "b0")
    assert s.depths() == [
        {"client": "ws#1", "queued": 1, "operator": False},
        {"client": "ws#2", "queued": 1, "operator": False},
    ]
    assert s.remove(lambda client, item: True) == ["a1", "b0"]
    assert len(s) == 0 and s.depths() == []


def test_depths_show_labels_not_keys():
    secret = ClientId(("token", "s3cret-token"), "operator", operator=True)
    s = FairScheduler(max_total=4, max_per_client=4)
    s.push(secret, "x")
    assert "s3cret" not in repr(s.depths())


def test_identity_is_the_key():
    assert ClientId(("zmq", b"\x00k"), "zmq#1") == ClientId(("zmq", b"\x00k"), "zmq#7")
    assert ClientId(("ws", 1), "ws#1") != ClientId(("ws", 2), "ws#1")


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("push"), st.integers(0, 3)), st.tuples(st.just("pop"), st.none())
        ),
        max_size=80,
    )
)
def test_any_sequence_keeps_limits_loses_nothing_and_bounds_a_newcomers_wait(ops):
    """Whatever the clients do: no line is lost or duplicated, limits hold, and a line of a
    client that had nothing queued is served before any other client's second line."""
    clients = [ClientId(("c", i), f"c{i}") for i in range(4)]
    s: FairScheduler[tuple[int, int]] = FairScheduler(max_total=10, max_per_client=3)
    pushed, popped = [], []
    watch: dict[tuple[int, int], dict[int, int]] = {}  # newcomer line -> served lines per client
    counter = 0
    for op, who in ops:
        if op == "push":
            item = (who, counter)
            counter += 1
            was_empty = s.queued(clients[who]) == 0
            try:
                s.push(clients[who], item)
            except QueueFullError:
                assert s.queued(clients[who]) == 3 or len(s) == 10
                continue
            pushed.append(item)
            if was_empty:
                watch[item] = {}
        else:
            got = s.pop()
            if got is None:
                assert len(s) == 0
                continue
            _, item = got
            popped.append(item)
            watch.pop(item, None)
            for waiting, served in watch.items():
                if item[0] != waiting[0]:
                    served[item[0]] = served.get(item[0], 0) + 1
                    assert served[item[0]] <= 1, f"{waiting} waited for two lines of c{item[0]}"
        assert len(s) <= 10
        assert all(d["queued"] <= 3 for d in s.depths())
    popped += drain(s)
    assert sorted(popped) == sorted(pushed)
