"""The durable outbox: per-channel queues between contact control and the channels.

Contact control's ALLOWED decisions are enqueued here (idempotent by contact_id); a channel
opens its queue with :meth:`Outbox.open_queue` and takes due messages under a lease. Before it
writes a message to the network it marks it ``sending`` (:meth:`OutboxQueue.mark_sending`), so
that after kill -9 the outbox knows which messages may have reached the peer: those become
``unknown`` at start-up, are counted, and are resent only with ``[outbox] resend_unknown``.

Every write goes through the state database's one writer (:class:`~gateway.store.StateWriter`):
operations queued while a transaction runs are committed together in the next one, so a burst
of 64 submit answers costs one fsync, not 64, and an entry queued together with its decision
commits in the decision's transaction.
A scheduler task moves retries and expired leases back to the queue, expires what was not sent
in time, and presents deferred (quiet-hours) requests to contact control again when due.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any, NamedTuple

import attrs
import structlog
import trio

from gateway.contact.ledger import record_lost_answers
from gateway.errors import StoreError
from gateway.model import ContactDecision, ContactRequest, Delivery, DeliveryState, Outcome
from gateway.outbox import store
from gateway.outbox.config import OutboxConfig
from gateway.outbox.store import OutboxMessage
from gateway.store import StateWriter, open_state_writer

__all__ = ["Outbox", "OutboxMessage", "OutboxQueue", "open_outbox"]

#: Finished entries deleted per transaction by the purge (``store.purge_finished``'s limit).
PURGE_CHUNK = 10_000
#: Requests of queued entries kept in memory for their take (``Outbox._staged_requests``).
STAGED_REQUESTS = 20_000


class StagedDecisions(NamedTuple):
    """Writes queued by :meth:`Outbox.stage_decisions`, awaited by :meth:`Outbox.staged_done`."""

    rows: list[tuple[Any, ...]]
    held: list[tuple[Any, ...]]
    insert: list[Any] | None
    defer: list[Any] | None


@attrs.define(eq=False)
class Outbox:
    """Implements :class:`gateway.contracts.Outbox` plus the channel-side queues."""

    config: OutboxConfig
    writer: StateWriter
    gateway: Any = None  # for report_delivery (expiry, unknown) and contact control (deferred)
    #: The contact ledger, when it shares ``writer``: recovery records lost submit answers there.
    ledger: Any = None
    clock: Any = time.time
    stats: dict[str, int] = attrs.field(
        factory=lambda: dict.fromkeys(
            (
                "enqueued",
                "duplicates",
                "taken",
                "sent",
                "retried",
                "expired",
                "cancelled",
                "unknown",
                "resent",
                "receipts",
                "receipts_unmatched",
                "receipts_early",
                "deferred",
                "redecided",
                "purged",
            ),
            0,
        )
    )
    _depths: dict[str, int] = attrs.field(factory=dict)
    _wakeups: dict[str, trio.Event] = attrs.field(factory=dict)
    _unknown_to_report: list = attrs.field(factory=list)
    _next_purge: float = 0.0
    _next_early_purge: float = 0.0
    #: contact_id -> (channel, the peer's ids of its parts) for its submit answer's report
    _submit_ids: dict[str, tuple[str, list[str]]] = attrs.field(factory=dict)
    #: contact_id -> (stored text, request, queued at) of entries queued by this process and
    #: not taken yet: take uses the request instead of decoding the text (see
    #: ``store.messages_from_rows``). Bounded: when full, newer entries are not held (a message
    #: missing from it is decoded from the database, as after a restart); a take, a cancel or
    #: a duplicate removes its entry, and the scheduler those past their expiry.
    _staged_requests: dict[str, tuple[str, ContactRequest, float]] = attrs.field(factory=dict)
    _recorder: tuple[tuple[int, int], store.LedgerRecorder] | None = None
    _recovered: bool = True  # False while a start-up recovery failed (retried by the scheduler)

    async def _call(self, fn: Any, *args: Any) -> Any:
        return await self.writer.call(fn, *args)

    def _wake(self, channel: str) -> None:
        event = self._wakeups.get(channel)
        if event is not None:
            event.set()

    # -- contact control side (the Outbox protocol) ------------------------------------------------

    async def enqueue(self, decision: ContactDecision) -> bool:
        return await self.enqueue_many([decision]) == 1

    async def enqueue_many(self, decisions: Sequence[ContactDecision]) -> int:
        for d in decisions:
            if d.outcome is not Outcome.ALLOWED:
                raise ValueError(
                    f"only ALLOWED decisions are queued, got {d.outcome} for {d.request.contact_id}"
                )
        staged = self.stage_decisions(decisions)
        return await self.staged_done(staged)

    def stage_decisions(self, decisions: Sequence[ContactDecision]) -> StagedDecisions:
        """Queue the writes for ``decisions`` in the writer's pending batch, without awaiting:
        ALLOWED ones become entries, DEFERRED ones (with ``not_before``) are held; others are
        ignored. Whatever else is queued before the next checkpoint (the decisions' ledger
        rows) commits in the same transaction. Then await :meth:`staged_done`."""
        now = self.clock()
        expiry = self.config.expiry
        rows, held = [], []
        kept = self._staged_requests
        room = STAGED_REQUESTS - len(kept)  # full: the newest are decoded when taken
        for d in decisions:
            outcome = d.outcome
            r = d.request
            if outcome is Outcome.ALLOWED:
                text = store.dump_request(r)
                if room > 0:
                    kept[r.contact_id] = (text, r, now)
                    room -= 1
                rows.append(
                    (
                        r.contact_id,
                        r.channel,
                        r.campaign_id,
                        r.msisdn,
                        r.priority,
                        text,
                        now,
                        (d.decided_at or now) + expiry,
                        now,
                    )
                )
            elif outcome is Outcome.DEFERRED and d.not_before is not None:
                held.append((r.contact_id, r.channel, store.dump_request(r), d.not_before))
        insert = self.writer.submit(store.insert_entries, rows) if rows else None
        defer = self.writer.submit(store.insert_deferred_many, held) if held else None
        return StagedDecisions(rows, held, insert, defer)

    async def staged_done(self, staged: StagedDecisions) -> int:
        """Wait for the commit of :meth:`stage_decisions`' writes; the number newly queued."""
        new: list[str] = []
        if staged.insert is not None:
            new = await self.writer.result(staged.insert)
        if staged.defer is not None:
            await self.writer.result(staged.defer)
        self.stats["enqueued"] += len(new)
        self.stats["duplicates"] += len(staged.rows) - len(new)
        fresh = set(new)
        depths = self._depths
        for row in staged.rows:
            if row[0] in fresh:
                depths[row[1]] = depths.get(row[1], 0) + 1
                self._wake(row[1])
            else:  # a duplicate: the entry there keeps its own request
                self._staged_requests.pop(row[0], None)
        for held in staged.held:
            self.stats["deferred"] += 1
            depths[held[1]] = depths.get(held[1], 0) + 1
        return len(new)

    async def defer(self, request: ContactRequest, not_before: float) -> None:
        await self._call(
            store.insert_deferred,
            request.contact_id,
            request.channel,
            store.dump_request(request),
            not_before,
        )
        self.stats["deferred"] += 1
        self._depths[request.channel] = self._depths.get(request.channel, 0) + 1

    async def cancel(self, contact_id: str, reason: str) -> bool:
        self._staged_requests.pop(contact_id, None)
        done = await self._call(store.cancel, contact_id, reason, self.clock())
        if done:
            self.stats["cancelled"] += 1
        return done

    async def record_delivery(self, delivery: Delivery) -> Any:
        """The entry's new state, durable; the op's result (see :meth:`stage_delivery`)."""
        return await self.writer.result(self.stage_delivery(delivery))

    def ledger_recorder(self) -> store.LedgerRecorder | None:
        """Contact control's ledger side of a receipt's final state, when its ledger is on
        this writer (then the two are one transaction); None otherwise (Redis: the report
        reconciles it)."""
        control = getattr(self.gateway, "contact_control", None)
        if (
            control is not None
            and getattr(getattr(control, "ledger", None), "writer", None) is self.writer
            and hasattr(control, "receipt_recorder")
        ):
            # built once per control and configuration (a reload may change refund_on)
            key = (id(control), id(getattr(control, "config", None)))
            if self._recorder is None or self._recorder[0] != key:
                self._recorder = (key, control.receipt_recorder())
            return self._recorder[1]
        return None

    def settled_early(self, delivery: Delivery, result: Any) -> Delivery | None:
        """The final delivery that receipts recorded before ``delivery``'s submit answer gave,
        from the result of its op (see :meth:`stage_delivery`), or None."""
        if delivery.state is not DeliveryState.SUBMITTED or not isinstance(result, tuple):
            return None
        contact_id, final = result
        if final is None:
            return None
        self.stats["receipts_early"] += 1
        return attrs.evolve(delivery, contact_id=contact_id, state=DeliveryState(final))

    def stage_delivery(self, delivery: Delivery) -> list[Any]:
        """Queue the entry's new state in the writer's pending batch (no await); the op.

        A submit answer whose parts' ids were given to :meth:`OutboxQueue.report_submitted`
        maps them in the same operation and applies the receipts that overtook it: the op's
        result is then ``(contact_id, final state)`` when those settled the message (see
        :meth:`settled_early`)."""
        ids = self._submit_ids.pop(delivery.contact_id, None)
        if ids is not None and delivery.state is DeliveryState.SUBMITTED:
            channel, keys = ids
            return self.writer.submit(
                store.record_submitted,
                channel,
                delivery.contact_id,
                keys,
                delivery.message_id,
                delivery.at or self.clock(),
                self.ledger_recorder(),
            )
        return self.writer.submit(
            store.record_state,
            delivery.contact_id,
            delivery.state.value,
            delivery.message_id,
            delivery.error,
            delivery.at or self.clock(),
        )

    def stage_deliveries(self, deliveries: Sequence[Delivery]) -> list[tuple[list[Any], int]]:
        """:meth:`stage_delivery` for many (no await): the submit answers with mapped part ids
        share one op (``store.record_submitted_many``). Per delivery a handle for
        :meth:`staged_result`."""
        handles: list[tuple[list[Any], int]] = []
        answers: list[store.SubmitAnswer] = []
        shared: list[Any] = []  # the shared op, made at the first answer (it keeps its place)
        for delivery in deliveries:
            ids = self._submit_ids.pop(delivery.contact_id, None)
            if ids is not None and delivery.state is DeliveryState.SUBMITTED:
                if not shared:  # its item list fills until the batch is sent (no await here)
                    shared.append(
                        self.writer.submit(
                            store.record_submitted_many, answers, self.ledger_recorder()
                        )
                    )
                answers.append(
                    (
                        ids[0],
                        delivery.contact_id,
                        ids[1],
                        delivery.message_id,
                        delivery.at or self.clock(),
                    )
                )
                handles.append((shared, len(answers) - 1))
            else:  # its ids, if any, go as stage_delivery would drop them
                handles.append((self.stage_delivery(delivery), -1))
        return handles

    async def staged_result(self, handle: tuple[list[Any], int]) -> Any:
        """The result of a delivery staged by :meth:`stage_deliveries` once durable (raises
        what failed it)."""
        op, index = handle
        if index < 0:
            return await self.writer.result(op)
        result = (await self.writer.result(op[0]))[index]
        if isinstance(result, Exception):
            raise result
        return result

    def depth(self, channel: str) -> int:
        return self._depths.get(channel, 0)

    async def delivery_counts(self, campaign_id: str) -> dict[str, int]:
        """``{state: n}`` over the campaign's outbox entries (for the campaign report)."""
        return await self.writer.run(store.counts_by_state, campaign_id)

    async def counts(self, channel: str | None = None) -> dict[str, int]:
        return await self.writer.run(store.counts_by_state, None, channel)

    async def show(self, contact_id: str) -> dict | None:
        return await self.writer.run(store.show, contact_id)

    # -- channel side ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def open_queue(self, channel: str) -> AsyncIterator[OutboxQueue]:
        """The consumer side of one channel's queue. On exit its leases are given back."""
        queue = OutboxQueue(self, channel)
        try:
            yield queue
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await queue.release(list(queue.leased))

    async def recover(self, channel: str | None = None) -> tuple[int, int]:
        """Leases back to the queue; messages caught ``sending`` become unknown (or are resent)."""
        record_lost = None
        if self.ledger is not None and getattr(self.ledger, "writer", None) is self.writer:
            record_lost = record_lost_answers
        released, unknown, reportable = await self._call(
            store.recover, channel, self.config.resend_unknown, self.clock(), record_lost
        )
        self.stats["unknown"] += unknown
        if self.config.resend_unknown:
            self.stats["resent"] += unknown
        log = structlog.get_logger()
        if released or unknown:
            log.warning(
                "outbox.recovered",
                channel=channel or "*",
                leases_released=released,
                unknown=unknown,
                resent=unknown if self.config.resend_unknown else 0,
            )
        # Their ledger rows are durable with the recovery; contact control's memory follows now
        # (a reservation past its timeout must not be refunded in the meantime).
        control = getattr(self.gateway, "contact_control", None)
        if control is not None:
            for contact_id, ch, msisdn in reportable:
                if record_lost is not None and hasattr(control, "apply_recorded"):
                    # the ledger row was written with the recovery: memory only (once)
                    control.apply_recorded(
                        Delivery(
                            contact_id=contact_id,
                            channel=ch,
                            state=DeliveryState.UNKNOWN,
                            at=self.clock(),
                            msisdn=msisdn,
                        )
                    )
                    continue
                try:
                    await control.commit(contact_id)
                except Exception as exc:  # Redis down: the unknown report below commits it
                    log.warning("outbox.commit_failed", contact_id=contact_id, error=repr(exc))
        # Reported by the next scheduler tick, once contact control and observers are running.
        if not self.config.resend_unknown:
            self._unknown_to_report.extend(reportable)
        for ch in {*self._depths, *(r[1] for r in reportable)}:
            self._wake(ch)
        return released, unknown

    async def _report(self, delivery: Delivery) -> None:
        if self.gateway is not None:
            await self.gateway.report_delivery(delivery)
        else:
            await self.record_delivery(delivery)

    # -- background work ---------------------------------------------------------------------------

    async def refresh_depths(self) -> None:
        self._depths = await self.writer.run(store.depths)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """The scheduler (see :meth:`tick`), run by the core as the ``outbox-scheduler`` service."""
        task_status.started()
        while True:
            await trio.sleep(self.config.scheduler_interval)
            try:
                await self.tick()
            except Exception as exc:  # keep scheduling; the next tick may succeed
                structlog.get_logger().error("outbox.tick_failed", error=repr(exc))

    def _forget_staged(self, before: float) -> None:
        """Drop held requests queued before ``before``: past their expiry they are not sent
        (kept in the order queued: the oldest are first)."""
        kept = self._staged_requests
        while kept:
            contact_id = next(iter(kept))
            if kept[contact_id][2] >= before:
                break
            del kept[contact_id]

    async def tick(self) -> None:
        """One scheduler pass: retries due, expired leases, expiry, deferred requests."""
        if not self._recovered:
            await self.recover()
            self._recovered = True
        now = self.clock()
        self._forget_staged(now - self.config.expiry)
        log = structlog.get_logger()
        while self._unknown_to_report:
            contact_id, ch, msisdn = self._unknown_to_report[-1]
            try:
                await self._report(
                    Delivery(
                        contact_id=contact_id,
                        channel=ch,
                        state=DeliveryState.UNKNOWN,
                        at=now,
                        error="crash: submit answer lost",
                        msisdn=msisdn,
                    )
                )
            except Exception as exc:  # contact control down: kept for the next tick
                log.warning("outbox.report_failed", contact_id=contact_id, error=repr(exc))
                break
            self._unknown_to_report.pop()
        requeued, leases, expired = await self._call(store.due_timers, now)
        if requeued or leases:
            for ch in list(self._depths):
                self._wake(ch)
        for contact_id, ch, msisdn in expired:
            self.stats["expired"] += 1
            try:  # already stored as expired: one failing report must not skip the others
                await self._report(
                    Delivery(
                        contact_id=contact_id,
                        channel=ch,
                        state=DeliveryState.EXPIRED,
                        at=now,
                        error="not sent before expiry",
                        msisdn=msisdn,
                    )
                )
            except Exception as exc:
                log.warning("outbox.report_failed", contact_id=contact_id, error=repr(exc))
        control = getattr(self.gateway, "contact_control", None)
        if control is not None:
            for request in await self._call(store.due_deferred, now):
                # Deleted only once its new decision is acted on: a crash in between presents it
                # again, and a second decision of the same contact_id is a duplicate (idempotent).
                try:
                    decision = await control.decide(request)
                    if decision.outcome is Outcome.ALLOWED:
                        await self.enqueue(decision)
                    elif decision.outcome is Outcome.DEFERRED and decision.not_before is not None:
                        await self.defer(request, decision.not_before)  # replaces the entry
                        self.stats["redecided"] += 1
                        continue
                    await self._call(store.delete_deferred, request.contact_id)
                except Exception as exc:  # contact control down: keep them all for the next tick
                    log.warning(
                        "outbox.redecide_failed", contact_id=request.contact_id, error=repr(exc)
                    )
                    break
                self.stats["redecided"] += 1
        if self.config.retention and now >= self._next_purge:
            # one chunk per pass while there is more (the pass's other work is not held up
            # behind a backlog of millions), then the message ids, then not for 10 minutes
            purged = await self._call(
                store.purge_finished, now - self.config.retention, PURGE_CHUNK
            )
            self.stats["purged"] += purged
            if purged < PURGE_CHUNK:
                self._next_purge = now + 600
                while await self._call(store.purge_message_ids):
                    pass
        if now >= self._next_early_purge:
            self._next_early_purge = now + 600
            # a receipt that no submit answer claimed within a day is not ours
            await self._call(store.purge_early_receipts, now - 86400)
        await self.refresh_depths()


@attrs.define(eq=False)
class OutboxQueue:
    """One channel's consumer: ``take`` due messages under a lease, then report what happened.

    Typical channel loop::

        async with gateway.outbox.open_queue("sms") as queue:
            await queue.recover()               # this channel's messages caught by a crash
            while True:
                for message in await queue.take(100):
                    ...                              # prepare
                sending = await queue.mark_sending(ids)   # durable, just before the network write
                ...                                  # write; then gateway.report_delivery(...)
    """

    outbox: Outbox
    channel: str
    leased: set[str] = attrs.field(factory=set)

    async def recover(self) -> tuple[int, int]:
        return await self.outbox.recover(self.channel)

    async def take(self, limit: int, *, max_wait: float = math.inf) -> list[OutboxMessage]:
        """Up to ``limit`` due messages, waiting (up to ``max_wait`` s) for at least one."""
        ob = self.outbox
        with trio.move_on_after(max_wait):
            while True:
                event = ob._wakeups.get(self.channel)
                if event is None or event.is_set():
                    event = ob._wakeups[self.channel] = trio.Event()
                now = ob.clock()
                # The lease need not be durable before the messages are used: only a later
                # mark_sending (committed after this batch) lets one be sent, and it finds no
                # lease if this batch fails. Not waiting for this commit takes one commit off
                # every message's way to the wire.
                rows = await ob.writer.executed(
                    ob.writer.submit(store.take, self.channel, limit, now, now + ob.config.lease)
                )
                messages = store.messages_from_rows(self.channel, rows, ob._staged_requests)
                if messages:
                    self.leased.update(m.contact_id for m in messages)
                    ob.stats["taken"] += len(messages)
                    return messages
                with trio.move_on_after(ob.config.scheduler_interval):
                    await event.wait()
        return []

    async def mark_sending(self, contact_ids: Sequence[str]) -> set[str]:
        """Persist "about to go on the wire"; only the returned ids may be sent (others were
        cancelled or their lease expired meanwhile)."""
        marked = await self.outbox._call(store.mark_sending, list(contact_ids), self.outbox.clock())
        self.leased.difference_update(contact_ids)
        self.outbox.stats["sent"] += len(marked)
        return set(marked)

    async def release(self, contact_ids: Sequence[str]) -> int:
        """Give leased, unsent messages back to the queue (shutdown)."""
        if not contact_ids:
            return 0
        self.leased.difference_update(contact_ids)
        return await self.outbox._call(store.release_leases, list(contact_ids), self.outbox.clock())

    async def retry(
        self, contact_id: str, error: str | None, *, count_attempt: bool = True
    ) -> str | None:
        """A transient failure: back to the queue after a backoff. Returns the new state; when it
        is ``rejected`` or ``expired`` the message was given up and the caller reports it."""
        c = self.outbox.config
        state = await self.outbox._call(
            store.schedule_retry,
            contact_id,
            self.outbox.clock(),
            error,
            c.max_attempts,
            c.retry_backoff,
            c.retry_backoff_max,
            count_attempt,
        )
        self.leased.discard(contact_id)
        if state == "retry":
            self.outbox.stats["retried"] += 1
        return state

    async def map_message_ids(self, contact_id: str, message_ids: Sequence[str]) -> None:
        """Remember the peer's ids of a message's parts, for receipts (survives restarts)."""
        await self.outbox._call(store.map_message_ids, self.channel, contact_id, list(message_ids))

    async def report_submitted(
        self, delivery: Delivery, message_ids: Sequence[str]
    ) -> tuple[str, str | None] | None:
        """Report a submit answer (``delivery``, state submitted) through the gateway with the
        peer's ids of its parts: the entry's state, the ids, the receipts that overtook the
        answer and the contact's commit are one transaction. Returns ``(contact_id, final
        state)`` when such receipts settled the message, else None."""
        settled, errors = await self.report_submitted_many([(delivery, message_ids)])
        if errors[0] is not None:
            raise errors[0]
        return (settled[0].contact_id, settled[0].state.value) if settled else None

    async def report_submitted_many(
        self, items: Sequence[tuple[Delivery, Sequence[str]]]
    ) -> tuple[list[Delivery], list[Exception | None]]:
        """:meth:`report_submitted` for many submit answers in one group commit. Returns the
        final deliveries that early receipts gave, and per item its error or None."""
        ob = self.outbox
        for delivery, message_ids in items:
            ob._submit_ids[delivery.contact_id] = (self.channel, list(message_ids))
        settled: list[Delivery] = []
        deliveries = [d for d, _ in items]
        try:
            many = getattr(ob.gateway, "report_deliveries", None)
            if many is not None:
                errors = await many(deliveries, settled=settled)
            elif ob.gateway is not None:  # a gateway of its own (tests): one report each
                errors = []
                for delivery in deliveries:
                    try:
                        await ob.gateway.report_delivery(delivery)
                    except Exception as exc:
                        errors.append(exc)
                    else:
                        errors.append(None)
            else:
                errors = []
                for delivery in deliveries:
                    try:
                        early = ob.settled_early(delivery, await ob.record_delivery(delivery))
                    except Exception as exc:
                        errors.append(exc)
                        continue
                    errors.append(None)
                    if early is not None:
                        settled.append(early)
        finally:
            for delivery in deliveries:
                ob._submit_ids.pop(delivery.contact_id, None)
        return settled, errors

    async def settle_receipt(
        self,
        message_id: str,
        state: str,
        *,
        error: str | None = None,
        msisdn: str | None = None,
        receipt_id: str | None = None,
    ) -> tuple[str, str | None] | None:
        """A receipt for one part, and once every part has one, the message's final state,
        its reconciliation in contact control and the ``gateway_delivery_report`` observers:
        the receipt and the reconciliation are one transaction when contact control keeps its
        ledger on the outbox's writer. ``error`` is kept for a final state other than
        delivered. Returns what :meth:`apply_receipt` returns; None for a receipt whose submit
        answer is not recorded yet: it is then kept durably (``outbox_early_receipts``) and
        the submit answer's recording applies it (see :meth:`report_submitted`)."""
        ob = self.outbox
        recorder = ob.ledger_recorder()
        now = ob.clock()
        result = await ob.writer.call(
            store.settle_receipt, self.channel, message_id, state, now, error, recorder
        )
        await self._settled(result, now, error, msisdn, receipt_id, recorder)
        return result

    async def settle_receipts(
        self, items: Sequence[tuple[str, str, str | None, str | None, str | None]]
    ) -> list[Any]:
        """:meth:`settle_receipt` for many receipts ``(message_id, state, error, msisdn,
        receipt_id)`` in one writer op (one commit): per receipt what ``settle_receipt``
        returns, or the exception that failed it. A receipt that fails its op makes each
        be settled alone (so it fails alone); a failed commit raises StoreError for all."""
        ob = self.outbox
        recorder = ob.ledger_recorder()
        now = ob.clock()
        rows = [(mid, state, error) for mid, state, error, _m, _r in items]
        results: list[Any]
        try:
            results = await ob.writer.call(store.settle_receipts, self.channel, rows, now, recorder)
        except StoreError:
            raise
        except Exception:
            results = []
            for mid, state, error in rows:
                try:
                    results.append(
                        await ob.writer.call(
                            store.settle_receipt, self.channel, mid, state, now, error, recorder
                        )
                    )
                except StoreError:
                    raise
                except Exception as exc:
                    results.append(exc)
        finals: list[Delivery] = []
        try:
            for (_mid, _state, error, msisdn, receipt_id), result in zip(
                items, results, strict=True
            ):
                if isinstance(result, Exception):
                    continue
                await self._settled(result, now, error, msisdn, receipt_id, recorder, finals)
        finally:  # the observers, once for the final states recorded together
            if finals:
                ob.gateway.observe_deliveries(finals)
        return results

    async def _settled(
        self,
        result: tuple[str, str | None] | None,
        now: float,
        error: str | None,
        msisdn: str | None,
        receipt_id: str | None,
        recorder: Any,
        finals: list[Delivery] | None = None,
    ) -> None:
        """After a receipt's commit: count it; a final state is reconciled and reported (its
        observers called now, or appended to ``finals`` for the caller to call them)."""
        ob = self.outbox
        ob.stats["receipts" if result else "receipts_unmatched"] += 1
        if result is None or result[1] is None:
            return
        contact_id, final = result[0], result[1]
        delivery = Delivery(
            contact_id=contact_id,
            channel=self.channel,
            state=DeliveryState(final),
            at=now,
            message_id=receipt_id,
            error=None if final == "delivered" else error,
            msisdn=msisdn,
        )
        if recorder is not None:
            ob.gateway.contact_control.apply_recorded(delivery)
            if finals is not None:
                finals.append(delivery)
            else:
                ob.gateway.observe_deliveries([delivery])
        else:  # a remote backend (Redis), or no gateway: the ordinary report
            await ob._report(delivery)

    async def apply_receipt(self, message_id: str, state: str) -> tuple[str, str | None] | None:
        """A receipt for one part: ``(contact_id, final state once every part has one)`` or None."""
        result = await self.outbox._call(store.apply_receipt, self.channel, message_id, state)
        self.outbox.stats["receipts" if result else "receipts_unmatched"] += 1
        return result


@contextlib.asynccontextmanager
async def open_outbox(
    path: Any,
    config: OutboxConfig,
    *,
    gateway: Any = None,
    synchronous: str = "full",
    clock: Any = time.time,
    run_scheduler: bool = True,
    writer: StateWriter | None = None,
    ledger: Any = None,
) -> AsyncIterator[Outbox]:
    """Open the outbox tables in the SQLite file at ``path`` and recover from a crash.

    ``writer``: the state database's one writer, shared with contact control (the daemon
    passes the ledger's); without it the outbox opens a writer of its own on ``path``.
    ``ledger``: the contact ledger on that writer (see :meth:`Outbox.recover`).
    With ``run_scheduler`` the scheduler runs in a nursery here (tests, tools); the daemon
    passes False and runs :meth:`Outbox.run` as a service instead, because stores are opened
    inside a start-up cancel scope that must not enclose long-lived tasks.
    """
    async with contextlib.AsyncExitStack() as stack:
        if writer is None:
            writer = await stack.enter_async_context(
                open_state_writer(path, synchronous=synchronous)
            )
        await writer.setup(store.create)
        outbox = Outbox(config=config, writer=writer, gateway=gateway, clock=clock, ledger=ledger)
        await outbox.refresh_depths()
        try:
            await outbox.recover()
        except Exception as exc:  # disk full: start anyway, the scheduler retries it
            outbox._recovered = False
            structlog.get_logger().error(
                "outbox.recover_failed", path=writer.path, error=str(exc), retry="scheduler"
            )
        if run_scheduler:
            async with trio.open_nursery() as nursery:
                await nursery.start(outbox.run)
                yield outbox
                nursery.cancel_scope.cancel()
        else:
            yield outbox
        await writer.flush()
