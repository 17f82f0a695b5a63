"""The HTTP host's server loop: connections, HTTP/1.1 framing by h11, TLS, admission.

One task per connection (``trio.serve_listeners``). h11 (sans-IO, RFC 9112) does the message
framing: Content-Length and chunked bodies, ``Expect: 100-continue``, keep-alive rules
(HTTP/1.0 connections close after the answer), and refuses malformed requests, which we
answer with its suggested status. On top of it the host enforces its limits (header block,
body, connections overall and per client address, the idle timeout of the client, not of the
handler), authenticates the caller (:mod:`gateway.http.auth`) and runs the route's handler.

A handler that raises gets a 500 and a ``http.handler_failed`` log line; the host goes on.
"""

from __future__ import annotations

import json
import math
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable, Mapping
from email.utils import formatdate
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import attrs
import h11
import structlog
import trio

from gateway.contracts import HTTP_AUTH_MODES, HttpRequest, HttpResponse, HttpRoute
from gateway.errors import PluginError
from gateway.http.auth import (
    API_KEY_HEADER,
    AUTHORIZATION_HEADER,
    Authenticator,
    AuthRefused,
    ReplayCache,
)
from gateway.http.config import HttpConfig
from gateway.http.openapi import openapi_document
from gateway.http.tls import server_ssl_context
from gateway.supervisor import describe

Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]
RECEIVE_SIZE = 65536
_REASONS = {int(status): status.phrase.encode() for status in HTTPStatus}


class _Refusal(Exception):
    """An answer the host gives itself (400, 401, 404, 413, ...), ending the request."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.headers = dict(headers or {})


@attrs.frozen
class _Target:
    route: HttpRoute
    handler: Handler


def _encode_headers(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("ascii"), v.encode("latin-1")) for k, v in headers.items()]


class HttpHost:
    """Serves ``(plugin name, route)`` pairs; ``enabled`` only with ``[http] listen`` set.

    The daemon builds it with the ``[http]`` section and the routes of ``gateway_http_routes``.
    Raises PluginError for a duplicate route or an unknown ``auth``, ConfigError for TLS files
    that cannot be loaded.
    """

    name = "http"

    def __init__(self, config: HttpConfig, routes: Iterable[tuple[str, HttpRoute]]) -> None:
        self.config = config
        routes = list(routes)
        self.routes: dict[str, dict[str, _Target]] = {}
        owners: dict[tuple[str, str], str] = {}
        if config.openapi_path:
            owners[("GET", config.openapi_path)] = "core (the OpenAPI document)"
        for plugin, route in routes:
            key = (route.method.upper(), route.path)
            if key in owners:
                raise PluginError(
                    plugin, f"HTTP route {key[0]} {key[1]} is already registered by {owners[key]}"
                )
            if not route.path.startswith("/") or not route.method.isalpha():
                raise PluginError(
                    plugin,
                    f"HTTP route {route.method!r} {route.path!r}: the method must be a word "
                    'such as "POST" and the path start with "/"',
                )
            if route.auth not in HTTP_AUTH_MODES:
                raise PluginError(
                    plugin,
                    f"HTTP route {key[0]} {key[1]}: auth must be one of "
                    f"{', '.join(HTTP_AUTH_MODES)}, got {route.auth!r}",
                )
            owners[key] = plugin
            self.routes.setdefault(route.path, {})[key[0]] = _Target(route, route.handler)
        self.openapi = openapi_document(routes)
        if config.openapi_path:
            body = json.dumps(self.openapi, indent=1).encode()

            async def serve_openapi(request: HttpRequest) -> HttpResponse:
                return HttpResponse(headers={"content-type": "application/json"}, body=body)

            route = HttpRoute(
                method="GET", path=config.openapi_path, handler=serve_openapi, auth="none"
            )
            self.routes.setdefault(route.path, {})["GET"] = _Target(route, serve_openapi)
        self.authenticator = Authenticator(
            config.clients,
            window=config.signature_window,
            replay=ReplayCache(capacity=config.replay_cache_size),
        )
        self.ssl_context = server_ssl_context(config) if config.tls else None
        self.port: int | None = None
        self._active = 0
        self._per_peer: dict[str, int] = {}
        self._counts = {"requests": 0, "refused_connections": 0, "auth_refused": 0}
        self._date_second, self._date_text = 0, ""

    @property
    def enabled(self) -> bool:
        return bool(self.config.listen)

    def statistics(self) -> dict[str, Any]:
        """Connections open now, requests answered, refusals (the bench and tests read it;
        ``gatewayctl status`` does not show it yet: the host is not a registered object)."""
        return {"connections": self._active, **self._counts}

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        host, _, port = self.config.listen.rpartition(":")
        listeners = await trio.open_tcp_listeners(int(port), host=host.strip("[]") or None)
        self.port = listeners[0].socket.getsockname()[1]
        structlog.get_logger().info(
            "http.listening",
            host=host,
            port=self.port,
            tls=self.ssl_context is not None,
            routes=sorted(self.routes),
            clients=sorted(self.config.clients),
        )
        if not self.config.clients and any(
            t.route.auth != "none" for by in self.routes.values() for t in by.values()
        ):
            structlog.get_logger().warning(
                "http.no_clients",
                hint="routes need authentication but [http.clients] is empty: all refused",
            )
        task_status.started()
        await trio.serve_listeners(self._serve_connection, listeners)

    # -- connections ------------------------------------------------------------------------

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
        log = structlog.get_logger()
        try:
            peer = str(stream.socket.getpeername()[0])
        except OSError:  # already gone
            await trio.aclose_forcefully(stream)
            return
        refusal = ""
        if self._active >= self.config.max_connections:
            refusal = "too many connections"
        elif self._per_peer.get(peer, 0) >= self.config.max_connections_per_client:
            refusal = "too many connections from your address"
        self._active += 1
        self._per_peer[peer] = self._per_peer.get(peer, 0) + 1
        transport: trio.abc.Stream = stream
        try:
            if refusal:
                self._counts["refused_connections"] += 1
                log.warning("http.connection_refused", peer=peer, reason=refusal)
                if self.ssl_context is None:  # under TLS we cannot answer before a handshake
                    await self._refuse_connection(stream, refusal)
                return
            if self.ssl_context is not None:
                transport = trio.SSLStream(
                    stream, self.ssl_context, server_side=True, https_compatible=True
                )
                with trio.move_on_after(self.config.idle_timeout) as handshake:
                    try:
                        await transport.do_handshake()
                    except trio.BrokenResourceError as exc:
                        log.info(
                            "http.tls_refused", peer=peer, error=describe(exc.__cause__ or exc)
                        )
                        return
                if handshake.cancelled_caught:
                    return
            await self._serve_http(transport, peer)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        except Exception as exc:  # one bad connection never stops the host
            log.warning("http.connection_failed", peer=peer, error=describe(exc))
        finally:
            self._active -= 1
            left = self._per_peer[peer] - 1
            if left:
                self._per_peer[peer] = left
            else:
                del self._per_peer[peer]
            if transport is not stream:  # TLS: send close_notify, briefly
                with trio.move_on_after(1) as cleanup:
                    cleanup.shield = True
                    try:
                        await transport.aclose()
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        pass
            stream.socket.close()  # no await: nothing to wait for on a plain socket

    async def _refuse_connection(self, stream: trio.SocketStream, reason: str) -> None:
        body = f"{reason}\n".encode()
        raw = (
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"retry-after: 1\r\nconnection: close\r\ncontent-length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        with trio.move_on_after(1):
            await stream.send_all(raw)
            # Read what the client sent before closing: closing with unread bytes resets the
            # connection and the 503 may never reach the client.
            await stream.send_eof()
            received = 0
            while received < self.config.max_header_bytes and (
                chunk := await stream.receive_some(RECEIVE_SIZE)
            ):
                received += len(chunk)

    async def _linger(self, stream: trio.abc.Stream) -> None:
        """Before closing on a refusal, read (and drop) what the client is still sending, for
        a moment: closing with unread bytes resets the connection, and the client may lose
        the answer we just sent."""
        with trio.move_on_after(1):
            if isinstance(stream, trio.SocketStream):
                await stream.send_eof()
            received = 0
            while received < 4 * RECEIVE_SIZE and (
                chunk := await stream.receive_some(RECEIVE_SIZE)
            ):
                received += len(chunk)

    async def _serve_http(self, stream: trio.abc.Stream, peer: str) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.config.max_header_bytes)
        while True:
            # One deadline per exchange for the client (sending its request, reading our
            # answer), lifted while the handler runs.
            with trio.move_on_after(self.config.idle_timeout) as scope:
                if not await self._exchange(conn, stream, peer, scope):
                    return
            if scope.cancelled_caught:
                return
            conn.start_next_cycle()

    async def _exchange(
        self, conn: h11.Connection, stream: trio.abc.Stream, peer: str, scope: trio.CancelScope
    ) -> bool:
        """Read one request and answer it; whether the connection can carry the next one."""
        try:
            received = await self._receive_request(conn, stream, peer)
        except _Refusal as refusal:
            keep = self._can_keep_alive(conn, refusal.status)
            await self._send(conn, stream, self._refusal_response(refusal), close=not keep)
            if keep and conn.our_state is h11.DONE:
                return True
            await self._linger(stream)
            return False
        except h11.RemoteProtocolError as exc:
            response = HttpResponse(status=exc.error_status_hint, body=f"{exc}\n".encode())
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                await self._send(conn, stream, response, close=True)
                await self._linger(stream)
            return False
        if received is None:
            return False
        request, target = received
        scope.deadline = math.inf
        response = await self._call(target.handler, request)
        scope.deadline = trio.current_time() + self.config.idle_timeout
        await self._send(conn, stream, response, close=False, request=request)
        return conn.our_state is h11.DONE and conn.their_state is h11.DONE

    @staticmethod
    def _can_keep_alive(conn: h11.Connection, status: int) -> bool:
        """After a refusal, whether the connection can carry the next request: only when the
        request is read whole (no body left unread) and was well-framed."""
        if status in (400, 413, 431) or conn.their_state is h11.ERROR:
            return False
        if conn.their_state is h11.SEND_BODY:
            try:  # a request without a body ends here without more data
                if not isinstance(conn.next_event(), h11.EndOfMessage):
                    return False
            except h11.RemoteProtocolError:
                return False
        return conn.their_state is h11.DONE

    async def _next_event(self, conn: h11.Connection, stream: trio.abc.Stream) -> Any:
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            if conn.they_are_waiting_for_100_continue:
                # Only reached once the request was accepted so far (route, size, key).
                await stream.send_all(
                    conn.send(h11.InformationalResponse(status_code=100, headers=[]))
                )
            conn.receive_data(bytes(await stream.receive_some(RECEIVE_SIZE)))

    async def _receive_request(
        self, conn: h11.Connection, stream: trio.abc.Stream, peer: str
    ) -> tuple[HttpRequest, _Target] | None:
        """The next request, read whole, or None when the client closed; raises _Refusal."""
        event = await self._next_event(conn, stream)
        if not isinstance(event, h11.Request):  # ConnectionClosed: the client went away
            return None
        head_size = (
            len(event.method)
            + len(event.target)
            + 12
            + sum(len(name) + len(value) + 4 for name, value in event.headers)
        )
        if head_size > self.config.max_header_bytes:
            raise _Refusal(431, f"header block larger than {self.config.max_header_bytes} bytes")
        method = event.method.decode("ascii").upper()
        raw_target = event.target.decode("latin-1")
        try:
            url = urlsplit(raw_target)
        except ValueError as exc:  # "http://[x/" and the like
            raise _Refusal(400, "bad request target") from exc
        headers: dict[str, str] = {}
        for name, value in event.headers:  # h11 lower-cases names
            key, text = name.decode("ascii"), value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        length = headers.get("content-length")
        if length is not None and int(length) > self.config.max_body_bytes:
            raise _Refusal(413, f"body larger than {self.config.max_body_bytes} bytes")
        by_method = self.routes.get(url.path)
        if by_method is None:
            raise _Refusal(404, "not found")
        target = by_method.get(method)
        if target is None:
            allow = ", ".join(sorted(by_method))
            raise _Refusal(405, "method not allowed", {"allow": allow})
        auth = target.route.auth
        signed = auth == "hmac" or (auth == "any" and "x-signature" in headers)
        client = ""
        if auth != "none" and not signed:  # an API key is checked before reading the body
            client = self._authenticate(auth, method, raw_target, headers, b"", peer)
        body = bytearray()
        while True:
            event = await self._next_event(conn, stream)
            if isinstance(event, h11.Data):
                body += event.data
                if len(body) > self.config.max_body_bytes:  # chunked bodies end up here
                    raise _Refusal(413, f"body larger than {self.config.max_body_bytes} bytes")
            elif isinstance(event, h11.EndOfMessage):
                break
            else:  # ConnectionClosed in the middle of the body
                return None
        if signed:
            client = self._authenticate(auth, method, raw_target, headers, bytes(body), peer)
        if auth != "none":  # the handler needs the client's name, not its key
            headers.pop(API_KEY_HEADER, None)
            if headers.get(AUTHORIZATION_HEADER, "")[:6].lower() == "basic ":
                del headers[AUTHORIZATION_HEADER]
        request = HttpRequest(
            method=method,
            path=url.path,
            query=dict(parse_qsl(url.query)),
            headers=headers,
            body=bytes(body),
            client=client,
            peer=peer,
        )
        return request, target

    def _authenticate(
        self,
        auth: str,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes,
        peer: str,
    ) -> str:
        try:
            return self.authenticator.check(auth, method, target, headers, body)
        except AuthRefused as exc:
            self._counts["auth_refused"] += 1
            structlog.get_logger().warning(
                "http.auth_refused",
                peer=peer,
                method=method,
                path=urlsplit(target).path,
                reason=exc.reason,
                client=exc.client,
            )
            extra = {"retry-after": "1"} if exc.status == 503 else {}
            raise _Refusal(exc.status, exc.reason, extra) from None

    # -- answers ----------------------------------------------------------------------------

    @staticmethod
    def _refusal_response(refusal: _Refusal) -> HttpResponse:
        return HttpResponse(
            status=refusal.status, headers=refusal.headers, body=f"{refusal}\n".encode()
        )

    async def _call(self, handler: Handler, request: HttpRequest) -> HttpResponse:
        self._counts["requests"] += 1
        log = structlog.get_logger()
        try:
            response = await handler(request)
        except Exception as exc:
            log.error(
                "http.handler_failed",
                path=request.path,
                method=request.method,
                error=describe(exc),
                traceback=traceback.format_exc(),
            )
            return HttpResponse(status=500, body=b"internal error\n")
        log.debug(
            "http.request",
            method=request.method,
            path=request.path,
            client=request.client,
            status=getattr(response, "status", None),
        )
        return response

    def _date(self) -> str:
        """The Date header (RFC 9110 6.6.1), formatted once a second."""
        now = int(time.time())
        if now != self._date_second:
            self._date_second, self._date_text = now, formatdate(now, usegmt=True)
        return self._date_text

    def _h11_response(self, response: HttpResponse, *, close: bool) -> h11.Response:
        headers = {k.lower(): v for k, v in response.headers.items()}
        for framing in ("content-length", "transfer-encoding", "connection"):
            headers.pop(framing, None)
        headers.setdefault("content-type", "text/plain; charset=utf-8")
        headers["content-length"] = str(len(response.body))
        headers["date"] = self._date()
        if close:
            headers["connection"] = "close"
        reason = _REASONS.get(response.status, b"")
        return h11.Response(
            status_code=response.status, headers=_encode_headers(headers), reason=reason
        )

    async def _send(
        self,
        conn: h11.Connection,
        stream: trio.abc.Stream,
        response: HttpResponse,
        *,
        close: bool,
        request: HttpRequest | None = None,
    ) -> None:
        try:
            if not isinstance(response, HttpResponse) or not isinstance(response.body, bytes):
                raise TypeError(f"handler returned {type(response).__name__}, not HttpResponse")
            event = self._h11_response(response, close=close)
        except Exception as exc:  # not an HttpResponse, or a header that cannot be sent
            structlog.get_logger().error(
                "http.handler_failed",
                path=request.path if request else "",
                method=request.method if request else "",
                error=describe(exc),
            )
            response = HttpResponse(status=500, body=b"internal error\n")
            event = self._h11_response(response, close=close)
        data = conn.send(event) + conn.send(h11.Data(data=response.body))
        data += conn.send(h11.EndOfMessage())
        await stream.send_all(data)
