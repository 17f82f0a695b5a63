"""``gatewayctl``: the admin command line, a client of the daemon's control socket.

::

    gatewayctl [--socket PATH | --config PATH] [--json] [--timeout S] CMD [ARGS...] [-- WORDS...]

The options of gatewayctl itself are taken wherever they are (``gatewayctl status --json``);
the other words after ``CMD`` are passed to the daemon as ``argv``, so commands that plugins
register need no client code. Words after ``--`` go to the command as they are. Arguments naming an existing file (or an existing path written with a
slash) are sent as absolute paths: the daemon has another working directory.

Exit codes: 0 done; 1 the daemon refused (error reply, or a check that found problems);
2 the daemon could not be reached (not running, wrong socket, permission denied).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

DEFAULT_SOCKET = Path("/run/gateway/control.sock")
TIMEOUT_S = 60.0
EXIT_OK, EXIT_REFUSED, EXIT_UNREACHABLE = 0, 1, 2


class Unreachable(Exception):
    """The control socket could not be reached."""


def request(
    socket_path: Path | str,
    cmd: str,
    argv: list[str] | None = None,
    *,
    timeout: float | None = TIMEOUT_S,
) -> dict[str, Any]:
    """Send one request and return the decoded reply. Raises Unreachable."""
    payload = json.dumps({"cmd": cmd, "argv": argv or []}).encode() + b"\n"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(socket_path))
        except FileNotFoundError:
            raise Unreachable(
                f"gatewayd is not running (no control socket at {socket_path})"
            ) from None
        except ConnectionRefusedError:
            raise Unreachable(
                f"gatewayd is not running (nothing listening on {socket_path})"
            ) from None
        except PermissionError:
            raise Unreachable(
                f"permission denied on {socket_path} (are you in the gateway group?)"
            ) from None
        except OSError as exc:
            raise Unreachable(f"cannot connect to {socket_path}: {exc.strerror or exc}") from None
        try:
            try:
                sock.sendall(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the daemon refused and closed at once: its reason may wait to be read
            buffer = b""
            while b"\n" not in buffer:
                chunk = sock.recv(65536)
                if not chunk:
                    raise Unreachable("gatewayd closed the connection without replying")
                buffer += chunk
        except TimeoutError:
            raise Unreachable(
                f"gatewayd did not answer within {timeout:g}s (see --timeout)"
            ) from None
        except OSError as exc:
            raise Unreachable(f"connection to gatewayd failed: {exc.strerror or exc}") from None
    finally:
        sock.close()
    try:
        return json.loads(buffer.split(b"\n", 1)[0])
    except ValueError:
        raise Unreachable("gatewayd sent a reply that is not JSON") from None


def render(data: Any, indent: int = 0) -> str:
    """A readable, YAML-like rendering of JSON data, for replies without ``text``."""
    pad = "  " * indent
    if isinstance(data, dict):
        if not data:
            return pad + "(none)"
        lines = []
        for key, value in data.items():
            if isinstance(value, dict | list) and value:
                lines.append(f"{pad}{key}:")
                lines.append(render(value, indent + 1))
            else:
                lines.append(f"{pad}{key}: {_scalar(value)}")
        return "\n".join(lines)
    if isinstance(data, list):
        if not data:
            return pad + "(none)"
        return "\n".join(
            (
                f"{pad}-\n{render(item, indent + 1)}"
                if isinstance(item, dict | list)
                else f"{pad}- {_scalar(item)}"
            )
            for item in data
        )
    return pad + _scalar(data)


def _scalar(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return "(none)"
    return str(value)


def default_socket(config: Path | None) -> Path:
    if config is not None:
        from gateway.config import peek_core

        return peek_core(config).control_socket
    env = os.environ.get("GATEWAY_CONTROL_SOCKET")
    return Path(env) if env else DEFAULT_SOCKET


def _absolutise(argv: list[str]) -> list[str]:
    out = []
    for arg in argv:
        # Files only, or paths written as paths: a campaign named like a directory stays a name.
        is_path = os.path.isfile(arg) or (os.sep in arg and os.path.exists(arg))
        if arg and not arg.startswith("-") and not os.path.isabs(arg) and is_path:
            arg = os.path.abspath(arg)
        out.append(arg)
    return out


#: gatewayctl's own options: flags, and options that take a value (``--x V`` or ``--x=V``).
_GLOBAL_FLAGS = ("--json", "-h", "--help")
_GLOBAL_WITH_VALUE = ("--socket", "--config", "--timeout")


def split_global_options(argv: list[str]) -> tuple[list[str], list[str]]:
    """``(gatewayctl's options, command words)``: options are taken from anywhere before ``--``."""
    options: list[str] = []
    words: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            words.extend(argv[i + 1 :])
            break
        if arg in _GLOBAL_FLAGS:
            options.append(arg)
        elif arg.split("=", 1)[0] in _GLOBAL_WITH_VALUE:
            options.append(arg)
            if "=" not in arg and i + 1 < len(argv):
                options.append(argv[i + 1])
                i += 1
        else:
            words.append(arg)
        i += 1
    return options, words


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="gatewayctl",
        description="Talk to a running gatewayd over its control socket. 'gatewayctl help' lists the commands.",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--socket",
        type=Path,
        help=f"control socket (default $GATEWAY_CONTROL_SOCKET or {DEFAULT_SOCKET})",
    )
    where.add_argument(
        "--config", type=Path, help="read the control socket path from this gateway.toml"
    )
    parser.add_argument(
        "--json", action="store_true", help="print the reply data as JSON (for scripts)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=TIMEOUT_S,
        metavar="S",
        help=f"seconds to wait for the reply (default {TIMEOUT_S:g}; 0: wait forever)",
    )
    parser.add_argument("cmd", help="command, e.g. status, plugins, reload, config, help")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the command")
    options, words = split_global_options(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(options + words[:1])
    args.args = words[1:]
    try:
        path = args.socket or default_socket(args.config)
    except Exception as exc:  # ConfigError from --config
        print(f"gatewayctl: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    try:
        if args.cmd == "dnd" and args.args[:1] == ["import"]:  # the client reads the file
            from gateway import ctl_dnd

            def send(cmd: str, argv: list[str]) -> dict[str, Any]:
                return request(path, cmd, argv, timeout=args.timeout or None)

            return ctl_dnd.main(send, args.args[1:], as_json=args.json)
        reply = request(path, args.cmd, _absolutise(args.args), timeout=args.timeout or None)
    except Unreachable as exc:
        print(f"gatewayctl: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if not reply.get("ok"):
        error = reply.get("error", "unknown error")
        if args.json:
            print(json.dumps({"ok": False, "error": error}))
        print(f"gatewayctl: {error}", file=sys.stderr)
        return EXIT_REFUSED
    data = reply.get("data")
    if args.json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        text = reply.get("text")
        print(text if text is not None else render(data))
    if isinstance(data, dict) and data.get("ok") is False:
        return EXIT_REFUSED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
