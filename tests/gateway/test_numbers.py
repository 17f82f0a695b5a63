"""The one number normalisation (gateway/numbers.py): rules, config, properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import ConfigError
from gateway.numbers import DEFAULT_PLAN, NumberError, NumberPlan, mask, parse_numbers_config

PLAN = DEFAULT_PLAN
NANP = NumberPlan(
    country_code="1", national_prefix="1", international_prefix="011", mobile_length=0
)


@pytest.mark.parametrize(
    "text",
    [
        "13500000001",
        "8613500000001",
        "+8613500000001",
        "+86 135 0000 0001",
        "+86-135-0000-0001",
        "0086 135.0000.0001",
        "008613500000001",
        " 013500000001 ",
    ],
)
def test_every_spelling_of_a_chinese_mobile_is_one_number(text: str) -> None:
    """National, trunk-prefixed, + and 00 forms of one mobile all become 8613500000001."""
    assert PLAN.normalise(text) == "8613500000001"


def test_landline_with_trunk_prefix_gets_the_country_code() -> None:
    """A national number with the trunk prefix 0 loses it and gains the country code."""
    assert PLAN.normalise("010 8888 6666") == "861088886666"


def test_foreign_number_in_e164_is_kept() -> None:
    """A bare number that is not a national mobile is taken as E.164 already."""
    assert PLAN.normalise("447700900123") == "447700900123"
    assert PLAN.normalise("+44 7700 900123") == "447700900123"


@pytest.mark.parametrize(
    "text",
    [
        "\uff11\uff13\uff1500000001",  # fullwidth digits
        "\u0661\u0663\u066500000001",  # Arabic-Indic digits
        "13500000001x",
        "135/0000/0001",
        "1350000000\uff11",
        "+86+13500000001",
        "",
        "   ",
        "+",
        "0",
        "1234567",  # too short
        "+1234567890123456",  # 16 digits
        "+0861350000001",  # country code 0
        "8" * 41,
    ],
)
def test_refused(text: str) -> None:
    """Non-ASCII digits, other characters, bad lengths and a 0 country code are refused."""
    with pytest.raises(NumberError):
        PLAN.normalise(text)


def test_ambiguous_international_number_is_refused() -> None:
    """An E.164 number that would read back as a national mobile is refused, not changed."""
    with pytest.raises(NumberError, match="ambiguous"):
        PLAN.normalise("+1 312 555 0123")
    assert NANP.normalise("+1 312 555 0123") == "13125550123"
    assert NANP.normalise("1 312 555 0123") == "13125550123"
    assert NANP.normalise("011 86 135 0000 0001") == "8613500000001"


def test_error_message_does_not_repeat_the_number() -> None:
    """NumberError says why, not what: callers decide what to show (masked)."""
    with pytest.raises(NumberError) as info:
        PLAN.normalise("13500000001abc")
    assert "135" not in str(info.value)


def test_mask_shows_little_and_nothing_of_text() -> None:
    """mask keeps 3+2 characters of a number and nothing of a line that is not one."""
    assert mask("13500000001") == "135****01"
    assert mask("root:$6$abc:19000:0:99999:7:::") == "(not a number)"
    assert mask("1234") == "****"


def test_config_section_parses_and_refuses() -> None:
    """[numbers] is strict: unknown keys, non-ASCII digits and bad limits are errors."""
    plan = parse_numbers_config({"country_code": "44", "mobile_length": 0})
    assert plan.normalise("07700 900123") == "447700900123"
    for bad in (
        {"country_code": "0"},
        {"country_code": "\uff18\uff16"},
        {"max_digits": 16},
        {"min_digits": 12, "max_digits": 10},
        {"international_prefix": "0", "national_prefix": "0"},
        {"contry_code": "86"},
    ):
        with pytest.raises(ConfigError):
            parse_numbers_config(bad)


def test_parse_default_is_default_plan() -> None:
    """An absent [numbers] section is the documented demo plan (86, 0, 00, 11-digit mobiles)."""
    assert parse_numbers_config({}) == DEFAULT_PLAN


# -- properties -----------------------------------------------------------------------------

_SEPS = st.sampled_from(["", " ", "-", ".", "(", ")"])
_NUMBERISH = st.text(
    alphabet=st.sampled_from([*"0123456789 -.()+", "\uff11", "\u0663", "a"]), max_size=24
)
_PLANS = st.builds(
    NumberPlan,
    country_code=st.sampled_from(["1", "44", "86", "234", "7"]),
    national_prefix=st.sampled_from(["0", "", "8", "1"]),
    international_prefix=st.sampled_from(["00", "011", "810"]),
    mobile_length=st.sampled_from([0, 10, 11]),
    mobile_prefixes=st.sampled_from([("1",), ("7", "8"), ("13", "15")]),
    min_digits=st.integers(1, 10),
    max_digits=st.integers(10, 15),
).filter(lambda p: p.national_prefix != p.international_prefix)


@given(_PLANS, _NUMBERISH)
def test_accepted_output_is_ascii_digits_of_allowed_length_and_idempotent(
    plan: NumberPlan, text: str
) -> None:
    """Whatever is accepted comes out as ASCII digits within the limits, and is stable."""
    try:
        out = plan.normalise(text)
    except NumberError:
        return
    assert set(out) <= set("0123456789")
    assert out[0] != "0"
    assert plan.min_digits <= len(out) <= min(plan.max_digits, 15)
    assert plan.normalise(out) == out
    assert plan.normalise("+" + out) == out


@given(st.text(alphabet="0123456789", min_size=10, max_size=10), _SEPS)
def test_national_and_international_forms_agree(rest: str, sep: str) -> None:
    """13x national, 0-prefixed, +86 and 0086 forms of one mobile normalise to one value."""
    national = "1" + rest
    forms = [
        national,
        "0" + national,
        "+86" + sep + national,
        "0086" + sep + national,
        "86" + national,
        sep.join([national[:3], national[3:7], national[7:]]),
    ]
    assert {PLAN.normalise(f) for f in forms} == {"86" + national}


@given(st.text(max_size=30))
def test_any_text_is_normalised_or_refused_cleanly(text: str) -> None:
    """normalise never raises anything but NumberError, whatever the input."""
    try:
        out = PLAN.normalise(text)
    except NumberError:
        return
    assert out.isascii() and out.isdigit()
