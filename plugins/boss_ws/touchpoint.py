"""The CRM counter and call centre: "what can I offer this subscriber now?", and feedback.

``POST {prefix}/touchpoint`` with ``{"msisdn": "...", "limit": 5}`` answers the running
campaigns the subscriber qualifies for, best priority first: in the campaign's target list
(if it has one) and passing every *profile* predicate of its trigger (``profile``, ``range``,
``has_product``/``capability``/``tag``, ``target_list``; event conditions such as the time of
day or a dwell describe a network moment, not an audience, and are not asked here). Each is
then checked by contact control with ``check`` on the touchpoint channel (no reservation):
do-not-disturb and black lists, contact hours and caps as configured for that channel. With
``record_touchpoints`` each offer returned is also recorded as a contact of that channel
(decide, then commit: the counter showed it); make the channel passive in ``[contact]
passive_channels`` to record it without counting it against caps.

``POST {prefix}/feedback`` with ``{"kind": "accepted" | "refused" | "complaint", "msisdn": ...,
"campaign_id": ..., "contact_id": ..., "note": ...}``: an acceptance fires
``gateway_offer_accepted`` (the product order follows), a complaint puts the number on the
``complaint_sensitive`` list at once; every feedback is recorded.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from typing import Any

import structlog

from gateway.contracts import HttpRequest, HttpResponse
from gateway.model import Acceptance, CampaignState, ContactRequest, EventKind, Outcome, SignalEvent
from gateway.numbers import NumberError, active_plan, mask
from gateway.rules.conditions import (
    HasItem,
    InTargetList,
    LocalClock,
    MatchContext,
    ProfileIn,
    ProfileRange,
)
from plugins.boss_ws.service import BadRequest, BossWebservices, json_body, reply

PROFILE_CONDITIONS = (ProfileIn, ProfileRange, HasItem, InTargetList)
FEEDBACK = ("accepted", "refused", "complaint")


def _msisdn(document: dict[str, Any]) -> str:
    text = document.get("msisdn")
    if not isinstance(text, str):
        raise BadRequest("msisdn is required")
    try:
        return active_plan().normalise(text)
    except NumberError as exc:
        raise BadRequest(f"not a usable MSISDN {mask(text)}: {exc}") from None


def touch_id(campaign_id: str, msisdn: str, channel: str, now: float) -> str:
    """One touchpoint contact per campaign, subscriber and day."""
    key = f"{campaign_id}:{msisdn}:{channel}:{int(now // 86400)}".encode()
    return "tp-" + hashlib.blake2b(key, digest_size=12).hexdigest()


def qualifies(
    cdef: Any, members: frozenset[int] | None, index: Any, row: int, msisdn: str, now: float
) -> bool:
    key = active_plan().key(msisdn)
    if members is not None and key not in members:
        return False
    conditions = [
        c
        for c in (cdef.trigger.conditions if cdef.trigger is not None else ())
        if isinstance(c, PROFILE_CONDITIONS)
    ]
    if not conditions:
        return True
    event = SignalEvent(kind=EventKind.POWER_ON, timestamp=now, msisdn=msisdn)
    ctx = MatchContext(event, index, row, row, state=None, clock=LocalClock())  # type: ignore[arg-type]
    return all(c.test(ctx) for c in conditions)


async def touchpoint(ws: BossWebservices, request: HttpRequest) -> HttpResponse:
    document = json_body(request.body)
    msisdn = _msisdn(document)
    limit = document.get("limit", ws.config.max_offers)
    if not isinstance(limit, int) or not 1 <= limit <= ws.config.max_offers:
        raise BadRequest(f"limit must be 1..{ws.config.max_offers}")
    gw = ws.gateway
    control = gw.contact_control
    if control is None:
        return reply(503, {"error": "contact control is not running"})
    now = time.time()
    index = gw.profiles.index if gw.profiles is not None else None
    row = index.row_by_msisdn(msisdn) if index is not None else -1
    channel = ws.config.touchpoint_channel
    running = sorted(
        (c for c in gw.campaigns.list() if c.campaign.state is CampaignState.RUNNING),
        key=lambda c: (-c.campaign.priority, c.id),
    )
    offers: list[dict[str, Any]] = []
    refused: dict[str, str] = {}
    for cdef in running:
        if len(offers) >= limit:
            break
        if not qualifies(cdef, await ws.members(cdef), index, row, msisdn, now):
            continue
        campaign = cdef.campaign
        contact = ContactRequest(
            contact_id=touch_id(campaign.id, msisdn, channel, now),
            msisdn=msisdn,
            campaign_id=campaign.id,
            channel=channel,
            campaign_class=campaign.campaign_class,
            priority=campaign.priority,
            created_at=now,
            trigger="touchpoint",
        )
        decision = await control.check(contact)
        if decision.outcome is not Outcome.ALLOWED:
            refused[campaign.id] = decision.reason or decision.outcome.value
            continue
        if ws.config.record_touchpoints:
            decision = await control.decide(contact)
            if decision.outcome is not Outcome.ALLOWED:
                refused[campaign.id] = decision.reason or decision.outcome.value
                continue
            await control.commit(contact.contact_id)
        content: Mapping[str, Any] = cdef.content.get(channel) or next(
            iter(cdef.content.values()), {}
        )

        def lookup(name: str) -> Any:
            return index.attribute(name, row) if index is not None and row >= 0 else None

        offers.append(
            {
                "campaign_id": campaign.id,
                "name": campaign.name,
                "class": campaign.campaign_class,
                "priority": campaign.priority,
                "contact_id": contact.contact_id,
                "text": content["text"].render(lookup) if "text" in content else "",
            }
        )
    ws.count("touchpoint.queries")
    return reply(200, {"msisdn": msisdn, "offers": offers, "not_offered": refused})


async def feedback(ws: BossWebservices, request: HttpRequest) -> HttpResponse:
    document = json_body(request.body)
    kind = document.get("kind")
    if kind not in FEEDBACK:
        raise BadRequest(f"kind must be one of {', '.join(FEEDBACK)}")
    msisdn = _msisdn(document)
    campaign_id = document.get("campaign_id")
    contact_id = document.get("contact_id")
    note = str(document.get("note", ""))[:500]
    now = time.time()
    gw = ws.gateway
    if kind in ("accepted", "refused"):
        if not isinstance(campaign_id, str) or gw.campaigns.get(campaign_id) is None:
            raise BadRequest("campaign_id must name a known campaign")
        if contact_id is None:
            contact_id = touch_id(campaign_id, msisdn, ws.config.touchpoint_channel, now)
        if not isinstance(contact_id, str):
            raise BadRequest("contact_id must be a string")
    elif gw.contact_control is None:
        return reply(503, {"error": "contact control is not running"})
    assert ws.store is not None
    await ws.store.insert(
        "boss_ws_feedback",
        {
            "kind": kind,
            "msisdn": msisdn,
            "campaign_id": campaign_id,
            "contact_id": contact_id,
            "note": note,
            "at": now,
        },
    )
    if kind == "complaint":
        await gw.contact_control.lists.add(
            "complaint_sensitive", msisdn, source="crm", reason=note or "complaint at the CRM"
        )
    elif kind == "accepted":
        assert isinstance(contact_id, str) and isinstance(campaign_id, str)
        gw.hook.gateway_offer_accepted(
            acceptance=Acceptance(
                contact_id=contact_id,
                campaign_id=campaign_id,
                msisdn=msisdn,
                channel=ws.config.touchpoint_channel,
                answer="accepted",
                at=now,
            )
        )
    if kind in ("accepted", "refused"):
        gw.campaigns.count(campaign_id, f"crm_{kind}")
    ws.count(f"feedback.{kind}")
    structlog.get_logger().info("boss_ws.feedback", kind=kind, msisdn=mask(msisdn))
    return reply(200, {"kind": kind, "msisdn": msisdn, "contact_id": contact_id})
