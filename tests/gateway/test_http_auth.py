"""Authentication on the HTTP host: API keys and HMAC-signed requests, over real HTTP."""

from __future__ import annotations

import base64
import json
import os

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import hookimpl
from gateway.config import load_config
from gateway.contracts import HttpResponse, HttpRoute
from gateway.daemon import Daemon
from gateway.errors import ConfigError
from gateway.http import Authenticator, AuthRefused, HttpClient, ReplayCache, signature
from gateway.plugin_manager import make_plugin_manager

CRM_KEY = "crm-key-0123456789abcdef"
CRM_SECRET = "crm-secret-0123456789abcdef"
OA_KEY = "oa-key-0123456789abcdef"


async def _whoami(request):
    return HttpResponse(
        headers={"content-type": "application/json"},
        body=json.dumps(
            {
                "client": request.client,
                "bytes": len(request.body),
                "key_passed_on": bool({"x-api-key", "authorization"} & set(request.headers)),
            }
        ).encode(),
    )


class SecuredRoutes:
    @hookimpl
    def gateway_http_routes(self, gateway):
        return [
            HttpRoute(method="POST", path="/crm/feedback", handler=_whoami),  # default: any
            HttpRoute(method="POST", path="/crm/signed", handler=_whoami, auth="hmac"),
            HttpRoute(method="GET", path="/crm/keyed", handler=_whoami, auth="key"),
            HttpRoute(method="GET", path="/click", handler=_whoami, auth="none"),
        ]


HTTP_TOML = f"""
[http]
listen = "127.0.0.1:0"
max_body_bytes = 1000
[http.clients.crm]
api_key = "{CRM_KEY}"
hmac_secret = "{CRM_SECRET}"
[http.clients.oa]
api_key = "{OA_KEY}"
"""


@pytest.fixture
async def host(gateway_config, nursery, captured_logs):
    daemon = Daemon.from_file(gateway_config(HTTP_TOML), extra_plugins=(("crm", SecuredRoutes()),))
    nursery.start_soon(daemon.run)
    await daemon.control_ready.wait()
    (entry,) = [t for t in daemon.supervisor.tasks if t.name == "http"]
    yield entry.obj
    daemon.request_stop()


async def call(
    host, method: str, target: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> tuple[int, bytes]:
    """One request on a new connection; (status, body)."""
    lines = [f"{method} {target} HTTP/1.1", "Host: x", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    stream = await trio.open_tcp_stream("127.0.0.1", host.port)
    data = b""
    async with stream:
        await stream.send_all(raw)
        with trio.fail_after(10):
            while chunk := await stream.receive_some(65536):
                data += chunk
    head, _, payload = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), payload


def signed(
    method: str, target: str, body: bytes, *, at: int, client="crm", secret=CRM_SECRET
) -> dict[str, str]:
    return {
        "X-Client": client,
        "X-Timestamp": str(at),
        "X-Signature": signature(secret, method, target, str(at), body),
    }


async def test_api_key_names_the_client_and_is_never_logged(host, captured_logs):
    """No key or an unknown key gets 401; a good key reaches the handler as the client's name
    (the key itself is not passed on); no log line holds a key."""
    assert (await call(host, "POST", "/crm/feedback", body=b"{}"))[0] == 401
    bad = await call(host, "POST", "/crm/feedback", {"X-Api-Key": CRM_KEY[:-1] + "X"}, b"{}")
    assert bad == (401, b"unknown API key\n")
    status, body = await call(host, "POST", "/crm/feedback", {"X-Api-Key": OA_KEY}, b"{}")
    assert status == 200
    assert json.loads(body) == {"client": "oa", "bytes": 2, "key_passed_on": False}
    status, body = await call(host, "GET", "/crm/keyed", {"X-Api-Key": CRM_KEY})
    assert status == 200 and json.loads(body)["client"] == "crm"
    assert (await call(host, "GET", "/click"))[0] == 200  # a public route
    refused = captured_logs.events("http.auth_refused")
    assert [e["reason"] for e in refused] == [
        "credentials required: X-Api-Key or a signed request",
        "unknown API key",
    ]
    assert all(CRM_KEY[:10] not in line for line in captured_logs.getvalue().splitlines())


async def test_http_basic_credentials_carry_the_key(host, captured_logs):
    """Authorization: Basic with a client's name and API key is accepted (and not passed on);
    a wrong key, an unknown name or malformed credentials get 401."""

    def basic(text: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(text.encode()).decode()}

    status, body = await call(host, "POST", "/crm/feedback", basic(f"crm:{CRM_KEY}"), b"{}")
    assert status == 200
    assert json.loads(body) == {"client": "crm", "bytes": 2, "key_passed_on": False}
    assert (await call(host, "GET", "/crm/keyed", basic(f"oa:{OA_KEY}")))[0] == 200
    for bad in (basic(f"crm:{OA_KEY}"), basic(f"nobody:{CRM_KEY}"), basic(CRM_KEY)):
        assert (await call(host, "GET", "/crm/keyed", bad))[0] == 401
    malformed = {"Authorization": "Basic !!!"}
    assert await call(host, "GET", "/crm/keyed", malformed) == (
        401,
        b"malformed Basic credentials\n",
    )


async def test_signed_requests_bad_and_replayed_signatures_are_refused(host, captured_logs):
    """A good signature passes once; a bad one, a stale timestamp, a replay, a key on an
    hmac-only route and an oversize body are refused."""
    import time

    now = int(time.time())
    body = b'{"offer": "accepted"}'
    headers = signed("POST", "/crm/signed?x=1", body, at=now)
    status, answer = await call(host, "POST", "/crm/signed?x=1", headers, body)
    assert status == 200 and json.loads(answer)["client"] == "crm"
    assert await call(host, "POST", "/crm/signed?x=1", headers, body) == (
        401,
        b"replayed signature\n",
    )
    tampered = await call(host, "POST", "/crm/signed?x=2", headers, body)  # another target
    assert tampered == (401, b"bad signature\n")
    other_body = await call(
        host, "POST", "/crm/signed", signed("POST", "/crm/signed", b"a", at=now), b"b"
    )
    assert other_body == (401, b"bad signature\n")
    stale = signed("POST", "/crm/signed", body, at=now - 301)
    assert (await call(host, "POST", "/crm/signed", stale, body))[0] == 401
    unknown = signed("POST", "/crm/signed", body, at=now, client="oa")  # oa has no secret
    assert (await call(host, "POST", "/crm/signed", unknown, body))[0] == 401
    assert (await call(host, "POST", "/crm/signed", {"X-Api-Key": CRM_KEY}, body))[0] == 401
    big = b"x" * 1001
    assert (
        await call(host, "POST", "/crm/signed", signed("POST", "/crm/signed", big, at=now), big)
    )[0] == 413
    # The default route takes either way of proving who one is.
    fresh = signed("POST", "/crm/feedback", body, at=now + 1)
    assert (await call(host, "POST", "/crm/feedback", fresh, body))[0] == 200
    assert all(CRM_SECRET[:10] not in line for line in captured_logs.getvalue().splitlines())


def test_replay_memory_is_bounded_and_forgets_expired_signatures():
    """At capacity a new live signature is refused with 503 (fail closed); once the stored
    ones leave the window, signatures are accepted again."""
    clock = [1_000_000.0]
    auth = Authenticator(
        {"crm": HttpClient(name="crm", hmac_secret=CRM_SECRET)},
        window=300,
        replay=ReplayCache(capacity=2),
        clock=lambda: clock[0],
    )

    def check(at: int, body: bytes) -> str:
        headers = {k.lower(): v for k, v in signed("POST", "/p", body, at=at).items()}
        return auth.check("hmac", "POST", "/p", headers, body)

    assert check(1_000_000, b"1") == "crm"
    assert check(1_000_000, b"2") == "crm"
    with pytest.raises(AuthRefused) as full:
        check(1_000_000, b"3")
    assert full.value.status == 503
    clock[0] += 301  # the two stored signatures are now outside the window
    assert check(int(clock[0]), b"3") == "crm" and len(auth.replay) == 1


def test_key_compare_checks_every_client():
    """The API key is found whichever client holds it, and a prefix of a key is not a key."""
    auth = Authenticator(
        {n: HttpClient(name=n, api_key=f"{n}-0123456789abcdef") for n in ("a", "b", "c")}
    )
    assert auth.check("key", "GET", "/", {"x-api-key": "c-0123456789abcdef"}, b"") == "c"
    with pytest.raises(AuthRefused):
        auth.check("key", "GET", "/", {"x-api-key": "c-0123456789abcde"}, b"")


def _write(tmp_path, text: str):
    path = tmp_path / "gateway.toml"
    path.write_text(f'[gateway]\nstate_dir = "{tmp_path}/state"\n' + text)
    return path


def test_clients_file_is_read_and_must_not_be_world_readable(tmp_path):
    """Clients come from a separate file; a world-readable one, a short key and a client
    without credentials are refused, naming the key."""
    clients = tmp_path / "clients.toml"
    clients.write_text(f'[clients.boss]\napi_key = "{CRM_KEY}"\n')
    os.chmod(clients, 0o640)
    pm = make_plugin_manager()
    config = load_config(_write(tmp_path, '[http]\nclients_file = "clients.toml"\n'), pm)
    assert config.http.clients["boss"].api_key == CRM_KEY
    assert CRM_KEY not in repr(config.http)
    os.chmod(clients, 0o644)
    with pytest.raises(ConfigError, match="readable by everyone"):
        load_config(_write(tmp_path, '[http]\nclients_file = "clients.toml"\n'), pm)
    with pytest.raises(ConfigError) as short:
        load_config(_write(tmp_path, '[http.clients.x]\napi_key = "short"\n[http.clients.y]\n'), pm)
    text = str(short.value)
    assert "http.clients.x.api_key: must be at least 16" in text
    assert "http.clients.y: needs an api_key, an hmac_secret, or both" in text


@settings(max_examples=200, deadline=None)
@given(
    method=st.sampled_from(["GET", "POST", "PUT"]),
    target=st.text(alphabet="/abcxyz?=&%0123456789", min_size=1, max_size=40),
    body=st.binary(max_size=200),
    flip=st.integers(min_value=0, max_value=10_000),
    part=st.sampled_from(["method", "target", "body", "timestamp", "signature"]),
)
def test_signature_verifies_and_any_change_breaks_it(method, target, body, flip, part):
    """A request signed as documented verifies once; changing the method, target, body,
    timestamp or signature makes it fail."""
    now = 1_700_000_000
    auth = Authenticator(
        {"crm": HttpClient(name="crm", hmac_secret=CRM_SECRET)}, clock=lambda: float(now)
    )
    headers = {k.lower(): v for k, v in signed(method, target, body, at=now).items()}
    changed = dict(headers)
    args = {"method": method, "target": target, "body": body}
    if part == "method":
        args["method"] = "DELETE"
    elif part == "target":
        args["target"] = target + "x"
    elif part == "body":
        args["body"] = body + b"\0" if not body else bytes([body[0] ^ 1]) + body[1:]
    elif part == "timestamp":
        changed["x-timestamp"] = str(now - 1 - flip % 299)
    else:
        sig = headers["x-signature"]
        i = flip % len(sig)
        changed["x-signature"] = sig[:i] + ("0" if sig[i] != "0" else "1") + sig[i + 1 :]
    with pytest.raises(AuthRefused, match="bad signature"):
        auth.check("hmac", args["method"], args["target"], changed, args["body"])
    assert auth.check("hmac", method, target, headers, body) == "crm"


async def test_authenticated_routes_without_clients_are_refused_and_logged(
    gateway_config, nursery, captured_logs
):
    """With no [http.clients], the start logs http.no_clients and authenticated routes answer
    401 (fail closed), while public ones are served."""
    toml = '\n[http]\nlisten = "127.0.0.1:0"\n'
    daemon = Daemon.from_file(gateway_config(toml), extra_plugins=(("crm", SecuredRoutes()),))
    nursery.start_soon(daemon.run)
    await daemon.control_ready.wait()
    (entry,) = [t for t in daemon.supervisor.tasks if t.name == "http"]
    assert captured_logs.events("http.no_clients")
    assert (await call(entry.obj, "POST", "/crm/feedback", {"X-Api-Key": CRM_KEY}, b"{}"))[0] == 401
    assert (await call(entry.obj, "GET", "/click"))[0] == 200
    daemon.request_stop()
