"""Batch campaigns in a real gateway (SQLite contact control, outbox, SMS channel) sending to
the SMSC simulator over loopback TCP."""

from __future__ import annotations

import textwrap
from pathlib import Path

import trio

from gateway.model import CampaignState
from gateway.testing import open_gateway, open_smsc_simulator, wait_until


def write_targets(path: Path, n: int, *, extra: str = "") -> list[str]:
    numbers = [f"86139{i:08d}" for i in range(n)]
    # national form, a duplicate and a comment: normalised and de-duplicated
    lines = [f"139{i:08d}" if i % 2 else f"+86139{i:08d}" for i in range(n)]
    path.write_text("# targets\n" + "\n".join(lines) + f"\n{lines[0]}\n{extra}", encoding="utf-8")
    return numbers


def campaign_toml(directory: Path, *, rate: float, windows: str = "", kind_extra: str = "") -> None:
    (directory / "campaigns").mkdir(exist_ok=True)
    (directory / "campaigns" / "bill.toml").write_text(
        textwrap.dedent(
            f"""\
            id = "bill"
            name = "Bill-day offer"
            kind = "batch"
            channels = ["sms"]
            initial_state = "running"
            {kind_extra}
            [batch]
            rate = {rate}
            [schedule]
            {windows}
            [target]
            list = "{directory / "targets.txt"}"
            [content.sms]
            text = "Bill day: 10GB for 10 yuan"
            """
        ),
        encoding="utf-8",
    )


def gateway_toml(directory: Path, smsc) -> str:
    return textwrap.dedent(
        f"""
        [campaigns]
        directory = "{directory / "campaigns"}"

        [plugins.sms_smpp]
        [[plugins.sms_smpp.smsc]]
        name = "sim"
        host = "{smsc.host}"
        port = {smsc.port}
        system_id = "gateway"
        password = "secret"
        window = 50
        registered_delivery = 0
        source_addr = "10086"
        """
    )


async def test_batch_paced_rate_dedup_and_progress(tmp_path):
    """Targets normalised and de-duplicated, each sent once, at the set rate: above it only
    by the token bucket's burst (a poll's worth, 20 targets: after a stall the runner may
    catch up by that much, 206.9/s at most over 600 targets) and 2 % of jitter; below it only
    by what a starved CPU costs (a second suite beside this one measured 170-194/s: the bound
    below only says it is paced, not stalled). The 2 % both ways is held by the serial pacing
    test, which has the CPU. (Beside a second full run: 204.1/s once.)"""
    numbers = write_targets(tmp_path / "targets.txt", 600)
    campaign_toml(tmp_path, rate=200)
    async with open_smsc_simulator(receipt_delay=None) as smsc:
        async with open_gateway(tmp_path, gateway_toml(tmp_path, smsc)) as gw:
            sim = smsc.simulator
            await wait_until(lambda: len(sim.submitted) >= 600, within=60)
            reply = await gw.command("campaign", "progress", "bill")
            await wait_until(
                lambda: gw.gateway.campaigns.get("bill").campaign.state is CampaignState.FINISHED,
                within=10,
            )
            reply = await gw.command("campaign", "progress", "bill")
    dests = [s.destination_addr for s in sim.submitted]
    assert sorted(dests) == sorted(numbers)  # once each, none skipped
    times = sorted(s.received_at for s in sim.submitted)
    rate = (len(times) - 1) / (times[-1] - times[0])
    burst = 200 * 0.1  # [plugins.batch] poll (0.1 s) at the campaign's rate
    assert 200 * 0.5 <= rate <= 200 * (len(times) - 1) / (len(times) - 1 - burst) * 1.02, rate
    data = reply.data
    assert data["targets"] == 600 and data["presented"] == 600 and data["remaining"] == 0
    assert data["decided"]["allowed"] == 600
    assert data["sent"] == 600


async def test_batch_refuses_a_bad_target_file(tmp_path):
    """One number that cannot be normalised refuses the whole file, naming its line."""
    write_targets(tmp_path / "targets.txt", 10, extra="12ab\n")
    campaign_toml(tmp_path, rate=100)
    async with open_smsc_simulator(receipt_delay=None) as smsc:
        async with open_gateway(tmp_path, gateway_toml(tmp_path, smsc)) as gw:
            store = gw.gateway.campaigns
            assert store.get("bill") is None
            problems = [str(p) for p in store.problems]
            assert any("line 13" in p and "target.list" in p for p in problems), problems
            await trio.sleep(0.3)
            assert smsc.simulator.submitted == []


async def test_batch_pause_resume_and_cancel_within_a_second(tmp_path):
    """Pause stops sending within a second, resume continues, cancel stops for good."""
    write_targets(tmp_path / "targets.txt", 2000)
    campaign_toml(tmp_path, rate=100)
    async with open_smsc_simulator(receipt_delay=None) as smsc:
        async with open_gateway(tmp_path, gateway_toml(tmp_path, smsc)) as gw:
            sim = smsc.simulator
            await wait_until(lambda: len(sim.submitted) >= 50, within=30)
            await gw.command("campaigns", "pause", "bill")
            await trio.sleep(1.0)
            paused_at = len(sim.submitted)
            await trio.sleep(1.5)
            assert len(sim.submitted) == paused_at  # nothing more once a second has passed
            reply = await gw.command("campaign", "progress", "bill")
            assert reply.data["state"] == "paused"
            await gw.command("campaigns", "resume", "bill")
            await wait_until(lambda: len(sim.submitted) >= paused_at + 50, within=30)
            await gw.command("campaigns", "cancel", "bill")
            await trio.sleep(1.0)
            cancelled_at = len(sim.submitted)
            await trio.sleep(1.0)
            assert len(sim.submitted) == cancelled_at < 2000
            reply = await gw.command("campaign", "progress", "bill")
            assert reply.data["state"] == "cancelled"
    assert len({s.destination_addr for s in sim.submitted}) == len(sim.submitted)


async def test_batch_without_a_list_waits_and_says_so(tmp_path):
    """A running batch with no [target] list sends nothing, and its progress says why; once a
    list is added and the files reloaded, it runs."""
    write_targets(tmp_path / "targets.txt", 5)
    campaign_toml(tmp_path, rate=100)
    path = tmp_path / "campaigns" / "bill.toml"
    with_list = path.read_text()
    path.write_text(with_list.replace(f'list = "{tmp_path / "targets.txt"}"', ""))
    async with open_smsc_simulator(receipt_delay=None) as smsc:
        async with open_gateway(tmp_path, gateway_toml(tmp_path, smsc)) as gw:
            reply = await wait_until(lambda: _progress(gw), within=10)
            assert reply["state"] == "no_target_list" and "no [target] list" in reply["error"]
            assert smsc.simulator.submitted == []
            path.write_text(with_list)
            await gw.command("campaigns", "reload")
            await wait_until(lambda: len(smsc.simulator.submitted) == 5, within=30)


async def _progress(gw):
    try:
        return (await gw.command("campaign", "progress", "bill")).data
    except Exception:
        return None
