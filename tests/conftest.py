"""Shared test fixtures (generic: any area may use them).

- ``short_tmp``: a short temporary directory (Unix socket paths must stay under 108 bytes).
- ``gateway_config``: writes a gateway.toml whose state and control socket live in ``short_tmp``.
- ``gatewayd``: starts real ``gatewayd`` processes and kills leftovers at teardown.
- ``captured_logs``: JSON logging into a buffer for the test (``.records()``), defaults restored after.
- ``plugin_dist``: a directory that looks like an installed distribution of a test plugin
  (module + ``*.dist-info`` with an entry point), to put on ``PYTHONPATH``.
"""

from __future__ import annotations

import atexit
import io
import json
import logging
import shutil
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # so that tests can import tests.fakes.*
    sys.path.insert(0, str(ROOT))

from hypothesis import configuration, settings  # noqa: E402

from tests.fakes.daemon_process import GatewaydProcess  # noqa: E402

# No test writes into the checkout: hypothesis keeps no example database, and its caches
# (.hypothesis/ in the working directory by default) go to a temporary directory.
# No per-example deadline: it measures wall time, which on a loaded machine fails examples
# that are merely slow (test_si_round_trip: 285 ms > 200 ms beside a second full run); what
# the property tests prove is not their speed (benchmarks measure that).
settings.register_profile("gateway", database=None, deadline=None)
settings.load_profile("gateway")
_HYPOTHESIS_HOME = tempfile.mkdtemp(prefix="gw-hypothesis-")
configuration.set_hypothesis_home_dir(_HYPOTHESIS_HOME)
atexit.register(shutil.rmtree, _HYPOTHESIS_HOME, ignore_errors=True)


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="gw-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def gateway_config(short_tmp: Path) -> Callable[..., Path]:
    """``gateway_config(extra_toml="", gateway_extra="", name="gateway.toml") -> path``.

    The [gateway] table sets state_dir, control_socket (``short_tmp/control.sock``) and short
    backoffs; ``gateway_extra`` adds lines to it; ``extra_toml`` is appended after [logging].
    """

    def write(extra_toml: str = "", *, gateway_extra: str = "", name: str = "gateway.toml") -> Path:
        path = short_tmp / name
        path.write_text(
            textwrap.dedent(
                f"""\
                [gateway]
                state_dir = "{short_tmp / "state"}"
                control_socket = "{short_tmp / "control.sock"}"
                """
            )
            + ("" if "drain_deadline =" in gateway_extra else 'drain_deadline = "5s"\n')
            + textwrap.dedent(gateway_extra)
            + textwrap.dedent(
                """
                [gateway.restart_backoff]
                initial = "0.05s"
                max = "0.2s"

                [logging]
                level = "info"
                format = "json"
                """
            )
            + textwrap.dedent(extra_toml)
        )
        return path

    return write


@pytest.fixture
def gatewayd(short_tmp: Path) -> Iterator[Callable[..., GatewaydProcess]]:
    """``gatewayd(config, pythonpath=[...], env={...}) -> started GatewaydProcess``."""
    started: list[GatewaydProcess] = []

    def start(config: Path, **kwargs: object) -> GatewaydProcess:
        kwargs.setdefault("socket_path", short_tmp / "control.sock")
        process = GatewaydProcess(config, **kwargs).start()  # type: ignore[arg-type]
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


@pytest.fixture
def plugin_dist(tmp_path: Path) -> Path:
    """A directory holding the gwtest plugin as an installed distribution (entry point ``gwtest``)."""
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(ROOT / "tests" / "fakes" / "gwtest_plugin.py", site / "gwtest_plugin.py")
    info = site / "gwtest_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: gwtest-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[gateway.plugins]\ngwtest = gwtest_plugin\n")
    (info / "top_level.txt").write_text("gwtest_plugin\n")
    return site


class CapturedLogs(io.StringIO):
    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.getvalue().splitlines() if line.strip()]

    def events(self, name: str) -> list[dict]:
        return [r for r in self.records() if r.get("event") == name]


@pytest.fixture
def captured_logs() -> Iterator[CapturedLogs]:
    """Log lines of this test as JSON in a buffer (the gateway's real processors, masking included)."""
    from gateway.logging import configure_logging

    buffer = CapturedLogs()
    configure_logging("debug", fmt="json", stream=buffer)
    try:
        yield buffer
    finally:
        structlog.reset_defaults()
        root = logging.getLogger()
        for handler in list(root.handlers):
            if type(handler).__name__ == "_StdlibBridge":
                root.removeHandler(handler)


# Tests that take ten seconds or more whatever the machine (randomized kill -9 rounds, memory
# over many messages), most of it CPU, and assert no rate: they run in the parallel pass (the
# ``slow`` ones, which do, run alone afterwards). They run first, so that with pytest-xdist
# they do not leave one worker busy long after the others are done; and they form two xdist
# groups (--dist loadgroup), so that at most two of them share the two cores at a time: four
# at once starved each other past their own time limits under load.
_LONG_TESTS = (
    "test_receipt_watch_memory_follows_the_messages_awaited",
    "test_random_kill9_keeps_caps_dnd_and_accepted_contacts",
    "test_two_quick_kills_do_not_exceed_a_daily_cap",
    "test_kill9_mid_campaign_loses_nothing",
    "test_peak_rss_is_flat_from_10_to_100_mb",
)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the xdist_group marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Move the ``slow`` tests (and those in ``_LONG_TESTS``) to the front, in two groups."""

    def long(item: pytest.Item) -> bool:
        name = getattr(item, "originalname", item.name)
        return item.get_closest_marker("slow") is not None or name in _LONG_TESTS

    items.sort(key=lambda item: not long(item))
    for n, item in enumerate(i for i in items if long(i)):
        item.add_marker(pytest.mark.xdist_group(f"long-{n % 2}"))
