"""The observer hooks: the batch ones once per commit, the singular ones per record, and an
observer that raises neither stops the others nor fails the record."""

from __future__ import annotations

import pluggy
import structlog.testing

from gateway import hookspecs
from gateway.app import Gateway
from gateway.model import ContactDecision, ContactRequest, Delivery, DeliveryState, Outcome


def decisions(n: int) -> list[ContactDecision]:
    return [
        ContactDecision(
            request=ContactRequest(
                contact_id=f"c{i}", msisdn="8613800000001", campaign_id="x", channel="sms"
            ),
            outcome=Outcome.ALLOWED,
            decided_at=0.0,
        )
        for i in range(n)
    ]


def gateway_with(*plugins) -> Gateway:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for plugin in plugins:
        pm.register(plugin)
    return Gateway(config=None, hook=pm.hook, state_dir=".")


class Batch:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[int] = []
        self.fail = fail

    @hookspecs.hookimpl
    def gateway_contacts_recorded(self, decisions):
        self.calls.append(len(decisions))
        if self.fail:
            raise RuntimeError("observer bug")

    @hookspecs.hookimpl
    def gateway_delivery_reports(self, deliveries):
        self.calls.append(len(deliveries))


class Single:
    def __init__(self) -> None:
        self.seen: list[str] = []

    @hookspecs.hookimpl
    def gateway_contact_recorded(self, decision):
        if decision.request.contact_id == "c1":
            raise RuntimeError("observer bug")
        self.seen.append(decision.request.contact_id)

    @hookspecs.hookimpl
    def gateway_delivery_report(self, delivery):
        self.seen.append(delivery.state.value)


def test_batch_once_single_per_record_and_errors_are_logged() -> None:
    batch, single = Batch(fail=True), Single()
    gw = gateway_with(batch, single)
    with structlog.testing.capture_logs() as logs:
        gw.observe_decisions(decisions(3))
    assert batch.calls == [3]
    assert single.seen == ["c0", "c2"]  # c1's observer raised: the others still saw theirs
    failed = [e for e in logs if e["event"] == "gateway.observer_failed"]
    assert [e["hook"] for e in failed] == ["gateway_contacts_recorded", "gateway_contact_recorded"]


def test_deliveries_and_an_empty_batch() -> None:
    batch, single = Batch(), Single()
    gw = gateway_with(batch, single)
    gw.observe_deliveries([])
    assert batch.calls == [] and single.seen == []
    reports = [
        Delivery(contact_id="c0", channel="sms", state=DeliveryState.SUBMITTED, at=0.0),
        Delivery(contact_id="c0", channel="sms", state=DeliveryState.DELIVERED, at=1.0),
    ]
    gw.observe_deliveries(reports)
    assert batch.calls == [2]
    assert single.seen == ["submitted", "delivered"]


def test_a_hook_relay_without_the_batch_hooks_and_no_hook_at_all() -> None:
    """Tests and embedders may hand the Gateway a plain object, or None."""

    class Plain:
        def __init__(self) -> None:
            self.seen: list[str] = []

        def gateway_contact_recorded(self, decision):
            self.seen.append(decision.request.contact_id)

    plain = Plain()
    Gateway(config=None, hook=plain, state_dir=".").observe_decisions(decisions(2))
    assert plain.seen == ["c0", "c1"]
    Gateway(config=None, hook=None, state_dir=".").observe_decisions(decisions(2))
