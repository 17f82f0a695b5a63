"""Our SI/SL encodings against independent implementations: libwbxml and tshark.

libwbxml (Debian libwbxml2-utils, installed by scripts/test.sh): ``xml2wbxml`` of the same
document must give our bytes exactly, and ``wbxml2xml`` of our bytes must give back our
fields. tshark: a capture of our SMPP submit_sm PDUs carrying the push must dissect as SMS
user data with ports 2948/9200, WSP push, and WBXML SI/SL with our attribute values.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import pytest

from adapters.smpp import protocol as smpp
from adapters.wap import push, wbxml

ROOT = Path(__file__).resolve().parents[3]
UTC = dt.UTC
needs_libwbxml = pytest.mark.skipif(
    shutil.which("xml2wbxml") is None or shutil.which("wbxml2xml") is None,
    reason="libwbxml2-utils not installed",
)
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")

LONG_HREF = "http://www.example.com/offers/spring/" + "abcdefghij" * 12 + "?campaign=c1"


def _date(value: dt.datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def si_xml(si: wbxml.ServiceIndication) -> str:
    attrs = [
        ("href", si.href),
        ("si-id", si.si_id),
        ("created", _date(si.created)),
        ("si-expires", _date(si.expires)),
        ("action", si.action.value),
    ]
    a = " ".join(f"{k}={quoteattr(v)}" for k, v in attrs if v is not None)
    body = f"<indication {a}>{escape(si.text)}</indication>" if si.text else f"<indication {a}/>"
    return (
        '<?xml version="1.0"?>\n<!DOCTYPE si PUBLIC "-//WAPFORUM//DTD SI 1.0//EN"'
        f' "http://www.wapforum.org/DTD/si.dtd">\n<si>{body}</si>\n'
    )


def sl_xml(sl: wbxml.ServiceLoading) -> str:
    return (
        '<?xml version="1.0"?>\n<!DOCTYPE sl PUBLIC "-//WAPFORUM//DTD SL 1.0//EN"'
        ' "http://www.wapforum.org/DTD/sl.dtd">\n'
        f"<sl href={quoteattr(sl.href)} action={quoteattr(sl.action.value)}/>\n"
    )


SI_CASES = [
    *(
        wbxml.ServiceIndication(href="http://www.example.com/o", text="Offer", action=a)
        for a in wbxml.SiAction
    ),
    wbxml.ServiceIndication(href=LONG_HREF, text="Long link", si_id="offer-1"),
    wbxml.ServiceIndication(
        href="https://shop.example.net/x.org/y",
        si_id="s-2",
        created=dt.datetime(2026, 11, 30, 10, 0, 0, tzinfo=UTC),
        expires=dt.datetime(2026, 12, 1, 0, 0, 0, tzinfo=UTC),
        text="Dates",
    ),
    wbxml.ServiceIndication(
        href="https://www.example.edu/",
        created=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        text="春季优惠, 流量包半价 — café ünïcode",
        action="signal-low",
    ),
    wbxml.ServiceIndication(href="ftp://files.example.org/a", action="delete", si_id="old"),
]
SL_CASES = [
    *(wbxml.ServiceLoading(href="http://www.example.com/app", action=a) for a in wbxml.SlAction),
    wbxml.ServiceLoading(href=LONG_HREF, action="execute-high"),
    wbxml.ServiceLoading(href="https://pay.example.net/é", action="cache"),
]
CASES = [*SI_CASES, *SL_CASES]


def _id(doc: object) -> str:
    return (
        f"{type(doc).__name__}-{getattr(doc, 'action', '')}-{len(getattr(doc, 'href', '') or '')}"
    )


def _xml(doc: wbxml.ServiceIndication | wbxml.ServiceLoading) -> str:
    return si_xml(doc) if isinstance(doc, wbxml.ServiceIndication) else sl_xml(doc)


@needs_libwbxml
@pytest.mark.parametrize("doc", CASES, ids=_id)
def test_libwbxml_encodes_our_bytes(tmp_path: Path, doc) -> None:
    """xml2wbxml (no string table, WBXML 1.2) of the same document gives exactly our bytes."""
    src, out = tmp_path / "doc.xml", tmp_path / "doc.wbxml"
    src.write_text(_xml(doc), encoding="utf-8")
    subprocess.run(
        ["xml2wbxml", "-n", "-v", "1.2", "-o", str(out), str(src)],
        check=True,
        capture_output=True,
    )
    ours, theirs = push.encode_document(doc)[0], out.read_bytes()
    assert ours.hex() == theirs.hex()


@needs_libwbxml
@pytest.mark.parametrize("doc", CASES, ids=_id)
def test_libwbxml_decodes_our_fields(tmp_path: Path, doc) -> None:
    """wbxml2xml of our bytes gives back every field (dates as ISO 8601, UTF-8 text)."""
    src, out = tmp_path / "doc.wbxml", tmp_path / "doc.xml"
    src.write_bytes(push.encode_document(doc)[0])
    subprocess.run(["wbxml2xml", "-o", str(out), str(src)], check=True, capture_output=True)
    root = ET.fromstring(out.read_bytes())
    if isinstance(doc, wbxml.ServiceLoading):
        assert root.tag == "sl"
        assert root.attrib == {"href": doc.href, "action": doc.action.value}
        return
    (ind,) = list(root)
    expected = {
        "href": doc.href,
        "si-id": doc.si_id,
        "created": _date(doc.created),
        "si-expires": _date(doc.expires),
        "action": doc.action.value,
    }
    assert ind.attrib == {k: v for k, v in expected.items() if v is not None}
    assert (ind.text or "") == doc.text


@needs_libwbxml
def test_libwbxml_string_table_decoded(tmp_path: Path) -> None:
    """libwbxml's default output (with a string table) decodes to the same SI with our decoder."""
    doc = SI_CASES[6]
    src, out = tmp_path / "doc.xml", tmp_path / "doc.wbxml"
    src.write_text(_xml(doc), encoding="utf-8")
    subprocess.run(["xml2wbxml", "-o", str(out), str(src)], check=True, capture_output=True)
    assert wbxml.decode(out.read_bytes()) == doc


# -- tshark on a capture of our SMPP submit_sm ---------------------------------------------


def write_smpp_pcap(path: Path, pdus: list[bytes]) -> None:
    """A pcap of one TCP stream (ESME -> SMSC port 2775) carrying ``pdus``, one per segment."""
    records, seq = [], 1
    for i, pdu in enumerate(pdus):
        tcp = struct.pack("!HHIIBBHHH", 40000, 2775, seq, 0, 5 << 4, 0x18, 65535, 0, 0)
        total = 20 + len(tcp) + len(pdu)
        ip = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, total, i + 1, 0, 64, 6, 0, b"\x7f\0\0\1", b"\x7f\0\0\2"
        )
        frame = b"\0" * 12 + b"\x08\x00" + ip + tcp + pdu
        records.append(struct.pack("<IIII", 1_700_000_000 + i, 0, len(frame), len(frame)) + frame)
        seq += len(pdu)
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    path.write_bytes(header + b"".join(records))


def submit_pdus(doc, *, reference: int = 5) -> list[bytes]:
    return [
        smpp.encode_pdu(
            "submit_sm",
            i + 1,
            source_addr="10086",
            destination_addr="8613800138000",
            esm_class=0x40,
            data_coding=0x04,
            short_message=ud,
        )
        for i, ud in enumerate(push.encode(doc, transaction_id=0x21, reference=reference))
    ]


TSHARK_FIELDS = [
    "smpp.esm.submit.features",
    "smpp.data_coding",
    "gsm_sms.destination_port",
    "gsm_sms.originator_port",
    "wsp.pdu_type",
    "wsp.header.x_wap_application_id",
    "wbxml.public_id.known",
    "wbxml.known_attrstart",
    "wbxml.str_i",
    "wbxml.known_attrvalue",
    "wbxml.opaque_data",
]


def tshark_last_frame(path: Path) -> dict[str, str]:
    cmd = ["tshark", "-r", str(path), "-T", "fields", "-E", "separator=\t", "-E", "aggregator=\x1f"]
    for f in TSHARK_FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = [line.split("\t") for line in out.splitlines() if line.strip()]
    return dict(zip(TSHARK_FIELDS, rows[-1], strict=True))


@needs_tshark
@pytest.mark.parametrize(
    "doc",
    [SI_CASES[4], SI_CASES[5], SI_CASES[6], SI_CASES[7], SL_CASES[1], SL_CASES[3]],
    ids=_id,
)
def test_tshark_dissects_our_push(tmp_path: Path, doc) -> None:
    """tshark reads our submit_sm as binary SMS -> ports 2948/9200 -> WSP push -> WBXML SI/SL."""
    pcap = tmp_path / "push.pcap"
    pdus = submit_pdus(doc)
    write_smpp_pcap(pcap, pdus)
    row = tshark_last_frame(pcap)  # the reassembled push is dissected with the last part
    assert int(row["smpp.data_coding"], 0) == 4
    assert row["gsm_sms.destination_port"].split("\x1f")[0] == "2948"
    assert row["gsm_sms.originator_port"].split("\x1f")[0] == "9200"
    assert int(row["wsp.pdu_type"], 16) == 0x06
    assert row["wsp.header.x_wap_application_id"] == "x-wap-application:wml.ua"
    is_si = isinstance(doc, wbxml.ServiceIndication)
    assert int(row["wbxml.public_id.known"], 16) == (5 if is_si else 6)
    starts = row["wbxml.known_attrstart"].split("\x1f")
    strings = row["wbxml.str_i"].split("\x1f") if row["wbxml.str_i"] else []
    values = [v.strip("'") for v in row["wbxml.known_attrvalue"].split("\x1f") if v]
    # Rebuild the href from tshark's tokens: prefix start token, then strings and value tokens
    # in order (our encoder emits them in that order; tshark lists each kind separately, so
    # compare the multiset of parts and the prefix).
    href_start = next(s for s in starts if s.startswith("href="))
    prefix = href_start.partition("=")[2].strip("'")
    assert doc.href.startswith(prefix)
    assert f"action='{doc.action.value}'" in starts
    rest = doc.href[len(prefix) :]
    for v in values:
        assert v in rest
    for s in strings:
        assert s in rest or (is_si and s in (doc.text, doc.si_id))
    if is_si:
        assert doc.text == "" or strings[-1] == doc.text
        opaque = [o for o in row["wbxml.opaque_data"].split("\x1f") if o]
        dates = [d for d in (doc.created, doc.expires) if d is not None]
        # the field holds the OPAQUE token and length too
        assert [bytes.fromhex(o.replace(":", ""))[2:] for o in opaque] == [
            wbxml.encode_date(d) for d in dates
        ]
        if dates:  # and tshark's own reading of the compact date
            tree = subprocess.run(
                ["tshark", "-r", str(pcap), "-V"], capture_output=True, text=True, check=True
            ).stdout
            for d in dates:
                assert f"%DateTime: {_date(d)}" in tree
    if len(pdus) > 1:
        assert len(doc.href) > 100


@needs_tshark
def test_tshark_two_sms_reassembled(tmp_path: Path) -> None:
    """The long-href SI takes two submit_sm and tshark reassembles them into one WSP push."""
    doc = SI_CASES[5]
    pdus = submit_pdus(doc, reference=0x42)
    assert len(pdus) == 2
    pcap = tmp_path / "long.pcap"
    write_smpp_pcap(pcap, pdus)
    out = subprocess.run(
        ["tshark", "-r", str(pcap), "-V"], capture_output=True, text=True, check=True
    ).stdout
    assert "Reassembled Short Message length" in out
    assert "Service Indication 1.0" in out
    assert "abcdefghij" * 3 in out


def test_decode_push_script() -> None:
    """scripts/decode_push.py prints the document of a two-part push given as hex."""
    doc = SI_CASES[7]
    parts = push.encode(doc, reference=3)
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts/decode_push.py"), *(p.hex() for p in parts)],
        capture_output=True,
        text=True,
        check=True,
    )
    out = json.loads(run.stdout)
    assert out["document"]["text"] == doc.text
    assert out["document"]["created"] == "2026-01-02T03:04:05Z"
    assert (out["dest_port"], out["wsp"]["content_type"]) == (2948, "application/vnd.wap.sic")
    bad = subprocess.run(
        [sys.executable, str(ROOT / "scripts/decode_push.py"), "0605040b8423f0"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "WspError" in bad.stderr
