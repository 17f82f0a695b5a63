"""The compiled index equals the naive matcher; state is bounded; templates are safe."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.model import EventKind, SignalEvent
from gateway.rules import (
    LocalClock,
    MatchContext,
    MatcherState,
    RuleIndex,
    Template,
    TemplateError,
    Trigger,
    naive_candidates,
)
from gateway.rules.state import BoundedState

KINDS = [k.value for k in EventKind][:5]
LACS = st.integers(min_value=1, max_value=4)
CIS = st.integers(min_value=0, max_value=4)

triggers = st.builds(
    lambda kinds, cells, lacs: Trigger(
        kinds=frozenset(kinds),
        cells=frozenset(lac << 16 | c for lac, c in cells),
        lacs=frozenset(lacs),
    ),
    st.sets(st.sampled_from(KINDS), min_size=1),
    st.sets(st.tuples(LACS, CIS), max_size=4),
    st.sets(LACS, max_size=2),
)
events = st.builds(
    lambda kind, lac, ci: SignalEvent(
        kind=EventKind(kind), timestamp=0.0, lac=lac, ci=ci if lac is not None else None
    ),
    st.sampled_from(KINDS),
    st.none() | LACS,
    st.none() | CIS,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(triggers, max_size=12), st.lists(events, max_size=20))
def test_index_finds_exactly_what_the_naive_matcher_finds(trigger_list, event_list):
    """Property: for any rules and events, the index matches exactly what the naive matcher does."""
    index = RuleIndex((t, i) for i, t in enumerate(trigger_list))
    for event in event_list:
        ctx = MatchContext(event, None, -1, "s", state=MatcherState(), clock=LocalClock())
        fast = [r.payload for r in index.candidates(event) if r.passes(ctx)]
        slow = [r.payload for r in naive_candidates(index.rules, event) if r.passes(ctx)]
        assert sorted(fast) == sorted(slow)
        assert len(set(fast)) == len(fast)


def test_bounded_state_expires_and_evicts_oldest():
    """Entries expire after the TTL, and at capacity the least recently updated goes first."""
    state = BoundedState(ttl=100.0, capacity=3)
    for i, key in enumerate("abc"):
        state.put(key, i, float(i))
    state.put("a", 9, 10.0)  # a is now the newest
    state.put("d", 3, 11.0)  # evicts b, the oldest
    assert state.get("b", 11.0) is None and state.get("a", 11.0) == 9
    assert state.evicted == 1
    assert state.get("c", 150.0) is None  # older than the TTL: invisible even before a sweep
    assert state.expire(105.0) == 1  # c (updated at 2) is swept
    assert len(state) == 2
    assert state.expire(1000.0) == 2 and len(state) == 0


def test_template_fields_fallbacks_and_braces():
    """Missing or empty fields use the fallback (or nothing); {{ }} are literal braces."""
    t = Template("Hi {brand|friend}, {plan}! {{x}} {products}", {"brand", "plan", "products"})
    values = {"plan": "", "products": frozenset({"b", "a"})}
    assert t.render(values.get) == "Hi friend, ! {x} a,b"

    def broken(name):
        raise RuntimeError(name)

    assert t.render(broken) == "Hi friend, ! {x} "
    for bad in ("{nope}", "{brand", "x}", "{0.__class__}"):
        try:
            Template(bad, {"brand"})
        except TemplateError:
            continue
        raise AssertionError(f"{bad!r} accepted")


def test_local_clock_follows_a_half_hour_dst_change():
    """The cached UTC offset follows a DST end at hh:30 UTC (Adelaide, 03:00 ACDT = 16:30 UTC)."""
    import datetime as dt

    clock = LocalClock("Australia/Adelaide")
    before = dt.datetime(2026, 4, 4, 16, 10, tzinfo=dt.UTC).timestamp()  # 02:40 ACDT (+10:30)
    after = dt.datetime(2026, 4, 4, 16, 40, tzinfo=dt.UTC).timestamp()  # 02:10 ACST (+09:30)
    assert clock.second_of_day(before) == 2 * 3600 + 40 * 60
    assert clock.second_of_day(after) == 2 * 3600 + 10 * 60


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(
        ["Asia/Shanghai", "Australia/Adelaide", "America/New_York", "Asia/Kathmandu", "UTC"]
    ),
    # around DST changes (Adelaide's fall on hh:30 UTC, New York's on the hour) and anywhere
    st.sampled_from([1_775_320_200, 1_791_045_000, 1_772_953_200, 1_577_836_800]),
    st.lists(st.integers(-2 * 3600, 2 * 3600), min_size=1, max_size=20),
    st.integers(0, 10 * 365 * 86400),
)
def test_local_clock_agrees_with_zoneinfo(tz, base, offsets, far):
    """Second of day and weekday equal zoneinfo's for any sequence of times (cache included)."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    clock = LocalClock(tz)
    stamps = [base + o for o in offsets] + [base + far]
    for ts in stamps:
        local = dt.datetime.fromtimestamp(ts, ZoneInfo(tz))
        assert clock.second_of_day(ts) == local.hour * 3600 + local.minute * 60 + local.second
        assert clock.weekday(ts) == local.weekday()
