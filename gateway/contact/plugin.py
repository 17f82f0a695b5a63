"""The contact-control core, registered as a default plugin (see ``gateway.default_plugins``).

Hooks: the ``[contact]`` config section, the store (opens the backend and sets
``gateway.contact_control`` and ``gateway.ledger``), the admin commands (``why``, ``dnd``,
``contacts``, in :mod:`gateway.contact.admin`) and a status fragment.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import attrs
import structlog

from gateway.contact.config import RESTART_KEYS, ContactConfig, parse_contact_config
from gateway.contracts import AdminCommand, SectionSpec
from gateway.hookspecs import hookimpl


@hookimpl
def gateway_config_sections() -> Iterable[SectionSpec]:
    return [
        SectionSpec(
            name="contact",
            parse=parse_contact_config,
            optional=True,
            top_level=True,
            restart_keys=RESTART_KEYS,
        )
    ]


def contact_config(gateway: Any) -> ContactConfig:
    """The parsed ``[contact]`` section, its timezone defaulting to ``[gateway] timezone``."""
    sections = getattr(gateway.config, "sections", {}) or {}
    config = sections.get("contact") or parse_contact_config({})
    core = getattr(gateway.config, "gateway", None)
    if not config.timezone:
        config = attrs.evolve(config, timezone=getattr(core, "timezone", None) or "Asia/Shanghai")
    if not config.synchronous:
        config = attrs.evolve(
            config, synchronous=getattr(core, "sqlite_synchronous", None) or "full"
        )
    return config


@asynccontextmanager
async def open_contact_control(gateway: Any) -> AsyncIterator[Any]:
    """Open the configured backend and publish it on ``gateway`` for the other components."""
    config = contact_config(gateway)
    log = structlog.get_logger()

    async def preempt(contact_id: str) -> bool:
        outbox = gateway.outbox
        if outbox is None:
            return False
        return bool(await outbox.cancel(contact_id, "preempted"))

    path = gateway.state_dir / "gateway.sqlite"
    if config.backend == "redis":
        from gateway.contact.redis_backend import open_redis_contact_control

        opener = open_redis_contact_control(config, path, preemptor=preempt)
    else:
        from gateway.contact.sqlite_backend import open_sqlite_contact_control

        opener = open_sqlite_contact_control(config, path, preemptor=preempt)
    async with opener as control:
        control.on_recorded_many = gateway.observe_decisions
        gateway.contact_control = control
        gateway.ledger = control.ledger
        gateway.metrics.gauge("contact.reservations_open", control.open_reservations)
        log.info(
            "contact.ready",
            backend=config.backend,
            timezone=config.timezone,
            caps=len(config.caps),
            lists=control.lists.sizes(),
        )
        try:
            yield control
        finally:
            gateway.contact_control = None
            gateway.ledger = None


@hookimpl
def gateway_stores(gateway: Any) -> Iterable[Any]:
    return [open_contact_control(gateway)]


@hookimpl
def gateway_reload(gateway: Any) -> None:
    """New lists categories, hours, caps and cooldowns apply at once; storage needs a restart."""
    control = gateway.contact_control
    if control is None:
        return
    config = contact_config(gateway)
    kept = control.reconfigure(config)
    log = structlog.get_logger()
    if kept:
        log.warning("contact.reload_needs_restart", keys=kept)
    log.info("contact.reloaded", caps=len(config.caps), hours=sorted(config.contact_hours))


@hookimpl
def gateway_admin_commands(gateway: Any) -> Iterable[AdminCommand]:
    from gateway.contact.admin import admin_commands

    return admin_commands(gateway)


@hookimpl
def gateway_status(gateway: Any) -> Mapping[str, Any] | None:
    control = gateway.contact_control
    if control is None or not hasattr(control, "status"):
        return None
    return control.status()
