"""Campaign target lists are an entrance of MSISDNs: one E.164 form, bad lines refused."""

from __future__ import annotations

import pytest

from gateway.campaigns.loader import read_target_list


def test_target_list_numbers_are_normalised(tmp_path):
    """National, +86 and 0086 spellings of one subscriber are one E.164 member."""
    path = tmp_path / "targets.txt"
    path.write_text("# targets\n13500000001\n+86 135 0000 0001\n0086-13500000002  # note\n")
    assert read_target_list(path) == frozenset({8613500000001, 8613500000002})


def test_target_list_bad_line_is_named_and_masked(tmp_path):
    """A line that cannot be normalised is refused with its number, the value masked."""
    path = tmp_path / "targets.txt"
    path.write_text("13500000001\n\uff11\uff13\uff1500000001\n123456789012345678\n")
    with pytest.raises(ValueError, match="line 2") as info:
        read_target_list(path)
    assert "00000001" not in str(info.value)
