"""The state writer process: ``python -m gateway.writer_child FD PATH SYNCHRONOUS``.

Started by :class:`gateway.writer_process.RemoteWriter` (see there for the protocol). It opens
the writer connection, answers ``("ready", None)``, then commits each batch it reads with
:func:`gateway.sqlite_base.commit_batch`; it imports nothing of the event loop.
"""

from __future__ import annotations

import pickle
import signal
import socket
import struct
import sys
from typing import Any

from gateway.sqlite_base import commit_batch, open_writer_connection

_LEN = struct.Struct(">I")


class _Batch:
    __slots__ = ("appends", "ops")

    def __init__(self, appends: dict, ops: list) -> None:
        self.appends = appends
        self.ops = ops


def _send(sock: socket.socket, message: Any) -> None:
    """Send one message; raises if it does not pickle (a "ran" answer then fails its batch,
    which is rolled back: the parent hears "failed" instead)."""
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(_LEN.pack(len(body)) + body)


def _send_failed(sock: socket.socket, exc: BaseException) -> None:
    try:
        _send(sock, ("failed", exc))
    except Exception:  # an exception that does not pickle: its text travels
        _send(sock, ("failed", RuntimeError(repr(exc))))


def _receive(sock: socket.socket) -> bytes | None:
    """The next message's pickle, or None once the parent closed its end."""
    head = _read_exactly(sock, 4)
    if head is None:
        return None
    (size,) = _LEN.unpack(head)
    return _read_exactly(sock, size)


def _read_exactly(sock: socket.socket, n: int) -> bytes | None:
    chunks = bytearray()
    while len(chunks) < n:
        data = sock.recv(n - len(chunks))
        if not data:
            return None
        chunks += data
    return bytes(chunks)


def child_main(fd: int, path: str, synchronous: str) -> int:
    # The daemon's stop (systemd's SIGTERM to the whole cgroup, a Ctrl-C to the foreground
    # process group) must not end this process before the daemon's last commits: it ends
    # when the daemon closes its socket (or dies), having finished the batch it is in.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    sock = socket.socket(fileno=fd)
    try:
        conn = open_writer_connection(path, synchronous)
    except Exception as exc:
        _send_failed(sock, exc)
        return 1
    _send(sock, ("ready", None))
    while True:
        body = _receive(sock)
        if body is None:  # the parent closed (stopped or killed): nothing is in flight
            conn.close()
            return 0
        try:
            appends, ops = pickle.loads(body)
        except Exception as exc:  # an op of a module this process cannot import
            _send(sock, ("unreadable", repr(exc)))
            continue
        batch = _Batch(appends, [[fn, args, None, None, None] for fn, args in ops])

        def ran(batch: _Batch = batch) -> None:
            _send(sock, ("ran", [(op[2], op[3]) for op in batch.ops]))

        try:
            commit_batch(conn, batch, ran)
        except Exception as exc:
            _send_failed(sock, exc)
        else:
            _send(sock, ("done", None))


if __name__ == "__main__":
    sys.exit(child_main(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
