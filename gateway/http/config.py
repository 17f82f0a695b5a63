"""The ``[http]`` table: listen address, limits, TLS, client credentials, OpenAPI path.

Parsed here beside the host it configures; ``gateway.config`` calls :func:`parse_http` and
re-exports :class:`HttpConfig`. Client credentials come from ``[http.clients.NAME]`` tables or
from a separate ``clients_file`` (same tables under ``[clients.NAME]``), which may be readable
by its owner and group only, so that the main configuration can be world-readable.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from gateway.config_reader import TableReader
from gateway.errors import ConfigProblem

#: Client-certificate modes of ``tls_client_auth``.
TLS_CLIENT_AUTH = ("none", "optional", "required")
#: Shortest API key or HMAC secret accepted: 16 characters (128 bits as hex would be 32).
MIN_SECRET_LENGTH = 16


@attrs.frozen(kw_only=True)
class HttpClient:
    """One caller of authenticated routes; the secrets never appear in a repr or a log."""

    name: str
    api_key: str = attrs.field(default="", repr=False)
    hmac_secret: str = attrs.field(default="", repr=False)


@attrs.frozen(kw_only=True)
class HttpConfig:
    """The ``[http]`` table: the shared HTTP host for plugin routes (off unless ``listen``)."""

    listen: str = ""  # "127.0.0.1:8080"; empty: routes are not served
    max_body_bytes: int = 10 * 1024 * 1024
    #: The request line and header block together; more gets 431.
    max_header_bytes: int = 16 * 1024
    idle_timeout: float = 30.0
    max_connections: int = 256
    max_connections_per_client: int = 32
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    tls_client_auth: str = "none"
    clients: Mapping[str, HttpClient] = attrs.field(factory=dict)
    clients_file: Path | None = None
    signature_window: float = 300.0
    replay_cache_size: int = 100_000
    openapi_path: str = "/openapi.json"

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None


#: Every key: the host is built once, so each one takes effect at the next start.
RESTART_KEYS: tuple[str, ...] = tuple(a.name for a in attrs.fields(HttpConfig))


def _resolve(base: Path | None, value: str) -> Path:
    path = Path(value).expanduser()
    if not path.is_absolute() and base is not None:
        path = Path(os.path.normpath(base / path))
    return path


def _read_clients(r: TableReader, key: str, found: dict[str, HttpClient]) -> None:
    """Add the ``[...clients.NAME]`` tables under reader ``r`` to ``found``."""
    for name, table in r.subtables(key).items():
        api_key = table.str("api_key", "")
        secret = table.str("hmac_secret", "")
        table.check_unknown()
        if name in found:
            table.problem("", "client defined twice (in [http.clients] and the clients file)")
            continue
        if not api_key and not secret:
            table.problem("", "needs an api_key, an hmac_secret, or both")
            continue
        for field, value in (("api_key", api_key), ("hmac_secret", secret)):
            if value and (len(value) < MIN_SECRET_LENGTH or not value.isprintable()):
                table.problem(field, f"must be at least {MIN_SECRET_LENGTH} printable characters")
        found[name] = HttpClient(name=name, api_key=api_key or "", hmac_secret=secret or "")
    keys = [c.api_key for c in found.values() if c.api_key]
    if len(keys) != len(set(keys)):
        r.problem(key, "two clients share one api_key")


def _read_clients_file(
    path: Path, problems: list[ConfigProblem], found: dict[str, HttpClient]
) -> None:
    key = "http.clients_file"
    try:
        mode = path.stat().st_mode
        if mode & stat.S_IROTH:
            problems.append(ConfigProblem(key, f"{path} is readable by everyone: chmod o-rwx it"))
            return
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        problems.append(ConfigProblem(key, f"cannot read {path}: {exc}"))
        return
    reader = TableReader(data, f"{path}", problems=problems)
    _read_clients(reader, "clients", found)
    reader.check_unknown()


def parse_http(
    table: Mapping[str, Any], problems: list[ConfigProblem], base: Path | None = None
) -> HttpConfig:
    """Parse ``[http]``; relative file names are resolved against ``base``."""
    d = HttpConfig()
    r = TableReader(table, "http", problems=problems)
    listen = r.str("listen", d.listen)
    if listen:
        host, sep, port = listen.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            r.problem("listen", f'must be HOST:PORT such as "127.0.0.1:8080", got {listen!r}')
            listen = ""
    max_body = r.int("max_body_bytes", d.max_body_bytes, min=0)
    max_header = r.int("max_header_bytes", d.max_header_bytes, min=1024, max=1024 * 1024)
    idle = r.duration("idle_timeout", d.idle_timeout, min=0.1)
    max_conn = r.int("max_connections", d.max_connections, min=1)
    per_client = r.int("max_connections_per_client", d.max_connections_per_client, min=1)
    files: dict[str, Path | None] = {}
    for name in ("tls_cert", "tls_key", "tls_client_ca", "clients_file"):
        value = r.str(name, "")
        files[name] = _resolve(base, value) if value else None
    for name in ("tls_cert", "tls_key", "tls_client_ca"):
        path = files[name]
        if path is not None and not path.is_file():
            r.problem(name, f"no such file: {path}")
    client_auth = r.str("tls_client_auth", d.tls_client_auth, choices=TLS_CLIENT_AUTH)
    if (files["tls_cert"] is None) != (files["tls_key"] is None):
        r.problem("tls_key", "tls_cert and tls_key go together")
    if files["tls_client_ca"] is not None and files["tls_cert"] is None:
        r.problem("tls_client_ca", "client certificates need TLS: set tls_cert and tls_key")
    if (client_auth not in (None, "none")) != (files["tls_client_ca"] is not None):
        r.problem(
            "tls_client_auth",
            'tls_client_auth "optional" or "required" goes with tls_client_ca (and only then)',
        )
    window = r.duration("signature_window", d.signature_window, min=1, max=3600)
    cache = r.int("replay_cache_size", d.replay_cache_size, min=1)
    openapi = r.str("openapi_path", d.openapi_path)
    if openapi and not openapi.startswith("/"):
        r.problem("openapi_path", f'must be a path such as "/openapi.json", got {openapi!r}')
    clients: dict[str, HttpClient] = {}
    _read_clients(r, "clients", clients)
    if files["clients_file"] is not None:
        _read_clients_file(files["clients_file"], problems, clients)
    r.check_unknown()
    return HttpConfig(
        listen=listen or "",
        max_body_bytes=d.max_body_bytes if max_body is None else max_body,
        max_header_bytes=max_header or d.max_header_bytes,
        idle_timeout=idle or d.idle_timeout,
        max_connections=max_conn or d.max_connections,
        max_connections_per_client=per_client or d.max_connections_per_client,
        tls_cert=files["tls_cert"],
        tls_key=files["tls_key"],
        tls_client_ca=files["tls_client_ca"],
        tls_client_auth=client_auth or d.tls_client_auth,
        clients=clients,
        clients_file=files["clients_file"],
        signature_window=window or d.signature_window,
        replay_cache_size=cache or d.replay_cache_size,
        openapi_path=d.openapi_path if openapi is None else openapi,
    )
