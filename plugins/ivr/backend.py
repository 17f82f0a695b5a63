"""The two switch backends behind one small interface, and per-trunk pacing.

``AmiBackend`` (Asterisk Manager Interface) and ``EslBackend`` (FreeSWITCH event socket) both
``run`` a client that connects, logs in and reconnects, and place one call with ``call``; the
channel does not know which one it talks to. A ``CallEnd`` (from either adapter) has
``call_id``, ``result``, ``digits``, ``duration`` and ``cause``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import attrs
import trio

from adapters.ami.client import AmiClient
from adapters.esl.client import EslClient
from plugins.ivr.config import IvrConfig, TrunkConfig


class CallBackend(Protocol):
    stats: dict[str, int]

    @property
    def connected(self) -> bool: ...

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None: ...

    async def call(
        self, call_id: str, number: str, trunk: str, variables: Mapping[str, str]
    ) -> Any: ...


@attrs.define(eq=False)
class _ClientBackend:
    """What both backends take from their client: counters, link state, its run loop."""

    config: IvrConfig
    client: Any

    @property
    def stats(self) -> dict[str, int]:
        return self.client.stats

    @property
    def connected(self) -> bool:
        return self.client.connected

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        await self.client.run(task_status=task_status)


@attrs.define(eq=False)
class AmiBackend(_ClientBackend):
    client: AmiClient

    @classmethod
    def from_config(cls, config: IvrConfig, clock: Callable[[], float]) -> AmiBackend:
        client = AmiClient(
            config.host or "127.0.0.1",
            config.port,
            config.username,
            config.secret,
            auth=config.auth,
            reconnect_initial=config.reconnect_initial,
            reconnect_max=config.reconnect_max,
            clock=clock,
        )
        return cls(config, client)

    async def call(
        self, call_id: str, number: str, trunk: str, variables: Mapping[str, str]
    ) -> Any:
        c = self.config
        return await self.client.originate(
            call_id,
            c.dial.format(number=number, trunk=trunk),
            context=c.context,
            exten=c.exten,
            application=c.application,
            data=c.application_data,
            variables=variables,
            timeout=c.ring_timeout,
        )


@attrs.define(eq=False)
class EslBackend(_ClientBackend):
    client: EslClient

    @classmethod
    def from_config(cls, config: IvrConfig, clock: Callable[[], float]) -> EslBackend:
        client = EslClient(
            config.host or "127.0.0.1",
            config.port,
            config.secret,
            reconnect_initial=config.reconnect_initial,
            reconnect_max=config.reconnect_max,
            clock=clock,
        )
        return cls(config, client)

    async def call(
        self, call_id: str, number: str, trunk: str, variables: Mapping[str, str]
    ) -> Any:
        c = self.config
        return await self.client.originate(
            call_id,
            c.dial.format(number=number, trunk=trunk),
            c.target,
            variables=variables,
            timeout=c.ring_timeout,
        )


def make_backend(config: IvrConfig, clock: Callable[[], float]) -> CallBackend:
    if config.backend == "esl":
        return EslBackend.from_config(config, clock)
    return AmiBackend.from_config(config, clock)


@attrs.define(eq=False)
class TrunkPacer:
    """One trunk's pacing: at most ``concurrent`` calls up, originates ``1/calls_per_second``
    apart (Trio's clock). ``acquire_nowait`` is synchronous so that the channel's count of free
    slots and the trunks' never disagree."""

    config: TrunkConfig
    active: int = 0
    max_active: int = 0
    originated: int = 0
    _next_at: float = 0.0

    @property
    def free(self) -> int:
        return self.config.concurrent - self.active

    def acquire_nowait(self) -> None:
        assert self.active < self.config.concurrent
        self.active += 1
        self.max_active = max(self.max_active, self.active)

    def release(self) -> None:
        self.active -= 1

    async def pace(self) -> None:
        """Wait for this call's originate slot (each caller reserves the next one first)."""
        now = trio.current_time()
        at = max(now, self._next_at)
        self._next_at = at + 1.0 / self.config.calls_per_second
        self.originated += 1
        await trio.sleep_until(at)
