"""Running plugin objects under supervision.

Every object a registration hook returns (service, signal source, channel) is started by
:meth:`Supervisor.start`: ``await nursery.start(...)`` waits until the object's ``run`` calls
``task_status.started()``. A failure before that, at start-up, is a start-up error naming the
plugin and the object. A crash after it is logged with its traceback (``plugin.task_crashed``)
and the object is started again after an exponential backoff, so one broken plugin never takes
the daemon down. Cancellation is never caught: shutdown is the nursery's job.
"""

from __future__ import annotations

import traceback
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import attrs
import structlog
import trio

from gateway.errors import PluginError

if TYPE_CHECKING:
    from gateway.contracts import Service, SignalSource

#: After running this long without a crash, the backoff starts again from ``initial``.
STABLE_AFTER_S = 60.0


@attrs.define(eq=False)
class SupervisedTask:
    """What ``gatewayctl status`` shows about one supervised object."""

    name: str
    plugin: str
    kind: str  # service, source, channel, http
    #: A Service, Channel or the HTTP host (same shape), or a SignalSource.
    obj: Service | SignalSource
    state: str = "starting"  # starting, running, restarting, failed, finished, stopped
    restarts: int = 0
    last_error: str | None = None
    cancel_scope: trio.CancelScope | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "plugin": self.plugin,
            "kind": self.kind,
            "state": self.state,
            "restarts": self.restarts,
            "last_error": self.last_error,
        }


def _leaf(exc: BaseException) -> BaseException:
    """The single exception inside (nested) one-member exception groups."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def describe(exc: BaseException) -> str:
    leaf = _leaf(exc)
    return f"{type(leaf).__name__}: {leaf}"


@attrs.define(eq=False)
class Supervisor:
    """Starts objects' ``run`` methods and restarts them when they crash."""

    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    tasks: list[SupervisedTask] = attrs.field(factory=list)
    #: Called with the SupervisedTask after each crash (metrics); must not raise.
    on_crash: Callable[[SupervisedTask], None] | None = None

    async def start(
        self,
        nursery: trio.Nursery,
        obj: Service | SignalSource,
        *,
        plugin: str,
        kind: str,
        run: Callable[..., Awaitable[None]] | None = None,
        args: tuple[Any, ...] = (),
    ) -> SupervisedTask:
        """Start ``run(*args, task_status=...)`` (default ``obj.run``) in ``nursery``.

        Returns once it has started. Raises PluginError if it fails before starting.
        """
        name = str(getattr(obj, "name", type(obj).__name__))
        entry = SupervisedTask(name=name, plugin=plugin, kind=kind, obj=obj)
        self.tasks.append(entry)
        try:
            await nursery.start(self._supervise, entry, run or obj.run, args)
        except Exception as exc:
            self.tasks.remove(entry)
            raise PluginError(
                plugin, f"{kind} {name!r} failed to start: {describe(exc)}"
            ) from _leaf(exc)
        return entry

    async def _supervise(
        self,
        entry: SupervisedTask,
        run: Callable[..., Awaitable[None]],
        args: tuple[Any, ...],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        log = structlog.get_logger().bind(plugin=entry.plugin, task=entry.name, kind=entry.kind)
        delay = self.backoff_initial
        first = True
        with trio.CancelScope() as scope:
            entry.cancel_scope = scope
            while True:
                started_at = trio.current_time()
                running = False
                try:
                    async with trio.open_nursery() as inner:
                        await inner.start(_call, run, args)
                        running = True
                        entry.state = "running"
                        if first:
                            first = False
                            task_status.started()
                        elif entry.restarts:
                            log.info("plugin.task_restarted", restarts=entry.restarts)
                except Exception as exc:
                    if first:
                        raise
                    leaf = _leaf(exc)
                    entry.last_error = describe(exc)
                    entry.restarts += 1
                    # "failed": the last attempt could not even start; "restarting": it crashed.
                    entry.state = "restarting" if running else "failed"
                    if trio.current_time() - started_at > STABLE_AFTER_S:
                        delay = self.backoff_initial
                    log.error(
                        "plugin.task_crashed",
                        error=entry.last_error,
                        restarts=entry.restarts,
                        retry_in_s=round(delay, 3),
                        traceback="".join(traceback.format_exception(leaf)),
                    )
                    if self.on_crash is not None:
                        self.on_crash(entry)
                    await trio.sleep(delay)
                    delay = min(delay * 2, self.backoff_max)
                    continue
                # run returned by itself: its work is done.
                entry.state = "finished"
                if first:
                    task_status.started()
                log.info("plugin.task_finished")
                return

    def cancel(self, kinds: set[str] | None = None) -> None:
        """Cancel supervised tasks (of the given kinds); they are not restarted."""
        for entry in self.tasks:
            if (kinds is None or entry.kind in kinds) and entry.cancel_scope is not None:
                entry.cancel_scope.cancel()
                entry.state = "stopped"

    def snapshot(self) -> list[dict[str, Any]]:
        return [entry.as_dict() for entry in self.tasks]


async def _call(
    run: Callable[..., Awaitable[None]],
    args: tuple[Any, ...],
    *,
    task_status: trio.TaskStatus[None],
) -> None:
    await run(*args, task_status=task_status)
