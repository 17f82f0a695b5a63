"""gatewayd as a real process: plugins from entry points, supervision, signals, logs, systemd."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

from tests.fakes.gwtest_plugin import marker_lines
from tests.fakes.notify_socket import NotifySocket


def gwtest_section(marker: Path, **options: object) -> str:
    lines = ["[plugins.gwtest]", f'marker_file = "{marker}"']
    for key, value in options.items():
        lines.append(
            f"{key} = {value!r}".replace("'", '"')
            if isinstance(value, str)
            else f"{key} = {str(value).lower()}"
        )
    return "\n" + "\n".join(lines) + "\n"


def test_entry_point_plugin_is_loaded_and_its_hooks_called(
    gateway_config, gatewayd, plugin_dist, short_tmp
):
    """A plugin installed as a distribution with a gateway.plugins entry point gets every lifecycle hook."""
    marker = short_tmp / "marker"
    config = gateway_config(gwtest_section(marker))
    proc = gatewayd(config, pythonpath=[plugin_dist])
    status = proc.wait_ready()
    assert "gwtest" in status["plugins"]
    tasks = {t["name"]: t["state"] for t in status["plugins"]["gwtest"]["tasks"]}
    assert tasks == {"crasher": "running", "gwtest_channel": "running", "gwtest_source": "running"}
    assert status["plugins"]["gwtest"]["status"] == {"greeting": "hello"}
    # the plugin's admin command is reachable without client code
    reply = proc.request("gwtest", "a", "b")
    assert reply == {"ok": True, "data": {"argv": ["a", "b"], "greeting": "hello"}, "text": "a b"}
    # the source was started with the pipeline as its sink and could send to it
    deadline = time.monotonic() + 5
    while "source_sent" not in marker_lines(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "source_sent" in marker_lines(marker)
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    lines = marker_lines(marker)
    order = [
        "gateway_stores open",
        "gateway_start",
        "gateway_services",
        "gateway_signal_sources",
        "gateway_matchers",
        "gateway_channels",
        "gateway_admin_commands",
        "gateway_http_routes",
    ]
    assert [line for line in lines if line in order] == order
    assert lines.index("drain_done") < lines.index("gateway_stores closed") == len(lines) - 1
    assert proc.events("http.not_served")  # routes are collected; no [http] listen configured


def test_crashing_plugin_task_is_restarted_and_daemon_stays_up(
    gateway_config, gatewayd, plugin_dist, short_tmp
):
    """A service that keeps crashing is logged with its traceback and restarted with backoff."""
    marker = short_tmp / "marker"
    proc = gatewayd(
        gateway_config(gwtest_section(marker, crash_after="0.1s")), pythonpath=[plugin_dist]
    )
    proc.wait_ready()
    crashes = proc.wait_for_event("plugin.task_crashed", count=3)
    assert crashes[0]["plugin"] == "gwtest" and crashes[0]["task"] == "crasher"
    assert "ValueError: gwtest crash number 1" in crashes[0]["traceback"]
    assert [c["retry_in_s"] for c in crashes[:3]] == [0.05, 0.1, 0.2]  # doubling up to max
    status = proc.request("status")["data"]
    assert status["plugins"]["gwtest"]["restarts"] >= 3
    assert status["metrics"]["counters"]["plugin.task_crashes"]["plugin=gwtest"] >= 3
    assert sum(line.startswith("service_started") for line in marker_lines(marker)) >= 3
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0


def test_plugin_failing_to_start_is_a_startup_error_naming_it(
    gateway_config, gatewayd, plugin_dist, short_tmp
):
    """A service raising before task_status.started() stops start-up; the error names the plugin."""
    proc = gatewayd(
        gateway_config(gwtest_section(short_tmp / "m", fail_start=True)), pythonpath=[plugin_dist]
    )
    assert proc.wait() == 1
    assert (
        "plugin 'gwtest'" in proc.stderr
        and "crasher" in proc.stderr
        and "cannot open the gwtest thing" in proc.stderr
    )
    assert proc.events("gateway.start_failed")[0]["plugin"] == "gwtest"


def test_sigterm_drains_then_exits_zero(gateway_config, gatewayd, plugin_dist, short_tmp):
    """SIGTERM stops intake, awaits the channel's drain (0.5 s), exits 0 well within the deadline."""
    marker = short_tmp / "marker"
    proc = gatewayd(
        gateway_config(gwtest_section(marker, drain_seconds="0.5s")), pythonpath=[plugin_dist]
    )
    proc.wait_ready()
    began = time.monotonic()
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    assert 0.5 <= time.monotonic() - began < 5
    assert "drain_done" in marker_lines(marker)
    assert proc.events("gateway.drained") and proc.events("gateway.stopped")


def test_sigterm_drain_is_cut_at_the_deadline(gateway_config, gatewayd, plugin_dist, short_tmp):
    """A drain that would take 60 s is cancelled at drain_deadline (1 s) and the exit code is still 0."""
    marker = short_tmp / "marker"
    config = gateway_config(
        gwtest_section(marker, drain_seconds="60s"), gateway_extra='drain_deadline = "1s"\n'
    )
    proc = gatewayd(config, pythonpath=[plugin_dist])
    proc.wait_ready()
    began = time.monotonic()
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    assert 0.9 <= time.monotonic() - began < 5
    assert "drain_begin" in marker_lines(marker) and "drain_done" not in marker_lines(marker)
    assert proc.events("gateway.drain_incomplete")[0]["deadline_s"] == 1.0


def test_sighup_with_broken_config_keeps_the_old_one(
    gateway_config, gatewayd, plugin_dist, short_tmp
):
    """SIGHUP with an invalid file logs config.reload_failed and keeps serving; a valid one is applied."""
    marker = short_tmp / "marker"
    config = gateway_config(gwtest_section(marker))
    good = config.read_text()
    proc = gatewayd(config, pythonpath=[plugin_dist])
    proc.wait_ready()
    config.write_text(
        good.replace("marker_file =", 'greeting = "hi"\ngreting = "typo"\nmarker_file =')
    )
    proc.signal(signal.SIGHUP)
    failed = proc.wait_for_event("config.reload_failed")[0]
    assert any(
        "plugins.gwtest.greting: unknown key (did you mean 'greeting'?)" in p
        for p in failed["problems"]
    )
    status = proc.request("status")["data"]
    assert status["reloads"] == 0 and status["plugins"]["gwtest"]["status"] == {"greeting": "hello"}
    config.write_text(good.replace("marker_file =", 'greeting = "hi"\nmarker_file ='))
    proc.signal(signal.SIGHUP)
    proc.wait_for_event("config.reloaded")
    assert "gateway_reload greeting=hi" in marker_lines(marker)
    assert proc.request("status")["data"]["plugins"]["gwtest"]["status"] == {"greeting": "hi"}
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0


def test_the_start_up_heap_is_frozen_in_gatewayd_only(gateway_config, gatewayd):
    """gatewayd keeps what start-up built out of the collector's full passes (status shows
    it); a gateway run inside another process (the tests') leaves that process's collector
    alone."""
    import gc

    proc = gatewayd(gateway_config())
    data = proc.wait_ready()
    assert data["gc"]["frozen_objects"] > 10_000, data["gc"]
    assert len(data["gc"]["collections"]) == 3
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    assert gc.get_freeze_count() == 0  # nothing in this test process froze its heap


def test_sd_notify_ready_watchdog_and_stopping(gateway_config, gatewayd, short_tmp):
    """READY=1 after start-up, WATCHDOG=1 every WATCHDOG_USEC/2, STOPPING=1 on SIGTERM."""
    notify = NotifySocket(str(short_tmp / "notify"))
    try:
        proc = gatewayd(
            gateway_config(), env={"NOTIFY_SOCKET": notify.env_value, "WATCHDOG_USEC": "200000"}
        )
        notify.wait_for("STATUS", "opening stores")
        notify.wait_for("STATUS", "starting plugins")
        ready = notify.wait_for("READY")
        assert ready["STATUS"] == "running" and ready["MAINPID"] == str(proc.proc.pid)
        first = time.monotonic()
        notify.wait_for("WATCHDOG")
        notify.wait_for("WATCHDOG")
        notify.wait_for("WATCHDOG")
        assert time.monotonic() - first < 2.0  # pings at ~0.1 s, not at the full interval
        proc.signal(signal.SIGTERM)
        notify.wait_for("STOPPING")
        assert proc.wait() == 0
    finally:
        notify.close()


def test_log_lines_are_json_with_no_clear_msisdn(gateway_config, gatewayd, plugin_dist, short_tmp):
    """Every stdout line is a JSON object with event, level, timestamp; MSISDNs and IMSIs are masked."""
    proc = gatewayd(gateway_config(gwtest_section(short_tmp / "m")), pythonpath=[plugin_dist])
    proc.wait_ready()
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    records = proc.records()
    assert len(records) >= 5
    for record in records:
        assert {"event", "level", "timestamp"} <= record.keys()
        assert record["timestamp"].endswith("Z")
    started = next(r for r in records if r["event"] == "gwtest.started")
    assert started["msisdn"] == "86138****5678"
    assert started["note"] == "subscriber 139****5678 seen"
    assert started["imsi"] == "46000******7890"
    text = "\n".join(proc.lines)
    assert not re.search(r"(?<!\d)1[3-9]\d{9}(?!\d)", text)
    assert "460001234567890" not in text


def test_check_config_prints_every_problem(gateway_config, gatewayd, short_tmp):
    """gatewayd --check-config lists each problem with file and dotted key and exits 1."""
    config = gateway_config(
        "[outbx]\nx = 1\n", gateway_extra='timezone = "Mars/Olympus"\ndrain_deadlin = 3\n'
    )
    proc = gatewayd(config, args=["--check-config", str(config)])
    assert proc.wait() == 1
    assert f"{config}: gateway.timezone: unknown time zone 'Mars/Olympus'" in proc.stderr
    assert (
        f"{config}: gateway.drain_deadlin: unknown key (did you mean 'drain_deadline'?)"
        in proc.stderr
    )
    assert f"{config}: outbx: unknown table" in proc.stderr
    assert "3 problem(s)" in proc.stderr
    good = gatewayd(
        gateway_config(name="good.toml"), args=["--check-config", str(short_tmp / "good.toml")]
    )
    assert good.wait() == 0 and good.stderr == ""


def test_daemon_refuses_to_start_on_invalid_config(gateway_config, gatewayd):
    """An invalid configuration is a start-up error: problems on stderr, exit 1, no socket."""
    config = gateway_config(gateway_extra='control_socket_mode = "rw"\n')
    proc = gatewayd(config)
    assert proc.wait() == 1
    assert "gateway.control_socket_mode: must be an integer" in proc.stderr
    assert not proc.socket_path.exists()


def _tree(path: Path) -> list[tuple[str, int]]:
    return sorted((str(p), p.stat().st_mtime_ns) for p in path.rglob("*")) if path.exists() else []


def test_demo_script_runs_and_stops_by_itself(short_tmp):
    """./scripts/demo.sh decodes the bundled capture, sends SMS through the bundled simulator
    (delivery receipts come back), then stops cleanly (exit 0); with --state-dir it writes
    nothing into the checkout."""
    root = Path(__file__).resolve().parents[2]
    checkout_state = _tree(root / "var")
    result = subprocess.run(
        [str(root / "scripts" / "demo.sh"), "--for", "1", "--state-dir", str(short_tmp / "demo")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "gateway.ready" in result.stdout and "gateway.stopped" in result.stdout
    delivered = [
        int(line.split("delivered")[1])
        for line in result.stdout.splitlines()
        if line.startswith("demo: campaign")
    ]
    campaigns = len(list((root / "etc" / "campaigns").glob("*.toml")))  # one line each
    assert len(delivered) == campaigns and sum(delivered) > 0, result.stdout[-3000:]
    assert (short_tmp / "demo" / "pcap" / "done" / "sample.pcap").exists()
    assert _tree(root / "var") == checkout_state


async def test_dropping_sink_counts_events_when_no_pipeline_is_installed():
    """Without gateway.pipeline, signal sources get a sink that counts and drops their events."""
    from gateway.app import Gateway
    from gateway.daemon import DroppingSink

    gw = Gateway(config=None, hook=None, state_dir=Path("/nonexistent"))
    sink = DroppingSink(gw)
    await sink.send([object(), object()])
    assert gw.metrics.snapshot()["counters"]["pipeline.events_dropped"] == {"reason=no_pipeline": 2}


def test_sigterm_during_startup_aborts_cleanly(gateway_config, gatewayd, plugin_dist, short_tmp):
    """A SIGTERM while a store is opening aborts start-up once it is open: no READY, exit 0."""
    marker = short_tmp / "marker"
    proc = gatewayd(
        gateway_config(gwtest_section(marker, store_open_delay="1s")), pythonpath=[plugin_dist]
    )
    deadline = time.monotonic() + 15
    while "gateway_stores opening" not in marker_lines(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    began = time.monotonic()
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    assert time.monotonic() - began < 5
    assert proc.events("gateway.start_aborted") and not proc.events("gateway.ready")
    assert "gateway_start" not in marker_lines(marker)
    assert marker_lines(marker)[-1] == "gateway_stores closed"


def test_sigint_then_second_signal_skips_the_drain(
    gateway_config, gatewayd, plugin_dist, short_tmp
):
    """SIGINT (Ctrl-C) stops like SIGTERM; a second signal during a long drain ends it at once, exit 0."""
    marker = short_tmp / "marker"
    config = gateway_config(
        gwtest_section(marker, drain_seconds="60s"), gateway_extra='drain_deadline = "60s"\n'
    )
    proc = gatewayd(config, pythonpath=[plugin_dist])
    proc.wait_ready()
    began = time.monotonic()
    proc.signal(signal.SIGINT)
    deadline = time.monotonic() + 10
    while "drain_begin" not in marker_lines(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.signal(signal.SIGINT)
    assert proc.wait(timeout=40) == 0
    assert time.monotonic() - began < 30  # not the 60 s drain deadline (margin for a loaded CI)
    assert proc.events("gateway.stopping")[0]["reason"] == "SIGINT"
    assert proc.events("gateway.drain_skipped") and proc.events("gateway.drain_incomplete")


def test_unusable_state_dir_is_a_clear_startup_error(gateway_config, gatewayd, short_tmp):
    """A state_dir that cannot be created stops start-up with one line naming it, exit 1."""
    (short_tmp / "afile").write_text("x")
    config = gateway_config()
    config.write_text(
        config.read_text().replace(str(short_tmp / "state"), str(short_tmp / "afile" / "state"))
    )
    proc = gatewayd(config)
    assert proc.wait() == 1
    assert f"cannot create the state directory {short_tmp / 'afile' / 'state'}" in proc.stderr
    assert not proc.events("gateway.crashed")


def test_unusable_control_socket_path_is_a_clear_startup_error(gateway_config, gatewayd, short_tmp):
    """A control socket in a place that cannot exist stops start-up with one line naming it."""
    (short_tmp / "afile").write_text("x")
    config = gateway_config()
    config.write_text(
        config.read_text().replace(
            str(short_tmp / "control.sock"), str(short_tmp / "afile" / "c.sock")
        )
    )
    proc = gatewayd(config)
    assert proc.wait() == 1
    assert f"cannot use the control socket path {short_tmp / 'afile' / 'c.sock'}" in proc.stderr
    assert not proc.events("gateway.crashed")


def test_second_signal_before_the_drain_begins_still_skips_it(
    gateway_config, gatewayd, plugin_dist, short_tmp
):
    """SIGTERM then SIGINT at once (the second handled before the drain starts) still skips the drain."""
    marker = short_tmp / "marker"
    config = gateway_config(
        gwtest_section(marker, drain_seconds="60s"), gateway_extra='drain_deadline = "60s"\n'
    )
    proc = gatewayd(config, pythonpath=[plugin_dist])
    proc.wait_ready()
    proc.signal(signal.SIGTERM)
    proc.signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0  # not the 60 s deadline
    assert proc.events("gateway.drain_skipped") and proc.events("gateway.drain_incomplete")


def test_second_signal_while_a_store_hangs_opening_stops_at_once(
    gateway_config, gatewayd, plugin_dist, short_tmp
):
    """A store that never finishes opening: the first SIGTERM waits for it, a second one stops now, exit 0."""
    marker = short_tmp / "marker"
    proc = gatewayd(
        gateway_config(gwtest_section(marker, store_open_delay="600s")), pythonpath=[plugin_dist]
    )
    deadline = time.monotonic() + 15
    while "gateway_stores opening" not in marker_lines(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.signal(signal.SIGTERM)
    proc.wait_for_event("gateway.stopping")
    proc.signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert proc.events("gateway.stop_forced") and not proc.events("gateway.ready")
    assert "gateway_start" not in marker_lines(marker)


def test_second_signal_while_a_store_hangs_closing_stops_at_once(
    gateway_config, gatewayd, plugin_dist, short_tmp
):
    """A store that never finishes closing: a second SIGTERM cancels its closing, exit 0."""
    marker = short_tmp / "marker"
    proc = gatewayd(
        gateway_config(gwtest_section(marker, store_close_delay="600s")), pythonpath=[plugin_dist]
    )
    proc.wait_ready()
    proc.signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    while "gateway_stores closing" not in marker_lines(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert proc.events("gateway.stop_forced") and proc.events("gateway.stopped")


def test_sighup_before_the_signal_handlers_are_installed_does_not_kill(
    gateway_config, gatewayd, short_tmp
):
    """A SIGHUP (logrotate, a reload) while the config and plugins still load is ignored, not fatal."""
    wrapper = short_tmp / "slow_start.py"
    wrapper.write_text(
        "import sys, time\n"
        "from gateway import daemon\n"
        "load = daemon.Daemon.from_file\n"
        "def slow(*args, **kwargs):\n"
        '    print(\'{"event": "test.loading"}\', flush=True)\n'
        "    time.sleep(1.0)\n"
        "    return load(*args, **kwargs)\n"
        "daemon.Daemon.from_file = slow\n"
        "sys.exit(daemon.main(sys.argv[1:]))\n"
    )
    config = gateway_config()
    proc = gatewayd(config, args=[str(wrapper), "--config", str(config)], interpreter=True)
    proc.wait_for_event("test.loading")
    proc.signal(signal.SIGHUP)
    proc.wait_ready()
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0


def test_start_aborted_while_plugins_start_drains_only_started_objects(
    gateway_config, gatewayd, plugin_dist, short_tmp
):
    """SIGTERM while a service is still starting: the channel never started is not drained."""
    marker = short_tmp / "marker"
    config = gateway_config(
        gwtest_section(marker, service_start_delay="600s", drain_seconds="60s"),
        gateway_extra='drain_deadline = "60s"\n',
    )
    proc = gatewayd(config, pythonpath=[plugin_dist])
    deadline = time.monotonic() + 15
    while "service_starting" not in marker_lines(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0  # not the 60 s drain of a channel that never ran
    assert proc.events("gateway.start_aborted") and "drain_begin" not in marker_lines(marker)
