"""Outbound dispatch to the CRM's contact pool: the target list as a file plus a call.

``POST {prefix}/crm/dispatch`` with ``{"campaign_id": ...}`` asks for it (202 with the
dispatch id; ``GET {prefix}/crm/dispatch?id=...`` follows it). The two halves are one unit,
kept in the ``boss_ws_crm_dispatch`` table so that a restart resumes where it stopped:

1. ``requested`` -> the list is written atomically into ``[plugins.boss_ws.crm] drop_dir``
   (``<dispatch id>.txt``, one E.164 number a line) -> ``file_written``;
2. the CRM's webservice is called (JSON: dispatch id, campaign, file name, count, sha256),
   ``attempts`` times with doubling backoff -> ``done``; if every try fails, the file is
   removed (the half-done dispatch withdrawn) -> ``withdrawn`` with the last error.

The call carries the dispatch id, so a call repeated after a crash is the same dispatch to
the CRM.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from typing import Any

import httpx
import structlog
import trio

from gateway.contracts import HttpRequest, HttpResponse
from plugins.boss_ws.service import BadRequest, BossWebservices, json_body, reply


async def request_dispatch(ws: BossWebservices, request: HttpRequest) -> HttpResponse:
    if ws.config.crm is None:
        return reply(404, {"error": "no [plugins.boss_ws.crm] configured"})
    document = json_body(request.body)
    cid = document.get("campaign_id")
    cdef = ws.gateway.campaigns.get(cid) if isinstance(cid, str) else None
    if cdef is None:
        raise BadRequest("campaign_id must name a known campaign")
    if await ws.members(cdef) is None:
        raise BadRequest(f"campaign {cid!r} has no target list")
    dispatch_id = "crm-" + uuid.uuid4().hex[:16]
    assert ws.store is not None
    await ws.store.insert(
        "boss_ws_crm_dispatch",
        {
            "id": dispatch_id,
            "campaign_id": cid,
            "file": f"{dispatch_id}.txt",
            "state": "requested",
            "updated_at": time.time(),
        },
    )
    ws.crm_wake.set()
    return reply(202, {"dispatch_id": dispatch_id, "state": "requested"})


async def dispatch_status(ws: BossWebservices, request: HttpRequest) -> HttpResponse:
    assert ws.store is not None
    rows = await ws.store.select(
        "SELECT * FROM boss_ws_crm_dispatch WHERE id=?", request.query.get("id", "")
    )
    if not rows:
        return reply(404, {"error": "no such dispatch"})
    return reply(200, rows[0])


async def serve_crm_dispatch(ws: BossWebservices) -> None:
    """The dispatcher loop (runs inside the webservices' service)."""
    crm = ws.config.crm
    if crm is None:
        await trio.sleep_forever()
        return
    assert ws.store is not None
    async with httpx.AsyncClient(timeout=crm.timeout) as http:
        while True:
            ws.crm_wake = trio.Event()
            rows = await ws.store.select(
                "SELECT * FROM boss_ws_crm_dispatch WHERE state IN ('requested', 'file_written')"
                " ORDER BY updated_at"
            )
            for row in rows:
                await _advance(ws, http, row)
            if not rows:
                await ws.crm_wake.wait()


async def _advance(ws: BossWebservices, http: httpx.AsyncClient, row: dict[str, Any]) -> None:
    crm = ws.config.crm
    assert crm is not None and ws.store is not None
    log = structlog.get_logger().bind(dispatch=row["id"], campaign=row["campaign_id"])
    path = crm.drop_dir / row["file"]
    if row["state"] == "requested":
        cdef = ws.gateway.campaigns.get(row["campaign_id"])
        members = sorted(await ws.members(cdef) or ()) if cdef is not None else []
        data = "".join(f"{m}\n" for m in members).encode()

        def write() -> None:
            crm.drop_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".part")
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)

        await trio.to_thread.run_sync(write)
        await ws.store.execute(
            "UPDATE boss_ws_crm_dispatch SET state='file_written', count=?, updated_at=?"
            " WHERE id=?",
            len(members),
            time.time(),
            row["id"],
        )
        row = {**row, "state": "file_written", "count": len(members)}
    data = await trio.to_thread.run_sync(path.read_bytes) if path.exists() else b""
    call = {
        "dispatch_id": row["id"],
        "campaign_id": row["campaign_id"],
        "file": row["file"],
        "count": row["count"],
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    delay, error = crm.backoff, "no attempt"
    for attempt in range(1, crm.attempts + 1):
        try:
            answer = await http.post(crm.url, json=call)
            if answer.status_code // 100 == 2 and str(answer.json().get("code")) == "0":
                await ws.store.execute(
                    "UPDATE boss_ws_crm_dispatch SET state='done', attempts=?, updated_at=?"
                    " WHERE id=?",
                    attempt,
                    time.time(),
                    row["id"],
                )
                ws.count("crm.done")
                log.info("boss_ws.crm_dispatched", count=row["count"])
                return
            error = f"HTTP {answer.status_code}: {answer.text[:200]}"
        except (httpx.HTTPError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        log.warning("boss_ws.crm_call_failed", attempt=attempt, reason=error)
        if attempt < crm.attempts:
            await trio.sleep(delay)
            delay *= 2
    await trio.to_thread.run_sync(lambda: path.unlink(missing_ok=True))
    await ws.store.execute(
        "UPDATE boss_ws_crm_dispatch SET state='withdrawn', attempts=?, last_error=?,"
        " updated_at=? WHERE id=?",
        crm.attempts,
        error,
        time.time(),
        row["id"],
    )
    ws.count("crm.withdrawn")
    log.error("boss_ws.crm_withdrawn", reason=error)
