"""Property and example tests for the GSM 03.38 codec, UDH split/reassembly and DLR text."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.smpp import gsm0338
from adapters.smpp.messages import (
    DC_UCS2,
    ESM_UDHI,
    Reassembler,
    decode_user_data,
    encode_binary,
    encode_text,
    split_udh,
)
from adapters.smpp.receipt import (
    Receipt,
    format_receipt_text,
    parse_receipt_text,
    receipt_from_fields,
)

GSM_CHARS = [c for c in gsm0338.BASIC if c != "\x1b"] + list(gsm0338.EXTENSION.values())
gsm_text = st.text(alphabet=st.sampled_from(GSM_CHARS), max_size=600)
any_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=400)


@given(gsm_text)
def test_gsm_unpacked_round_trip(text):
    """Every default-alphabet text survives encode/decode unpacked."""
    assert gsm0338.decode(gsm0338.encode(text)) == text


@given(gsm_text, st.integers(0, 6))
def test_gsm_packed_round_trip_with_count(text, fill):
    """Packing then unpacking with the septet count gives back the septets, for any fill."""
    septets = gsm0338.encode(text)
    assert gsm0338.unpack(gsm0338.pack(septets, fill), len(septets), fill) == septets


@given(gsm_text.filter(lambda t: not t.endswith("\r")))
def test_gsm_packed_round_trip_without_count(text):
    """Without a count, the CR padding of seven spare bits is removed (TS 23.038 6.1.2.3.1)."""
    septets = gsm0338.encode(text)
    assert gsm0338.decode(gsm0338.unpack(gsm0338.pack(septets))) == text


def test_gsm_known_packing():
    """'hello' packs to the well-known E8 32 9B FD 06."""
    assert gsm0338.pack(gsm0338.encode("hello")) == bytes.fromhex("e8329bfd06")


def _reassemble(segments, packed=False):
    r = Reassembler()
    out = None
    for seg in random.Random(1).sample(segments, len(segments)):
        data = seg.message_payload if seg.message_payload is not None else seg.short_message
        concat, part = decode_user_data(seg.esm_class, seg.data_coding, data, gsm_packed=packed)
        if concat is None:
            return part
        result = r.add("k", concat, part, 0.0)
        if result is not None:
            out = result
    return out


@settings(max_examples=150)
@given(
    any_text, st.sampled_from(["udh8", "udh16", "payload"]), st.booleans(), st.integers(0, 65535)
)
def test_split_and_reassemble(text, mode, packed, ref):
    """Any text split in any long mode reassembles, in any arrival order, to the original."""
    if packed and text.endswith("\r"):
        text += "."
    segments = encode_text(text, long_mode=mode, reference=ref, gsm_packed=packed)
    for seg in segments:
        assert len(seg.short_message) <= 140
        if len(segments) > 1:
            assert seg.esm_class & ESM_UDHI
    got = _reassemble(segments, packed)
    if not gsm0338.can_encode(text):
        assert segments[0].data_coding == DC_UCS2
    assert got == text


def test_chinese_ucs2_split_sizes():
    """A 200-character Chinese text needs 3 UCS2 segments of at most 67 characters."""
    text = "精确营销" * 50
    segments = encode_text(text, long_mode="udh8", reference=9)
    assert len(segments) == 3
    assert all(s.data_coding == DC_UCS2 for s in segments)
    ies, body = split_udh(segments[0].short_message)
    assert ies == [(0x00, bytes([9, 3, 1]))] and len(body) == 134


def test_gsm_extension_never_split():
    """An escape pair is never cut across two segments."""
    text = "a" * 152 + "€" + "b" * 10
    segments = encode_text(text, long_mode="udh8")
    first = split_udh(segments[0].short_message)[1]
    assert first[-1] != gsm0338.ESC
    assert _reassemble(segments) == text


@given(st.binary(max_size=800), st.booleans())
def test_binary_split_keeps_udh(payload, sixteen):
    """Binary messages keep the caller's UDH elements on every part and reassemble."""
    udh = bytes([6, 5, 4, 0x0B, 0x84, 0x23, 0xF0])  # WAP Push port addressing
    segments = encode_binary(payload, udh, reference=3, sixteen_bit=sixteen)
    for seg in segments:
        ies, _ = split_udh(seg.short_message)
        assert (5, bytes([0x0B, 0x84, 0x23, 0xF0])) in ies
        assert len(seg.short_message) <= 140
    assert _reassemble(segments) == payload


def test_reassembler_caps_pending():
    """The reassembler drops the oldest incomplete message beyond its cap."""
    from adapters.smpp.messages import Concat

    r = Reassembler(max_pending=2)
    for ref in range(3):
        assert r.add("k", Concat(ref, 2, 1), "x", 0.0) is None
    assert len(r) == 2 and r.dropped == 1


stat_words = st.sampled_from(
    ["DELIVRD", "UNDELIV", "EXPIRED", "REJECTD", "ACCEPTD", "UNKNOWN", "DELETED", "ENROUTE"]
)
ids = st.text(alphabet="0123456789abcdefABCDEF-", min_size=1, max_size=40)
digits = st.text(alphabet="0123456789", min_size=3, max_size=3)
dates = st.text(alphabet="0123456789", min_size=10, max_size=10)


@given(ids, stat_words, digits, digits, digits, dates, dates, st.text(max_size=20))
def test_receipt_text_round_trip(mid, stat, err, sub, dlvr, sd, dd, text):
    """format then parse gives back every field of a receipt."""
    r = Receipt(
        message_id=mid,
        stat=stat,
        err=err,
        sub=sub,
        dlvr=dlvr,
        submit_date=sd,
        done_date=dd,
        text=text,
    )
    assert parse_receipt_text(format_receipt_text(r)) == r


@given(st.text(max_size=200))
def test_receipt_parser_never_crashes(text):
    """Arbitrary text parses or raises ReceiptParseError (a ValueError), nothing else."""
    try:
        parse_receipt_text(text)
    except ValueError:
        pass


def test_receipt_variants():
    """Upper-case keys, another order and TLVs are understood; TLVs win over text."""
    r = parse_receipt_text("STAT:UNDELIV ID:7F3A err:001 text:")
    assert (r.message_id, r.state, r.err) == ("7F3A", "undeliverable", "001")
    tlv = receipt_from_fields(b"id:x stat:DELIVRD err:000", b"real-id\x00", 5)
    assert (tlv.message_id, tlv.state) == ("real-id", "undeliverable")


@given(st.text(alphabet=st.sampled_from([*sorted(gsm0338._ENCODE), "é", "`", "中", "\x00"])))
def test_can_encode_means_every_character_has_septets(text):
    """can_encode (one set test) answers what a check of each character answers."""
    assert gsm0338.can_encode(text) == all(ch in gsm0338._ENCODE for ch in text)
    if gsm0338.can_encode(text):
        assert sum(len(u) for u in gsm0338.char_septets(text)) >= len(text)
