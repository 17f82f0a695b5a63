"""The systemd notification protocol (sd_notify), without a dependency.

systemd passes ``$NOTIFY_SOCKET``: a Unix datagram socket path, or an abstract socket name
written with a leading ``@``. Each notification is one datagram of ``KEY=VALUE`` lines
(``READY=1``, ``STOPPING=1``, ``WATCHDOG=1``, ``STATUS=...``); see sd_notify(3). With
``Type=notify`` systemd considers the service started at ``READY=1``; with ``WatchdogSec=``
it kills the service if no ``WATCHDOG=1`` arrives within ``$WATCHDOG_USEC`` microseconds, so
we ping at half of that.

Without ``$NOTIFY_SOCKET`` (not under systemd) every call is a no-op.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping

import structlog
import trio


class SdNotifier:
    """Sends notifications to the socket named by ``$NOTIFY_SOCKET`` (if any)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        name = env.get("NOTIFY_SOCKET", "")
        self.address: str | bytes | None = None
        if name.startswith("@"):
            self.address = "\0" + name[1:]
        elif name.startswith("/"):
            self.address = name
        self.watchdog_interval = _watchdog_interval(env)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, **fields: str | int) -> bool:
        """Send ``KEY=VALUE`` lines (``notify(READY=1, STATUS="ready")``). True if sent."""
        if self.address is None:
            return False
        message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)
                sock.sendto(message, self.address)
        except OSError as exc:
            structlog.get_logger().warning(
                "sdnotify.send_failed", error=str(exc), fields=list(fields)
            )
            return False
        return True

    async def serve_watchdog(
        self,
        healthy: Callable[[], str | None] | None = None,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Ping ``WATCHDOG=1`` at half the watchdog interval until cancelled (no-op if unset).

        ``healthy()`` returns None while work is moving, or why it is not: then no ping is
        sent (systemd restarts a service that stays stuck past ``WatchdogSec``), and the
        reason is logged once, with a second line when pings resume.
        """
        task_status.started()
        if self.watchdog_interval is None or not self.enabled:
            return
        log = structlog.get_logger()
        withheld: str | None = None
        while True:
            reason = healthy() if healthy is not None else None
            if reason is None:
                if withheld is not None:
                    log.warning("sdnotify.watchdog_resumed", was=withheld)
                    withheld = None
                self.notify(WATCHDOG=1)
            elif withheld is None:
                withheld = reason
                log.error("sdnotify.watchdog_withheld", reason=reason)
            await trio.sleep(self.watchdog_interval / 2)


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    """Seconds from ``$WATCHDOG_USEC``, if it applies to this process (``$WATCHDOG_PID``)."""
    usec = env.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 1_000_000 if value > 0 else None
