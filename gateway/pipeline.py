"""The core pipeline: the :class:`~gateway.contracts.EventSink` given to every signal source.

``send(events)``: for each event, *enrich* (find the subscriber's profile row by IMSI, then
MSISDN, and learn last cell / IMEI / seen), *match* (the compiled rule index of the running
campaigns, then any plugin matchers from ``gateway_matchers``), build the
:class:`~gateway.model.ContactRequest` of each match, then for the whole batch ask contact
control and the outbox in one call (``decide_and_queue``: the decisions, their ledger rows,
the ALLOWED ones' outbox entries and the DEFERRED ones held, in one transaction). A bad event is counted and skipped; ``send`` never raises
because of one.

Idempotency: ``contact_id`` is a hash of campaign, MSISDN and the trigger: the policy period
(event time divided by the campaign's ``once_per``) or, without a policy, the event kind and
time. A source that replays a batch after a restart produces the same contacts, which contact
control (``duplicate``) and the outbox recognise; with a policy this also holds the "once per
period" line after the in-memory trigger state expired. Control group: a stable hash of campaign and MSISDN below the campaign's
percentage marks the request ``control_group``; contact control records it as ``control``.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import structlog
import trio

from gateway.contact.control import Decided
from gateway.content import requirements_of
from gateway.model import ContactDecision, ContactRequest, Outcome, SignalEvent
from gateway.numbers import active_plan, e164_request
from gateway.rules.conditions import LocalClock, MatchContext, MatcherState
from gateway.rules.enriched import ENRICHED_FIELDS, enriched_field, handset_of, supports

if TYPE_CHECKING:
    from gateway.campaigns.model import CampaignDef
    from gateway.enrich.holder import Enrichment

EXPIRE_EVERY = 4096  # events between two state-expiry sweeps
#: Trigger-policy marks awaiting their decision (a caller that only matches never settles them).
MAX_TRIGGER_MARKS = 65_536


def in_control_group(campaign_id: str, msisdn: str, percent: float) -> bool:
    """Stable across restarts and nodes: the same subscriber is always in or out."""
    if percent <= 0:
        return False
    digest = hashlib.blake2b(f"{campaign_id}:{msisdn}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 10_000 < percent * 100


#: What :meth:`Pipeline.stage` returns: await it for the batch's decisions once durable.
Finish = Callable[[], Awaitable[list[ContactDecision]]]


class ReadAhead:
    """A source's way into the pipeline that decides the next batch while the previous ones
    are being written (see :func:`read_ahead`)."""

    def __init__(self, sink: Any, depth: int, nursery: trio.Nursery) -> None:
        self.sink = sink
        self.depth = depth
        self._stage = getattr(sink, "stage", None) if depth > 1 else None
        self._slots = trio.Semaphore(depth)
        self._nursery = nursery
        self._in_flight = 0
        self._idle = trio.Event()
        self._idle.set()

    @property
    def in_flight(self) -> int:
        """Batches decided and not yet durable."""
        return self._in_flight

    async def send(self, events: Sequence[SignalEvent]) -> None:
        """Decide ``events`` in order after every batch sent before; return once they are
        decided, or once fewer than ``depth`` batches wait for their commit."""
        stage = self._stage
        if stage is None:
            await self.sink.send(events)
            return
        await self._slots.acquire()
        try:
            finish = await stage(events)
        except BaseException:
            self._slots.release()
            raise
        if finish is None:
            self._slots.release()
            return
        if not self._in_flight:  # leaving idle (a settled() waiting keeps its event)
            self._idle = trio.Event()
        self._in_flight += 1
        self._nursery.start_soon(self._finish, finish)

    async def _finish(self, finish: Finish) -> None:
        try:
            await finish()
        finally:
            self._slots.release()
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    async def settled(self) -> None:
        """Wait until everything sent so far is durable (before recording a file position).
        Nothing in flight: no checkpoint (a source records what it handed on even when a
        shutdown arrives meanwhile). Cancelled while batches commit, the position is not
        recorded: the restart reads those events again, and their contact ids make the
        repeats duplicates."""
        if self._in_flight:
            await self._idle.wait()


@contextlib.asynccontextmanager
async def read_ahead(sink: Any, depth: int) -> AsyncIterator[ReadAhead]:
    """Hand batches to ``sink`` with up to ``depth`` of them decided and not yet durable.

    ``sink.send`` returns when a batch is durable, so a source that calls it in a loop
    decides one batch per group commit, whatever else the commit holds: measured with XDR
    over TCP at 10,000 events/s, the reader spent 95 % of its time waiting and fell 10 %
    behind while the writer and the event loop had time to spare. Here the next batch is
    matched and decided (reserving what it allows, so caps hold across batches) while the
    previous ones commit; they share a commit instead of queueing for one each.

    Only a sink with ``stage`` (the core pipeline) reads ahead; any other sink, or ``depth``
    1, gets ``send`` as before. A source that records how far it has read (a file position)
    awaits :meth:`ReadAhead.settled` first. Leaving the block waits for the batches in
    flight; cancelling it cancels their waits (their writes still commit: the state writer
    holds them).
    """
    async with trio.open_nursery() as nursery:
        yield ReadAhead(sink, depth, nursery)


def contact_id_for(campaign_id: str, msisdn: str, trigger: str, period: int) -> str:
    key = f"{campaign_id}:{msisdn}:{trigger}:{period}".encode()
    return "rt-" + hashlib.blake2b(key, digest_size=12).hexdigest()


class Pipeline:
    """Enrich -> match -> contact control -> outbox. ``gateway.pipeline`` is one of these.

    ``profiles`` is a :class:`~gateway.profiles.ProfileHolder`, ``campaigns`` a
    :class:`~gateway.campaigns.CampaignStore` (its ``rule_index`` is re-read per batch, so a
    reload takes effect at the next batch). ``gateway`` supplies contact control, outbox,
    metrics and plugin matchers.
    """

    def __init__(
        self,
        gateway: Any,
        *,
        profiles: Any,
        campaigns: Any,
        timezone: str = "Asia/Shanghai",
        state: MatcherState | None = None,
        enrichment: Enrichment | None = None,
    ) -> None:
        self.gateway = gateway
        #: Number-segment and TAC tables (``gateway.enrichment``); None: none loaded.
        self.enrichment = enrichment or getattr(gateway, "enrichment", None)
        self.profiles = profiles
        self.campaigns = campaigns
        self.clock = LocalClock(timezone)
        self.state = state or MatcherState()
        metrics = gateway.metrics
        self._events = metrics.counter("pipeline.events")
        self._bad = metrics.counter("pipeline.events_bad")
        self._unknown = metrics.counter("pipeline.subscriber_unknown")
        self._matched = metrics.counter("pipeline.matched")
        self._decide_failed = metrics.counter("pipeline.decide_failed")
        self._enqueue_failed = metrics.counter("pipeline.enqueue_failed")
        self._since_expiry = 0
        self._draining = False
        #: contact_id -> (policy key, entry before the mark, marked time): the ``once_per``
        #: marks made by matching, undone if contact control fails to decide the request.
        self._trigger_marks: dict[str, tuple[Any, Any, float]] = {}

    # -- EventSink -----------------------------------------------------------------------

    async def send(self, events: Sequence[SignalEvent]) -> None:
        requests = self.match_batch(events)
        if requests:
            await self.submit(requests)

    async def drain(self) -> None:
        """Nothing is buffered between batches; persist the per-campaign counters."""
        self._draining = True
        await self.campaigns.flush_counts()

    # -- matching (synchronous: no await between enrich and match of one event) ----------

    def match_batch(self, events: Sequence[SignalEvent]) -> list[ContactRequest]:
        """Enrich and match ``events``; the contact requests they trigger, in order."""
        out: list[ContactRequest] = []
        index = self.profiles.index
        rules = self.campaigns.rule_index
        tracked = rules.tracked_kinds
        matchers = self.gateway.matchers
        presence = getattr(self.gateway, "presence", None)  # "is the phone on?" (gateway.presence)
        state = self.state
        clock = self.clock
        ctx = MatchContext(None, index, -1, None, state=state, clock=clock, enrich=self.enrichment)  # type: ignore[arg-type]
        failed = 0
        newest = None  # the latest good event time: what the expiry sweep measures against
        isfinite = math.isfinite
        for event in events:
            try:
                ts = event.timestamp
                if not isfinite(ts):  # NaN/inf would poison windows and wipe state on expiry
                    raise ValueError(f"event time {ts!r} is not a finite number")
                if newest is None or ts > newest:
                    newest = ts
                row = index.row_for(event)
                if row >= 0:
                    prev_cell = index.last_cell[row]
                    prev_seen = index.last_seen[row]
                    index.observe(row, event)
                    subject: Any = index.msisdn_col[row]
                else:
                    self._unknown.value += 1
                    prev_cell, prev_seen = 0, 0.0
                    subject = event.imsi or event.msisdn
                    if not subject:
                        continue
                    if event.imei:  # the profile index learns it for known subscribers
                        state.last_imei.put(subject, event.imei, ts)
                if presence is not None:
                    key = str(subject) if row >= 0 else event.msisdn or subject
                    presence.observe(key, event.kind, ts)
                candidates = rules.candidates(event)
                if candidates:
                    # one context per batch, refilled per event (conditions never keep it)
                    ctx.event, ctx.row, ctx.subject = event, row, subject
                    ctx.prev_cell, ctx.prev_seen = prev_cell, prev_seen
                    for rule in candidates:
                        if rule.passes(ctx):
                            request = self._request(rule.payload, ctx)
                            if request is not None:
                                out.append(request)
                if tracked and event.kind in tracked:
                    state.last_kind.put(
                        (event.kind.value, subject), (event.timestamp, event.peer), event.timestamp
                    )
                if matchers:
                    subscriber = index.subscriber(row) if row >= 0 else None
                    for matcher in matchers:  # a plugin's numbers: E.164 or the event fails
                        out.extend(map(e164_request, matcher.match(event, subscriber)))
            except Exception as exc:  # one bad event must not stop the feed
                self._bad.value += 1
                failed += 1
                if failed == 1:  # one line per batch, not one per event of a broken feed
                    structlog.get_logger().warning(
                        "pipeline.event_failed",
                        error=repr(exc),
                        kind=str(getattr(event, "kind", "?")),
                        source=getattr(event, "source", "?"),
                    )
        self._events.value += len(events)
        self._since_expiry += len(events)
        if self._since_expiry >= EXPIRE_EVERY and newest is not None:
            self._since_expiry = 0
            state.expire(newest)
        return out

    def _request(self, cdef: CampaignDef, ctx: MatchContext) -> ContactRequest | None:
        """The contact request for one rule match, or None (schedule, policy, no MSISDN)."""
        event, cid = ctx.event, cdef.campaign.id
        ts = event.timestamp
        count = self.campaigns.count
        schedule = cdef.schedule
        if not schedule.active_at(ts) or (
            schedule.windows and not schedule.in_window(self.clock.second_of_day(ts))
        ):
            count(cid, "outside_schedule")
            return None
        index, row = ctx.index, ctx.row
        msisdn = index.msisdn(row) if row >= 0 else None
        if msisdn is None and event.msisdn:  # the SMS destination: E.164 (gateway/numbers.py)
            key = active_plan().key(event.msisdn)
            msisdn = str(key) if key else None
        if msisdn is None:
            count(cid, "no_msisdn")
            return None
        if cdef.once_per:
            key = (cid, ctx.subject)
            triggered = self.state.triggered
            if triggered.ttl < cdef.once_per:  # the policy outlives [campaigns] state_ttl
                triggered.ttl = cdef.once_per
            last = triggered.get(key, ts)
            if last is not None and ts - last < cdef.once_per:
                count(cid, "repeat")
                return None
            prior = triggered.entry(key)
            triggered.put(key, ts, ts)
            # one id per policy period, whatever the event: a repeat after the in-memory
            # state expired (or a restart) is the same contact to contact control and outbox
            period, trigger_key = int(ts // cdef.once_per), "period"
            self._mark_trigger(contact_id_for(cid, msisdn, trigger_key, period), key, prior, ts)
        else:
            period, trigger_key = int(ts * 1000), event.kind.value
        channel = self._channel(cdef, ctx)
        if channel is None:
            count(cid, "no_capable_channel")
            return None
        control = in_control_group(cid, msisdn, cdef.control_group_percent)
        count(cid, "matched")
        if control:
            count(cid, "control_group")
        self._matched.value += 1
        campaign = cdef.campaign

        def lookup(name: str) -> Any:
            if name == "peer":
                return event.peer
            if name == "cell":
                return (
                    f"{event.lac}-{event.ci}"
                    if event.ci is not None and event.lac is not None
                    else None
                )
            if name in ("lac", "ci"):
                return getattr(event, name)
            if name == "campaign_name":
                return campaign.name
            if name == "event_kind":
                return event.kind.value
            if name in ENRICHED_FIELDS:
                return enriched_field(ctx, name)
            return (
                index.attribute(name, row) if row >= 0 else (msisdn if name == "msisdn" else None)
            )

        content = {
            key: template.render(lookup) for key, template in cdef.content.get(channel, {}).items()
        }
        reply = getattr(self.campaigns, "reply_addresses", {}).get(cid)
        if reply:  # two-way SMS: the campaign's reply address (gateway.twoway) as sender
            content["source_addr"] = reply
        return ContactRequest(
            contact_id=contact_id_for(cid, msisdn, trigger_key, period),
            msisdn=msisdn,
            campaign_id=cid,
            channel=channel,
            campaign_class=campaign.campaign_class,
            priority=campaign.priority,
            realtime=True,
            defer_if_quiet=cdef.defer_if_quiet,
            content=content,
            created_at=ts,
            trigger=event.kind.value,
            control_group=control,
        )

    def _channel(self, cdef: CampaignDef, ctx: MatchContext) -> str | None:
        """The first of the campaign's channels the subscriber's handset supports.

        The handset is the one seen last in the signaling (by its TAC) where the TAC table
        knows it, else the profile's capabilities; a subscriber known to neither gets the
        first channel. Each channel passed over for this reason is counted as
        ``handset_unfit.<channel>`` in the campaign's counters (shown by ``campaign report``).
        """
        unknown = ctx.row < 0 and handset_of(ctx) is None
        for channel in cdef.campaign.channels:
            # What the handset must support is the channel's own declaration (Channel.requires).
            needed = requirements_of(self.gateway.channels.get(channel))
            if not needed or unknown or supports(ctx, needed):
                return channel
            self.campaigns.count(cdef.campaign.id, f"handset_unfit.{channel}")
        return None

    # -- trigger-policy marks of undecided requests -----------------------------------------

    def _mark_trigger(self, contact_id: str, key: Any, prior: Any, ts: float) -> None:
        marks = self._trigger_marks
        marks.pop(contact_id, None)
        if len(marks) >= MAX_TRIGGER_MARKS:
            del marks[next(iter(marks))]  # the oldest: its request was never submitted
        marks[contact_id] = (key, prior, ts)

    def _settle_triggers(self, requests: Sequence[ContactRequest], *, decided: bool) -> None:
        """Keep the ``once_per`` marks of decided requests; undo those of a failed decision.

        A request contact control could not decide reached nobody: its mark would otherwise
        skip the subscriber for the rest of the period (the next event triggers again).
        """
        marks = self._trigger_marks
        if not marks:
            return
        triggered = self.state.triggered
        undone = 0
        for request in requests:
            mark = marks.pop(request.contact_id, None)
            if mark is not None and not decided:
                key, prior, ts = mark
                undone += triggered.restore(key, prior, if_value=ts)
        if undone:
            structlog.get_logger().warning("pipeline.trigger_marks_undone", requests=undone)

    # -- decisions -------------------------------------------------------------------------

    async def submit(self, requests: list[ContactRequest]) -> list[ContactDecision]:
        """Contact control and the outbox for a batch, in one transaction; per-campaign counters."""
        finish = await self._begin(requests)
        return await finish()

    async def stage(self, events: Sequence[SignalEvent]) -> Finish | None:
        """``send`` in two steps (see :func:`read_ahead`): match ``events`` and decide their
        contacts now, their writes queued in the state writer's pending batch; the returned
        ``finish`` waits until they are durable and counts them (None: nothing matched).
        Decisions follow the order of ``stage`` calls, whatever order they finish in."""
        requests = self.match_batch(events)
        if not requests:
            return None
        return await self._begin(requests)

    async def _begin(self, requests: list[ContactRequest]) -> Finish:
        stage = getattr(self.gateway.contact_control, "stage_and_queue", None)
        if stage is None:  # a contact control of the bare contract: all of it now
            return Decided(await self._submit_whole(requests))
        try:
            finish = await stage(requests, self.gateway.outbox)
        except Exception as exc:  # backend down: counted and logged, the feed goes on
            self._failed(requests, exc)
            return Decided([])

        async def done() -> list[ContactDecision]:
            try:
                decisions = await finish()
            except Exception as exc:  # disk full...: the reservations were withdrawn
                self._failed(requests, exc)
                return []
            self._decided(requests, decisions)
            return decisions

        return done

    def _failed(self, requests: list[ContactRequest], exc: Exception) -> None:
        self._decide_failed.value += len(requests)
        structlog.get_logger().error(
            "pipeline.decide_failed", error=repr(exc), requests=len(requests)
        )
        self._settle_triggers(requests, decided=False)

    def _decided(self, requests: list[ContactRequest], decisions: list[ContactDecision]) -> None:
        self._settle_triggers(requests, decided=True)
        count = self.campaigns.count
        for d in decisions:
            count(
                d.request.campaign_id, "duplicate" if d.reason == "duplicate" else d.outcome.value
            )

    async def _submit_whole(self, requests: list[ContactRequest]) -> list[ContactDecision]:
        gw = self.gateway
        log = structlog.get_logger()
        decide_and_queue = getattr(gw.contact_control, "decide_and_queue", None)
        try:
            if decide_and_queue is not None:
                # decisions, their ledger rows and the ALLOWED ones' outbox entries commit
                # together: no "decided but not queued" gap
                decisions = await decide_and_queue(requests, gw.outbox)
            else:
                decisions = await gw.contact_control.decide_many(requests)
        except Exception as exc:  # backend down, disk full: counted and logged, the feed goes on
            self._failed(requests, exc)
            return []
        self._decided(requests, decisions)
        if decide_and_queue is not None:
            return decisions
        allowed = [d for d in decisions if d.outcome is Outcome.ALLOWED]
        try:
            if allowed:
                await gw.outbox.enqueue_many(allowed)
            for d in decisions:
                if d.outcome is Outcome.DEFERRED and d.not_before is not None:
                    await gw.outbox.defer(d.request, d.not_before)
        except Exception as exc:  # disk full...: reservations expire and are released
            self._enqueue_failed.value += len(allowed)
            log.error("pipeline.enqueue_failed", error=repr(exc), allowed=len(allowed))
        return decisions
