"""Running a real ``gatewayd`` process in tests, and talking to it.

``GatewaydProcess`` starts the installed ``gatewayd`` console script (falling back to
``python -m gateway.daemon``) with a config file, collects its JSON log lines from stdout in a
background thread, and offers waits on log events and on the control socket.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from gateway.ctl import Unreachable, request

BIN = Path(sys.executable).parent


def command(name: str, module: str) -> list[str]:
    """The console script ``name`` next to this interpreter, or ``python -m module``."""
    script = BIN / name
    return [str(script)] if script.exists() else [sys.executable, "-m", module]


class GatewaydProcess:
    def __init__(
        self,
        config: Path,
        *,
        socket_path: Path,
        pythonpath: list[Path] | None = None,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        interpreter: bool = False,
    ) -> None:
        self.config = config
        self.socket_path = socket_path
        full_env = {
            k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_SOCKET", "WATCHDOG_"))
        }
        if pythonpath:
            extra = os.pathsep.join(str(p) for p in pythonpath)
            full_env["PYTHONPATH"] = extra + (
                os.pathsep + full_env["PYTHONPATH"] if full_env.get("PYTHONPATH") else ""
            )
        full_env.update(env or {})
        self.env = full_env
        self.args = args if args is not None else ["--config", str(config)]
        #: ``args`` are for the Python interpreter (a wrapper script that execs gatewayd).
        self.interpreter = interpreter
        self.lines: list[str] = []
        self.proc: subprocess.Popen[str] | None = None
        self.stderr = ""

    # -- process --------------------------------------------------------------------------

    def start(self) -> GatewaydProcess:
        self.proc = subprocess.Popen(
            [sys.executable, *self.args]
            if self.interpreter
            else [*command("gatewayd", "gateway.daemon"), *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
        )
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        return self

    def _read_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        self.stderr = self.proc.stderr.read()

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 15.0) -> int:
        assert self.proc is not None
        code = self.proc.wait(timeout)
        for reader in self._readers:  # the pipes end with the process: every line is read
            reader.join(timeout)
        return code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    # -- logs -----------------------------------------------------------------------------

    def records(self) -> list[dict[str, Any]]:
        """Every stdout line parsed as JSON (raises if one is not JSON)."""
        return [json.loads(line) for line in list(self.lines) if line.strip()]

    def events(self, name: str) -> list[dict[str, Any]]:
        out = []
        for line in list(self.lines):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("event") == name:
                out.append(record)
        return out

    def wait_for_event(
        self, name: str, timeout: float = 15.0, count: int = 1, poll: float = 0.05
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.events(name)
            if len(found) >= count:
                return found
            if self.proc is not None and self.proc.poll() is not None:
                break
            time.sleep(poll)
        raise AssertionError(
            f"no {count}x {name!r} in log within {timeout}s:\n"
            + "\n".join(self.lines[-30:])
            + "\n"
            + self.stderr
        )

    # -- control socket -------------------------------------------------------------------

    def request(self, cmd: str, *argv: str) -> dict[str, Any]:
        return request(self.socket_path, cmd, list(argv), timeout=10)

    def wait_ready(self, timeout: float = 20.0) -> dict[str, Any]:
        """Wait until ``status`` answers on the control socket; returns its data."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"gatewayd exited with {self.proc.returncode}:\n"
                    + "\n".join(self.lines[-30:])
                    + self.stderr
                )
            try:
                reply = self.request("status")
            except Unreachable:
                time.sleep(0.05)
                continue
            assert reply["ok"], reply
            return reply["data"]
        raise AssertionError(
            f"gatewayd not ready within {timeout}s:\n" + "\n".join(self.lines[-30:])
        )


def run_ctl(
    *args: str, env: dict[str, str] | None = None, timeout: float = 20.0
) -> subprocess.CompletedProcess[str]:
    """Run the ``gatewayctl`` console script."""
    return subprocess.run(
        [*command("gatewayctl", "gateway.ctl"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
