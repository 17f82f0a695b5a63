"""OA integration: a to-do in the approver's OA inbox for every waiting approval, withdrawn
when the step is decided elsewhere; OA's decision callback on the core HTTP host; an SMS
reminder to the approver through the SMS channel, as a service message.

Registered through the entry point ``oa = "plugins.oa:OaPlugin"`` (one instance per plugin
manager); configured by ``[plugins.oa]`` (off
unless ``todo_url`` is set). It meets the approval workflow only through ``gateway.approvals``
(the :class:`~gateway.approval.book.ApprovalBook`) and the staff directory.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from gateway.config_reader import TableReader
from gateway.contracts import HttpRoute, SectionSpec
from gateway.hookspecs import hookimpl
from plugins.oa.service import OaService

NAME = "oa"


@attrs.frozen(kw_only=True)
class OaConfig:
    todo_url: str = ""  # OA's to-do webservice (POST JSON); empty: the plugin is off
    callback_path: str = "/oa/approval-callback"
    #: shared with OA: signs our pushes and OA's callbacks (HMAC-SHA256, see service.py)
    secret: str = ""
    #: the link a to-do carries; {approval} and {campaign} are filled in
    link: str = "gatewayctl approvals show {approval}"
    timeout: float = 10.0
    attempts: int = 5  # per push, with doubling backoff from 1 s
    max_skew: float = 300.0  # accepted age of a callback's timestamp
    sms_reminder: bool = True
    sms_channel: str = "sms"
    #: the campaign class of reminders: give it its exemptions in [contact.exemptions]
    reminder_class: str = "service"
    reminder_text: str = "Approval waiting for you: {name} ({campaign}). {link}"


def parse_oa_config(table: Mapping[str, Any], key: str) -> OaConfig:
    r = TableReader(table, key)
    d = OaConfig()
    todo_url = r.str("todo_url", d.todo_url)
    secret = r.str("secret", d.secret)
    if todo_url and not todo_url.startswith(("http://", "https://")):
        r.problem("todo_url", "must be an http:// or https:// URL")
    if todo_url and (secret is None or len(secret) < 16):
        r.problem("secret", "set a shared secret of at least 16 characters (it signs callbacks)")
    path = r.str("callback_path", d.callback_path)
    if path is not None and not path.startswith("/"):
        r.problem("callback_path", "must start with /")
    config = OaConfig(
        todo_url=todo_url or "",
        callback_path=path or d.callback_path,
        secret=secret or "",
        link=r.str("link", d.link),
        timeout=r.duration("timeout", d.timeout, min=0.1),
        attempts=r.int("attempts", d.attempts, min=1, max=20),
        max_skew=r.duration("max_skew", d.max_skew, min=1),
        sms_reminder=r.bool("sms_reminder", d.sms_reminder),
        sms_channel=r.str("sms_channel", d.sms_channel),
        reminder_class=r.str("reminder_class", d.reminder_class),
        reminder_text=r.str("reminder_text", d.reminder_text),
    )
    r.finish()
    return config


class OaPlugin:
    """One instance per plugin manager: holds the service of its gateway."""

    def __init__(self) -> None:
        self.service: OaService | None = None

    def service_of(self, gateway: Any) -> OaService | None:
        config: OaConfig = gateway.plugin_config(NAME)
        if not config.todo_url:
            return None
        if self.service is None or self.service.gateway is not gateway:
            self.service = OaService(gateway, config)
        return self.service

    @hookimpl
    def gateway_config_sections(self) -> Iterable[SectionSpec]:
        return [SectionSpec(name=NAME, parse=parse_oa_config, optional=True)]

    @hookimpl
    def gateway_services(self, gateway: Any) -> Iterable[OaService]:
        service = self.service_of(gateway)
        return [service] if service is not None else []

    @hookimpl
    def gateway_http_routes(self, gateway: Any) -> Iterable[HttpRoute]:
        service = self.service_of(gateway)
        if service is None:
            return []
        return [
            # OA signs its callbacks (HMAC with a timestamp), checked by the handler itself
            HttpRoute(
                method="POST",
                path=service.config.callback_path,
                handler=service.callback,
                auth="none",
            )
        ]

    @hookimpl
    def gateway_status(self, gateway: Any) -> Mapping[str, Any] | None:
        service = self.service_of(gateway)
        return service.statistics() if service is not None else None
