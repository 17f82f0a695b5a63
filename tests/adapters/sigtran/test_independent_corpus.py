"""The decoder on captures whose BSSAP payloads come from an independent encoder (pycrate).

The corpus (scripts/independent_capture.py) is generated once per session into a temporary
directory: every BSSMAP message and IE, MM/CC/RR/SMS/SS message the decoder handles, optional
IEs present or not, inside SCCP/M3UA/SCTP/IPv4/Ethernet. tshark is the oracle for every field
we report; the procedures the generator played are the oracle for the events.
"""

from __future__ import annotations

import importlib.util
import itertools
import shutil
import sys
from pathlib import Path

import pytest
from sigtran_helpers import decode_file
from test_tshark_fields import compare, tshark_rows

from adapters.sigtran.correlate import Correlator
from adapters.sigtran.decoder import Decoder

pytest.importorskip("pycrate_mobile", reason="pycrate (the independent encoder) not installed")

_SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "independent_capture.py"
_spec = importlib.util.spec_from_file_location("independent_capture", _SCRIPT)
assert _spec is not None and _spec.loader is not None
IC = importlib.util.module_from_spec(_spec)
sys.modules["independent_capture"] = IC
_spec.loader.exec_module(IC)

needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")

#: Fields of an expected event that the decoder's event must repeat exactly.
_KEYS = (
    "kind",
    "imsi",
    "direction",
    "outcome",
    "peer",
    "service_code",
    "ss_operation",
    "lac",
    "ci",
    "imei",
    "previous_imei",
    "cause",
)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """``(Corpus, path)``: the procedures played and their capture."""
    played = IC.Corpus(11, subscribers=12).run(120)
    path = tmp_path_factory.mktemp("independent") / "independent.pcap"
    IC.write(path, IC.packets(played.messages))
    return played, path


def _single(procedure, *, seed: int = 5, ho_mode: str = "imsi"):
    """A corpus of one subscriber: attached, then ``procedure(corpus, sub)``."""
    played = IC.Corpus(seed, subscribers=1)
    played.ho_mode = ho_mode
    sub = played.subs[0]
    played.attach(sub, 2)
    procedure(played, sub)
    decoder = Decoder(Correlator(home_plmns=("46000",)))
    for ts, frame in IC.packets(played.messages):
        decoder.feed(ts, 1, frame)
    events = decoder.drain() + decoder.finish()
    return played, events, decoder


def _matches(expected: list[dict], events: list[dict]) -> list[tuple]:
    """Pairs of (expected, got) that differ, over the kinds the expectation lists."""
    kinds = {e["kind"] for e in expected}
    got = [e for e in events if e["kind"] in kinds]
    wrong = []
    for want, have in itertools.zip_longest(expected, got):
        if want is None or have is None:
            wrong.append((want, have))
            continue
        if {k: have.get(k) for k in _KEYS if k in want} != {k: want[k] for k in _KEYS if k in want}:
            wrong.append((want, have))
        elif "duration" in want and abs(have["duration"] - want["duration"]) > 1e-3:
            wrong.append((want, have))
    return wrong


# -- the oracle: tshark ----------------------------------------------------------------------


@needs_tshark
def test_every_field_matches_tshark_frame_by_frame(corpus):
    """Every frame of the independent corpus decodes to tshark's values for every field we report."""
    _, path = corpus
    assert compare(path) > 1500


@needs_tshark
def test_corpus_covers_every_message_and_ie_the_decoder_handles(corpus):
    """tshark finds in the corpus every BSSMAP, MM, RR, CC, SMS and SS message type we decode."""
    _, path = corpus
    seen: dict[str, set] = {}
    for row in tshark_rows(path).values():
        for field, values in row.items():
            seen.setdefault(field, set()).update(values)
    required = {
        # assignment req/complete, HO request/required/request ack/command/complete/performed/
        # detect, clear command/complete/request, common ID, paging, cipher mode cmd/complete,
        # complete layer 3 information (TS 48.008 3.2.2.1)
        "gsm_a.bssmap.msgtype": {
            0x01,
            0x02,
            0x10,
            0x11,
            0x12,
            0x13,
            0x14,
            0x17,
            0x1B,
            0x20,
            0x21,
            0x22,
            0x2F,
            0x52,
            0x53,
            0x55,
            0x57,
        },
        "gsm_a.dtap.msg_mm_type": {0x01, 0x02, 0x04, 0x08, 0x18, 0x19, 0x1B, 0x24},
        "gsm_a.dtap.msg_rr_type": {0x27, 0x32},  # paging response, ciphering mode complete
        # setup, call proceeding, call confirmed, alerting, connect, connect ack, disconnect,
        # release, release complete (TS 24.008 10.4)
        "gsm_a.dtap.msg_cc_type": {0x05, 0x02, 0x08, 0x01, 0x07, 0x0F, 0x25, 0x2D, 0x2A},
        "gsm_a.dtap.msg_sms_type": {0x01, 0x04},
        "gsm_a.rp.msg_type": {0x00, 0x01},  # RP-DATA both ways
        "gsm_a.dtap.updating_type": {0, 1, 2},
        "gsm_old.localValue": {10, 11, 12, 13, 59},
        "gsm_a.bssmap.cause": {0x01, 0x09, 0x0B, 0x0C},
        "gsm_a.dtap.cause": {1, 16, 17, 19, 21},
    }
    for field, values in required.items():
        assert values <= seen.get(field, set()), (field, values - seen.get(field, set()))
    assert seen["gsm_sms.tp-oa"] and seen["gsm_map.ussd_string"] and seen["gsm_a.imeisv"]


# -- the oracle: the procedures ----------------------------------------------------------------


def test_events_are_those_of_the_procedures_played(corpus):
    """Every scene of the matrix comes out as played: kinds, direction, outcome, peers, codes."""
    played, path = corpus
    events, decoder = decode_file(path)
    assert decoder.errors == {}
    assert not _matches(played.expected, events)
    kinds = {e["kind"] for e in played.expected}
    assert {"mt_sms", "ussd", "ss_change", "handover", "handset_change"} <= kinds
    outcomes = {e.get("outcome") for e in played.expected}
    assert {
        "answered",
        "rejected",
        "busy",
        "no_answer",
        "unallocated_number",
        "network_failure",
    } <= outcomes


def test_optional_bssmap_ies_in_any_order_decode_alike():
    """A Handover Performed decodes to the same fields whatever the order of its optional IEs."""
    from adapters.sigtran import bssap

    cell = IC.cell_id(0x1001, 42)
    optional = [(0x21, b"\x09"), (0x2C, b"\x02"), (0x40, b"\x21"), (0x31, b"\x09")]
    results = set()
    for order in itertools.permutations(optional):
        pdu = IC.bssmap(0x17, [(0x04, b"\x0c"), (0x05, cell), *order])
        msg = bssap.decode(pdu)
        results.add(tuple(sorted(msg.items())))
    assert results == {
        (
            ("bssmap", 0x17),
            ("bssmap_cause", 0x0C),
            ("ci", 42),
            ("lac", 0x1001),
            ("mcc", "460"),
            ("mnc", "00"),
        )
    }


# -- issue 11, defects 1-6 ----------------------------------------------------------------------


def test_defect1_handovers_with_speech_version_and_channel_type_decode():
    """Handover Required/Performed carrying 0x31 and 0x40 decode: handover event with the new cell."""
    played, events, decoder = _single(lambda c, s: c.mo_call(s, "answered", handover="intra"))
    assert decoder.errors == {}
    want = [e for e in played.expected if e["kind"] == "handover"]
    got = [e for e in events if e["kind"] == "handover"]
    assert len(got) == 1 and (got[0]["lac"], got[0]["ci"]) == (want[0]["lac"], want[0]["ci"])


@pytest.mark.parametrize("ho_mode", ["imsi", "common_id"])
def test_defect2_inter_bsc_handover_is_one_call_with_the_whole_talk_time(ho_mode):
    """An inter-BSC handover gives one call_start, one call_end (whole talk time), one handover."""
    played, events, decoder = _single(
        lambda c, s: c.mt_call(s, "answered", handover="inter"), ho_mode=ho_mode
    )
    calls = [e for e in events if e["kind"] in ("call_start", "call_end", "handover")]
    assert [e["kind"] for e in calls] == ["call_start", "handover", "call_end"]
    want_end = next(e for e in played.expected if e["kind"] == "call_end")
    want_ho = next(e for e in played.expected if e["kind"] == "handover")
    start, handover, end = calls
    assert abs(end["duration"] - want_end["duration"]) < 1e-3 and end["duration"] > 10
    assert end["outcome"] == "answered" and end["direction"] == "mt" and end["cause"] == 16
    assert end["peer"] == start.get("peer") and end["imsi"] == start["imsi"]
    assert (handover["lac"], handover["ci"]) == (want_ho["lac"], want_ho["ci"])
    assert (end["lac"], end["ci"]) == (want_ho["lac"], want_ho["ci"])  # the call ends there
    assert decoder.errors == {}


def test_a_handed_over_call_whose_new_leg_is_never_seen_ends_once_at_the_old_leg():
    """No new leg takes the handed-over call: it ends once, at its old leg's release, answered."""
    played, events, decoder = _single(
        lambda c, s: c.mo_call(s, "answered", handover="inter"), ho_mode="lost"
    )
    ends = [e for e in events if e["kind"] == "call_end"]
    want = next(e for e in played.expected if e["kind"] == "call_end")
    assert len(ends) == 1 and ends[0]["outcome"] == "answered"
    assert abs(ends[0]["duration"] - want["duration"]) < 1e-3
    assert decoder.skipped[("correlation", "handover_not_completed")] == 1
    assert not [e for e in events if e["kind"] == "handover"]


def test_defect3_a_call_on_an_unknown_connection_emits_nothing():
    """A Setup and clearing on a connection never identified: counted, no identity-less events."""
    played = IC.Corpus(7, subscribers=1)
    conn = played._refs()  # a connection whose CR the capture missed
    setup = IC.dtap(IC.CCSetupMO_bytes(called="0123456789"))
    played._send(IC.BSC_PC, IC.MSC_PC, IC.W.sccp_dt1(conn[1], setup))
    played._cc(conn, "Disconnect", 0, True, True, Cause=IC.cc_cause(16, 0))
    played._cc(conn, "Release", 0, True, False)
    decoder = Decoder(Correlator())
    for ts, frame in IC.packets(played.messages):
        decoder.feed(ts, 1, frame)
    events = decoder.drain() + decoder.finish()
    assert events == []
    assert decoder.skipped[("correlation", "no_identity")] == 1
    assert decoder.skipped[("correlation", "call_start_not_seen")] == 1
    assert decoder.errors == {}


@pytest.mark.parametrize("name", ["imsi_filler_inside", "imsi_17_digits", "imei_14_digits"])
def test_defect4_malformed_identities_are_errors(name):
    """An IMSI with a filler inside or 17 digits (or a short IMEI) is an error, not an identity."""
    prefix, broken = IC.broken()
    decoder = Decoder(Correlator())
    for ts, frame in prefix:
        decoder.feed(ts, 1, frame)
    ts, frame = dict(broken)[name]
    decoder.feed(ts, 1, frame)
    assert decoder.errors == {("bssap", "bad_identity"): 1}


def test_defect5_imeisv_in_cipher_mode_complete_gives_handset_change():
    """The IMEISV of a Cipher Mode Complete is read: a new handset is reported with the old IMEI."""
    played, events, _decoder = _single(lambda c, s: c.handset_change(s))
    want = next(e for e in played.expected if e["kind"] == "handset_change")
    got = [e for e in events if e["kind"] == "handset_change"]
    assert len(got) == 1
    assert (got[0]["imei"], got[0]["previous_imei"]) == (want["imei"], want["previous_imei"])


def test_defect6_every_broken_frame_is_an_error_not_a_skip():
    """Each of the 26 deliberately broken frames is counted as exactly one error and no skip."""
    prefix, broken = IC.broken()
    assert len(broken) == 26
    for name, (ts, frame) in broken:
        decoder = Decoder(Correlator())
        for t, f in prefix:
            decoder.feed(t, 1, f)
        skipped, errors = dict(decoder.skipped), sum(decoder.errors.values())
        decoder.feed(ts, 1, frame)
        assert sum(decoder.errors.values()) == errors + 1, name
        assert decoder.skipped == skipped, name


def test_bssmap_tv_table_agrees_with_pycrate():
    """Our TS 48.008 TV table (no length octet) equals pycrate's fixed-length IEs, both ways."""
    from pycrate_mobile.TS48008_BSSMAP import BSSMAPElm_dict

    from adapters.sigtran.bssap import _FIXED

    theirs = {iei: size for iei, (_name, size, _cls) in BSSMAPElm_dict.items() if size >= 0}
    assert _FIXED == theirs


def test_bssmap_message_types_agree_with_pycrate():
    """Our defined BSSMAP types are pycrate's, plus 0x2A (connection oriented information,
    obsolete but allocated: tshark knows it, pycrate does not)."""
    from pycrate_mobile.TS48008_BSSMAP import _BSSMAPType_dict

    from adapters.sigtran.bssap import MESSAGE_TYPES

    assert set(MESSAGE_TYPES) == set(_BSSMAPType_dict) | {0x2A}
