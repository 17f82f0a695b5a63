"""A fake systemd notification socket: a Unix datagram socket that records what it receives.

Bound by the test (a path, or an abstract name), passed to the daemon as ``$NOTIFY_SOCKET``.
Speaks the real sd_notify wire format: one datagram of newline-separated ``KEY=VALUE`` lines.
"""

from __future__ import annotations

import os
import socket
import time


class NotifySocket:
    def __init__(self, path: str | None = None, *, abstract: str | None = None) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract is not None:
            self.sock.bind("\0" + abstract)
            self.env_value = "@" + abstract
        else:
            assert path is not None
            self.sock.bind(path)
            self.env_value = path
        self.messages: list[dict[str, str]] = []

    def receive(self, timeout: float) -> dict[str, str] | None:
        """The next notification as a dict, or None after ``timeout`` seconds."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except TimeoutError:
            return None
        fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
        self.messages.append(fields)
        return fields

    def wait_for(self, key: str, value: str = "1", timeout: float = 10.0) -> dict[str, str]:
        """Receive until a notification has ``key=value``; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            fields = self.receive(left)
            if fields is not None and fields.get(key) == value:
                return fields
        raise AssertionError(f"no {key}={value} within {timeout}s; got {self.messages}")

    def close(self) -> None:
        name = self.sock.getsockname()
        self.sock.close()
        if isinstance(name, str) and name and not name.startswith("\0"):
            os.unlink(name)
