"""The fast path for the hot PDUs is byte-identical to smpplib, the reference, both ways."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.smpp import fastpdu
from adapters.smpp import protocol as p

_latin = st.text(st.characters(min_codepoint=1, max_codepoint=255), max_size=25)
_byte = st.integers(0, 255)
_octets = st.binary(max_size=300)


def _optional(strategy):
    return st.one_of(st.none(), strategy)


_sm_fields = st.fixed_dictionaries(
    {},
    optional={
        "service_type": _latin,
        "source_addr_ton": _byte,
        "source_addr_npi": _byte,
        "source_addr": _latin,
        "dest_addr_ton": _byte,
        "dest_addr_npi": _byte,
        "destination_addr": _latin,
        "esm_class": _byte,
        "protocol_id": _byte,
        "priority_flag": _byte,
        "schedule_delivery_time": _latin,
        "validity_period": _latin,
        "registered_delivery": _byte,
        "replace_if_present_flag": _byte,
        "data_coding": _byte,
        "sm_default_msg_id": _byte,
        "short_message": st.binary(max_size=255),
        "sar_msg_ref_num": _optional(st.integers(0, 0xFFFF)),
        "sar_total_segments": _optional(_byte),
        "sar_segment_seqnum": _optional(_byte),
        "user_message_reference": _optional(st.integers(0, 0xFFFF)),
        "source_subaddress": st.text(
            st.characters(min_codepoint=1, max_codepoint=127), max_size=30
        ),
    },
)
_deliver_extra = st.fixed_dictionaries(
    {},
    optional={
        "message_state": _optional(_byte),
        "receipted_message_id": st.text(
            st.characters(min_codepoint=1, max_codepoint=127), max_size=70
        ),
        "network_error_code": st.binary(min_size=3, max_size=3),
    },
)


def _reference(command: str, seq: int, status: int, fields: dict) -> bytes:
    return p.encode_pdu(command, seq, status, **fields)


def _with_payload(fields: dict, payload: bytes) -> dict:
    if payload and not fields.get("short_message"):
        return {**fields, "message_payload": payload}
    return fields


@settings(max_examples=400)
@given(_sm_fields, _octets, st.integers(1, 0x7FFFFFFF), st.integers(0, 0xFFFFFFFF))
def test_submit_sm_encoding_matches_smpplib(fields, payload, seq, status):
    """submit_sm written by the fast path equals smpplib's make_pdu(...).generate(), byte for byte."""
    fields = _with_payload(fields, payload)
    assert fastpdu.encode_submit_sm(seq, fields, status) == _reference(
        "submit_sm", seq, status, fields
    )


@given(st.text(max_size=30), st.binary(max_size=4), st.integers(1, 0x7FFFFFFF))
def test_unusual_values_fall_back_to_smpplib(subaddress, bad, seq):
    """Values outside the fast path (non-ASCII text TLVs, bytes for text) end as smpplib ends them."""
    for fields in ({"source_subaddress": subaddress}, {"source_addr": bad}, {"esm_class": True}):
        try:
            expected = _reference("submit_sm", seq, 0, fields)
        except Exception as exc:  # smpplib refuses it: so must the fast path, the same way
            try:
                fastpdu.encode_submit_sm(seq, fields)
            except Exception as ours:
                assert type(ours) is type(exc)
            else:
                raise AssertionError("the fast path accepted what smpplib refuses") from exc
        else:
            assert fastpdu.encode_submit_sm(seq, fields) == expected


@settings(max_examples=300)
@given(_sm_fields, _deliver_extra, _octets, st.integers(1, 0x7FFFFFFF))
def test_deliver_sm_encoding_matches_smpplib(fields, extra, payload, seq):
    """deliver_sm written by the fast path (the simulator's receipts and MO) equals smpplib's."""
    fields = _with_payload({**fields, **extra}, payload)
    assert fastpdu.encode_deliver_sm(seq, fields) == _reference("deliver_sm", seq, 0, fields)


@given(
    st.integers(1, 0x7FFFFFFF),
    st.integers(0, 0xFFFFFFFF),
    _latin | st.text(st.characters(min_codepoint=1), max_size=80),
)
def test_submit_sm_resp_both_ways_match_smpplib(seq, status, message_id):
    """submit_sm_resp: written like smpplib writes it, and its message_id read like smpplib reads it."""
    try:
        ref = _reference("submit_sm_resp", seq, status, {"message_id": message_id})
    except UnicodeEncodeError:
        return  # not latin-1: neither side can write it
    assert fastpdu.encode_submit_sm_resp(seq, status, message_id) == ref
    parsed = p.decode_pdu(ref)
    expected = parsed.message_id.decode("latin-1") if parsed.message_id is not None else None
    assert fastpdu.decode_submit_sm_resp(ref) == expected


@given(st.integers(1, 0x7FFFFFFF), st.integers(0, 0xFFFFFFFF))
def test_deliver_sm_resp_matches_smpplib(seq, status):
    """deliver_sm_resp from the fast path equals smpplib's."""
    assert fastpdu.encode_deliver_sm_resp(seq, status) == _reference(
        "deliver_sm_resp", seq, status, {}
    )


def _slow_event(raw: bytes):
    seq = struct.unpack_from(">I", raw, 12)[0]
    pdu = p.decode_pdu(raw)
    return p.deliver_event(lambda name: getattr(pdu, name, None), seq)


@settings(max_examples=400)
@given(_sm_fields, _deliver_extra, _octets, st.integers(1, 0x7FFFFFFF), st.binary(max_size=12))
def test_deliver_sm_decoding_matches_smpplib(fields, extra, payload, seq, unknown_tlv):
    """A deliver_sm smpplib wrote (with an unknown TLV appended) reads the same through the fast path."""
    fields = _with_payload({**fields, **extra}, payload)
    raw = _reference("deliver_sm", seq, 0, fields)
    tlv = struct.pack(">HH", 0x1E01, len(unknown_tlv)) + unknown_tlv  # vendor TLV, skipped
    raw = struct.pack(">I", len(raw) + len(tlv)) + raw[4:] + tlv
    parsed = fastpdu.parse_sm_fields(raw)
    assert parsed is not None
    assert p.deliver_event(parsed.get, seq) == _slow_event(raw)


@settings(max_examples=400)
@given(st.binary(max_size=120))
def test_deliver_sm_fast_read_of_any_body_agrees_or_defers(body):
    """Any deliver_sm body: the fast path reads what smpplib reads, or leaves it to smpplib."""
    raw = struct.pack(">IIII", 16 + len(body), 0x00000005, 0, 7) + body
    parsed = fastpdu.parse_sm_fields(raw)
    if parsed is None:
        return
    assert p.deliver_event(parsed.get, 7) == _slow_event(raw)


def test_session_reads_receipts_through_the_fast_path():
    """A bound session turns a receipt deliver_sm into the same event either way, and answers it."""
    session = p.EsmeSession()
    session.send_bind("transceiver", system_id="gw", password="pw")
    session.data_to_send()
    session.receive_data(fastpdu.HEADER.pack(21, 0x80000009, 0, 1) + b"SMSC\x00")
    assert isinstance(session.next_event(), p.BindResponse)
    raw = fastpdu.encode_deliver_sm(
        9,
        dict(
            source_addr="8613800000001",
            esm_class=4,
            short_message=b"id:1 stat:DELIVRD",
            receipted_message_id="1",
            message_state=2,
        ),
    )
    session.receive_data(raw)
    event = session.next_event()
    assert event == _slow_event(raw) and event.is_receipt
    session.send_deliver_sm_resp(event.sequence)
    assert session.data_to_send() == _reference("deliver_sm_resp", 9, 0, {})
