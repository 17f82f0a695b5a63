"""The OpenAPI 3.1 document of the routes the HTTP host serves, generated from the routes.

Each ``HttpRoute`` gives its method and path, and may give a one-line ``summary``, JSON Schemas
of its bodies (plain dicts), their media type and its success status. The document also says
how each route authenticates (``components.securitySchemes``) and the answers the host itself
gives (401, 413, ...), so an integrator or a tool (schemathesis) can call every route from it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from gateway.contracts import HttpRoute

OPENAPI_VERSION = "3.1.0"

_SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "any": [{"apiKey": []}, {"basic": []}, {"signedRequest": []}],
    "key": [{"apiKey": []}, {"basic": []}],
    "hmac": [{"signedRequest": []}],
    "none": [],
}

_SCHEMES: dict[str, dict[str, str]] = {
    "apiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Api-Key",
        "description": "The client's API key from [http.clients.NAME] api_key.",
    },
    "basic": {
        "type": "http",
        "scheme": "basic",
        "description": "The client's name and api_key as HTTP Basic credentials (RFC 7617).",
    },
    "signedRequest": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Signature",
        "description": (
            "Hex HMAC-SHA256 with the client's hmac_secret over METHOD\\nTARGET\\nTIMESTAMP\\n"
            "hex(SHA-256(body)); also send X-Client (the client's name) and X-Timestamp "
            "(Unix seconds, within the signature window). Each signature is accepted once."
        ),
    },
}

_HOST_ANSWERS = {
    "400": "Malformed request",
    "413": "Body larger than max_body_bytes",
    "431": "Header block larger than max_header_bytes",
    "500": "The handler failed",
    "503": "Too many connections (or signed requests) right now",
}


def operation_id(plugin: str, route: HttpRoute) -> str:
    """A stable identifier: ``<plugin>_<method>_<path words>``."""
    words = re.sub(r"[^A-Za-z0-9]+", "_", route.path).strip("_") or "root"
    return f"{plugin}_{route.method.lower()}_{words}"


def _operation(plugin: str, route: HttpRoute) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": operation_id(plugin, route),
        "tags": [plugin],
        "security": _SECURITY[route.auth],
    }
    if route.summary:
        operation["summary"] = route.summary
    if route.request_schema is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {route.content_type: {"schema": dict(route.request_schema)}},
        }
    success: dict[str, Any] = {"description": "Done"}
    if route.response_schema is not None:
        success["content"] = {route.content_type: {"schema": dict(route.response_schema)}}
    responses: dict[str, Any] = {str(route.response_status): success}
    if route.auth != "none":
        responses["401"] = {"description": "No, unknown or replayed credentials"}
    for status, text in _HOST_ANSWERS.items():
        responses.setdefault(status, {"description": text})
    operation["responses"] = responses
    return operation


def openapi_document(
    routes: Iterable[tuple[str, HttpRoute]],
    *,
    title: str = "Marketing contact gateway",
    version: str = "1",
    server_url: str = "",
) -> dict[str, Any]:
    """The OpenAPI 3.1 document (a JSON-ready dict) for ``(plugin, route)`` pairs."""
    paths: dict[str, dict[str, Any]] = {}
    for plugin, route in sorted(routes, key=lambda pr: (pr[1].path, pr[1].method)):
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(plugin, route)
    document: dict[str, Any] = {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {"securitySchemes": _SCHEMES},
    }
    if server_url:
        document["servers"] = [{"url": server_url}]
    return document
