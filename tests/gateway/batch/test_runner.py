"""The batch runner against the real SQLite contact control and outbox (no channel): send
windows, quiet-hours deferral, resume from the durable cursor, shards; and the target file."""

from __future__ import annotations

import datetime as dt
import sqlite3
import zoneinfo
from array import array
from pathlib import Path

import attrs
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from gateway.batch.progress import ProgressStore
from gateway.batch.runner import BatchRunner, TokenBucket
from gateway.campaigns.loader import parse_campaign
from gateway.campaigns.targets import Shard, TargetListError, parse_targets
from gateway.contact.config import parse_contact_config
from gateway.contact.sqlite_backend import open_sqlite_contact_control
from gateway.numbers import active_plan
from gateway.outbox import OutboxConfig, open_outbox

TZ = zoneinfo.ZoneInfo("Asia/Shanghai")


def at(hour: int, minute: int = 0) -> float:
    return dt.datetime(2026, 12, 1, hour, minute, tzinfo=TZ).timestamp()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class OneCampaign:
    def __init__(self, cdef) -> None:
        self.cdef = cdef
        self.actions: list[str] = []

    def get(self, campaign_id):
        return self.cdef if campaign_id == self.cdef.id else None

    async def transition(self, campaign_id, action, **_):
        self.actions.append(action)


def campaign(tmp_path: Path, n: int, *, windows: str = "", rate: float = 0.0):
    targets = tmp_path / "targets.txt"
    targets.write_text("\n".join(f"139{i:08d}" for i in range(n)) + "\n")
    table = {
        "id": "b",
        "name": "b",
        "kind": "batch",
        "channels": ["sms"],
        "initial_state": "running",
        "batch": {"rate": rate},
        "target": {"list": str(targets)},
        "content": {"sms": {"text": "hi"}},
    }
    if windows:
        table["schedule"] = {"send_windows": [windows]}
    return parse_campaign(table, origin="test", areas={})


async def run_runner(
    tmp_path, clock, cdef, *, hours="00:00-24:00", shard=None, until=None, wrap=None
):
    config = parse_contact_config({"contact_hours": {"sms": hours}, "timezone": "Asia/Shanghai"})
    db = tmp_path / "state.sqlite"
    async with open_sqlite_contact_control(config, db, clock=clock) as cc:
        async with open_outbox(
            db, OutboxConfig(), writer=cc.ledger.writer, ledger=cc.ledger, run_scheduler=False
        ) as ob:
            progress = ProgressStore(cc.ledger.writer)
            await progress.create_schema()
            store = OneCampaign(cdef)
            runner = BatchRunner(
                campaign_id="b",
                campaigns=store,
                control=cc if wrap is None else wrap(cc),
                outbox=ob,
                progress=progress,
                snapshot_dir=tmp_path / "batch",
                shard=shard or Shard(),
                clock=clock,
                poll=0.05,
                max_chunk=100,
            )
            async with trio.open_nursery() as nursery:
                nursery.start_soon(runner.run)
                if until is not None and await until(runner, store) == "kill":
                    nursery.cancel_scope.cancel()  # the runner stops mid-step, like a crash
            return runner, dict(cc.outcomes), dict(ob.stats), store


async def test_waits_outside_the_send_window_then_sends(tmp_path):
    """Outside the campaign's send window nothing is decided; once the window opens, all is."""
    clock = Clock(at(7, 59))
    cdef = campaign(tmp_path, 300, windows="08:00-09:00")

    async def until(runner, store):
        await trio.sleep(0.5)
        assert runner.state == "outside_send_window" and runner.cursor == 0
        clock.now = at(8, 1)

    runner, outcomes, stats, store = await run_runner(tmp_path, clock, cdef, until=until)
    assert runner.cursor == 300 and outcomes["allowed"] == 300 and stats["enqueued"] == 300
    assert store.actions == ["finish"]


class CountingControl:
    """Contact control that records the size of each step handed to ``decide_and_queue``."""

    def __init__(self, control) -> None:
        self.control = control
        self.steps: list[int] = []

    async def decide_and_queue(self, requests, outbox):
        self.steps.append(len(requests))
        return await self.control.decide_and_queue(requests, outbox)


async def test_paced_steps_carry_the_targets_of_ten_milliseconds(tmp_path):
    """At 1,000/s a step waits for 10 targets (the step period's worth), not one per
    millisecond (a decision transaction and a scheduler round per target); the rate holds."""
    clock = Clock(at(10))
    cdef = campaign(tmp_path, 300, rate=1000)
    counting: list[CountingControl] = []

    def wrap(cc):
        counting.append(CountingControl(cc))
        return counting[0]

    started = trio.current_time()
    runner, outcomes, _, _ = await run_runner(tmp_path, clock, cdef, wrap=wrap)
    elapsed = trio.current_time() - started
    steps = counting[0].steps
    assert runner.cursor == 300 and outcomes["allowed"] == 300 and sum(steps) == 300
    assert len(steps) <= 30 and min(steps[:-1]) >= 10, steps  # the last: what is left
    assert elapsed >= 0.29  # 300 at 1,000/s, the first token at once


async def test_quiet_hours_defer_batch_contacts_to_the_outbox(tmp_path):
    """In contact control's quiet hours, batch contacts are deferred and held by the outbox
    (presented again when the hours open), not suppressed."""
    clock = Clock(at(22, 0))
    cdef = campaign(tmp_path, 50)
    _runner, outcomes, stats, _ = await run_runner(tmp_path, clock, cdef, hours="08:00-21:00")
    assert outcomes["deferred"] == 50 and outcomes["allowed"] == 0
    assert stats["deferred"] == 50 and stats["enqueued"] == 0


async def test_restart_resumes_from_the_cursor_and_never_decides_twice(tmp_path):
    """Cancelled mid-way and run again: it resumes at the durable cursor, from the snapshot
    (the target file changed meanwhile), and each target is queued once."""
    clock = Clock(at(10))
    cdef = campaign(tmp_path, 1000, rate=2000)

    async def until(runner, store):
        while runner.cursor < 300:  # noqa: ASYNC110 (the runner has no event for its cursor)
            await trio.sleep(0.01)
        return "kill"

    first, _, _, _ = await run_runner(tmp_path, clock, cdef, until=until)
    assert 300 <= first.cursor < 1000
    (tmp_path / "targets.txt").write_text("13900000001\n")  # edited: the snapshot rules
    runner, _outcomes, _stats, _ = await run_runner(tmp_path, clock, cdef)
    assert runner.total == 1000 and runner.cursor == 1000
    conn = sqlite3.connect(tmp_path / "state.sqlite")
    queued = conn.execute("SELECT COUNT(*), COUNT(DISTINCT msisdn) FROM outbox_entries").fetchone()
    conn.close()
    assert queued == (1000, 1000)


async def test_two_shards_split_a_batch_exactly(tmp_path):
    """Shards 1/2 and 2/2 take disjoint halves whose union is the whole list."""
    clock = Clock(at(10))
    seen = []
    for index in (1, 2):
        d = tmp_path / str(index)
        d.mkdir()
        cdef = campaign(d, 500)
        runner, outcomes, _, _ = await run_runner(d, clock, cdef, shard=Shard(index=index, count=2))
        seen.append(runner.total)
        assert outcomes["allowed"] == runner.total
    assert sum(seen) == 500 and 150 < seen[0] < 350


def test_bad_line_refuses_the_whole_target_file():
    """One bad number refuses the file, naming its line and masking the number."""
    with pytest.raises(TargetListError, match=r"line 3: not a usable MSISDN"):
        parse_targets(b"13900000001\n# note\n1390000x\n", source="t.txt")


@given(st.lists(st.integers(min_value=0, max_value=99_999_999), max_size=200))
def test_targets_are_normalised_deduplicated_sorted(suffixes):
    """Any mix of national and E.164 forms gives the sorted set of their E.164 numbers."""
    lines = [(f"139{s:08d}" if s % 2 else f"+86 139 {s:08d}") for s in suffixes]
    keys = parse_targets("\n".join(lines).encode(), source="t")
    plan = active_plan()
    assert list(keys) == sorted({int(plan.normalise(x)) for x in lines})
    assert Shard(index=1, count=1).select(keys) == keys
    halves = [Shard(index=i, count=2).select(keys) for i in (1, 2)]
    assert sorted(list(halves[0]) + list(halves[1])) == list(keys)
    assert isinstance(keys, array)


async def test_channel_rate_is_shared_by_the_campaigns_on_it(tmp_path):
    """Two campaigns at 1,000/s on a channel limited to 100/s present at most 100/s together
    (plus the burst), and both get a share."""
    clock = Clock(at(10))
    config = parse_contact_config({"contact_hours": {"sms": "00:00-24:00"}})
    db = tmp_path / "state.sqlite"
    shared = TokenBucket(rate=100.0, burst=10.0)
    runners = []
    async with open_sqlite_contact_control(config, db, clock=clock) as cc:
        async with open_outbox(
            db, OutboxConfig(), writer=cc.ledger.writer, ledger=cc.ledger, run_scheduler=False
        ) as ob:
            progress = ProgressStore(cc.ledger.writer)
            await progress.create_schema()
            async with trio.open_nursery() as nursery:
                if True:
                    for name in ("a", "b"):
                        d = tmp_path / name
                        d.mkdir()
                        cdef = campaign(d, 5000, rate=1000)
                        cdef = attrs.evolve(cdef, campaign=attrs.evolve(cdef.campaign, id=name))
                        runner = BatchRunner(
                            campaign_id=name,
                            campaigns=OneCampaign(cdef),
                            control=cc,
                            outbox=ob,
                            progress=progress,
                            snapshot_dir=d,
                            channel_bucket=shared,
                            clock=clock,
                            poll=0.05,
                        )
                        runners.append(runner)
                        nursery.start_soon(runner.run)
                while not all(r.state == "running" for r in runners):  # noqa: ASYNC110
                    await trio.sleep(0.01)
                start = trio.current_time()
                base = sum(r.presented for r in runners)
                await trio.sleep(2.0)
                elapsed = trio.current_time() - start
                presented = sum(r.presented for r in runners) - base
                nursery.cancel_scope.cancel()
    assert presented <= 100 * elapsed + 10 + 2  # the channel's rate, plus its burst
    assert presented >= 100  # and it did send (a loaded machine may fall short of 200)
    shares = [r.presented for r in runners]
    assert min(shares) >= 0.3 * sum(shares), shares  # both got their turns
