"""The shared HTTP host serving plugin routes, over real loopback TCP: framing and limits."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import hookimpl
from gateway.contracts import HttpResponse, HttpRoute
from gateway.daemon import Daemon
from gateway.errors import PluginError
from gateway.http import HttpConfig, HttpHost
from gateway.testing import wait_until


async def _dispatch(request):
    return HttpResponse(
        status=202, headers={"Content-Type": "text/xml"}, body=b"got " + request.body
    )


async def _hello(request):
    return HttpResponse(
        body=f"hello {request.query.get('name')} {request.headers.get('x-a')}".encode()
    )


async def _broken(request):
    raise RuntimeError("handler bug")


async def _slow(request):
    await trio.sleep(1.5)
    return HttpResponse(body=b"done")


async def _not_a_response(request):
    return None


async def _bad_header(request):
    return HttpResponse(headers={"x-name": "\u5f20\u4e09"}, body=b"x")


def public_routes() -> list[HttpRoute]:
    """The routes of these tests: public (auth="none"); authentication has its own tests."""
    return [
        HttpRoute(method="POST", path="/boss/dispatch", handler=_dispatch, auth="none"),
        HttpRoute(method="GET", path="/hello", handler=_hello, auth="none"),
        HttpRoute(method="GET", path="/broken", handler=_broken, auth="none"),
        HttpRoute(method="GET", path="/none", handler=_not_a_response, auth="none"),
        HttpRoute(method="GET", path="/slow", handler=_slow, auth="none"),
        HttpRoute(method="GET", path="/bad-header", handler=_bad_header, auth="none"),
    ]


class RoutesPlugin:
    @hookimpl
    def gateway_http_routes(self, gateway):
        return public_routes()


async def start_host(gateway_config, nursery, http_toml: str) -> tuple[Daemon, HttpHost]:
    config = gateway_config(f'\n[http]\nlisten = "127.0.0.1:0"\n{http_toml}\n')
    daemon = Daemon.from_file(config, extra_plugins=(("routes", RoutesPlugin()),))
    nursery.start_soon(daemon.run)
    await daemon.control_ready.wait()
    (entry,) = [t for t in daemon.supervisor.tasks if t.name == "http"]
    return daemon, entry.obj


@pytest.fixture
async def host(gateway_config, nursery, captured_logs):
    daemon, host = await start_host(gateway_config, nursery, "max_body_bytes = 100")
    yield host
    daemon.request_stop()


async def exchange(host: HttpHost, raw: bytes, *, wait: float = 5) -> bytes:
    """Send ``raw``, then read until the host closes (or ``wait`` seconds pass)."""
    stream = await trio.open_tcp_stream("127.0.0.1", host.port)
    async with stream:
        await stream.send_all(raw)
        data = b""
        with trio.move_on_after(wait):
            while chunk := await stream.receive_some(65536):
                data += chunk
    return data


async def read_until(stream: trio.abc.Stream, marker: bytes) -> bytes:
    data = b""
    with trio.fail_after(10):
        while marker not in data:
            chunk = await stream.receive_some(65536)
            assert chunk, data
            data += chunk
    return data


async def test_routes_keep_alive_and_errors(host, captured_logs):
    """POST body and GET query reach handlers; unknown path 404, wrong method 405, handler bug 500."""
    raw = (
        b"POST /boss/dispatch HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
        b"GET /hello?name=ann HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\r\n"
        b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /boss/dispatch HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /broken HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    data = await exchange(host, raw)
    responses = data.split(b"HTTP/1.1 ")[1:]
    assert [r.split(b" ", 1)[0] for r in responses] == [b"202", b"200", b"404", b"405", b"500"]
    assert responses[0].endswith(b"\r\n\r\ngot hello") and b"content-type: text/xml" in responses[0]
    assert responses[1].endswith(b"hello ann 1")
    assert b"allow: POST" in responses[3]
    assert all(b"\r\ndate: " in r and b" GMT\r\n" in r for r in responses)  # RFC 9110 6.6.1
    assert captured_logs.events("http.handler_failed")[0]["error"] == "RuntimeError: handler bug"


async def test_oversized_and_malformed_requests_are_refused(host):
    """A body over max_body_bytes gets 413, a garbage request line 400; the host keeps serving."""
    assert (
        await exchange(
            host, b"POST /boss/dispatch HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
        )
    ).startswith(b"HTTP/1.1 413")
    assert (await exchange(host, b"HELLO\r\n\r\n")).startswith(b"HTTP/1.1 400")
    ok = await exchange(host, b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert ok.startswith(b"HTTP/1.1 200")


async def test_malformed_framing_gets_a_status_not_a_dropped_connection(host):
    """Bad Content-Length (non-ASCII digit, 5,000 digits), an unparsable target, a header name
    with a space and a missing Host get 400; a transfer coding other than chunked 501."""
    for raw, status in [
        (b"POST /boss/dispatch HTTP/1.1\r\nHost: x\r\nContent-Length: \xb2\r\n\r\nab", b"400"),
        (
            b"POST /boss/dispatch HTTP/1.1\r\nHost: x\r\nContent-Length: "
            + b"9" * 5000
            + b"\r\n\r\n",
            b"400",
        ),
        (b"GET http://[x/hello HTTP/1.1\r\nHost: x\r\n\r\n", b"400"),
        (b"GET /hello HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n", b"400"),
        (b"GET /hello HTTP/1.1\r\n\r\n", b"400"),
        (b"POST /boss/dispatch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", b"501"),
    ]:
        assert (await exchange(host, raw)).startswith(b"HTTP/1.1 " + status), raw[:80]
    ok = await exchange(host, b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert ok.startswith(b"HTTP/1.1 200")


async def test_header_block_over_the_limit_gets_431(host):
    """A 70 KB header block gets 431, sent at once or trickled in pieces."""
    big = b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n"
    assert (await exchange(host, big)).startswith(b"HTTP/1.1 431")
    stream = await trio.open_tcp_stream("127.0.0.1", host.port)
    async with stream:
        answer = b""
        for start in range(0, len(big), 4096):
            try:
                await stream.send_all(big[start : start + 4096])
            except trio.BrokenResourceError:
                break
        with trio.move_on_after(5):
            while chunk := await stream.receive_some(65536):
                answer += chunk
    assert answer.startswith(b"HTTP/1.1 431")


async def test_expect_100_continue(host):
    """The client waiting for 100 Continue gets it, then sends the body; an oversize body
    announced with Expect gets 413 at once and no 100."""
    stream = await trio.open_tcp_stream("127.0.0.1", host.port)
    async with stream:
        await stream.send_all(
            b"POST /boss/dispatch HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        interim = await read_until(stream, b"\r\n\r\n")
        assert interim.startswith(b"HTTP/1.1 100 ")
        await stream.send_all(b"ok")
        final = await read_until(stream, b"got ok")
        assert b"HTTP/1.1 202" in final
    refused = await exchange(
        host,
        b"POST /boss/dispatch HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n"
        b"Expect: 100-continue\r\n\r\n",
    )
    assert refused.startswith(b"HTTP/1.1 413") and b"HTTP/1.1 100" not in refused


async def test_chunked_bodies_are_read_and_limited(host):
    """A chunked body reaches the handler whole; one growing past max_body_bytes gets 413."""
    chunked = (
        b"POST /boss/dispatch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"
    )
    data = await exchange(host, chunked)
    assert data.startswith(b"HTTP/1.1 202") and data.endswith(b"got abcdefg")
    stream = await trio.open_tcp_stream("127.0.0.1", host.port)
    async with stream:
        await stream.send_all(
            b"POST /boss/dispatch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        for _ in range(3):  # 150 bytes > 100, and the client has not finished
            await stream.send_all(b"32\r\n" + b"z" * 50 + b"\r\n")
        answer = await read_until(stream, b"\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 413")


async def test_http10_connection_closes_after_the_answer(host):
    """An HTTP/1.0 request is answered and the connection closed, without waiting for idle."""
    stream = await trio.open_tcp_stream("127.0.0.1", host.port)
    async with stream:
        await stream.send_all(b"GET /hello HTTP/1.0\r\n\r\n")
        data = b""
        with trio.fail_after(3):  # idle_timeout is 30 s: only a close ends this quickly
            while chunk := await stream.receive_some(65536):
                data += chunk
    assert data.startswith(b"HTTP/1.1 200") and b"connection: close" in data.lower()


async def test_handler_returning_garbage_gets_500(host, captured_logs):
    """A handler returning no HttpResponse, or a header that cannot be sent, gets a 500 logged."""
    for path in (b"/none", b"/bad-header"):
        data = await exchange(
            host, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert data.startswith(b"HTTP/1.1 500"), (path, data)
    assert len(captured_logs.events("http.handler_failed")) == 2


async def test_idle_timeout_cuts_slow_clients_not_slow_handlers(
    gateway_config, nursery, captured_logs
):
    """A handler slower than idle_timeout still answers; a client sending its head too slowly is
    cut; over max_connections a client gets 503."""
    daemon, host = await start_host(
        gateway_config, nursery, 'idle_timeout = "0.5s"\nmax_connections = 1'
    )
    data = await exchange(host, b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"done")
    stream = await trio.open_tcp_stream("127.0.0.1", host.port)
    async with stream:
        await stream.send_all(b"GET /hello HTTP/1.1\r\n")  # and never the rest
        with trio.fail_after(10):
            assert await stream.receive_some(100) == b""
    first = await trio.open_tcp_stream("127.0.0.1", host.port)
    async with first:
        await first.send_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")  # keep-alive: stays open
        with trio.fail_after(10):
            assert (await first.receive_some(65536)).startswith(b"HTTP/1.1 200")
        refused = await exchange(host, b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        assert refused.startswith(b"HTTP/1.1 503")
    daemon.request_stop()


async def test_connections_per_client_address_are_capped(gateway_config, nursery, captured_logs):
    """Past max_connections_per_client from one address, a new connection gets 503; when one
    closes, the next is served again."""
    daemon, host = await start_host(gateway_config, nursery, "max_connections_per_client = 2")
    held = [await trio.open_tcp_stream("127.0.0.1", host.port) for _ in range(2)]
    for stream in held:
        await stream.send_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await read_until(stream, b"hello")).startswith(b"HTTP/1.1 200")
    refused = await exchange(host, b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    assert refused.startswith(b"HTTP/1.1 503") and b"from your address" in refused
    assert captured_logs.events("http.connection_refused")[0]["peer"] == "127.0.0.1"
    await held.pop().aclose()
    await wait_until(lambda: host.statistics()["connections"] == 1)
    ok = await exchange(host, b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert ok.startswith(b"HTTP/1.1 200")
    await held.pop().aclose()
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


def test_bad_routes_are_refused():
    """A route with an auth mode the host does not know, a path not starting with "/", or a
    method that is not a word stops start-up; so does one on the OpenAPI document's path."""
    for route, message in [
        (
            HttpRoute(method="GET", path="/x", handler=_hello, auth="basic"),
            "auth must be one of any, key, hmac, none",
        ),
        (HttpRoute(method="GET", path="x", handler=_hello), 'path start with "/"'),
        (HttpRoute(method="GE T", path="/x", handler=_hello), "method must be a word"),
        (
            HttpRoute(method="GET", path="/openapi.json", handler=_hello),
            "already registered by core",
        ),
    ]:
        with pytest.raises(PluginError, match=message):
            HttpHost(HttpConfig(listen="127.0.0.1:0"), [("p", route)])


async def _serve_bytes(pieces: list[bytes]) -> bytes:
    """Feed ``pieces`` to one connection of a host over an in-memory stream; its answer."""
    config = HttpConfig(listen="127.0.0.1:0", max_body_bytes=100, max_header_bytes=1024)
    host = HttpHost(config, [("t", r) for r in public_routes()])
    client, server = trio.testing.memory_stream_pair()
    answer = bytearray()

    async def serve() -> None:
        async with server:
            await host._serve_http(server, "127.0.0.1")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        for piece in pieces:
            await client.send_all(piece)
        await client.send_eof()
        with trio.fail_after(5):
            while chunk := await client.receive_some(65536):
                answer += chunk
    return bytes(answer)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=60),
            st.sampled_from(
                [
                    b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n",
                    b"POST /boss/dispatch HTTP/1.1\r\nHost: x\r\n",
                    b"Content-Length: 3\r\n\r\nabc",
                    b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                    b"Expect: 100-continue\r\n",
                    b"\r\n",
                ]
            ),
        ),
        max_size=8,
    ),
    st.booleans(),
)
def test_any_bytes_get_answers_or_a_close_never_a_crash(pieces, one_byte_at_a_time):
    """Whatever a client sends, whole or one byte at a time, the host answers each request with
    a status line (never 500) or closes; it never raises."""
    if one_byte_at_a_time:
        pieces = [bytes([b]) for b in b"".join(pieces)]
    answer = trio.run(_serve_bytes, pieces)
    if answer:
        assert answer.startswith(b"HTTP/1.1 ")
        statuses = [int(part[:3]) for part in answer.split(b"HTTP/1.1 ")[1:] if part[:3].isdigit()]
        assert statuses and all(s != 500 for s in statuses), answer[:200]
