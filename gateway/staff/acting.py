"""Who is acting: the staff account named by ``--as ACCOUNT`` on an admin command line.

The control socket is reachable only by the gateway group; within it, every command that
changes or reveals something names the 4A account it acts as, and the directory checks that
account (enabled, holding the permission) before the command runs.
"""

from __future__ import annotations

from gateway.errors import AdminCommandError


def split_actor(args: list[str]) -> tuple[list[str], str]:
    """``(the other words, the account)``; AdminCommandError when ``--as`` is missing."""
    words: list[str] = []
    actor = ""
    i = 0
    while i < len(args):
        if args[i] == "--as":
            if i + 1 >= len(args):
                raise AdminCommandError("--as needs a staff account")
            actor = args[i + 1]
            i += 2
            continue
        if args[i].startswith("--as="):
            actor = args[i].split("=", 1)[1]
        else:
            words.append(args[i])
        i += 1
    if not actor:
        raise AdminCommandError("name the staff account you act as: --as ACCOUNT")
    return words, actor
