"""Outbound BOSS calls: ``[plugins.boss_orders]``.

Registered through the entry point ``boss_orders = "plugins.boss_orders"``. Two things:

- the product order when a subscriber accepts an offer (``gateway_offer_accepted``): placed
  once per contact id, durably queued while the BOSS is down, its result sent back by SMS
  (:mod:`.service`, :mod:`.store`);
- the subscriber status before a contact, for campaigns whose trigger has a ``boss_status``
  condition (:mod:`.status`).

Both speak SOAP 1.1 or JSON by configured templates (:mod:`.codec`), with timeouts, retries
with backoff and a circuit breaker (:mod:`.client`, :mod:`.breaker`).

The observer and condition hooks receive no ``gateway``; they reach the running service
through :data:`RUNNING`, set by ``gateway_services`` and cleared when the service stops: one
daemon per process, as gatewayd runs (a test opening a second daemon replaces it).
"""

from __future__ import annotations

from typing import Any

from gateway.contracts import SectionSpec
from gateway.hookspecs import hookimpl
from plugins.boss_orders.config import BossOrdersConfig, parse_boss_orders_config
from plugins.boss_orders.service import OrderService
from plugins.boss_orders.status import StatusCache, condition_factory

NAME = "boss_orders"
RESTART_KEYS = (
    "url",
    "protocol",
    "wsdl",
    "username",
    "password",
    "headers",
    "timeout",
    "attempts",
    "backoff",
    "breaker_failures",
    "breaker_reset",
    "order_retry_max",
    "concurrency",
    "status_cache_ttl",
    "max_answer_bytes",
    "products",
    "order",
    "status",
    "result_sms",
)


class _Running:
    """The order service of the daemon running in this process, if any."""

    service: OrderService | None = None

    def cache(self) -> StatusCache | None:
        return self.service.status_cache if self.service is not None else None


RUNNING = _Running()


@hookimpl
def gateway_config_sections():
    return [
        SectionSpec(
            name=NAME,
            parse=parse_boss_orders_config,
            optional=True,
            # the service and its client are built at start from the whole section
            restart_keys=RESTART_KEYS,
        )
    ]


@hookimpl
def gateway_services(gateway: Any):
    config: BossOrdersConfig = gateway.plugin_config(NAME)
    if not config.enabled:
        RUNNING.service = None
        return []
    service = OrderService(gateway=gateway, config=config)
    RUNNING.service = service
    return [service]


@hookimpl
def gateway_start(gateway: Any):
    """Say so when campaigns ask for the BOSS status that nobody will look up."""
    config: BossOrdersConfig = gateway.plugin_config(NAME)
    if (config.enabled and config.status is not None) or gateway.campaigns is None:
        return
    asking = sorted(
        cdef.id
        for cdef in gateway.campaigns.list()
        if cdef.trigger is not None
        and any(getattr(c, "name", None) == "boss_status" for c in cdef.trigger.conditions)
    )
    if asking:
        gateway.logger(plugin=NAME).error(
            "boss.status_not_configured",
            campaigns=asking,
            hint="these campaigns contact nobody: configure [plugins.boss_orders] url and [status]",
        )


@hookimpl
def gateway_condition_types():
    return {"boss_status": condition_factory(RUNNING.cache)}


@hookimpl
def gateway_offer_accepted(acceptance):
    service = RUNNING.service
    if service is not None:
        service.accept(acceptance)


@hookimpl
def gateway_status(gateway: Any):
    service = RUNNING.service
    if service is None or service.gateway is not gateway:
        return None
    return service.statistics()
