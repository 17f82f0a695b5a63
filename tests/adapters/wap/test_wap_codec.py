"""SI/SL WBXML, the WSP push PDU and WDP over SMS: known bytes, round trips, bad input."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.wap import push, wbxml, wdp, wsp

UTC = dt.UTC

# -- strategies -----------------------------------------------------------------------------

text_st = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))
href_st = st.builds(
    lambda prefix, body: prefix + body,
    st.sampled_from(["", "http://", "http://www.", "https://", "https://www.", "ftp://"]),
    st.lists(
        st.sampled_from([*"abcxyz./?=&%-_01", ".com/", ".net/", ".org/", ".edu/", "é", "中"]),
        max_size=40,
    ).map("".join),
)
date_st = st.datetimes(min_value=dt.datetime(1000, 1, 1), max_value=dt.datetime(9999, 12, 31)).map(
    lambda d: d.replace(microsecond=0, tzinfo=UTC)
)
si_st = st.builds(
    wbxml.ServiceIndication,
    href=st.none() | href_st,
    text=text_st,
    si_id=st.none() | text_st,
    created=st.none() | date_st,
    expires=st.none() | date_st,
    action=st.sampled_from(list(wbxml.SiAction)),
)
sl_st = st.builds(wbxml.ServiceLoading, href=href_st, action=st.sampled_from(list(wbxml.SlAction)))


# -- WBXML ----------------------------------------------------------------------------------


def test_si_known_bytes() -> None:
    """An SI encodes to the tokens of WAP-167 8.3: prefix, .com/ value token, OPAQUE date, STR_I text."""
    si = wbxml.ServiceIndication(
        href="http://www.xyz.com/ppaid/123/abc.wml",
        si_id="123",
        created=dt.datetime(1999, 6, 25, 15, 23, 15, tzinfo=UTC),
        expires=dt.datetime(1999, 6, 30, 0, 0, tzinfo=UTC),
        text="You have 4 new emails",
        action="signal-high",
    )
    expected = (
        "02056a00"  # WBXML 1.2, SI 1.0, UTF-8, no string table
        "45c6"  # <si> <indication attrs+content>
        "0d"
        "0378797a00"
        "85"
        "0370706169642f3132332f6162632e776d6c00"  # href
        "11"
        "0331323300"  # si-id
        "0a"
        "c307"
        "19990625152315"  # created, 7 octets
        "10"
        "c304"
        "19990630"  # si-expires, trailing zero octets dropped
        "08"  # action signal-high
        "01"
        "03" + b"You have 4 new emails".hex() + "00"
        "0101"
    )
    assert wbxml.encode_si(si).hex() == expected


def test_sl_known_bytes() -> None:
    """An SL is one empty <sl> with the https://www. prefix token and the action token."""
    sl = wbxml.ServiceLoading(href="https://www.example.org/x", action="execute-high")
    assert wbxml.encode_sl(sl).hex() == "02066a00850c036578616d706c6500880378000601"


@pytest.mark.parametrize(
    ("value", "octets"),
    [
        (dt.datetime(2026, 11, 30, 10, 0, 0, tzinfo=UTC), "2026113010"),
        (dt.datetime(2000, 1, 1, tzinfo=UTC), "20000101"),
        (dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "20260102030405"),
        (
            dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=8))),
            "2026010119040500"[:14],
        ),
    ],
)
def test_date_compact_form(value: dt.datetime, octets: str) -> None:
    """Dates are BCD YYYYMMDDhhmmss in UTC with trailing zero octets dropped, and read back."""
    assert wbxml.encode_date(value).hex() == octets
    assert wbxml.decode_date(bytes.fromhex(octets)) == value


def test_naive_date_refused() -> None:
    """A date without a timezone is an error, not silently taken as local time."""
    with pytest.raises(wbxml.LocalWbxmlError):
        wbxml.ServiceIndication(href="http://a", created=dt.datetime(2026, 1, 1))


def test_nul_refused() -> None:
    """A NUL cannot be in an inline string: a clear local error."""
    with pytest.raises(wbxml.LocalWbxmlError):
        wbxml.encode_si(wbxml.ServiceIndication(href="http://a", text="a\x00b"))


@given(si_st)
@settings(max_examples=300)
def test_si_round_trip(si: wbxml.ServiceIndication) -> None:
    """Every SI decodes to itself."""
    assert wbxml.decode(wbxml.encode_si(si)) == si


@given(sl_st)
@settings(max_examples=200)
def test_sl_round_trip(sl: wbxml.ServiceLoading) -> None:
    """Every SL decodes to itself."""
    assert wbxml.decode(wbxml.encode_sl(sl)) == sl


@given(st.binary(max_size=200))
@settings(max_examples=500)
def test_decode_garbage(data: bytes) -> None:
    """Any bytes decode or raise WbxmlError, never anything else."""
    try:
        wbxml.decode(data)
    except wbxml.WbxmlError:
        pass


@given(si_st, st.data())
@settings(max_examples=200)
def test_decode_truncated(si: wbxml.ServiceIndication, data: st.DataObject) -> None:
    """A cut document raises WbxmlError."""
    raw = wbxml.encode_si(si)
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(wbxml.WbxmlError):
        wbxml.decode(raw[:cut])


# -- WSP ------------------------------------------------------------------------------------


def test_push_pdu_bytes() -> None:
    """TID, PDU type 0x06, headers length 3, content type 0xAE, X-Wap-Application-Id wml.ua."""
    assert wsp.encode_push(b"BODY", "application/vnd.wap.sic", transaction_id=0x2A).hex() == (
        "2a0603aeaf82" + b"BODY".hex()
    )
    assert wsp.encode_push(b"", "application/vnd.wap.slc", transaction_id=1)[3] == 0xB0


def test_push_pdu_general_forms() -> None:
    """The decoder reads a general-form content type with charset and a textual application id."""
    headers = bytes.fromhex("03ae81ea") + b"X-Wap-Application-Id\x00x-wap-application:wml.ua\x00"
    raw = bytes((7, 6, len(headers))) + headers + b"doc"
    pdu = wsp.decode_push(raw)
    assert (pdu.transaction_id, pdu.content_type, pdu.application_id, pdu.body) == (
        7,
        "application/vnd.wap.sic",
        "x-wap-application:wml.ua",
        b"doc",
    )


@given(st.binary(max_size=100))
@settings(max_examples=500)
def test_push_pdu_garbage(data: bytes) -> None:
    """Any bytes decode as a push PDU or raise WspError."""
    try:
        wsp.decode_push(data)
    except wsp.WspError:
        pass


# -- WDP ------------------------------------------------------------------------------------


def test_single_sms_udh() -> None:
    """A short push is one SMS whose UDH holds only the 16-bit ports 2948/9200."""
    (ud,) = wdp.segment(b"x" * 133)
    assert ud[:7].hex() == "0605040b8423f0" and len(ud) == 140


@pytest.mark.parametrize("sixteen", [False, True])
def test_concatenation(sixteen: bool) -> None:
    """A long push is split into <=140-octet parts with a concatenation element and the ports."""
    payload = bytes(range(250)) * 2  # 4 parts of 128 (8-bit ref) or 127 (16-bit)
    parts = wdp.segment(payload, reference=0x1234, sixteen_bit=sixteen)
    assert all(len(p) <= 140 for p in parts) and len(parts) == 4
    first = parts[0]
    if sixteen:
        assert first[:13].hex() == "0c08041234040105040b8423f0"
    else:
        assert first[:12].hex() == "0b0003340401" + "05040b8423f0"
    head, joined = wdp.reassemble(list(reversed(parts)))
    assert joined == payload and head.reference == (0x1234 if sixteen else 0x34)


def test_reassembly_missing_part() -> None:
    """A part missing is an error naming the parts."""
    parts = wdp.segment(b"z" * 400)
    with pytest.raises(wdp.WdpError, match="missing"):
        wdp.reassemble(parts[:-1])


def test_no_ports_is_not_wdp() -> None:
    """User data without the port element is refused."""
    with pytest.raises(wdp.WdpError):
        wdp.parse(bytes.fromhex("050003010101") + b"abc")


@given(st.binary(max_size=300))
@settings(max_examples=500)
def test_wdp_garbage(data: bytes) -> None:
    """Any user data parses or raises WdpError."""
    try:
        wdp.parse(data)
    except wdp.WdpError:
        pass


# -- whole push -----------------------------------------------------------------------------


@given(
    st.one_of(si_st, sl_st),
    st.integers(0, 255),
    st.integers(0, 0xFFFF),
    st.booleans(),
    st.randoms(),
)
@settings(max_examples=200)
def test_push_round_trip(doc, tid: int, ref: int, sixteen: bool, rnd) -> None:
    """Document -> SMS parts (each <=140 octets) -> document, whatever the order of the parts."""
    parts = push.encode(doc, transaction_id=tid, reference=ref, sixteen_bit=sixteen)
    assert all(len(p) <= wdp.USER_DATA_OCTETS for p in parts)
    rnd.shuffle(parts)
    decoded = push.decode(parts)
    assert decoded.document == doc
    assert decoded.pdu.transaction_id == tid
    assert (decoded.dest_port, decoded.src_port) == (2948, 9200)
    assert decoded.pdu.application_id == "x-wap-application:wml.ua"


def test_long_href_needs_two_sms() -> None:
    """An SI with a 150-character href does not fit one SMS: two parts, decoded back."""
    si = wbxml.ServiceIndication(href="http://www.example.com/" + "a" * 127, text="Offer")
    parts = push.encode(si, reference=9)
    assert len(parts) == 2
    assert push.decode(parts).document == si


# -- PAP (the XML form given to a Push Proxy Gateway) -----------------------------------------

xml_text = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Cn")))


@given(
    st.builds(
        wbxml.ServiceIndication,
        href=href_st,
        text=xml_text,
        si_id=st.none() | xml_text,
        created=st.none() | date_st,
        expires=st.none() | date_st,
        action=st.sampled_from(list(wbxml.SiAction)),
    )
)
@settings(max_examples=200)
def test_pap_si_xml_round_trip(si: wbxml.ServiceIndication) -> None:
    """The SI XML sent to a PPG parses back (ElementTree) to the same fields, any text."""
    import xml.etree.ElementTree as ET

    from adapters.wap import pap

    content, content_type = pap.document_xml(si)
    assert content_type == "text/vnd.wap.si"
    ind = ET.fromstring(content).find("indication")
    assert ind is not None
    assert ind.get("href") == si.href and ind.get("si-id") == si.si_id
    assert (ind.text or "") == si.text and ind.get("action") == si.action.value
    if si.created is not None:
        assert wbxml.decode_date(wbxml.encode_date(si.created)) == si.created
        assert ind.get("created") == si.created.strftime("%Y-%m-%dT%H:%M:%SZ")


@given(st.text(st.characters(blacklist_categories=("Cs", "Cc", "Cn")), min_size=1, max_size=60))
@settings(max_examples=100)
def test_pap_push_message_read_by_email_package(push_id: str) -> None:
    """Any push id survives the multipart/related body as the email package reads it."""
    import email
    import email.policy
    import xml.etree.ElementTree as ET

    from adapters.wap import pap

    body, header = pap.push_message(
        push_id=push_id,
        client_address=pap.address("8613800000001"),
        content=b"<sl/>",
        content_type="text/vnd.wap.sl",
        boundary="b0undary",
    )
    message = email.message_from_bytes(
        b"Content-Type: " + header.encode() + b"\r\n\r\n" + body, policy=email.policy.HTTP
    )
    control, content = message.iter_parts()
    push = ET.fromstring(control.get_payload(decode=True)).find("push-message")
    assert push is not None and push.get("push-id") == push_id
    assert content.get_payload(decode=True) == b"<sl/>"


@pytest.mark.parametrize("text", ["a\r\nb", "\r", "x\ry"])
def test_pap_si_text_keeps_its_carriage_returns(text: str) -> None:
    """A parser turns a literal CR or CR LF into LF: the text reaches the PPG as ours."""
    import xml.etree.ElementTree as ET

    from adapters.wap import pap

    si = wbxml.ServiceIndication(href="http://e.cn/x", text=text)
    content, _ = pap.document_xml(si)
    assert ET.fromstring(content).find("indication").text == text
