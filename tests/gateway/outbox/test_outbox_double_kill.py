"""Two quick kill -9 of a real gatewayd must not let a third SMS through a daily cap of 2."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest
import trio

from adapters.smpp.simulator import SimulatorConfig, SmscSimulator

HERE = Path(__file__).resolve().parent


def loader_dist(tmp: Path) -> Path:
    site = tmp / "site"
    site.mkdir()
    shutil.copy(HERE / "capped_loader_plugin.py", site / "capped_loader_plugin.py")
    info = site / "capped_loader_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: capped-loader\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[gateway.plugins]\ncappedloader = capped_loader_plugin\n"
    )
    return site


class Smsc:
    """The simulator in a thread of its own; it holds every submit_sm_resp (never answers in time)."""

    def __init__(self) -> None:
        self.sim = SmscSimulator(SimulatorConfig(receipt_delay=None, response_delay=3600.0))
        self._ready = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None
        self.thread = threading.Thread(target=trio.run, args=(self._main,), daemon=True)

    async def _main(self) -> None:
        with trio.CancelScope() as self._scope:
            self._token = trio.lowlevel.current_trio_token()
            async with trio.open_nursery() as nursery:
                await nursery.start(self.sim.serve)
                self._ready.set()

    def __enter__(self) -> SmscSimulator:
        self.thread.start()
        assert self._ready.wait(10)
        return self.sim

    def __exit__(self, *exc: object) -> None:
        if self._token is not None and self._scope is not None:
            self._token.run_sync_soon(self._scope.cancel)
        self.thread.join(10)


def received(sim: SmscSimulator) -> list[str]:
    return [s.short_message.decode().split()[-1] for s in list(sim.submitted)]


# The writer thread here; the writer process is killed 20+ times, right after READY too, by
# tests/system/test_crash_random_kill9.py.
@pytest.mark.parametrize("state_writer", ["thread"])
def test_two_quick_kills_do_not_exceed_a_daily_cap(
    short_tmp, gateway_config, gatewayd, state_writer
):
    """kill -9 mid-send, restart, kill -9 right after READY, restart past the timeout: cap 2 holds."""
    with Smsc() as sim:
        config = gateway_config(
            f"""
            [contact]
            reservation_timeout = "2s"
            sweep_interval = "0.2s"
            state_writer = "{state_writer}"

            [contact.caps.sms_day]
            scope = "channel"
            channel = "sms"
            window = "day"
            limit = 2

            [plugins.sms_smpp]

            [[plugins.sms_smpp.smsc]]
            name = "sim"
            host = "127.0.0.1"
            port = {sim.port}
            system_id = "gateway"
            password = "secret"
            window = 10
            registered_delivery = 0
            reconnect_min = "0.1s"
            reconnect_max = "0.5s"
            source_addr = "10086"
            """,
            gateway_extra='sqlite_synchronous = "normal"\n',
        )
        site = loader_dist(short_tmp)
        first = gatewayd(config, pythonpath=[site], env={"CAPPED_LOADER_IDS": "k1"})
        first.wait_ready(timeout=30)
        deadline = time.monotonic() + 30
        while received(sim) != ["k1"]:  # on the wire; its answer is held by the SMSC
            assert time.monotonic() < deadline, f"k1 was not sent: {received(sim)}"
            time.sleep(0.01)
        first.kill()
        second = gatewayd(config, pythonpath=[site], env={"CAPPED_LOADER_IDS": ""})
        second.wait_ready(timeout=30)
        second.kill()  # right after READY: before any scheduler tick reported k1
        time.sleep(3)  # k1's reservation (2 s) is past its timeout
        third = gatewayd(config, pythonpath=[site], env={"CAPPED_LOADER_IDS": "k2,k3"})
        third.wait_ready(timeout=30)
        decided = third.wait_for_event("capped_loader.decided", timeout=20, count=2)
        outcomes = {r["contact_id"]: r["outcome"] for r in decided}
        assert outcomes == {"k2": "allowed", "k3": "suppressed"}  # k1 counts: it may have arrived
        deadline = time.monotonic() + 10
        while "k2" not in received(sim):
            assert time.monotonic() < deadline, f"k2 was not sent: {received(sim)}"
            time.sleep(0.01)
        time.sleep(0.5)
        assert sorted(set(received(sim))) == ["k1", "k2"]
        third.signal(15)
        assert third.wait(30) == 0
