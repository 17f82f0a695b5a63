"""The execution of one batch campaign: its targets, paced, through contact control.

Each step takes as many targets as the campaign's and the channel's rate allow (token
buckets on Trio's clock, so tests run on a mock clock), builds their contact requests
(``realtime=False``: contact control defers them in quiet hours and the outbox presents them
again when the window opens), and hands them to ``decide_and_queue`` in one commit. The cursor
moves once the decisions are durable (see :mod:`gateway.batch.progress`).

Pause, resume and cancel are lifecycle states of the campaign in the campaigns store; the
runner reads the state before every step, and a step lasts at most ``poll`` seconds, so a
change takes effect within that time. Outside the campaign's schedule or send windows it
waits without consuming its rate.
"""

from __future__ import annotations

import collections
import datetime as dt
import time
import zoneinfo
from array import array
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import structlog
import trio

from gateway.batch.progress import ProgressRow, ProgressStore
from gateway.campaigns.model import CampaignDef
from gateway.campaigns.targets import (
    Shard,
    TargetListError,
    read_snapshot,
    read_targets,
    write_snapshot,
)
from gateway.model import CampaignState, ContactRequest
from gateway.pipeline import in_control_group

_STOPPED = (CampaignState.FINISHED, CampaignState.CANCELLED)


def batch_contact_id(campaign_id: str, msisdn: str, prefix: str = "bt") -> str:
    """The contact id of one target: the same on every node and after every restart (a target
    is in a batch once, so campaign and number are its identity; a hash cost 1.5 us more)."""
    return f"{prefix}-{campaign_id}-{msisdn}"


@attrs.define(eq=False)
class TokenBucket:
    """``rate`` per second with a burst of ``burst``; ``rate == 0`` means unlimited."""

    rate: float
    burst: float = 1.0
    tokens: float = 0.0
    stamp: float | None = None
    lock: trio.Lock = attrs.field(factory=trio.Lock)

    def refill(self, now: float) -> None:
        if self.stamp is None:
            self.stamp, self.tokens = now, min(self.burst, 1.0)
        elif now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def available(self, now: float) -> int:
        if not self.rate:
            return 1 << 30
        self.refill(now)
        return int(self.tokens)

    def consume(self, n: int) -> None:
        if self.rate:
            self.tokens -= n

    def wait(self, n: int = 1) -> float:
        """Seconds until ``n`` tokens (one by default)."""
        if not self.rate:
            return 0.0
        return max(0.0, (n - self.tokens) / self.rate)

    def step(self, period: float) -> int:
        """Tokens earned in ``period`` seconds, at least one (unlimited: a large number)."""
        if not self.rate:
            return 1 << 30
        return max(1, int(self.rate * period))

    def pause(self) -> None:
        """Forget the time spent paused (no burst of saved-up tokens on resume)."""
        self.stamp = None

    async def take(self, n: int, patience: float) -> int:
        """Up to ``n`` tokens, waiting at most ``patience`` seconds for the first; 0 if none.

        For a bucket shared by several campaigns (a channel's rate): the waiters queue on a
        FIFO lock, so each gets its turn instead of the first-scheduled one taking every token.
        """
        deadline = trio.current_time() + patience
        async with self.lock:
            while True:
                available = self.available(trio.current_time())
                if available > 0:
                    n = min(n, available)
                    self.consume(n)
                    return n
                left = deadline - trio.current_time()
                if left <= 0:
                    return 0
                await trio.sleep(min(left, max(self.wait(), 0.001)))


def second_of_day(ts: float, tz: dt.tzinfo) -> int:
    local = dt.datetime.fromtimestamp(ts, tz)
    return local.hour * 3600 + local.minute * 60 + local.second


@attrs.define(eq=False)
class BatchRunner:
    """Runs one batch campaign until all its targets are decided, or it is cancelled."""

    campaign_id: str
    campaigns: Any  # gateway.campaigns.store.CampaignStore
    control: Any  # ContactControl with decide_and_queue
    outbox: Any
    progress: ProgressStore
    snapshot_dir: Path
    shard: Shard = attrs.field(factory=Shard)
    channel_bucket: TokenBucket | None = None
    profiles: Any = None
    timezone: str = "Asia/Shanghai"
    clock: Callable[[], float] = time.time  # wall clock for schedules and windows
    poll: float = 0.1
    max_chunk: int = 5000
    #: a paced step waits for the targets of this many seconds at the campaign's rate (at
    #: least one): at 1,000/s steps of 10 every 10 ms rather than one every millisecond, which
    #: cost a decision transaction and a scheduler round per target
    step_period: float = 0.01
    in_flight: int = 3  # steps decided while earlier ones commit
    #: periodic runs: progress and snapshot under ``CAMPAIGN@PERIOD``, contact ids naming the
    #: period, targets selected from the profiles, and the campaign is not finished after it
    run_id: str = ""
    contact_prefix: str = "bt"
    select_targets: Callable[[], array] | None = None
    finish_campaign: bool = True
    # -- observed state --
    total: int = 0
    cursor: int = 0  # every target before it is decided, durably
    presented: int = 0  # handed to contact control (>= cursor)
    state: str = "starting"
    error: str | None = None
    _samples: collections.deque[tuple[float, int]] = attrs.field(
        factory=lambda: collections.deque(maxlen=64)
    )

    @property
    def run_key(self) -> str:
        return self.run_id or self.campaign_id

    def cdef(self) -> CampaignDef | None:
        cdef: CampaignDef | None = self.campaigns.get(self.campaign_id)
        return cdef

    # -- targets ---------------------------------------------------------------------------

    async def _targets(self, cdef: CampaignDef) -> array | None:
        """The node's targets: the snapshot if this campaign started before, else the file."""
        row = await self.progress.get(self.run_key)
        if row is not None:
            if row.shard != self.shard.text:
                self._fail(
                    f"started as shard {row.shard}, this node is now shard {self.shard.text}:"
                    " restore [batch] shard to resume"
                )
                return None
            self.cursor = row.cursor
            keys = await trio.to_thread.run_sync(read_snapshot, Path(row.snapshot))
            if len(keys) != row.total:
                self._fail(f"snapshot {row.snapshot} holds {len(keys)} targets, not {row.total}")
                return None
            if row.finished_at is not None:
                self.state = "done"
            return keys
        if self.select_targets is not None:
            keys = await trio.to_thread.run_sync(self.select_targets)
        else:
            if not cdef.target_list:
                self._fail("a batch campaign needs [target] list")
                return None
            try:
                keys = await trio.to_thread.run_sync(read_targets, Path(cdef.target_list))
            except TargetListError as exc:
                self._fail(str(exc))
                return None
        keys = self.shard.select(keys)
        snapshot = self.snapshot_dir / f"{self.run_key}.targets"
        await trio.to_thread.run_sync(write_snapshot, snapshot, keys)
        now = self.clock()
        await self.progress.start(
            ProgressRow(
                campaign_id=self.run_key,
                snapshot=str(snapshot),
                shard=self.shard.text,
                total=len(keys),
                cursor=0,
                started_at=now,
                updated_at=now,
            )
        )
        structlog.get_logger().info(
            "batch.loaded", campaign=self.campaign_id, targets=len(keys), shard=self.shard.text
        )
        return keys

    def _fail(self, reason: str) -> None:
        self.state, self.error = "failed", reason
        structlog.get_logger().error("batch.failed", campaign=self.campaign_id, reason=reason)

    # -- requests --------------------------------------------------------------------------

    def _requester(self, cdef: CampaignDef) -> Callable[[array], list[ContactRequest]]:
        campaign = cdef.campaign
        cid, channel = campaign.id, campaign.channels[0]
        prefix = self.contact_prefix
        templates = cdef.content.get(channel, {})
        percent = cdef.control_group_percent
        index: Any = getattr(self.profiles, "index", None)
        now = self.clock
        personal = any(t.fields for t in templates.values())
        fixed: dict[str, Any] = {
            k: t.render(lambda name: campaign.name if name == "campaign_name" else None)
            for k, t in templates.items()
        }

        reply: str | None = None
        fixed_now: Mapping[str, Any] = fixed

        def content(msisdn: str) -> Mapping[str, Any]:
            if not personal:
                return fixed_now
            row = index.row_by_msisdn(msisdn) if index is not None else -1

            def lookup(name: str) -> Any:
                if name == "campaign_name":
                    return campaign.name
                if row >= 0:
                    return index.attribute(name, row)
                return msisdn if name == "msisdn" else None

            out = {k: t.render(lookup) for k, t in templates.items()}
            if reply:
                out["source_addr"] = reply
            return out

        def build(keys: array) -> list[ContactRequest]:
            # two-way SMS: the reply address (service code + the campaign's sub-code) as sender
            nonlocal reply, fixed_now
            replies: Mapping[str, str] = getattr(self.campaigns, "reply_addresses", {})
            reply = replies.get(cid)
            fixed_now = {**fixed, "source_addr": reply} if reply else fixed
            at = now()
            out = []
            for key in keys:
                msisdn = str(key)
                out.append(
                    ContactRequest(
                        contact_id=batch_contact_id(cid, msisdn, prefix),
                        msisdn=msisdn,
                        campaign_id=cid,
                        channel=channel,
                        campaign_class=campaign.campaign_class,
                        priority=campaign.priority,
                        realtime=False,
                        content=content(msisdn),
                        created_at=at,
                        trigger="batch",
                        control_group=in_control_group(cid, msisdn, percent),
                    )
                )
            return out

        return build

    # -- the loop --------------------------------------------------------------------------

    def _sendable(self, cdef: CampaignDef) -> str | None:
        """Why the campaign may not send now (a state name), or None."""
        state = cdef.campaign.state
        if state is not CampaignState.RUNNING:
            return state.value
        ts = self.clock()
        sched = cdef.schedule
        if not sched.active_at(ts):
            return "outside_schedule"
        if sched.windows and not sched.in_window(
            second_of_day(ts, zoneinfo.ZoneInfo(self.timezone))
        ):
            return "outside_send_window"
        return None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        log = structlog.get_logger().bind(campaign=self.campaign_id)
        task_status.started()
        cdef = self.cdef()
        if cdef is None:
            return
        keys = await self._targets(cdef)
        if keys is None or self.state == "done":
            return
        self.total = len(keys)
        self.presented = self.cursor
        bucket = TokenBucket(rate=cdef.batch_rate, burst=max(1.0, cdef.batch_rate * self.poll))
        channel_bucket = self.channel_bucket
        build = self._requester(cdef)
        log.info(
            "batch.resumed" if self.cursor else "batch.started",
            cursor=self.cursor,
            total=self.total,
        )
        # Steps overlap (``in_flight``): one is being decided while the one before commits, so
        # the Trio thread and the writer's thread work at the same time. The cursor moves only
        # over steps whose decisions are durable, in order.
        done: dict[int, int] = {}  # start -> end of steps durable but not yet under the cursor
        slots = trio.Semaphore(self.in_flight)
        stopped: str | None = None
        async with trio.open_nursery() as nursery:
            while self.presented < self.total:
                cdef = self.cdef()
                if cdef is None or cdef.campaign.state in _STOPPED:
                    stopped = cdef.campaign.state.value if cdef is not None else "removed"
                    break
                why = self._sendable(cdef)
                if why is not None:
                    if self.state != why:
                        log.info("batch.waiting", reason=why, cursor=self.cursor)
                    self.state = why
                    bucket.pause()
                    await trio.sleep(self.poll)
                    continue
                self.state = "running"
                now = trio.current_time()
                left = self.total - self.presented
                available = bucket.available(now)
                want = min(self.max_chunk, left, bucket.step(self.step_period))
                if available < want:
                    await trio.sleep(min(self.poll, max(bucket.wait(want), 0.001)))
                    continue
                n = min(self.max_chunk, left, available)
                if channel_bucket is not None:
                    n = await channel_bucket.take(n, self.poll)
                    if n <= 0:
                        continue  # none within a poll: look at the campaign's state again
                bucket.consume(n)
                first = self.presented
                self.presented += n
                await slots.acquire()
                nursery.start_soon(self._step, build, keys, first, first + n, done, slots, log)
        if stopped is not None:
            self.state = stopped
            log.info("batch.stopped", state=stopped, cursor=self.cursor, total=self.total)
            await self.progress.advance(self.run_key, self.cursor, self.clock())
            return
        await self.progress.finish(self.run_key, self.cursor, self.clock())
        self.state = "done"
        log.info("batch.done", total=self.total)
        cdef = self.cdef()
        if (
            self.finish_campaign
            and cdef is not None
            and cdef.campaign.state is CampaignState.RUNNING
        ):
            await self.campaigns.transition(
                self.campaign_id, "finish", actor="batch", note="every target decided"
            )

    async def _step(
        self,
        build: Callable[[array], list[ContactRequest]],
        keys: array,
        first: int,
        end: int,
        done: dict[int, int],
        slots: trio.Semaphore,
        log: Any,
    ) -> None:
        try:
            requests = build(keys[first:end])
            while True:
                try:
                    await self.control.decide_and_queue(requests, self.outbox)
                    break
                except Exception as exc:  # presented again under the same contact ids
                    log.error("batch.step_failed", error=repr(exc), first=first)
                    await trio.sleep(1.0)
            done[first] = end
            moved = False
            while self.cursor in done:
                self.cursor = done.pop(self.cursor)
                moved = True
            if moved:
                self._samples.append((trio.current_time(), self.cursor))
                # durable with the next commit; every target under it already is
                self.progress.stage(self.run_key, self.cursor, self.clock())
        finally:
            slots.release()

    def rate(self) -> float:
        """Targets per second over the recent steps."""
        if len(self._samples) < 2:
            return 0.0
        (t0, c0), (t1, c1) = self._samples[0], self._samples[-1]
        return (c1 - c0) / (t1 - t0) if t1 > t0 else 0.0

    def snapshot(self) -> dict[str, Any]:
        rate = self.rate()
        remaining = self.total - self.cursor
        return {
            "state": self.state,
            "error": self.error,
            "targets": self.total,
            "presented": self.cursor,
            "remaining": remaining,
            "rate_per_s": round(rate, 1),
            "expected_end": (
                round(self.clock() + remaining / rate) if rate and remaining else None
            ),
            "shard": self.shard.text,
        }
