"""The SMTP listener for approval replies: aiosmtpd on an asyncio island, owned by a Trio task.

aiosmtpd runs on asyncio, and the gateway on Trio. We run it in one worker thread with its
own asyncio loop, started and stopped by a Trio task (:func:`serve_smtp`), rather than through
trio-asyncio: the island is small (one server, one callback), has no shared state with the
Trio side except through that callback, and a plain thread keeps trio-asyncio's loop
replacement and its extra dependency out of the daemon. The Trio task binds the socket (so port
0 works and a bind error is a Trio-side error), hands it to the thread, waits until the server
is listening, and on cancellation stops the loop and waits for the thread to finish.

Each message is handed to Trio with ``trio.from_thread.run`` from an executor thread of the
asyncio loop, so the loop keeps serving other connections while Trio decides.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable

import structlog
import trio
from aiosmtpd.smtp import SMTP, Envelope, Session

#: ``receive(peer_ip, mail_from, data) -> SMTP reply line``, run in Trio
Receiver = Callable[[str, str, bytes], Awaitable[str]]


class _Handler:
    def __init__(self, receive: Receiver, token: trio.lowlevel.TrioToken) -> None:
        self._receive = receive
        self._token = token

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer)
        data = envelope.original_content or b""
        call = functools.partial(
            trio.from_thread.run,
            self._receive,
            str(peer),
            str(envelope.mail_from or ""),
            bytes(data),
            trio_token=self._token,
        )
        try:
            return await asyncio.get_running_loop().run_in_executor(None, call)
        except trio.RunFinishedError:
            return "421 4.3.2 Service shutting down"


async def serve_smtp(
    receive: Receiver,
    *,
    host: str,
    port: int,
    hard_limit: int,
    tls: ssl.SSLContext | None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen until cancelled; ``task_status.started(port)`` once the server accepts."""
    # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say they are TCP; with
    # proto 0 every multi-line reply (EHLO) waited 40 ms for a delayed ACK (Nagle).
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(64)
    sock.setblocking(False)
    bound = sock.getsockname()[1]
    handler = _Handler(receive, trio.lowlevel.current_trio_token())
    ready = threading.Event()
    failed: list[BaseException] = []
    loop_box: list[asyncio.AbstractEventLoop] = []

    def factory() -> SMTP:
        return SMTP(
            handler,
            data_size_limit=hard_limit,
            enable_SMTPUTF8=True,
            tls_context=tls,
            require_starttls=False,
            hostname="gateway-approvals",
            ident="gateway",
        )

    def island() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        loop_box.append(loop)
        try:
            server = loop.run_until_complete(loop.create_server(factory, sock=sock))
        except BaseException as exc:
            failed.append(exc)
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            server.close()
            loop.run_until_complete(server.wait_closed())
            loop.close()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            functools.partial(trio.to_thread.run_sync, island, limiter=trio.CapacityLimiter(1))
        )
        await trio.to_thread.run_sync(ready.wait)
        if failed:
            raise failed[0]
        structlog.get_logger().info(
            "email_approval.listening", host=host, port=bound, starttls=tls is not None
        )
        task_status.started(bound)
        try:
            await trio.sleep_forever()
        finally:
            loop = loop_box[0]
            loop.call_soon_threadsafe(loop.stop)  # the thread returns; the nursery waits for it


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


__all__ = ["Receiver", "serve_smtp", "tls_context"]
