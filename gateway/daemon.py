"""``gatewayd``: the daemon's lifecycle in one Trio nursery tree.

Start-up order: configuration -> lock of ``state_dir/gatewayd.lock`` (one daemon per state
directory) and a check that no other daemon answers on the control socket -> stores (every
``gateway_stores`` context manager, entered in plugin order) -> ``gateway_start`` ->
registration hooks -> services and channels -> intake (intake services, HTTP host, signal
sources) -> control socket -> systemd ``READY=1`` and watchdog pings. Anything failing before READY stops start-up with an error naming the plugin.

Shutdown (SIGTERM, SIGINT): ``STOPPING=1``; intake is cancelled first; then the pipeline,
services and channels get their ``drain()`` within ``[gateway] drain_deadline``; then every task
is cancelled and the stores are closed in reverse order. Exit code 0. A second signal skips
what is left of the drain.

SIGHUP (or ``gatewayctl reload``): the same file is read again. If it is invalid the daemon
logs ``config.reload_failed`` with every problem and keeps the old configuration; if it is valid
it replaces ``gateway.config`` and calls ``gateway_reload``. Changed keys that only take effect
at the next start (:data:`CORE_RESTART_KEYS`, each ``SectionSpec.restart_keys``) keep their
running value, are logged (``config.restart_required``) and listed in the reply.

The daemon is the composition root: it imports the control socket, the HTTP host and every
core module, and nothing imports it (the control socket sees it as a
:class:`gateway.lifecycle.DaemonView`; the HTTP host gets its section and routes). Its phases
and the effect of each stop request are one state machine, :class:`gateway.lifecycle.Lifecycle`.

Nursery tree::

    core (signals, watchdog)
      [stores: AsyncExitStack, closed after everything below has stopped]
      admin (control socket: answers while draining)
        work (services, channels)            <- drained, then cancelled
          intake (sources, intake services)  <- cancelled first

A SIGTERM during start-up aborts it (``gateway.start_aborted``, exit 0): while stores open it
takes effect once they are open; while plugin objects start, at once. A second signal while a
store opens or closes cancels everything at once (``gateway.stop_forced``).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import gc
import os
import signal
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import pluggy
import structlog
import trio

import gateway
from gateway import logging as gateway_logging
from gateway.app import Gateway
from gateway.config import (
    GatewayConfig,
    check_named_files,
    format_problem,
    load_config,
    parse_config,
    parse_core,
    read_toml,
)
from gateway.contracts import (
    AdminCommand,
    Channel,
    HttpRoute,
    Matcher,
    SectionSpec,
    Service,
    SignalSource,
)
from gateway.control import builtin_commands, check_control_socket, serve_control
from gateway.errors import ConfigError, ConfigProblem, GatewayError, PluginError
from gateway.http import HttpHost
from gateway.http.config import RESTART_KEYS as HTTP_RESTART_KEYS
from gateway.lifecycle import Lifecycle, Phase, StopAction
from gateway.model import SignalEvent
from gateway.plugin_manager import call_each, make_plugin_manager, plugin_names
from gateway.sdnotify import SdNotifier
from gateway.store import make_state_dir
from gateway.supervisor import SupervisedTask, Supervisor, _leaf, describe

DEFAULT_CONFIG = Path("/etc/gateway/gateway.toml")
#: Keys of the core tables that only take effect at the next start, by table. Components and
#: plugins declare theirs with ``SectionSpec.restart_keys``.
CORE_RESTART_KEYS: dict[str, tuple[str, ...]] = {
    "gateway": (
        "state_dir",
        "control_socket",
        "control_socket_mode",
        "disabled_plugins",
        "sqlite_synchronous",
    ),
    # The HTTP host is built once with its listen address, limits, TLS and clients.
    "http": HTTP_RESTART_KEYS,
    # The renderer is chosen once; levels and the masking flag are applied on reload.
    "logging": ("format",),
}

#: The collector's thresholds once running (Python's are 700, 10, 10). Under load every
#: message leaves objects alive for its ~0.1 s in flight, and a young generation of 700 had the
#: collector pass over them again and again: 11 % of the event loop's samples at 9,000
#: messages/s (bench_e2e, py-spy). A larger one collects less often, but each pass stops the
#: loop longer: 25,000 paused it 13-60 ms every 0.6 s (p99 latency 80-110 ms); 10,000 gives
#: the throughput with a p99 of 68 ms (bench_e2e, eight binds).
GC_THRESHOLDS = (10_000, 10, 10)


class DroppingSink:
    """The event sink used when no pipeline is installed: counts events and drops them."""

    def __init__(self, gw: Gateway) -> None:
        self._dropped = gw.metrics.counter("pipeline.events_dropped", reason="no_pipeline")

    async def send(self, events: Sequence[SignalEvent]) -> None:
        self._dropped.inc(len(events))


@attrs.define(eq=False)
class Registered:
    """Objects returned by the registration hooks, with the plugin that returned each."""

    services: list[tuple[str, Service]] = attrs.field(factory=list)
    sources: list[tuple[str, SignalSource]] = attrs.field(factory=list)
    matchers: list[tuple[str, Matcher]] = attrs.field(factory=list)
    channels: list[tuple[str, Channel]] = attrs.field(factory=list)
    commands: list[tuple[str, AdminCommand]] = attrs.field(factory=list)
    routes: list[tuple[str, HttpRoute]] = attrs.field(factory=list)


@attrs.define(eq=False)
class Daemon:
    """One running gateway: configuration, plugins, supervisor and the ``Gateway`` object."""

    config_path: Path
    pm: pluggy.PluginManager
    config: GatewayConfig
    gateway: Gateway = attrs.field(init=False)
    supervisor: Supervisor = attrs.field(init=False)
    notifier: SdNotifier = attrs.field(factory=SdNotifier)
    registered: Registered = attrs.field(factory=Registered)
    commands: dict[str, tuple[str, AdminCommand]] = attrs.field(factory=dict)
    #: The one stop state machine (see gateway.lifecycle); ``state`` is its public face.
    lifecycle: Lifecycle = attrs.field(factory=Lifecycle)
    reloads: int = 0
    # gatewayd's own process (main): after start-up the heap is frozen out of the cyclic
    # collector (an in-process test gateway leaves its host process's collector alone)
    freeze_heap: bool = False
    #: Keys changed by the last reload that only take effect at the next start.
    restart_required: list[str] = attrs.field(factory=list)
    #: Set by the first stop request; what ``_serve`` waits on while running.
    _stop: trio.Event = attrs.field(factory=trio.Event)
    # The cancel scopes a stop request may cancel (which one: Lifecycle.request_stop says).
    _drain_scope: trio.CancelScope | None = None
    _core_scope: trio.CancelScope | None = None
    _startup_scope: trio.CancelScope | None = None
    #: Set once the control socket is listening (tests, embedding).
    control_ready: trio.Event = attrs.field(factory=trio.Event)

    def __attrs_post_init__(self) -> None:
        core = self.config.gateway
        self.gateway = Gateway(config=self.config, hook=self.pm.hook, state_dir=core.state_dir)
        self.supervisor = Supervisor(
            backoff_initial=core.restart_backoff_initial,
            backoff_max=core.restart_backoff_max,
            on_crash=self._count_crash,
        )

    @classmethod
    def from_file(
        cls, path: Path | str, *, extra_plugins: tuple[tuple[str, object], ...] = ()
    ) -> Daemon:
        """Load the plugins and the configuration. Raises ConfigError or PluginError."""
        path = Path(path)
        data = read_toml(path)
        # Only to learn which plugins to skip; its problems are reported by parse_config.
        core = parse_core(data.get("gateway", {}), [], path.resolve().parent)
        pm = make_plugin_manager(core.disabled_plugins, extra=extra_plugins)
        return cls(config_path=path, pm=pm, config=parse_config(data, pm, path=path))

    def _count_crash(self, entry: SupervisedTask) -> None:
        self.gateway.metrics.counter("plugin.task_crashes", plugin=entry.plugin).inc()

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """``starting``, ``running``, ``stopping`` or ``stopped`` (``gatewayctl status``)."""
        return self.lifecycle.phase.public

    def request_stop(self, reason: str = "requested") -> None:
        """Begin a graceful shutdown (what SIGTERM does); a second request cuts it short."""
        log = structlog.get_logger()
        action = self.lifecycle.request_stop()
        if action in (StopAction.BEGIN, StopAction.CANCEL_STARTUP):
            log.info("gateway.stopping", reason=reason)
            self._stop.set()
            if action is StopAction.CANCEL_STARTUP and self._startup_scope is not None:
                self._startup_scope.cancel()
        elif action is StopAction.SKIP_DRAIN:
            log.warning("gateway.drain_skipped", reason=reason)
            if self._drain_scope is not None:
                self._drain_scope.cancel()
        elif action is StopAction.FORCE:
            # A store opening or closing that hangs: nothing else would ever stop it.
            log.warning("gateway.drain_skipped", reason=reason)
            log.warning("gateway.stop_forced", reason=reason)
            if self._core_scope is not None:
                self._core_scope.cancel()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until stopped; see the module docstring for the order of things."""
        log = structlog.get_logger()
        gw = self.gateway
        try:
            make_state_dir(gw.state_dir)
        except OSError as exc:
            raise GatewayError(
                f"cannot create the state directory {gw.state_dir}: {exc.strerror or exc}"
            ) from exc
        log.info(
            "gateway.starting",
            version=gateway.__version__,
            config=str(self.config_path),
            plugins=plugin_names(self.pm),
        )
        # Before any store opens: two daemons on one state directory would send twice.
        with lock_state_dir(gw.state_dir):
            check_control_socket(self.config.gateway.control_socket)
            await self._run_locked(task_status)
        self.lifecycle.advance(Phase.STOPPED)
        log.info("gateway.stopped")

    async def _run_locked(self, task_status: trio.TaskStatus[None]) -> None:
        log = structlog.get_logger()
        gw = self.gateway
        async with trio.open_nursery() as core:
            self._core_scope = core.cancel_scope
            # Signals first: a SIGTERM during start-up is handled (start-up stops at the next step).
            core.start_soon(self._serve_signals)
            async with contextlib.AsyncExitStack() as stores:
                try:
                    # Not inside a cancel scope: a store may open a nursery that must outlive it.
                    self.notifier.notify(STATUS="opening stores")
                    await self._open_stores(stores)
                    if self.lifecycle.stop_requested:
                        log.warning("gateway.start_aborted", phase="stores")
                    else:
                        self.lifecycle.advance(Phase.STARTING)
                        call_each(self.pm, "gateway_start", gateway=gw)
                        self._collect()
                        await self._serve(core, task_status)
                finally:
                    # A second signal now cancels the closing.
                    self.lifecycle.advance(Phase.CLOSING)
            core.cancel_scope.cancel()

    async def _open_stores(self, stores: contextlib.AsyncExitStack) -> None:
        for plugin, managers in call_each(self.pm, "gateway_stores", gateway=self.gateway):
            for manager in managers:
                try:
                    await stores.enter_async_context(manager)
                except Exception as exc:
                    raise PluginError(plugin, f"store failed to open: {describe(exc)}") from exc

    async def _serve(self, core: trio.Nursery, task_status: trio.TaskStatus[None]) -> None:
        """Start every object, serve until stopped, then stop intake, drain, cancel."""
        log = structlog.get_logger()
        # The control socket outlives the work (status answers while draining) but not the stores.
        async with trio.open_nursery() as admin:
            async with trio.open_nursery() as work:
                async with trio.open_nursery() as intake:
                    with trio.CancelScope() as self._startup_scope:
                        self.notifier.notify(STATUS="starting plugins")
                        await self._start_all(work, intake)
                        await admin.start(serve_control, self)
                    if self._startup_scope.cancelled_caught:
                        log.warning("gateway.start_aborted", phase="plugins")
                    else:
                        self.control_ready.set()
                        self.lifecycle.advance(Phase.RUNNING)
                        if self.freeze_heap:
                            # What start-up built (profiles, lists, rules, code) lives as long
                            # as the daemon: out of the collector's full passes, which walked
                            # all of it again and again under load (a tenth of the decision
                            # time with a 1,000,000-entry list; bench_contact).
                            gc.freeze()
                            gc.set_threshold(*GC_THRESHOLDS)
                        self.notifier.notify(READY=1, STATUS="running", MAINPID=os.getpid())
                        await core.start(self.notifier.serve_watchdog, self._work_moving)
                        log.info(
                            "gateway.ready",
                            tasks=len(self.supervisor.tasks),
                            startup_s=round(time.time() - self.gateway.started_at, 3),
                        )
                        task_status.started()
                        await self._stop.wait()
                    self.lifecycle.advance(Phase.DRAINING)
                    self.notifier.notify(STOPPING=1, STATUS="draining")
                    self.supervisor.cancel({"source", "intake"})
                    intake.cancel_scope.cancel()
                await self._drain()
                self.supervisor.cancel()
                work.cancel_scope.cancel()
            admin.cancel_scope.cancel()

    def _work_moving(self) -> str | None:
        """For the watchdog: why work is stuck (a write waiting too long for durability), or None."""
        writer = getattr(self.gateway.ledger, "writer", None)
        return writer.stall_reason() if writer is not None else None

    def _collect(self) -> None:
        """Call the registration hooks once; objects are started later by ``_start_all``."""
        gw, reg = self.gateway, self.registered
        for attr, hook in (
            ("services", "gateway_services"),
            ("sources", "gateway_signal_sources"),
            ("matchers", "gateway_matchers"),
            ("channels", "gateway_channels"),
            ("commands", "gateway_admin_commands"),
            ("routes", "gateway_http_routes"),
        ):
            target = getattr(reg, attr)
            for plugin, objects in call_each(self.pm, hook, gateway=gw):
                target.extend((plugin, obj) for obj in objects)
        gw.matchers = [m for _, m in reg.matchers]
        for plugin, channel in reg.channels:
            if channel.name in gw.channels:
                raise PluginError(plugin, f"channel name {channel.name!r} is already registered")
            gw.channels[channel.name] = channel
        self.commands = {c.name: ("core", c) for c in builtin_commands(self)}
        for plugin, command in reg.commands:
            if command.name in self.commands:
                owner = self.commands[command.name][0]
                raise PluginError(
                    plugin, f"admin command {command.name!r} is already registered by {owner}"
                )
            self.commands[command.name] = (plugin, command)

    async def _start_all(self, work: trio.Nursery, intake: trio.Nursery) -> None:
        sup, reg = self.supervisor, self.registered
        for plugin, service in reg.services:
            if not getattr(service, "intake", False):
                await sup.start(work, service, plugin=plugin, kind="service")
        for plugin, channel in reg.channels:
            await sup.start(work, channel, plugin=plugin, kind="channel")
        for plugin, service in reg.services:
            if getattr(service, "intake", False):
                await sup.start(intake, service, plugin=plugin, kind="intake")
        if reg.routes:
            host = HttpHost(self.config.http, reg.routes)
            if host.enabled:
                await sup.start(intake, host, plugin="core", kind="intake")
            else:
                structlog.get_logger().warning(
                    "http.not_served",
                    routes=len(reg.routes),
                    hint="set [http] listen to serve plugin HTTP routes",
                )
        sink = (
            self.gateway.pipeline
            if self.gateway.pipeline is not None
            else DroppingSink(self.gateway)
        )
        for plugin, source in reg.sources:
            await sup.start(intake, source, plugin=plugin, kind="source", args=(sink,))

    async def _drain(self) -> None:
        """Await every ``drain()`` (pipeline, services, channels) within the deadline."""
        log = structlog.get_logger()
        deadline = self.config.gateway.drain_deadline
        reg = self.registered
        # Only objects that were started: after a start-up abort, one that never ran has
        # nothing in flight, and its drain() could wait for a run loop that does not exist.
        ran = {id(t.obj) for t in self.supervisor.tasks if t.state != "starting"}
        groups: list[list[tuple[str, object]]]
        groups = [
            [("core", self.gateway.pipeline)] if self.gateway.pipeline is not None else [],
            [(p, s) for p, s in reg.services if not getattr(s, "intake", False) and id(s) in ran],
            [(p, c) for p, c in reg.channels if id(c) in ran],
        ]
        started = trio.current_time()
        with trio.move_on_after(deadline) as scope:
            self._drain_scope = scope
            if self.lifecycle.skip_drain:  # a second signal arrived while intake was stopping
                scope.cancel()
            for group in groups:
                async with trio.open_nursery() as nursery:
                    for plugin, obj in group:
                        if callable(getattr(obj, "drain", None)):
                            nursery.start_soon(self._drain_one, plugin, obj)
        self._drain_scope = None
        elapsed = round(trio.current_time() - started, 3)
        if scope.cancelled_caught:
            log.warning("gateway.drain_incomplete", deadline_s=deadline, elapsed_s=elapsed)
        else:
            log.info("gateway.drained", elapsed_s=elapsed)

    async def _drain_one(self, plugin: str, obj: Any) -> None:  # Any: drain() is optional
        try:
            await obj.drain()
        except Exception as exc:
            structlog.get_logger().error(
                "plugin.drain_failed",
                plugin=plugin,
                name=getattr(obj, "name", None),
                error=describe(exc),
            )

    async def _serve_signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async for signum in signals:
                if signum == signal.SIGHUP:
                    try:
                        self.reload(reason="SIGHUP")
                    except Exception as exc:  # a reload bug must not take the daemon down
                        structlog.get_logger().error(
                            "config.reload_failed",
                            reason="SIGHUP",
                            problems=[describe(exc)],
                            kept="previous configuration",
                        )
                else:
                    self.request_stop(signal.Signals(signum).name)

    # -- reload ---------------------------------------------------------------------------

    def reload(self, *, reason: str = "requested") -> ConfigError | None:
        """Load the configuration file again; returns the error if it is invalid (old one kept)."""
        log = structlog.get_logger()
        if self.lifecycle.phase is not Phase.RUNNING:
            log.warning("config.reload_ignored", reason=reason, state=self.state)
            return ConfigError(_problem(f"the gateway is {self.state}; reload when it is running"))
        try:
            new = load_config(self.config_path, self.pm)
        except ConfigError as exc:
            problems = [format_problem(p) for p in exc.problems]
            log.error(
                "config.reload_failed",
                reason=reason,
                problems=problems,
                kept="previous configuration",
            )
            return exc
        except PluginError as exc:
            log.error(
                "config.reload_failed",
                reason=reason,
                problems=[str(exc)],
                kept="previous configuration",
            )
            return ConfigError(_problem(str(exc)))
        specs = [
            spec for _, specs in call_each(self.pm, "gateway_config_sections") for spec in specs
        ]
        self.restart_required, new = keep_restart_keys(self.config, new, specs)
        if self.restart_required:
            log.warning(
                "config.restart_required",
                keys=self.restart_required,
                hint="these changes take effect at the next start; the running values are kept",
            )
        self.config = new
        self.gateway.config = new
        self.supervisor.backoff_initial = new.gateway.restart_backoff_initial
        self.supervisor.backoff_max = new.gateway.restart_backoff_max
        gateway_logging.update_levels(new.logging)
        self.reloads += 1

        def failed(plugin: str, exc: Exception) -> None:
            log.error("config.reload_hook_failed", plugin=plugin, error=describe(exc))

        call_each(self.pm, "gateway_reload", gateway=self.gateway, on_error=failed)
        log.info("config.reloaded", reason=reason, reloads=self.reloads)
        return None

    def check_config(self, path: Path | None = None) -> ConfigError | None:
        """Validate the file on disk (or ``path``) without applying it."""
        try:
            load_config(path or self.config_path, self.pm)
        except ConfigError as exc:
            return exc
        except PluginError as exc:
            return ConfigError(_problem(str(exc)))
        return None


def keep_restart_keys(
    running: GatewayConfig, new: GatewayConfig, specs: Iterable[SectionSpec]
) -> tuple[list[str], GatewayConfig]:
    """Compare a reloaded configuration with the running one, key by key.

    Returns the dotted keys that changed but only take effect at the next start
    (:data:`CORE_RESTART_KEYS` and every ``SectionSpec.restart_keys``), and ``new`` with the
    running values kept for those keys, so that ``gateway.config`` says what is in force. A
    second reload of the same file therefore lists the same keys again until the restart.
    """
    changed: list[str] = []

    def kept(table: str, old: Any, fresh: Any, keys: Iterable[str]) -> Any:
        differ = [k for k in keys if getattr(old, k, None) != getattr(fresh, k, None)]
        changed.extend(f"{table}.{k}" for k in differ)
        if not differ or not attrs.has(type(fresh)):
            return fresh
        return attrs.evolve(fresh, **{k: getattr(old, k) for k in differ})

    core = {
        table: kept(table, getattr(running, table), getattr(new, table), keys)
        for table, keys in CORE_RESTART_KEYS.items()
    }
    sections, plugins = dict(new.sections), dict(new.plugins)
    for spec in specs:
        if not spec.restart_keys:
            continue
        table, found = (
            (spec.name, sections) if spec.top_level else (f"plugins.{spec.name}", plugins)
        )
        old_section = (running.sections if spec.top_level else running.plugins).get(spec.name)
        if spec.name in found and old_section is not None:
            found[spec.name] = kept(table, old_section, found[spec.name], spec.restart_keys)
    merged = attrs.evolve(new, sections=sections, plugins=plugins, **core)
    return changed, merged


@contextlib.contextmanager
def lock_state_dir(state_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``state_dir/gatewayd.lock`` (with our pid in it) while running.

    Raises GatewayError naming the other process when the lock is taken. The lock goes away
    with the process, even after kill -9.
    """
    path = state_dir / "gatewayd.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
    except OSError as exc:
        raise GatewayError(
            f"cannot open {path}: {exc.strerror or exc} (check the owner of gateway.state_dir)"
        ) from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise GatewayError(
                f"another gatewayd (pid {other}) uses the state directory {state_dir}; "
                "stop it or set another gateway.state_dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def _problem(message: str) -> ConfigProblem:
    return ConfigProblem("", message)


# ------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------


def demo_config_path() -> Path:
    """``etc/demo/gateway.toml`` of the source checkout (or of the working directory)."""
    for base in (Path(gateway.__file__).resolve().parent.parent, Path.cwd()):
        candidate = base / "etc" / "demo" / "gateway.toml"
        if candidate.exists():
            return candidate
    raise ConfigError(_problem("etc/demo/gateway.toml not found (run from the source checkout)"))


def check_config(path: Path) -> int:
    """``gatewayd --check-config``: print every problem (exit 1) or "config ok" (exit 0).

    Besides the file itself, the files it names (areas, campaigns, profiles) are read and parsed.
    """
    try:
        daemon = Daemon.from_file(path)
        named_file_problems = check_named_files(daemon.config, daemon.pm)
        if named_file_problems:
            raise ConfigError(named_file_problems)
    except ConfigError as exc:
        for problem in exc.problems:
            print(format_problem(problem), file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) in {path}", file=sys.stderr)
        return 1
    except PluginError as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 1
    print(f"config ok: {path}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gatewayd", description="The marketing contact gateway daemon."
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--config", type=Path, help=f"configuration file (default {DEFAULT_CONFIG})")
    group.add_argument(
        "--check-config", type=Path, metavar="PATH", help="validate PATH, print every problem, exit"
    )
    group.add_argument(
        "--demo", action="store_true", help="run with etc/demo/gateway.toml (console logs)"
    )
    parser.add_argument("--version", action="version", version=f"gatewayd {gateway.__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.check_config:
        return check_config(args.check_config)
    # SIGHUP's default action kills: ignore it until the signal receiver takes over (a reload
    # or logrotate's HUP while the configuration and plugins load must not stop the daemon).
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    gateway_logging.configure_logging("info", fmt="console" if args.demo else "auto")
    log = structlog.get_logger()
    try:
        path = demo_config_path() if args.demo else (args.config or DEFAULT_CONFIG)
        daemon = Daemon.from_file(path)
        daemon.freeze_heap = True
    except ConfigError as exc:
        log.error("config.invalid", problems=[format_problem(p) for p in exc.problems])
        for problem in exc.problems:
            print(format_problem(problem), file=sys.stderr)
        return 1
    except PluginError as exc:
        log.error("gateway.start_failed", plugin=exc.plugin, error=str(exc))
        print(str(exc), file=sys.stderr)
        return 1
    gateway_logging.configure_from_config(
        daemon.config.logging, force_format="console" if args.demo else None
    )
    try:
        trio.run(daemon.run)
    except Exception as exc:
        leaf = _leaf(exc)
        if not isinstance(leaf, GatewayError):
            log.critical("gateway.crashed", error=describe(exc), exc_info=leaf)
            return 1
        log.error("gateway.start_failed", plugin=getattr(leaf, "plugin", None), error=str(leaf))
        print(str(leaf), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
