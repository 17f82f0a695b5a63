"""The sans-IO SMPP session: framing from a byte stream, events, automatic answers, fuzzing."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.smpp import protocol as p
from adapters.smpp.simulator import parse_submit_body


def bound_session() -> p.EsmeSession:
    s = p.EsmeSession()
    s.send_bind("transceiver", system_id="gw", password="pw")
    s.data_to_send()
    s.receive_data(p.encode_pdu("bind_transceiver_resp", 1, system_id="SMSC"))
    assert s.next_event() == p.BindResponse(0, "SMSC")
    return s


def events(s: p.EsmeSession) -> list:
    out = []
    while (e := s.next_event()) is not None:
        out.append(e)
    return out


def stream_of_pdus(n: int) -> tuple[p.EsmeSession, bytes]:
    s = bound_session()
    data = b""
    for i in range(n):
        seq = s.send_submit({"destination_addr": f"8613{i}", "short_message": b"x" * i}, context=i)
        data += p.encode_pdu("submit_sm_resp", seq, message_id=f"id{i}")
        data += p.encode_pdu(
            "deliver_sm",
            1000 + i,
            esm_class=4,
            short_message=b"id:x stat:DELIVRD",
            receipted_message_id=f"id{i}",
            message_state=2,
        )
        data += p.header_only(p.ENQUIRE_LINK, 0, 2000 + i)
    return s, data


@settings(max_examples=60)
@given(st.lists(st.integers(1, 400), max_size=30))
def test_split_reads_give_the_same_events(cuts):
    """PDUs split across reads, or several in one read, give the same events as one read."""
    whole_session, data = stream_of_pdus(5)
    whole_session.receive_data(data)
    expected = events(whole_session)
    session, _ = stream_of_pdus(5)
    got = []
    pos = 0
    for c in cuts:
        session.receive_data(data[pos : pos + c])
        pos += c
        got += events(session)
    session.receive_data(data[pos:])
    got += events(session)
    assert got == expected
    assert len([e for e in got if isinstance(e, p.SubmitResponse)]) == 5
    assert session.submits_outstanding == 0


def test_byte_at_a_time():
    """Feeding one byte at a time works and the enquire_links are answered."""
    s, data = stream_of_pdus(3)
    got = []
    for i in range(len(data)):
        s.receive_data(data[i : i + 1])
        got += events(s)
    assert len(got) == 6
    out = s.data_to_send()
    assert out.count(struct.pack(">I", p.ENQUIRE_LINK_RESP)) == 3


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_fuzz_parses_or_raises_remote_error(garbage):
    """Arbitrary bytes give events (Garbage among them) or RemoteProtocolError, nothing else."""
    s = bound_session()
    s.receive_data(garbage)
    try:
        events(s)
    except p.RemoteProtocolError:
        pass


def test_unknown_command_gets_generic_nack():
    """An unknown command_id is answered with generic_nack ESME_RINVCMDID and reported."""
    s = bound_session()
    s.receive_data(p.header_only(0x00000777, 0, 42))
    (event,) = events(s)
    assert isinstance(event, p.Garbage)
    assert s.data_to_send() == p.header_only(p.GENERIC_NACK, p.ESME_RINVCMDID, 42)


def test_bad_length_is_fatal():
    """A command_length below 16 loses the framing: RemoteProtocolError."""
    s = bound_session()
    s.receive_data(struct.pack(">IIII", 8, 4, 0, 1))
    with pytest.raises(p.RemoteProtocolError):
        s.next_event()


def test_generic_nack_fails_the_submit():
    """A generic_nack naming a submit's sequence is that submit's (failed) answer."""
    s = bound_session()
    seq = s.send_submit({"destination_addr": "1", "short_message": b"a"}, context="ctx")
    s.receive_data(p.header_only(p.GENERIC_NACK, p.ESME_RSYSERR, seq))
    assert events(s) == [p.SubmitResponse(seq, p.ESME_RSYSERR, None, "ctx", nacked=True)]


def test_submit_before_bind_is_local_error():
    """Submitting before the bind completed is refused locally."""
    with pytest.raises(p.LocalProtocolError):
        p.EsmeSession().send_submit({"destination_addr": "1"})


def test_timeouts_and_unbind():
    """Old requests are popped by timeout; the SMSC's unbind is answered and reported."""
    s = bound_session()
    s.send_submit({"destination_addr": "1", "short_message": b"a"}, now=0.0)
    s.send_enquire_link(now=5.0)
    assert [x.command for x in s.pop_timed_out(10.0, 8.0)] == ["submit_sm"]
    assert s.submits_outstanding == 0 and len(s.outstanding) == 1
    s.data_to_send()
    s.receive_data(p.header_only(p.UNBIND, 0, 9))
    assert events(s) == [p.UnbindRequested()]
    assert s.data_to_send() == p.header_only(p.UNBIND_RESP, 0, 9)


def test_our_submit_sm_reads_back_independently():
    """What smpplib encodes for us is read back field by field by the simulator's own parser."""
    s = bound_session()
    s.send_submit(
        {
            "service_type": "CMT",
            "source_addr": "10086",
            "source_addr_ton": 5,
            "destination_addr": "8613800000000",
            "dest_addr_ton": 1,
            "dest_addr_npi": 1,
            "esm_class": 0x40,
            "priority_flag": 1,
            "validity_period": "000001000000000R",
            "registered_delivery": 1,
            "data_coding": 8,
            "short_message": b"\x05\x00\x03\x01\x02\x01\x4e\x2d",
        }
    )
    raw = s.data_to_send()
    f = parse_submit_body(raw[16:])
    assert (f["service_type"], f["source_addr"], f["source_addr_ton"], f["destination_addr"]) == (
        "CMT",
        "10086",
        5,
        "8613800000000",
    )
    assert (
        f["esm_class"],
        f["priority_flag"],
        f["validity_period"],
        f["registered_delivery"],
        f["data_coding"],
    ) == (0x40, 1, "000001000000000R", 1, 8)
    assert f["short_message"] == b"\x05\x00\x03\x01\x02\x01\x4e\x2d"


def test_submit_sm_resp_naming_another_request_is_garbage():
    """A submit_sm_resp carrying the sequence of our enquire_link is garbage, not a submit answer."""
    s = bound_session()
    seq = s.send_enquire_link()
    s.receive_data(p.encode_pdu("submit_sm_resp", seq, message_id="x"))
    (event,) = events(s)
    assert isinstance(event, p.Garbage)
    assert s.submits_outstanding == 0


def test_unsolicited_bind_resp_leaves_the_session_bound():
    """A failed bind_resp arriving while bound (no bind outstanding) does not unbind us."""
    s = bound_session()
    s.receive_data(p.encode_pdu("bind_transceiver_resp", 77, status=p.ESME_RBINDFAIL))
    (event,) = events(s)
    assert isinstance(event, p.Garbage)
    assert s.state == "bound"
    s.send_submit({"destination_addr": "8613800000000", "short_message": b"x"})


def test_unsolicited_unbind_resp_leaves_the_session_bound():
    """An unbind_resp for an unbind we never sent does not close the session."""
    s = bound_session()
    s.receive_data(p.header_only(p.UNBIND_RESP, 0, 55))
    (event,) = events(s)
    assert isinstance(event, p.Garbage)
    assert s.state == "bound"
    s.send_submit({"destination_addr": "8613800000000", "short_message": b"x"})


def test_answer_naming_a_submit_leaves_it_outstanding():
    """A bind_resp carrying a submit_sm's sequence does not consume that submit: its own answer still counts."""
    s = bound_session()
    seq = s.send_submit({"destination_addr": "8613800000000", "short_message": b"x"}, context="c")
    s.receive_data(p.encode_pdu("bind_transceiver_resp", seq, system_id="SMSC"))
    s.receive_data(p.encode_pdu("submit_sm_resp", seq, message_id="m1"))
    garbage, answer = events(s)
    assert isinstance(garbage, p.Garbage)
    assert answer == p.SubmitResponse(seq, 0, "m1", "c")
    assert s.submits_outstanding == 0
