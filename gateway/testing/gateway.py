"""A real gateway daemon inside a test's Trio run, on a temporary state directory."""

from __future__ import annotations

import contextlib
import inspect
import shutil
import tempfile
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import attrs
import trio

from gateway.app import Gateway
from gateway.contracts import AdminReply
from gateway.daemon import Daemon


def write_gateway_config(
    directory: Path, extra_toml: str = "", *, control_socket: Path | None = None
) -> Path:
    """Write ``directory/gateway.toml``: state in ``directory/state``, short restart backoffs,
    JSON logs; ``extra_toml`` (your ``[plugins.X]`` tables) is appended. Returns its path."""
    socket = control_socket or directory / "control.sock"
    path = directory / "gateway.toml"
    path.write_text(
        textwrap.dedent(
            f"""\
            [gateway]
            state_dir = "{directory / "state"}"
            control_socket = "{socket}"
            drain_deadline = "5s"

            [gateway.restart_backoff]
            initial = "0.05s"
            max = "0.2s"

            [logging]
            level = "info"
            format = "json"
            """
        )
        + textwrap.dedent(extra_toml),
        encoding="utf-8",
    )
    return path


@attrs.frozen(kw_only=True)
class GatewayHandle:
    """A started daemon: ``gateway`` is what your plugin's hooks receive."""

    daemon: Daemon
    config_path: Path

    @property
    def gateway(self) -> Gateway:
        return self.daemon.gateway

    async def command(self, name: str, *argv: str) -> AdminReply:
        """Run an admin command (``gatewayctl NAME ARGV...``) without the socket."""
        _plugin, command = self.daemon.commands[name]
        return await command.handler(list(argv))


@contextlib.asynccontextmanager
async def open_gateway(
    directory: Path,
    extra_toml: str = "",
    *,
    plugins: tuple[tuple[str, object], ...] = (),
) -> AsyncIterator[GatewayHandle]:
    """Run a gateway daemon until the block exits, then stop it gracefully (drain included).

    The built-in plugins and every installed ``gateway.plugins`` entry point are loaded, plus
    ``plugins`` (``(name, module_or_object)`` pairs) for a plugin under test that is not
    installed. Contact control and the outbox are the real SQLite ones under
    ``directory/state``. The control socket lives in a short temporary directory (Unix
    socket paths are limited to 108 bytes, and pytest's ``tmp_path`` can be longer).
    """
    directory.mkdir(parents=True, exist_ok=True)
    sockets = Path(tempfile.mkdtemp(prefix="gw-", dir="/tmp"))
    try:
        path = write_gateway_config(directory, extra_toml, control_socket=sockets / "control.sock")
        daemon = Daemon.from_file(path, extra_plugins=plugins)
        async with trio.open_nursery() as nursery:
            await nursery.start(daemon.run)
            try:
                yield GatewayHandle(daemon=daemon, config_path=path)
            finally:
                daemon.request_stop("test finished")
    finally:
        shutil.rmtree(sockets, ignore_errors=True)


async def wait_until(
    condition: Callable[[], Any], *, within: float = 30.0, interval: float = 0.01
) -> Any:
    """Poll ``condition()`` (sync or async) until it returns something true, and return that; raise
    ``trio.TooSlowError`` after ``within`` seconds. Use it where real I/O (a socket, a
    thread, a process) makes time real: it waits as long as needed and no longer, where a
    fixed sleep is either too short under load or wasted time when idle."""
    with trio.fail_after(within):
        while True:
            result = condition()
            if inspect.isawaitable(result):  # an async condition: a store query
                result = await result
            if result:
                return result
            # Polling on purpose: the state watched (a file, another process) has no trio.Event.
            await trio.sleep(interval)
