"""One write path: a decision and its entry, a submit and its commit, each one transaction."""

from __future__ import annotations

import pytest
from outbox_stack import request

from gateway.errors import StoreError
from gateway.model import Delivery, DeliveryState

CAP1 = {"caps": {"sms_day": {"channel": "sms", "limit": 1, "window": "day", "scope": "channel"}}}


async def _count(writer, sql):
    return (await writer.run(lambda c: c.execute(sql).fetchone()))[0]


async def test_decisions_and_their_entries_commit_in_one_transaction(open_stack) -> None:
    """decide_and_queue writes ledger rows and outbox entries in a single commit."""
    async with open_stack(CAP1, run_scheduler=False) as s:
        writer = s.outbox.writer
        before = writer.commits
        reqs = [request(msisdn=f"86138000000{i:02d}") for i in range(20)]
        reqs.append(request(msisdn="8613800000000"))  # a second one for the first: capped
        decisions = await s.control.decide_and_queue(reqs, s.outbox)
        assert [d.outcome for d in decisions].count("allowed") == 20
        assert writer.commits - before == 1
        assert await _count(writer, "SELECT count(*) FROM outbox_entries") == 20
        assert await _count(writer, "SELECT count(*) FROM contact_ledger") == 21
        assert s.outbox.depth("sms") == 20


async def test_a_failed_commit_leaves_neither_decision_nor_entry(open_stack, monkeypatch) -> None:
    """When the shared transaction fails, nothing is queued and nothing stays reserved."""
    from gateway.outbox import store

    def disk_full(conn, rows):
        raise OSError(28, "No space left on device")

    async with open_stack(CAP1, run_scheduler=False) as s:
        monkeypatch.setattr(store, "insert_entries", disk_full)
        with pytest.raises(StoreError, match=r"gateway\.sqlite"):
            await s.control.decide_and_queue([request("x")], s.outbox)
        monkeypatch.undo()
        writer = s.outbox.writer
        assert await _count(writer, "SELECT count(*) FROM contact_ledger") == 0
        assert await _count(writer, "SELECT count(*) FROM outbox_entries") == 0
        # the reservation was dropped: the cap of 1 still has room for the same subscriber
        (again,) = await s.control.decide_and_queue([request("y")], s.outbox)
        assert again.outcome == "allowed"


async def test_a_submit_result_and_its_commit_are_one_transaction(open_stack) -> None:
    """report_delivery(submitted) stores the state and commits the reservation in one commit."""
    async with open_stack(CAP1, run_scheduler=False) as s:
        await s.control.decide_and_queue([request("m")], s.outbox)
        async with s.outbox.open_queue("sms") as q:
            await q.take(1)
            await q.mark_sending(["m"])
        writer = s.outbox.writer
        before = writer.commits
        await s.gateway.report_delivery(
            Delivery(contact_id="m", channel="sms", state=DeliveryState.SUBMITTED, at=1.0)
        )
        assert writer.commits - before == 1
        assert (await s.outbox.counts("sms")) == {"submitted": 1}
        rows = await s.control.ledger.query(contact_id="m")
        assert [r["event"] for r in rows] == ["committed", "allowed"]
        assert (await s.control.current_contacts("8613800000000"))[0]["state"] == "committed"
        assert [d.state for d in s.reported] == [DeliveryState.SUBMITTED]


async def test_a_receipt_and_its_reconciliation_are_one_transaction(open_stack) -> None:
    """settle_receipt stores the final state and refunds the contact in one commit, durably."""
    async with open_stack(CAP1, run_scheduler=False) as s:
        await s.control.decide_and_queue([request("m")], s.outbox)
        async with s.outbox.open_queue("sms") as q:
            await q.take(1)
            await q.mark_sending(["m"])
            await q.map_message_ids("m", ["id1"])
            await s.gateway.report_delivery(
                Delivery(contact_id="m", channel="sms", state=DeliveryState.SUBMITTED, at=1.0)
            )
            writer = s.outbox.writer
            before = writer.commits
            result = await q.settle_receipt("id1", "undeliverable", error="UNDELIV err:1")
            assert result == ("m", "undeliverable")
            assert writer.commits - before == 1
        assert (await s.outbox.counts("sms")) == {"undeliverable": 1}
        rows = await s.control.ledger.query(contact_id="m")
        assert (rows[0]["event"], rows[0]["reason"]) == ("refunded", "refund.undeliverable")
        assert await s.control.current_contacts("8613800000000") == []  # refunded in memory too
        assert [d.state for d in s.reported][-1] is DeliveryState.UNDELIVERABLE
        assert s.reported[-1].error == "UNDELIV err:1"
    # and after a restart the ledger gives the same answer
    async with open_stack(CAP1, run_scheduler=False) as s:
        assert await s.control.current_contacts("8613800000000") == []
