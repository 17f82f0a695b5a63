"""Profile files and lookups use the one number form of gateway/numbers.py."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.model import EventKind, SignalEvent
from gateway.numbers import DEFAULT_PLAN
from gateway.profiles import ProfileFileError, load_profiles


def test_national_rows_are_found_by_every_form(tmp_path):
    """A profile written in national format is found by +86, 0086 and bare E.164 lookups."""
    path = tmp_path / "p.csv"
    path.write_text("msisdn,brand\n13500000001,a\n013500000002,b\n+44 7700 900123,c\n")
    index = load_profiles(path)
    assert index.msisdn(0) == "8613500000001" and index.msisdn(1) == "8613500000002"
    for form in ("13500000001", "+86 135 0000 0001", "0086-13500000001", "8613500000001"):
        assert index.row_by_msisdn(form) == 0, form
    assert index.row_by_msisdn("447700900123") == 2
    event = SignalEvent(kind=EventKind.POWER_ON, timestamp=1.0, msisdn="013500000002")
    assert index.row_for(event) == 1
    assert index.row_by_msisdn("\uff11\uff13\uff1500000001") == -1


@pytest.mark.parametrize("bad", ["\uff11\uff13\uff1500000001", "1350000", "+0861350000001"])
def test_unusable_msisdn_rejects_the_file_with_its_line(tmp_path, bad):
    """A number that cannot be normalised rejects the file, naming its line."""
    path = tmp_path / "p.csv"
    path.write_text(f"msisdn\n13500000001\n{bad}\n", encoding="utf-8")
    with pytest.raises(ProfileFileError, match="line 3: column 'msisdn'"):
        load_profiles(path)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.binary(max_size=16).filter(lambda b: b"\n" not in b and b"\r" not in b and b"," not in b)
        | st.text(alphabet="0123456789+ -()", max_size=18).map(str.encode)
        | st.integers(10**10, 10**15).map(lambda n: str(n).encode()),
        max_size=20,
    )
)
def test_column_fast_path_agrees_with_normalise(values):
    """normalise_column gives int(normalise(v)) for every value, or fails on the first bad one."""
    expected = []
    bad = None
    for offset, value in enumerate(values):
        try:
            expected.append(int(DEFAULT_PLAN.normalise(value.decode("ascii"))))
        except (UnicodeDecodeError, ValueError):
            bad = offset
            break
    try:
        got = DEFAULT_PLAN.normalise_column(values)
    except ValueError as exc:
        assert exc.offset == bad  # type: ignore[attr-defined]
    else:
        assert bad is None and got == expected
