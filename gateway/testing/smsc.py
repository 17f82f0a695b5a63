"""The bundled SMSC simulator as a test fixture: real SMPP 3.4 over loopback TCP."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import attrs
import trio

from adapters.smpp.simulator import SimulatorConfig, SmscSimulator


@attrs.frozen(kw_only=True)
class SmscHandle:
    """A running simulator: point an ``[[plugins.sms_smpp.smsc]]`` table at ``host:port``
    with ``system_id``/``password`` from :attr:`credentials`."""

    simulator: SmscSimulator
    host: str
    port: int

    @property
    def config(self) -> SimulatorConfig:
        """Change faults while it runs (``throttle_every``, ``receipt_delay``...)."""
        return self.simulator.config

    @property
    def credentials(self) -> dict[str, str]:
        return self.simulator.config.credentials

    def texts(self) -> list[str | bytes]:
        """The texts of the messages submitted so far (long messages reassembled)."""
        return self.simulator.texts()


@contextlib.asynccontextmanager
async def open_smsc_simulator(host: str = "127.0.0.1", **config: Any) -> AsyncIterator[SmscHandle]:
    """Start the simulator on ``host`` port 0 in a nursery; ``config`` sets
    :class:`~adapters.smpp.simulator.SimulatorConfig` fields. Stopped on exit."""
    simulator = SmscSimulator(config=SimulatorConfig(**config))
    async with trio.open_nursery() as nursery:
        port = await nursery.start(simulator.serve, host, 0)
        try:
            yield SmscHandle(simulator=simulator, host=host, port=port)
        finally:
            nursery.cancel_scope.cancel()
