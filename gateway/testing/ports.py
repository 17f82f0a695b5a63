"""A TCP port for a peer that is down now and comes up later in the test."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator


@contextlib.contextmanager
def reserved_port(host: str = "127.0.0.1") -> Iterator[int]:
    """A port on ``host`` that nobody listens on and nobody else is given while the block
    runs: a bound socket that does not listen, so connections to it are refused as to a peer
    that is down.

    Taking a free port and closing it ("port 0, then use the number later") lets the kernel
    hand the same port to the next test that binds port 0, which then answers in the "down"
    peer's place and cannot start its own (EADDRINUSE, seen beside a second full run). A
    server may bind the reserved port inside the block (both sockets set SO_REUSEADDR, as
    Trio's listeners do, and this one never listens), so the peer comes up with no window in
    which the port is free.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, 0))
        yield sock.getsockname()[1]
    finally:
        sock.close()
