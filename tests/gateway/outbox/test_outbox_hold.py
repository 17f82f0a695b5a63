"""A reservation whose message waits in the outbox counts until the outbox ends it, on both
backends (the Redis one against a real redis-server)."""

from __future__ import annotations

import itertools
import time

import pytest
from outbox_stack import open_stack, request

from gateway.model import Delivery, DeliveryState
from tests.fakes.redis_server import redis_server  # noqa: F401

_prefixes = itertools.count()

CAP1 = {
    "reservation_timeout": "60s",
    "caps": {"sms_day": {"channel": "sms", "limit": 1, "window": "day", "scope": "channel"}},
}


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def sweep(control) -> None:
    """The SQLite backend expires reservations by a sweep; Redis at every check (its script)."""
    if hasattr(control, "sweep"):
        await control.sweep()


@pytest.fixture(params=["sqlite", "redis"])
def table(request: pytest.FixtureRequest) -> dict:
    if request.param == "sqlite":
        return CAP1
    server = request.getfixturevalue("redis_server")
    return {
        **CAP1,
        "backend": "redis",
        "redis": f"{server.host}:{server.port}",
        "redis_prefix": f"hold{next(_prefixes)}-{time.time_ns()}",
    }


async def test_a_queued_message_keeps_its_reservation_past_the_timeout_and_restarts(
    tmp_path, table
) -> None:
    """The SMSC is down for longer than reservation_timeout, across a restart: the queued
    message's reservation still counts (a second contact is refused) until the entry's final
    state (here its expiry in the queue) releases it."""
    clock = Clock()
    db = tmp_path / "gateway.sqlite"
    async with open_stack(tmp_path, table, db=db, clock=clock, run_scheduler=False) as s:
        first = await s.control.decide_and_queue([request("q1")], s.outbox)
        assert first[0].allowed
        clock.now += 600  # ten reservation timeouts; nothing was sent
        await sweep(s.control)
        again = await s.control.decide_and_queue([request("q2")], s.outbox)
        assert not again[0].allowed, again[0]
    clock.now += 600
    async with open_stack(tmp_path, table, db=db, clock=clock, run_scheduler=False) as s:
        await sweep(s.control)
        after_restart = await s.control.decide_and_queue([request("q3")], s.outbox)
        assert not after_restart[0].allowed, after_restart[0]
        # the outbox gives up on q1 (its expiry): never sent, so no contact
        await s.gateway.report_delivery(
            Delivery(contact_id="q1", channel="sms", state=DeliveryState.EXPIRED, at=clock.now)
        )
        assert (await s.control.decide_and_queue([request("q4")], s.outbox))[0].allowed
        events = [r["event"] for r in reversed(await s.control.ledger.query(contact_id="q1"))]
        assert events[0] == "allowed" and events[1:] in (["released"], ["refunded"]), events
