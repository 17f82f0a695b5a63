"""Batch and periodic campaigns as a core component (see ``gateway.default_plugins``).

Hooks: the ``[batch]`` section of gateway.toml (this node's shard, per-channel rates, the step
interval); a store that creates the progress table in the state database (after contact
control and the outbox opened it); the service that starts a :class:`BatchRunner` for each
running batch campaign and keeps it until its targets are all decided; a status fragment. The
campaigns store is told where to ask for progress (``gatewayctl campaign progress ID``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
import zoneinfo
from array import array
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from functools import partial
from typing import TYPE_CHECKING, Any

import attrs
import structlog
import trio

from gateway.batch.fallback import Fallback
from gateway.batch.periodic import latest_due, select
from gateway.batch.progress import ProgressStore
from gateway.batch.runner import BatchRunner, TokenBucket
from gateway.campaigns.config import campaign_timezone
from gateway.campaigns.model import CampaignDef, PeriodicPolicy
from gateway.campaigns.targets import Shard
from gateway.config_reader import TableReader
from gateway.contracts import SectionSpec
from gateway.hookspecs import hookimpl
from gateway.model import CampaignKind, CampaignState, ContactDecision, Delivery

if TYPE_CHECKING:
    from gateway.app import Gateway


@attrs.frozen(kw_only=True)
class BatchConfig:
    shard: Shard = attrs.field(factory=Shard)  # this node's share of every batch ("INDEX/COUNT")
    #: per channel: targets per second across every batch campaign on that channel
    channel_rates: Mapping[str, float] = attrs.field(factory=dict)
    poll: float = 0.1  # longest step: pause, resume and cancel take effect within it
    max_chunk: int = 5000  # most targets decided in one commit


def parse_batch_config(table: Mapping[str, Any], key: str = "batch") -> BatchConfig:
    d = BatchConfig()
    r = TableReader(table, key)
    shard = d.shard
    text = r.str("shard", "1/1")
    if text is not None:
        try:
            shard = Shard.parse(text)
        except ValueError as exc:
            r.problem("shard", str(exc))
    rates: dict[str, float] = {}
    sub = r.table("channel_rates")
    for name in sub.keys():
        value = sub.float(name, min=0.001, max=1_000_000.0)
        if value is not None:
            rates[name] = value
    cfg = BatchConfig(
        shard=shard,
        channel_rates=rates,
        poll=r.duration("poll", d.poll, min=0.01, max=1.0),
        max_chunk=r.int("max_chunk", d.max_chunk, min=1, max=100_000),
    )
    r.finish()
    return cfg


def _select_now(holder: Any, policy: PeriodicPolicy, day: dt.date) -> array:
    """The periodic run's targets from the profiles in force (blocking: a worker thread)."""
    return select(getattr(holder, "index", None), policy, day)


class BatchComponent:
    """Starts and watches the runners of one gateway's batch campaigns (a ``Service``)."""

    name = "batch"
    intake = True  # SIGTERM stops feeding new targets first

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.progress: ProgressStore | None = None
        self.runners: dict[str, BatchRunner] = {}
        self.channel_buckets: dict[str, TokenBucket] = {}
        self.clock = time.time
        self.fallback = Fallback(gateway)
        self.waiting_for_list: set[str] = set()

    def config(self) -> BatchConfig:
        config: BatchConfig | None = self.gateway.config.sections.get("batch")
        return config or BatchConfig()

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[None]:
        writer = getattr(self.gateway.outbox, "writer", None) or getattr(
            self.gateway.ledger, "writer", None
        )
        if writer is None:
            structlog.get_logger().warning(
                "batch.disabled", reason="no state database writer (outbox or ledger)"
            )
            yield
            return
        self.progress = ProgressStore(writer)
        await self.progress.create_schema()
        await self.fallback.open(writer)
        store = self.gateway.campaigns
        if store is not None:
            store.progress_source = self.progress_of
        try:
            yield
        finally:
            if store is not None:
                store.progress_source = None
            self.progress = None

    def _bucket(self, channel: str) -> TokenBucket | None:
        rate = self.config().channel_rates.get(channel)
        if rate is None:
            return None
        bucket = self.channel_buckets.get(channel)
        if bucket is None or bucket.rate != rate:
            bucket = self.channel_buckets[channel] = TokenBucket(
                rate=rate, burst=max(1.0, rate * self.config().poll)
            )
        return bucket

    def _due(self) -> list[tuple[str, CampaignDef, dict[str, Any]]]:
        """(run key, campaign, runner options) of every run that should be going now."""
        store = self.gateway.campaigns
        if store is None:
            return []
        out: list[tuple[str, CampaignDef, dict[str, Any]]] = []
        tz = zoneinfo.ZoneInfo(campaign_timezone(self.gateway.config))
        now = self.clock()
        for c in store.list():
            if c.campaign.state not in (CampaignState.RUNNING, CampaignState.PAUSED):
                continue
            if c.campaign.kind is CampaignKind.BATCH and c.id not in self.runners:
                if c.target_list is None:
                    self._warn_no_list(c.id)
                    continue
                out.append((c.id, c, {}))
            elif c.campaign.kind is CampaignKind.PERIODIC and c.periodic is not None:
                period, scheduled = latest_due(c.periodic, now, tz)
                key = f"{c.id}@{period}"
                if key in self.runners or (
                    c.schedule.start is not None and scheduled < c.schedule.start
                ):
                    continue
                policy, holder = c.periodic, self.gateway.profiles
                day = dt.date.fromisoformat(period)
                out.append(
                    (
                        key,
                        c,
                        {
                            "run_id": key,
                            "contact_prefix": f"pd-{period}",
                            "select_targets": partial(_select_now, holder, policy, day),
                            "finish_campaign": False,
                        },
                    )
                )
        return out

    async def _run_one(self, runner: BatchRunner) -> None:
        try:
            await runner.run()
        except Exception as exc:  # one campaign's failure must not stop the others
            runner.state, runner.error = "failed", repr(exc)
            structlog.get_logger().error(
                "batch.runner_failed", campaign=runner.campaign_id, error=repr(exc)
            )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        gateway = self.gateway
        task_status.started()
        if self.progress is None:
            return
        async with trio.open_nursery() as nursery:
            await nursery.start(self.fallback.run)
            while True:
                config = self.config()
                for key, cdef, options in self._due():
                    runner = BatchRunner(
                        campaign_id=cdef.id,
                        campaigns=gateway.campaigns,
                        control=gateway.contact_control,
                        outbox=gateway.outbox,
                        progress=self.progress,
                        snapshot_dir=gateway.state_dir / "batch",
                        shard=config.shard,
                        channel_bucket=self._bucket(cdef.campaign.channels[0]),
                        profiles=gateway.profiles,
                        timezone=campaign_timezone(gateway.config),
                        clock=lambda: self.clock(),
                        poll=config.poll,
                        max_chunk=config.max_chunk,
                        **options,
                    )
                    self._forget_older_runs(cdef.id, key)
                    self.runners[key] = runner
                    nursery.start_soon(self._run_one, runner)
                await trio.sleep(config.poll)

    def _warn_no_list(self, campaign_id: str) -> None:
        if campaign_id not in self.waiting_for_list:
            self.waiting_for_list.add(campaign_id)
            structlog.get_logger().warning(
                "batch.no_target_list",
                campaign=campaign_id,
                hint="add [target] list to the campaign file and reload: nothing is sent until then",
            )

    def _forget_older_runs(self, campaign_id: str, key: str) -> None:
        """A periodic campaign keeps only its latest run in memory (the rest is in the DB)."""
        for old in [k for k in self.runners if k.startswith(campaign_id + "@") and k != key]:
            if self.runners[old].state in ("done", "failed"):
                del self.runners[old]

    def _runner_of(self, campaign_id: str) -> BatchRunner | None:
        if campaign_id in self.runners:
            return self.runners[campaign_id]
        runs = sorted(k for k in self.runners if k.startswith(campaign_id + "@"))
        return self.runners[runs[-1]] if runs else None

    async def progress_of(self, campaign_id: str) -> dict[str, Any] | None:
        """What ``campaign progress`` shows of a batch campaign's execution (a periodic
        campaign's latest run), or None."""
        runner = self._runner_of(campaign_id)
        if runner is not None:
            return {"run": runner.run_key, **runner.snapshot()}
        if campaign_id in self.waiting_for_list and campaign_id not in self.runners:
            return {
                "state": "no_target_list",
                "error": "no [target] list: nothing is sent until the campaign has one",
                "targets": 0,
                "presented": 0,
                "remaining": 0,
                "rate_per_s": 0.0,
                "expected_end": None,
                "shard": self.config().shard.text,
            }
        if self.progress is None:
            return None
        row = await self.progress.get(campaign_id)
        if row is None:
            return None
        return {
            "state": "done" if row.finished_at is not None else "stopped",
            "error": None,
            "targets": row.total,
            "presented": row.cursor,
            "remaining": row.total - row.cursor,
            "rate_per_s": 0.0,
            "expected_end": None,
            "shard": row.shard,
        }

    def status(self) -> dict[str, Any]:
        return {
            "campaigns": {cid: r.snapshot() for cid, r in self.runners.items()},
            "fallback": self.fallback.status(),
        }


class BatchPlugin:
    """The hooks of the batch component; one instance (and component) per plugin manager."""

    def __init__(self) -> None:
        self.component: BatchComponent | None = None

    def component_of(self, gateway: Gateway) -> BatchComponent:
        if self.component is None or self.component.gateway is not gateway:
            self.component = BatchComponent(gateway)
        return self.component

    @hookimpl
    def gateway_config_sections(self) -> Iterable[SectionSpec]:
        return [SectionSpec(name="batch", parse=parse_batch_config, top_level=True)]

    @hookimpl
    def gateway_stores(self, gateway: Gateway) -> Iterable[AbstractAsyncContextManager[None]]:
        return [self.component_of(gateway).open()]

    @hookimpl
    def gateway_services(self, gateway: Gateway) -> Iterable[BatchComponent]:
        return [self.component_of(gateway)]

    @hookimpl
    def gateway_status(self, gateway: Gateway) -> Mapping[str, Any] | None:
        component = self.component_of(gateway)
        return component.status() if component.progress is not None else None

    @hookimpl
    def gateway_contacts_recorded(self, decisions: Sequence[ContactDecision]) -> None:
        if self.component is not None and self.component.progress is not None:
            record = self.component.fallback.record
            for decision in decisions:
                record(decision)

    @hookimpl
    def gateway_delivery_reports(self, deliveries: Sequence[Delivery]) -> None:
        if self.component is not None and self.component.progress is not None:
            delivery = self.component.fallback.delivery
            for d in deliveries:
                delivery(d)
