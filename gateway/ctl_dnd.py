"""``gatewayctl dnd import CATEGORY FILE``: the client reads the file and streams it.

The daemon runs with its own privileges; if it opened a path given by a client, any user of
the control socket could make it read (and show in an error) a file that user cannot read.
So ``gatewayctl`` opens the file itself, with the user's privileges (``-`` reads standard
input), and sends whole lines in chunks to a staged upload
(``dnd import-begin`` / ``import-lines`` / ``import-commit``, see
:mod:`gateway.contact.admin`). The daemon checks every line as it arrives; the list is
replaced only when the whole file was accepted. Messages name line numbers, never line
content.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from typing import IO, Any

#: Raw bytes per chunk: JSON escaping at most sextuples them (control bytes as ``\\u0000``),
#: which stays under the control socket's 1 MiB request limit.
CHUNK_BYTES = 128 * 1024
#: A list line is a number, a reason and an expiry; a longer line is not a list.
MAX_LINE_BYTES = 4096

USAGE = (
    "usage: gatewayctl dnd import CATEGORY FILE [--scope S] [--source SRC] [--allow-empty]"
    " [--as ACCOUNT]"
)

Request = Callable[[str, list[str]], dict[str, Any]]


class ImportRefused(Exception):
    """The import was refused (by the client's own checks or by the daemon)."""


def chunks(handle: IO[bytes]) -> Iterator[str]:
    """Whole lines of ``handle`` as text, in chunks of about :data:`CHUNK_BYTES`."""
    parts: list[str] = []
    size = 0
    for number, raw in enumerate(handle, 1):
        if len(raw) > MAX_LINE_BYTES:
            raise ImportRefused(f"line {number}: longer than {MAX_LINE_BYTES} bytes")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ImportRefused(f"line {number}: not UTF-8 text") from None
        if not text.endswith("\n"):
            text += "\n"
        parts.append(text)
        size += len(raw)
        if size >= CHUNK_BYTES:
            yield "".join(parts)
            parts, size = [], 0
    if parts:
        yield "".join(parts)


def split_args(argv: list[str]) -> tuple[str, str, list[str]]:
    """``CATEGORY FILE`` and the options to pass on to ``import-begin``."""
    words, options = [], []
    it = iter(argv)
    for arg in it:
        if arg == "--allow-empty":
            options.append(arg)
        elif arg in ("--scope", "--source", "--as"):
            value = next(it, None)
            if value is None:
                raise ImportRefused(f"{arg} needs a value")
            options += [arg, value]
        elif arg.startswith("--"):
            raise ImportRefused(f"unknown option {arg}; {USAGE}")
        else:
            words.append(arg)
    if len(words) != 2:
        raise ImportRefused(USAGE)
    return words[0], words[1], options


def run_import(send: Request, argv: list[str], stdin: IO[bytes] | None = None) -> dict[str, Any]:
    """Stream the file; returns the daemon's final reply. Raises ImportRefused.

    ``send(cmd, argv)`` sends one request and returns the reply (it may raise the caller's
    own exception for an unreachable daemon, which is passed through).
    """
    category, path, options = split_args(argv)

    def ok(reply: dict[str, Any]) -> dict[str, Any]:
        if not reply.get("ok"):
            raise ImportRefused(str(reply.get("error", "unknown error")))
        return reply

    try:
        handle: IO[bytes] = (stdin or sys.stdin.buffer) if path == "-" else open(path, "rb")
    except OSError as exc:
        raise ImportRefused(f"cannot read {path}: {exc.strerror or exc}") from None
    with handle:
        begun = ok(send("dnd", ["import-begin", category, *options]))
        upload = str(begun["data"]["upload"])
        try:
            for seq, text in enumerate(chunks(handle)):
                ok(send("dnd", ["import-lines", upload, str(seq), text]))
        except ImportRefused:
            send("dnd", ["import-abort", upload])
            raise
        except OSError as exc:
            send("dnd", ["import-abort", upload])
            raise ImportRefused(f"cannot read {path}: {exc.strerror or exc}") from None
    # The account acting (--as) is checked for dnd.edit when the list is replaced too.
    acting = [w for i, w in enumerate(options) if w == "--as" or options[i - 1 : i] == ["--as"]]
    return ok(send("dnd", ["import-commit", upload, *acting]))


def main(send: Request, argv: list[str], *, as_json: bool) -> int:
    """The ``dnd import`` command of gatewayctl; exit 0 done, 1 refused."""
    try:
        reply = run_import(send, argv)
    except ImportRefused as exc:
        if as_json:
            print(json.dumps({"ok": False, "error": str(exc)}))
        print(f"gatewayctl: {exc}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(reply.get("data"), indent=2, ensure_ascii=False))
    else:
        print(reply.get("text") or reply.get("data"))
    return 0
