"""A fake MMSC (MMS Relay/Server) speaking MM7 over real HTTP on loopback, for MMS channel tests.

It takes ``SubmitReq`` on ``POST /mm7`` (HTTP Basic checked), records each request with its
raw body, and answers as scripted: a status code (1000 success, any 2xxx/3xxx/4xxx), as a
``SubmitRsp`` or as a SOAP Fault, after a delay (timeouts) or with a bare HTTP error. It also
plays the MMSC's side towards the VASP: :meth:`FakeMmsc.send` posts a ``DeliveryReportReq``,
``ReadReplyReq`` or ``DeliverReq`` (MO MMS) to the gateway's HTTP host and returns the answer.

HTTP framing is h11's (a dependency of httpx, which the MMS channel uses); MM7 is
:mod:`adapters.mm7`. Tests check the bodies it records against independent readers (the MM7
schema, Python's email package).
"""

from __future__ import annotations

import base64
import collections
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import attrs
import h11
import httpx
import trio

from adapters.mm7 import (
    RELEASES,
    Address,
    DeliverReq,
    DeliveryReportReq,
    Image,
    Part,
    ReadReplyReq,
    Release,
    RemoteMM7Error,
    Response,
    Status,
    SubmitReq,
    Verdict,
    build_content,
    decode_request,
    encode_fault,
    encode_request,
    verdict,
)

MAX_BODY_BYTES = 8 * 1024 * 1024


@attrs.frozen(kw_only=True)
class MmscAnswer:
    """How the fake MMSC answers one SubmitReq."""

    status: int = 1000
    fault: bool = False  # a SOAP Fault (RSErrorRsp, HTTP 500) instead of a SubmitRsp
    delay: float = 0.0  # seconds before answering
    http_status: int | None = None  # a bare HTTP error (503...) without an MM7 body


@attrs.frozen(kw_only=True)
class ReceivedSubmit:
    """A SubmitReq as it arrived: decoded, and the raw HTTP body for independent checks."""

    request: SubmitReq
    content: Part | None
    content_type: str
    body: bytes
    answer: MmscAnswer
    message_id: str | None  # the MessageID we answered with (success only)


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@attrs.define(eq=False)
class FakeMmsc:
    """The fake MMSC; script :attr:`answers` (consumed in order, then :attr:`default`)."""

    username: str = "vasp"
    password: str = "secret"
    release: Release = RELEASES["REL-6"]
    default: MmscAnswer = MmscAnswer()
    answers: collections.deque[MmscAnswer] = attrs.field(factory=collections.deque)
    submits: list[ReceivedSubmit] = attrs.field(factory=list)
    auth_refused: int = 0
    requests: int = 0  # HTTP requests received, whatever their fate
    port: int = 0
    _next_id: int = 0
    _changed: trio.Event = attrs.field(factory=trio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mm7"

    async def serve(
        self, host: str = "127.0.0.1", port: int = 0, *, task_status: Any = trio.TASK_STATUS_IGNORED
    ) -> None:
        listeners = await trio.open_tcp_listeners(port, host=host)
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self.port)
        await trio.serve_listeners(self._connection, listeners)

    async def wait_submits(self, count: int, within: float = 30.0) -> list[ReceivedSubmit]:
        """Wait until ``count`` SubmitReq have arrived (answered or not); return them."""
        with trio.fail_after(within):
            while len(self.submits) < count:
                await self._changed.wait()
        return self.submits

    # -- the server side --------------------------------------------------------------------

    async def _connection(self, stream: trio.SocketStream) -> None:
        connection = h11.Connection(h11.SERVER)
        with contextlib.suppress(
            trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError
        ):
            async with stream:
                while True:
                    request, body = await _read_request(stream, connection)
                    if request is None:
                        return
                    status, headers, answer = await self._handle(request, body)
                    headers = [*headers, ("Content-Length", str(len(answer)))]
                    await stream.send_all(
                        connection.send(h11.Response(status_code=status, headers=headers)) or b""
                    )
                    await stream.send_all(connection.send(h11.Data(data=answer)) or b"")
                    await stream.send_all(connection.send(h11.EndOfMessage()) or b"")
                    if connection.our_state is h11.MUST_CLOSE:
                        return
                    connection.start_next_cycle()

    async def _handle(
        self, request: h11.Request, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        self.requests += 1
        headers = {k.decode().lower(): v.decode("latin-1") for k, v in request.headers}
        if self.username and headers.get("authorization") != _basic(self.username, self.password):
            self.auth_refused += 1
            self._notify()
            return 401, [("WWW-Authenticate", 'Basic realm="mmsc"')], b""
        try:
            decoded = decode_request(headers.get("content-type", ""), body)
        except RemoteMM7Error as exc:
            return self._fault("unknown", exc.status, str(exc))
        message = decoded.message
        if not isinstance(message, SubmitReq):
            return self._fault(message.transaction_id, 4003, "only SubmitReq is served")
        answer = self.answers.popleft() if self.answers else self.default
        message_id = None
        if answer.http_status is None and verdict(answer.status) is Verdict.ACCEPTED:
            self._next_id += 1
            message_id = f"mmsc-{self._next_id:06d}"
        self.submits.append(
            ReceivedSubmit(
                request=message,
                content=decoded.content,
                content_type=headers.get("content-type", ""),
                body=body,
                answer=answer,
                message_id=message_id,
            )
        )
        self._notify()
        if answer.delay:
            await trio.sleep(answer.delay)
        if answer.http_status is not None:
            return answer.http_status, [("Content-Type", "text/plain")], b"unavailable\n"
        if answer.fault:
            return self._fault(message.transaction_id, answer.status, "refused")
        response = Response(
            kind="SubmitRsp",
            transaction_id=message.transaction_id,
            status=Status.of(answer.status),
            message_id=message_id,
        )
        content_type, xml = encode_request(response, None, self.release)
        return 200, [("Content-Type", content_type)], xml

    def _fault(
        self, transaction_id: str, code: int, reason: str
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        fault = Response(
            kind="RSErrorRsp",
            transaction_id=transaction_id,
            status=Status.of(code),
            fault=reason,
        )
        return (
            500,
            [("Content-Type", 'text/xml; charset="utf-8"')],
            encode_fault(fault, self.release),
        )

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    # -- the client side: requests to the VASP -----------------------------------------------

    async def send(
        self,
        url: str,
        message: DeliveryReportReq | ReadReplyReq | DeliverReq,
        content: Part | None = None,
        *,
        auth: tuple[str, str] | None = None,
    ) -> tuple[int, Response | None]:
        """POST an MMSC request to the VASP at ``url``: ``(HTTP status, decoded answer)``."""
        content_type, body = encode_request(message, content, self.release)
        basic = httpx.BasicAuth(*auth) if auth is not None else None
        async with httpx.AsyncClient(timeout=30, auth=basic) as client:
            answer = await client.post(url, content=body, headers={"Content-Type": content_type})
        if not answer.content:
            return answer.status_code, None
        decoded = decode_request(answer.headers.get("content-type", ""), answer.content).message
        assert isinstance(decoded, Response), decoded
        return answer.status_code, decoded

    def next_transaction(self) -> str:
        self._next_id += 1
        return f"rs-{self._next_id:06d}"

    def delivery_report(
        self, message_id: str, recipient: str, status: str = "Retrieved"
    ) -> DeliveryReportReq:
        return DeliveryReportReq(
            transaction_id=self.next_transaction(),
            message_id=message_id,
            recipient=Address(value=recipient),
            sender=Address(kind="ShortCode", value="10086"),
            date=now_iso(),
            mm_status=status,
        )

    def read_reply(self, message_id: str, recipient: str, status: str = "Read") -> ReadReplyReq:
        return ReadReplyReq(
            transaction_id=self.next_transaction(),
            message_id=message_id,
            recipient=Address(kind="ShortCode", value="10086"),
            sender=Address(value=recipient),
            timestamp=now_iso(),
            mm_status=status,
        )

    def mo_mms(
        self,
        sender: str,
        short_code: str,
        text: str,
        *,
        subject: str | None = None,
        picture: bytes | None = None,
    ) -> tuple[DeliverReq, Part]:
        """A DeliverReq (MO MMS) from ``sender`` to ``short_code`` with its content."""
        images = [Image(name="photo.png", media_type="image/png", data=picture)] if picture else []
        content = build_content(text, images)
        request = DeliverReq(
            transaction_id=self.next_transaction(),
            sender=Address(value=sender),
            recipients=(Address(kind="ShortCode", value=short_code),),
            timestamp=now_iso(),
            subject=subject,
            content_id=content.content_id,
        )
        return request, content


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


async def _read_request(
    stream: trio.SocketStream, connection: h11.Connection
) -> tuple[h11.Request | None, bytes]:
    request: h11.Request | None = None
    chunks: list[bytes] = []
    size = 0
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(65536)
            connection.receive_data(data)
            if not data and request is None:
                return None, b""
            continue
        if isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            size += len(event.data)
            if size > MAX_BODY_BYTES:
                raise h11.RemoteProtocolError("body too large")
            chunks.append(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage):
            return request, b"".join(chunks)
        elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return None, b""


@contextlib.asynccontextmanager
async def open_fake_mmsc(**fields: Any) -> AsyncIterator[FakeMmsc]:
    """Run a :class:`FakeMmsc` on 127.0.0.1, port 0, until the block exits."""
    mmsc = FakeMmsc(**fields)
    async with trio.open_nursery() as nursery:
        await nursery.start(mmsc.serve)
        try:
            yield mmsc
        finally:
            nursery.cancel_scope.cancel()


__all__: list[str] = ["FakeMmsc", "MmscAnswer", "ReceivedSubmit", "open_fake_mmsc"]


def main(argv: list[str] | None = None) -> None:
    """``python -m gateway.testing.mmsc [--port N] [--username U --password P]``: run a fake
    MMSC in its own process (benchmarks, demos); prints ``port N`` once listening."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--username", default="vasp")
    parser.add_argument("--password", default="secret")
    args = parser.parse_args(argv)

    async def run() -> None:
        mmsc = FakeMmsc(username=args.username, password=args.password)
        async with trio.open_nursery() as nursery:
            port = await nursery.start(mmsc.serve, args.host, args.port)
            print(f"port {port}", flush=True)

    trio.run(run)


if __name__ == "__main__":
    main()
