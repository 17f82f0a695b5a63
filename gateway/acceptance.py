"""Accepted offers: recorded in the contact ledger, then offered to the observers.

An acceptance arrives through a channel (an IVR key press, an SMS "Y" reply) and takes one
path whatever the channel: :func:`report_acceptance` appends an ``accepted`` row to the
contact ledger (the answer in its detail, for ``gatewayctl why``), waits until it is durable,
and calls the ``gateway_offer_accepted`` hook. ``accepted`` is not a counter event: it
changes no cap.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from gateway.model import Acceptance

if TYPE_CHECKING:
    from gateway.app import Gateway

#: The ledger event of an acceptance.
ACCEPTED = "accepted"


def ledger_row(acceptance: Acceptance) -> tuple[object, ...]:
    """The contact-ledger row (columns as :func:`gateway.contact.ledger.decision_row`)."""
    return (
        acceptance.at,
        ACCEPTED,
        acceptance.contact_id,
        acceptance.msisdn,
        acceptance.campaign_id,
        acceptance.channel,
        None,
        None,
        f"accepted.{acceptance.channel}",
        None,
        json.dumps({"answer": acceptance.answer}),
        None,
        None,
    )


async def report_acceptance(gateway: Gateway, acceptance: Acceptance) -> None:
    """Record ``acceptance`` in the ledger (durably), then call ``gateway_offer_accepted``."""
    ledger = gateway.ledger
    if ledger is not None:
        await ledger.durable(ledger.append(ledger_row(acceptance)))
    gateway.hook.gateway_offer_accepted(acceptance=acceptance)
