"""The campaigns store: every campaign (from files or the dispatch webservice), its lifecycle
state and audit trail, in the embedded SQLite database, with the compiled rule index of the
running realtime campaigns kept in memory for the pipeline.

Definitions are stored as the JSON of the table they were parsed from, so a campaign that
arrived by webservice is re-parsed at start exactly like a file. A file reload updates the
definition but never the lifecycle state (approval is not undone by editing a file).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import structlog
import trio

from gateway.campaigns.loader import load_campaign_dir, parse_campaign
from gateway.campaigns.model import CampaignDef, LifecycleError, next_state
from gateway.errors import ConfigError, ConfigProblem
from gateway.model import CampaignState
from gateway.rules.areas import Area
from gateway.rules.compiler import RuleIndex
from gateway.store import SqliteWorker

SCHEMA = """
CREATE TABLE IF NOT EXISTS campaigns (
    id TEXT PRIMARY KEY,
    origin TEXT NOT NULL,
    definition TEXT NOT NULL,
    state TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS campaign_audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    campaign_id TEXT NOT NULL,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    from_state TEXT,
    to_state TEXT,
    note TEXT
);
CREATE INDEX IF NOT EXISTS campaign_audit_by_campaign ON campaign_audit (campaign_id, seq);
CREATE TABLE IF NOT EXISTS campaign_counts (
    campaign_id TEXT NOT NULL,
    name TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, name)
);
"""


def _init(conn: Any) -> list[tuple[str, str, str, str]]:
    conn.executescript(SCHEMA)
    return conn.execute("SELECT id, origin, definition, state FROM campaigns").fetchall()


class CampaignStore:
    """What ``gateway.campaigns`` is. Open with :meth:`open`; all writes go through the worker."""

    def __init__(
        self, worker: SqliteWorker, *, plugin_types: Mapping[str, Any] | None = None
    ) -> None:
        self._worker = worker
        self.plugin_types = dict(plugin_types or {})
        self.areas: dict[str, Area] = {}
        self.campaigns: dict[str, CampaignDef] = {}
        self.rule_index = RuleIndex()
        self.problems: list[ConfigProblem] = []
        self.listeners: list[Callable[[RuleIndex], None]] = []
        #: in-memory counters per campaign (matched, control...), flushed by :meth:`flush_counts`
        self.counts: dict[str, dict[str, int]] = {}
        self._unparsed_states: dict[str, CampaignState] = {}
        self._flushed: dict[tuple[str, str], int] = {}
        #: set by the batch component: campaign id -> its execution progress (or None)
        #: set by the two-way component: campaign id -> reply address of its offers
        self.reply_addresses: dict[str, str] = {}
        self.progress_source: Callable[[str], Awaitable[dict[str, Any] | None]] | None = None
        self._files = trio.CapacityLimiter(1)  # reading campaign files and target lists
        # One lifecycle transition at a time: each is checked against the state the one
        # before it left. Without it a batch's "finish" and an operator's "cancel" both passed
        # the check while the other was being written, and the later write won ("finished"
        # after a 200 "cancelled"; the audit showed both leaving "running").
        self._transitions = trio.Lock()
        #: Approval gates (``gateway.approval.gate.ApprovalGate``): ``await gate.admit(old, new)``
        #: may hold a new or changed definition; ``await gate.check_transition(cdef, action,
        #: target, actor=actor)`` raises LifecycleError to refuse a transition.
        self.gates: list[Any] = []

    @classmethod
    async def open(
        cls,
        worker: SqliteWorker,
        *,
        areas: Mapping[str, Area],
        plugin_types: Mapping[str, Any] | None = None,
    ) -> CampaignStore:
        """Create the tables and load every stored campaign."""
        store = cls(worker, plugin_types=plugin_types)
        store.areas = dict(areas)
        rows = await worker.run(_init)
        counts = await worker.run(
            lambda c: c.execute("SELECT campaign_id, name, value FROM campaign_counts").fetchall()
        )
        for cid, name, value in counts:
            store.counts.setdefault(cid, {})[name] = value
            store._flushed[(cid, name)] = value
        log = structlog.get_logger()
        for cid, origin, definition, state in rows:
            try:
                cdef = parse_campaign(
                    json.loads(definition),
                    origin=origin,
                    areas=store.areas,
                    plugin_types=store.plugin_types,
                )
            except (ConfigError, ValueError) as exc:
                log.error("campaigns.stored_invalid", campaign=cid, reason=str(exc))
                store._unparsed_states[cid] = CampaignState(state)  # kept if its file comes back
                continue
            store.campaigns[cid] = _with_state(cdef, CampaignState(state))
        store._recompile()
        return store

    # -- reading ----------------------------------------------------------------------------

    def get(self, campaign_id: str) -> CampaignDef | None:
        return self.campaigns.get(campaign_id)

    def list(self) -> list[CampaignDef]:
        return sorted(self.campaigns.values(), key=lambda c: c.id)

    async def audit(self, campaign_id: str) -> list[dict[str, Any]]:
        rows = await self._worker.run(
            lambda c: c.execute(
                "SELECT at, actor, action, from_state, to_state, note FROM campaign_audit WHERE campaign_id=? ORDER BY seq",
                (campaign_id,),
            ).fetchall()
        )
        return [
            dict(zip(("at", "actor", "action", "from", "to", "note"), row, strict=True))
            for row in rows
        ]

    # -- writing ----------------------------------------------------------------------------

    async def put(self, cdef: CampaignDef, *, actor: str, recompile: bool = True) -> str:
        """Insert or update one definition. Returns "created", "updated" or "unchanged"."""
        now = time.time()
        old = self.campaigns.get(cdef.id)
        definition = json.dumps(cdef.raw, sort_keys=True, ensure_ascii=False)
        if (
            old is not None
            and json.dumps(old.raw, sort_keys=True, ensure_ascii=False) == definition
        ):
            return "unchanged"
        for gate in self.gates:
            if not await gate.admit(old, cdef):
                return "held"  # waits for its approval; the gate stores it once approved
        if old is not None:
            state = old.campaign.state
        else:  # new, or stored but no longer parseable (e.g. an area was removed): keep its state
            state = self._unparsed_states.pop(cdef.id, cdef.initial_state)
        action = "updated" if old is not None else "created"

        def write(conn: Any) -> None:
            conn.execute(
                "INSERT INTO campaigns (id, origin, definition, state, updated_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET origin=excluded.origin, definition=excluded.definition, updated_at=excluded.updated_at",
                (cdef.id, cdef.origin, definition, state.value, now),
            )
            conn.execute(
                "INSERT INTO campaign_audit (campaign_id, at, actor, action, from_state, to_state, note) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    cdef.id,
                    now,
                    actor,
                    action,
                    old.campaign.state.value if old else None,
                    state.value,
                    cdef.origin,
                ),
            )

        await self._worker.transaction(write)
        self.campaigns[cdef.id] = _with_state(cdef, state)
        if recompile:
            self._recompile()
        return action

    async def transition(
        self, campaign_id: str, action: str, *, actor: str, note: str = "", recompile: bool = True
    ) -> CampaignDef:
        """Apply a lifecycle action (approve, pause...); LifecycleError if not allowed now."""
        async with self._transitions:
            return await self._transition(campaign_id, action, actor, note, recompile)

    async def _transition(
        self, campaign_id: str, action: str, actor: str, note: str, recompile: bool
    ) -> CampaignDef:
        cdef = self.campaigns.get(campaign_id)
        if cdef is None:
            raise LifecycleError(f"no campaign {campaign_id!r}")
        current = cdef.campaign.state
        target = next_state(action, current)
        for gate in self.gates:
            await gate.check_transition(cdef, action, target, actor=actor)
        now = time.time()

        def write(conn: Any) -> None:
            conn.execute(
                "UPDATE campaigns SET state=?, updated_at=? WHERE id=?",
                (target.value, now, campaign_id),
            )
            conn.execute(
                "INSERT INTO campaign_audit (campaign_id, at, actor, action, from_state, to_state, note) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (campaign_id, now, actor, action, current.value, target.value, note),
            )

        await self._worker.transaction(write)
        updated = _with_state(cdef, target)
        self.campaigns[campaign_id] = updated
        structlog.get_logger().info(
            "campaigns.transition",
            campaign=campaign_id,
            action=action,
            actor=actor,
            state=target.value,
        )
        if recompile:
            self._recompile()
        return updated

    async def sync_dir(
        self, directory: Path | str, *, areas: Mapping[str, Area] | None = None
    ) -> dict[str, Any]:
        """Load every campaign file and store new or changed definitions (SIGHUP reload)."""
        if areas is not None:
            self.areas = dict(areas)
        # blocking reads (a target list may hold hundreds of thousands of numbers): off the loop
        defs, problems = await trio.to_thread.run_sync(
            partial(
                load_campaign_dir, Path(directory), areas=self.areas, plugin_types=self.plugin_types
            ),
            limiter=self._files,
        )
        self.problems = problems
        log = structlog.get_logger()
        for problem in problems:
            log.error("campaigns.file_invalid", problem=str(problem))
        result = {
            "created": 0,
            "updated": 0,
            "unchanged": 0,
            "held": 0,
            "invalid": len({p.file for p in problems}),
        }
        for cdef in defs:
            result[await self.put(cdef, actor=f"file:{cdef.origin}", recompile=False)] += 1
        result["activated"] = await self.activate_due(time.time(), recompile=False)
        self._recompile()
        log.info("campaigns.loaded", directory=str(directory), **result)
        return result

    async def activate_due(self, now: float, *, recompile: bool = True) -> int:
        """Start approved campaigns whose schedule began; finish those whose schedule ended."""
        changed = 0
        for cdef in list(self.campaigns.values()):
            state, sched = cdef.campaign.state, cdef.schedule
            if state is CampaignState.APPROVED and (sched.start is None or sched.start <= now):
                if sched.end is not None and sched.end < now:
                    await self.transition(
                        cdef.id, "finish", actor="scheduler", note="schedule ended", recompile=False
                    )
                else:
                    try:
                        await self.transition(
                            cdef.id,
                            "start",
                            actor="scheduler",
                            note="schedule started",
                            recompile=False,
                        )
                    except LifecycleError as exc:  # refused by an approval gate
                        structlog.get_logger().warning(
                            "campaigns.start_refused", campaign=cdef.id, reason=str(exc)
                        )
                        continue
                changed += 1
            elif (
                state in (CampaignState.RUNNING, CampaignState.PAUSED)
                and sched.end is not None
                and sched.end < now
            ):
                await self.transition(
                    cdef.id, "finish", actor="scheduler", note="schedule ended", recompile=False
                )
                changed += 1
        if changed and recompile:
            self._recompile()
        return changed

    # -- counts ------------------------------------------------------------------------------

    def count(self, campaign_id: str, name: str, amount: int = 1) -> None:
        per = self.counts.get(campaign_id)
        if per is None:
            per = self.counts[campaign_id] = {}
        per[name] = per.get(name, 0) + amount

    async def flush_counts(self) -> None:
        """Persist the counters that changed since the last flush."""
        rows = [
            (cid, name, value)
            for cid, per in self.counts.items()
            for name, value in per.items()
            if self._flushed.get((cid, name)) != value
        ]
        if not rows:
            return
        await self._worker.transaction(
            lambda c: c.executemany(
                "INSERT INTO campaign_counts (campaign_id, name, value) VALUES (?, ?, ?) "
                "ON CONFLICT(campaign_id, name) DO UPDATE SET value=excluded.value",
                rows,
            )
        )
        for cid, name, value in rows:
            self._flushed[(cid, name)] = value

    # -- rules -------------------------------------------------------------------------------

    def running(self) -> Sequence[CampaignDef]:
        return [
            c
            for c in self.campaigns.values()
            if c.campaign.state is CampaignState.RUNNING and c.trigger is not None and c.realtime
        ]

    def _recompile(self) -> None:
        self.rule_index = RuleIndex((c.trigger, c) for c in self.running())
        for listener in self.listeners:
            listener(self.rule_index)


def _with_state(cdef: CampaignDef, state: CampaignState) -> CampaignDef:
    return attrs.evolve(cdef, campaign=attrs.evolve(cdef.campaign, state=state))
