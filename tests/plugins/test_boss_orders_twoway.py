"""The product order end to end through two-way SMS: a batch offer with a reply address goes
out through real contact control and the SMS channel to the SMSC simulator, the simulator sends
the subscriber's "Y" back as an MO to that address, two-way routes it to the offer and fires
``gateway_offer_accepted``, and boss_orders places the order at a fake BOSS over real HTTP
(SOAP 1.1 and JSON) and sends the result SMS."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gateway.testing import open_gateway, open_smsc_simulator, wait_until
from gateway.testing.boss import open_fake_boss
from gateway.twoway.plugin import TwowayPlugin
from plugins.boss_orders import RUNNING
from tests.plugins.boss_harness import JSON_ORDER, SOAP_ORDER

SUBSCRIBER = "8613800000001"


def write_campaign(directory: Path) -> None:
    (directory / "spring.txt").write_text(SUBSCRIBER + "\n", encoding="utf-8")
    (directory / "campaigns").mkdir()
    (directory / "campaigns" / "spring.toml").write_text(
        textwrap.dedent(
            f"""\
            id = "spring"
            name = "spring"
            kind = "batch"
            channels = ["sms"]
            initial_state = "running"
            [target]
            list = "{directory / "spring.txt"}"
            [content.sms]
            text = "1 GB for 10 yuan: reply Y to order"
            [reply]
            validity = "1d"
            """
        ),
        encoding="utf-8",
    )


def config(directory: Path, boss_port: int, smsc_port: int, protocol: str) -> str:
    boss = (SOAP_ORDER if protocol == "soap" else JSON_ORDER).format(port=boss_port)
    return (
        textwrap.dedent(
            f"""
            [campaigns]
            directory = "{directory / "campaigns"}"

            [twoway]
            service_code = "10658000"

            [plugins.sms_smpp]
            [[plugins.sms_smpp.smsc]]
            name = "sim"
            host = "127.0.0.1"
            port = {smsc_port}
            system_id = "gateway"
            password = "secret"
            registered_delivery = 0
            source_addr = "10086"
            """
        )
        + boss
    )


def twoway_of(gw):
    for plugin in gw.daemon.pm.get_plugins():
        if isinstance(plugin, TwowayPlugin):
            return plugin.component
    raise AssertionError("no two-way component")


async def offer_contact_id(gw) -> str:
    rows = await gw.gateway.ledger.writer.run(
        lambda c: c.execute(
            "SELECT DISTINCT contact_id FROM contact_ledger WHERE msisdn = ? AND campaign_id = ?",
            (SUBSCRIBER, "spring"),
        ).fetchall()
    )
    assert len(rows) == 1, rows
    return rows[0][0]


@pytest.mark.parametrize("protocol", ["soap", "json"])
async def test_yes_reply_by_sms_places_one_order_and_the_result_reaches_the_phone(
    tmp_path, protocol
):
    """An SMS offer, a "Y" MO to its reply address (sent twice): one order at the BOSS with the
    offer's contact id and the product code, and the BOSS's answer reaches the simulator."""
    write_campaign(tmp_path)
    async with open_fake_boss(protocol) as boss, open_smsc_simulator(receipt_delay=None) as smsc:
        sim = smsc.simulator
        async with open_gateway(tmp_path, config(tmp_path, boss.port, smsc.port, protocol)) as gw:
            tw = twoway_of(gw)
            await wait_until(lambda: tw.stats["offers"] == 1 and sim.submitted, within=30)
            (offer,) = sim.submitted
            address = tw.address("spring")
            assert offer.destination_addr == SUBSCRIBER and offer.source_addr == address
            contact_id = await offer_contact_id(gw)

            await sim.send_mo(SUBSCRIBER, address, "Y")
            await wait_until(lambda: any("is yours" in str(t) for t in smsc.texts()), within=30)
            assert tw.stats["accepted"] == 1 and tw.stats["by_sub_code"] == 1
            assert list(boss.orders) == [contact_id]
            ((msisdn, product, number),) = boss.orders.values()
            assert (msisdn, product) == (SUBSCRIBER, "DATA1G10")
            assert f"Order {number}: DATA1G10 is yours." in smsc.texts()
            result = [s for s in sim.submitted if "is yours" in str(s.short_message)]
            assert [s.destination_addr for s in result] == [SUBSCRIBER]

            # the same "Y" again: the offer is closed, no second order, no second result SMS
            await sim.send_mo(SUBSCRIBER, address, "Y")
            await wait_until(lambda: tw.stats["no_open_offer"] == 1, within=10)
            assert RUNNING.service is not None and RUNNING.service.book is not None
            assert await RUNNING.service.book.counts() == {"placed": 1}
            assert len(boss.orders) == 1 and boss.duplicates == 0
            assert sum("is yours" in str(t) for t in smsc.texts()) == 1
            if protocol == "soap":
                assert boss.soap_actions == ["urn:example:boss:order#PlaceOrder"]
