"""The supervisor: start errors name the plugin, crashes restart with exponential backoff."""

from __future__ import annotations

import pytest
import trio

from gateway.errors import PluginError
from gateway.supervisor import STABLE_AFTER_S, Supervisor


class Flaky:
    """Crashes ``crashes`` times (after starting), then runs until cancelled."""

    name = "flaky"

    def __init__(self, crashes: int, *, run_for: float = 1.0) -> None:
        self.crashes = crashes
        self.run_for = run_for
        self.starts: list[float] = []

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED):
        self.starts.append(trio.current_time())
        task_status.started()
        if len(self.starts) <= self.crashes:
            await trio.sleep(self.run_for)
            raise RuntimeError(f"crash {len(self.starts)}")
        await trio.sleep_forever()


async def test_crash_is_restarted_with_doubling_backoff(autojump_clock):
    """Each crash is followed by a restart after initial, 2x, 4x ... capped at max."""
    sup = Supervisor(backoff_initial=1.0, backoff_max=4.0)
    flaky = Flaky(crashes=4)
    async with trio.open_nursery() as nursery:
        entry = await sup.start(nursery, flaky, plugin="p", kind="service")
        await trio.sleep(100)
        assert entry.state == "running" and entry.restarts == 4
        assert entry.last_error == "RuntimeError: crash 4"
        nursery.cancel_scope.cancel()
    gaps = [round(b - a, 6) for a, b in zip(flaky.starts, flaky.starts[1:], strict=False)]
    # each gap = 1 s of running + the backoff delay
    assert gaps == [2.0, 3.0, 5.0, 5.0]


async def test_backoff_resets_after_a_stable_run(autojump_clock):
    """A task that ran longer than STABLE_AFTER_S before crashing restarts after the initial delay."""
    sup = Supervisor(backoff_initial=1.0, backoff_max=30.0)
    flaky = Flaky(crashes=3, run_for=STABLE_AFTER_S + 1)
    async with trio.open_nursery() as nursery:
        await sup.start(nursery, flaky, plugin="p", kind="service")
        await trio.sleep(400)
        nursery.cancel_scope.cancel()
    gaps = [
        round(b - a - flaky.run_for, 6)
        for a, b in zip(flaky.starts, flaky.starts[1:], strict=False)
    ]
    assert gaps == [1.0, 1.0, 1.0]


async def test_failure_before_started_is_a_plugin_error():
    """An object that raises before task_status.started() makes start() raise PluginError naming it."""

    class Broken:
        name = "broken"

        async def run(self, *, task_status=trio.TASK_STATUS_IGNORED):
            raise OSError("port in use")

    sup = Supervisor()
    async with trio.open_nursery() as nursery:
        with pytest.raises(PluginError) as exc:
            await sup.start(nursery, Broken(), plugin="sms_smpp", kind="channel")
    assert exc.value.plugin == "sms_smpp"
    assert (
        str(exc.value)
        == "plugin 'sms_smpp': channel 'broken' failed to start: OSError: port in use"
    )
    assert sup.tasks == []


async def test_finished_task_is_not_restarted(autojump_clock):
    """A run that returns normally is done: state finished, no restart."""

    class OneShot:
        name = "oneshot"
        runs = 0

        async def run(self, *, task_status=trio.TASK_STATUS_IGNORED):
            OneShot.runs += 1
            task_status.started()
            await trio.sleep(1)

    sup = Supervisor()
    async with trio.open_nursery() as nursery:
        entry = await sup.start(nursery, OneShot(), plugin="p", kind="service")
    assert entry.state == "finished" and OneShot.runs == 1


async def test_args_and_cancel_by_kind(autojump_clock):
    """Extra args reach run (sources get the sink); cancel(kinds) stops only those tasks."""
    got = []

    class Source:
        name = "src"

        async def run(self, sink, *, task_status=trio.TASK_STATUS_IGNORED):
            got.append(sink)
            task_status.started()
            await trio.sleep_forever()

    crashes = []
    sup = Supervisor(on_crash=crashes.append)
    async with trio.open_nursery() as nursery:
        source = await sup.start(nursery, Source(), plugin="p", kind="source", args=("SINK",))
        service = await sup.start(nursery, Flaky(crashes=0), plugin="p", kind="service")
        sup.cancel({"source"})
        await trio.sleep(1)
        assert source.state == "stopped" and service.state == "running"
        assert [t["name"] for t in sup.snapshot()] == ["src", "flaky"]
        sup.cancel()
    assert got == ["SINK"] and crashes == []


async def test_restart_that_cannot_start_shows_failed(autojump_clock):
    """A restart attempt failing before started() leaves the task in state "failed" and retries."""

    class Sticky:
        name = "sticky"
        attempts = 0

        async def run(self, *, task_status=trio.TASK_STATUS_IGNORED):
            Sticky.attempts += 1
            if Sticky.attempts == 1:
                task_status.started()
                await trio.sleep(1)
                raise RuntimeError("lost the link")
            raise OSError("cannot reconnect")

    sup = Supervisor(backoff_initial=1.0, backoff_max=1.0)
    async with trio.open_nursery() as nursery:
        entry = await sup.start(nursery, Sticky(), plugin="p", kind="channel")
        await trio.sleep(1.5)
        assert entry.state == "restarting" and entry.last_error == "RuntimeError: lost the link"
        await trio.sleep(1.0)
        assert entry.state == "failed" and entry.last_error == "OSError: cannot reconnect"
        assert Sticky.attempts == 2
        nursery.cancel_scope.cancel()
