"""A real ``redis-server`` on a free loopback port, for tests of the Redis backend.

Redis cannot listen on port 0, so a free port is found by binding a socket to port 0 first.
Persistence is off (``--save "" --appendonly no``) unless ``data_dir`` is given (then an
append-only file fsynced on every write, so a restart on the same port after :meth:`kill`
finds the same data); the server is stopped at the end.
Skips the test when ``redis-server`` is not installed.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    def __init__(self, data_dir: Path | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self.data_dir = data_dir
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, tries: int = 5, *, port: int | None = None) -> RedisServer:
        """Start on a free port (or on ``port``, e.g. to restart on the same address)."""
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.skip("redis-server is not installed")
        for _ in range(tries):
            self.port = port or _free_port()
            self._proc = subprocess.Popen(
                [
                    exe,
                    "--port",
                    str(self.port),
                    "--bind",
                    self.host,
                    "--save",
                    "",
                    *self._persistence(),
                    "--protected-mode",
                    "no",
                    "--loglevel",
                    "warning",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and self._proc.poll() is None:
                try:
                    with socket.create_connection((self.host, self.port), timeout=0.2) as s:
                        s.sendall(b"*1\r\n$4\r\nPING\r\n")
                        if s.recv(16).startswith(b"+PONG"):
                            return self
                except OSError:
                    time.sleep(0.02)
            self.stop()  # port taken meanwhile, or too slow: try another
        raise RuntimeError("could not start redis-server")

    def _persistence(self) -> list[str]:
        if self.data_dir is None:
            return ["--appendonly", "no"]
        return ["--dir", str(self.data_dir), "--appendonly", "yes", "--appendfsync", "always"]

    def kill(self) -> None:
        """SIGKILL, as a crash would (what was acknowledged survives with ``data_dir``)."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the session; tests keep apart by key prefix."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()
