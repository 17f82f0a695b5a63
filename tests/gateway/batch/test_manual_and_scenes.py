"""Manual trigger, test send and campaign files from scenes, in a real gateway sending to the
SMSC simulator."""

from __future__ import annotations

import shutil
import textwrap
import types
from pathlib import Path

import pytest
import trio

from gateway.errors import AdminCommandError
from gateway.model import CampaignState
from gateway.testing import open_gateway, open_smsc_simulator, wait_until

ROOT = Path(__file__).resolve().parents[3]
TESTERS = ["13900000101", "+8613900000102"]


def write_campaign(directory: Path, state: str) -> None:
    (directory / "campaigns").mkdir(exist_ok=True)
    (directory / "campaigns" / "offer.toml").write_text(
        textwrap.dedent(
            f"""\
            id = "offer"
            name = "Data offer"
            kind = "realtime"
            channels = ["sms"]
            initial_state = "{state}"
            [content.sms]
            text = "{{campaign_name}}: 10GB for 10 yuan"
            [trigger]
            events = ["power_on"]
            """
        ),
        encoding="utf-8",
    )


def config(directory: Path, smsc) -> str:
    return textwrap.dedent(
        f"""
        [campaigns]
        directory = "{directory / "campaigns"}"
        scenes_directory = "{ROOT / "etc" / "scenes"}"
        areas_file = "{ROOT / "etc" / "areas.toml"}"
        test_numbers = {TESTERS!r}

        [contact.caps.one_a_day]
        scope = "channel"
        window = "day"
        limit = 1

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


async def test_test_send_before_approval_outside_caps_not_counted(tmp_path):
    """A draft's content goes to the test numbers, twice in a row past a 1-a-day cap, and
    nothing is counted: a real contact to a tester afterwards is still allowed."""
    write_campaign(tmp_path, "draft")
    async with open_smsc_simulator(receipt_delay=None) as smsc:
        async with open_gateway(tmp_path, config(tmp_path, smsc)) as gw:
            sim = smsc.simulator
            assert gw.gateway.campaigns.get("offer").campaign.state is CampaignState.DRAFT
            reply = await gw.command("campaign", "test-send", "offer")
            assert reply.data["queued"] == 2
            assert reply.data["content"] == {"text": "Data offer: 10GB for 10 yuan"}
            reply = await gw.command("campaign", "test-send", "offer")
            assert reply.data["queued"] == 2  # a second test send is new contacts
            try:
                await wait_until(lambda: len(sim.submitted) >= 4, within=10)
            except trio.TooSlowError:  # seen once beside a second full run: say where they are
                outbox = (await gw.command("outbox")).data
                raise AssertionError(f"{len(sim.submitted)} of 4 at the SMSC; {outbox}") from None
            assert len(sim.submitted) == 4
            assert sorted({s.destination_addr for s in sim.submitted}) == [
                "8613900000101",
                "8613900000102",
            ]
            with pytest.raises(AdminCommandError, match="approved or running"):
                await gw.command("campaign", "trigger", "offer", "13900000101")
            await gw.command("campaigns", "submit", "offer")
            await gw.command("campaigns", "approve", "offer")
            reply = await gw.command("campaign", "trigger", "offer", "13900000101")
            assert reply.data["decided"] == {"allowed": 1}  # the test sends did not count
            report = await gw.command("campaign", "report", "offer")
            assert report.data["allowed"] == 1


async def test_manual_trigger_one_and_a_file_through_contact_control(tmp_path):
    """A manual trigger for one subscriber and for a file goes through contact control: the
    cap suppresses a second contact the same day."""
    write_campaign(tmp_path, "running")
    (tmp_path / "list.txt").write_text("13900000201\n13900000202\n13900000201\n")
    async with open_smsc_simulator(receipt_delay=None) as smsc:
        async with open_gateway(tmp_path, config(tmp_path, smsc)) as gw:
            sim = smsc.simulator
            reply = await gw.command("campaign", "trigger", "offer", "+8613900000201")
            assert reply.data["decided"] == {"allowed": 1}
            reply = await gw.command(
                "campaign", "trigger", "offer", "--file", str(tmp_path / "list.txt")
            )
            assert reply.data["subscribers"] == 2
            assert reply.data["decided"] == {"allowed": 1, "suppressed": 1}
            await wait_until(lambda: len(sim.submitted) == 2, within=10)
            with pytest.raises(AdminCommandError, match="not a usable MSISDN"):
                await gw.command("campaign", "trigger", "offer", "12ab")


async def test_two_triggers_in_one_millisecond_are_two_contacts(tmp_path, monkeypatch):
    """Two manual triggers of one subscriber in the same millisecond are two contacts: the
    second is decided (the 1-a-day cap suppresses it), not taken for the first again
    ("allowed" as a duplicate; seen once beside a second full run)."""
    import gateway.campaigns.admin as admin

    monkeypatch.setattr(admin, "time", types.SimpleNamespace(time=lambda: 1_796_000_000.0))
    write_campaign(tmp_path, "running")
    async with open_smsc_simulator(receipt_delay=None) as smsc:
        async with open_gateway(tmp_path, config(tmp_path, smsc)) as gw:
            first = await gw.command("campaign", "trigger", "offer", "13900000301")
            second = await gw.command("campaign", "trigger", "offer", "13900000301")
            assert first.data["decided"] == {"allowed": 1}
            assert second.data["decided"] == {"suppressed": 1}
            await wait_until(lambda: len(smsc.simulator.submitted) >= 1, within=10)
            assert [s.destination_addr for s in smsc.simulator.submitted] == ["8613900000301"]


async def test_campaign_new_from_every_scene(tmp_path):
    """Each scene of etc/scenes becomes a draft campaign file; the realtime ones load as they
    are, the batch one names what to edit (its target list)."""
    write_campaign(tmp_path, "running")
    scenes = sorted(p.stem for p in (ROOT / "etc" / "scenes").glob("*.toml"))
    assert "bill_day_batch" in scenes and len(scenes) >= 6
    async with open_smsc_simulator(receipt_delay=None) as smsc:
        async with open_gateway(tmp_path, config(tmp_path, smsc)) as gw:
            for scene in scenes:
                reply = await gw.command("campaign", "new", "--scene", scene, "--id", f"my-{scene}")
                path = Path(reply.data["file"])
                assert path.read_text().count(f'id = "my-{scene}"') == 1
                assert 'initial_state = "draft"' in path.read_text()
                if scene == "bill_day_batch":
                    assert any("target.list" in p for p in reply.data["to_edit"])
                else:
                    assert reply.data["to_edit"] == [], reply.data
            with pytest.raises(AdminCommandError, match="exists already"):
                await gw.command("campaign", "new", "--scene", scenes[0], "--id", f"my-{scenes[0]}")
            with pytest.raises(AdminCommandError, match="no scene"):
                await gw.command("campaign", "new", "--scene", "nope")
            await gw.command("campaigns", "reload")
            store = gw.gateway.campaigns
            loaded = [s for s in scenes if store.get(f"my-{s}") is not None]
            assert len(loaded) == len(scenes) - 1
            assert all(store.get(f"my-{s}").campaign.state is CampaignState.DRAFT for s in loaded)
    shutil.rmtree(tmp_path / "campaigns")


async def test_test_send_needs_the_test_send_permission_when_staff_is_configured(tmp_path):
    """With [staff]: an account without campaign.test_send is refused (nothing sent), one with
    it sends; both uses are in the audit trail."""
    from tests.gateway.staff.staff_data import STAFF_TOML, write_full_file

    write_campaign(tmp_path, "draft")
    full = write_full_file(tmp_path / "4a.json")
    async with open_smsc_simulator(receipt_delay=None) as smsc:
        extra = config(tmp_path, smsc) + STAFF_TOML.format(full_file=full)
        async with open_gateway(tmp_path, extra) as gw:
            with pytest.raises(AdminCommandError, match=r"campaign\.test_send"):
                await gw.command("campaign", "test-send", "offer", "--as", "city1")
            reply = await gw.command("campaign", "test-send", "offer", "--as", "author")
            assert reply.data["queued"] == 2
            await wait_until(lambda: len(smsc.simulator.submitted) == 2, within=10)
            trail = await gw.gateway.staff.audit_trail(subject="offer")
            uses = {(r["actor"], r["action"]) for r in trail}
            assert {("city1", "campaign.test_send"), ("author", "campaign.test_send")} <= uses
