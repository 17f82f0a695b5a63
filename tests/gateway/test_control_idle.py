"""Idle control-socket clients cannot lock gatewayctl out (real socket, real gatewayd)."""

from __future__ import annotations

import json
import socket
import time

import pytest
import trio

from gateway import control
from gateway.daemon import Daemon
from tests.fakes.daemon_process import run_ctl


def test_idle_connections_do_not_lock_gatewayctl_out(gateway_config, gatewayd):
    """With MAX_CONNECTIONS idle clients connected, gatewayctl status still answers at once; the oldest idle one is closed."""
    proc = gatewayd(gateway_config())
    proc.wait_ready()
    idle = []
    for i in range(control.MAX_CONNECTIONS):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(proc.socket_path))
        if i % 2:  # half have been served once and wait between requests, half never sent a line
            sock.sendall(b'{"cmd": "help"}\n')
            sock.settimeout(10)
            assert b"\n" in sock.recv(1 << 20)
        else:
            sock.sendall(b'{"cmd": "sta')
        idle.append(sock)
    time.sleep(0.2)  # every connection accepted and counted
    try:
        started = time.monotonic()
        result = run_ctl("--socket", str(proc.socket_path), "--timeout", "10", "status")
        assert result.returncode == 0, result.stderr
        assert time.monotonic() - started < 8
        idle[0].settimeout(10)
        assert idle[0].recv(100) == b""  # the oldest idle connection was closed for it
    finally:
        for sock in idle:
            sock.close()


@pytest.fixture
async def daemon(gateway_config, nursery, captured_logs):
    d = Daemon.from_file(gateway_config())
    nursery.start_soon(d.run)
    await d.control_ready.wait()
    yield d
    d.request_stop("test over")


async def test_incomplete_request_gets_a_short_timeout(daemon):
    # real time (about 10 s): under the autojump clock the daemon's SQLite threads let the
    # mock clock run ahead of the server's timer (closed after 28 virtual seconds, once)
    """A client trickling an incomplete request is closed after REQUEST_TIMEOUT_S in all; one served keeps the idle timeout."""
    path = str(daemon.config.gateway.control_socket)
    assert control.REQUEST_TIMEOUT_S <= 10 < control.IDLE_TIMEOUT_S
    served = await trio.open_unix_socket(path)
    await served.send_all(b'{"cmd": "status"}\n')
    assert json.loads(await served.receive_some(1 << 20))["ok"]

    trickle = await trio.open_unix_socket(path)
    start = trio.current_time()
    closed_at = None
    with trio.fail_after(60):
        while closed_at is None:
            try:  # a byte a second never makes a line; closed with bytes unread is a reset
                await trickle.send_all(b" ")
                with trio.move_on_after(1):
                    if await trickle.receive_some(10) == b"":
                        closed_at = trio.current_time()
            except trio.BrokenResourceError:
                closed_at = trio.current_time()
    assert control.REQUEST_TIMEOUT_S <= closed_at - start < control.REQUEST_TIMEOUT_S + 2
    await trio.sleep(2)  # the served client is still welcome (its idle timeout is 120 s)
    await served.send_all(b'{"cmd": "status"}\n')
    assert json.loads(await served.receive_some(1 << 20))["ok"]
    await served.aclose()
    await trickle.aclose()
