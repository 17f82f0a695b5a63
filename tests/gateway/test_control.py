"""The admin control socket and gatewayctl, against an in-process daemon and a real process."""

from __future__ import annotations

import json
import os
import socket
import stat
from pathlib import Path

import pytest
import trio

from gateway import hookimpl
from gateway.contracts import AdminCommand, AdminReply
from gateway.ctl import main as ctl_main
from gateway.ctl import render
from gateway.daemon import Daemon
from gateway.errors import AdminCommandError, GatewayError
from tests.fakes.daemon_process import run_ctl


class EchoPlugin:
    """Registers ``echo`` (returns argv), ``fail`` (raises) and ``refuse`` (AdminCommandError)."""

    @hookimpl
    def gateway_admin_commands(self, gateway):
        async def echo(argv):
            return AdminReply(data={"argv": argv}, text=" ".join(argv))

        async def fail(argv):
            raise KeyError("surprise")

        async def refuse(argv):
            raise AdminCommandError("no such campaign: x")

        async def slow(argv):
            await trio.sleep(5)
            return AdminReply(data="late")

        return [
            AdminCommand(name="echo", help="echo words", handler=echo, usage="WORDS..."),
            AdminCommand(name="fail", help="always fails", handler=fail),
            AdminCommand(name="refuse", help="always refuses", handler=refuse),
            AdminCommand(name="slow", help="takes 5 s", handler=slow),
        ]

    @hookimpl
    def gateway_status(self, gateway):
        return {"queue": 3}


@pytest.fixture
async def daemon(gateway_config, nursery, captured_logs):
    d = Daemon.from_file(gateway_config(), extra_plugins=(("echo", EchoPlugin()),))
    nursery.start_soon(d.run)
    await d.control_ready.wait()
    yield d
    d.request_stop("test over")


async def ask(path: Path, *requests: bytes) -> list[dict]:
    """Send raw request lines on one connection; return the decoded replies."""
    stream = await trio.open_unix_socket(str(path))
    async with stream:
        await stream.send_all(b"".join(requests))
        data = b""
        while data.count(b"\n") < len(requests):
            chunk = await stream.receive_some(65536)
            assert chunk, "server closed early"
            data += chunk
    return [json.loads(line) for line in data.splitlines()]


def req(cmd: str, *argv: str) -> bytes:
    return json.dumps({"cmd": cmd, "argv": list(argv)}).encode() + b"\n"


async def test_socket_mode_and_status(daemon):
    """The socket has mode 0660 and status reports version, uptime, plugins and their status fragment."""
    path = daemon.config.gateway.control_socket
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
    (reply,) = await ask(path, req("status"))
    assert reply["ok"] is True
    data = reply["data"]
    assert data["version"] == "0.1.0" and data["state"] == "running" and data["uptime_s"] >= 0
    assert data["plugins"]["echo"] == {
        "state": "loaded",
        "restarts": 0,
        "tasks": [],
        "status": {"queue": 3},
    }
    assert daemon.gateway.hook.gateway_status  # fragments come from the gateway_status hook
    assert "plugins:" in reply["text"]


async def test_plugin_command_and_errors_keep_the_server_up(daemon):
    """A plugin command gets argv; a raising handler is an error reply; the same connection goes on."""
    path = daemon.config.gateway.control_socket
    replies = await ask(
        path,
        req("echo", "a", "b"),
        req("fail"),
        req("refuse"),
        b"not json\n",
        req("stauts"),
        req("echo"),
    )
    assert replies[0] == {"ok": True, "data": {"argv": ["a", "b"]}, "text": "a b"}
    assert replies[1] == {"ok": False, "error": "fail failed: KeyError: 'surprise'"}
    assert replies[2] == {"ok": False, "error": "no such campaign: x"}
    assert replies[3] == {"ok": False, "error": "request is not valid JSON"}
    assert replies[4] == {
        "ok": False,
        "error": "unknown command 'stauts' (did you mean 'status'?); try 'help'",
    }
    assert replies[5]["ok"] is True


async def test_help_and_plugins_list_everything(daemon):
    """help lists built-in and plugin commands with their owner; plugins lists registered plugins."""
    path = daemon.config.gateway.control_socket
    help_reply, plugins_reply = await ask(path, req("help"), req("plugins"))
    assert {"status", "plugins", "reload", "config", "help", "echo", "fail"} <= set(
        help_reply["data"]
    )
    assert help_reply["data"]["echo"] == {
        "plugin": "echo",
        "help": "echo words",
        "usage": "WORDS...",
    }
    assert "echo" in [p["name"] for p in plugins_reply["data"]]


async def test_config_check_and_reload(daemon):
    """config check validates the file on disk without applying; reload refuses a broken file."""
    path = daemon.config.gateway.control_socket
    config_file = daemon.config_path
    (ok,) = await ask(path, req("config", "check"))
    assert ok["data"] == {"ok": True, "path": str(config_file), "problems": []}
    good = config_file.read_text()
    config_file.write_text(good + "\n[bogus]\n")
    check, reload = await ask(path, req("config", "check"), req("reload"))
    assert check["data"]["ok"] is False and check["data"]["problems"] == [
        f"{config_file}: bogus: unknown table"
    ]
    assert (
        reload["ok"] is False
        and "previous one kept" in reload["error"]
        and "\n" not in reload["error"]
    )
    assert daemon.reloads == 0
    config_file.write_text(
        good.replace(
            'drain_deadline = "5s"', 'drain_deadline = "7s"\nsqlite_synchronous = "normal"'
        )
    )
    (reload,) = await ask(path, req("reload"))
    assert reload["ok"] and daemon.reloads == 1
    assert daemon.config.gateway.drain_deadline == 7.0  # applied at once
    assert reload["data"]["restart_required"] == ["gateway.sqlite_synchronous"]
    assert (
        reload["text"]
        == "configuration reloaded; these changes need a restart: gateway.sqlite_synchronous"
    )
    (usage,) = await ask(path, req("config", "bogus"))
    assert usage == {"ok": False, "error": "usage: config check [PATH]"}


async def test_gatewayctl_client_in_process(daemon, capsys, short_tmp):
    """gatewayctl prints text, --json data, exit 1 on refusal; existing relative file args become absolute."""
    sock = str(daemon.config.gateway.control_socket)
    (short_tmp / "targets.csv").write_text("x")
    cwd = os.getcwd()
    os.chdir(short_tmp)
    try:
        code = await trio.to_thread.run_sync(
            ctl_main, ["--socket", sock, "echo", "targets.csv", "nofile.csv"]
        )
    finally:
        os.chdir(cwd)
    assert code == 0
    assert capsys.readouterr().out == f"{short_tmp / 'targets.csv'} nofile.csv\n"
    code = await trio.to_thread.run_sync(ctl_main, ["--socket", sock, "--json", "status"])
    assert code == 0 and json.loads(capsys.readouterr().out)["state"] == "running"
    code = await trio.to_thread.run_sync(ctl_main, ["--socket", sock, "refuse"])
    captured = capsys.readouterr()
    assert code == 1 and captured.err == "gatewayctl: no such campaign: x\n"


async def test_stale_socket_is_replaced_and_a_second_daemon_refused(
    gateway_config, short_tmp, nursery, captured_logs
):
    """A leftover socket file is removed at start; a second daemon on the same state or socket is refused early."""
    config = gateway_config()
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(short_tmp / "control.sock"))
    stale.close()  # file remains, nobody listens
    opened = []

    class StoreProbe:
        def __init__(self, name):
            self.name = name

        @hookimpl
        def gateway_stores(self, gateway):
            opened.append(self.name)
            return []

    first = Daemon.from_file(config, extra_plugins=(("probe", StoreProbe("first")),))
    nursery.start_soon(first.run)
    await first.control_ready.wait()
    second = Daemon.from_file(config, extra_plugins=(("probe", StoreProbe("second")),))
    with pytest.raises(
        GatewayError, match=rf"another gatewayd \(pid {os.getpid()}\) uses the state directory"
    ):
        await second.run()
    other_state = config.read_text().replace(str(short_tmp / "state"), str(short_tmp / "state2"))
    (short_tmp / "other.toml").write_text(other_state)
    third = Daemon.from_file(
        short_tmp / "other.toml", extra_plugins=(("probe", StoreProbe("third")),)
    )
    with pytest.raises(GatewayError, match="another gatewayd is listening"):
        await third.run()
    assert opened == ["first"]  # the refused daemons never opened their stores
    first.request_stop()


def test_render_is_readable():
    """Replies without text are rendered as indented key: value lines."""
    assert (
        render({"a": 1, "b": {"c": [1, 2]}, "d": None, "e": True})
        == "a: 1\nb:\n  c:\n    - 1\n    - 2\nd: -\ne: yes"
    )


def test_gatewayctl_status_json_against_running_daemon(gateway_config, gatewayd):
    """gatewayctl --config PATH --json status prints the status data of a running gatewayd."""
    config = gateway_config()
    proc = gatewayd(config)
    proc.wait_ready()
    result = run_ctl("--config", str(config), "--json", "status")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["state"] == "running" and data["pid"] == proc.proc.pid
    text = run_ctl("--socket", str(proc.socket_path), "status")
    assert text.returncode == 0 and text.stdout.startswith("gatewayd 0.1.0  running")


def test_gatewayctl_fails_cleanly_when_no_daemon_runs(short_tmp):
    """With no daemon: exit 2, one line on stderr, nothing on stdout."""
    result = run_ctl(
        "--json", "status", env={"GATEWAY_CONTROL_SOCKET": str(short_tmp / "none.sock")}
    )
    assert result.returncode == 2 and result.stdout == ""
    assert (
        result.stderr
        == f"gatewayctl: gatewayd is not running (no control socket at {short_tmp / 'none.sock'})\n"
    )


async def test_gatewayctl_timeout(daemon, capsys):
    """A reply slower than --timeout is a clean exit 2; the daemon is unaffected."""
    sock = str(daemon.config.gateway.control_socket)
    code = await trio.to_thread.run_sync(ctl_main, ["--socket", sock, "--timeout", "0.2", "slow"])
    assert (
        code == 2
        and capsys.readouterr().err
        == "gatewayctl: gatewayd did not answer within 0.2s (see --timeout)\n"
    )
    (reply,) = await ask(daemon.config.gateway.control_socket, req("status"))
    assert reply["ok"]


def test_status_text_flattens_plugin_fragments():
    """Plugin status fragments read as wrapped key=value lines, nested keys dotted."""
    from gateway.control import _fragment_lines

    lines = _fragment_lines(
        {"binds": {"sim": "bound"}, "window": [1, 2], "note": "ok", "n": 3}, width=30
    )
    assert lines == ["    binds.sim=bound", "    window=[1, 2] note=ok n=3"]


async def test_hostile_clients_do_not_stop_the_server(daemon):
    """An endless line, deeply nested JSON and a client hanging up mid-reply; status still answers."""
    from gateway import control

    path = daemon.config.gateway.control_socket
    stream = await trio.open_unix_socket(str(path))
    async with stream:
        data = b""
        with trio.move_on_after(10):
            try:
                for _ in range(control.MAX_REQUEST_BYTES // 65536 + 2):
                    await stream.send_all(b"x" * 65536)
                while chunk := await stream.receive_some(65536):
                    data += chunk
            except trio.BrokenResourceError:
                pass  # the server closed after its error reply, with our bytes unread: a reset
    assert not data or json.loads(data)["error"].startswith("request longer than")
    (reply,) = await ask(path, b"[" * 100_000 + b"]" * 100_000 + b"\n")
    assert reply == {"ok": False, "error": "request is not valid JSON"}
    for _ in range(20):
        stream = await trio.open_unix_socket(str(path))
        await stream.send_all(req("status"))
        await stream.aclose()
    (reply,) = await ask(path, req("status"))
    assert reply["ok"]


async def test_connections_are_capped_and_idle_ones_closed(daemon, monkeypatch, captured_logs):
    """Over MAX_CONNECTIONS busy ones a client gets an error reply; idle ones make room; idle too long is closed."""
    from gateway import control

    monkeypatch.setattr(control, "MAX_CONNECTIONS", 2)
    path = str(daemon.config.gateway.control_socket)

    async def answered_once() -> trio.SocketStream:
        stream = await trio.open_unix_socket(path)
        await stream.send_all(req("echo", "x"))
        with trio.fail_after(10):
            assert json.loads(await stream.receive_some(65536))["ok"]
        return stream

    busy = []
    for _ in range(2):  # both running a 5 s command: nothing to close for a third
        stream = await trio.open_unix_socket(path)
        await stream.send_all(req("slow"))
        busy.append(stream)
    await trio.sleep(0.2)
    extra = await trio.open_unix_socket(path)
    async with extra:
        with trio.fail_after(10):
            line = await extra.receive_some(65536)
    assert json.loads(line)["error"].startswith("too many control connections")
    for s in busy:
        await s.aclose()
    await trio.sleep(0.2)  # the slow commands finish in the background; their slots stay taken
    monkeypatch.setattr(control, "MAX_CONNECTIONS", 32)
    monkeypatch.setattr(control, "IDLE_TIMEOUT_S", 0.3)
    stream = await answered_once()
    async with stream:
        with trio.fail_after(10):  # closed by the server once idle for 0.3 s
            assert await stream.receive_some(10) == b""
    (reply,) = await ask(Path(path), req("status"))
    assert reply["ok"] and captured_logs.events("control.too_many_connections")


async def test_gatewayctl_global_options_anywhere(daemon, capsys):
    """--json, --socket and --timeout are taken after the command too; after '--' words go to the command."""
    sock = str(daemon.config.gateway.control_socket)
    code = await trio.to_thread.run_sync(ctl_main, ["status", "--json", "--socket", sock])
    assert code == 0 and json.loads(capsys.readouterr().out)["state"] == "running"
    code = await trio.to_thread.run_sync(
        ctl_main, ["echo", "a", f"--socket={sock}", "b", "--timeout", "5", "--json"]
    )
    assert code == 0 and json.loads(capsys.readouterr().out) == {"argv": ["a", "b"]}
    code = await trio.to_thread.run_sync(
        ctl_main, ["--socket", sock, "echo", "a", "--", "--json", "--timeout"]
    )
    assert code == 0 and capsys.readouterr().out == "a --json --timeout\n"


def test_gatewayctl_json_after_the_command_against_a_real_daemon(gateway_config, gatewayd):
    """`gatewayctl status --json` prints JSON from a running gatewayd (the option was ignored before)."""
    proc = gatewayd(gateway_config())
    proc.wait_ready()
    result = run_ctl("status", "--json", "--socket", str(proc.socket_path))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["pid"] == proc.proc.pid
    missing = run_ctl("--json")
    assert missing.returncode == 2 and "cmd" in missing.stderr


async def test_gatewayctl_shows_the_refusal_of_a_full_socket(daemon, monkeypatch, capsys):
    """When every connection is busy, gatewayctl prints the daemon's reason and exits 1 (not a broken pipe, exit 2)."""
    from gateway import control

    monkeypatch.setattr(control, "MAX_CONNECTIONS", 0)
    sock = str(daemon.config.gateway.control_socket)
    for _ in range(5):
        code = await trio.to_thread.run_sync(ctl_main, ["--socket", sock, "status"])
        err = capsys.readouterr().err
        assert code == 1 and err.startswith("gatewayctl: too many control connections"), err


async def test_config_check_reads_the_named_files(daemon, short_tmp):
    """`config check` over the socket also reads the files the configuration names (like --check-config)."""
    path = daemon.config.gateway.control_socket
    other = short_tmp / "other.toml"
    other.write_text(daemon.config_path.read_text() + '\n[profiles]\nfile = "missing.csv"\n')
    (check,) = await ask(path, req("config", "check", str(other)))
    assert check["data"]["ok"] is False
    assert check["data"]["problems"] == [
        f"{other}: profiles.file: {short_tmp / 'missing.csv'}: cannot open: No such file or directory"
    ]
