"""Submit answers and receipts in any order: every ledger transition once, nothing lost.

The SMS channel reports a submit answer (``OutboxQueue.report_submitted``) and the SMSC's
receipts (``OutboxQueue.settle_receipt``) concurrently; a receipt may overtake the answer, come
twice, or share a group commit with it. Whatever the interleaving, the contact ledger holds
``allowed``, then ``committed`` once, then a refund once if the final state asks for one, and
a reload of the ledger gives the same counters as the memory.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from outbox_stack import open_stack, request

from gateway.contact.sqlite_backend import open_sqlite_contact_control
from gateway.model import Delivery, DeliveryState

TABLE = {"refund_on": ["undeliverable"]}
RANK = {"delivered": 0, "expired": 2, "undeliverable": 3}


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[list[str]], list[list[tuple[str, int, int]]]]:
    """Per message, the receipt state of each part; and the events (kind, message, part) in
    groups: a group's events run concurrently (they share a commit), groups one after another."""
    n = draw(st.integers(1, 3))
    parts = [
        draw(st.lists(st.sampled_from(sorted(RANK)), min_size=1, max_size=3)) for _ in range(n)
    ]
    events = [("submit", m, 0) for m in range(n)]
    for m, states in enumerate(parts):
        for k in range(len(states)):
            events.append(("receipt", m, k))
            if draw(st.booleans()):
                events.append(("receipt", m, k))  # the SMSC repeats it
    order = draw(st.permutations(events))
    groups: list[list[tuple[str, int, int]]] = []
    for ev in order:
        if not groups or draw(st.booleans()):
            groups.append([])
        groups[-1].append(ev)
    return parts, groups


async def _run(parts: list[list[str]], groups: list[list[tuple[str, int, int]]], db: Path) -> None:
    async with open_stack(db.parent, TABLE, db=db, run_scheduler=False) as s:
        reqs = [request(f"c{m}", msisdn=f"8613800000{m:03d}") for m in range(len(parts))]
        decisions = await s.control.decide_and_queue(reqs, s.outbox)
        assert all(d.allowed for d in decisions)
        async with s.outbox.open_queue("sms") as q:
            taken = await q.take(10, max_wait=1)
            assert {m.contact_id for m in taken} == {r.contact_id for r in reqs}
            await q.mark_sending([m.contact_id for m in taken])

            async def event(kind: str, m: int, k: int) -> None:
                keys = [f"main/{m}-{i}" for i in range(len(parts[m]))]
                if kind == "submit":
                    await q.report_submitted(
                        Delivery(
                            contact_id=f"c{m}",
                            channel="sms",
                            state=DeliveryState.SUBMITTED,
                            at=time.time(),
                            message_id=keys[0],
                        ),
                        keys,
                    )
                else:
                    await q.settle_receipt(keys[k], parts[m][k], error="x")

            for group in groups:
                async with trio.open_nursery() as nursery:
                    for ev in group:
                        nursery.start_soon(event, *ev)
        for m, states in enumerate(parts):
            cid, final = f"c{m}", max(states, key=RANK.__getitem__)
            events = [r["event"] for r in reversed(await s.control.ledger.query(contact_id=cid))]
            refunded = final in TABLE["refund_on"]
            assert events == ["allowed", "committed"] + (["refunded"] if refunded else []), (
                cid,
                states,
                events,
            )
            entry = await s.outbox.show(cid)
            assert entry["state"] == final, (cid, entry)
        memory = {m: await s.control.current_contacts(reqs[m].msisdn) for m in range(len(parts))}
    async with open_sqlite_contact_control(s.control.config, db) as again:
        for m, live in memory.items():
            reloaded = await again.current_contacts(reqs[m].msisdn)
            assert [(c["contact_id"], c["state"]) for c in reloaded] == [
                (c["contact_id"], c["state"]) for c in live
            ]
            assert len(live) == (0 if max(parts[m], key=RANK.__getitem__) == "undeliverable" else 1)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(scenarios())
def test_any_order_of_submit_answer_and_receipts_records_each_transition_once(
    scenario: tuple[list[list[str]], list[list[tuple[str, int, int]]]],
) -> None:
    """Any interleaving of submit answers, receipts (early, repeated, multipart) gives each
    ledger transition once, the right final state, and memory equal to the reloaded ledger."""
    parts, groups = scenario
    with tempfile.TemporaryDirectory() as d:
        trio.run(_run, parts, groups, Path(d) / "gateway.sqlite")
