"""The SMS channel's fast receipt reading equals the general one wherever it answers."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.smpp.receipt import (
    MESSAGE_STATE_TO_STAT,
    Receipt,
    ReceiptParseError,
    format_receipt_text,
    receipt_from_fields,
)
from plugins.sms_smpp.inbound import fast_receipt

words = st.text(st.sampled_from("0123456789abcdefABCDEF :xyzERRert"), max_size=12)


def general(short_message: bytes, mid: bytes, state: int) -> Receipt | None:
    try:
        return receipt_from_fields(short_message, mid, state)
    except ReceiptParseError:
        return None


@settings(max_examples=400)
@given(
    mid=st.text(st.sampled_from("0123456789ABCDEF"), min_size=1, max_size=12),
    state=st.sampled_from(sorted(MESSAGE_STATE_TO_STAT)),
    err=words,
    sub=words,
    text=st.text(max_size=30),
)
def test_fast_receipt_equals_receipt_from_fields(mid, state, err, sub, text) -> None:
    """Receipts as SMSCs write them, with odd err/sub values: the fast path gives the same
    Receipt as the general parser, or declines (None)."""
    short = format_receipt_text(
        Receipt(message_id=mid, stat="DELIVRD", err=err, sub=sub, text=text)
    ).encode("utf-8")
    fast = fast_receipt(short, mid.encode(), state)
    if fast is not None:
        assert fast == general(short, mid.encode(), state)


@given(short=st.binary(max_size=80), state=st.integers(0, 9))
def test_fast_receipt_on_any_bytes(short, state) -> None:
    """Arbitrary text: the fast path declines or agrees with the general parser."""
    fast = fast_receipt(short, b"ab12", state)
    if fast is not None:
        assert fast == general(short, b"ab12", state)


def test_fast_receipt_reads_the_common_receipt() -> None:
    """The simulator's (and most SMSCs') receipt is read by the fast path."""
    short = b"id:0A sub:001 dlvr:001 submit date:2611300348 done date:2611300348 stat:UNDELIV err:034 text:hi"
    assert fast_receipt(short, b"0A", 5) == Receipt(message_id="0A", stat="UNDELIV", err="034")
