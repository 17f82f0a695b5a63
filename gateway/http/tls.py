"""TLS for the HTTP host: the server context from ``[http] tls_*`` (RFC 8446, TLS 1.2+).

The host wraps each accepted connection in ``trio.SSLStream`` with this context; a client
certificate, when asked for, must chain to ``tls_client_ca``.
"""

from __future__ import annotations

import ssl

from gateway.errors import ConfigError, ConfigProblem
from gateway.http.config import HttpConfig


def server_ssl_context(config: HttpConfig) -> ssl.SSLContext:
    """The TLS context of ``[http] tls_*``; raises ConfigError naming the key at fault."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    assert config.tls_cert is not None and config.tls_key is not None
    try:
        context.load_cert_chain(config.tls_cert, config.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            [ConfigProblem("http.tls_cert", f"cannot load {config.tls_cert}: {exc}")]
        ) from exc
    if config.tls_client_ca is not None:
        try:
            context.load_verify_locations(cafile=config.tls_client_ca)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                [ConfigProblem("http.tls_client_ca", f"cannot load {config.tls_client_ca}: {exc}")]
            ) from exc
        context.verify_mode = (
            ssl.CERT_REQUIRED if config.tls_client_auth == "required" else ssl.CERT_OPTIONAL
        )
    return context
