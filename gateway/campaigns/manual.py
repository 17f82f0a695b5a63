"""Contacts made by hand: the manual trigger ("人工触发") and the test send ("试发").

:func:`manual_requests` builds a campaign's contact requests for given subscribers, rendered
like the batch runner renders them; ``campaign trigger`` passes them through contact control
and the outbox like any contact (``decide_and_queue``: caps, lists, quiet hours apply).

:func:`test_send` sends a campaign's rendered content to the configured test numbers
(``[campaigns] test_numbers``) whatever the campaign's state (a draft awaiting approval too):
outside caps and not counted. It is recorded in the ledger as ``test_send`` (an event that no
counter reads) and queued in the outbox as an allowed decision without a reservation.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from gateway.campaigns.model import CampaignDef
from gateway.model import CampaignState, ContactDecision, ContactRequest, Outcome

TRIGGER_STATES = (CampaignState.APPROVED, CampaignState.RUNNING)


class TriggerStamps:
    """The millisecond stamps that name manual triggers and test sends in their contact ids,
    strictly increasing: two commands in the same millisecond are two contacts. (With the bare
    time, the second trigger of a subscriber in that millisecond was taken for the first one
    again: "allowed" as a duplicate, not decided, and not sent.)"""

    def __init__(self) -> None:
        self.last = 0

    def next(self, now: float) -> int:
        stamp = max(int(now * 1000), self.last + 1)
        self.last = stamp
        return stamp


def render(cdef: CampaignDef, channel: str, msisdn: str, profiles: Any) -> dict[str, Any]:
    """The campaign's content for one subscriber (profile attributes where known)."""
    index = getattr(profiles, "index", None)
    row = index.row_by_msisdn(msisdn) if index is not None else -1

    def lookup(name: str) -> Any:
        if name == "campaign_name":
            return cdef.campaign.name
        if row >= 0:
            return index.attribute(name, row)  # type: ignore[union-attr]
        return msisdn if name == "msisdn" else None

    return {k: t.render(lookup) for k, t in cdef.content.get(channel, {}).items()}


def manual_requests(
    cdef: CampaignDef,
    msisdns: Iterable[str],
    *,
    profiles: Any,
    reply_address: str | None = None,
    now: float | None = None,
    prefix: str = "mt",
    stamp: int | None = None,
) -> list[ContactRequest]:
    """One request per subscriber on the campaign's first channel; ``contact_id`` names the
    campaign, the number and the trigger (``stamp``, from :class:`TriggerStamps`; by default
    the time in milliseconds): a repeated trigger is a new contact."""
    campaign = cdef.campaign
    channel = campaign.channels[0]
    at = time.time() if now is None else now
    if stamp is None:
        stamp = int(at * 1000)
    out = []
    for msisdn in dict.fromkeys(msisdns):
        content = render(cdef, channel, msisdn, profiles)
        if reply_address:
            content["source_addr"] = reply_address
        out.append(
            ContactRequest(
                contact_id=f"{prefix}-{campaign.id}-{msisdn}-{stamp}",
                msisdn=msisdn,
                campaign_id=campaign.id,
                channel=channel,
                campaign_class=campaign.campaign_class,
                priority=campaign.priority,
                realtime=True,
                defer_if_quiet=True,
                content=content,
                created_at=at,
                trigger="manual" if prefix == "mt" else "test_send",
            )
        )
    return out


def test_decisions(requests: list[ContactRequest], now: float) -> list[ContactDecision]:
    """Allowed decisions without a reservation: a test send is outside caps and not counted."""
    return [
        ContactDecision(request=r, outcome=Outcome.ALLOWED, decided_at=now, reason="test_send")
        for r in requests
    ]


def test_rows(decisions: list[ContactDecision]) -> list[tuple[Any, ...]]:
    """Ledger rows (event ``test_send``) for the audit trail; no counter reads them."""
    return [
        (
            d.decided_at,
            "test_send",
            d.request.contact_id,
            d.request.msisdn,
            d.request.campaign_id,
            d.request.channel,
            d.request.campaign_class,
            d.request.priority,
            "test_send",
            None,
            None,
            None,
            None,
        )
        for d in decisions
    ]
