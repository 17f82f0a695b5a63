"""Fake BOSS and CRM servers over real HTTP on loopback (h11 framing, as the fake MMSC).

:class:`FakeBoss` answers two operations, the product order and the subscriber status, in
SOAP 1.1 (``protocol="soap"``: ``PlaceOrder`` / ``QuerySubscriber`` of the namespace
:data:`BOSS_NS`, as ``tests/data/boss/order_service.wsdl`` describes them) or JSON
(``protocol="json"``: ``POST /order`` and ``POST /status``). An order id seen before gets the
first answer again and is counted in ``duplicates`` (a BOSS refuses to place it twice).
``fail_next`` answers that many requests with HTTP 500. Stop it (leave the ``async with``) to
have a BOSS that refuses connections; open a new one on the same ``port`` to bring it back.

:class:`FakeCrm` is the CRM's contact-pool webservice: it records each JSON call and answers
``{"code": "0"}``, or HTTP 500 for the next ``fail_next`` calls.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import attrs
import h11
import trio

BOSS_NS = "urn:example:boss:order"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
MAX_BODY = 1024 * 1024


async def _read(
    stream: trio.SocketStream, connection: h11.Connection
) -> tuple[h11.Request | None, bytes]:
    request: h11.Request | None = None
    body = bytearray()
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
            body += event.data
            if len(body) > MAX_BODY:
                raise h11.RemoteProtocolError("body too large")
        elif isinstance(event, h11.EndOfMessage):
            return request, bytes(body)
        else:
            return None, b""


@attrs.define(eq=False)
class _HttpPeer:
    port: int = 0
    requests: int = 0
    fail_next: int = 0

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        listeners = await trio.open_tcp_listeners(port, host=host)
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self.port)
        await trio.serve_listeners(self._connection, listeners)

    async def _connection(self, stream: trio.SocketStream) -> None:
        connection = h11.Connection(h11.SERVER)
        with contextlib.suppress(
            trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError
        ):
            async with stream:
                while True:
                    request, body = await _read(stream, connection)
                    if request is None:
                        return
                    self.requests += 1
                    if self.fail_next > 0:
                        self.fail_next -= 1
                        status, ctype, answer = 500, "text/plain", b"internal error\n"
                    else:
                        status, ctype, answer = self.handle(request, body)
                    head = h11.Response(
                        status_code=status,
                        headers=[("Content-Type", ctype), ("Content-Length", str(len(answer)))],
                    )
                    await stream.send_all(connection.send(head) or b"")
                    await stream.send_all(connection.send(h11.Data(data=answer)) or b"")
                    await stream.send_all(connection.send(h11.EndOfMessage()) or b"")
                    if connection.our_state is h11.MUST_CLOSE:
                        return
                    connection.start_next_cycle()

    def handle(self, request: h11.Request, body: bytes) -> tuple[int, str, bytes]:
        raise NotImplementedError


@attrs.define(eq=False)
class FakeBoss(_HttpPeer):
    protocol: str = "soap"
    #: msisdn -> {"status": ..., "brand": ..., "arrears": ...}; unknown numbers: code 1
    subscribers: dict[str, dict[str, str]] = attrs.field(factory=dict)
    #: order id -> (msisdn, product, order number), in arrival order
    orders: dict[str, tuple[str, str, str]] = attrs.field(factory=dict)
    duplicates: int = 0
    status_queries: int = 0
    #: product codes the BOSS refuses (result code 2001)
    refused_products: set[str] = attrs.field(factory=set)
    soap_actions: list[str] = attrs.field(factory=list)
    #: HTTP Basic credentials required when set (401 otherwise)
    username: str = ""
    password: str = ""
    auth_refused: int = 0

    def handle(self, request: h11.Request, body: bytes) -> tuple[int, str, bytes]:
        target = request.target.decode()
        if self.username:
            token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            sent = dict((k.lower(), v.decode("latin-1")) for k, v in request.headers)
            if sent.get(b"authorization") != f"Basic {token}":
                self.auth_refused += 1
                return 401, "text/plain", b"unauthorized\n"
        if self.protocol == "json":
            try:
                data = json.loads(body)
            except ValueError:
                return 400, "application/json", b'{"code": "400", "message": "not JSON"}'
            if target.endswith("/order"):
                fields = self._order(
                    str(data.get("orderId")), str(data.get("msisdn")), str(data.get("product"))
                )
                return 200, "application/json", json.dumps({"result": fields}).encode()
            if target.endswith("/status"):
                return (
                    200,
                    "application/json",
                    json.dumps(self._status(str(data.get("msisdn")))).encode(),
                )
            return 404, "text/plain", b"no such operation\n"
        for name, value in request.headers:
            if name.lower() == b"soapaction":
                self.soap_actions.append(value.decode().strip('"'))
        try:
            root = ElementTree.fromstring(body)
        except ElementTree.ParseError:
            return 500, "text/xml", _fault("soap:Client", "not XML")
        operation = root.find(f"{{{SOAP_ENV}}}Body/*")
        if operation is None:
            return 500, "text/xml", _fault("soap:Client", "no operation in the Body")

        def text(name: str) -> str:
            return (operation.findtext(f"{{{BOSS_NS}}}{name}") or "").strip()

        if operation.tag == f"{{{BOSS_NS}}}PlaceOrder":
            fields = self._order(text("orderId"), text("msisdn"), text("productCode"))
            return 200, "text/xml", _soap("PlaceOrderResponse", fields)
        if operation.tag == f"{{{BOSS_NS}}}QuerySubscriber":
            return 200, "text/xml", _soap("QuerySubscriberResponse", self._status(text("msisdn")))
        return 500, "text/xml", _fault("soap:Client", f"unknown operation {operation.tag}")

    def _order(self, order_id: str, msisdn: str, product: str) -> dict[str, str]:
        known = self.orders.get(order_id)
        if known is not None:
            self.duplicates += 1
            return {"resultCode": "0", "resultDesc": "already placed", "orderNo": known[2]}
        if product in self.refused_products:
            return {"resultCode": "2001", "resultDesc": "product not allowed", "orderNo": ""}
        number = f"ORD{len(self.orders) + 1:06d}"
        self.orders[order_id] = (msisdn, product, number)
        return {"resultCode": "0", "resultDesc": "ok", "orderNo": number}

    def _status(self, msisdn: str) -> dict[str, str]:
        self.status_queries += 1
        found = self.subscribers.get(msisdn)
        if found is None:
            return {"resultCode": "1", "resultDesc": "unknown subscriber"}
        return {"resultCode": "0", **found}


def _soap(element: str, fields: dict[str, str]) -> bytes:
    inner = "".join(f"<b:{k}>{escape(v)}</b:{k}>" for k, v in fields.items())
    return (
        f'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{SOAP_ENV}" '
        f'xmlns:b="{BOSS_NS}"><soap:Body><b:{element}>{inner}</b:{element}></soap:Body>'
        "</soap:Envelope>"
    ).encode()


def _fault(code: str, message: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{SOAP_ENV}">'
        f"<soap:Body><soap:Fault><faultcode>{code}</faultcode><faultstring>{escape(message)}"
        "</faultstring></soap:Fault></soap:Body></soap:Envelope>"
    ).encode()


@attrs.define(eq=False)
class FakeCrm(_HttpPeer):
    #: each call: (path, JSON document)
    calls: list[tuple[str, Any]] = attrs.field(factory=list)

    def handle(self, request: h11.Request, body: bytes) -> tuple[int, str, bytes]:
        try:
            document = json.loads(body)
        except ValueError:
            return 400, "application/json", b'{"code": "400"}'
        self.calls.append((request.target.decode(), document))
        return 200, "application/json", b'{"code": "0"}'


@contextlib.asynccontextmanager
async def open_fake_boss(
    protocol: str = "soap", *, port: int = 0, **fields: Any
) -> AsyncIterator[FakeBoss]:
    """Run a :class:`FakeBoss` on 127.0.0.1 (``port`` 0: any free one) until the block exits."""
    boss = FakeBoss(protocol=protocol, **fields)
    async with trio.open_nursery() as nursery:
        await nursery.start(boss.serve, "127.0.0.1", port)
        try:
            yield boss
        finally:
            nursery.cancel_scope.cancel()


@contextlib.asynccontextmanager
async def open_fake_crm(**fields: Any) -> AsyncIterator[FakeCrm]:
    """Run a :class:`FakeCrm` on 127.0.0.1, port 0, until the block exits."""
    crm = FakeCrm(**fields)
    async with trio.open_nursery() as nursery:
        await nursery.start(crm.serve, "127.0.0.1", 0)
        try:
            yield crm
        finally:
            nursery.cancel_scope.cancel()


__all__ = ["BOSS_NS", "FakeBoss", "FakeCrm", "open_fake_boss", "open_fake_crm"]
