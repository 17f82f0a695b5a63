"""The outbox as a core component: ``[outbox]`` config, the store, ``gatewayctl outbox``, status."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import trio

from gateway.contracts import AdminCommand, AdminReply, SectionSpec
from gateway.errors import AdminCommandError
from gateway.hookspecs import hookimpl
from gateway.outbox.config import OutboxConfig, parse_outbox_config
from gateway.outbox.outbox import open_outbox
from gateway.staff.acting import clear_or_masked, masked

DB_NAME = "gateway.sqlite"


def _config(gateway: Any) -> OutboxConfig:
    sections = getattr(gateway.config, "sections", {}) or {}
    return sections.get("outbox") or OutboxConfig()


@hookimpl
def gateway_config_sections():
    return [SectionSpec(name="outbox", parse=parse_outbox_config, top_level=True)]


@hookimpl
def gateway_stores(gateway):
    @contextlib.asynccontextmanager
    async def outbox_store() -> AsyncIterator[None]:
        sync = getattr(getattr(gateway.config, "gateway", None), "sqlite_synchronous", "full")
        path = gateway.state_dir / DB_NAME
        # contact control (registered first) opened the state database's one writer: share it,
        # so that a decision and its outbox entry are one transaction
        writer = getattr(gateway.ledger, "writer", None)
        if writer is not None and writer.path != str(path):
            writer = None
        async with open_outbox(
            path,
            _config(gateway),
            gateway=gateway,
            synchronous=sync,
            run_scheduler=False,
            writer=writer,
            ledger=gateway.ledger if writer is not None else None,
        ) as outbox:
            gateway.outbox = outbox
            gateway.metrics.gauge("outbox.depth", lambda: dict(outbox._depths))
            try:
                yield
            finally:
                gateway.outbox = None

    return [outbox_store()]


class _Scheduler:
    """Retries, lease expiry, message expiry and deferred re-decisions (Outbox.run)."""

    name = "outbox-scheduler"

    def __init__(self, gateway: Any) -> None:
        self.gateway = gateway

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        await self.gateway.outbox.run(task_status=task_status)


@hookimpl
def gateway_services(gateway):
    return [_Scheduler(gateway)]


@hookimpl
def gateway_admin_commands(gateway):
    async def handler(argv: list[str]) -> AdminReply:
        outbox = gateway.outbox
        if outbox is None:
            raise AdminCommandError("the outbox is not open")
        if not argv or argv[0] == "depth":
            counts = await outbox.counts()
            data = {"depth": dict(outbox._depths), "states": counts, "stats": dict(outbox.stats)}
            lines = [f"{ch}: {n} waiting" for ch, n in sorted(data["depth"].items())] or ["(empty)"]
            lines.append("states: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
            return AdminReply(data=data, text="\n".join(lines))
        if argv[0] == "show":  # the number is masked unless --clear (gateway.staff.acting)
            argv, clear = await clear_or_masked(gateway, argv, action="outbox.show")
        if argv[0] == "show" and len(argv) == 2:
            entry = await outbox.show(argv[1])
            if entry is None:
                raise AdminCommandError(f"no outbox entry for contact {argv[1]!r}")
            entry = entry if clear else masked(entry)
            return AdminReply(data=entry, text="\n".join(f"{k}: {v}" for k, v in entry.items()))
        if argv[0] == "campaign" and len(argv) == 2:
            counts = await outbox.delivery_counts(argv[1])
            return AdminReply(
                data=counts,
                text=", ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "(none)",
            )
        raise AdminCommandError("usage: outbox [depth] | show CONTACT_ID | campaign CAMPAIGN_ID")

    return [
        AdminCommand(
            name="outbox",
            help="outbox depth per channel, one entry, or a campaign's delivery counts",
            handler=handler,
            usage="[depth] | show CONTACT_ID [--clear] | campaign CAMPAIGN_ID",
        )
    ]


@hookimpl
def gateway_status(gateway):
    outbox = gateway.outbox
    if outbox is None:
        return None
    return {
        "depth": dict(outbox._depths),
        "stats": dict(outbox.stats),
        "commits": outbox.writer.commits,
    }
