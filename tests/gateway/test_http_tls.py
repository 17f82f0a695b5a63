"""TLS on the HTTP host, over real TLS on loopback with certificates made by trustme."""

from __future__ import annotations

import ssl

import pytest
import trio
import trustme

from gateway import hookimpl
from gateway.contracts import HttpResponse, HttpRoute
from gateway.daemon import Daemon
from gateway.errors import ConfigError
from gateway.http import HttpConfig, HttpHost

KEY = "tls-test-key-0123456789"


class HelloRoutes:
    @hookimpl
    def gateway_http_routes(self, gateway):
        async def hello(request):
            return HttpResponse(body=f"hello {request.client}".encode())

        return [HttpRoute(method="GET", path="/hello", handler=hello)]


@pytest.fixture
def pki(tmp_path):
    """A CA, the server's certificate for 127.0.0.1 and its key, as files."""
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1")
    files = {"ca": tmp_path / "ca.pem", "cert": tmp_path / "cert.pem", "key": tmp_path / "key.pem"}
    ca.cert_pem.write_to_path(files["ca"])
    server.cert_chain_pems[0].write_to_path(files["cert"])
    server.private_key_pem.write_to_path(files["key"])
    return ca, files


async def start(gateway_config, nursery, pki, extra: str = "") -> HttpHost:
    _, files = pki
    toml = (
        f'\n[http]\nlisten = "127.0.0.1:0"\ntls_cert = "{files["cert"]}"\n'
        f'tls_key = "{files["key"]}"\n{extra}\n[http.clients.crm]\napi_key = "{KEY}"\n'
    )
    daemon = Daemon.from_file(gateway_config(toml), extra_plugins=(("t", HelloRoutes()),))
    nursery.start_soon(daemon.run)
    await daemon.control_ready.wait()
    (entry,) = [t for t in daemon.supervisor.tasks if t.name == "http"]
    return entry.obj


async def get_hello(port: int, context: ssl.SSLContext) -> bytes:
    stream = await trio.open_ssl_over_tcp_stream(
        "127.0.0.1", port, ssl_context=context, https_compatible=True
    )
    data = b""
    async with stream:
        await stream.send_all(
            f"GET /hello HTTP/1.1\r\nHost: x\r\nX-Api-Key: {KEY}\r\nConnection: close\r\n\r\n".encode()
        )
        with trio.fail_after(10):
            while chunk := await stream.receive_some(65536):
                data += chunk
    return data


def client_context(ca: trustme.CA, cert: trustme.LeafCert | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    if cert is not None:
        cert.configure_cert(context)
    return context


async def test_requests_over_tls(gateway_config, nursery, captured_logs, pki):
    """A client trusting the CA is served over TLS; a plain-text request gets no HTTP answer."""
    ca, _ = pki
    host = await start(gateway_config, nursery, pki)
    data = await get_hello(host.port, client_context(ca))
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"hello crm")
    stream = await trio.open_tcp_stream("127.0.0.1", host.port)
    async with stream:
        await stream.send_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        with trio.fail_after(10):
            try:
                while chunk := await stream.receive_some(65536):
                    answer += chunk
            except trio.BrokenResourceError:
                pass
    assert not answer.startswith(b"HTTP/")


async def test_client_certificate_required(gateway_config, nursery, captured_logs, pki):
    """With tls_client_auth = "required", a client without a certificate, or with one from
    another CA, gets no answer; a client with a certificate from tls_client_ca is served."""
    ca, files = pki
    host = await start(
        gateway_config,
        nursery,
        pki,
        f'tls_client_ca = "{files["ca"]}"\ntls_client_auth = "required"',
    )
    assert (
        await get_hello(host.port, client_context(ca, ca.issue_cert("crm.example")))
    ).startswith(b"HTTP/1.1 200")
    stranger = trustme.CA().issue_cert("crm.example")
    for context in (client_context(ca), client_context(ca, stranger)):
        try:
            data = await get_hello(host.port, context)
        except trio.BrokenResourceError:  # the handshake failed on our side: an alert
            data = b""
        assert not data.startswith(b"HTTP/"), data
    assert captured_logs.events("http.tls_refused")


async def test_optional_client_certificate(gateway_config, nursery, captured_logs, pki):
    """With tls_client_auth = "optional", a client without a certificate is served."""
    ca, files = pki
    host = await start(
        gateway_config,
        nursery,
        pki,
        f'tls_client_ca = "{files["ca"]}"\ntls_client_auth = "optional"',
    )
    assert (await get_hello(host.port, client_context(ca))).startswith(b"HTTP/1.1 200")


def test_unloadable_certificate_is_a_config_error(tmp_path, pki):
    """A certificate file that is not one stops start-up, naming http.tls_cert."""
    _, files = pki
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    config = HttpConfig(listen="127.0.0.1:0", tls_cert=bad, tls_key=files["key"])
    with pytest.raises(ConfigError, match=r"http\.tls_cert: cannot load"):
        HttpHost(config, [])


async def test_stalled_handshake_is_cut_after_idle_timeout(
    gateway_config, nursery, captured_logs, pki
):
    """A client that connects and never starts the TLS handshake is closed after idle_timeout."""
    host = await start(gateway_config, nursery, pki, 'idle_timeout = "0.5s"')
    stream = await trio.open_tcp_stream("127.0.0.1", host.port)
    async with stream:
        with trio.fail_after(10):
            assert await stream.receive_some(100) == b""


def test_missing_tls_files_are_named_by_the_config_check(tmp_path):
    """A TLS file that does not exist, or a client CA without TLS, is a configuration problem
    naming its key (gatewayd --check-config sees it before a start)."""
    from gateway.config import load_config
    from gateway.plugin_manager import make_plugin_manager

    path = tmp_path / "gateway.toml"
    path.write_text(
        f'[gateway]\nstate_dir = "{tmp_path}/state"\n[http]\ntls_cert = "nope.pem"\n'
        'tls_key = "nope.key"\ntls_client_auth = "required"\n'
    )
    with pytest.raises(ConfigError) as problems:
        load_config(path, make_plugin_manager())
    text = str(problems.value)
    assert f"http.tls_cert: no such file: {tmp_path / 'nope.pem'}" in text
    assert "http.tls_key: no such file" in text
    assert "http.tls_client_auth:" in text
