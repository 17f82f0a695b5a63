"""Inbound campaign dispatch ("派单") and marketing work orders ("营销工单受理").

``POST {prefix}/campaigns``::

    {"work_order": "WO-2026-0001",
     "campaign": {"id": "spring", "name": "...", "kind": "batch", "channels": ["sms"],
                  "content": {"sms": {"text": "..."}}, ...},      # a campaign file's table
     "targets": ["8613800000001", ...]                           # small lists inline, or
     "targets_file": {"url": "file:///srv/boss/drop/spring.txt", "sha256": "..."}}

creates or updates the campaign (the same table as a campaign file, see etc/campaigns/). The
target list is kept in the plugin's directory and named in the campaign's ``[target] list``,
so the campaign is re-read at start like a file. A dispatched campaign never starts by itself:
its state is ``[plugins.boss_ws] initial_state`` (pending approval by default) whatever the
work order says; an update keeps the campaign's state.

``POST {prefix}/campaigns/pause`` (``resume``, ``cancel``) with ``{"id": ..., "note": ...}``,
and ``GET {prefix}/campaigns/status?id=...``.
"""

from __future__ import annotations

import hashlib
import os
import time
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import structlog
import trio

from gateway.campaigns.loader import parse_campaign
from gateway.campaigns.model import LifecycleError
from gateway.contracts import HttpRequest, HttpResponse
from gateway.errors import ConfigError
from gateway.numbers import NumberError, active_plan, mask
from plugins.boss_ws.fetch import FetchError, sha256_of
from plugins.boss_ws.service import BadRequest, BossWebservices, json_body, reply

ACTIONS = ("pause", "resume", "cancel")


async def _targets_inline(ws: BossWebservices, cid: str, numbers: Any) -> tuple[Path, int, str]:
    if not isinstance(numbers, list) or not all(isinstance(n, str) for n in numbers):
        raise BadRequest("targets must be a list of MSISDN strings")
    if len(numbers) > ws.config.max_inline_targets:
        raise BadRequest(
            f"{len(numbers)} targets inline; more than {ws.config.max_inline_targets} "
            "must come as targets_file"
        )
    plan = active_plan()

    def normalise() -> list[str]:
        normal = []
        for i, text in enumerate(numbers):
            try:
                normal.append(plan.normalise(text))
            except NumberError as exc:
                raise BadRequest(f"targets[{i}]: not a usable MSISDN {mask(text)}: {exc}") from None
        return normal

    normal = await trio.to_thread.run_sync(normalise, limiter=ws.parse_limiter)
    data = "".join(f"{n}\n" for n in normal).encode()
    digest = hashlib.sha256(data).hexdigest()
    path = ws.directory / "targets" / f"{cid}-{digest[:16]}.txt"

    def write() -> None:
        tmp = path.with_suffix(".part")
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)

    await trio.to_thread.run_sync(write)
    return path, len(normal), digest


async def _targets_file(ws: BossWebservices, cid: str, ref: Any) -> tuple[Path, str, str]:
    if not isinstance(ref, dict) or not isinstance(ref.get("url"), str):
        raise BadRequest('targets_file must be {"url": "...", "sha256": "..."}')
    url = ref["url"]
    scheme = urlsplit(url).scheme
    fetcher = ws.fetchers.get(scheme)
    if fetcher is None:
        raise BadRequest(
            f"no fetcher for {scheme!r} URLs (served: {', '.join(s for s in ws.fetchers if s)})"
        )
    tmp = ws.directory / "targets" / f"{cid}.fetching"
    try:
        await fetcher.fetch(url, tmp)
    except FetchError as exc:
        raise BadRequest(f"targets_file: {exc}") from None
    digest = await sha256_of(tmp)
    wanted = ref.get("sha256")
    if wanted is not None and str(wanted).lower() != digest:
        tmp.unlink(missing_ok=True)
        raise BadRequest(f"targets_file: sha256 is {digest}, the work order says {wanted}")
    path = ws.directory / "targets" / f"{cid}-{digest[:16]}.txt"
    os.replace(tmp, path)
    return path, url, digest


async def dispatch(ws: BossWebservices, request: HttpRequest) -> HttpResponse:
    campaigns = ws.gateway.campaigns
    document = json_body(request.body)
    work_order = document.get("work_order")
    table = document.get("campaign")
    if not isinstance(work_order, str) or not work_order:
        raise BadRequest("work_order (the BOSS's id of this order) is required")
    if not isinstance(table, dict):
        raise BadRequest("campaign must be a JSON object (a campaign file's table)")
    cid = table.get("id")
    if not isinstance(cid, str) or not cid or not all(c.isalnum() or c in "-_." for c in cid):
        raise BadRequest("campaign.id: use letters, digits, '-', '_' or '.'")
    if "targets" in document and "targets_file" in document:
        raise BadRequest("give targets or targets_file, not both")
    table = dict(table)
    existing = campaigns.get(cid)
    table["initial_state"] = ws.config.initial_state  # approval is never skipped by a work order
    count, ref, digest = None, None, None
    if "targets" in document:
        path, count, digest = await _targets_inline(ws, cid, document["targets"])
        ref = "inline"
    elif "targets_file" in document:
        path, ref, digest = await _targets_file(ws, cid, document["targets_file"])
    else:
        path = None
    if path is not None:
        target = dict(table.get("target") or {})
        target["list"] = str(path)
        table["target"] = target
    try:
        # off the event loop: the target list may hold hundreds of thousands of numbers
        cdef = await trio.to_thread.run_sync(
            partial(
                parse_campaign,
                table,
                origin=f"webservice:{work_order}",
                areas=campaigns.areas,
                plugin_types=campaigns.plugin_types,
            ),
            limiter=ws.parse_limiter,
        )
    except ConfigError as exc:
        return reply(400, {"error": "invalid campaign", "problems": [str(p) for p in exc.problems]})
    members = await ws.members(cdef)
    if members is not None:
        count = len(members)
    result = await campaigns.put(cdef, actor=f"boss:{work_order}")
    assert ws.store is not None
    await ws.store.insert(
        "boss_ws_work_orders",
        {
            "work_order": work_order,
            "campaign_id": cid,
            "action": result,
            "targets": count,
            "targets_ref": ref,
            "sha256": digest,
            "received_at": time.time(),
        },
    )
    ws.count(f"work_orders.{result}")
    structlog.get_logger().info(
        "boss_ws.work_order", work_order=work_order, campaign=cid, result=result, targets=count
    )
    state = campaigns.get(cid).campaign.state.value
    return reply(
        201 if existing is None else 200,
        {"campaign_id": cid, "result": result, "state": state, "targets": count},
    )


async def lifecycle(ws: BossWebservices, action: str, request: HttpRequest) -> HttpResponse:
    document = json_body(request.body)
    cid = document.get("id")
    if not isinstance(cid, str):
        raise BadRequest("id (the campaign id) is required")
    note = document.get("note", "")
    try:
        cdef = await ws.gateway.campaigns.transition(
            cid, action, actor="boss_ws", note=str(note)[:500]
        )
    except LifecycleError as exc:
        status = 404 if ws.gateway.campaigns.get(cid) is None else 409
        return reply(status, {"error": str(exc)})
    ws.count(f"lifecycle.{action}")
    return reply(200, {"campaign_id": cid, "state": cdef.campaign.state.value})


async def status(ws: BossWebservices, request: HttpRequest) -> HttpResponse:
    cid = request.query.get("id")
    if not cid:
        raise BadRequest("query parameter id is required")
    cdef = ws.gateway.campaigns.get(cid)
    if cdef is None:
        return reply(404, {"error": f"no campaign {cid!r}"})
    outbox = ws.gateway.outbox
    deliveries = dict(await outbox.delivery_counts(cid)) if outbox is not None else {}
    assert ws.store is not None
    orders = await ws.store.select(
        "SELECT work_order, action, targets, targets_ref, received_at FROM boss_ws_work_orders"
        " WHERE campaign_id=? ORDER BY seq",
        cid,
    )
    return reply(
        200,
        {
            **cdef.summary(),
            # a realtime campaign keeps its members; a batch one reads its list when it runs,
            # so its size is the one the last work order with a list brought
            "targets": None if (members := await ws.members(cdef)) is None else len(members),
            "counts": dict(ws.gateway.campaigns.counts.get(cid, {})),
            "deliveries": deliveries,
            "work_orders": orders,
        },
    )
