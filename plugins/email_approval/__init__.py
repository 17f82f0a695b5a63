"""Email approval: a notification email per waiting approver through the SMTP relay, and an
SMTP server (aiosmtpd) receiving the replies that approve or reject.

Registered through the entry point
``email_approval = "plugins.email_approval:EmailApprovalPlugin"`` (one instance per plugin
manager); configured by ``[plugins.email_approval]`` (off unless ``from_address`` is set). The checks a
reply must pass are in :mod:`.service`; the asyncio island in :mod:`.server`; tokens and reply
parsing in :mod:`.token`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from gateway.config_reader import TableReader
from gateway.contracts import SectionSpec
from gateway.hookspecs import hookimpl
from plugins.email_approval.service import EmailApprovalService

NAME = "email_approval"


@attrs.frozen(kw_only=True)
class EmailApprovalConfig:
    from_address: str = ""  # empty: the plugin is off
    reply_address: str = ""  # where replies go (this server's mailbox); default from_address
    relay_host: str = "127.0.0.1"
    relay_port: int = 25
    relay_starttls: bool = False
    relay_user: str = ""
    relay_password: str = ""
    relay_timeout: float = 30.0
    listen: str = "127.0.0.1:8025"  # loopback by default
    tls_cert: str = ""  # STARTTLS is offered when a certificate (and key) is configured
    tls_key: str = ""
    secret: str = ""  # signs the tokens (HMAC-SHA256); at least 16 characters
    token_ttl: float = 72 * 3600.0
    max_message_bytes: int = 256 * 1024
    rate_per_minute: int = 20  # replies per peer address and per sender


def parse_email_approval_config(table: Mapping[str, Any], key: str) -> EmailApprovalConfig:
    r = TableReader(table, key)
    d = EmailApprovalConfig()
    from_address = r.str("from_address", d.from_address) or ""
    secret = r.str("secret", d.secret) or ""
    if from_address and len(secret) < 16:
        r.problem("secret", "set a secret of at least 16 characters (it signs the reply tokens)")
    listen = r.str("listen", d.listen) or d.listen
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not host:
        r.problem("listen", f"must be HOST:PORT, got {listen!r}")
    cert, keyfile = r.str("tls_cert", d.tls_cert) or "", r.str("tls_key", d.tls_key) or ""
    if bool(cert) != bool(keyfile):
        r.problem("tls_cert", "tls_cert and tls_key go together")
    config = EmailApprovalConfig(
        from_address=from_address,
        reply_address=r.str("reply_address", d.reply_address) or "",
        relay_host=r.str("relay_host", d.relay_host),
        relay_port=r.int("relay_port", d.relay_port, min=1, max=65535),
        relay_starttls=r.bool("relay_starttls", d.relay_starttls),
        relay_user=r.str("relay_user", d.relay_user) or "",
        relay_password=r.str("relay_password", d.relay_password) or "",
        relay_timeout=r.duration("relay_timeout", d.relay_timeout, min=1),
        listen=listen,
        tls_cert=cert,
        tls_key=keyfile,
        secret=secret,
        token_ttl=r.duration("token_ttl", d.token_ttl, min=60),
        max_message_bytes=r.int("max_message_bytes", d.max_message_bytes, min=1024),
        rate_per_minute=r.int("rate_per_minute", d.rate_per_minute, min=1),
    )
    r.finish()
    return config


class EmailApprovalPlugin:
    """One instance per process (entry points load objects); holds its gateway's service."""

    def __init__(self) -> None:
        self.service: EmailApprovalService | None = None

    def service_of(self, gateway: Any) -> EmailApprovalService | None:
        config: EmailApprovalConfig = gateway.plugin_config(NAME)
        if not config.from_address:
            return None
        if self.service is None or self.service.gateway is not gateway:
            self.service = EmailApprovalService(gateway, config)
        return self.service

    @hookimpl
    def gateway_config_sections(self) -> Iterable[SectionSpec]:
        return [
            SectionSpec(
                name=NAME,
                parse=parse_email_approval_config,
                optional=True,
                restart_keys=("listen", "tls_cert", "tls_key"),
            )
        ]

    @hookimpl
    def gateway_services(self, gateway: Any) -> Iterable[EmailApprovalService]:
        service = self.service_of(gateway)
        return [service] if service is not None else []

    @hookimpl
    def gateway_status(self, gateway: Any) -> Mapping[str, Any] | None:
        service = self.service_of(gateway)
        return service.statistics() if service is not None else None
