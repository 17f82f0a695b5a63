"""The shared HTTP host: serves the routes plugins return from ``gateway_http_routes``.

A small HTTP/1.1 server on Trio (``[http] listen = "127.0.0.1:8080"``), enough for the
webservice endpoints of BOSS/CRM and OA callbacks: exact-path routes, ``Content-Length``
bodies (no chunked requests), keep-alive, capped header and body sizes, and an idle timeout.
It is not exposed to the internet; put a reverse proxy in front for TLS. Written here instead
of adding a dependency because the needs are this small (RFC 9112 message framing only).

A handler that raises gets a 500 and a ``http.handler_failed`` log line; the server goes on.
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

import structlog
import trio

from gateway.contracts import HttpRequest, HttpResponse, HttpRoute
from gateway.errors import PluginError
from gateway.supervisor import describe

if TYPE_CHECKING:
    from gateway.config import HttpConfig

MAX_HEADER_BYTES = 64 * 1024
#: Connections served at once; more get 503 (slow clients must not use up the fds).
MAX_CONNECTIONS = 256
REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    302: "Found",  # redirects (the WAP Push tracking links)
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    411: "Length Required",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
}


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    """Request line and headers (names lower-cased). Raises BadRequest."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 decodes anything
        raise BadRequest(400, "undecodable header") from exc
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if (
        len(parts) != 3
        or not parts[0].isalpha()
        or not parts[1]
        or not parts[2].startswith("HTTP/1.")
    ):
        raise BadRequest(400, "bad request line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest(400, "bad header line")
        name = name.lower()
        value = value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return parts[0], parts[1], headers


def encode_response(response: HttpResponse, *, keep_alive: bool) -> bytes:
    reason = REASONS.get(response.status, "Status")
    headers = {k.lower(): v for k, v in response.headers.items()}
    if any(c in text for item in headers.items() for text in item for c in "\r\n"):
        raise ValueError("a response header contains CR or LF")  # response splitting
    headers["content-length"] = str(len(response.body))
    headers["connection"] = "keep-alive" if keep_alive else "close"
    headers.setdefault("content-type", "text/plain; charset=utf-8")
    head = f"HTTP/1.1 {response.status} {reason}\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()
    )
    return head.encode("latin-1") + b"\r\n" + response.body


class HttpHost:
    """Serves ``(plugin name, route)`` pairs; ``enabled`` only with ``[http] listen`` set.

    The daemon builds it with the ``[http]`` section and the routes of ``gateway_http_routes``.
    """

    name = "http"

    def __init__(self, config: HttpConfig, routes: Iterable[tuple[str, HttpRoute]]) -> None:
        self.config = config
        self.routes: dict[str, dict[str, Callable[[HttpRequest], Awaitable[HttpResponse]]]] = {}
        owners: dict[tuple[str, str], str] = {}
        for plugin, route in routes:
            key = (route.method.upper(), route.path)
            if key in owners:
                raise PluginError(
                    plugin, f"HTTP route {key[0]} {key[1]} is already registered by {owners[key]}"
                )
            owners[key] = plugin
            self.routes.setdefault(route.path, {})[key[0]] = route.handler
        self.port: int | None = None
        self._active = 0

    @property
    def enabled(self) -> bool:
        return bool(self.config.listen)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        host, _, port = self.config.listen.rpartition(":")
        listeners = await trio.open_tcp_listeners(int(port), host=host.strip("[]") or None)
        self.port = listeners[0].socket.getsockname()[1]
        structlog.get_logger().info(
            "http.listening", host=host, port=self.port, routes=sorted(self.routes)
        )
        task_status.started()
        await trio.serve_listeners(self._serve_connection, listeners)

    async def _serve_connection(self, stream: trio.abc.Stream) -> None:
        log = structlog.get_logger()
        busy = self._active >= MAX_CONNECTIONS
        self._active += 1
        try:
            async with stream:
                if busy:
                    log.warning("http.too_many_connections", limit=MAX_CONNECTIONS)
                    with trio.move_on_after(1):
                        busy_response = HttpResponse(status=503, body=b"too many connections\n")
                        await stream.send_all(encode_response(busy_response, keep_alive=False))
                        # Read what the client sent before closing: closing with unread bytes
                        # resets the connection and the 503 may never reach the client.
                        await stream.send_eof()  # type: ignore[attr-defined]
                        received = 0
                        while received < MAX_HEADER_BYTES and (
                            chunk := await stream.receive_some(65536)
                        ):
                            received += len(chunk)
                    return
                buffer = bytearray()
                while True:
                    # The timeout covers the client (request, reading the response), not the
                    # handler: _one_request lifts it while the handler runs.
                    with trio.move_on_after(self.config.idle_timeout) as scope:
                        keep_alive = await self._one_request(stream, buffer, scope)
                        if keep_alive:
                            continue
                    return
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        except Exception as exc:  # one bad connection never stops the host
            log.warning("http.connection_failed", error=describe(exc))
        finally:
            self._active -= 1

    async def _one_request(
        self, stream: trio.abc.Stream, buffer: bytearray, scope: trio.CancelScope | None = None
    ) -> bool:
        while (end := buffer.find(b"\r\n\r\n")) < 0:
            if len(buffer) > MAX_HEADER_BYTES:
                await stream.send_all(encode_response(HttpResponse(status=431), keep_alive=False))
                return False
            data = await stream.receive_some(65536)
            if not data:
                return False
            buffer += data
        head = bytes(buffer[:end])
        del buffer[: end + 4]
        try:
            method, target, headers = parse_head(head)
            # Any transfer coding: its framing is not Content-Length (RFC 9112 6.1); guessing
            # would desynchronise the connection (request smuggling behind a proxy).
            if "transfer-encoding" in headers:
                raise BadRequest(501, "transfer-encoded request bodies are not supported")
            length_text = headers.get("content-length", "0")
            # ASCII digits only: str.isdigit() accepts '\xb2' (latin-1), which int() refuses.
            if not (length_text.isascii() and length_text.isdigit()):
                raise BadRequest(400, "bad content-length")
            try:
                urlsplit(target)
            except ValueError as exc:  # "http://[x/" and the like
                raise BadRequest(400, "bad request target") from exc
            length = int(length_text)
            if length > self.config.max_body_bytes:
                raise BadRequest(413, f"body larger than {self.config.max_body_bytes} bytes")
        except BadRequest as exc:
            response = HttpResponse(status=exc.status, body=(str(exc) + "\n").encode())
            await stream.send_all(encode_response(response, keep_alive=False))
            return False
        while len(buffer) < length:
            data = await stream.receive_some(65536)
            if not data:
                return False
            buffer += data
        body = bytes(buffer[:length])
        del buffer[:length]
        keep_alive = headers.get("connection", "").lower() != "close"
        if scope is not None:
            scope.deadline = math.inf
        response = await self._respond(method, target, headers, body)
        if scope is not None:
            scope.deadline = trio.current_time() + self.config.idle_timeout
        try:
            raw = encode_response(response, keep_alive=keep_alive)
        except Exception as exc:  # not an HttpResponse, or a header that cannot be sent
            structlog.get_logger().error(
                "http.handler_failed",
                path=urlsplit(target).path,
                method=method,
                error=describe(exc),
            )
            error = HttpResponse(status=500, body=b"internal error\n")
            raw = encode_response(error, keep_alive=keep_alive)
        await stream.send_all(raw)
        return keep_alive

    async def _respond(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> HttpResponse:
        url = urlsplit(target)
        by_method = self.routes.get(url.path)
        if by_method is None:
            return HttpResponse(status=404, body=b"not found\n")
        handler = by_method.get(method.upper())
        if handler is None:
            allow = ", ".join(sorted(by_method))
            return HttpResponse(status=405, headers={"allow": allow}, body=b"method not allowed\n")
        request = HttpRequest(
            method=method.upper(),
            path=url.path,
            query=dict(parse_qsl(url.query)),
            headers=headers,
            body=body,
        )
        try:
            response = await handler(request)
        except Exception as exc:
            structlog.get_logger().error(
                "http.handler_failed",
                path=url.path,
                method=method,
                error=describe(exc),
                traceback=traceback.format_exc(),
            )
            return HttpResponse(status=500, body=b"internal error\n")
        structlog.get_logger().debug(
            "http.request", method=method, path=url.path, status=getattr(response, "status", None)
        )
        return response
