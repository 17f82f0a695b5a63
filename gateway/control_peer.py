"""Who is on the other end of the control socket: the peer's OS credentials.

The kernel records the uid, gid and pid of the process that connected to a Unix stream
socket (``SO_PEERCRED``, Linux ``unix(7)``); the client cannot forge them. The control
server (:mod:`gateway.control`) reads them once per connection and makes them the
:func:`current_peer` of every command that connection runs, so a handler can tell which
OS user asked (the staff component maps it to a 4A account: :mod:`gateway.staff.acting`).

A command run in-process (tests, the daemon itself) has no peer: :func:`current_peer`
returns None there.
"""

from __future__ import annotations

import contextvars
import grp
import os
import pwd
import socket
import struct
from typing import Protocol

import attrs

#: struct ucred: pid_t, uid_t, gid_t
_UCRED = struct.Struct("3i")


@attrs.frozen(kw_only=True)
class Peer:
    """The OS identity of a control-socket client, as the kernel saw it at connect()."""

    pid: int
    uid: int
    gid: int
    user: str  # the login name, or the uid in decimal when the uid has no passwd entry
    groups: frozenset[str]  # names of its primary and supplementary groups (from the group db)

    @property
    def is_root(self) -> bool:
        return self.uid == 0


_PEER: contextvars.ContextVar[Peer | None] = contextvars.ContextVar("control_peer", default=None)


def current_peer() -> Peer | None:
    """The peer of the control connection running this command; None in-process."""
    return _PEER.get()


def set_peer(peer: Peer | None) -> None:
    """Make ``peer`` the current peer of this task (the control server, per connection)."""
    _PEER.set(peer)


class _HasSockopt(Protocol):
    def getsockopt(self, level: int, option: int, buflen: int) -> bytes: ...


def read_peer(sock: _HasSockopt) -> Peer:
    """The credentials of ``sock``'s peer (blocking: the names come from the passwd and
    group databases, which may be remote). OSError where SO_PEERCRED is not available: the
    server then refuses the connection rather than serve a client it cannot name."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        raise OSError("SO_PEERCRED is not available on this system")
    raw = sock.getsockopt(socket.SOL_SOCKET, option, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    return peer_of(pid=pid, uid=uid, gid=gid)


def peer_of(*, pid: int, uid: int, gid: int) -> Peer:
    """A Peer with the user and group names of ``uid`` and ``gid`` looked up."""
    try:
        user = pwd.getpwuid(uid).pw_name
        gids = set(os.getgrouplist(user, gid))
    except KeyError:
        user, gids = str(uid), {gid}
    groups = set()
    for g in gids:
        try:
            groups.add(grp.getgrgid(g).gr_name)
        except KeyError:
            groups.add(str(g))
    return Peer(pid=pid, uid=uid, gid=gid, user=user, groups=frozenset(groups))
