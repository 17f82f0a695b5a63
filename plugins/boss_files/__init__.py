"""BOSS/CRM interface files: ``[plugins.boss_files]``, the ``bossfiles`` admin command.

Registered through the entry point ``boss_files = "plugins.boss_files:BossFilesPlugin"``: the
core makes one :class:`BossFilesPlugin` per plugin manager, which holds its running part. Inbound feeds
(:mod:`.inbound`, applied by :mod:`.apply`) bring subscriber profiles, lists, products and
campaign target lists from a local directory, FTP or SFTP; the daily execution report
(:mod:`.report`) goes out to the analytics system. The file formats live in
:mod:`adapters.ifile`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import trio

from gateway.contracts import AdminCommand, AdminReply, SectionSpec
from gateway.errors import AdminCommandError
from gateway.hookspecs import hookimpl
from gateway.numbers import NumberError, active_plan
from plugins.boss_files.apply import Applier
from plugins.boss_files.config import NAME, BossFilesConfig, parse_boss_files_config
from plugins.boss_files.inbound import Feed, open_directory
from plugins.boss_files.report import ReportWriter
from plugins.boss_files.state import FilesState


@attrs.define(eq=False)
class BossFiles:
    """The plugin's running part for one gateway: a service the core starts and stops."""

    gateway: Any
    config: BossFilesConfig
    name: str = NAME
    state: FilesState | None = None
    feeds: list[Feed] = attrs.field(factory=list)
    report: ReportWriter | None = None
    applier: Applier | None = None
    restored: int | None = None

    @property
    def work_dir(self) -> Path:
        return self.config.work_dir or Path(self.gateway.state_dir) / "boss_files"

    def open(self) -> None:
        """Open the state and build the feeds (blocking; at start)."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.state = FilesState(self.work_dir / "boss_files.sqlite")
        applier = Applier(self.gateway, self.state, self.work_dir)
        self.applier = applier
        transfer = trio.CapacityLimiter(4)
        log = self.gateway.logger(plugin=NAME)
        self.feeds = [
            Feed(
                config=feed,
                source=open_directory(feed.source, transfer),
                work_dir=self.work_dir,
                state=self.state,
                applier=applier,
                settle_time=self.config.settle_time,
                log=log,
            )
            for feed in self.config.feeds
        ]
        self.report = ReportWriter(
            self.gateway, self.config.report, self.state, self.work_dir, transfer
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        log = self.gateway.logger(plugin=NAME)
        await trio.to_thread.run_sync(self.open)
        assert self.state is not None
        core_file = getattr(self.gateway.config.sections.get("profiles"), "file", "")
        if core_file and any(f.kind == "profiles" for f in self.config.feeds):
            # Both would replace the one index: the [profiles] file at start and on SIGHUP.
            log.warning(
                "boss_files.profiles_file_also_configured",
                file=core_file,
                hint="remove [profiles] file: the profiles feed keeps the index",
            )
        try:
            if self.gateway.profiles is not None and self.applier is not None:
                self.restored = await self.applier.restore_profiles()
                if self.restored is not None:
                    log.info("boss_files.profiles_restored", subscribers=self.restored)
            task_status.started()
            async with trio.open_nursery() as nursery:
                for feed in self.feeds:
                    nursery.start_soon(feed.serve, lambda: self.config.poll_interval)
                if self.report is not None and self.config.report.enabled:
                    nursery.start_soon(self.report.serve)
        finally:
            self.state.close()

    def reconfigure(self, config: BossFilesConfig) -> None:
        """A reload: the poll interval and settle time take effect at the next poll."""
        self.config = config
        for feed in self.feeds:
            feed.settle_time = config.settle_time

    def status(self) -> dict[str, Any]:
        return {
            "feeds": {f.config.name: dict(f.counts) for f in self.feeds},
            "profiles_restored": self.restored,
        }


class BossFilesPlugin:
    """The plugin object: one per plugin manager (so per gateway), holding its running part."""

    def __init__(self) -> None:
        self.running: BossFiles | None = None

    def _running(self) -> BossFiles:
        running = self.running
        if running is None or running.state is None:
            raise AdminCommandError("boss_files is not running")
        return running

    @hookimpl
    def gateway_config_sections(self) -> list[SectionSpec]:
        # Feeds, their sources and the report are built at start; poll_interval and settle_time
        # are applied by gateway_reload.
        return [
            SectionSpec(
                name=NAME,
                parse=parse_boss_files_config,
                optional=True,
                restart_keys=("work_dir", "feeds", "report"),
            )
        ]

    @hookimpl
    def gateway_reload(self, gateway: Any) -> None:
        if self.running is not None:
            self.running.reconfigure(gateway.plugin_config(NAME))

    @hookimpl
    def gateway_services(self, gateway: Any) -> list[BossFiles]:
        config: BossFilesConfig = gateway.plugin_config(NAME)
        if not config.feeds and not config.report.enabled:
            return []
        self.running = BossFiles(gateway, config)
        return [self.running]

    @hookimpl
    def gateway_mo_message(self, message: Any) -> None:
        if self.running is not None and self.running.report is not None:
            self.running.report.observe(message)

    @hookimpl
    def gateway_status(self, gateway: Any) -> dict[str, Any] | None:
        return None if self.running is None else self.running.status()

    async def _command(self, argv: list[str]) -> AdminReply:
        return await _command(self._running(), argv)

    @hookimpl
    def gateway_admin_commands(self, gateway: Any) -> list[AdminCommand]:
        return [
            AdminCommand(
                name="bossfiles",
                help="BOSS interface files: applied, quarantine, products, subscriptions, report",
                handler=self._command,
                usage=USAGE,
            )
        ]


USAGE = "applied|quarantine|poll|products [PRODUCT_ID]|subscriptions MSISDN|report [YYYYMMDD]"


async def _command(running: BossFiles, argv: list[str]) -> AdminReply:
    state = running.state
    assert state is not None
    what = argv[0] if argv else "applied"
    if what == "applied":
        rows = await state.history()
        return AdminReply(
            data=rows,
            text="\n".join(f"{r['feed']:<16} {r['name']} records={r['records']}" for r in rows)
            or "no files applied yet",
        )
    if what == "quarantine":
        rows = await state.quarantine_log()
        return AdminReply(
            data=rows,
            text="\n".join(f"{r['feed']:<16} {r['name']}: {r['reasons'][0]}" for r in rows)
            or "nothing in quarantine",
        )
    if what == "poll":
        out = {f.config.name: await f.poll_once() for f in running.feeds}
        return AdminReply(data=out)
    if what == "products":
        rows = await state.product(argv[1] if len(argv) > 1 else None)
        return AdminReply(data=rows, text="\n".join(str(r) for r in rows) or "no products")
    if what == "subscriptions" and len(argv) == 2:
        try:
            msisdn = active_plan().normalise(argv[1])
        except NumberError as exc:
            raise AdminCommandError(f"not a usable MSISDN: {exc}") from None
        rows = await state.subscriptions(msisdn)
        return AdminReply(data=rows, text="\n".join(str(r) for r in rows) or "no subscriptions")
    if what == "report" and running.report is not None:
        day = argv[1] if len(argv) > 1 else None
        name = await running.report.write(day)
        return AdminReply(data={"file": name}, text=f"written {name}")
    raise AdminCommandError(f"usage: bossfiles {USAGE}")
