"""A thin Trio client over the RESP2 codec: one connection, commands and pipelines.

:func:`open_redis` connects and yields a :class:`RedisConnection`. Calls are serialised by
a lock (one request/response exchange at a time); :meth:`RedisConnection.pipeline` sends a
whole batch in one write and reads all replies, which is how the contact-control backend
makes thousands of EVALSHA calls per round trip.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import trio

from gateway.resp.codec import NEED_DATA, ErrorReply, RespParser, encode_command


class RedisReplyError(Exception):
    """Redis answered a single command with an error reply (``.reply`` holds it)."""

    def __init__(self, reply: ErrorReply) -> None:
        self.reply = reply
        super().__init__(reply.message)


class RedisConnection:
    def __init__(self, stream: trio.abc.Stream) -> None:
        self._stream = stream
        self._parser = RespParser()
        self._lock = trio.Lock()
        self._broken = False

    async def _read(self, count: int) -> list[Any]:
        replies: list[Any] = []
        parser = self._parser
        while len(replies) < count:
            reply = parser.next_reply()
            if reply is NEED_DATA:
                data = await self._stream.receive_some(256 * 1024)
                if not data:
                    raise trio.BrokenResourceError("redis closed the connection")
                parser.receive_data(data)
                continue
            replies.append(reply)
        return replies

    async def pipeline(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Send every command in one write; return the replies in order (errors as values)."""
        if not commands:
            return []
        payload = b"".join(encode_command(*c) for c in commands)
        async with self._lock:
            if self._broken:
                raise trio.BrokenResourceError(
                    "redis connection unusable after an interrupted call"
                )
            try:
                await self._stream.send_all(payload)
                return await self._read(len(commands))
            except BaseException:
                # cancelled or failed mid-exchange: replies would be out of step from now on
                self._broken = True
                raise

    async def execute(self, *args: Any) -> Any:
        """One command; an error reply raises :class:`RedisReplyError`."""
        (reply,) = await self.pipeline([args])
        if isinstance(reply, ErrorReply):
            raise RedisReplyError(reply)
        return reply

    async def aclose(self) -> None:
        await self._stream.aclose()


@asynccontextmanager
async def open_redis(host: str, port: int) -> AsyncIterator[RedisConnection]:
    stream = await trio.open_tcp_stream(host, port)
    conn = RedisConnection(stream)
    try:
        yield conn
    finally:
        with trio.CancelScope(shield=True):
            await conn.aclose()
