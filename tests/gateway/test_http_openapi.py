"""The OpenAPI document of the HTTP host: generated from the routes, served, and exercised by
schemathesis over real HTTP."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import trio

from gateway import hookimpl
from gateway.contracts import HttpResponse, HttpRoute
from gateway.daemon import Daemon
from gateway.http import HttpConfig, HttpHost, openapi_document

KEY = "openapi-test-key-0123456789"

FEEDBACK_SCHEMA = {
    "type": "object",
    "properties": {
        "msisdn": {"type": "string", "pattern": "^[0-9]{5,15}$"},
        "result": {"type": "string", "enum": ["accepted", "refused"]},
    },
    "required": ["msisdn", "result"],
    "additionalProperties": False,
}
ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"recorded": {"type": "boolean"}, "client": {"type": "string"}},
    "required": ["recorded", "client"],
}


async def _feedback(request):
    try:
        data = json.loads(request.body)
        ok = (
            isinstance(data, dict)
            and set(data) == {"msisdn", "result"}
            and data["result"] in ("accepted", "refused")
            and isinstance(data["msisdn"], str)
        )
    except ValueError:
        ok = False
    if not ok:
        return HttpResponse(status=400, body=b"bad feedback\n")
    answer = {"recorded": True, "client": request.client}
    return HttpResponse(
        status=201, headers={"content-type": "application/json"}, body=json.dumps(answer).encode()
    )


async def _status(request):
    return HttpResponse(
        headers={"content-type": "application/json"},
        body=json.dumps({"recorded": False, "client": request.client}).encode(),
    )


def routes() -> list[HttpRoute]:
    return [
        HttpRoute(
            method="POST",
            path="/crm/feedback",
            handler=_feedback,
            summary="An offer accepted or refused at a counter",
            request_schema=FEEDBACK_SCHEMA,
            response_schema=ANSWER_SCHEMA,
            response_status=201,
        ),
        HttpRoute(
            method="GET",
            path="/crm/feedback",
            handler=_status,
            auth="key",
            response_schema=ANSWER_SCHEMA,
        ),
        HttpRoute(method="GET", path="/wap/click", handler=_status, auth="none"),
    ]


class Routes:
    @hookimpl
    def gateway_http_routes(self, gateway):
        return routes()


async def start(gateway_config, nursery, extra: str = ""):
    toml = f'\n[http]\nlisten = "127.0.0.1:0"\n{extra}\n[http.clients.crm]\napi_key = "{KEY}"\n'
    daemon = Daemon.from_file(gateway_config(toml), extra_plugins=(("crm", Routes()),))
    nursery.start_soon(daemon.run)
    await daemon.control_ready.wait()
    (entry,) = [t for t in daemon.supervisor.tasks if t.name == "http"]
    return entry.obj


async def get(port: int, path: str) -> tuple[int, bytes]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    data = b""
    async with stream:
        await stream.send_all(
            f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        )
        with trio.fail_after(10):
            while chunk := await stream.receive_some(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def test_document_matches_the_routes():
    """Every route is in the document with its method, security, schemas and success status,
    and nothing else is."""
    document = openapi_document([("crm", r) for r in routes()])
    assert document["openapi"] == "3.1.0"
    listed = {(path, method.upper()) for path, ops in document["paths"].items() for method in ops}
    assert listed == {(r.path, r.method) for r in routes()}
    post = document["paths"]["/crm/feedback"]["post"]
    assert post["security"] == [{"apiKey": []}, {"basic": []}, {"signedRequest": []}]
    assert post["requestBody"]["content"]["application/json"]["schema"] == FEEDBACK_SCHEMA
    assert post["responses"]["201"]["content"]["application/json"]["schema"] == ANSWER_SCHEMA
    assert post["summary"] == "An offer accepted or refused at a counter"
    assert document["paths"]["/crm/feedback"]["get"]["security"] == [{"apiKey": []}, {"basic": []}]
    click = document["paths"]["/wap/click"]["get"]
    assert click["security"] == [] and "401" not in click["responses"]
    assert set(document["components"]["securitySchemes"]) == {"apiKey", "basic", "signedRequest"}


async def test_document_is_served_without_credentials(gateway_config, nursery, captured_logs):
    """GET /openapi.json (the default path) answers the document of the host's routes."""
    host = await start(gateway_config, nursery)
    status, body = await get(host.port, "/openapi.json")
    assert status == 200 and json.loads(body) == host.openapi
    assert set(json.loads(body)["paths"]) == {"/crm/feedback", "/wap/click"}


async def test_openapi_path_is_configurable(gateway_config, nursery, captured_logs):
    """openapi_path moves the document; "" turns it off."""
    host = await start(gateway_config, nursery, 'openapi_path = "/api/doc.json"')
    assert (await get(host.port, "/api/doc.json"))[0] == 200
    assert (await get(host.port, "/openapi.json"))[0] == 404
    off = HttpHost(HttpConfig(listen="127.0.0.1:0", openapi_path=""), [("crm", routes()[0])])
    assert set(off.routes) == {"/crm/feedback"}


@pytest.mark.skipif(
    shutil.which("st", path=str(Path(sys.executable).parent)) is None,
    reason="schemathesis not installed (pip install -e '.[test]')",
)
async def test_schemathesis_finds_no_server_error(gateway_config, nursery, captured_logs, tmp_path):
    """schemathesis, reading the served document, calls every operation with generated valid
    and invalid inputs (with a client's key): no 5xx, answers conform to the document."""
    host = await start(gateway_config, nursery)
    st = str(Path(sys.executable).parent / "st")
    result = await trio.run_process(
        [
            st,
            "run",
            f"http://127.0.0.1:{host.port}/openapi.json",
            "--header",
            f"X-Api-Key: {KEY}",
            "--checks",
            "not_a_server_error,response_schema_conformance,content_type_conformance",
            "--max-examples",
            "25",
            "--seed",
            "1",
            "--no-color",
        ],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        cwd=tmp_path,
    )
    out = result.stdout.decode() + result.stderr.decode()
    assert result.returncode == 0, out[-4000:]
    assert "Tested: 3" in out and "No issues found" in out, out[-2000:]
