"""Kill -9 mid-campaign: gatewayd is SIGKILLed while sending 20,000 SMS and restarted.

The SMSC simulator runs in this test process (in a thread) and counts what it received. After
the restart every message has arrived; duplicates are at most the window in flight at the kill,
and the gateway reports them (``outbox.recovered`` with ``unknown``/``resent``).
"""

from __future__ import annotations

import collections
import shutil
import sqlite3
import threading
import time
from pathlib import Path

import trio

from adapters.smpp.simulator import SimulatorConfig, SmscSimulator

ROOT = Path(__file__).resolve().parents[2]
SIZE = 20_000
WINDOW = 50


def campaign_plugin_dist(tmp: Path) -> Path:
    site = tmp / "site"
    site.mkdir()
    shutil.copy(
        ROOT / "tests" / "fakes" / "smpp_campaign_plugin.py", site / "smpp_campaign_plugin.py"
    )
    info = site / "smpp_campaign_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: smpp-campaign-plugin\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text(
        "[gateway.plugins]\nsmppcampaign = smpp_campaign_plugin\n"
    )
    return site


class SimulatorThread:
    """The simulator in its own thread with its own Trio loop."""

    def __init__(self) -> None:
        self.sim = SmscSimulator(SimulatorConfig(receipt_delay=None))
        self._ready = threading.Event()
        self._stop: trio.lowlevel.TrioToken | None = None
        self._cancel: trio.CancelScope | None = None
        self.thread = threading.Thread(target=trio.run, args=(self._main,), daemon=True)

    async def _main(self) -> None:
        with trio.CancelScope() as scope:
            self._cancel = scope
            self._stop = trio.lowlevel.current_trio_token()
            async with trio.open_nursery() as nursery:
                await nursery.start(self.sim.serve)
                self._ready.set()

    def start(self) -> SmscSimulator:
        self.thread.start()
        assert self._ready.wait(10)
        return self.sim

    def stop(self) -> None:
        if self._stop is not None and self._cancel is not None:
            self._stop.run_sync_soon(self._cancel.cancel)
        self.thread.join(10)


def states_on_disk(root: Path) -> dict[str, int]:
    """The outbox entries by state in the state database, as the killed daemon left it."""
    (db,) = root.glob("**/gateway.sqlite")
    conn = sqlite3.connect(db)
    try:
        return dict(conn.execute("SELECT state, count(*) FROM outbox_entries GROUP BY state"))
    finally:
        conn.close()


def received_keys(sim: SmscSimulator) -> collections.Counter:
    return collections.Counter(s.short_message.decode().split()[-1] for s in list(sim.submitted))


def test_kill9_mid_campaign_loses_nothing(short_tmp, gateway_config, gatewayd):
    """SIGKILL mid-campaign: after restart all 20,000 arrived, duplicates <= window, and reported."""
    simthread = SimulatorThread()
    sim = simthread.start()
    try:
        config = gateway_config(
            f"""
            [outbox]
            resend_unknown = true   # what was in flight at the kill may not have reached the SMSC

            [plugins.sms_smpp]

            [[plugins.sms_smpp.smsc]]
            name = "sim"
            host = "127.0.0.1"
            port = {sim.port}
            system_id = "gateway"
            password = "secret"
            window = {WINDOW}
            registered_delivery = 0
            reconnect_min = "0.1s"
            reconnect_max = "0.5s"
            source_addr = "10086"
            """,
            gateway_extra='sqlite_synchronous = "normal"\n',
        )
        env = {"SMPP_CAMPAIGN_SIZE": str(SIZE)}
        site = campaign_plugin_dist(short_tmp)
        first = gatewayd(config, pythonpath=[site], env=env)
        first.wait_ready(timeout=30)
        deadline = time.monotonic() + 60
        while len(sim.submitted) < SIZE // 4:
            assert time.monotonic() < deadline, "campaign did not start sending"
            time.sleep(0.01)
        first.kill()  # SIGKILL
        at_kill = len(sim.submitted)
        assert at_kill < SIZE, "the campaign finished before the kill: make it bigger"
        on_disk = states_on_disk(short_tmp)

        second = gatewayd(config, pythonpath=[site], env=env)
        second.wait_ready(timeout=30)
        deadline = time.monotonic() + 300  # a hang guard: 20,000 on a loaded machine
        while len(received_keys(sim)) < SIZE:
            assert time.monotonic() < deadline, f"only {len(received_keys(sim))} of {SIZE} arrived"
            time.sleep(0.1)
        keys = received_keys(sim)
        duplicates = sum(n - 1 for n in keys.values())
        assert set(keys) == {f"k{i:06d}" for i in range(SIZE)}
        assert duplicates <= WINDOW
        if on_disk.get("leased") or on_disk.get("sending"):
            recovered = second.wait_for_event("outbox.recovered", timeout=10)
            reported_unknown = sum(r.get("unknown", 0) for r in recovered)
        else:  # the kill fell between two takes: nothing was in flight, nothing to recover
            reported_unknown = 0
            assert not second.events("outbox.recovered")
        # what was caught sending is what is reported unknown (and resent), and covers the
        # duplicates
        assert reported_unknown == on_disk.get("sending", 0)
        assert reported_unknown >= duplicates
        print(
            f"kill9: at_kill={at_kill} on_disk={on_disk} duplicates={duplicates}"
            f" reported_unknown={reported_unknown}"
        )
        status = second.request("outbox")
        assert status["ok"]
        assert status["data"]["stats"]["resent"] == reported_unknown
        smpp = second.request("smpp")
        assert smpp["ok"] and smpp["data"]["smsc"]["sim"]["binds"][0]["state"] == "bound"
        assert "secret" not in "\n".join(second.lines)  # the password is never logged
        second.signal(15)
        assert second.wait(30) == 0
    finally:
        simthread.stop()
