"""Two-way SMS in a real gateway: offers sent by a batch campaign to the SMSC simulator, and
the subscribers' replies sent back by the simulator as MO deliver_sm over SMPP."""

from __future__ import annotations

import shutil
import textwrap
import time
from pathlib import Path

import pytest

from gateway.campaigns.keywords import fold
from gateway.hookspecs import hookimpl
from gateway.model import ContactRequest, EventKind, Outcome, SignalEvent
from gateway.testing import open_gateway, open_smsc_simulator, wait_until
from gateway.twoway.plugin import TwowayPlugin

ROOT = Path(__file__).resolve().parents[3]
SUBSCRIBERS = ["8613900000001", "8613900000002", "8613900000003", "8613900000004"]
OTHER = "8613900000099"  # never offered anything


class Accepted:
    """A plugin recording ``gateway_offer_accepted``."""

    def __init__(self) -> None:
        self.calls: list = []

    @hookimpl
    def gateway_offer_accepted(self, acceptance):
        self.calls.append(acceptance)


def write_campaign(directory: Path, cid: str, numbers: list[str], reply: str) -> None:
    (directory / f"{cid}.txt").write_text("\n".join(numbers) + "\n", encoding="utf-8")
    (directory / "campaigns").mkdir(exist_ok=True)
    (directory / "campaigns" / f"{cid}.toml").write_text(
        textwrap.dedent(
            f"""\
            id = "{cid}"
            name = "{cid}"
            kind = "batch"
            channels = ["sms"]
            initial_state = "running"
            [target]
            list = "{directory / f"{cid}.txt"}"
            [content.sms]
            text = "10GB for 10 yuan: reply Y to order, TD to unsubscribe"
            {reply}
            """
        ),
        encoding="utf-8",
    )


def config(directory: Path, smsc, extra: str = "") -> str:
    return textwrap.dedent(
        f"""
        [campaigns]
        directory = "{directory / "campaigns"}"

        [twoway]
        service_code = "10658000"
        {extra}

        [plugins.sms_smpp]
        [[plugins.sms_smpp.smsc]]
        name = "sim"
        host = "{smsc.host}"
        port = {smsc.port}
        system_id = "gateway"
        password = "secret"
        registered_delivery = 0
        source_addr = "10086"
        """
    )


def twoway_of(gw):
    for plugin in gw.daemon.pm.get_plugins():
        if isinstance(plugin, TwowayPlugin):
            return plugin.component
    raise AssertionError("no two-way component")


async def ledger_events(gw, msisdn: str) -> list[tuple]:
    writer = gw.gateway.ledger.writer
    return await writer.run(
        lambda c: c.execute(
            "SELECT event, campaign_id, reason FROM contact_ledger WHERE msisdn = ? ORDER BY seq",
            (msisdn,),
        ).fetchall()
    )


@pytest.fixture
def campaigns(tmp_path):
    write_campaign(tmp_path, "gprs", SUBSCRIBERS[:2], '[reply]\nvalidity = "1d"')
    write_campaign(
        tmp_path,
        "music",
        SUBSCRIBERS[2:],
        '[reply]\naccept = ["Y", "是", "1", "OK"]\nopt_out_scope = "global"',
    )
    return tmp_path


async def test_sub_codes_allocated_and_offers_carry_them(campaigns):
    """Each campaign with [reply] gets its own sub-code; its SMS are sent from that address."""
    async with open_smsc_simulator(receipt_delay=None) as smsc:
        async with open_gateway(campaigns, config(campaigns, smsc)) as gw:
            sim = smsc.simulator
            await wait_until(lambda: len(sim.submitted) >= 4, within=30)
            tw = twoway_of(gw)
            addresses = {cid: tw.address(cid) for cid in ("gprs", "music")}
            assert sorted(addresses.values()) == ["106580000001", "106580000002"]
            for s in sim.submitted:
                cid = "gprs" if s.destination_addr in SUBSCRIBERS[:2] else "music"
                assert s.source_addr == addresses[cid]
            await wait_until(lambda: tw.stats["offers"] == 4, within=10)


async def test_yes_by_sub_code_and_by_latest_offer_fires_the_hook(campaigns):
    """ "Y" to the sub-code address, and "是" to the bare service code (latest offer), are
    acceptances: recorded in the ledger and fired as gateway_offer_accepted."""
    accepted = Accepted()
    async with open_smsc_simulator(receipt_delay=None) as smsc:
        async with open_gateway(
            campaigns, config(campaigns, smsc), plugins=(("accepted", accepted),)
        ) as gw:
            sim = smsc.simulator
            tw = twoway_of(gw)
            await wait_until(lambda: tw.stats["offers"] == 4, within=30)
            music = tw.address("music")
            await sim.send_mo(SUBSCRIBERS[2], music, "y")
            await sim.send_mo(SUBSCRIBERS[0], "10658000", " 是 ")
            await wait_until(lambda: tw.stats["accepted"] == 2, within=10)
            assert tw.stats["by_sub_code"] == 1 and tw.stats["by_latest_offer"] == 1
            got = {(a.msisdn, a.campaign_id, a.answer) for a in accepted.calls}
            assert got == {(SUBSCRIBERS[2], "music", "y"), (SUBSCRIBERS[0], "gprs", " 是 ")}
            assert all(a.contact_id.startswith("bt-") for a in accepted.calls)
            assert ("accepted", "music", "reply.sub_code") in await ledger_events(
                gw, SUBSCRIBERS[2]
            )
            assert ("accepted", "gprs", "reply.latest_offer") in await ledger_events(
                gw, SUBSCRIBERS[0]
            )
            report = await gw.command("campaign", "report", "music")
            assert report.data["accepted"] == 1
            # the offer is closed: a second "Y" has no open offer
            await sim.send_mo(SUBSCRIBERS[2], music, "Y")
            await wait_until(lambda: tw.stats["no_open_offer"] == 1, within=10)
            assert len(accepted.calls) == 2


@pytest.mark.parametrize("by_sub_code", [True, False])
async def test_opt_out_is_effective_for_the_very_next_contact(campaigns, by_sub_code):
    """ "退订" (by sub-code or by latest offer) puts the subscriber on the global opt-out list at
    once, is confirmed by SMS, and the very next contact to them is suppressed."""
    async with open_smsc_simulator(receipt_delay=None) as smsc:
        async with open_gateway(campaigns, config(campaigns, smsc)) as gw:
            sim = smsc.simulator
            tw = twoway_of(gw)
            await wait_until(lambda: tw.stats["offers"] == 4, within=30)
            who = SUBSCRIBERS[1]
            dest = tw.address("gprs") if by_sub_code else "10658000"
            await sim.send_mo(who, dest, "退订")
            await wait_until(lambda: tw.stats["opted_out"] == 1, within=10)
            decision = await gw.gateway.contact_control.decide(
                ContactRequest(
                    contact_id=f"next-{time.time()}",
                    msisdn=who,
                    campaign_id="music",
                    channel="sms",
                    content={"text": "another offer"},
                    created_at=time.time(),
                )
            )
            assert decision.outcome is Outcome.SUPPRESSED
            assert decision.reason == "dnd.global_opt_out"
            # the confirmation: a second message to them, the configured text
            await wait_until(
                lambda: sum(s.destination_addr == who for s in sim.submitted) == 2, within=10
            )
            assert any("unsubscribed" in str(t) for t in smsc.texts())
            events = await ledger_events(gw, who)
            via = "reply.sub_code" if by_sub_code else "reply.latest_offer"
            assert ("opted_out", "gprs", via) in events
            report = await gw.command("campaign", "report", "gprs")
            assert report.data["opted_out"] == 1


async def test_unknown_replies_are_counted_and_logged_masked(campaigns, captured_logs):
    """A reply that is no keyword, and a "Y" from someone never offered, are counted and
    logged without the number in clear."""
    async with open_smsc_simulator(receipt_delay=None) as smsc:
        async with open_gateway(campaigns, config(campaigns, smsc)) as gw:
            sim = smsc.simulator
            tw = twoway_of(gw)
            await wait_until(lambda: tw.stats["offers"] == 4, within=30)
            await sim.send_mo(SUBSCRIBERS[3], tw.address("music"), "how much?")
            await sim.send_mo(SUBSCRIBERS[0], "10658000", "what is this")
            await sim.send_mo(OTHER, "10658000", "Y")
            await wait_until(
                lambda: tw.stats["unknown"] == 2 and tw.stats["no_open_offer"] == 1, within=10
            )
            assert tw.stats["accepted"] == tw.stats["opted_out"] == 0
    records = captured_logs.events("twoway.unknown_reply")
    text = captured_logs.getvalue()
    assert len(records) == 2
    assert {r["campaign"] for r in records} == {"music", "gprs"}
    assert SUBSCRIBERS[3] not in text and SUBSCRIBERS[0] not in text


def test_keywords_fold_width_case_and_punctuation():
    """Full-width letters, case, spaces and Chinese punctuation do not change a keyword."""
    assert fold("\uff39") == fold(" y ") == fold("Y。") == "Y"
    assert fold("退订\uff01") == "退订" and fold("td") == "TD"


async def test_realtime_offer_is_sent_from_its_sub_code_and_answered_there(tmp_path):
    """A realtime campaign with [reply]: the triggered SMS carries the campaign's reply
    address, and a "Y" sent to it is routed by sub-code to that offer."""
    shutil.copy(ROOT / "etc" / "demo" / "profiles.csv", tmp_path / "profiles.csv")
    (tmp_path / "campaigns").mkdir()
    (tmp_path / "campaigns" / "welcome.toml").write_text(
        'id = "welcome"\nname = "welcome"\nchannels = ["sms"]\ninitial_state = "running"\n'
        '[content.sms]\ntext = "hi: reply Y"\n[trigger]\nevents = ["power_on"]\n[reply]\n'
    )
    accepted = Accepted()
    async with open_smsc_simulator(receipt_delay=None) as smsc:
        extra = f'[profiles]\nfile = "{tmp_path / "profiles.csv"}"\n'
        async with open_gateway(
            tmp_path, config(tmp_path, smsc) + extra, plugins=(("accepted", accepted),)
        ) as gw:
            tw = twoway_of(gw)
            address = tw.address("welcome")
            assert address == "106580000001"
            await gw.gateway.pipeline.send(
                [
                    SignalEvent(
                        kind=EventKind.POWER_ON, timestamp=time.time(), imsi="460001234567801"
                    )
                ]
            )
            sim = smsc.simulator
            await wait_until(lambda: len(sim.submitted) == 1, within=30)
            assert sim.submitted[0].source_addr == address
            await sim.send_mo(sim.submitted[0].destination_addr, address, "Y")
            await wait_until(lambda: accepted.calls, within=10)
            assert tw.stats["by_sub_code"] == 1
            assert accepted.calls[0].campaign_id == "welcome"
