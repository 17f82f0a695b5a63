"""Campaign evaluation: conversion of the contacted group against the control group.

Read from the contact ledger: contacted subscribers (outcome ``allowed``), the control group
(outcome ``control``), and conversions (an ``accepted`` answer to the offer, or a ``converted``
row recorded with ``gatewayctl campaign convert``).
"""

from __future__ import annotations

from typing import Any

_GROUPS_SQL = """
SELECT
  (SELECT COUNT(DISTINCT msisdn) FROM contact_ledger WHERE campaign_id = ?1 AND event = 'allowed'),
  (SELECT COUNT(DISTINCT msisdn) FROM contact_ledger WHERE campaign_id = ?1 AND event = 'control'),
  (SELECT COUNT(DISTINCT c.msisdn) FROM contact_ledger c WHERE c.campaign_id = ?1
     AND c.event IN ('accepted', 'converted')
     AND c.msisdn IN (SELECT msisdn FROM contact_ledger WHERE campaign_id = ?1 AND event = 'allowed')),
  (SELECT COUNT(DISTINCT c.msisdn) FROM contact_ledger c WHERE c.campaign_id = ?1
     AND c.event = 'converted'
     AND c.msisdn IN (SELECT msisdn FROM contact_ledger WHERE campaign_id = ?1 AND event = 'control'))
"""


async def evaluation(gateway: Any, campaign_id: str) -> dict[str, Any]:
    """Conversion of the contacted group against the control group, and the uplift.

    Contacted: subscribers allowed a contact; control: held out (outcome ``control``). A
    subscriber converted when they accepted the offer (a reply, a key) or a conversion was
    recorded for them (``campaign convert``: BOSS orders, whatever the channel). Uplift is the
    difference of the two rates (in points) and its ratio to the control rate.
    """
    ledger = gateway.ledger
    worker = getattr(ledger, "worker", None)
    if worker is None:
        return {}
    contacted, control, conv_contacted, conv_control = await worker.run(
        lambda c: c.execute(_GROUPS_SQL, (campaign_id,)).fetchone()
    )
    rate_c = conv_contacted / contacted if contacted else None
    rate_k = conv_control / control if control else None
    uplift = rate_c - rate_k if rate_c is not None and rate_k is not None else None
    return {
        "contacted": contacted,
        "contacted_converted": conv_contacted,
        "contacted_conversion": None if rate_c is None else round(rate_c, 6),
        "control": control,
        "control_converted": conv_control,
        "control_conversion": None if rate_k is None else round(rate_k, 6),
        "uplift_points": None if uplift is None else round(uplift * 100, 4),
        "uplift_relative": (round(uplift / rate_k, 4) if uplift is not None and rate_k else None),
    }


def conversion_rows(campaign_id: str, msisdns: list[str], now: float) -> list[tuple[Any, ...]]:
    """Ledger rows (event ``converted``) for subscribers who took the campaign's product."""
    return [
        (
            now,
            "converted",
            f"cv-{campaign_id}-{m}",
            m,
            campaign_id,
            None,
            None,
            None,
            "conversion",
            None,
            None,
            None,
            None,
        )
        for m in msisdns
    ]
