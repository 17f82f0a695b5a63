"""Property tests over random interleavings of concurrent requests, on both backends.

Invariants: no cap is ever exceeded, a listed subscriber is never allowed, a reservation is
refunded exactly once, and the backend's live contacts are exactly allowed minus refunded.
"""

from __future__ import annotations

import trio
import trio.lowlevel
from contact_helpers import req
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SUBSCRIBERS = ["8613900000000", "8613900000001", "8613900000002", "8613900000003"]
BLACK, GREY = SUBSCRIBERS[0], SUBSCRIBERS[1]
CHANNELS = ["sms", "mms", "wap", "ivr"]
CLASSES = ["marketing", "service", "telemarketing"]
CONFIG = {
    "caps": {
        "chan_day": {"scope": "channel", "window": "day", "limit": 2},
        "all_week": {"scope": "all_channels", "window": "week", "limit": 3},
        "campaign": {
            "scope": "campaign",
            "window": "lifetime",
            "limit": 1,
            "campaign_class": "marketing",
        },
    },
    "cooldowns": {"telemarketing": "30d"},
    "exemptions": {"service": ["greylist"]},
}

decide_op = st.tuples(
    st.just("decide"),
    st.integers(0, 3),
    st.integers(0, 5),
    st.integers(0, 3),
    st.integers(0, 2),
    st.integers(0, 3),
    st.integers(0, 4),
)
batch_op = st.tuples(
    st.just("batch"),
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 5), st.integers(0, 3)), min_size=1, max_size=4
    ),
    st.integers(0, 4),
)
ref_op = st.tuples(st.sampled_from(["release", "commit"]), st.integers(0, 30), st.integers(0, 6))
ops_strategy = st.lists(st.one_of(decide_op, decide_op, batch_op, ref_op), min_size=1, max_size=30)


async def _checkpoints(n: int) -> None:
    for _ in range(n):
        await trio.lowlevel.checkpoint()


async def _run(cc, ops) -> None:
    allowed: dict[str, object] = {}
    refunds: dict[str, int] = {}
    decided = []

    async def run_op(i: int, op) -> None:
        if op[0] == "decide":
            _, m, camp, ch, cls, prio, delay = op
            await _checkpoints(delay)
            d = await cc.decide(
                req(
                    SUBSCRIBERS[m],
                    campaign=f"c{camp}",
                    channel=CHANNELS[ch],
                    campaign_class=CLASSES[cls],
                    priority=prio,
                    contact_id=f"op{i}",
                )
            )
            decided.append(d)
        elif op[0] == "batch":
            _, items, delay = op
            await _checkpoints(delay)
            ds = await cc.decide_many(
                [
                    req(
                        SUBSCRIBERS[m],
                        campaign=f"c{camp}",
                        channel=CHANNELS[ch],
                        contact_id=f"op{i}.{j}",
                    )
                    for j, (m, camp, ch) in enumerate(items)
                ]
            )
            decided.extend(ds)
        else:
            kind, ref, delay = op
            await _checkpoints(delay)
            if kind == "release":
                if await cc.release(f"op{ref}", "send_failed"):
                    refunds[f"op{ref}"] = refunds.get(f"op{ref}", 0) + 1
            else:
                await cc.commit(f"op{ref}")

    async def preempt(contact_id: str) -> bool:
        return True

    cc.preemptor = preempt
    async with trio.open_nursery() as nursery:
        for i, op in enumerate(ops):
            nursery.start_soon(run_op, i, op)

    for d in decided:
        r = d.request
        if d.allowed:
            allowed[r.contact_id] = r
            assert r.msisdn != BLACK, "blacklisted subscriber allowed"
            assert r.msisdn != GREY or r.campaign_class == "service", (
                "greylist allowed without exemption"
            )
    rows = await cc.ledger.query(limit=10**6)
    for row in rows:
        if row["event"] in ("preempted", "released", "refunded"):
            assert row["event"] == "preempted" or refunds.get(row["contact_id"]) == 1
    ended = {row["contact_id"] for row in rows if row["event"] in ("preempted", "released")}
    assert all(n == 1 for n in refunds.values()), "a reservation refunded twice"
    assert len(ended) == sum(1 for row in rows if row["event"] in ("preempted", "released"))
    for m in SUBSCRIBERS:
        live = await cc.current_contacts(m)
        ids = {c["contact_id"] for c in live}
        assert ids == {cid for cid, r in allowed.items() if r.msisdn == m and cid not in ended}
        for ch in CHANNELS:
            assert sum(c["channel"] == ch for c in live) <= 2
        assert len(live) <= 3
        campaigns = [c["campaign_id"] for c in live if c["campaign_class"] == "marketing"]
        assert len(campaigns) == len(set(campaigns))
        assert sum(c["campaign_class"] == "telemarketing" for c in live) <= 1


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=ops_strategy)
async def test_random_interleavings_keep_invariants(open_backend, ops) -> None:
    """No cap exceeded, DND never allowed, refunds exactly once, live = allowed - refunded."""
    async with open_backend(CONFIG, fresh=True) as cc:
        await cc.lists.add("blacklist", BLACK)
        await cc.lists.add("greylist", GREY)
        await _run(cc, ops)
