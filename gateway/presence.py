"""Subscriber presence: the last signaling event seen per subscriber ("is the phone on?").

A core component (registered in ``gateway.default_plugins``): the pipeline calls
:meth:`PresenceTracker.observe` for every event it reads, with the subscriber's MSISDN when the
profile index knows it (else the event's MSISDN or IMSI), so a channel can ask, before it
spends a trunk on a call, whether the phone was switched off (last event ``power_off``) or
has not been seen for a while. The tracker is bounded: past ``[presence] capacity``
subscribers, the least recently seen is forgotten (an unknown subscriber is "not known", never
"off"). It lives in memory: after a restart presence is rebuilt from the feed.

A channel that waits for subscribers to come back registers a listener
(:meth:`PresenceTracker.add_listener`); it is called synchronously, on the pipeline's path,
for every ``power_on``: it must only queue work.

Settings, in ``[presence]``: ``capacity`` (subscribers remembered, default 1,000,000).
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from gateway.config_reader import TableReader
from gateway.contracts import SectionSpec
from gateway.hookspecs import hookimpl
from gateway.model import EventKind

if TYPE_CHECKING:
    from gateway.app import Gateway

#: ``listener(subject, at)``: called for each ``power_on`` event.
PowerOnListener = Callable[[str, float], None]


@attrs.frozen(kw_only=True)
class PresenceConfig:
    capacity: int = 1_000_000


def parse_presence_config(table: Mapping[str, Any], key: str = "presence") -> PresenceConfig:
    r = TableReader(table, key)
    config = PresenceConfig(capacity=r.int("capacity", 1_000_000, min=1, max=100_000_000))
    r.finish()
    return config


@attrs.define(eq=False)
class PresenceTracker:
    """Last event kind and time per subscriber, least recently seen evicted past ``capacity``."""

    capacity: int = 1_000_000
    _last: OrderedDict[str, tuple[EventKind, float]] = attrs.field(factory=OrderedDict)
    _listeners: list[PowerOnListener] = attrs.field(factory=list)
    evicted: int = 0
    observed: int = 0

    def observe(self, subject: str, kind: EventKind, at: float) -> None:
        """Record an event (on the pipeline's hot path: one dict update)."""
        last = self._last
        previous = last.get(subject)
        if previous is not None and previous[1] > at:
            return  # an older event arriving late does not overwrite the newer state
        last[subject] = (kind, at)
        last.move_to_end(subject)
        self.observed += 1
        if len(last) > self.capacity:
            last.popitem(last=False)
            self.evicted += 1
        if kind is EventKind.POWER_ON:
            for listener in self._listeners:
                listener(subject, at)

    def last(self, subject: str) -> tuple[EventKind, float] | None:
        """``(kind, time)`` of the subscriber's last event, or None when not known."""
        return self._last.get(subject)

    def absent(self, subject: str, now: float, unseen_after: float | None) -> str | None:
        """Why the phone is probably off: ``"power_off"`` (last event), ``"unseen"`` (no
        event for ``unseen_after`` seconds); None when it may be on or is not known."""
        last = self._last.get(subject)
        if last is None:
            return None
        if last[0] is EventKind.POWER_OFF:
            return "power_off"
        if unseen_after is not None and now - last[1] > unseen_after:
            return "unseen"
        return None

    def add_listener(self, listener: PowerOnListener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: PowerOnListener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def statistics(self) -> dict[str, int]:
        return {
            "subscribers": len(self._last),
            "capacity": self.capacity,
            "observed": self.observed,
            "evicted": self.evicted,
        }


@contextlib.asynccontextmanager
async def open_presence(gateway: Gateway) -> AsyncIterator[PresenceTracker]:
    config = gateway.config.sections.get("presence") or PresenceConfig()
    tracker = PresenceTracker(capacity=config.capacity)
    gateway.presence = tracker
    try:
        yield tracker
    finally:
        gateway.presence = None


@hookimpl
def gateway_config_sections() -> Iterable[SectionSpec]:
    return [SectionSpec(name="presence", parse=parse_presence_config, top_level=True)]


@hookimpl
def gateway_stores(gateway: Gateway) -> Iterable[contextlib.AbstractAsyncContextManager[Any]]:
    return [open_presence(gateway)]


@hookimpl
def gateway_status(gateway: Gateway) -> Mapping[str, Any] | None:
    return None if gateway.presence is None else gateway.presence.statistics()
