"""Message ids in receipts and in submit answers meet in one form (receipt_id settings)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from adapters.smpp.receipt import comparable_id


@given(st.integers(0, 2**64), st.integers(0, 6), st.booleans())
def test_hex_submit_ids_meet_decimal_receipt_ids(n, zeros, upper):
    """dec_to_hex: a hex submit id (any case, leading zeros) matches the decimal receipt id."""
    submit = "0" * zeros + (f"{n:X}" if upper else f"{n:x}")
    assert comparable_id(submit, "dec_to_hex", in_receipt=False) == comparable_id(
        str(n), "dec_to_hex", in_receipt=True
    )


@given(st.integers(0, 2**64), st.integers(0, 6))
def test_decimal_submit_ids_meet_hex_receipt_ids(n, zeros):
    """hex_to_dec: a decimal submit id matches the hex receipt id."""
    submit = "0" * zeros + str(n)
    assert comparable_id(submit, "hex_to_dec", in_receipt=False) == comparable_id(
        f"{n:x}", "hex_to_dec", in_receipt=True
    )


@given(st.text(max_size=20), st.sampled_from(["as_is", "hex_to_dec", "dec_to_hex"]), st.booleans())
def test_ids_that_are_not_numbers_stay_as_they_are(mid, form, in_receipt):
    """as_is, or an id that is not a number in the expected base, is compared as it is."""
    out = comparable_id(mid, form, in_receipt=in_receipt)
    assert out == mid or out.isalnum()
    assert comparable_id(mid, "as_is", in_receipt=in_receipt) == mid
