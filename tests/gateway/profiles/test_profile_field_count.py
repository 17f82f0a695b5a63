"""Every line of a profile file must have the header's field count, even when lines balance."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.profiles.loader import ProfileFileError, load_profiles

HEADER = "msisdn,brand,county\n"


def test_short_and_long_lines_that_balance_are_refused(tmp_path):
    """A short line and a long line in one block (same total of fields) reject the file at the short one."""
    path = tmp_path / "p.csv"
    path.write_text(
        HEADER + "8613800000001,gotone,bj\n8613800000002,gotone\n8613800000003,x,sh,extra\n"
    )
    with pytest.raises(ProfileFileError) as info:
        load_profiles(path)
    assert str(info.value) == f"{path}: line 3: expected 3 fields, got 2"


@settings(max_examples=60, deadline=None)
@given(
    widths=st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=30),
    data=st.data(),
)
def test_any_line_with_a_wrong_field_count_is_named(tmp_path_factory, widths, data):
    """Whatever the mix of line widths, a file loads only if every line has 3 fields; else the first bad line is named."""
    lines = [",".join([f"86138{i:08d}", *["v"] * (w - 1)]) for i, w in enumerate(widths)]
    path = tmp_path_factory.mktemp("p") / "p.csv"
    path.write_text(HEADER + "\n".join(lines) + data.draw(st.sampled_from(["", "\n"])))
    bad = [n for n, w in enumerate(widths, 2) if w != 3]
    if not bad:
        assert len(load_profiles(path)) == len(widths)
        return
    with pytest.raises(ProfileFileError) as info:
        load_profiles(path)
    assert f"line {bad[0]}: expected 3 fields, got {widths[bad[0] - 2]}" in str(info.value)
