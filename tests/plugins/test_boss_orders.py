"""The product order on acceptance, end to end: a real gateway, the SMSC simulator, a fake
BOSS over real HTTP (SOAP 1.1 and JSON); the acceptance hook is fired directly here (the "Y"
reply routed by two-way SMS from the simulator: tests/plugins/test_boss_orders_twoway.py)."""

from __future__ import annotations

import json
import time

import pytest

from gateway.model import Acceptance, ContactRequest, Outcome
from gateway.testing import open_gateway, open_smsc_simulator, reserved_port, wait_until
from gateway.testing.boss import open_fake_boss
from plugins.boss_orders import RUNNING
from tests.plugins.boss_harness import CAPS, JSON_ORDER, SMSC, SOAP_ORDER

MSISDN = "8613800000001"


def accepted(contact_id: str = "spring:8613800000001:1") -> Acceptance:
    return Acceptance(
        contact_id=contact_id,
        campaign_id="spring",
        msisdn=MSISDN,
        channel="sms",
        answer="Y",
        at=time.time(),
    )


async def orders_of(gw) -> dict[str, int]:
    service = RUNNING.service
    assert service is not None and service.book is not None
    return await service.book.counts()


@pytest.mark.parametrize("protocol", ["soap", "json"])
async def test_acceptance_places_one_order_and_sends_the_result_sms(tmp_path, protocol):
    """A "Y" (acceptance, fired twice) places one order at the BOSS and the subscriber gets
    the result by SMS, although a marketing SMS already used up today's marketing cap."""
    async with open_fake_boss(protocol) as boss, open_smsc_simulator(receipt_delay=0.01) as smsc:
        config = (SOAP_ORDER if protocol == "soap" else JSON_ORDER).format(port=boss.port)
        config += SMSC.format(port=smsc.port) + CAPS
        async with open_gateway(tmp_path / "gw", config) as gw:
            g = gw.gateway
            offer = ContactRequest(
                contact_id="spring:8613800000001:1",
                msisdn=MSISDN,
                campaign_id="spring",
                channel="sms",
                content={"text": "1 GB for 10 yuan. Reply Y to order."},
            )
            (decision,) = await g.contact_control.decide_and_queue([offer], g.outbox)
            assert decision.outcome is Outcome.ALLOWED
            again = await g.contact_control.check(
                ContactRequest(contact_id="x", msisdn=MSISDN, campaign_id="other", channel="sms")
            )
            assert again.outcome is Outcome.SUPPRESSED  # the marketing cap is used up
            g.hook.gateway_offer_accepted(acceptance=accepted())
            g.hook.gateway_offer_accepted(acceptance=accepted())
            await wait_until(lambda: any("is yours" in str(t) for t in smsc.texts()))
            assert len(boss.orders) == 1
            ((msisdn, product, number),) = boss.orders.values()
            assert (msisdn, product) == (MSISDN, "DATA1G10")
            assert f"Order {number}: DATA1G10 is yours." in smsc.texts()
            assert await orders_of(gw) == {"placed": 1}
            order = await RUNNING.service.book.get("spring:8613800000001:1")
            assert order.sms == "queued" and json.loads(order.result)["order_no"] == number
            if protocol == "soap":
                assert boss.soap_actions == ["urn:example:boss:order#PlaceOrder"]


async def test_refused_order_is_final_and_says_why(tmp_path):
    """A product the BOSS refuses (result code 2001) is recorded as failed, not retried, and
    the SMS tells the subscriber the BOSS's reason."""
    async with open_fake_boss("soap") as boss, open_smsc_simulator(receipt_delay=0.01) as smsc:
        boss.refused_products.add("DATA1G10")
        config = SOAP_ORDER.format(port=boss.port) + SMSC.format(port=smsc.port)
        async with open_gateway(tmp_path / "gw", config) as gw:
            gw.gateway.hook.gateway_offer_accepted(acceptance=accepted())
            await wait_until(lambda: any("could not be ordered" in str(t) for t in smsc.texts()))
            assert "Sorry, DATA1G10 could not be ordered: product not allowed" in smsc.texts()
            assert await orders_of(gw) == {"failed": 1}
            assert boss.requests == 1


async def test_orders_wait_while_the_boss_is_down_and_survive_a_restart(tmp_path):
    """With the BOSS refusing connections the order stays pending (the daemon runs on),
    across a gateway restart; once the BOSS is back it is placed once and the SMS sent."""
    with reserved_port() as port:  # refused until the fake BOSS starts on it
        async with open_smsc_simulator(receipt_delay=0.01) as smsc:
            config = SOAP_ORDER.format(port=port) + SMSC.format(port=smsc.port)
            async with open_gateway(tmp_path / "gw", config) as gw:
                gw.gateway.hook.gateway_offer_accepted(acceptance=accepted())

                async def tried_twice():
                    order = await RUNNING.service.book.get("spring:8613800000001:1")
                    return order is not None and order.attempts >= 2

                await wait_until(tried_twice)
                assert await orders_of(gw) == {"pending": 1}
                status = await gw.command("status")
                assert "boss_orders" in json.dumps(status.data)
            assert smsc.texts() == []
            async with open_fake_boss("soap", port=port) as boss:
                async with open_gateway(tmp_path / "gw", config):
                    await wait_until(lambda: any("is yours" in str(t) for t in smsc.texts()))
                    assert len(boss.orders) == 1
                    assert await orders_of(None) == {"placed": 1}
