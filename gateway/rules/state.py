"""Per-subscriber matching state (dwell, counts, sequences, trigger policy), bounded in memory.

One :class:`BoundedState` per kind of state: a dict in least-recently-updated order (an update
re-inserts the key at the end), so expiry and eviction pop from the front. Entries older than
``ttl`` are dropped by :meth:`expire` (the pipeline calls it every few thousand events); when
``capacity`` is reached the oldest entry is evicted, so memory stays bounded whatever the
traffic. Values are plain floats or tuples: no per-entry objects.
"""

from __future__ import annotations

from typing import Any


class BoundedState:
    """``key -> (updated_at, value)`` with a time-to-live and a maximum size."""

    __slots__ = ("_data", "capacity", "evicted", "expired", "ttl")

    def __init__(self, *, ttl: float, capacity: int) -> None:
        self.ttl = ttl
        self.capacity = capacity
        self._data: dict[Any, tuple[float, Any]] = {}
        self.evicted = 0
        self.expired = 0

    def get(self, key: Any, now: float) -> Any:
        """The value stored for ``key`` unless it expired (then None)."""
        found = self._data.get(key)
        if found is None or now - found[0] > self.ttl:
            return None
        return found[1]

    def put(self, key: Any, value: Any, now: float) -> None:
        data = self._data
        if key in data:
            del data[key]  # re-insert at the end: the dict order is update order
        elif len(data) >= self.capacity:
            del data[next(iter(data))]
            self.evicted += 1
        data[key] = (now, value)

    def pop(self, key: Any) -> None:
        self._data.pop(key, None)

    def entry(self, key: Any) -> tuple[float, Any] | None:
        """The raw ``(updated_at, value)`` stored for ``key``, expired or not (for :meth:`restore`)."""
        return self._data.get(key)

    def restore(self, key: Any, entry: tuple[float, Any] | None, *, if_value: Any) -> bool:
        """Undo a :meth:`put` of ``if_value``: put back ``entry`` (None: no entry).

        Only while ``key`` still holds ``if_value``: a later update is newer knowledge and
        stays. The restored entry goes back to the end of the order (it may expire a little
        later than it would have; it never expires early). True if restored.
        """
        data = self._data
        current = data.get(key)
        if current is None or current[1] != if_value:
            return False
        del data[key]
        if entry is not None:
            data[key] = entry
        return True

    def expire(self, now: float) -> int:
        """Drop entries not updated for ``ttl`` seconds; returns how many."""
        data = self._data
        limit = now - self.ttl
        stale = []
        for key, (at, _) in data.items():
            if at >= limit:
                break
            stale.append(key)
        for key in stale:
            del data[key]
        self.expired += len(stale)
        return len(stale)

    def __len__(self) -> int:
        return len(self._data)

    def statistics(self) -> dict[str, int]:
        return {"entries": len(self._data), "evicted": self.evicted, "expired": self.expired}
