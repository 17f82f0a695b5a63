"""In-process counters and gauges, shown by ``gatewayctl status`` and ``gatewayctl metrics``.

Deliberately tiny: a counter is a name plus sorted labels mapped to a number. Hot paths keep a
reference to the :class:`Counter` they increment instead of looking it up each time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs


@attrs.define(slots=True, eq=False)
class Counter:
    name: str
    labels: tuple[tuple[str, str], ...]
    value: int = 0

    def inc(self, amount: int = 1) -> None:
        self.value += amount


@attrs.define
class Metrics:
    """A registry of counters and gauges. Gauges are callables read at snapshot time."""

    _counters: dict[tuple[str, tuple[tuple[str, str], ...]], Counter] = attrs.field(factory=dict)
    _gauges: dict[str, Callable[[], Any]] = attrs.field(factory=dict)

    def counter(self, name: str, **labels: str) -> Counter:
        key = (name, tuple(sorted(labels.items())))
        found = self._counters.get(key)
        if found is None:
            found = self._counters[key] = Counter(name, key[1])
        return found

    def gauge(self, name: str, read: Callable[[], Any]) -> None:
        self._gauges[name] = read

    def snapshot(self) -> dict[str, Any]:
        """``{"counters": {name: value or {label string: value}}, "gauges": {...}}``."""
        counters: dict[str, Any] = {}
        for (name, labels), counter in sorted(self._counters.items()):
            if labels:
                label = ",".join(f"{k}={v}" for k, v in labels)
                counters.setdefault(name, {})[label] = counter.value
            else:
                counters[name] = counter.value
        gauges = {}
        for name, read in sorted(self._gauges.items()):
            try:
                gauges[name] = read()
            except Exception as exc:  # a broken gauge must not break status
                gauges[name] = f"error: {exc}"
        return {"counters": counters, "gauges": gauges}
