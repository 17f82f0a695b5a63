"""In a running gateway: a campaign never starts, and a change to a running one never applies,
without its approvals; decisions through ``gatewayctl approvals`` are audited."""

from __future__ import annotations

import pytest

from gateway.errors import AdminCommandError
from gateway.model import CampaignState
from gateway.testing.gateway import open_gateway, wait_until
from tests.gateway.staff.staff_data import STAFF_TOML, write_full_file

CAMPAIGN = """id = "{id}"
name = "county offer"
owner = "author"
channels = ["sms"]
kind = "batch"
{extra}
[content.sms]
text = "{text}"
"""


def config(tmp_path, *, required=True):
    full = write_full_file(tmp_path / "4a.json")
    return (
        STAFF_TOML.format(full_file=full)
        + f"""
[approval]
required = {"true" if required else "false"}
tick = "0.1s"
[campaigns]
directory = "{tmp_path / "campaigns"}"
"""
    )


def write_campaign(tmp_path, id="c1", extra="", text="hello"):
    directory = tmp_path / "campaigns"
    directory.mkdir(exist_ok=True)
    (directory / f"{id}.toml").write_text(CAMPAIGN.format(id=id, extra=extra, text=text))


async def test_campaign_starts_only_after_its_chain(tmp_path):
    """A pending campaign is refused approve by hand; the chain's last signature approves it."""
    write_campaign(tmp_path)
    async with open_gateway(tmp_path, config(tmp_path)) as gw:
        store = gw.gateway.campaigns
        approvals = await wait_until(lambda: gw.gateway.approvals.pending())
        (approval,) = approvals
        assert [s.kind.value for s in approval.steps] == ["approve", "channel"]
        with pytest.raises(AdminCommandError, match="approval chain"):
            await gw.command("campaigns", "approve", "c1", "--by", "someone")
        await gw.command("approvals", "approve", approval.id, "--as", "city1")
        with pytest.raises(AdminCommandError, match="differs"):
            await gw.command("approvals", "confirm", approval.id, "--count", "5", "--as", "chan")
        assert store.get("c1").campaign.state is CampaignState.PENDING_APPROVAL
        reply = await gw.command(
            "approvals",
            *("confirm", approval.id, "--count", "0", "--start-date", "-", "--end-date", "-"),
            "--as",
            "chan",
        )
        assert reply.data["state"] == "approved"
        assert store.get("c1").campaign.state is CampaignState.APPROVED
        await store.activate_due(1e10 - 1)
        assert store.get("c1").campaign.state is CampaignState.RUNNING
        history = await gw.command("approvals", "history", "c1", "--as", "admin")
        assert history.data["approvals"][0]["state"] == "approved"
        trail = await gw.gateway.staff.audit_trail(subject=approval.id)
        assert [(t["actor"], t["action"], t["outcome"]) for t in trail] == [
            ("city1", "approvals.approve", "ok"),
            ("chan", "approvals.confirm", "refused"),
            ("chan", "approvals.confirm", "ok"),
        ]


async def test_running_campaign_file_and_changes_are_held(tmp_path):
    """A file that would run at once is held until approved; so is a later change to it."""
    write_campaign(tmp_path, extra='initial_state = "running"')
    async with open_gateway(tmp_path, config(tmp_path)) as gw:
        store, book = gw.gateway.campaigns, gw.gateway.approvals
        assert store.get("c1") is None  # held, not stored
        (approval,) = book.pending()
        await book.decide(approval.id, "city1", approval_decision())
        await book.decide(
            approval.id,
            "chan",
            approval_decision(),
            detail={"count": 0, "start_date": None, "end_date": None},
        )
        assert store.get("c1").campaign.state is CampaignState.RUNNING
        write_campaign(tmp_path, extra='initial_state = "running"', text="changed")
        result = await gw.command("campaigns", "reload")
        assert result.data["held"] == 1
        assert store.get("c1").raw["content"]["sms"]["text"] == "hello"  # the change waits
        (change,) = book.pending()
        assert change.kind == "change"
        await book.decide(change.id, "city2", approval_decision())
        await book.decide(
            change.id,
            "chan",
            approval_decision(),
            detail={"count": 0, "start_date": None, "end_date": None},
        )
        assert store.get("c1").raw["content"]["sms"]["text"] == "changed"
        assert store.get("c1").campaign.state is CampaignState.RUNNING


async def test_approval_state_survives_a_daemon_restart(tmp_path):
    """A half-signed approval is still half-signed after the daemon restarts; the campaign waits."""
    write_campaign(tmp_path)
    async with open_gateway(tmp_path, config(tmp_path)) as gw:
        (approval,) = await wait_until(lambda: gw.gateway.approvals.pending())
        await gw.command("approvals", "approve", approval.id, "--as", "city1")
    async with open_gateway(tmp_path, config(tmp_path)) as gw:
        again = gw.gateway.approvals.get(approval.id)
        assert again.step == 1 and again.signs[0].actor == "city1"
        assert len(gw.gateway.approvals.pending()) == 1  # no second approval opened
        assert gw.gateway.campaigns.get("c1").campaign.state is CampaignState.PENDING_APPROVAL
        pending = await gw.command("approvals", "pending", "--as", "admin")
        assert pending.data["pending"][0]["approvers"] == ["chan"]


async def test_disabled_account_cannot_act(tmp_path):
    """An account disabled in 4A is refused by every command, and the refusal is audited."""
    write_campaign(tmp_path)
    async with open_gateway(tmp_path, config(tmp_path)) as gw:
        (approval,) = await wait_until(lambda: gw.gateway.approvals.pending())
        staff = gw.gateway.staff
        import attrs

        await staff.put_account(
            attrs.evolve(staff.accounts["city1"], enabled=False), actor="4a-push", action="x"
        )
        with pytest.raises(AdminCommandError, match="disabled"):
            await gw.command("approvals", "approve", approval.id, "--as", "city1")
        with pytest.raises(AdminCommandError, match="--as ACCOUNT"):
            await gw.command("approvals", "pending")
        trail = await staff.audit_trail(actor="city1")
        assert trail[-1]["outcome"] == "denied"


def approval_decision():
    from gateway.approval.model import Decision

    return Decision.APPROVE


async def test_people_act_on_campaigns_as_permitted_staff(tmp_path):
    """Pause, resume and cancel by hand need a 4A account with the permission, audited."""
    write_campaign(tmp_path)
    async with open_gateway(tmp_path, config(tmp_path)) as gw:
        (approval,) = await wait_until(lambda: gw.gateway.approvals.pending())
        await gw.command("approvals", "approve", approval.id, "--as", "city1")
        await gw.command(
            "approvals",
            "confirm",
            approval.id,
            "--count",
            "0",
            "--start-date",
            "-",
            "--end-date",
            "-",
            "--as",
            "chan",
        )
        store = gw.gateway.campaigns
        await store.activate_due(1e10 - 1)
        with pytest.raises(AdminCommandError, match="no staff account 'gatewayctl'"):
            await gw.command("campaigns", "pause", "c1")
        with pytest.raises(AdminCommandError, match="lacks the permission"):
            await gw.command("campaigns", "pause", "c1", "--by", "author")
        await gw.command("campaigns", "cancel", "c1", "--by", "city2")
        assert store.get("c1").campaign.state is CampaignState.CANCELLED
        trail = await gw.gateway.staff.audit_trail(subject="c1")
        assert [(t["actor"], t["action"], t["outcome"]) for t in trail] == [
            ("gatewayctl", "campaigns.pause", "denied"),
            ("author", "campaigns.pause", "denied"),
            ("city2", "campaigns.cancel", "ok"),
        ]


async def test_a_refused_change_is_not_asked_again_on_reload(tmp_path):
    """A rejected change stays held through reloads without a new approval; a newer one asks."""
    write_campaign(tmp_path, extra='initial_state = "running"')
    async with open_gateway(tmp_path, config(tmp_path)) as gw:
        store, book = gw.gateway.campaigns, gw.gateway.approvals
        (approval,) = book.pending()
        await book.decide(approval.id, "city1", approval_decision())
        done = {"count": 0, "start_date": None, "end_date": None}
        await book.decide(approval.id, "chan", approval_decision(), detail=done)
        write_campaign(tmp_path, extra='initial_state = "running"', text="changed")
        await gw.command("campaigns", "reload")
        (change,) = book.pending()
        from gateway.approval.model import Decision

        await book.decide(change.id, "city2", Decision.REJECT, comment="no")
        assert (await gw.command("campaigns", "reload")).data["held"] == 1
        assert book.pending() == []
        assert store.get("c1").raw["content"]["sms"]["text"] == "hello"
        write_campaign(tmp_path, extra='initial_state = "running"', text="changed again")
        await gw.command("campaigns", "reload")
        assert len(book.pending()) == 1
