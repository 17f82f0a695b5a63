"""SCCP party addresses (ITU-T Q.713 3.4): point code, SSN and global title digits."""

from __future__ import annotations

import pytest

from adapters.sigtran import sccp

# address indicator: PC and SSN present, GT indicator in bits 3-6; PC 100 (LSB first), SSN 254
_HEAD = {gti: bytes([0x03 | gti << 2, 100, 0, 254]) for gti in (1, 2, 3, 4)}
_ODD_DIGITS = bytes([0x21, 0x43, 0x05])  # 1 2 3 4 5 and the filler nibble 0000 (Q.713 3.4.2.3.1)


@pytest.mark.parametrize(
    ("gt", "digits"),
    [
        (_HEAD[1] + bytes([0x84]) + _ODD_DIGITS, "12345"),  # odd indicator, international
        (_HEAD[3] + bytes([0x00, 0x11]) + _ODD_DIGITS, "12345"),  # E.164, BCD odd
        (_HEAD[3] + bytes([0x00, 0x12]) + bytes([0x21, 0x43]), "1234"),  # E.164, BCD even
        (_HEAD[4] + bytes([0x00, 0x11, 0x04]) + _ODD_DIGITS, "12345"),
        (_HEAD[4] + bytes([0x00, 0x12, 0x04]) + bytes([0x21, 0x43]), "1234"),
    ],
)
def test_odd_global_titles_drop_the_filler_digit(gt, digits):
    """An odd digit count's filler nibble (0000) is not a digit, for GT indicators 1, 3 and 4."""
    assert sccp.address(gt) == (100, 254, digits)
