"""From the decoder's event dicts to :class:`gateway.model.SignalEvent`, and decoder counters.

The adapter (:mod:`adapters.sigtran`) knows nothing of the gateway: it produces plain dicts
whose keys are the SignalEvent field names. This module builds the frozen events, applies
the shard filter, and mirrors the decoder's per-layer counters into ``gateway.metrics`` so
``gatewayctl status`` / ``metrics`` show them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gateway.model import EventKind, SignalEvent
from gateway.numbers import NumberError, active_plan
from plugins.signaling.config import Shard

_KINDS = {kind.value: kind for kind in EventKind}


def signal_msisdn(text: str | None) -> str | None:
    """The E.164 form of an MSISDN from the network (gateway/numbers.py); None if it has none.

    Decoded signaling carries numbers as the network wrote them (national or international,
    per the nature-of-address indicator); contact control compares one form only. A number
    that cannot be normalised is dropped from the event, which keeps its IMSI: the subscriber
    is then found by IMSI, never by a raw number.
    """
    if not text:
        return None
    try:
        return active_plan().normalise(text)
    except NumberError:
        return None


def to_events(records: Iterable[dict], source: str, shard: Shard) -> list[SignalEvent]:
    """SignalEvents for the records this node's shard keeps (records are consumed)."""
    kinds = _KINDS
    out = []
    keep_all = shard.everything
    for record in records:
        if not keep_all and not shard.keeps(record.get("imsi")):
            continue
        record["kind"] = kinds[record["kind"]]
        if record.get("msisdn") is not None:
            record["msisdn"] = signal_msisdn(record["msisdn"])
        out.append(SignalEvent(source=source, **record))
    return out


def event_to_json(event: SignalEvent) -> dict[str, Any]:
    """A JSON-ready dict of the fields that are set (for ``scripts/decode.py``)."""
    out: dict[str, Any] = {"kind": event.kind.value, "timestamp": event.timestamp}
    for field in (
        "imsi",
        "tmsi",
        "msisdn",
        "imei",
        "previous_imei",
        "mcc",
        "mnc",
        "lac",
        "ci",
        "peer",
        "cause",
        "duration",
        "direction",
        "outcome",
        "service_code",
        "ss_operation",
        "source",
    ):
        value = getattr(event, field)
        if value is not None and value != "":
            out[field] = value
    return out


class EventDescriber:
    """Events as JSON with their enrichment (``scripts/decode.py --enrich``).

    ``enrichment`` is a :class:`gateway.enrich.Enrichment`; ``profiles`` a profile index
    (:class:`gateway.profiles.ProfileIndex`) that gives the MSISDN of an IMSI, as the
    pipeline finds it (A-interface events rarely carry the MSISDN). Remembers, per IMSI, the IMEI
    seen last and the number of the call in progress, so that an event without them is
    described the way the pipeline's conditions see it (bounded: the oldest IMSI is
    forgotten past ``capacity``).
    """

    def __init__(self, enrichment: Any, *, profiles: Any = None, capacity: int = 100_000) -> None:
        self.enrichment = enrichment
        self.profiles = profiles
        self.capacity = capacity
        self._imei: dict[str, str] = {}
        self._call_peer: dict[str, str] = {}

    def _remember(self, memory: dict[str, str], key: str, value: str) -> None:
        memory.pop(key, None)
        if len(memory) >= self.capacity:
            del memory[next(iter(memory))]
        memory[key] = value

    def describe(self, event: SignalEvent) -> dict[str, Any]:
        imsi = event.imsi or ""
        if imsi and event.imei:
            self._remember(self._imei, imsi, event.imei)
        if imsi and event.kind is EventKind.CALL_START and event.peer:
            self._remember(self._call_peer, imsi, event.peer)
        out = event_to_json(event)
        msisdn = None
        if self.profiles is not None:
            row = self.profiles.row_for(event)
            msisdn = self.profiles.msisdn(row) if row >= 0 else None
        enriched = self.enrichment.describe(
            event,
            msisdn,
            last_imei=self._imei.get(imsi),
            call_peer=self._call_peer.get(imsi) if event.kind is EventKind.CALL_END else None,
        )
        if enriched:
            out["enriched"] = enriched
        return out


class CounterMirror:
    """Copies growth of ``{(layer, reason): n}`` dicts into gateway metrics counters.

    ``signaling.decode_errors{source,layer,reason}`` for malformed input and
    ``signaling.skipped{source,layer,reason}`` for input carrying nothing of interest.
    """

    def __init__(self, metrics: Any, source: str) -> None:
        self._metrics = metrics
        self._source = source
        self._seen: dict[tuple[str, str, str], int] = {}
        self._frames = metrics.counter("signaling.frames", source=source)
        self._events = metrics.counter("signaling.events", source=source)

    def update(self, name: str, counts: dict[tuple[str, str], int]) -> None:
        # list() copies in one C call: the XDR file reader counts into the same dict from a
        # worker thread, and iterating it while a new key arrives would raise RuntimeError
        for (layer, reason), value in list(counts.items()):
            key = (name, layer, reason)
            delta = value - self._seen.get(key, 0)
            if delta:
                self._seen[key] = value
                self._metrics.counter(name, source=self._source, layer=layer, reason=reason).inc(
                    delta
                )

    def add_frames(self, n: int) -> None:
        self._frames.inc(n)

    def add_events(self, n: int) -> None:
        self._events.inc(n)


def counters_fragment(errors: dict, skipped: dict) -> dict[str, dict[str, int]]:
    """``{"errors": {"layer.reason": n}, "skipped": {...}}`` for status and decode.py."""
    return {
        "errors": {f"{layer}.{reason}": n for (layer, reason), n in sorted(errors.items())},
        "skipped": {f"{layer}.{reason}": n for (layer, reason), n in sorted(skipped.items())},
    }
