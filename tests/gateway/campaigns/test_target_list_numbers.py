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


def test_target_list_membership_of_an_unknown_subscriber_uses_e164(tmp_path):
    """A subscriber without a profile is in the list whatever form the event's MSISDN has."""
    from gateway.model import EventKind, SignalEvent
    from gateway.rules.conditions import InTargetList, MatchContext

    path = tmp_path / "targets.txt"
    path.write_text("13500000001\n")
    condition = InTargetList(members=read_target_list(path))
    for form, expected in (("013500000001", True), ("+8613500000001", True), ("135", False)):
        event = SignalEvent(kind=EventKind.POWER_ON, timestamp=1.0, msisdn=form)
        ctx = MatchContext(event, None, -1, form, state=None, clock=None)  # type: ignore[arg-type]
        assert condition.test(ctx) is expected, form
