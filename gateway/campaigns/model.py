"""A campaign as the campaigns store holds it: the core :class:`~gateway.model.Campaign`
plus content per channel, target, schedule, contact policy, control group and trigger,
and the lifecycle rules (who may move it from which state to which).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from gateway.model import Campaign, CampaignKind, CampaignState
from gateway.rules.template import Template
from gateway.rules.trigger import Trigger

S = CampaignState

#: action -> (allowed from states, to state). "finish" also happens by schedule.
TRANSITIONS: Mapping[str, tuple[frozenset[CampaignState], CampaignState]] = {
    "submit": (frozenset({S.DRAFT}), S.PENDING_APPROVAL),
    "approve": (frozenset({S.PENDING_APPROVAL}), S.APPROVED),
    "reject": (frozenset({S.PENDING_APPROVAL}), S.DRAFT),
    "start": (frozenset({S.APPROVED}), S.RUNNING),
    "pause": (frozenset({S.RUNNING}), S.PAUSED),
    "resume": (frozenset({S.PAUSED}), S.RUNNING),
    "finish": (frozenset({S.RUNNING, S.PAUSED, S.APPROVED}), S.FINISHED),
    "cancel": (
        frozenset({S.DRAFT, S.PENDING_APPROVAL, S.APPROVED, S.RUNNING, S.PAUSED}),
        S.CANCELLED,
    ),
}


class LifecycleError(ValueError):
    """Raised when an action is not allowed in the campaign's current state."""


def next_state(action: str, current: CampaignState) -> CampaignState:
    try:
        allowed, target = TRANSITIONS[action]
    except KeyError:
        raise LifecycleError(
            f"unknown action {action!r}; actions: {', '.join(TRANSITIONS)}"
        ) from None
    if current not in allowed:
        raise LifecycleError(
            f"cannot {action} a campaign that is {current.value} "
            f"(allowed from: {', '.join(sorted(s.value for s in allowed))})"
        )
    return target


@attrs.frozen(kw_only=True)
class Schedule:
    start: float | None = None  # epoch seconds; None = as soon as running
    end: float | None = None
    #: local-time send windows as (start, end) seconds of day; empty = all day
    windows: tuple[tuple[int, int], ...] = ()

    def active_at(self, ts: float) -> bool:
        return (self.start is None or ts >= self.start) and (self.end is None or ts <= self.end)

    def in_window(self, second_of_day: int) -> bool:
        if not self.windows:
            return True
        for a, b in self.windows:
            if (a <= second_of_day < b) if a <= b else (second_of_day >= a or second_of_day < b):
                return True
        return False


#: Default reply keywords (two-way SMS), compared after :func:`gateway.twoway.keywords.fold`.
DEFAULT_ACCEPT = ("Y", "YES", "是", "1")
DEFAULT_DECLINE = ("N", "NO", "否", "2")
DEFAULT_OPT_OUT = ("TD", "T", "退订", "STOP", "0000")


@attrs.frozen(kw_only=True)
class ReplyPolicy:
    """How a campaign's offers are answered by SMS (the ``[reply]`` table)."""

    accept: frozenset[str]
    decline: frozenset[str]
    opt_out: frozenset[str]
    validity: float | None = None  # seconds an offer stays open; None = [twoway] offer_validity
    opt_out_scope: str | None = None  # "global" | "class"; None = [twoway] opt_out_scope


#: Delivery states after which a serial multichannel campaign tries its next channel.
FAILURE_STATES = ("undeliverable", "expired", "rejected", "unknown")


@attrs.frozen(kw_only=True)
class FallbackPolicy:
    """Serial multichannel ("串行营销", the ``[fallback]`` table of a batch campaign): the
    next channel of ``channels`` is tried when the previous one fails (``on``), or when the
    subscriber has not answered within ``after`` (None: only on failure)."""

    after: float | None = None
    on: frozenset[str] = frozenset(FAILURE_STATES)


DATE_FIELDS = ("birthday", "network_since", "product_expiry", "contract_end")


@attrs.frozen(kw_only=True)
class PeriodicPolicy:
    """When a periodic campaign runs and whom it selects (``[periodic]`` and ``[select]``).

    A run is due daily (or weekly on ``weekday``, 0 = Monday) at ``at`` (seconds of the local
    day). It selects the subscribers of the profile index matching every given criterion: a
    date field within ``within_days`` days from the run's day, an anniversary of a date field
    on the run's day, a tag. Each subscriber is contacted at most once per period; a missed
    run (the daemon was down) runs once, for the latest period only.
    """

    every: str = "daily"
    at: int = 9 * 3600
    weekday: int | None = None
    date_field: str | None = None
    within_days: int = 0
    anniversary: str | None = None
    tag: str | None = None


@attrs.frozen(kw_only=True)
class CampaignDef:
    """Everything the gateway knows about one campaign's definition (not its state)."""

    campaign: Campaign
    description: str = ""
    owner: str = ""
    origin: str = ""  # file path, or "webservice"
    content: Mapping[str, Mapping[str, Template]] = attrs.field(factory=dict)
    target_group: str = ""
    target_list: str | None = None  # path of the MSISDN list file
    target_members: frozenset[int] | None = None
    schedule: Schedule = attrs.field(factory=Schedule)
    once_per: float = 0.0  # seconds; a subscriber triggers this campaign at most once per period
    control_group_percent: float = 0.0
    defer_if_quiet: bool = False
    trigger: Trigger | None = None
    #: batch campaigns: targets presented per second (0 = as fast as contact control takes them)
    batch_rate: float = 0.0
    #: two-way SMS: the campaign's offers get a reply address and their answers are routed
    reply: ReplyPolicy | None = None
    fallback: FallbackPolicy | None = None
    periodic: PeriodicPolicy | None = None
    initial_state: CampaignState = CampaignState.PENDING_APPROVAL
    raw: Mapping[str, Any] = attrs.field(factory=dict)  # the table it was parsed from (JSON-safe)

    @property
    def id(self) -> str:
        return self.campaign.id

    @property
    def realtime(self) -> bool:
        return self.campaign.kind is CampaignKind.REALTIME

    def summary(self) -> dict[str, Any]:
        c = self.campaign
        return {
            "id": c.id,
            "name": c.name,
            "class": c.campaign_class,
            "priority": c.priority,
            "kind": c.kind.value,
            "state": c.state.value,
            "channels": list(c.channels),
            "origin": self.origin,
        }
