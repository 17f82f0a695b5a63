"""The pure decision logic shared by both backends (no I/O, no awaiting).

A decision is made in three steps:

1. :meth:`Engine.precheck` -- lists (do-not-disturb, blacklists, opt-outs, minus the
   campaign class's exemptions) and contact hours. Either of them ends the decision.
2. :meth:`Engine.plan` -- the cap and cooldown checks that apply to this request, each a
   :class:`CapCheck`: "at most ``limit`` counted contacts matching (kind, value) since ``since``".
3. :func:`first_violation` -- count the subscriber's live contacts against the checks. The
   SQLite backend runs it over its in-memory history; the Redis backend runs the same
   counting in a Lua script (``redis_scripts.py``) so that check-and-reserve is atomic there.

A reservation that is neither committed nor released counts until ``expires_at``; after that
it is refunded by time alone, so a crash cannot leak capacity.
"""

from __future__ import annotations

import attrs

from gateway.contact.caps import LocalClock
from gateway.contact.config import NEVER_EXEMPT, CapRule, ContactConfig, _human_seconds
from gateway.model import ContactDecision, ContactRequest, Outcome

# What a cap check counts (also the codes passed to the Lua script).
MATCH_ALL = 0
MATCH_CHANNEL = 1
MATCH_CAMPAIGN = 2
MATCH_CLASS = 3

# Record states.
RESERVED = 0
COMMITTED = 1
ENDED = 2  # released, refunded or pre-empted: counts no more, a late commit is refused
EXPIRED = 3  # timed out unsent: counts no more, but a late commit (it was sent) counts again


#: One reservation or contact of a subscriber, as a plain tuple of atoms:
#: ``(contact_id, msisdn, at, channel, campaign_id, campaign_class, priority, expires_at, state)``.
#: Millions live in memory; the garbage collector stops tracking tuples that hold only
#: strings and numbers, so full collections do not walk them (a slots class would be
#: walked every time: measured 2.5x slower at a million subscribers).
Record = tuple
CID, MSISDN, AT, CHANNEL, CAMPAIGN, CLASS, PRIORITY, EXPIRES, STATE = range(9)


def make_record(
    contact_id: str,
    msisdn: str,
    at: float,
    channel: str,
    campaign_id: str,
    campaign_class: str,
    priority: int,
    expires_at: float,
    state: int = RESERVED,
) -> Record:
    return (
        contact_id,
        msisdn,
        at,
        channel,
        campaign_id,
        campaign_class,
        priority,
        expires_at,
        state,
    )


def with_state(r: Record, state: int) -> Record:
    return (*r[:STATE], state)


def is_live(r: Record, now: float) -> bool:
    """Counts against caps: committed, or reserved and not yet expired."""
    state = r[STATE]
    return state == COMMITTED or (state == RESERVED and r[EXPIRES] > now)


def record_dict(r: Record) -> dict[str, object]:
    return {
        "contact_id": r[CID],
        "at": r[AT],
        "channel": r[CHANNEL],
        "campaign_id": r[CAMPAIGN],
        "campaign_class": r[CLASS],
        "priority": r[PRIORITY],
        "state": "committed" if r[STATE] == COMMITTED else "reserved",
        "expires_at": r[EXPIRES],
    }


class CapCheck:
    """At most ``limit`` live contacts matching (``kind``, ``value``) at or after ``since``.

    A plain ``__slots__`` class rather than attrs: several are built per decision.
    """

    __slots__ = ("kind", "limit", "reason", "rule", "since", "value", "window")

    def __init__(
        self, kind: int, value: str, since: float, limit: int, reason: str, rule: str, window: str
    ) -> None:
        self.kind = kind
        self.value = value
        self.since = since
        self.limit = limit
        self.reason = reason
        self.rule = rule
        self.window = window

    def matches(self, r: Record) -> bool:
        kind = self.kind
        if r[AT] < self.since:
            return False
        if kind == MATCH_ALL:
            return True
        if kind == MATCH_CHANNEL:
            return r[CHANNEL] == self.value
        if kind == MATCH_CAMPAIGN:
            return r[CAMPAIGN] == self.value
        return r[CLASS] == self.value


@attrs.frozen(slots=True)
class Violation:
    check: CapCheck
    count: int
    victims: tuple[str, ...]  # lower-priority reservations (contact ids) that could be pre-empted

    def detail(self, clock: LocalClock) -> dict[str, object]:
        c = self.check
        detail: dict[str, object] = {"count": self.count, "limit": c.limit, "window": c.window}
        if c.since != float("-inf"):
            detail["since"] = c.since
            detail["since_local"] = clock.local_text(c.since)
        return detail


def first_violation(
    records: list[Record] | None, checks: list[CapCheck], now: float, priority: int
) -> Violation | None:
    """The first check that ``records`` already fill, with the pre-emptable reservations."""
    if not checks:
        return None
    live = [r for r in records if is_live(r, now)] if records else []
    for check in checks:
        if check.limit > len(live):
            # cheap exit: not enough contacts in total to fill this cap
            continue
        matching = [r for r in live if check.matches(r)]
        if len(matching) >= check.limit:
            victims = tuple(
                r[CID]
                for r in sorted(matching, key=lambda r: (r[PRIORITY], -r[AT]))
                if r[STATE] == RESERVED and r[PRIORITY] < priority
            )
            return Violation(check, len(matching), victims)
    return None


class Engine:
    """Configuration plus local clock plus lists: everything but the counters."""

    def __init__(self, config: ContactConfig, lists: object) -> None:
        self.config = config
        self.lists = lists
        self.clock = LocalClock(config.tz)
        self._no_exemption: frozenset[str] = frozenset()
        # never exempt from these, whatever a hand-built config says (the parser refuses it)
        self._exemptions = {
            cls: frozenset(cats) - frozenset(NEVER_EXEMPT)
            for cls, cats in config.exemptions.items()
        }
        # plans for the current instant, shared by the requests of a batch (same ``now``)
        self._plan_now = -1.0
        self._plans: dict[tuple[str, str, str], list[CapCheck]] = {}
        # per (channel, campaign, class), the checks as of the current local day: a calendar
        # window's or the lifetime's start stays until the day changes (weeks and months
        # start on a day boundary too); a rolling window's start (None here, with its
        # length) follows ``now``
        self._recipe_day: float | None = None
        self._recipes: dict[tuple[str, str, str], list[tuple[CapCheck, float | None]]] = {}

    def precheck(self, request: ContactRequest, now: float) -> ContactDecision | None:
        """A final decision from lists or contact hours, or None to go on to the caps."""
        config = self.config
        exempt = self._exemptions.get(request.campaign_class, self._no_exemption)
        hit = self.lists.blocking(request, now, exempt)  # type: ignore[attr-defined]
        if hit is not None:
            category, scope, entry = hit
            detail = {
                "list": category,
                "source": entry[0],
                "list_reason": entry[1],
                "added_at": entry[2],
            }
            if scope:
                detail["scope"] = scope
            if entry[3] is not None:
                detail["expires_at"] = entry[3]
            return ContactDecision(
                request=request,
                outcome=Outcome.SUPPRESSED,
                decided_at=now,
                reason=f"dnd.{category}",
                rule=category,
                detail=detail,
            )
        hours = config.contact_hours.get(request.channel)
        if hours is not None and not hours.allows(self.clock.second_of_day(now)):
            detail = {"contact_hours": hours.text, "timezone": config.timezone}
            if request.realtime and not request.defer_if_quiet:
                return ContactDecision(
                    request=request,
                    outcome=Outcome.SUPPRESSED,
                    decided_at=now,
                    reason=f"quiet_hours.{request.channel}",
                    rule=request.channel,
                    detail=detail,
                )
            not_before = self.clock.next_at(now, hours.start)
            detail["not_before_local"] = self.clock.local_text(not_before)
            return ContactDecision(
                request=request,
                outcome=Outcome.DEFERRED,
                decided_at=now,
                reason=f"quiet_hours.{request.channel}",
                rule=request.channel,
                detail=detail,
                not_before=not_before,
            )
        return None

    def counted(self, request: ContactRequest) -> bool:
        """Passive channels (the subscriber asked) and classes exempt from caps (``caps = true``
        in ``[contact.exemptions]``: service notices) are neither capped nor counted."""
        config = self.config
        return (
            request.channel not in config.passive_channels
            and request.campaign_class not in config.cap_exempt_classes
        )

    def plan(self, request: ContactRequest, now: float) -> list[CapCheck]:
        """The cap and cooldown checks for ``request``, in configuration order."""
        if not self.counted(request):
            return []
        key = (request.channel, request.campaign_id, request.campaign_class)
        if now != self._plan_now:
            self._plan_now = now
            self._plans = {}
            day = self.clock.window_start("day", now)
            if day != self._recipe_day:
                self._recipe_day = day
                self._recipes = {}
        else:
            cached = self._plans.get(key)
            if cached is not None:
                return cached
        recipe = self._recipes.get(key)
        if recipe is None:
            recipe = self._recipes[key] = self._recipe(request, now)
        checks = [
            check
            if rolling is None
            else CapCheck(
                check.kind,
                check.value,
                now - rolling,
                check.limit,
                check.reason,
                check.rule,
                check.window,
            )
            for check, rolling in recipe
        ]
        self._plans[key] = checks
        return checks

    def _recipe(self, request: ContactRequest, now: float) -> list[tuple[CapCheck, float | None]]:
        """The checks of ``request``'s channel, campaign and class; with each, the length of its
        rolling window (its start is then ``now`` minus that), else None."""
        clock = self.clock
        recipe: list[tuple[CapCheck, float | None]] = []
        for cap in self.config.caps:
            check = _check_for(cap, request, clock, now)
            if check is not None:
                recipe.append((check, cap.seconds if cap.window == "rolling" else None))
        cooldown = self.config.cooldowns.get(request.campaign_class)
        if cooldown:
            recipe.append(
                (
                    CapCheck(
                        MATCH_CLASS,
                        request.campaign_class,
                        now - cooldown,
                        1,
                        f"cooldown.{request.campaign_class}",
                        request.campaign_class,
                        f"last {_human_seconds(cooldown)}",
                    ),
                    cooldown,
                )
            )
        return recipe


def _check_for(
    cap: CapRule, request: ContactRequest, clock: LocalClock, now: float
) -> CapCheck | None:
    if cap.channel is not None and cap.channel != request.channel:
        return None
    if cap.campaign_class is not None and cap.campaign_class != request.campaign_class:
        return None
    since = clock.window_start(cap.window, now, cap.seconds)
    scope = cap.scope
    if scope == "channel":
        kind, value = MATCH_CHANNEL, request.channel
    elif scope == "all_channels":
        kind, value = MATCH_ALL, ""
    elif scope == "campaign":
        kind, value = MATCH_CAMPAIGN, request.campaign_id
    else:
        kind, value = MATCH_CLASS, request.campaign_class
    return CapCheck(kind, value, since, cap.limit, cap.reason, cap.name, cap.window_label)
