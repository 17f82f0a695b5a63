"""The shared backend: counters and reservations in Redis, so several nodes see one subscriber.

Check-and-reserve runs in a Lua script per request (atomic in Redis), and a batch of
requests goes out as one pipeline of EVALSHA calls: one round trip per ``decide_many``.
Lists, contact hours and the cap plan are evaluated in Python by the shared
:class:`~gateway.contact.engine.Engine`; the ledger stays in the node's local SQLite file by
group commit (the decision is durable before ``decide`` returns).

Do-not-disturb lists are shared through Redis too (:mod:`.redis_lists`): decisions read
each node's in-memory mirror, which follows a change stream.

Redis unreachable: decisions fail closed (``decide`` raises
:class:`RedisUnavailable`; no reservation, so no contact goes out), counted and logged once
per outage (``contact.redis_unavailable`` ... ``contact.redis_recovered``). A commit or
refund that cannot reach Redis is journaled on the node (:mod:`.redis_journal`) and
replayed in order when Redis answers: by a background task, and before this node's next
decision, so that no reservation of this node is counted against a reservation whose commit
is still waiting. While entries wait, later transitions queue behind them (order kept).

The RESP client lives in the core (:mod:`gateway.resp`), not in ``adapters/``: Redis is the
core's own state store, not an outside peer, and the core imports no adapter.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import structlog
import trio

from gateway.contact.config import ContactConfig
from gateway.contact.control import (
    RESERVE,
    ContactControlBase,
    Duplicate,
    Preemptor,
    open_local_database,
)
from gateway.contact.engine import Violation
from gateway.contact.ledger import Ledger
from gateway.contact.lists import ListStore
from gateway.contact.redis_journal import Entry, RedisJournal
from gateway.contact.redis_lists import RedisListStore
from gateway.contact.redis_scripts import FS, RS, SCRIPTS
from gateway.errors import ContactControlError
from gateway.model import ContactRequest
from gateway.resp.client import RedisConnection
from gateway.resp.codec import ErrorReply, RemoteProtocolError

_NEG_INF = "-1e300"  # Lua's tonumber does not read "-inf"
#: Seconds one connect or pipeline may take before Redis counts as unavailable (a batch of
#: thousands of EVALSHA takes well under a second).
REDIS_TIMEOUT = 10.0
#: Seconds between two attempts to replay the journal while Redis is unreachable.
REPLAY_INTERVAL = 1.0
#: Journal entries applied per Redis pipeline during a replay.
REPLAY_CHUNK = 1000


#: Error replies of a Redis that is up but cannot serve yet: treated like one that is down.
_NOT_READY = frozenset({"LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN"})


class RedisUnavailable(ContactControlError):
    """Raised when Redis cannot be reached or does not answer in time: the decision is
    refused (fail closed); commits and refunds are journaled instead. Check that Redis runs
    and that ``[contact] redis`` points at it; the node replays its journal when it answers."""


def _num(x: float) -> str:
    return _NEG_INF if x == float("-inf") else repr(x)


class RedisContactControl(ContactControlBase):
    backend_name = "redis"
    # Reservations queued in the outbox with their decision stay live until the outbox reports
    # a final state (submit, rejection, the entry's own expiry, the unknown of a lost answer),
    # as in the SQLite backend: a message waiting longer than ``reservation_timeout`` (SMSC
    # down, a long queue, restarts) must still count. Far in the future rather than inf: the
    # scripts read the expiry with Lua's tonumber.
    held_expiry = 1e300

    def __init__(
        self,
        config: ContactConfig,
        lists: ListStore,
        ledger: Ledger | None,
        redis: RedisConnection | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(config, lists, ledger, **kw)
        self.redis = redis
        self.timeout = REDIS_TIMEOUT
        self.prefix = config.redis_prefix
        self._sha = {
            name: hashlib.sha1(text.encode()).hexdigest() for name, text in SCRIPTS.items()
        }
        horizon = config.horizon
        self._ttl = 0 if horizon == float("inf") else int(horizon) + 1
        self._local: dict[str, tuple[str, float]] = {}  # contact_id -> (msisdn, expires) made here
        self.round_trips = 0
        #: commits/refunds that could not reach Redis; set by open_redis_contact_control
        self.journal: RedisJournal | None = None
        self.replay_interval = REPLAY_INTERVAL
        self._replay_lock = trio.Lock()
        self.available = True
        self.decisions_refused = 0
        self._refused_in_outage = 0

    def _configured(self) -> None:
        horizon = self.config.horizon
        self._ttl = 0 if horizon == float("inf") else int(horizon) + 1

    def key(self, msisdn: str) -> str:
        return f"{self.prefix}:{{{msisdn}}}:c"

    def index_key(self, contact_id: str) -> str:
        return f"{self.prefix}:r:{contact_id}"

    async def load_scripts(self) -> None:
        for name, text in SCRIPTS.items():
            (sha,) = await self._send([("SCRIPT", "LOAD", text)])
            self._sha[name] = sha.decode() if isinstance(sha, bytes) else sha

    async def _send(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """One pipeline on the connection, reconnecting first if the last one broke.

        A lost or unreachable Redis raises RedisUnavailable (the decision fails; the
        caller retries later) and the next call connects again.
        """
        config = self.config
        conn = self.redis
        try:
            # A Redis that accepts but never answers (stopped, partitioned) must fail the
            # decision, not hold every caller forever behind the connection's lock.
            with trio.fail_after(self.timeout):
                if conn is None:
                    stream = await trio.open_tcp_stream(config.redis_host, config.redis_port)
                    conn = self.redis = RedisConnection(stream)
                    structlog.get_logger().info(
                        "contact.redis_connected", host=config.redis_host, port=config.redis_port
                    )
                replies = await conn.pipeline(commands)
        except (
            OSError,
            trio.BrokenResourceError,
            trio.ClosedResourceError,
            trio.TooSlowError,
            RemoteProtocolError,
        ) as exc:
            if conn is not None and self.redis is conn:  # not a newer one another task opened
                self.redis = None
                with trio.CancelScope(shield=True):
                    await conn.aclose()
            self._note_unavailable(exc)
            raise RedisUnavailable(
                f"redis at {config.redis_host}:{config.redis_port} unavailable: {exc}"
            ) from exc
        if not self.available:
            self._note_recovered()
        return replies

    def _note_unavailable(self, exc: BaseException) -> None:
        if self.available:
            self.available = False
            self._refused_in_outage = 0
            structlog.get_logger().error(
                "contact.redis_unavailable",
                host=self.config.redis_host,
                port=self.config.redis_port,
                error=str(exc),
                action="decisions refused; commits and refunds journaled on this node",
            )

    def _note_recovered(self) -> None:
        self.available = True
        structlog.get_logger().warning(
            "contact.redis_recovered",
            host=self.config.redis_host,
            port=self.config.redis_port,
            decisions_refused=self._refused_in_outage,
            journal_pending=self.journal.pending if self.journal is not None else 0,
        )

    async def _execute(self, *args: Any) -> Any:
        (reply,) = await self._send([args])
        if isinstance(reply, ErrorReply):
            raise ContactControlError(f"redis refused {args[0]}: {reply.message}")
        return reply

    async def _pipeline(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Run a pipeline; reload scripts once if Redis lost them (restart, SCRIPT FLUSH)."""
        self.round_trips += 1
        replies = await self._send(commands)
        if any(isinstance(r, ErrorReply) and r.kind == "NOSCRIPT" for r in replies):
            await self.load_scripts()
            replies = await self._send(commands)
        for r in replies:
            if isinstance(r, ErrorReply):
                if r.kind in _NOT_READY:  # still loading its data after a restart, failing over
                    self._note_unavailable(RuntimeError(r.message))
                    raise RedisUnavailable(f"redis not ready: {r.message}")
                raise ContactControlError(f"redis refused a contact-control script: {r.message}")
        return replies

    async def aclose(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
            self.redis = None

    # -- check and reserve ----------------------------------------------------------------------

    async def _reserve_batch(
        self,
        items: list[tuple[ContactRequest, list[Any], int]],
        now: float,
        expires: float,
    ) -> list[Violation | Duplicate | None]:
        sha = self._sha["reserve"]
        horizon = self.config.horizon
        prune = _num(now - horizon if horizon != float("inf") else float("-inf"))
        commands: list[tuple[Any, ...]] = []
        now_s = repr(now)
        ttl = str(self._ttl)
        index_ttl = self._ttl or 365 * 86400
        packed: dict[int, str] = {}  # the plan lists are shared within a batch: pack each once
        for request, checks, mode in items:
            record = FS.join(
                (
                    now_s,
                    request.channel,
                    request.campaign_id,
                    request.campaign_class,
                    str(request.priority),
                    repr(expires),
                    "0",
                )
            )
            plan = packed.get(id(checks))
            if plan is None:
                plan = packed[id(checks)] = "".join(
                    f"{c.kind}{FS}{c.value}{FS}{_num(c.since)}{FS}{c.limit}{RS}" for c in checks
                )
            commands.append(
                (
                    "EVALSHA",
                    sha,
                    "1",
                    self.key(request.msisdn),
                    now_s,
                    request.contact_id,
                    "1" if mode == RESERVE else "0",
                    record,
                    prune,
                    str(request.priority),
                    ttl,
                    plan,
                )
            )
            if mode == RESERVE:
                commands.append(
                    ("SET", self.index_key(request.contact_id), request.msisdn, "EX", index_ttl)
                )
        try:
            if self.journal is not None and self.journal.waiting:
                # earlier commits and refunds first: a reservation of this node is never
                # counted against one whose commit is still waiting in the journal
                await self.replay_journal()
            replies = await self._pipeline(commands)
        except RedisUnavailable:
            self.decisions_refused += len(items)
            self._refused_in_outage += len(items)
            raise
        results: list[Violation | Duplicate | None] = []
        pos = 0
        for request, checks, mode in items:
            reply = replies[pos]
            pos += 2 if mode == RESERVE else 1
            code = reply[0]
            if code == 1:
                if mode == RESERVE:
                    self._local[request.contact_id] = (request.msisdn, expires)
                results.append(None)
            elif code == 2:
                results.append(Duplicate(float(reply[1]) if reply[1] else None))
            else:
                victims = tuple(v.decode() for v in reply[3:])
                results.append(Violation(checks[reply[1]], reply[2], victims))
        return results

    async def _transition(
        self, contact_id: str, event: str, reason: str, now: float, *, only_reserved: bool = False
    ) -> bool:
        local = self._local.pop(contact_id, None)
        entry: Entry = (now, contact_id, local[0] if local else None, event, reason, only_reserved)
        journal = self.journal
        if journal is None or not journal.waiting:  # nothing waiting that this must follow
            try:
                (changed,) = await self._apply([entry])
                return changed
            except RedisUnavailable:
                if journal is None:
                    raise
        # no line per entry (thousands a second in an outage): contact.redis_unavailable
        # said it once, and status counts them (redis_journal_pending)
        await journal.append([entry])
        return False  # not applied yet: the replay records it in the ledger

    async def _apply(self, entries: list[Entry]) -> list[bool]:
        """Apply transitions to Redis in order (one pipeline), then ledger the ones that changed.

        Idempotent: an entry applied before (its answer lost, or replayed twice) changes
        nothing and writes no ledger row. Raises RedisUnavailable if Redis cannot be reached.
        """
        unknown = [i for i, e in enumerate(entries) if e[2] is None]
        msisdns = [e[2] for e in entries]
        if unknown:
            found = await self._pipeline([("GET", self.index_key(entries[i][1])) for i in unknown])
            for i, value in zip(unknown, found, strict=True):
                msisdns[i] = value.decode() if value else None
        commands = []
        for (at, contact_id, _m, event, _reason, only_reserved), msisdn in zip(
            entries, msisdns, strict=True
        ):
            if msisdn is None:
                continue
            script = "commit" if event == "committed" else "release"
            commands.append(
                (
                    "EVALSHA",
                    self._sha[script],
                    1,
                    self.key(msisdn),
                    contact_id,
                    repr(at),
                    "1" if only_reserved else "0",
                )
            )
        replies = iter(await self._pipeline(commands) if commands else [])
        changed: list[bool] = []
        rows = []
        log = structlog.get_logger()
        for (at, contact_id, _m, event, reason, _only), msisdn in zip(
            entries, msisdns, strict=True
        ):
            if msisdn is None:
                log.warning("contact.unknown_reservation", contact_id=contact_id, transition=event)
                changed.append(False)
                continue
            reply = next(replies)
            changed.append(reply[0] == 1)
            if reply[0] != 1:
                continue
            _at, channel, campaign, cls, priority, _exp, _st = reply[1].decode().split(FS)
            rows.append(
                (
                    at,
                    event,
                    contact_id,
                    msisdn,
                    campaign,
                    channel,
                    cls,
                    int(priority),
                    reason or None,
                    None,
                    None,
                    None,
                    None,
                )
            )
        if self.ledger is not None and rows:
            await self.ledger.durable(self.ledger.extend(rows))
        return changed

    # -- the journal of transitions Redis missed ------------------------------------------------

    async def replay_journal(self) -> int:
        """Apply the journaled transitions in order until none waits; returns how many.

        Raises RedisUnavailable (the rest stays journaled) if Redis is still unreachable.
        """
        journal = self.journal
        if journal is None:
            return 0
        total = 0
        async with self._replay_lock:
            while journal.waiting:
                if not journal.pending:  # entries still being written: they come first too
                    await journal.wait_written()
                    continue
                batch = await journal.read(REPLAY_CHUNK)
                if not batch:  # the count was off: the table is the truth
                    journal.pending = 0
                    break
                await self._apply([entry for _seq, entry in batch])
                # the ledger rows are durable: a crash before this line replays the batch,
                # which changes nothing a second time
                await journal.remove(batch[-1][0], len(batch))
                total += len(batch)
        if total:
            structlog.get_logger().warning(
                "contact.journal_replayed", entries=total, journal_pending=journal.pending
            )
        return total

    async def serve_journal(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Replay the journal as soon as Redis answers (every ``replay_interval`` until then)."""
        task_status.started()
        while True:
            if self.journal is not None and self.journal.pending:
                try:
                    await self.replay_journal()
                except RedisUnavailable:
                    pass  # logged once per outage by _send; tried again next round
                except Exception as exc:  # a script refusal, a ledger write: retried next round
                    structlog.get_logger().error("contact.journal_replay_failed", error=str(exc))
            await trio.sleep(self.replay_interval)

    # -- status ---------------------------------------------------------------------------------

    def open_reservations(self) -> int:
        """Reservations made by this node, not yet committed or released, not expired."""
        now = self.clock()
        dead = [c for c, (_m, exp) in self._local.items() if exp <= now]
        for c in dead:
            del self._local[c]
        return len(self._local)

    async def current_contacts(self, msisdn: str) -> list[dict[str, Any]]:
        now = self.clock()
        raw = await self._execute("HGETALL", self.key(msisdn))
        out = []
        for field, value in zip(raw[::2], raw[1::2], strict=True):
            at, channel, campaign, cls, priority, exp, state = value.decode().split(FS)
            if state == "1" or (state == "0" and float(exp) > now):
                out.append(
                    {
                        "contact_id": field.decode(),
                        "at": float(at),
                        "channel": channel,
                        "campaign_id": campaign,
                        "campaign_class": cls,
                        "priority": int(priority),
                        "state": "committed" if state == "1" else "reserved",
                        "expires_at": float(exp),
                    }
                )
        out.sort(key=lambda c: c["at"])
        return out

    def status(self) -> dict[str, Any]:
        out = super().status()
        out["redis_round_trips"] = self.round_trips
        out["redis_available"] = self.available
        out["redis_decisions_refused"] = self.decisions_refused
        journal = self.journal
        out["redis_journal_pending"] = journal.pending if journal is not None else 0
        out["redis_journaled"] = journal.journaled if journal is not None else 0
        out["redis_journal_replayed"] = journal.replayed if journal is not None else 0
        return out


@asynccontextmanager
async def open_redis_contact_control(
    config: ContactConfig,
    path: Path | str,
    *,
    clock: Any = None,
    preemptor: Preemptor | None = None,
    on_recorded: Any = None,
) -> AsyncIterator[RedisContactControl]:
    """Connect to Redis, load the scripts, open the local ledger and lists, run the group commit."""
    clock = clock or time.time
    async with open_local_database(config, path) as worker:
        lists = RedisListStore(clock=clock)
        ledger = Ledger(worker, interval=config.group_commit_interval)
        control = RedisContactControl(
            config, lists, ledger, clock=clock, preemptor=preemptor, on_recorded=on_recorded
        )
        lists.control = control
        control.journal = RedisJournal(worker)
        await control.journal.open()
        try:
            await control.load_scripts()  # connects; unreachable -> ContactControlError
            await lists.load_all()
            async with trio.open_nursery() as nursery:
                await nursery.start(partial(lists.serve_sync, interval=config.list_sync_interval))
                await nursery.start(ledger.run)
                # what an earlier run journaled goes to Redis before the first decision
                await control.replay_journal()
                await nursery.start(control.serve_journal)
                await nursery.start(ledger.serve_indexer)
                await nursery.start(control.serve_housekeeping)
                try:
                    yield control
                finally:
                    with trio.CancelScope(shield=True), trio.move_on_after(10):
                        await ledger.flush()
                    nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await control.aclose()
