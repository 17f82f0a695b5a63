"""A third-party plugin used by the daemon tests, installed through a real entry point.

The tests copy this module into a temporary directory next to a ``gwtest_plugin-0.1.dist-info``
(METADATA + entry_points.txt declaring ``gwtest = gwtest_plugin`` in the ``gateway.plugins``
group) and put that directory on ``PYTHONPATH`` of a ``gatewayd`` subprocess, so it is found
by ``importlib.metadata`` exactly like an installed distribution.

Every hook call is appended as one line to ``marker_file`` so the tests can see which hooks the
daemon called and in which order. Behaviour is driven by ``[plugins.gwtest]``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import structlog
import trio

from gateway import hookimpl
from gateway.config_reader import TableReader
from gateway.contracts import AdminCommand, AdminReply, HttpResponse, HttpRoute, SectionSpec
from gateway.errors import AdminCommandError
from gateway.model import EventKind, SignalEvent

NAME = "gwtest"


@attrs.frozen(kw_only=True)
class GwTestConfig:
    marker_file: str | None = None
    crash_after: float = 0.0  # the crashing service dies this long after each start (0: never)
    fail_start: bool = False  # the service raises before task_status.started()
    drain_seconds: float = 0.0  # how long the channel's drain() takes
    greeting: str = "hello"
    store_open_delay: float = 0.0  # the store takes this long to open
    store_close_delay: float = 0.0  # the store takes this long to close
    service_start_delay: float = 0.0  # the service takes this long before it has started


def parse(table: Mapping[str, Any], key: str) -> GwTestConfig:
    r = TableReader(table, key)
    cfg = GwTestConfig(
        marker_file=r.str("marker_file", None),
        crash_after=r.duration("crash_after", 0.0),
        fail_start=r.bool("fail_start", False),
        drain_seconds=r.duration("drain_seconds", 0.0),
        greeting=r.str("greeting", "hello"),
        store_open_delay=r.duration("store_open_delay", 0.0),
        store_close_delay=r.duration("store_close_delay", 0.0),
        service_start_delay=r.duration("service_start_delay", 0.0),
    )
    r.finish()
    return cfg


_config = GwTestConfig()


def mark(line: str) -> None:
    if _config.marker_file:
        with open(_config.marker_file, "a") as f:
            f.write(line + "\n")


@hookimpl
def gateway_config_sections():
    return [SectionSpec(name=NAME, parse=parse)]


@hookimpl
def gateway_stores(gateway):
    global _config
    _config = gateway.plugin_config(NAME)

    @contextlib.asynccontextmanager
    async def store():
        mark("gateway_stores opening")
        await trio.sleep(_config.store_open_delay)
        mark("gateway_stores open")
        try:
            yield
        finally:
            if _config.store_close_delay:
                mark("gateway_stores closing")
                await trio.sleep(_config.store_close_delay)
            mark("gateway_stores closed")

    return [store()]


@hookimpl
def gateway_start(gateway):
    mark("gateway_start")
    structlog.get_logger().info(
        "gwtest.started",
        plugin=NAME,
        msisdn="8613812345678",
        note="subscriber 13912345678 seen",
        imsi="460001234567890",
    )


@hookimpl
def gateway_reload(gateway):
    global _config
    _config = gateway.plugin_config(NAME)
    mark(f"gateway_reload greeting={_config.greeting}")


class CrashingService:
    name = "crasher"

    def __init__(self, cfg: GwTestConfig) -> None:
        self.cfg = cfg
        self.starts = 0

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED):
        self.starts += 1
        if self.cfg.fail_start:
            raise RuntimeError("cannot open the gwtest thing")
        if self.cfg.service_start_delay:
            mark("service_starting")
            await trio.sleep(self.cfg.service_start_delay)
        task_status.started()
        mark(f"service_started {self.starts}")
        if self.cfg.crash_after:
            await trio.sleep(self.cfg.crash_after)
            raise ValueError(f"gwtest crash number {self.starts}")
        await trio.sleep_forever()


class GwChannel:
    name = "gwtest_channel"

    def __init__(self, cfg: GwTestConfig) -> None:
        self.cfg = cfg

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED):
        task_status.started()
        mark("channel_started")
        await trio.sleep_forever()

    async def drain(self) -> None:
        mark("drain_begin")
        await trio.sleep(self.cfg.drain_seconds)
        mark("drain_done")


class GwSource:
    name = "gwtest_source"

    async def run(self, sink, *, task_status=trio.TASK_STATUS_IGNORED):
        task_status.started()
        await sink.send(
            [SignalEvent(kind=EventKind.POWER_ON, timestamp=0.0, imsi="460001234567890")]
        )
        mark("source_sent")
        await trio.sleep_forever()


class GwMatcher:
    name = "gwtest_matcher"

    def match(self, event, subscriber):
        return []


@hookimpl
def gateway_services(gateway):
    mark("gateway_services")
    return [CrashingService(gateway.plugin_config(NAME))]


@hookimpl
def gateway_channels(gateway):
    mark("gateway_channels")
    return [GwChannel(gateway.plugin_config(NAME))]


@hookimpl
def gateway_signal_sources(gateway):
    mark("gateway_signal_sources")
    return [GwSource()]


@hookimpl
def gateway_matchers(gateway):
    mark("gateway_matchers")
    return [GwMatcher()]


@hookimpl
def gateway_http_routes(gateway):
    mark("gateway_http_routes")

    async def hello(request):
        return HttpResponse(body=f"{_config.greeting} {request.query.get('name', '')}".encode())

    return [HttpRoute(method="GET", path="/gwtest/hello", handler=hello)]


@hookimpl
def gateway_admin_commands(gateway):
    mark("gateway_admin_commands")

    async def echo(argv):
        if argv[:1] == ["boom"]:
            raise RuntimeError("gwtest handler exploded")
        if argv[:1] == ["refuse"]:
            raise AdminCommandError("gwtest refuses politely")
        return AdminReply(data={"argv": argv, "greeting": _config.greeting}, text=" ".join(argv))

    return [AdminCommand(name="gwtest", help="echo the arguments", handler=echo, usage="WORDS...")]


@hookimpl
def gateway_status(gateway):
    return {"greeting": _config.greeting}


def marker_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []
