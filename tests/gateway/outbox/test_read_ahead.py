"""Read-ahead: a source decides the next batch while the previous ones commit.

On the real stack (the SQLite contact control and the outbox on one state writer): caps hold
across batches that are not yet durable, decisions follow the order the batches were handed
in, at most ``depth`` batches wait for their commit, a failed commit is counted and withdrawn
as with ``send``, and a file position waits until what precedes it is durable.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from gateway.model import EventKind, SignalEvent
from gateway.pipeline import read_ahead
from tests.fakes.campaign_fakes import campaign_toml, make_pipeline

T0 = 1_772_000_000.0
IMSIS = [f"46000123456780{i}" for i in range(1, 5)]
EVERY_POWER_ON = '[trigger]\nevents = ["power_on"]\n'
CAP1 = {"caps": {"sms_day": {"channel": "sms", "limit": 1, "window": "day", "scope": "channel"}}}


def power_on(imsi: str, ts: float) -> SignalEvent:
    return SignalEvent(kind=EventKind.POWER_ON, timestamp=ts, imsi=imsi)


async def pipeline_on(stack, tmp_path):
    """A pipeline (campaign c1: an SMS on every power-on) deciding on ``stack``."""
    p = await make_pipeline(tmp_path / "p", {"c.toml": campaign_toml(EVERY_POWER_ON)})
    p.gateway.contact_control, p.gateway.outbox = stack.control, stack.outbox
    return p


class HeldWriter:
    """Holds the state writer's commits until released (its commit loop waits)."""

    def __init__(self, writer) -> None:
        self.writer = writer
        self.gate = trio.Event()
        self._commit = writer._commit_pending

        async def held() -> None:
            await self.gate.wait()
            await self._commit()

        writer._commit_pending = held

    def release(self) -> None:
        self.writer._commit_pending = self._commit
        self.gate.set()


async def queued(stack) -> int:
    return (await stack.outbox.delivery_counts("c1")).get("queued", 0)


async def test_caps_hold_across_batches_not_yet_durable(open_stack, tmp_path) -> None:
    """A second batch decided before the first committed sees its reservation (one a day)."""
    async with open_stack(CAP1, run_scheduler=False) as stack:
        p = await pipeline_on(stack, tmp_path)
        held = HeldWriter(stack.outbox.writer)
        async with read_ahead(p, 4) as ahead:
            await ahead.send([power_on(IMSIS[0], T0)])
            await ahead.send([power_on(IMSIS[0], T0 + 60), power_on(IMSIS[1], T0 + 60)])
            # both decided, neither durable: the reader did not wait for a commit
            assert ahead.in_flight == 2
            assert stack.outbox.stats["enqueued"] == 0
            held.release()
        assert ahead.in_flight == 0
        counts = p.campaigns.counts["c1"]
        assert counts["allowed"] == 2  # the first of each subscriber
        assert counts["suppressed"] == 1  # the second of IMSIS[0], capped while undurable
        assert stack.outbox.stats["enqueued"] == 2
        assert await queued(stack) == 2


async def test_at_most_depth_batches_wait_and_order_is_kept(open_stack, tmp_path) -> None:
    """With ``depth`` batches waiting the next ``send`` waits; the first batch handed in is the
    one decided first (the one the cap lets through)."""
    async with open_stack(CAP1, run_scheduler=False) as stack:
        p = await pipeline_on(stack, tmp_path)
        held = HeldWriter(stack.outbox.writer)
        sent: list[int] = []

        async def reader(ahead) -> None:
            for i in range(4):
                await ahead.send([power_on(IMSIS[2], T0 + i)])
                sent.append(i)

        async with read_ahead(p, 2) as ahead, trio.open_nursery() as nursery:
            nursery.start_soon(reader, ahead)
            await trio.testing.wait_all_tasks_blocked()
            assert sent == [0, 1]  # the third waits for a slot
            assert ahead.in_flight == 2
            held.release()
        assert sent == [0, 1, 2, 3]
        assert p.campaigns.counts["c1"]["allowed"] == 1
        assert p.campaigns.counts["c1"]["suppressed"] == 3
        rows = await stack.outbox.writer.run(
            lambda c: c.execute("SELECT request FROM outbox_entries").fetchall()
        )
        assert len(rows) == 1 and f'"created_at":{T0},' in rows[0][0]


async def test_a_failed_commit_is_counted_and_withdrawn(open_stack, tmp_path, monkeypatch) -> None:
    """A commit that fails (disk full) while the reader went on: counted as ``decide_failed``,
    its reservation withdrawn, nothing queued; the next batch is decided as if it never was."""
    from gateway.outbox import store

    def disk_full(conn, rows):
        raise OSError(28, "No space left on device")

    async with open_stack(CAP1, run_scheduler=False) as stack:
        p = await pipeline_on(stack, tmp_path)
        monkeypatch.setattr(store, "insert_entries", disk_full)
        async with read_ahead(p, 4) as ahead:
            await ahead.send([power_on(IMSIS[3], T0)])
        monkeypatch.undo()
        assert p.gateway.metrics.counter("pipeline.decide_failed").value == 1
        assert await queued(stack) == 0
        async with read_ahead(p, 4) as ahead:
            await ahead.send([power_on(IMSIS[3], T0 + 60)])
        assert p.campaigns.counts["c1"]["allowed"] == 1
        assert await queued(stack) == 1


async def test_settled_waits_for_the_batches_in_flight(open_stack, tmp_path) -> None:
    """What a file source awaits before it records its position."""
    async with open_stack(run_scheduler=False) as stack:
        p = await pipeline_on(stack, tmp_path)
        held = HeldWriter(stack.outbox.writer)
        recorded: list[int] = []
        async with trio.open_nursery() as nursery, read_ahead(p, 4) as ahead:
            await ahead.send([power_on(IMSIS[0], T0)])

            async def record() -> None:
                await ahead.settled()
                recorded.append(stack.outbox.stats["enqueued"])

            nursery.start_soon(record)
            await trio.testing.wait_all_tasks_blocked()
            assert recorded == []
            held.release()
        assert recorded == [1]


@pytest.mark.parametrize("depth", [1, 4])
async def test_a_sink_without_stage_or_depth_1_is_sent_one_batch_at_a_time(depth) -> None:
    """Any other sink (a plugin's, the dropping sink), or ``read_ahead = 1``: ``send`` as before."""
    calls: list[int] = []

    class Sink:
        async def send(self, events) -> None:
            await trio.lowlevel.checkpoint()
            calls.append(len(events))

        async def stage(self, events):  # only used when depth > 1
            raise AssertionError("depth 1 must not stage")

    sink = Sink() if depth == 1 else type("Plain", (), {"send": Sink.send})()
    async with read_ahead(sink, depth) as ahead:
        await ahead.send([power_on(IMSIS[0], T0)] * 3)
        assert calls == [3] and ahead.in_flight == 0
        await ahead.settled()


async def test_settled_still_returns_when_more_is_sent_while_it_waits(open_stack, tmp_path) -> None:
    """A batch sent while settled() waits keeps it waiting for that one too, then it returns
    (its event is not swapped for another one meanwhile)."""
    async with open_stack(run_scheduler=False) as stack:
        p = await pipeline_on(stack, tmp_path)
        held = HeldWriter(stack.outbox.writer)
        returned: list[int] = []
        with trio.fail_after(5):  # a waiter left on a replaced event would never return
            async with read_ahead(p, 4) as ahead, trio.open_nursery() as nursery:
                await ahead.send([power_on(IMSIS[0], T0)])

                async def record() -> None:
                    await ahead.settled()
                    returned.append(ahead.in_flight)

                nursery.start_soon(record)
                await trio.testing.wait_all_tasks_blocked()
                await ahead.send([power_on(IMSIS[1], T0)])  # sent while it waits
                assert ahead.in_flight == 2 and returned == []
                held.release()
        assert returned == [0]
