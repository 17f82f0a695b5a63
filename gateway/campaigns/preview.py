"""Preview ("营销预演"): run one campaign over recorded signaling without sending anything.

The campaign is compiled on its own (whatever its lifecycle state), events go through the same
enrich-and-match code as the live pipeline but against a *copy-on-write overlay* of the profile
index (learned attributes are not changed) and a fresh matching state, and each contact
request is shown to ``contact_control.check`` (no reservation, no ledger record). The result:
events read, events matched, distinct subscribers, how many contact control would allow,
suppressions by reason.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from gateway.campaigns.model import CampaignDef
from gateway.metrics import Metrics
from gateway.model import CampaignState, EventKind, Outcome, SignalEvent
from gateway.rules.compiler import RuleIndex

_EVENT_FIELDS = {f.name for f in attrs.fields(SignalEvent)}

UNFIT = "handset_unfit."  # pipeline counter prefix: a channel the handset cannot take


class EventFileError(ValueError):
    """Raised when an events file cannot be read at all (missing, not JSON lines)."""


def read_event_lines(path: Path | str) -> Iterator[SignalEvent | None]:
    """SignalEvents from a JSON-lines file (one object of SignalEvent fields per line).

    A line that is not a valid event yields None (counted as bad by the caller).
    """
    try:
        handle = open(path, encoding="utf-8")
    except OSError as exc:
        raise EventFileError(f"{path}: cannot open: {exc.strerror or exc}") from exc
    with handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                fields = {k: v for k, v in data.items() if k in _EVENT_FIELDS}
                fields["kind"] = EventKind(fields["kind"])
                fields["timestamp"] = float(fields["timestamp"])
                yield SignalEvent(**fields)
            except (ValueError, KeyError, TypeError, AttributeError):
                yield None


def event_line(event: SignalEvent) -> str:
    """The JSON line :func:`read_event_lines` reads back."""
    data = {k: v for k, v in attrs.asdict(event).items() if v is not None and v != ""}
    data["kind"] = event.kind.value
    return json.dumps(data, sort_keys=True)


class _Overlay:
    """An array view whose writes go to a dict: the live index is never modified."""

    __slots__ = ("base", "changes")

    def __init__(self, base: Any) -> None:
        self.base = base
        self.changes: dict[int, Any] = {}

    def __getitem__(self, row: int) -> Any:
        found = self.changes.get(row)
        return self.base[row] if found is None else found

    def __setitem__(self, row: int, value: Any) -> None:
        self.changes[row] = value


def overlay_index(index: Any) -> Any:
    ov = copy.copy(index)
    ov.last_cell = _Overlay(index.last_cell)
    ov.last_seen = _Overlay(index.last_seen)
    ov.last_imei = _Overlay(index.last_imei)
    return ov


class _PreviewCampaigns:
    def __init__(self, cdef: CampaignDef) -> None:
        # A recording predates the campaign: its start/end dates are ignored, its daily send
        # windows still apply; and it is previewed whatever its lifecycle state.
        running = attrs.evolve(
            cdef,
            campaign=attrs.evolve(cdef.campaign, state=CampaignState.RUNNING),
            schedule=attrs.evolve(cdef.schedule, start=None, end=None),
        )
        self.rule_index = RuleIndex([(cdef.trigger, running)] if cdef.trigger is not None else [])
        self.counts: Counter[str] = Counter()

    def count(self, campaign_id: str, name: str, amount: int = 1) -> None:
        self.counts[name] += amount


async def run_preview(
    gateway: Any,
    cdef: CampaignDef,
    events: Iterable[SignalEvent | None],
    *,
    timezone: str,
    batch: int = 1000,
    checker: Callable[[Any], Any] | None = None,
) -> dict[str, Any]:
    """Match ``cdef`` over ``events``; ask contact control what it would decide for each match."""
    from gateway.pipeline import Pipeline

    preview_gw = _PreviewGateway(gateway.channels)
    holder = _Holder(
        overlay_index(gateway.profiles.index) if gateway.profiles is not None else None
    )
    campaigns = _PreviewCampaigns(cdef)
    pipeline = Pipeline(
        preview_gw,
        profiles=holder,
        campaigns=campaigns,
        timezone=timezone,
        enrichment=getattr(gateway, "enrichment", None),  # the tables in force
    )
    check = checker or gateway.contact_control.check
    read = bad = 0
    subscribers: set[str] = set()
    outcomes: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    pending: list[SignalEvent] = []

    async def flush() -> None:
        for request in pipeline.match_batch(pending):
            subscribers.add(request.msisdn)
            decision = await check(request)
            outcomes[decision.outcome.value] += 1
            if decision.outcome is Outcome.SUPPRESSED:
                reasons[decision.reason or "unknown"] += 1
        pending.clear()

    for event in events:
        if event is None:
            bad += 1
            continue
        read += 1
        pending.append(event)
        if len(pending) >= batch:
            await flush()
    await flush()
    return {
        "campaign": cdef.id,
        "events_read": read,
        "events_bad": bad,
        "events_matched": sum(
            v
            for k, v in campaigns.counts.items()
            if k != "control_group" and not k.startswith(UNFIT)
        ),
        "contact_requests": campaigns.counts["matched"],
        "distinct_subscribers": len(subscribers),
        "would_allow": outcomes[Outcome.ALLOWED.value],
        "control_group": outcomes[Outcome.CONTROL.value],
        "would_defer": outcomes[Outcome.DEFERRED.value],
        "suppressed": sum(reasons.values()),
        "suppressed_by_reason": dict(sorted(reasons.items())),
        "not_requested": {
            k: v
            for k, v in sorted(campaigns.counts.items())
            if k not in ("matched", "control_group") and not k.startswith(UNFIT)
        },
        # channels passed over because the handset lacks what they require (the next one is used)
        "handset_unfit": {
            k.removeprefix(UNFIT): v
            for k, v in sorted(campaigns.counts.items())
            if k.startswith(UNFIT)
        },
        "unknown_subscriber_events": preview_gw.metrics.counter(
            "pipeline.subscriber_unknown"
        ).value,
    }


class _PreviewGateway:
    def __init__(self, channels: Mapping[str, Any]) -> None:
        self.metrics = Metrics()
        self.matchers: list[Any] = []
        self.channels = channels  # the real ones: a preview chooses channels as the run does


class _Holder:
    def __init__(self, index: Any) -> None:
        if index is None:
            from gateway.profiles.holder import empty_index

            index = empty_index()
        self.index = index
