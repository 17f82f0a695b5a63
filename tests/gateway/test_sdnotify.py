"""sd_notify over a real Unix datagram socket (path and abstract names)."""

from __future__ import annotations

import os
import uuid

import trio

from gateway.sdnotify import SdNotifier
from tests.fakes.notify_socket import NotifySocket


def test_no_notify_socket_is_a_no_op():
    """Without $NOTIFY_SOCKET nothing is sent and nothing fails."""
    notifier = SdNotifier({})
    assert (
        not notifier.enabled
        and notifier.notify(READY=1) is False
        and notifier.watchdog_interval is None
    )


def test_path_socket_receives_key_value_lines(short_tmp):
    """A notification is one datagram of KEY=VALUE lines."""
    sock = NotifySocket(str(short_tmp / "n"))
    try:
        assert SdNotifier({"NOTIFY_SOCKET": sock.env_value}).notify(READY=1, STATUS="running")
        assert sock.receive(2) == {"READY": "1", "STATUS": "running"}
    finally:
        sock.close()


def test_abstract_socket_name():
    """'@name' addresses the abstract socket namespace."""
    sock = NotifySocket(abstract=f"gw-test-{uuid.uuid4().hex}")
    try:
        assert SdNotifier({"NOTIFY_SOCKET": sock.env_value}).notify(STOPPING=1)
        assert sock.receive(2) == {"STOPPING": "1"}
    finally:
        sock.close()


def test_unreachable_socket_is_logged_not_raised(short_tmp):
    """A NOTIFY_SOCKET nobody listens on makes notify return False."""
    assert SdNotifier({"NOTIFY_SOCKET": str(short_tmp / "absent")}).notify(READY=1) is False


def test_watchdog_interval_respects_watchdog_pid():
    """WATCHDOG_USEC applies only to the process named by WATCHDOG_PID (when set)."""
    assert SdNotifier({"WATCHDOG_USEC": "30000000"}).watchdog_interval == 30.0
    assert (
        SdNotifier(
            {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}
        ).watchdog_interval
        == 30.0
    )
    assert SdNotifier({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}).watchdog_interval is None
    assert SdNotifier({"WATCHDOG_USEC": "junk"}).watchdog_interval is None


async def test_watchdog_pings_at_half_the_interval(short_tmp, autojump_clock):
    """serve_watchdog sends WATCHDOG=1 every WATCHDOG_USEC/2."""
    sock = NotifySocket(str(short_tmp / "w"))
    try:
        notifier = SdNotifier({"NOTIFY_SOCKET": sock.env_value, "WATCHDOG_USEC": "10000000"})
        async with trio.open_nursery() as nursery:
            await nursery.start(notifier.serve_watchdog)
            await trio.sleep(12)  # pings at 0, 5, 10
            nursery.cancel_scope.cancel()
        received = []
        while (msg := sock.receive(0.2)) is not None:
            received.append(msg)
        assert received == [{"WATCHDOG": "1"}] * 3
    finally:
        sock.close()
