"""The strict TOML table reader every section parser uses."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config_reader import TableReader, did_you_mean, parse_duration
from gateway.errors import ConfigError


def keys(exc: pytest.ExceptionInfo[ConfigError]) -> list[tuple[str, str]]:
    return [(p.key, p.message) for p in exc.value.problems]


def test_reads_typed_values_with_defaults():
    """Getters return present values and defaults for absent ones."""
    r = TableReader(
        {"host": "h", "port": 1, "on": True, "ratio": 2, "names": ["a"], "wait": "5m"}, "x"
    )
    assert r.str("host") == "h" and r.int("port") == 1 and r.bool("on") is True
    assert r.float("ratio") == 2.0 and r.str_list("names") == ("a",) and r.duration("wait") == 300.0
    assert r.int("absent", 7) == 7 and r.str_list("none", ["b"]) == ("b",)
    r.finish()


def test_collects_every_problem_with_dotted_keys():
    """Type errors, bounds, choices and required keys are all reported with their dotted key."""
    r = TableReader({"port": "x", "n": 0, "mode": "fats", "flag": 1}, "plugins.a")
    r.int("port")
    r.int("n", min=1)
    r.str("mode", choices=["fast", "slow"])
    r.bool("flag")
    r.str("host")
    with pytest.raises(ConfigError) as exc:
        r.finish()
    assert keys(exc) == [
        ("plugins.a.port", "must be an integer, got 'x'"),
        ("plugins.a.n", "must be at least 1, got 0"),
        ("plugins.a.mode", "must be one of fast, slow; got 'fats' (did you mean 'fast'?)"),
        ("plugins.a.flag", "must be true or false, got 1"),
        ("plugins.a.host", "is required"),
    ]


def test_unknown_keys_in_nested_tables():
    """Unknown keys in sub-tables and arrays of tables are named with their full path."""
    r = TableReader({"smsc": [{"host": "a", "prot": 1}], "caps": {"daily": {"limt": 1}}}, "p")
    for item in r.tables("smsc"):
        item.str("host")
        item.int("port", 1)
        item.check_unknown()
    for _name, cap in r.subtables("caps").items():
        cap.int("limit", 1)
        cap.check_unknown()
    with pytest.raises(ConfigError) as exc:
        r.finish()
    assert keys(exc) == [
        ("p.smsc[0].prot", "unknown key (did you mean 'port'?)"),
        ("p.caps.daily.limt", "unknown key (did you mean 'limit'?)"),
    ]


def test_not_a_table():
    """A scalar where a table is expected is a problem at that key."""
    r = TableReader({"sub": 3}, "a")
    r.table("sub").check_unknown()
    with pytest.raises(ConfigError) as exc:
        r.finish()
    assert keys(exc) == [("a.sub", "must be a table, got int")]


def test_did_you_mean_only_when_close():
    """Suggestions appear for near misses only."""
    assert did_you_mean("prot", ["port", "host"]) == " (did you mean 'port'?)"
    assert did_you_mean("zzz", ["port", "host"]) == ""


@given(
    st.floats(min_value=0, max_value=1e6, allow_nan=False),
    st.sampled_from(["ms", "s", "m", "h", "d", "w", ""]),
)
def test_duration_strings_scale_by_unit(value, unit):
    """ "<n><unit>" is n times the unit in seconds."""
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "": 1}[unit]
    text = f"{value:.3f}{unit}"
    assert parse_duration(text) == pytest.approx(float(f"{value:.3f}") * scale)


@given(st.one_of(st.text(), st.booleans(), st.integers(max_value=-1)))
def test_duration_rejects_or_parses(value):
    """Any input either parses to a non-negative number or raises ValueError."""
    try:
        seconds = parse_duration(value)
    except ValueError:
        return
    assert seconds >= 0
