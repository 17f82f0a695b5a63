"""Enrichment as a core component (see ``gateway.default_plugins``): the ``[enrichment]`` section.

::

    [enrichment]
    segments_file = "segments.csv"   # number segments and area codes; "" = none
    tac_file = "tac.csv"             # the TAC database export; "" = none
    local_province = "beijing"       # the gateway's own region: visitor, long_distance
    local_city = "beijing"
    builtin_area_codes = true        # the built-in fixed-line area codes (file rows override)
    reload_on_sighup = true          # re-read changed files on SIGHUP

Hooks: the section; the store (loads both files, sets ``gateway.enrichment`` before the
pipeline opens); a service that performs reloads requested by SIGHUP; the ``enrichment``
admin command (``show``, ``reload``, ``number N``, ``imei N``); a status fragment. A file that
fails to load at start is logged and leaves its table empty (conditions on it then never
hold); on reload it leaves the table in force.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import structlog
import trio

from gateway.config_reader import TableReader
from gateway.contracts import AdminCommand, AdminReply, SectionSpec
from gateway.enrich.holder import Enrichment
from gateway.errors import AdminCommandError
from gateway.hookspecs import hookimpl
from gateway.numbers import NumberError, active_plan

if TYPE_CHECKING:
    from gateway.app import Gateway


@attrs.frozen(kw_only=True)
class EnrichmentConfig:
    segments_file: str = ""
    tac_file: str = ""
    local_province: str = ""
    local_city: str = ""
    builtin_area_codes: bool = True
    reload_on_sighup: bool = True


def parse_enrichment_config(table: Mapping[str, Any], key: str = "enrichment") -> EnrichmentConfig:
    r = TableReader(table, key)
    d = EnrichmentConfig()
    config = EnrichmentConfig(
        segments_file=r.str("segments_file", d.segments_file),
        tac_file=r.str("tac_file", d.tac_file),
        local_province=r.str("local_province", d.local_province),
        local_city=r.str("local_city", d.local_city),
        builtin_area_codes=r.bool("builtin_area_codes", d.builtin_area_codes),
        reload_on_sighup=r.bool("reload_on_sighup", d.reload_on_sighup),
    )
    if config.local_city and not config.local_province:
        r.problem("local_city", "needs local_province too")
    if config.segments_file and not config.local_province:
        r.problem(
            "local_province",
            "needed with segments_file: visitor and long_distance compare with it",
        )
    r.finish()
    return config


def resolve(gateway: Any, value: str) -> Path | None:
    """``value`` as a path relative to gateway.toml's directory; None when empty."""
    if not value:
        return None
    path = Path(value)
    base = getattr(gateway.config, "path", None)
    if not path.is_absolute() and base is not None:
        path = Path(base).resolve().parent / path
    return path


class EnrichmentComponent:
    """Owns the :class:`Enrichment` of one gateway and reloads it; the ``Service`` the core runs."""

    name = "enrichment"

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.holder: Enrichment | None = None
        self._reload_requested = trio.Event()
        self._lock = trio.Lock()

    def config(self) -> EnrichmentConfig:
        found: EnrichmentConfig | None = self.gateway.config.sections.get("enrichment")
        return found or EnrichmentConfig()

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[None]:
        conf = self.config()
        holder = Enrichment(local_province=conf.local_province, local_city=conf.local_city)
        self.holder = holder
        await self.load(only_if_changed=False)
        self.gateway.enrichment = holder
        try:
            yield
        finally:
            self.gateway.enrichment = None
            self.holder = None

    async def load(self, *, only_if_changed: bool) -> dict[str, Any]:
        """(Re)load the configured files; ``{"segments_ok": bool, "tac_ok": bool}``."""
        holder = self.holder
        if holder is None:
            raise AdminCommandError("enrichment is not open")
        conf = self.config()
        result: dict[str, Any] = {}
        async with self._lock:  # SIGHUP and `gatewayctl enrichment reload` may overlap
            segments = resolve(self.gateway, conf.segments_file)
            if segments is not None:
                result["segments_ok"] = await holder.load_segments(
                    segments,
                    builtin_area_codes=conf.builtin_area_codes,
                    only_if_changed=only_if_changed,
                )
            tac = resolve(self.gateway, conf.tac_file)
            if tac is not None:
                result["tac_ok"] = await holder.load_tac(tac, only_if_changed=only_if_changed)
        return result

    def request_reload(self) -> None:
        if self.config().reload_on_sighup:
            self._reload_requested.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await self._reload_requested.wait()
            self._reload_requested = trio.Event()
            try:
                await self.load(only_if_changed=True)
            except Exception as exc:  # a failed reload keeps the tables in force
                structlog.get_logger().error("enrichment.reload_failed", error=repr(exc))

    def admin_command(self) -> AdminCommand:
        async def handler(args: list[str]) -> AdminReply:
            holder = self.holder
            if holder is None:
                raise AdminCommandError("enrichment is not open")
            action = args[0] if args else "show"
            if action == "show" and len(args) <= 1:
                stats = holder.statistics()
                return AdminReply(data=stats, text=_show_text(stats))
            if action == "reload" and len(args) == 1:
                result = await self.load(only_if_changed=False)
                stats = holder.statistics()
                errors = [
                    f"{what}: {stats[what]['last_error']}"
                    for what in ("segments", "tac")
                    if result.get(f"{what}_ok") is False
                ]
                if errors:  # exit status 1 for scripts; the tables in force stay
                    raise AdminCommandError("kept the tables in force; " + "; ".join(errors))
                return AdminReply(data={**result, **stats}, text="reloaded")
            if action == "number" and len(args) == 2:
                try:
                    e164 = active_plan().normalise(args[1])
                except NumberError as exc:
                    raise AdminCommandError(f"not a number: {exc}") from None
                region = holder.segments.region_of(e164)
                data = (
                    {
                        "province": region.province,
                        "city": region.city,
                        "visitor": holder.is_visitor(region),
                    }
                    if region
                    else None
                )
                text = f"{data['province']} / {data['city']}" if data else "unknown segment"
                return AdminReply(data=data, text=text)
            if action == "imei" and len(args) == 2:
                handset = holder.tac.handset(args[1].strip())
                data = (
                    {
                        "brand": handset.brand,
                        "model": handset.model,
                        "capabilities": sorted(handset.capabilities),
                    }
                    if handset
                    else None
                )
                text = (
                    f"{handset.brand} {handset.model}: {', '.join(sorted(handset.capabilities)) or '-'}"
                    if handset
                    else "unknown TAC"
                )
                return AdminReply(data=data, text=text)
            raise AdminCommandError(f"usage: enrichment {USAGE}")

        return AdminCommand(
            name="enrichment",
            help="number-segment and TAC tables: show, reload, look up a number or an IMEI",
            handler=handler,
            usage=USAGE,
        )


USAGE = "show | reload | number MSISDN | imei IMEI"


def _show_text(stats: Mapping[str, Any]) -> str:
    seg, tac, local = stats["segments"], stats["tac"], stats["local"]
    lines = [
        f"local region: {local['province'] or '-'} / {local['city'] or '-'}",
        f"segments: {seg['segments']} segments, {seg['area_codes']} area codes, "
        f"{seg['regions']} regions from {seg['source'] or '(none)'}",
        f"tac: {tac['tacs']} TACs from {tac['source'] or '(none)'}",
    ]
    for what, part in (("segments", seg), ("tac", tac)):
        if part["last_error"]:
            lines.append(f"{what} last load failed: {part['last_error']}")
    return "\n".join(lines)


class EnrichmentPlugin:
    """The hooks of the enrichment component; one instance per plugin manager (per daemon)."""

    def __init__(self) -> None:
        self.component: EnrichmentComponent | None = None

    def component_of(self, gateway: Gateway) -> EnrichmentComponent:
        if self.component is None or self.component.gateway is not gateway:
            self.component = EnrichmentComponent(gateway)
        return self.component

    @hookimpl
    def gateway_config_sections(self) -> Iterable[SectionSpec]:
        return [
            SectionSpec(
                name="enrichment",
                parse=parse_enrichment_config,
                top_level=True,
                # the local region is checked against the segments file when that is loaded
                restart_keys=("local_province", "local_city"),
            )
        ]

    @hookimpl
    def gateway_stores(self, gateway: Gateway) -> Iterable[AbstractAsyncContextManager[None]]:
        return [self.component_of(gateway).open()]

    @hookimpl
    def gateway_services(self, gateway: Gateway) -> Iterable[EnrichmentComponent]:
        return [self.component_of(gateway)]

    @hookimpl
    def gateway_reload(self, gateway: Gateway) -> None:
        self.component_of(gateway).request_reload()

    @hookimpl
    def gateway_admin_commands(self, gateway: Gateway) -> Iterable[AdminCommand]:
        return [self.component_of(gateway).admin_command()]

    @hookimpl
    def gateway_status(self, gateway: Gateway) -> Mapping[str, Any] | None:
        holder = self.component_of(gateway).holder
        return holder.statistics() if holder is not None else None
