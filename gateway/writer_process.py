"""The state database's writer connection in a process of its own (``[contact] state_writer``).

With the writer in a thread, every SQLite step gives the GIL up and takes it back: beside a
busy event loop the writer thread waited for the GIL about as long as it worked (40 % of its
active time, sampled with ``py-spy --native``), and under overload it was the path's limit.
Here the group commits of :class:`gateway.store.StateWriter` run in a child process with its
own connection (:mod:`gateway.writer_child`): the same :func:`gateway.sqlite_base.commit_batch`,
so the same transaction, the same savepoints and the same "ran before COMMIT" point. A batch
travels pickled: its appends (statement and rows) and its ops (a module-level function and its
arguments). A batch that does not pickle (an op that is a closure: the rare writers), or that
the child cannot read (an op of a module it cannot import), is committed by the parent's own
connection in a thread, as before; the two never write at the same time (the commit loop is
sequential).

Failure: should the child die, the parent cannot know whether the batches in flight committed;
contact control's memory and the database could then disagree. The writer therefore stops
(:class:`WriterProcessDied` out of the commit loop ends the daemon, whose restart recovers from
the database), rather than guess. The child exits when the parent's end of the socket closes
(the parent stopped, or was killed): it finishes the transaction it is in, then exits.

Wire: 4-byte big-endian length, then a pickle. Parent to child: ``(appends, [(fn, args)...])``.
Child to parent: ``("ready", None)`` once its connection is open; per batch ``("ran",
[(result, error)...])`` before COMMIT, then ``("done", None)``; ``("failed", exception)`` for
a batch that failed as a whole; ``("unreadable", text)`` for one it could not unpickle (nothing
written). The child takes batches in the order sent, each its own transaction; the parent
sends the next one while the previous one is in the child (see ``StateWriter._commit_remote``),
at most two in flight, and the answers come in order.
"""

from __future__ import annotations

import pickle
import socket
import struct
import subprocess
import sys
from typing import Any

import trio

from gateway.errors import StoreError, WriterProcessDied

_LEN = struct.Struct(">I")


def encode_batch(batch: Any) -> bytes | None:
    """The batch's wire form, or None when it does not pickle (an op that is a closure)."""
    try:
        body = pickle.dumps(
            (batch.appends, [(op[0], op[1]) for op in batch.ops]), protocol=pickle.HIGHEST_PROTOCOL
        )
    except (pickle.PicklingError, AttributeError, TypeError):
        return None
    return _LEN.pack(len(body)) + body


class RemoteWriter:
    """Parent side: one child process, one socket; :meth:`send` batches, :meth:`receive`
    their answers in order."""

    def __init__(self, path: str, synchronous: str) -> None:
        self.path = path
        self.synchronous = synchronous
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock: trio.socket.SocketType | None = None
        self._buffer = bytearray()
        self.batches = 0
        self.unreadable = 0  # batches the child could not unpickle (committed by the parent)
        self.dead: str | None = None
        #: op functions the process has run: a batch of only these cannot come back unreadable
        self.readable: set[Any] = set()

    @staticmethod
    def encode(batch: Any) -> bytes | None:
        """:func:`encode_batch`."""
        return encode_batch(batch)

    async def start(self) -> None:
        parent, child = socket.socketpair()
        try:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gateway.writer_child",
                    str(child.fileno()),
                    self.path,
                    self.synchronous,
                ],
                pass_fds=[child.fileno()],
                stdin=subprocess.DEVNULL,
            )
        finally:
            child.close()
        self.sock = trio.socket.from_stdlib_socket(parent)
        try:
            kind, detail = await self._receive()  # ("ready", None) once its connection is open
        except (OSError, EOFError) as exc:
            code = self.proc.poll()
            kind, detail = "failed", f"it exited (code {code}) before it was ready: {exc}"
        if kind != "ready":
            raise StoreError(f"state writer process for {self.path} did not start: {detail}")

    async def send(self, frame: bytes) -> None:
        """Send one batch (:func:`encode_batch`); WriterProcessDied if the process is gone."""
        if self.dead is not None:
            raise WriterProcessDied(self.dead)
        assert self.sock is not None
        try:
            await _send_all(self.sock, frame)
        except (OSError, EOFError, trio.ClosedResourceError) as exc:
            raise self._died(exc) from exc

    async def receive(self) -> tuple[str, Any]:
        """The next answer (``ran``, ``done``, ``failed``, ``unreadable``), in the order the
        batches were sent; WriterProcessDied if the process is gone."""
        if self.dead is not None:
            raise WriterProcessDied(self.dead)
        try:
            return await self._receive()
        except (OSError, EOFError, trio.ClosedResourceError) as exc:
            raise self._died(exc) from exc

    def _died(self, exc: BaseException) -> WriterProcessDied:
        code = self.proc.poll() if self.proc is not None else None
        self.dead = f"state writer process for {self.path} exited (code {code}): {exc!r}"
        return WriterProcessDied(self.dead)

    async def _receive(self) -> tuple[str, Any]:
        assert self.sock is not None
        buf = self._buffer
        while True:
            if len(buf) >= 4:
                (size,) = _LEN.unpack_from(buf)
                if len(buf) >= 4 + size:
                    message = pickle.loads(buf[4 : 4 + size])
                    del buf[: 4 + size]
                    return message
            data = await self.sock.recv(1 << 20)
            if not data:
                raise EOFError("the writer process closed its socket")
            buf += data

    async def aclose(self) -> None:
        """Close the socket (the child finishes and exits), wait for it."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        proc = self.proc
        if proc is not None:
            self.proc = None
            await trio.to_thread.run_sync(_wait_or_kill, proc)


async def _send_all(sock: Any, data: bytes) -> None:
    view = memoryview(data)
    while view:
        sent = await sock.send(view)
        view = view[sent:]


def _wait_or_kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
