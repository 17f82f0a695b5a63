"""The control socket's peer credentials come from the kernel (SO_PEERCRED)."""

from __future__ import annotations

import os
import pwd
import socket

import trio
import trio.lowlevel

from gateway.control_peer import current_peer, peer_of, read_peer, set_peer


def test_read_peer_names_this_process() -> None:
    """On a Unix socket pair the peer is this very process: its pid, uid and login name."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        peer = read_peer(a)
    assert (peer.pid, peer.uid, peer.gid) == (os.getpid(), os.getuid(), os.getgid())
    assert peer.user == pwd.getpwuid(os.getuid()).pw_name
    assert peer.is_root == (os.getuid() == 0)


def test_unknown_uid_is_named_by_number() -> None:
    """A uid without a passwd entry is named by its number, never taken for someone else."""
    peer = peer_of(pid=1, uid=4_000_000_123, gid=4_000_000_123)
    assert peer.user == "4000000123" and not peer.is_root


async def test_peer_is_per_task() -> None:
    """Each connection task sees its own peer; other tasks (and the caller) see none."""
    seen: dict[str, object] = {}

    async def connection(name: str, uid: int) -> None:
        set_peer(peer_of(pid=uid, uid=uid, gid=uid))
        await trio.lowlevel.checkpoint()
        peer = current_peer()
        seen[name] = peer.uid if peer else None

    async with trio.open_nursery() as nursery:
        nursery.start_soon(connection, "a", 0)
        nursery.start_soon(connection, "b", 65534)
    assert seen == {"a": 0, "b": 65534} and current_peer() is None
