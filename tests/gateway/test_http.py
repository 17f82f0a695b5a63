"""The shared HTTP host serving plugin routes, over real loopback TCP."""

from __future__ import annotations

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from gateway import hookimpl
from gateway.contracts import HttpResponse, HttpRoute
from gateway.daemon import Daemon
from gateway.errors import PluginError
from gateway.http import BadRequest, HttpHost, parse_head


class RoutesPlugin:
    @hookimpl
    def gateway_http_routes(self, gateway):
        async def dispatch(request):
            return HttpResponse(
                status=202, headers={"Content-Type": "text/xml"}, body=b"got " + request.body
            )

        async def hello(request):
            return HttpResponse(
                body=f"hello {request.query.get('name')} {request.headers.get('x-a')}".encode()
            )

        async def broken(request):
            raise RuntimeError("handler bug")

        async def slow(request):
            await trio.sleep(1.5)
            return HttpResponse(body=b"done")

        async def not_a_response(request):
            return None

        async def bad_header(request):
            return HttpResponse(headers={"x-name": "\u5f20\u4e09"}, body=b"x")

        return [
            HttpRoute(method="POST", path="/boss/dispatch", handler=dispatch),
            HttpRoute(method="GET", path="/hello", handler=hello),
            HttpRoute(method="GET", path="/broken", handler=broken),
            HttpRoute(method="GET", path="/none", handler=not_a_response),
            HttpRoute(method="GET", path="/slow", handler=slow),
            HttpRoute(method="GET", path="/bad-header", handler=bad_header),
        ]


@pytest.fixture
async def host(gateway_config, nursery, captured_logs):
    config = gateway_config('\n[http]\nlisten = "127.0.0.1:0"\nmax_body_bytes = 100\n')
    daemon = Daemon.from_file(config, extra_plugins=(("routes", RoutesPlugin()),))
    nursery.start_soon(daemon.run)
    await daemon.control_ready.wait()
    (entry,) = [t for t in daemon.supervisor.tasks if t.name == "http"]
    yield entry.obj
    daemon.request_stop()


async def exchange(host: HttpHost, raw: bytes) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", host.port)
    async with stream:
        await stream.send_all(raw)
        data = b""
        with trio.move_on_after(5):
            while chunk := await stream.receive_some(65536):
                data += chunk
    return data


async def test_routes_keep_alive_and_errors(host, captured_logs):
    """POST body and GET query reach handlers; unknown path 404, wrong method 405, handler bug 500."""
    raw = (
        b"POST /boss/dispatch HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
        b"GET /hello?name=ann HTTP/1.1\r\nX-A: 1\r\n\r\n"
        b"GET /nope HTTP/1.1\r\n\r\n"
        b"GET /boss/dispatch HTTP/1.1\r\n\r\n"
        b"GET /broken HTTP/1.1\r\nConnection: close\r\n\r\n"
    )
    data = await exchange(host, raw)
    responses = data.split(b"HTTP/1.1 ")[1:]
    assert [r.split(b" ", 1)[0] for r in responses] == [b"202", b"200", b"404", b"405", b"500"]
    assert responses[0].endswith(b"\r\n\r\ngot hello") and b"content-type: text/xml" in responses[0]
    assert responses[1].endswith(b"hello ann 1")
    assert b"allow: POST" in responses[3]
    assert captured_logs.events("http.handler_failed")[0]["error"] == "RuntimeError: handler bug"


async def test_oversized_and_malformed_requests_are_refused(host):
    """A body over max_body_bytes gets 413, a garbage request line 400; the host keeps serving."""
    assert (
        await exchange(host, b"POST /boss/dispatch HTTP/1.1\r\nContent-Length: 1000\r\n\r\n")
    ).startswith(b"HTTP/1.1 413")
    assert (await exchange(host, b"HELLO\r\n\r\n")).startswith(b"HTTP/1.1 400")
    ok = await exchange(host, b"GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert ok.startswith(b"HTTP/1.1 200")


async def test_malformed_framing_gets_a_status_not_a_dropped_connection(host):
    """Non-ASCII digits in Content-Length and an unparsable target get 400, a transfer coding 501."""
    for raw, status in [
        (b"POST /boss/dispatch HTTP/1.1\r\nContent-Length: \xb2\r\n\r\nab", b"400"),
        (b"GET http://[x/hello HTTP/1.1\r\n\r\n", b"400"),
        (b"POST /boss/dispatch HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", b"501"),
    ]:
        assert (await exchange(host, raw)).startswith(b"HTTP/1.1 " + status), raw
    ok = await exchange(host, b"GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert ok.startswith(b"HTTP/1.1 200")


async def test_handler_returning_garbage_gets_500(host, captured_logs):
    """A handler returning no HttpResponse, or a header that cannot be sent, gets a 500 logged."""
    for path in (b"/none", b"/bad-header"):
        data = await exchange(host, b"GET " + path + b" HTTP/1.1\r\nConnection: close\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 500"), (path, data)
    assert len(captured_logs.events("http.handler_failed")) == 2


async def test_idle_timeout_cuts_slow_clients_not_slow_handlers(
    gateway_config, nursery, captured_logs, monkeypatch
):
    """A handler slower than idle_timeout still answers; a client sending its head too slowly is
    cut; over MAX_CONNECTIONS a client gets 503."""
    from gateway import http

    config = gateway_config('\n[http]\nlisten = "127.0.0.1:0"\nidle_timeout = "0.5s"\n')
    daemon = Daemon.from_file(config, extra_plugins=(("routes", RoutesPlugin()),))
    nursery.start_soon(daemon.run)
    await daemon.control_ready.wait()
    (entry,) = [t for t in daemon.supervisor.tasks if t.name == "http"]
    host = entry.obj
    data = await exchange(host, b"GET /slow HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"done")
    stream = await trio.open_tcp_stream("127.0.0.1", host.port)
    async with stream:
        await stream.send_all(b"GET /hello HTTP/1.1\r\n")  # and never the rest
        with trio.fail_after(10):
            assert await stream.receive_some(100) == b""
    monkeypatch.setattr(http, "MAX_CONNECTIONS", 1)
    first = await trio.open_tcp_stream("127.0.0.1", host.port)
    async with first:
        await first.send_all(b"GET /hello HTTP/1.1\r\n\r\n")  # keep-alive: stays open
        with trio.fail_after(10):
            assert (await first.receive_some(65536)).startswith(b"HTTP/1.1 200")
        assert (await exchange(host, b"GET /hello HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 503")
    daemon.request_stop()


async def test_duplicate_route_is_a_startup_error(gateway_config, captured_logs):
    """Two plugins registering the same method and path stop start-up, naming the second."""
    config = gateway_config('\n[http]\nlisten = "127.0.0.1:0"\n')
    daemon = Daemon.from_file(
        config, extra_plugins=(("one", RoutesPlugin()), ("two", RoutesPlugin()))
    )
    with pytest.RaisesGroup(
        pytest.RaisesExc(
            PluginError,
            match="plugin 'two': HTTP route POST /boss/dispatch is already registered by one",
        ),
        flatten_subgroups=True,
    ):
        await daemon.run()


@given(st.binary(max_size=300))
def test_parse_head_parses_or_raises_bad_request(head):
    """Any request head either parses (method, target, lower-case headers) or raises BadRequest."""
    try:
        method, target, headers = parse_head(head)
    except BadRequest as exc:
        assert exc.status == 400
        return
    assert method and target and all(name == name.lower() for name in headers)
