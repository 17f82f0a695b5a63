"""The :class:`~gateway.contracts.ContactControl` service, minus the storage of counters.

:class:`ContactControlBase` runs the decision flow (engine prechecks, cap plan, the backend's
atomic check-and-reserve, priority pre-emption, control group, the ledger record and its
durability) and leaves to a backend only ``_reserve_batch`` (check and reserve a batch,
atomically per request) and the reservation transitions ``_commit`` / ``_release``.

Priority pre-emption: when a request finds a cap full and some of the contacts filling it
are reservations of lower priority not yet committed, the ``preemptor`` callback (in the
daemon: ``gateway.outbox.cancel(contact_id, "preempted")``) is asked to withdraw them, lowest
priority first; only a reservation whose message was withdrawn is released (recorded as
``preempted``), and the request is decided again.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import structlog
import trio

from gateway.contact.config import ContactConfig
from gateway.contact.engine import Engine, Violation
from gateway.contact.ledger import Ledger, decision_row
from gateway.contact.lists import ListStore
from gateway.model import ContactDecision, ContactRequest, Delivery, Outcome
from gateway.store import StateWriter, open_state_writer

Preemptor = Callable[[str], Awaitable[bool]]

# Enum member lookups go through a descriptor in Python 3.11: hoisted off the hot path.
_ALLOWED, _SUPPRESSED, _CONTROL = Outcome.ALLOWED, Outcome.SUPPRESSED, Outcome.CONTROL

#: Result of a backend reservation attempt: None (reserved or, in dry mode, would be),
#: a Violation, or DUPLICATE(expires_at) when the contact_id already holds a reservation.
DRY, RESERVE = 0, 1
MAX_PREEMPT_ROUNDS = 3


class Duplicate:
    __slots__ = ("expires_at",)

    def __init__(self, expires_at: float | None) -> None:
        self.expires_at = expires_at


@attrs.frozen
class Decided:
    """A ``finish`` (see :meth:`ContactControlBase.stage_and_queue`) with nothing left to wait
    for: awaiting it returns ``decisions``."""

    decisions: list[ContactDecision]

    async def __call__(self) -> list[ContactDecision]:
        return self.decisions


def _reserved_ids(decisions: Sequence[ContactDecision]) -> list[str]:
    """Contact ids that this batch newly reserved (not duplicates, not dry checks)."""
    return [
        d.request.contact_id
        for d in decisions
        if d.outcome is _ALLOWED
        and d.reservation_expires_at is not None
        and d.reason != "duplicate"
    ]


def release_event(reason: str) -> str:
    if reason == "preempted":
        return "preempted"
    if reason == "expired":
        return "expired"
    if reason.startswith("refund"):
        return "refunded"
    return "released"


class ContactControlBase:
    """Decision flow shared by the SQLite and Redis backends."""

    backend_name = "base"
    # The expiry a backend gives reservations queued in the outbox with their decision, if it
    # keeps them counting until the outbox reports a final state (see ``_evaluate``); None:
    # they expire by ``reservation_timeout`` like any other.
    held_expiry: float | None = None

    def __init__(
        self,
        config: ContactConfig,
        lists: Any,
        ledger: Ledger | None,
        *,
        clock: Callable[[], float] = time.time,
        preemptor: Preemptor | None = None,
        on_recorded: Callable[[ContactDecision], None] | None = None,
    ) -> None:
        self.config = config
        self.lists = lists
        self.ledger = ledger
        self.clock = clock
        self.engine = Engine(config, lists)
        self.preemptor = preemptor
        self.on_recorded = on_recorded
        #: called once per commit with its decisions (``Gateway.observe_decisions``)
        self.on_recorded_many: Callable[[list[ContactDecision]], None] | None = None
        self.outcomes = {o.value: 0 for o in Outcome}
        self.preemptions = 0
        self._rate_mark = (time.monotonic(), 0)
        self._last_ledger_prune = 0.0

    def reconfigure(self, config: ContactConfig) -> list[str]:
        """Apply a reloaded ``[contact]`` section: lists, hours, caps, cooldowns, timeouts.

        Storage settings (backend, Redis address, durability) need a restart: they are kept
        as they were, and their names returned so the caller can say so.
        """
        fixed = (
            "backend",
            "redis_host",
            "redis_port",
            "redis_prefix",
            "synchronous",
            "group_commit_interval",
        )
        kept = [k for k in fixed if getattr(config, k) != getattr(self.config, k)]
        self.config = attrs.evolve(config, **{k: getattr(self.config, k) for k in fixed})
        self.engine = Engine(self.config, self.lists)
        self._configured()
        return kept

    def _configured(self) -> None:
        """Backend hook: derive cached values from ``self.config``."""

    # -- backend interface ------------------------------------------------------------------

    async def _reserve_batch(
        self,
        items: list[tuple[ContactRequest, list[Any], int]],
        now: float,
        expires: float,
    ) -> list[Violation | Duplicate | None]:
        """Check ``items`` and reserve the ones allowed (mode RESERVE) until ``expires``."""
        raise NotImplementedError

    async def _transition(
        self, contact_id: str, event: str, reason: str, now: float, *, only_reserved: bool = False
    ) -> bool:
        """Commit (``event == "committed"``) or end a record; ``only_reserved``: end it only if
        it was never committed. True if the state changed."""
        raise NotImplementedError

    def open_reservations(self) -> int | None:
        return None

    # -- the contract -----------------------------------------------------------------------

    async def decide(self, request: ContactRequest) -> ContactDecision:
        """Check lists, contact hours, caps and priority; on ALLOWED, reserve one contact."""
        return (await self._decide([request]))[0]

    async def decide_many(self, requests: Sequence[ContactRequest]) -> list[ContactDecision]:
        """Decide a batch in order (as if ``decide`` were called for each), in one commit."""
        return await self._decide(list(requests))

    async def decide_and_queue(
        self, requests: Sequence[ContactRequest], outbox: Any
    ) -> list[ContactDecision]:
        """``decide_many``, then the ALLOWED decisions queued in ``outbox`` and the DEFERRED ones
        held there, in the same transaction as the decisions' ledger rows when the outbox
        shares the ledger's writer (no "decided but not queued" gap; a failed write leaves
        neither). Returns the decisions once everything is durable."""
        finish = await self.stage_and_queue(requests, outbox)
        return await finish()

    async def stage_and_queue(
        self, requests: Sequence[ContactRequest], outbox: Any
    ) -> Callable[[], Awaitable[list[ContactDecision]]]:
        """:meth:`decide_and_queue` in two steps. This one decides and, when the outbox shares
        the ledger's writer, queues the ledger rows and the outbox entries in the writer's
        pending batch (nothing awaited after the decisions: the next call's decisions see
        these reservations). It returns ``finish``: await it for the decisions once durable
        (it raises what failed the write, after withdrawing the reservations).

        A caller may decide the next batch before finishing this one (``gateway.pipeline``'s
        read-ahead). Without a shared writer everything is done here and ``finish`` only
        returns the decisions.
        """
        requests = list(requests)
        ledger = self.ledger
        writer = getattr(ledger, "writer", None)
        stage = getattr(outbox, "stage_decisions", None)
        if (
            ledger is None
            or writer is None
            or stage is None
            or getattr(outbox, "writer", None) is not writer
        ):
            decisions = await self._decide(requests)
            allowed = [d for d in decisions if d.outcome is _ALLOWED]
            if allowed:
                await outbox.enqueue_many(allowed)
            for d in decisions:
                if d.outcome is Outcome.DEFERRED and d.not_before is not None:
                    await outbox.defer(d.request, d.not_before)
            return Decided(decisions)
        decisions = await self._evaluate(requests, reserve=True, queued=True)
        # No checkpoint from here to the return: the rows and the entries share one batch.
        batch = ledger.extend(self._count(decisions))
        staged = stage(decisions)
        durable = ledger.writer.durable  # (the writer checked above)

        async def finish() -> list[ContactDecision]:
            try:
                await durable(batch)
            except Exception:
                self._forget(_reserved_ids(decisions))
                raise
            await outbox.staged_done(staged)
            self._observe(decisions)
            return decisions

        return finish

    async def check(self, request: ContactRequest) -> ContactDecision:
        """What ``decide`` would answer now: no reservation, no ledger record (preview)."""
        return (await self._evaluate([request], reserve=False))[0]

    async def commit(self, contact_id: str) -> None:
        """The channel handed the contact to the network: the reservation becomes a contact."""
        await self._transition(contact_id, "committed", "", self.clock())

    async def release(self, contact_id: str, reason: str) -> bool:
        """Refund a reservation (or a committed contact). True only the first time."""
        return await self._transition(contact_id, release_event(reason), reason, self.clock())

    async def reconcile(self, delivery: Delivery) -> None:
        """Apply a final delivery state.

        A state listed in ``refund_on`` refunds the contact. Delivered commits it (if the
        submit was never reported), and so does unknown (it may have been sent). A rejection of a message never submitted is a release in
        any case (the network refused it: no contact). Other states leave it as it is: a
        committed contact keeps counting, an uncommitted reservation expires with its timeout.
        """
        step = self._delivery_step(delivery)
        if step is not None:
            event, reason, only_reserved = step
            await self._transition(
                delivery.contact_id, event, reason, self.clock(), only_reserved=only_reserved
            )

    def _delivery_step(self, delivery: Delivery) -> tuple[str, str, bool] | None:
        """The reservation transition a delivery state asks for: (event, reason, only_reserved)."""
        state = delivery.state.value
        if state == "submitted":
            return "committed", "", False
        if not delivery.state.final:
            return None
        if state in self.config.refund_on:
            reason = "rejected" if state == "rejected" else f"refund.{state}"
            return release_event(reason), reason, False
        if state in ("rejected", "expired", "undeliverable"):
            # never submitted (refused before the network, or expired in the queue): no
            # contact; after a submit the contact is committed and keeps counting
            return "released", state, True
        if state in ("delivered", "unknown"):
            # unknown: the submit answer was lost (a crash mid-send): it may well have reached
            # the subscriber, so it counts rather than being refunded by the timeout
            return "committed", f"final.{state}", False
        return None

    def stage_delivery(self, delivery: Delivery) -> bool:
        """Apply a reported state (a submit commits, a final state reconciles) in memory and
        queue its ledger row in the writer's pending batch, without awaiting: the caller
        awaits that batch, which carries the outbox's update too. False when this backend
        cannot (its state is remote): then call ``commit`` / ``reconcile``."""
        return False

    # -- the flow ---------------------------------------------------------------------------

    async def _decide(self, requests: list[ContactRequest]) -> list[ContactDecision]:
        decisions = await self._evaluate(requests, reserve=True)
        try:
            await self._record(decisions)
        except Exception:
            # Not durable (disk full, I/O error): nothing was decided, so nothing stays held.
            self._forget(_reserved_ids(decisions))
            raise
        return decisions

    def _forget(self, contact_ids: list[str]) -> None:
        """Backend hook: drop reservations made in memory whose decision never became
        durable (the write failed). Synchronous, like the reservation itself."""

    async def _evaluate(
        self,
        requests: list[ContactRequest],
        *,
        reserve: bool,
        queued: bool = False,
        rounds: int = 0,
    ) -> list[ContactDecision]:
        """Decide ``requests``; with ``reserve``, reserve the allowed ones. ``queued``: they
        are queued in the outbox in the same transaction, and a backend with ``held_expiry``
        reserves them held (never expiring by ``reservation_timeout``)."""
        engine = self.engine
        now = self.clock()
        held = self.held_expiry if queued else None
        expires = held if held is not None else now + self.config.reservation_timeout
        decisions: list[ContactDecision | None] = [None] * len(requests)
        pending: list[tuple[ContactRequest, list[Any], int]] = []
        where: list[int] = []
        for i, request in enumerate(requests):
            early = engine.precheck(request, now)
            if early is not None:
                decisions[i] = early
                continue
            counted = engine.counted(request)
            mode = RESERVE if (reserve and counted and not request.control_group) else DRY
            pending.append((request, engine.plan(request, now) if counted else [], mode))
            where.append(i)
        if pending:
            results = await self._reserve_batch(pending, now, expires)
            for i, (request, _checks, mode), result in zip(where, pending, results, strict=True):
                if result is None:
                    if request.control_group:
                        decisions[i] = ContactDecision(
                            request=request,
                            outcome=_CONTROL,
                            decided_at=now,
                            reason="control_group",
                        )
                    else:
                        decisions[i] = ContactDecision(
                            request=request,
                            outcome=_ALLOWED,
                            decided_at=now,
                            reservation_expires_at=expires if mode == RESERVE else None,
                        )
                elif isinstance(result, Duplicate):
                    decisions[i] = ContactDecision(
                        request=request,
                        outcome=_ALLOWED,
                        decided_at=now,
                        reason="duplicate",
                        reservation_expires_at=result.expires_at,
                    )
                else:
                    if (
                        result.victims
                        and reserve
                        and self.preemptor is not None
                        and rounds < MAX_PREEMPT_ROUNDS
                    ):
                        if await self._preempt(result.victims):
                            decisions[i] = (
                                await self._evaluate(
                                    [request], reserve=True, queued=queued, rounds=rounds + 1
                                )
                            )[0]
                            continue
                    decisions[i] = self._suppressed(request, result, now)
        return decisions  # type: ignore[return-value]

    def _suppressed(
        self, request: ContactRequest, violation: Violation, now: float
    ) -> ContactDecision:
        check = violation.check
        return ContactDecision(
            request=request,
            outcome=_SUPPRESSED,
            decided_at=now,
            reason=check.reason,
            rule=check.rule,
            detail=violation.detail(self.engine.clock),
        )

    async def _preempt(self, victims: tuple[str, ...]) -> bool:
        """Ask the outbox to withdraw a lower-priority reservation; release the first it withdraws."""
        log = structlog.get_logger()
        for contact_id in victims:
            try:
                withdrawn = await self.preemptor(contact_id)  # type: ignore[misc]
            except Exception as exc:
                log.warning("contact.preempt_failed", contact_id=contact_id, error=str(exc))
                continue
            if withdrawn and await self.release(contact_id, "preempted"):
                self.preemptions += 1
                log.info("contact.preempted", contact_id=contact_id)
                return True
        return False

    def _count(self, decisions: list[ContactDecision]) -> list[tuple[Any, ...]]:
        """Count the outcomes; the ledger rows of ``decisions``."""
        outcomes = self.outcomes
        rows = []
        for d in decisions:
            outcomes[d.outcome] += 1  # a StrEnum hashes as its value
            rows.append(decision_row(d))
        return rows

    async def _record(self, decisions: list[ContactDecision]) -> None:
        rows = self._count(decisions)
        if self.ledger is not None and rows:
            await self.ledger.durable(self.ledger.extend(rows))
        self._observe(decisions)

    def _observe(self, decisions: list[ContactDecision]) -> None:
        if self.on_recorded_many is not None:  # the daemon's observers (it logs their errors)
            self.on_recorded_many(decisions)
        if self.on_recorded is not None:
            for d in decisions:
                try:
                    self.on_recorded(d)
                except Exception as exc:  # an observer's bug must not undo a durable decision
                    structlog.get_logger().error(
                        "contact.observer_failed", contact_id=d.request.contact_id, error=repr(exc)
                    )

    # -- housekeeping ---------------------------------------------------------------------------

    async def prune_ledger(self) -> int:
        """Apply ``ledger_retention`` (at most once an hour)."""
        retention = self.config.ledger_retention
        now = self.clock()
        if not retention or self.ledger is None or now - self._last_ledger_prune < 3600:
            return 0
        self._last_ledger_prune = now
        return await self.ledger.prune(now - retention)

    async def serve_housekeeping(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Every ``sweep_interval``: purge expired list entries, apply ledger retention."""
        task_status.started()
        log = structlog.get_logger()
        while True:
            await trio.sleep(self.config.sweep_interval)
            try:
                n = await self.lists.purge_expired()
                n += await self.prune_ledger()
            except Exception as exc:
                log.error("contact.housekeeping_failed", error=str(exc))
            else:
                if n:
                    log.info("contact.housekeeping", removed=n)

    # -- status -----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        mark_time, mark_count = self._rate_mark
        total = sum(self.outcomes.values())
        now = time.monotonic()
        rate = (total - mark_count) / (now - mark_time) if now > mark_time else 0.0
        self._rate_mark = (now, total)
        out: dict[str, Any] = {
            "backend": self.backend_name,
            "decisions": dict(self.outcomes),
            "decisions_per_s": round(rate, 1),
            "preemptions": self.preemptions,
            "lists": self.lists.sizes(),
        }
        open_count = self.open_reservations()
        if open_count is not None:
            out["reservations_open"] = open_count
        if self.ledger is not None:
            out["ledger_rows_written"] = self.ledger.rows_written
            out["ledger_commits"] = self.ledger.commits
            out["ledger_index_backlog"] = self.ledger.index_backlog()
            writer = self.ledger.writer
            remote = getattr(writer, "remote", None)
            out["state_writer"] = "thread" if remote is None else "process"
            if remote is not None:
                out["state_writer_pid"] = remote.proc.pid if remote.proc is not None else None
                out["state_writer_local_batches"] = writer.local_batches
            if writer.checkpointer is not None:
                out["state_checkpoints"] = writer.checkpoints
                out["state_checkpoint_failures"] = writer.checkpoint_failures
        return out


@asynccontextmanager
async def open_local_database(
    config: ContactConfig, path: Path | str
) -> AsyncIterator[StateWriter]:
    """The node's state database (ledger and list tables) and its one writer, running.

    Both backends keep their ledger here; the outbox shares this writer (see
    ``gateway.outbox.plugin``), so a decision and its outbox entry commit together.
    """
    async with open_state_writer(
        path,
        synchronous=config.synchronous or "full",
        interval=config.group_commit_interval,
        stall_limit=config.durable_wait_limit,
        process=config.state_writer == "process",
    ) as writer:
        await writer.setup(lambda c: (Ledger.create_schema(c), ListStore.create_schema(c)))
        yield writer
