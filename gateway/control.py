"""The admin control socket and the built-in admin commands.

A Unix stream socket (``[gateway] control_socket``, mode ``control_socket_mode``) speaking JSON
lines. Each request is one line::

    {"cmd": "status", "argv": []}

and gets one line back::

    {"ok": true, "data": {...}, "text": "human rendering or null"}
    {"ok": false, "error": "one line saying what went wrong"}

A connection may send several requests. Commands are the built-ins below plus those plugins
return from ``gateway_admin_commands``; a handler that raises becomes an error reply and never
stops the server. ``gatewayctl`` (:mod:`gateway.ctl`) is the client.

Each connection's OS credentials (``SO_PEERCRED``: uid, gid, pid) are read when it is
admitted and are the :func:`~gateway.control_peer.current_peer` of its commands.
"""

from __future__ import annotations

import gc
import json
import os
import socket
import stat
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import structlog
import trio

import gateway
from gateway.config import check_named_files, format_problem, load_config
from gateway.config_reader import did_you_mean
from gateway.contracts import AdminCommand, AdminReply
from gateway.control_peer import current_peer, read_peer, set_peer
from gateway.errors import AdminCommandError, ConfigError, GatewayError
from gateway.plugin_manager import call_each, plugin_names
from gateway.supervisor import describe

if TYPE_CHECKING:
    # The daemon passes itself; this module sees it through the protocol, never imports it.
    from gateway.lifecycle import DaemonView as Daemon
    from gateway.lifecycle import RegisteredView

MAX_REQUEST_BYTES = 1 << 20
#: Connections served at once. When all are taken, the connection idle the longest is closed
#: to admit the new one; only when every one is running a command does a client get an error.
MAX_CONNECTIONS = 32
#: A new connection must send a complete request line within this time (gatewayctl sends it at
#: once): clients that connect and say nothing do not hold a connection for long.
REQUEST_TIMEOUT_S = 10.0
#: After a reply, the connection may stay open this long waiting for its next request; also
#: the bound for a reply to be read.
IDLE_TIMEOUT_S = 120.0
#: Worst first: the state a plugin shows is that of its worst task.
_STATE_ORDER = ("failed", "restarting", "starting", "running", "finished", "stopped")


# ------------------------------------------------------------------------------------------
# The server
# ------------------------------------------------------------------------------------------


def check_control_socket(path: Path) -> None:
    """Fail early (before stores open) if another daemon answers on ``path``."""
    try:
        _claim_socket_path(path)
    except OSError as exc:
        raise GatewayError(
            f"cannot use the control socket path {path}: {exc.strerror or exc}"
        ) from exc


def _claim_socket_path(path: Path) -> None:
    """Remove a stale socket file; refuse when another daemon still answers on it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() and not path.is_symlink():
        return
    if not stat.S_ISSOCK(path.lstat().st_mode):
        raise GatewayError(
            f"control socket path {path} exists and is not a socket; remove it or change gateway.control_socket"
        )
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(str(path))
    except OSError:
        path.unlink(missing_ok=True)  # nobody listening: left over from a crash
        return
    finally:
        probe.close()
    raise GatewayError(
        f"another gatewayd is listening on {path}; stop it or change gateway.control_socket"
    )


async def serve_control(
    daemon: Daemon, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Listen on the control socket and answer requests until cancelled."""
    core = daemon.config.gateway
    path = core.control_socket
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        _claim_socket_path(path)
        await sock.bind(str(path))
        os.chmod(path, core.control_socket_mode)
        sock.listen(64)
        inode = path.stat().st_ino
    except OSError as exc:
        sock.close()
        raise GatewayError(
            f"cannot listen on the control socket {path}: {exc.strerror or exc}"
        ) from exc
    log = structlog.get_logger()
    log.info("control.listening", path=str(path), mode=oct(core.control_socket_mode))
    try:
        listener = trio.SocketListener(sock)
        task_status.started()

        connections: list[_Connection] = []  # in the order they were admitted
        names = trio.CapacityLimiter(4)  # passwd/group lookups (NSS may be remote)

        async def handle(stream: trio.SocketStream) -> None:
            try:
                if len(connections) >= MAX_CONNECTIONS and not _close_longest_idle(connections):
                    log.warning("control.too_many_connections", limit=MAX_CONNECTIONS)
                    async with stream:
                        with trio.move_on_after(1):
                            await stream.send_all(
                                encode_reply(
                                    _error(
                                        f"too many control connections (limit {MAX_CONNECTIONS})"
                                        " running commands; try again"
                                    )
                                )
                            )
                    return
                try:  # the OS user who connected: the staff component maps it to an account
                    set_peer(await trio.to_thread.run_sync(read_peer, stream.socket, limiter=names))
                except OSError as exc:
                    log.warning("control.peer_unknown", error=describe(exc))
                    async with stream:
                        with trio.move_on_after(1):
                            await stream.send_all(
                                encode_reply(_error("cannot identify the client"))
                            )
                    return
                connection = _Connection(idle_since=trio.current_time())
                connections.append(connection)
                try:
                    with connection.scope:
                        await _serve_connection(daemon, stream, connection)
                finally:
                    if connection in connections:
                        connections.remove(connection)
            except Exception as exc:  # a client hanging up mid-reply must not stop the server
                log.debug("control.connection_failed", error=describe(exc))

        await trio.serve_listeners(handle, [listener])
    finally:
        # Only remove the file if it is still ours (a new daemon may have replaced it).
        try:
            if path.stat().st_ino == inode:
                path.unlink()
        except OSError:
            pass


@attrs.define(eq=False)
class _Connection:
    """One admitted client; ``idle_since`` is None while one of its commands runs."""

    idle_since: float | None
    served: int = 0
    scope: trio.CancelScope = attrs.Factory(trio.CancelScope)


def _close_longest_idle(connections: list[_Connection]) -> bool:
    """Close the connection idle the longest to make room; False when every one is busy."""
    idle = [c for c in connections if c.idle_since is not None]
    if not idle:
        return False
    oldest = min(idle, key=lambda c: c.idle_since or 0.0)
    connections.remove(oldest)
    oldest.scope.cancel()
    structlog.get_logger().info(
        "control.idle_connection_closed",
        idle_s=round(trio.current_time() - (oldest.idle_since or 0.0), 1),
        reason="connection limit reached",
    )
    return True


async def _serve_connection(
    daemon: Daemon, stream: trio.SocketStream, connection: _Connection
) -> None:
    buffer = bytearray()
    async with stream:
        while True:
            assert connection.idle_since is not None
            # A complete request within REQUEST_TIMEOUT_S of connecting (however slowly its
            # bytes come); between requests, the next one within IDLE_TIMEOUT_S.
            wait = IDLE_TIMEOUT_S if connection.served else REQUEST_TIMEOUT_S
            data = b""
            with trio.move_on_at(connection.idle_since + wait):
                data = await stream.receive_some(65536)
            if not data:  # closed by the client, or idle too long
                return
            buffer += data
            while (end := buffer.find(b"\n")) >= 0:
                line = bytes(buffer[:end])
                del buffer[: end + 1]
                connection.idle_since = None
                reply = await dispatch(daemon, line)
                connection.served += 1
                # Waiting for the client to read is idleness too: it may be closed for another.
                connection.idle_since = trio.current_time()
                with trio.fail_after(IDLE_TIMEOUT_S):
                    await stream.send_all(encode_reply(reply))
                connection.idle_since = trio.current_time()
            if len(buffer) > MAX_REQUEST_BYTES:
                with trio.move_on_after(IDLE_TIMEOUT_S):
                    await stream.send_all(
                        encode_reply(_error(f"request longer than {MAX_REQUEST_BYTES} bytes"))
                    )
                return


def encode_reply(reply: dict[str, Any]) -> bytes:
    try:
        text = json.dumps(reply, default=_json_default, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        text = json.dumps(_error(f"reply is not JSON-serialisable: {exc}"))
    return text.encode() + b"\n"


def _json_default(value: Any) -> Any:
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if hasattr(value, "__attrs_attrs__"):
        import attrs

        return attrs.asdict(value)
    return str(value)


def _error(message: str) -> dict[str, Any]:
    return {"ok": False, "error": " ".join(message.split())}


async def dispatch(daemon: Daemon, line: bytes) -> dict[str, Any]:
    """Decode one request line, run its command, and build the reply."""
    try:
        request = json.loads(line)
    except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
        return _error("request is not valid JSON")
    if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
        return _error('request must be an object like {"cmd": "status", "argv": []}')
    name, argv = request["cmd"], request.get("argv", [])
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        return _error("argv must be a list of strings")
    found = daemon.commands.get(name)
    if found is None:
        return _error(
            f"unknown command {name!r}{did_you_mean(name, list(daemon.commands))}; try 'help'"
        )
    plugin, command = found
    peer = current_peer()
    log = structlog.get_logger().bind(
        plugin=plugin, command=name, os_user=peer.user if peer is not None else None
    )
    try:
        reply = await command.handler(list(argv))
    except AdminCommandError as exc:
        return _error(str(exc))
    except Exception as exc:
        log.error("control.command_failed", error=describe(exc), traceback=traceback.format_exc())
        return _error(f"{name} failed: {describe(exc)}")
    if not isinstance(reply, AdminReply):
        reply = AdminReply(data=reply)
    log.debug("control.command_done")
    return {"ok": True, "data": reply.data, "text": reply.text}


# ------------------------------------------------------------------------------------------
# Built-in commands
# ------------------------------------------------------------------------------------------


def status_data(daemon: Daemon) -> dict[str, Any]:
    """The data of ``gatewayctl status``."""
    gw = daemon.gateway
    plugins: dict[str, dict[str, Any]] = {
        name: {"state": "loaded", "restarts": 0, "tasks": []} for name in plugin_names(daemon.pm)
    }
    plugins.setdefault("core", {"state": "loaded", "restarts": 0, "tasks": []})
    for task in daemon.supervisor.snapshot():
        entry = plugins.setdefault(task["plugin"], {"state": "loaded", "restarts": 0, "tasks": []})
        entry["tasks"].append(task)
        entry["restarts"] += task["restarts"]
    for entry in plugins.values():
        states = [t["state"] for t in entry["tasks"]]
        if states:
            entry["state"] = min(
                states, key=lambda s: _STATE_ORDER.index(s) if s in _STATE_ORDER else 0
            )

    def failed(plugin: str, exc: Exception) -> None:
        plugins.setdefault(plugin, {})["status"] = {"error": describe(exc)}

    for plugin, fragment in call_each(daemon.pm, "gateway_status", gateway=gw, on_error=failed):
        plugins.setdefault(plugin, {})["status"] = fragment
    for plugin, fragment in object_statistics(daemon.registered):
        entry = plugins.setdefault(plugin, {})
        entry["status"] = {**(entry.get("status") or {}), **fragment}
    queues = {}
    if gw.outbox is not None:
        for channel in gw.channels:
            try:
                queues[channel] = gw.outbox.depth(channel)
            except Exception as exc:
                queues[channel] = f"error: {describe(exc)}"
    return {
        "version": gateway.__version__,
        "state": daemon.state,
        "pid": os.getpid(),
        "uptime_s": round(time.time() - gw.started_at, 1),
        "config": str(daemon.config_path),
        "reloads": daemon.reloads,
        "plugins": plugins,
        "queues": queues,
        "metrics": gw.metrics.snapshot(),
        "gc": {
            "frozen_objects": gc.get_freeze_count(),
            "collections": [g["collections"] for g in gc.get_stats()],
        },
    }


def object_statistics(registered: RegisteredView) -> list[tuple[str, dict[str, Any]]]:
    """``statistics()`` of the services, sources and channels each plugin registered.

    A plugin's objects hold their own counters; the core reaches them through what they
    registered, not through a hook that would have to find them again. One object's figures
    go at the top of the plugin's fragment, several are keyed by the object's ``name``.
    """
    by_plugin: dict[str, list[Any]] = {}
    for group in (registered.services, registered.sources, registered.channels):
        for plugin, obj in group:
            if callable(getattr(obj, "statistics", None)):
                by_plugin.setdefault(plugin, []).append(obj)
    result = []
    for plugin, objects in by_plugin.items():
        fragment: dict[str, Any] = {}
        for obj in objects:
            try:
                figures = dict(obj.statistics())
            except Exception as exc:
                figures = {"error": describe(exc)}
            if len(objects) == 1:
                fragment.update(figures)
            else:
                fragment[str(getattr(obj, "name", type(obj).__name__))] = figures
        result.append((plugin, fragment))
    return result


def status_text(data: dict[str, Any]) -> str:
    lines = [
        f"gatewayd {data['version']}  {data['state']}  pid {data['pid']}  up {_duration(data['uptime_s'])}",
        f"config {data['config']}  (reloaded {data['reloads']}x)",
        "",
        "plugins:",
    ]
    for name, entry in data["plugins"].items():
        restarts = f"  restarts {entry.get('restarts', 0)}" if entry.get("restarts") else ""
        lines.append(f"  {name:<24} {entry.get('state', '?'):<11}{restarts}".rstrip())
        for task in entry.get("tasks", []):
            error = (
                f"  last error: {task['last_error']}"
                if task["last_error"] and task["state"] != "running"
                else ""
            )
            lines.append(f"    {task['kind']:<8} {task['name']:<22} {task['state']}{error}")
        if "status" in entry:
            lines.extend(_fragment_lines(entry["status"]))
    if data["queues"]:
        lines.append("")
        lines.append("queues:")
        lines.extend(f"  {name:<24} {depth}" for name, depth in data["queues"].items())
    counters = data["metrics"].get("counters", {})
    if counters:
        lines.append("")
        lines.append("counters:")
        for name, value in counters.items():
            if isinstance(value, dict):
                lines.extend(f"  {name}{{{label}}} {v}" for label, v in value.items())
            else:
                lines.append(f"  {name} {value}")
    return "\n".join(lines)


def _flatten(value: Any, prefix: str = "") -> list[str]:
    """``{"a": {"b": 1}, "c": [1, 2]}`` -> ``["a.b=1", "c=[1, 2]"]`` (empty dicts omitted)."""
    if isinstance(value, dict):
        out = []
        for key, item in value.items():
            out.extend(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    text = (
        json.dumps(value, default=str, ensure_ascii=False) if not isinstance(value, str) else value
    )
    return [f"{prefix}={text}" if prefix else text]


def _fragment_lines(fragment: Any, width: int = 100) -> list[str]:
    """A plugin's status fragment as ``key=value`` items under its plugin, wrapped by item."""
    lines: list[str] = []
    current = ""
    for item in _flatten(fragment):
        if current and len(current) + 1 + len(item) > width - 4:
            lines.append("    " + current)
            current = item
        else:
            current = f"{current} {item}" if current else item
    if current:
        lines.append("    " + current)
    return lines


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return (f"{days}d " if days else "") + f"{hours:02d}:{minutes:02d}:{secs:02d}"


def _check_config_and_files(daemon: Daemon, path: Path) -> ConfigError | None:
    """The configuration at ``path``, then the files it names (what ``--check-config`` does)."""
    error = daemon.check_config(path)
    if error is not None:
        return error
    try:
        problems = check_named_files(load_config(path, daemon.pm), daemon.pm)
    except ConfigError as exc:  # the file changed between the two reads
        return exc
    return ConfigError(problems) if problems else None


def builtin_commands(daemon: Daemon) -> list[AdminCommand]:
    """status, plugins, reload, config check, help."""
    checks = trio.CapacityLimiter(1)  # one config check at a time (each may read big files)

    async def status(argv: list[str]) -> AdminReply:
        data = status_data(daemon)
        return AdminReply(data=data, text=status_text(data))

    async def plugins(argv: list[str]) -> AdminReply:
        data = [
            {"name": name, "module": getattr(obj, "__name__", type(obj).__name__)}
            for name, obj in daemon.pm.list_name_plugin()
        ]
        text = "\n".join(f"{p['name']:<24} {p['module']}" for p in data)
        return AdminReply(data=data, text=text)

    async def reload(argv: list[str]) -> AdminReply:
        error = daemon.reload(reason="gatewayctl")
        if error is not None:
            problems = "; ".join(format_problem(p) for p in error.problems)
            raise AdminCommandError(f"configuration not reloaded, previous one kept: {problems}")
        pending = daemon.restart_required
        text = "configuration reloaded"
        if pending:
            text += f"; these changes need a restart: {', '.join(pending)}"
        return AdminReply(
            data={"reloaded": True, "reloads": daemon.reloads, "restart_required": pending},
            text=text,
        )

    async def config(argv: list[str]) -> AdminReply:
        if not argv or argv[0] != "check" or len(argv) > 2:
            raise AdminCommandError("usage: config check [PATH]")
        path = Path(argv[1]) if len(argv) == 2 else daemon.config_path
        # Off the event loop: the named files (a profile file of millions of rows) are read too.
        error = await trio.to_thread.run_sync(_check_config_and_files, daemon, path, limiter=checks)
        if error is None:
            return AdminReply(
                data={"ok": True, "path": str(path), "problems": []}, text=f"config ok: {path}"
            )
        problems = [format_problem(p) for p in error.problems]
        return AdminReply(
            data={"ok": False, "path": str(path), "problems": problems},
            text="\n".join([*problems, f"{len(problems)} problem(s) in {path}"]),
        )

    async def help_(argv: list[str]) -> AdminReply:
        data = {
            name: {"plugin": plugin, "help": command.help, "usage": command.usage}
            for name, (plugin, command) in sorted(daemon.commands.items())
        }
        lines = []
        for name, c in data.items():
            usage = f"{name} {c['usage']}" if c["usage"] else name
            if len(usage) <= 38:
                lines.append(f"{usage:<40}{c['help']}")
            else:  # long usage: the help goes on its own line
                lines.extend([usage, f"    {c['help']}"])
        text = "\n".join(lines)
        return AdminReply(data=data, text=text)

    return [
        AdminCommand(
            name="status",
            help="uptime, version, plugins and their state, queues, counters",
            handler=status,
        ),
        AdminCommand(name="plugins", help="registered plugins", handler=plugins),
        AdminCommand(
            name="reload", help="reload the configuration file (like SIGHUP)", handler=reload
        ),
        AdminCommand(
            name="config",
            help="validate the configuration file without applying it",
            handler=config,
            usage="check [PATH]",
        ),
        AdminCommand(name="help", help="list the commands", handler=help_),
    ]
