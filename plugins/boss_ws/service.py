"""The webservices' state and their one background task (the CRM dispatcher).

:class:`BossWebservices` is a :class:`~gateway.contracts.Service`: ``run`` opens the store,
starts the CRM dispatcher (:mod:`.crm`) and serves until cancelled. The HTTP handlers
(:mod:`.dispatch`, :mod:`.touchpoint`) use it once it is running; before that they answer 503.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import trio

from gateway.campaigns.targets import read_targets
from gateway.contracts import HttpResponse
from gateway.store import SqliteWorker, open_sqlite
from plugins.boss_ws.config import BossWsConfig
from plugins.boss_ws.fetch import LocalFileFetcher, TargetFetcher
from plugins.boss_ws.store import WsStore

DB_NAME = "boss_ws.db"


class BadRequest(Exception):
    """A webservice request we refuse (400), with the reason given back to the caller."""


def reply(status: int, document: Any) -> HttpResponse:
    return HttpResponse(
        status=status,
        headers={"content-type": "application/json; charset=utf-8"},
        body=json.dumps(document, ensure_ascii=False, sort_keys=True).encode(),
    )


def json_body(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise BadRequest("the body must be a JSON object")
    return document


@attrs.define(eq=False)
class BossWebservices:
    gateway: Any
    config: BossWsConfig
    name: str = "boss_ws"
    store: WsStore | None = None
    fetchers: dict[str, TargetFetcher] = attrs.field(factory=dict)
    counters: dict[str, int] = attrs.field(factory=dict)
    crm_wake: trio.Event = attrs.field(factory=trio.Event)
    ready: trio.Event = attrs.field(factory=trio.Event)
    #: one campaign parsed at a time (reading a large target list is CPU and I/O)
    parse_limiter: trio.CapacityLimiter = attrs.field(factory=lambda: trio.CapacityLimiter(1))
    #: batch target lists read for the touchpoint and CRM dispatch, by (path, mtime_ns)
    _members: dict[str, tuple[int, frozenset[int]]] = attrs.field(factory=dict)

    async def members(self, cdef: Any) -> frozenset[int] | None:
        """The campaign's target list as number keys, or None when it has none. A realtime
        campaign keeps its members; a batch campaign's list is read from its file (in a worker
        thread, once per version of the file)."""
        if cdef.target_members is not None:
            return frozenset(cdef.target_members)
        if not cdef.target_list:
            return None
        path = Path(cdef.target_list)
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            return None
        cached = self._members.get(str(path))
        if cached is not None and cached[0] == mtime:
            return cached[1]
        keys = await trio.to_thread.run_sync(read_targets, path, limiter=self.parse_limiter)
        found = frozenset(keys)
        self._members[str(path)] = (mtime, found)
        return found

    def __attrs_post_init__(self) -> None:
        self.reconfigure(self.config)

    def reconfigure(self, config: BossWsConfig) -> None:
        """Take a reloaded section (its restart keys keep their running values)."""
        self.config = config
        local = LocalFileFetcher(config.fetch_roots)
        self.fetchers["file"] = local
        self.fetchers[""] = local

    def count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    @property
    def directory(self) -> Any:
        return self.gateway.state_dir / "boss_ws"

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        from plugins.boss_ws.crm import serve_crm_dispatch

        (self.directory / "targets").mkdir(parents=True, exist_ok=True)
        worker = SqliteWorker(open_sqlite(self.gateway.state_dir / DB_NAME))
        self.store = WsStore(worker)
        try:
            await self.store.create()
            self.ready.set()
            task_status.started()
            await serve_crm_dispatch(self)
        finally:
            self.store = None
            with trio.CancelScope(shield=True):
                await worker.aclose()

    def statistics(self) -> dict[str, Any]:
        return dict(self.counters)
