"""sd_notify spoken directly: datagrams to a real AF_UNIX socket, path and abstract names."""

from __future__ import annotations

import logging
import os

import pytest
from notifyutil import NotifySocket

from vcstream.sdnotify import Notifier, one_line, parse_address


@pytest.fixture
def sock(tmp_path):
    s = NotifySocket(str(tmp_path / "notify"))
    yield s
    s.close()


def test_ready_status_watchdog_stopping_reach_a_path_socket(sock):
    n = Notifier.from_env(sock.env(watchdog_usec=3_000_000))
    assert n.enabled and n.watchdog_interval_s == pytest.approx(1.5)
    assert n.ready("listening on 127.0.0.1:8765")
    assert n.watchdog()
    assert n.status("speaking\nline-1")
    assert n.stopping("shutting down")
    sock.wait_for("STOPPING=1", timeout=5)
    assert sock.assignments() == [
        "READY=1",
        "STATUS=listening on 127.0.0.1:8765",
        "WATCHDOG=1",
        "STATUS=speaking line-1",  # a newline would start a new assignment
        "STOPPING=1",
        "STATUS=shutting down",
    ]
    assert n.sent == 4 and n.failed == 0
    n.close()


def test_abstract_namespace_address():
    s = NotifySocket(abstract=True)
    try:
        assert s.env_value.startswith("@")
        n = Notifier.from_env(s.env())
        assert isinstance(n.address, bytes) and n.address.startswith(b"\0")
        assert n.ready()
        s.wait_for("READY=1", timeout=5)
        n.close()
    finally:
        s.close()


def test_without_notify_socket_nothing_is_sent_and_nothing_fails():
    n = Notifier.from_env({})
    assert not n.enabled and n.watchdog_interval_s is None
    assert n.ready() is False and n.watchdog() is False and n.stopping() is False
    assert n.sent == 0 and n.failed == 0


def test_unset_removes_the_variables_so_children_cannot_notify(sock):
    env = {**sock.env(watchdog_usec=1_000_000), "WATCHDOG_PID": str(os.getpid()), "PATH": "/bin"}
    n = Notifier.from_env(env, unset=True)
    assert env == {"PATH": "/bin"}
    assert n.enabled and n.watchdog_usec == 1_000_000


def test_watchdog_meant_for_another_process_is_not_ours(sock):
    env = {**sock.env(watchdog_usec=1_000_000), "WATCHDOG_PID": str(os.getpid() + 1)}
    assert Notifier.from_env(env).watchdog_usec == 0
    assert Notifier.from_env({**sock.env(), "WATCHDOG_USEC": "soon"}).watchdog_usec == 0
    # a watchdog without a socket to ping is no watchdog
    assert Notifier.from_env({"WATCHDOG_USEC": "1000000"}).watchdog_interval_s is None


def test_a_vanished_manager_fails_softly_and_warns_once(tmp_path, caplog):
    n = Notifier(str(tmp_path / "nobody-listens"))
    with caplog.at_level(logging.WARNING, logger="vcstream.sdnotify"):
        assert n.watchdog() is False
        assert n.watchdog() is False
    assert n.failed == 2
    assert len([r for r in caplog.records if "cannot notify systemd" in r.message]) == 1


def test_addresses_and_status_lines():
    assert parse_address(None) is None and parse_address("") is None
    assert parse_address("/run/systemd/notify") == "/run/systemd/notify"
    assert parse_address("@x") == b"\0x"
    assert parse_address("vsock:2:1234") is None
    assert one_line("a\r\nb\tc") == "a b c"
    assert len(one_line("x" * 1000)) == 200
