"""Campaigns and profiles as a core component (see ``gateway.default_plugins``).

Hooks: the ``[campaigns]`` and ``[profiles]`` sections; the store (opens the campaigns store
in the state database, loads areas, campaign files and the profile file, and sets
``gateway.campaigns`` and ``gateway.profiles``; the pipeline that reads them is a component of
its own, :mod:`gateway.pipeline_plugin`); a service that
starts/finishes campaigns on schedule, flushes counters and performs reloads; ``gateway_reload``
(SIGHUP) which asks that service to reload areas, campaign files and a changed profile file;
the ``campaigns``, ``campaign`` and ``preview`` admin commands; a status fragment.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import structlog
import trio

from gateway.campaigns.admin import admin_commands
from gateway.campaigns.config import (
    CampaignsConfig,
    ProfilesConfig,
    campaign_timezone,
    parse_campaigns_config,
    parse_profiles_config,
    resolve,
)
from gateway.campaigns.store import CampaignStore
from gateway.contracts import AdminCommand, SectionSpec
from gateway.errors import ConfigError, GatewayError
from gateway.hookspecs import hookimpl
from gateway.profiles.holder import ProfileHolder
from gateway.rules.areas import load_areas
from gateway.store import SqliteWorker, open_sqlite

if TYPE_CHECKING:
    from gateway.app import Gateway

DB_NAME = "gateway.sqlite"


class CampaignsComponent:
    """Owns the campaigns store, the profiles, the reload and schedule work of one gateway.

    Also the ``Service`` the core runs (schedule ticks, counter flushes, reloads).
    """

    name = "campaigns"

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.store: CampaignStore | None = None
        self.holder: ProfileHolder | None = None
        self._reload_requested = trio.Event()
        self._reload_lock = trio.Lock()
        self.reloads = 0
        self.reloaded = trio.Event()  # set (and replaced) after each reload, for tests

    def campaigns_config(self, gateway: Gateway) -> CampaignsConfig:
        config: CampaignsConfig | None = gateway.config.sections.get("campaigns")
        return config or CampaignsConfig()

    def profiles_config(self, gateway: Gateway) -> ProfilesConfig:
        config: ProfilesConfig | None = gateway.config.sections.get("profiles")
        return config or ProfilesConfig()

    def timezone(self, gateway: Gateway) -> str:
        return campaign_timezone(gateway.config)

    def plugin_types(self, gateway: Gateway) -> dict[str, Any]:
        types: dict[str, Any] = {}
        for result in gateway.hook.gateway_condition_types():
            types.update(result or {})
        return types

    def _areas(self, gateway: Gateway) -> dict[str, Any]:
        path = resolve(gateway, self.campaigns_config(gateway).areas_file)
        return load_areas(path) if path is not None else {}

    def _opened(self) -> tuple[CampaignStore, ProfileHolder]:
        if self.store is None or self.holder is None:
            raise GatewayError("the campaigns store is not open")
        return self.store, self.holder

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[None]:
        gateway = self.gateway
        log = structlog.get_logger()
        cconf, pconf = self.campaigns_config(gateway), self.profiles_config(gateway)
        sync = gateway.config.gateway.sqlite_synchronous
        worker = SqliteWorker(open_sqlite(gateway.state_dir / DB_NAME, synchronous=sync))
        try:
            areas = self._areas(gateway)
            store = await CampaignStore.open(
                worker, areas=areas, plugin_types=self.plugin_types(gateway)
            )
            gate = getattr(gateway.approvals, "gate", None)  # before any file is stored
            if gate is not None:
                store.gates.append(gate)
            directory = resolve(gateway, cconf.directory)
            if directory is not None:
                await store.sync_dir(directory)
            holder = ProfileHolder()
            profile_file = resolve(gateway, pconf.file)
            if profile_file is not None and not await holder.load(
                profile_file, delimiter=pconf.delimiter
            ):
                log.error("profiles.not_loaded", path=str(profile_file), reason=holder.last_error)
            self.store, self.holder = store, holder
            gateway.campaigns, gateway.profiles = store, holder
            self._check_state_ttl(gateway)
            gateway.metrics.gauge("profiles.subscribers", lambda: len(holder.index))
            gateway.metrics.gauge("campaigns.running", lambda: len(store.running()))
            try:
                yield
            finally:
                with trio.CancelScope(shield=True):
                    with contextlib.suppress(Exception):
                        await store.flush_counts()
                gateway.campaigns = gateway.profiles = None
                self.store = self.holder = None
        finally:
            with trio.CancelScope(shield=True):
                await worker.aclose()

    def _check_state_ttl(self, gateway: Gateway) -> None:
        """Warn when a rule needs state longer than ``[campaigns] state_ttl`` keeps it."""
        ttl = self.campaigns_config(gateway).state_ttl
        store, _ = self._opened()
        longest = store.rule_index.longest_gap
        if longest > ttl:
            structlog.get_logger().warning(
                "campaigns.state_ttl_short",
                state_ttl_s=ttl,
                longest_rule_window_s=longest,
                hint="raise [campaigns] state_ttl above the longest sequence gap, silence or count window",
            )

    def request_reload(self) -> None:
        self._reload_requested.set()

    async def reload(self, gateway: Gateway) -> dict[str, Any]:
        """Re-read areas and campaign files, and the profile file if it changed."""
        async with self._reload_lock:  # SIGHUP and `gatewayctl campaigns reload` may overlap
            return await self._reload(gateway)

    async def _reload(self, gateway: Gateway) -> dict[str, Any]:
        log = structlog.get_logger()
        store, holder = self._opened()
        result: dict[str, Any] = {}
        try:
            areas = self._areas(gateway)
        except ConfigError as exc:
            log.error("campaigns.areas_invalid", problems=[str(p) for p in exc.problems])
            areas = None
            result["areas_error"] = str(exc)
        store.plugin_types = self.plugin_types(gateway)
        directory = resolve(gateway, self.campaigns_config(gateway).directory)
        if directory is not None:
            result |= await store.sync_dir(directory, areas=areas)
        pconf = self.profiles_config(gateway)
        profile_file = resolve(gateway, pconf.file)
        if profile_file is not None and pconf.reload_on_sighup:
            result["profiles_ok"] = await holder.load(
                profile_file, delimiter=pconf.delimiter, only_if_changed=True
            )
            result["subscribers"] = len(holder.index)
        self._check_state_ttl(gateway)
        self.reloads += 1
        self.reloaded.set()
        self.reloaded = trio.Event()
        return result

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        gateway = self.gateway
        task_status.started()
        while True:
            with trio.move_on_after(self.campaigns_config(gateway).tick):
                await self._reload_requested.wait()
            if self._reload_requested.is_set():
                self._reload_requested = trio.Event()
                try:
                    await self.reload(gateway)
                except Exception as exc:  # a failed reload keeps what is in force
                    structlog.get_logger().error("campaigns.reload_failed", error=repr(exc))
            store, _ = self._opened()
            await store.activate_due(time.time())
            await store.flush_counts()


class CampaignsPlugin:
    """The hooks of the campaigns component; one instance per plugin manager (per daemon).

    Registered by :data:`gateway.default_plugins.DEFAULT_PLUGINS` as
    ``gateway.campaigns.plugin:CampaignsPlugin``: the instance holds the component of its
    gateway, so no module-level registry is needed (tests may run several gateways at once).
    """

    def __init__(self) -> None:
        self.component: CampaignsComponent | None = None

    def component_of(self, gateway: Gateway) -> CampaignsComponent:
        if self.component is None or self.component.gateway is not gateway:
            self.component = CampaignsComponent(gateway)
        return self.component

    @hookimpl
    def gateway_config_sections(self) -> Iterable[SectionSpec]:
        return [
            # The pipeline's matching state and clock are built once, when it opens.
            SectionSpec(
                name="campaigns",
                parse=parse_campaigns_config,
                top_level=True,
                restart_keys=("state_capacity", "state_ttl", "timezone"),
            ),
            SectionSpec(name="profiles", parse=parse_profiles_config, top_level=True),
        ]

    @hookimpl
    def gateway_stores(self, gateway: Gateway) -> Iterable[AbstractAsyncContextManager[None]]:
        return [self.component_of(gateway).open()]

    @hookimpl
    def gateway_services(self, gateway: Gateway) -> Iterable[CampaignsComponent]:
        return [self.component_of(gateway)]

    @hookimpl
    def gateway_reload(self, gateway: Gateway) -> None:
        self.component_of(gateway).request_reload()

    @hookimpl
    def gateway_admin_commands(self, gateway: Gateway) -> Iterable[AdminCommand]:
        return admin_commands(gateway, self.component_of(gateway))

    @hookimpl
    def gateway_status(self, gateway: Gateway) -> Mapping[str, Any] | None:
        component = self.component_of(gateway)
        if component.store is None:
            return None
        return {
            "running": [c.id for c in component.store.running()],
            "invalid_files": len({p.file for p in component.store.problems}),
            "profiles": component.holder.statistics() if component.holder else None,
        }
