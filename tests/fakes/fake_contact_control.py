"""A small in-memory ContactControl for FAULT-INJECTION tests of the outbox only.

Outbox and channel tests run against the real SQLite contact control (see
tests/gateway/outbox/outbox_stack.py and tests/plugins/sms_smpp_harness.py); this fake stays for
the three outbox tests that need a control that fails on purpose (flaky decisions, a failing
report, one bad operation), where the real one cannot be made to fail that way.

Allows everything except msisdns listed in ``deferred`` (DEFERRED until ``not_before``);
records commits, releases and reconciled deliveries so tests can check the channel told it.
"""

from __future__ import annotations

import time

import attrs

from gateway.model import ContactDecision, ContactRequest, Delivery, Outcome


@attrs.define
class FakeContactControl:
    deferred: dict[str, float] = attrs.field(factory=dict)  # msisdn -> not_before
    decided: list[str] = attrs.field(factory=list)
    committed: list[str] = attrs.field(factory=list)
    released: list[str] = attrs.field(factory=list)
    reconciled: list[Delivery] = attrs.field(factory=list)

    async def decide(self, request: ContactRequest) -> ContactDecision:
        self.decided.append(request.contact_id)
        return self._decision(request)

    async def check(self, request: ContactRequest) -> ContactDecision:
        return self._decision(request)

    async def decide_many(self, requests):
        return [await self.decide(r) for r in requests]

    def _decision(self, request: ContactRequest) -> ContactDecision:
        now = time.time()
        nb = self.deferred.get(request.msisdn)
        if nb is not None and nb > now:
            return ContactDecision(
                request=request,
                outcome=Outcome.DEFERRED,
                decided_at=now,
                reason="quiet_hours.sms",
                not_before=nb,
            )
        return ContactDecision(request=request, outcome=Outcome.ALLOWED, decided_at=now)

    async def commit(self, contact_id: str) -> None:
        self.committed.append(contact_id)

    async def release(self, contact_id: str, reason: str) -> bool:
        self.released.append(contact_id)
        return True

    async def reconcile(self, delivery: Delivery) -> None:
        self.reconciled.append(delivery)


def allowed(
    contact_id: str,
    msisdn: str = "8613800000000",
    *,
    channel: str = "sms",
    campaign_id: str = "c1",
    text: str = "hello",
    priority: int = 0,
    **content,
) -> ContactDecision:
    """An ALLOWED decision for a request with ``content["text"]``."""
    request = ContactRequest(
        contact_id=contact_id,
        msisdn=msisdn,
        campaign_id=campaign_id,
        channel=channel,
        priority=priority,
        content={"text": text, **content},
        created_at=time.time(),
    )
    return ContactDecision(request=request, outcome=Outcome.ALLOWED, decided_at=time.time())
