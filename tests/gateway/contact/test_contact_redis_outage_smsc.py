"""A Redis outage end to end: Redis contact control, the outbox, the SMS channel and the SMSC
simulator over TCP; Redis is killed while messages are submitted and receipted."""

from __future__ import annotations

from collections import Counter

import pytest
import trio
from contact_helpers import req

from gateway.contact.config import parse_contact_config
from gateway.contact.redis_backend import open_redis_contact_control
from gateway.errors import ContactControlError
from gateway.model import Outcome
from tests.fakes.redis_server import RedisServer
from tests.plugins.sms_smpp_harness import running_channel, running_simulator, smsc_table, wait_for

DELIVERED = [f"86138{i:08d}" for i in range(20)]
UNDELIVERABLE = [f"86137{i:08d}" for i in range(10)]  # the simulator's UNDELIV receipts: refunded


def requests(tag: str, numbers: list[str]) -> list:
    return [req(m, contact_id=f"{tag}-{m}", content={"text": f"{tag} hello"}) for m in numbers]


# In the serial pass of scripts/test.sh: under three parallel neighbours the receipts of the
# outage were, in two runs of many, not all journaled within 30 s (cause not found; it passes
# alone and in the serial pass). Listed in issue 9's closing note.
@pytest.mark.slow
async def test_outage_while_sending_exceeds_no_cap(tmp_path, clock) -> None:
    """Submits and receipts during the outage are replayed: after recovery no subscriber gets a second SMS."""
    (tmp_path / "redis").mkdir()
    server = RedisServer(data_dir=tmp_path / "redis").start()
    config = parse_contact_config(
        {
            "backend": "redis",
            "redis": f"127.0.0.1:{server.port}",
            "caps": {"sms_day": {"scope": "channel", "window": "day", "limit": 1}},
            "reservation_timeout": "1m",
        }
    )
    try:
        async with (
            open_redis_contact_control(config, tmp_path / "ledger.sqlite", clock=clock) as cc,
            running_simulator(receipt_delay=0.05, undeliverable_prefixes=("86137",)) as sim,
            running_channel(tmp_path, [smsc_table(sim.port)]) as h,
        ):
            h.gateway.contact_control = cc
            first = await cc.decide_many(requests("a", DELIVERED + UNDELIVERABLE))
            assert all(d.outcome is Outcome.ALLOWED for d in first)

            server.kill()  # the messages go out and come back receipted during the outage
            await h.outbox.enqueue_many(first)
            with trio.move_on_after(10):
                await wait_for(lambda: len(h.observed.final()) == 30, limit=60)
            lost = 30 - len(h.observed.final())
            assert lost == 0, f"{lost} delivery reports failed during the outage"
            with pytest.raises(ContactControlError):  # fail closed
                await cc.decide_many(requests("x", DELIVERED[:3]))
            # every commit and receipt reached contact control (journaled) before Redis is back:
            # the outbox's final states come first, and on a loaded machine a receipt still on
            # its way would be applied after the second round of decisions
            await wait_for(lambda: cc.status()["redis_journaled"] >= 60, limit=30)

            clock.advance(300)  # the outage outlasts reservation_timeout
            server.start(port=server.port)
            second = await cc.decide_many(requests("b", DELIVERED + UNDELIVERABLE))
            allowed = [d for d in second if d.outcome is Outcome.ALLOWED]
            await h.outbox.enqueue_many(allowed)
            await wait_for(lambda: len(h.observed.final()) == 30 + len(allowed), limit=20)

            sent = Counter(s.destination_addr for s in sim.submitted)
            delivered_twice = [m for m in DELIVERED if sent[m] > 1]
            assert delivered_twice == [], f"cap exceeded for {len(delivered_twice)} subscribers"
            assert all(sent[m] == 1 for m in DELIVERED)
            # undeliverable ones were refunded (the receipt replayed after the commit)
            assert all(sent[m] == 2 for m in UNDELIVERABLE)
            status = cc.status()
            assert status["redis_journal_pending"] == 0
            assert status["redis_journal_replayed"] >= 60  # 30 commits, 30 receipts
            assert status["redis_decisions_refused"] == 3
    finally:
        server.stop()
