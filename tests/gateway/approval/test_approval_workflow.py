"""Approval workflow: chains by class and level, counter-signing, delegation, channel
confirmation, reject/send back, and approval state across a restart."""

from __future__ import annotations

import attrs
import pytest

from gateway.approval.book import ApprovalBook, ApprovalError
from gateway.approval.chains import ChainConfig, select_chain
from gateway.approval.model import ApprovalState, Decision, StepKind
from gateway.staff.directory import StaffDirectory
from gateway.staff.sync import read_full_file
from gateway.store import SqliteWorker, open_sqlite
from tests.gateway.staff.staff_data import ROLES, write_full_file

SUMMARY = {
    "owner": "author",
    "target_count": 1200,
    "start_date": "2026-12-01",
    "end_date": "2026-12-03",
}


async def open_parts(tmp_path, *, sync=True):
    staff = await StaffDirectory.open(
        SqliteWorker(open_sqlite(tmp_path / "staff.sqlite", synchronous="normal")), ROLES
    )
    if sync:
        orgs, accounts = read_full_file(write_full_file(tmp_path / "4a.json"))
        await staff.apply_full(orgs, accounts, actor="test")
    book = await ApprovalBook.open(
        SqliteWorker(open_sqlite(tmp_path / "approvals.sqlite", synchronous="normal")), staff
    )
    return staff, book


def chain(staff, owner_org, *, cls="marketing", count=10, **config):
    steps = select_chain(
        campaign_class=cls,
        owner_org=owner_org,
        target_count=count,
        orgs=staff.orgs,
        config=ChainConfig(**config),
    )
    return [(s.kind.value, s.org, s.required) for s in steps]


async def test_chain_by_level_class_and_size(tmp_path):
    """County -> city, city -> province; large lists and listed classes climb one more level."""
    staff, _ = await open_parts(tmp_path)
    assert chain(staff, "hp-mkt", channel_confirmation=False) == [("approve", "gz", 1)]
    assert chain(staff, "gz-mkt", channel_confirmation=False) == [("approve", "gd", 1)]
    assert chain(staff, "gd-mkt", channel_confirmation=False) == [("approve", "gd", 1)]
    assert chain(staff, "hp-mkt", count=500_000, large_target_count=100_000) == [
        ("approve", "gz", 1),
        ("approve", "gd", 1),
        ("channel", "", 1),
    ]
    assert chain(
        staff,
        "hp-mkt",
        cls="finance",
        extra_level_classes=frozenset({"finance"}),
        countersign={"finance": 2},
        filing_classes=frozenset({"finance"}),
    ) == [("approve", "gz", 2), ("approve", "gd", 2), ("filing", "", 1), ("channel", "", 1)]
    # an owner outside the directory starts at the province
    assert chain(staff, "nowhere", channel_confirmation=False) == [("approve", "gd", 1)]


async def open_county_approval(staff, book, **config):
    steps = select_chain(
        campaign_class="marketing",
        owner_org="hp-mkt",
        target_count=1200,
        orgs=staff.orgs,
        config=ChainConfig(**config),
    )
    return await book.open_approval(
        campaign_id="c1",
        kind="start",
        definition={"id": "c1"},
        origin="test",
        steps=steps,
        summary=SUMMARY,
    )


async def test_countersign_needs_distinct_approvers_of_the_right_org(tmp_path):
    """With two signatures required, one signer does not advance the step; outsiders can't sign."""
    staff, book = await open_parts(tmp_path)
    approval = await open_county_approval(
        staff, book, countersign={"marketing": 2}, channel_confirmation=False
    )
    assert book.approvers(approval) == ["city1", "city2"]
    with pytest.raises(ApprovalError, match="not an approver of organisation gz"):
        await book.decide(approval.id, "prov1", Decision.APPROVE)
    with pytest.raises(ApprovalError, match="owner cannot approve"):
        await book.decide(approval.id, "author", Decision.APPROVE)
    with pytest.raises(ApprovalError, match="lacks the permission"):
        await book.decide(approval.id, "helper", Decision.APPROVE)
    await book.decide(approval.id, "city1", Decision.APPROVE)
    assert approval.state is ApprovalState.PENDING and approval.step == 0
    assert book.approvers(approval) == ["city2"]
    with pytest.raises(ApprovalError, match="already signed"):
        await book.decide(approval.id, "city1", Decision.APPROVE)
    await book.decide(approval.id, "city2", Decision.APPROVE, comment="ok")
    assert approval.state is ApprovalState.APPROVED
    assert book.is_approved("c1", approval.definition_hash)


async def test_delegation(tmp_path):
    """An approver delegates its signature; the delegate signs on its behalf, it no longer can."""
    staff, book = await open_parts(tmp_path)
    approval = await open_county_approval(staff, book, channel_confirmation=False)
    await book.delegate(approval.id, "city1", "helper")
    assert book.approvers(approval) == ["city2", "helper"]
    with pytest.raises(ApprovalError, match="delegated this step to helper"):
        await book.decide(approval.id, "city1", Decision.APPROVE)
    with pytest.raises(ApprovalError, match="cannot delegate further"):
        await book.delegate(approval.id, "helper", "city2")
    await book.decide(approval.id, "helper", Decision.APPROVE)
    assert approval.state is ApprovalState.APPROVED
    assert (approval.signs[0].actor, approval.signs[0].on_behalf) == ("helper", "city1")


async def test_delegate_loses_the_right_when_the_delegator_is_disabled(tmp_path):
    """A delegate signs only while the delegating approver is enabled and holds the role."""
    staff, book = await open_parts(tmp_path)
    approval = await open_county_approval(staff, book, channel_confirmation=False)
    await book.delegate(approval.id, "city1", "helper")
    city1 = staff.accounts["city1"]
    await staff.put_account(
        attrs.evolve(city1, enabled=False), actor="4a-push", action="staff.account_modify"
    )
    with pytest.raises(ApprovalError, match="lacks the permission"):
        await book.decide(approval.id, "helper", Decision.APPROVE)


async def test_channel_confirmation_must_match_count_and_dates(tmp_path):
    """The channel owner's confirmation is refused unless count and dates match the campaign."""
    staff, book = await open_parts(tmp_path)
    approval = await open_county_approval(staff, book)
    await book.decide(approval.id, "city1", Decision.APPROVE)
    assert approval.current().kind is StepKind.CHANNEL
    assert book.approvers(approval) == ["chan"]
    dates = {"start_date": "2026-12-01", "end_date": "2026-12-03"}
    with pytest.raises(ApprovalError, match=r"target count \(1000\) differs"):
        await book.decide(approval.id, "chan", Decision.APPROVE, detail={"count": 1000, **dates})
    with pytest.raises(ApprovalError, match="dates"):
        await book.decide(
            approval.id, "chan", Decision.APPROVE, detail={"count": 1200, **dates, "end_date": "x"}
        )
    with pytest.raises(ApprovalError, match=r"lacks the permission channel\.confirm"):
        await book.decide(approval.id, "city2", Decision.APPROVE, detail={"count": 1200, **dates})
    await book.decide(approval.id, "chan", Decision.APPROVE, detail={"count": "1200", **dates})
    assert approval.state is ApprovalState.APPROVED


async def test_reject_and_send_back_need_a_comment(tmp_path):
    """Reject and send back end the approval, with the comment recorded."""
    staff, book = await open_parts(tmp_path)
    approval = await open_county_approval(staff, book)
    with pytest.raises(ApprovalError, match="needs a comment"):
        await book.decide(approval.id, "city1", Decision.SEND_BACK)
    await book.decide(approval.id, "city1", Decision.SEND_BACK, comment="fix the text")
    assert approval.state is ApprovalState.RETURNED and approval.signs[-1].comment == "fix the text"
    with pytest.raises(ApprovalError, match="returned, not waiting"):
        await book.decide(approval.id, "city2", Decision.APPROVE)
    again = await book.open_approval(
        campaign_id="c1",
        kind="start",
        definition={"id": "c1"},
        origin="t",
        steps=approval.steps,
        summary=SUMMARY,
    )
    assert again.id != approval.id  # a returned definition may be submitted again


async def test_approval_state_survives_a_restart(tmp_path):
    """Signatures, delegations, the current step and the state are all read back after reopening."""
    staff, book = await open_parts(tmp_path)
    approval = await open_county_approval(staff, book, countersign={"marketing": 2})
    await book.decide(approval.id, "city1", Decision.APPROVE, comment="fine")
    await book.delegate(approval.id, "city2", "helper")
    _, reopened = await open_parts(tmp_path, sync=False)
    again = reopened.get(approval.id)
    assert again is not None and again.to_json() == approval.to_json()
    await reopened.decide(approval.id, "helper", Decision.APPROVE)
    assert again.current().kind is StepKind.CHANNEL
    await reopened.decide(
        approval.id,
        "chan",
        Decision.APPROVE,
        detail={"count": 1200, "start_date": "2026-12-01", "end_date": "2026-12-03"},
    )
    assert again.state is ApprovalState.APPROVED


async def test_watchers_hear_waiting_and_closed(tmp_path):
    """Watchers hear each step that waits (with its approvers) and each that closes."""
    staff, book = await open_parts(tmp_path)
    events = []
    book.subscribe(lambda e: events.append((e.kind, e.step, e.approvers)))
    approval = await open_county_approval(staff, book)
    await book.decide(approval.id, "city2", Decision.APPROVE)
    assert events == [
        ("waiting", 0, ("city1", "city2")),
        ("closed", 0, ()),
        ("waiting", 1, ("chan",)),
    ]


async def test_a_new_definition_withdraws_the_pending_approval(tmp_path):
    """Opening an approval for a new definition withdraws the pending one of the old definition."""
    staff, book = await open_parts(tmp_path)
    events = []
    book.subscribe(lambda e: events.append((e.kind, e.approval.id)))
    old = await open_county_approval(staff, book)
    new = await book.open_approval(
        campaign_id="c1",
        kind="start",
        definition={"id": "c1", "text": "changed"},
        origin="t",
        steps=old.steps,
        summary=SUMMARY,
    )
    assert old.state is ApprovalState.WITHDRAWN and new.state is ApprovalState.PENDING
    assert ("closed", old.id) in events
    with pytest.raises(ApprovalError, match="withdrawn, not waiting"):
        await book.decide(old.id, "city1", Decision.APPROVE)
    _, reopened = await open_parts(tmp_path, sync=False)
    assert reopened.get(old.id).state is ApprovalState.WITHDRAWN
