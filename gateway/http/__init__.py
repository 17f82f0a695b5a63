"""The shared HTTP host: serves the routes plugins return from ``gateway_http_routes``.

An HTTP/1.1 server on Trio (``[http] listen = "127.0.0.1:8080"``) for the webservice endpoints
of BOSS/CRM, MMS centres and OA callbacks: exact-path routes, each authenticated by API key or
HMAC-signed request unless it says ``auth="none"``; optional TLS with client certificates;
limits on header block, body and connections; an OpenAPI document generated from the routes.
The HTTP/1.1 framing is h11's (sans-IO), the I/O Trio's.

- :mod:`gateway.http.config`: the ``[http]`` table;
- :mod:`gateway.http.auth`: API keys, signatures, the replay memory;
- :mod:`gateway.http.openapi`: the document;
- :mod:`gateway.http.tls`: the TLS context;
- :mod:`gateway.http.host`: the server loop.
"""

from gateway.http.auth import Authenticator, AuthRefused, ReplayCache, signature
from gateway.http.config import HttpClient, HttpConfig, parse_http
from gateway.http.host import HttpHost
from gateway.http.openapi import openapi_document
from gateway.http.tls import server_ssl_context

__all__ = [
    "AuthRefused",
    "Authenticator",
    "HttpClient",
    "HttpConfig",
    "HttpHost",
    "ReplayCache",
    "openapi_document",
    "parse_http",
    "server_ssl_context",
    "signature",
]
