"""Our decoded fields against tshark's, packet by packet, on the same captures."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from sigtran_helpers import CAPTURES, decode_file, make_capture, needs_captures

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")

FIELDS = [
    "sccp.message_type",
    "sccp.called.ssn",
    "sccp.called.pc",
    "sccp.called.digits",
    "sccp.calling.ssn",
    "sccp.calling.pc",
    "sccp.slr",
    "sccp.dlr",
    "gsm_a.bssmap.msgtype",
    "gsm_a.dtap.msg_mm_type",
    "gsm_a.dtap.msg_cc_type",
    "gsm_a.dtap.msg_sms_type",
    "gsm_a.dtap.msg_rr_type",
    "e212.imsi",
    "3gpp.tmsi",
    "gsm_a.tmsi",
    "gsm_a.imeisv",
    "gsm_a.imei",
    "gsm_a.lac",
    "gsm_a.bssmap.cell_lac",
    "gsm_a.bssmap.cell_ci",
    "gsm_a.dtap.cause",
    "gsm_a.dtap.cld_party_bcd_num",
    "gsm_a.dtap.clg_party_bcd_num",
    "gsm_a.rp.msg_type",
    "gsm_sms.tp-da",
    "gsm_a.bssmap.cause",
    "ranap.procedureCode",
    "ranap.sAC",
    "gsm_a.dtap.updating_type",
    "gsm_sms.tp-oa",
    "gsm_map.ussd_string",
    "gsm_old.localValue",
    "gsm_map.ss.ss_Code",
]
_INT_FIELDS = {
    f
    for f in FIELDS
    if f
    not in {
        "e212.imsi",
        "gsm_a.imeisv",
        "gsm_a.imei",
        "sccp.called.digits",
        "gsm_a.dtap.cld_party_bcd_num",
        "gsm_a.dtap.clg_party_bcd_num",
        "gsm_sms.tp-da",
        "gsm_sms.tp-oa",
        "gsm_map.ussd_string",
    }
}


def tshark_rows(path: Path) -> dict[int, dict[str, list]]:
    cmd = [
        "tshark",
        "-r",
        str(path),
        "-o",
        "sctp.reassembly:TRUE",
        "-T",
        "fields",
        "-E",
        "separator=\t",
        "-E",
        "aggregator=|",
        "-e",
        "frame.number",
    ]
    for field in FIELDS:
        cmd += ["-e", field]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = {}
    for line in out.splitlines():
        cols = line.split("\t")
        row = {}
        for field, value in zip(FIELDS, cols[1:], strict=False):
            if value:
                items = value.split("|")
                if field == "gsm_map.ussd_string":  # a 7-bit CR pad is not part of the string
                    items = [v.removesuffix("\\r") for v in items]
                row[field] = [int(v, 0) for v in items] if field in _INT_FIELDS else items
        rows[int(cols[0])] = {k: v for k, v in row.items() if v}
    return rows


def our_rows(trace) -> dict[int, dict[str, list]]:
    """The same fields from our decoder's trace, in message order within a frame."""
    rows: dict[int, dict[str, list]] = {}
    for frame, t, dlr, slr, msg, called, calling in trace:
        row = rows.setdefault(frame, {})

        def put(field, value, row=row):
            if value is not None:
                row.setdefault(field, []).append(value)

        put("sccp.message_type", t)
        put("sccp.slr", slr)
        put("sccp.dlr", dlr)
        for prefix, address in (("sccp.called", called), ("sccp.calling", calling)):
            if address is not None:
                pc, ssn, digits = address
                put(prefix + ".pc", pc)
                put(prefix + ".ssn", ssn)
                if prefix == "sccp.called":
                    put(prefix + ".digits", digits)
        if not msg:
            continue
        put("gsm_a.bssmap.msgtype", msg.get("bssmap"))
        put("ranap.procedureCode", msg.get("ranap"))
        put("ranap.sAC", msg.get("sac"))
        put("gsm_a.dtap.msg_mm_type", msg.get("mm"))
        put("gsm_a.dtap.msg_cc_type", msg.get("cc"))
        put("gsm_a.dtap.msg_sms_type", msg.get("cp"))
        put("gsm_a.dtap.msg_rr_type", msg.get("rr"))
        put("e212.imsi", msg.get("imsi"))
        # a BSSMAP TMSI IE (paging) vs a mobile identity IE (DTAP)
        put("gsm_a.tmsi" if msg.get("bssmap") == 0x52 else "3gpp.tmsi", msg.get("tmsi"))
        put("gsm_a.imeisv", msg.get("imeisv"))
        put("gsm_a.imei", msg.get("imei"))
        from_cell = msg.get("bssmap") is not None
        if msg.get("mm") == 0x08:
            put("gsm_a.lac", msg.get("old_lac"))
        if from_cell:
            if "serving" in msg:  # Handover Request: serving cell, then target cell
                put("gsm_a.bssmap.cell_lac", msg["serving"][0])
                put("gsm_a.bssmap.cell_ci", msg["serving"][1])
            put("gsm_a.bssmap.cell_lac", msg.get("lac"))
            put("gsm_a.bssmap.cell_ci", msg.get("ci"))
            for lac, ci in msg.get("cells", ()):
                put("gsm_a.bssmap.cell_lac", lac)
                put("gsm_a.bssmap.cell_ci", ci)
        elif msg.get("mm") in (0x02, 0x1A):
            put("gsm_a.lac", msg.get("lac"))
        put("gsm_a.dtap.cause", msg.get("cause"))
        put("gsm_a.dtap.cld_party_bcd_num", msg.get("called"))
        put("gsm_a.dtap.cld_party_bcd_num", msg.get("rp_dest"))  # tshark files it there too
        put("gsm_a.dtap.cld_party_bcd_num", msg.get("rp_orig"))  # tshark files it there too
        put("gsm_a.dtap.clg_party_bcd_num", msg.get("calling"))
        put("gsm_a.rp.msg_type", msg.get("rp"))
        put("gsm_sms.tp-da", msg.get("tp_da"))
        put("gsm_a.bssmap.cause", msg.get("bssmap_cause"))
        put("gsm_a.dtap.updating_type", msg.get("lu_type"))
        put("gsm_sms.tp-oa", msg.get("tp_oa"))
        put("gsm_map.ussd_string", msg.get("ussd"))
        put("gsm_old.localValue", msg.get("ss_op"))
        put("gsm_map.ss.ss_Code", msg.get("ss_code"))
    return rows


def compare(path: Path) -> int:
    trace: list = []
    decode_file(path, trace=trace)
    ours, theirs = our_rows(trace), tshark_rows(path)
    mismatches = []
    for frame in sorted(set(ours) | set(theirs)):
        a, b = ours.get(frame, {}), theirs.get(frame, {})
        for field in FIELDS:
            if a.get(field) != b.get(field):
                mismatches.append((frame, field, a.get(field), b.get(field)))
    assert not mismatches, mismatches[:20]
    return len(theirs)


@pytest.mark.parametrize(
    ("transport", "options"),
    [
        ("m3ua", {"bundle": True}),
        ("m3ua_vlan", {"sctp_fragment": 48}),
        ("sll", {"ip_fragment": 64}),
        ("m2pa", {}),
        ("mtp3", {}),
    ],
)
def test_every_field_matches_tshark_on_generated_captures(tmp_path, transport, options):
    """Every packet of every message type decodes to the same fields as tshark's dissection."""
    path = tmp_path / f"{transport}.pcap"
    make_capture(path, transport, seed=7, procedures=80, **options)
    assert compare(path) > 500


@needs_captures
def test_fields_match_tshark_on_the_real_gsm_r_capture():
    """The real MTP3 capture (DT1 / DTAP call control) decodes like tshark decodes it."""
    assert compare(CAPTURES / "gsm-r.uus1.pcap") == 9


@needs_captures
@pytest.mark.parametrize("name", ["iucs-mo-call-amr.pcap", "iucs-mt-call-amr.pcap", "3gpp_mc.cap"])
def test_fields_match_tshark_on_real_iu_cs_captures(name):
    """Iu-CS: the DTAP inside RANAP (and RANAP's own IMSI, SAC) decodes like tshark's."""
    assert compare(CAPTURES / name) > 0


def test_generated_capture_covers_every_message_of_the_issue(tmp_path):
    """tshark finds every listed SCCP, BSSMAP, MM, CC and SMS message type in our capture."""
    path = tmp_path / "all.pcap"
    make_capture(path, "m3ua", seed=7, procedures=150)
    seen: dict[str, set] = {}
    for row in tshark_rows(path).values():
        for field, values in row.items():
            seen.setdefault(field, set()).update(values)
    required = {
        # CR CC CREF RLSD RLC DT1 UDT XUDT (Q.713 4)
        "sccp.message_type": {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x09, 0x11},
        # assignment req/complete, HO required/command/performed, clear cmd/complete,
        # common ID, paging, cipher mode cmd/complete, complete layer 3 (TS 48.008 3.2.2.1)
        "gsm_a.bssmap.msgtype": {
            0x01,
            0x02,
            0x11,
            0x13,
            0x17,
            0x20,
            0x21,
            0x2F,
            0x52,
            0x53,
            0x55,
            0x57,
        },
        # IMSI detach, LU accept/reject/request, identity req/resp, TMSI realloc cmd/complete,
        # CM service request (TS 24.008 10.4)
        "gsm_a.dtap.msg_mm_type": {0x01, 0x02, 0x04, 0x08, 0x18, 0x19, 0x1A, 0x1B, 0x24},
        # setup, connect, disconnect, release, release complete
        "gsm_a.dtap.msg_cc_type": {0x05, 0x07, 0x25, 0x2D, 0x2A},
        "gsm_a.dtap.msg_sms_type": {0x01, 0x04},  # CP-DATA, CP-ACK
        "gsm_a.rp.msg_type": {0x00},  # RP-DATA MS -> network
        "gsm_a.dtap.updating_type": {0, 1, 2},  # normal, periodic, IMSI attach
    }
    for field, types in required.items():
        assert types <= seen.get(field, set()), (field, types - seen.get(field, set()))
    assert seen["e212.imsi"]
    assert seen["gsm_a.imei"] and seen["gsm_a.imeisv"] and seen["3gpp.tmsi"]
