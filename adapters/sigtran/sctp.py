"""Reassembly of fragmented SCTP user messages (RFC 9260 6.9).

A user message larger than the path MTU is sent as several DATA chunks with consecutive TSNs
on one stream: the first has the B (beginning) flag, the last the E (end) flag. Fragments are
kept per (addresses, ports, stream) and joined when a B..E run with no gap is complete.
Bounded: at most ``max_pending`` partial messages (the oldest is dropped, counted), at most 64
fragments and ``max_message`` octets held per partial message.
"""

from __future__ import annotations

from collections.abc import Callable


class SctpReassembler:
    """See the module docstring. ``count(layer, reason)`` records drops."""

    def __init__(
        self,
        count: Callable[[str, str], None],
        *,
        max_pending: int = 1024,
        max_message: int = 65536,
    ) -> None:
        self._count = count
        self.max_pending = max_pending
        self.max_message = max_message
        self._pending: dict[tuple, dict[int, tuple[int, bytes]]] = {}
        self._held: dict[tuple, int] = {}  # octets held per partial message

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, key: tuple, tsn: int, flags: int, data: bytes) -> bytes | None:
        """The whole user message when ``data`` (a DATA chunk's payload) completes one, else None."""
        frags = self._pending.get(key)
        if frags is None:
            if len(self._pending) >= self.max_pending:
                self._drop(next(iter(self._pending)))
                self._count("sctp", "reassembly_evicted")
            frags = self._pending[key] = {}
        if len(frags) >= 64:
            self._drop(key)
            self._count("sctp", "reassembly_too_many_fragments")
            return None
        previous = frags.get(tsn)
        held = self._held.get(key, 0) + len(data) - (0 if previous is None else len(previous[1]))
        if held > self.max_message:  # fragments that never complete must not pile up
            self._drop(key)
            self._count("sctp", "message_too_large")
            return None
        self._held[key] = held
        frags[tsn] = (flags, data)
        # find a B..E run containing tsn
        start = tsn
        while not frags[start][0] & 2:
            start = (start - 1) & 0xFFFFFFFF
            if start not in frags:
                return None
        stop, parts, size = start, [], 0
        while True:
            entry = frags.get(stop)
            if entry is None:
                return None
            parts.append(entry[1])
            size += len(entry[1])
            if size > self.max_message:
                self._drop(key)
                self._count("sctp", "message_too_large")
                return None
            if entry[0] & 1:
                break
            stop = (stop + 1) & 0xFFFFFFFF
        t = start
        while True:
            del frags[t]
            if t == stop:
                break
            t = (t + 1) & 0xFFFFFFFF
        if frags:
            self._held[key] -= size
        else:
            self._drop(key)
        return b"".join(parts)

    def _drop(self, key: tuple) -> None:
        del self._pending[key]
        self._held.pop(key, None)
