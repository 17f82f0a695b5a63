"""Serial multichannel: a batch on SMS (the SMSC simulator) falling back to a second channel
when the SMS fails, or when the subscriber has not answered in time."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import trio

from gateway.hookspecs import hookimpl
from gateway.model import Delivery, DeliveryState
from gateway.testing import open_gateway, open_smsc_simulator, wait_until

FAIL = "861390000009"  # the simulator rejects these (prefix)


class RecordingChannel:
    """A second channel ("ivr") that delivers at once and records who it reached."""

    name = "ivr"

    def __init__(self, gateway) -> None:
        self.gateway = gateway
        self.reached: list[tuple[str, str]] = []

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED):
        async with self.gateway.outbox.open_queue(self.name) as queue:
            task_status.started()
            while True:
                messages = await queue.take(100)
                await queue.mark_sending([m.contact_id for m in messages])
                for m in messages:
                    self.reached.append((m.request.msisdn, m.request.contact_id))
                    await self.gateway.report_delivery(
                        Delivery(
                            contact_id=m.contact_id,
                            channel=self.name,
                            state=DeliveryState.DELIVERED,
                            at=time.time(),
                        )
                    )


class IvrPlugin:
    def __init__(self) -> None:
        self.channel: RecordingChannel | None = None

    @hookimpl
    def gateway_channels(self, gateway):
        self.channel = RecordingChannel(gateway)
        return [self.channel]


def write(directory: Path, numbers: list[str], fallback: str, extra: str = "") -> None:
    (directory / "t.txt").write_text("\n".join(numbers) + "\n")
    (directory / "campaigns").mkdir()
    (directory / "campaigns" / "serial.toml").write_text(
        textwrap.dedent(
            f"""\
            id = "serial"
            name = "serial"
            kind = "batch"
            channels = ["sms", "ivr"]
            initial_state = "running"
            [fallback]
            {fallback}
            [target]
            list = "{directory / "t.txt"}"
            [content.sms]
            text = "offer by SMS: reply Y"
            [content.ivr]
            text = "offer by voice"
            {extra}
            """
        )
    )


def config(directory: Path, smsc, extra: str = "") -> str:
    return textwrap.dedent(
        f"""
        [campaigns]
        directory = "{directory / "campaigns"}"
        {extra}
        [plugins.sms_smpp]
        [[plugins.sms_smpp.smsc]]
        name = "sim"
        host = "{smsc.host}"
        port = {smsc.port}
        system_id = "gateway"
        password = "secret"
        registered_delivery = 0
        """
    )


async def test_failed_sms_falls_back_to_the_next_channel(tmp_path):
    """Targets whose SMS the SMSC rejects get the second channel, through contact control;
    the others do not."""
    ok = [f"86139000000{i}" for i in range(5)]
    bad = [f"{FAIL}{i}" for i in range(3)]
    write(tmp_path, ok + bad, 'on = ["rejected", "undeliverable"]')
    plugin = IvrPlugin()
    async with open_smsc_simulator(receipt_delay=None, reject_prefixes={FAIL: 0x45}) as smsc:
        async with open_gateway(tmp_path, config(tmp_path, smsc), plugins=(("test_ivr_channel", plugin),)) as gw:
            await wait_until(lambda: plugin.channel and len(plugin.channel.reached) == 3, within=30)
            await trio.sleep(1.5)  # nothing more comes
            reached = plugin.channel.reached
            assert sorted(m for m, _ in reached) == sorted(bad)
            assert all(cid.startswith("fb1-serial-") for _, cid in reached)
            assert {s.destination_addr for s in smsc.simulator.submitted} >= set(ok)
            report = await gw.command("status")
            assert report.data is not None


async def test_no_answer_within_the_time_falls_back_an_answer_stops_it(tmp_path):
    """With after = 1s: a subscriber who answered "Y" gets nothing more; one who did not gets
    the second channel."""
    numbers = ["8613900000001", "8613900000002"]
    write(tmp_path, numbers, 'after = "1s"\non = []', extra="[reply]")
    plugin = IvrPlugin()
    async with open_smsc_simulator(receipt_delay=None) as smsc:
        async with open_gateway(
            tmp_path,
            config(tmp_path, smsc, extra='[twoway]\nservice_code = "10658000"'),
            plugins=(("test_ivr_channel", plugin),),
        ) as gw:
            sim = smsc.simulator
            await wait_until(lambda: len(sim.submitted) == 2, within=30)
            await sim.send_mo(numbers[0], "106580000001", "Y")
            await wait_until(lambda: plugin.channel and plugin.channel.reached, within=30)
            await trio.sleep(1.5)
            assert [m for m, _ in plugin.channel.reached] == [numbers[1]]
            ledger = gw.gateway.ledger.writer
            rows = await ledger.run(
                lambda c: c.execute(
                    "SELECT msisdn, event FROM contact_ledger WHERE channel = 'ivr'"
                ).fetchall()
            )
            assert (numbers[1], "allowed") in rows and all(m == numbers[1] for m, _ in rows)
