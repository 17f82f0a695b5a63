"""The MM7 codec: envelopes valid against the MM7 schema, multipart bodies read alike by
Python's email package, round trips of both, status verdicts, and refusal of bad input."""

from __future__ import annotations

import base64

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.mm7 import (
    RELEASES,
    Address,
    DeliverReq,
    DeliveryReportReq,
    Image,
    LocalMM7Error,
    Part,
    ReadReplyReq,
    RemoteMM7Error,
    Response,
    Status,
    SubmitReq,
    Verdict,
    build_content,
    content_parts,
    content_text,
    decode_envelope,
    decode_request,
    encode_envelope,
    encode_fault,
    encode_multipart,
    encode_request,
    parse_multipart,
    response_to,
    verdict,
)
from tests.adapters.mm7.mm7_schema import email_parts, validate_envelope

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
)
XML_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=40
).map(str.strip)
TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._@", min_size=1, max_size=24)
NUMBER = st.from_regex(r"\A86\d{11}\Z")
ADDRESS = st.one_of(
    st.builds(Address, kind=st.just("Number"), value=NUMBER),
    st.builds(Address, kind=st.just("ShortCode"), value=st.from_regex(r"\A1\d{4,7}\Z")),
    st.builds(
        Address,
        kind=st.just("RFC2822Address"),
        value=st.from_regex(r"\A[a-z]{1,8}@[a-z]{1,8}\.cn\Z"),
    ),
)
DATETIME = st.sampled_from(["2026-11-30T08:00:00Z", "2026-12-01T21:15:30+08:00"])
SUBMIT = st.builds(
    SubmitReq,
    transaction_id=TOKEN,
    vasp_id=TOKEN,
    vas_id=TOKEN,
    recipients=st.lists(ADDRESS, min_size=1, max_size=3).map(tuple),
    content_id=TOKEN,
    sender=st.one_of(st.none(), ADDRESS),
    service_code=st.one_of(st.none(), TOKEN),
    linked_id=st.one_of(st.none(), TOKEN),
    message_class=st.sampled_from([None, "Personal", "Informational", "Advertisement", "Auto"]),
    expiry=st.sampled_from([None, "PT24H", "2026-12-01T00:00:00Z"]),
    delivery_report=st.booleans(),
    read_reply=st.booleans(),
    priority=st.sampled_from([None, "Normal", "High", "Low"]),
    subject=st.one_of(st.none(), XML_TEXT),
    charged_party=st.sampled_from([None, "Sender", "Recipient", "Both", "Neither", "ThirdParty"]),
    allow_adaptations=st.booleans(),
)
STATUS = st.builds(
    Status,
    code=st.sampled_from([1000, 1100, 2002, 2004, 3001, 4006, 4007]),
    text=XML_TEXT.filter(bool),
    details=st.one_of(st.none(), XML_TEXT),
)
REQUESTS = st.one_of(
    SUBMIT,
    st.builds(
        DeliveryReportReq,
        transaction_id=TOKEN,
        message_id=TOKEN,
        recipient=ADDRESS,
        sender=ADDRESS,
        date=DATETIME,
        mm_status=st.sampled_from(["Retrieved", "Expired", "Rejected", "Indeterminate"]),
        status_text=st.one_of(st.none(), XML_TEXT),
        relay_server_id=st.one_of(st.none(), TOKEN),
    ),
    st.builds(
        ReadReplyReq,
        transaction_id=TOKEN,
        message_id=TOKEN,
        recipient=ADDRESS,
        sender=ADDRESS,
        timestamp=DATETIME,
        mm_status=st.sampled_from(["Read", "Deleted", "Indeterminate"]),
        status_text=st.one_of(st.none(), XML_TEXT),
    ),
    st.builds(
        DeliverReq,
        transaction_id=TOKEN,
        sender=ADDRESS,
        recipients=st.lists(ADDRESS, max_size=2).map(tuple),
        linked_id=st.one_of(st.none(), TOKEN),
        timestamp=st.one_of(st.none(), DATETIME),
        priority=st.sampled_from([None, "High"]),
        subject=st.one_of(st.none(), XML_TEXT),
        content_id=st.one_of(st.none(), TOKEN),
    ),
    st.builds(
        Response,
        kind=st.sampled_from(["DeliveryReportRsp", "ReadReplyRsp", "DeliverRsp"]),
        transaction_id=TOKEN,
        status=STATUS,
    ),
    st.builds(
        Response,
        kind=st.just("SubmitRsp"),
        transaction_id=TOKEN,
        status=STATUS,
        message_id=st.one_of(st.none(), TOKEN),
    ),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message=REQUESTS, release=st.sampled_from(sorted(RELEASES)))
def test_envelope_round_trip_and_schema(message, release):
    """Every message encodes to an envelope the MM7 schema accepts and decodes back equal."""
    rel = RELEASES[release]
    xml = encode_envelope(message, rel)
    validate_envelope(xml, rel.namespace)
    decoded, namespace = decode_envelope(xml)
    assert namespace == rel.namespace
    assert decoded == message


@settings(deadline=None)
@given(status=STATUS, kind=st.sampled_from(["RSErrorRsp", "VASPErrorRsp"]), tid=TOKEN)
def test_fault_round_trip_and_schema(status, kind, tid):
    """A SOAP Fault with an error response as detail is valid and reads back with its status."""
    fault = Response(kind=kind, transaction_id=tid, status=status, fault="it failed")
    xml = encode_fault(fault)
    validate_envelope(xml)
    decoded, _ = decode_envelope(xml)
    assert decoded == fault


PART = st.builds(
    Part,
    content_type=st.sampled_from(
        ["text/plain; charset=utf-8", "image/jpeg", "image/png", "application/octet-stream"]
    ),
    body=st.binary(max_size=300),
    content_id=st.one_of(st.none(), TOKEN),
    content_location=st.one_of(st.none(), TOKEN),
)


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(PART, min_size=1, max_size=5))
def test_multipart_round_trip_and_email_package(parts):
    """Parts framed by our encoder read back equal, and the email package reads the same."""
    content_type, body = encode_multipart(parts, params=(("type", "text/plain"),))
    assert parse_multipart(content_type, body) == parts
    theirs = email_parts(content_type, body)
    assert [p.get_payload(decode=True) for p in theirs] == [p.body for p in parts]
    assert [p.get("Content-ID") for p in theirs] == [
        None if p.content_id is None else f"<{p.content_id}>" for p in parts
    ]


@settings(deadline=None)
@given(text=st.text(max_size=200), n_images=st.integers(0, 3))
def test_submit_with_content_round_trip(text, n_images):
    """A SubmitReq with its MM attached decodes back, with the text and every image."""
    images = [
        Image(name=f"p{i}.png", media_type="image/png", data=PNG * (i + 1)) for i in range(n_images)
    ]
    content = build_content(text, images)
    submit = SubmitReq(
        transaction_id="t",
        vasp_id="vasp",
        vas_id="vas",
        recipients=(Address(value="8613800000001"),),
        content_id=content.content_id or "",
    )
    content_type, body = encode_request(submit, content)
    decoded = decode_request(content_type, body)
    assert decoded.message == submit and decoded.content == content
    assert content_text(content) == text
    leaves = content_parts(content)
    assert [p.body for p in leaves if p.media_type == "image/png"] == [i.data for i in images]


def test_mm_is_read_alike_by_the_email_package():
    """The email package finds the envelope, the SMIL, the UTF-8 text and the picture."""
    content = build_content(
        "春节 offer ✓", [Image(name="offer.png", media_type="image/png", data=PNG)]
    )
    submit = SubmitReq(
        transaction_id="t",
        vasp_id="vasp",
        vas_id="vas",
        recipients=(Address(value="8613800000001"),),
        content_id=content.content_id or "",
        subject="Spring",
    )
    content_type, body = encode_request(submit, content)
    parts = email_parts(content_type, body)
    assert [p.get_content_type() for p in parts] == [
        "text/xml",
        "application/smil",
        "text/plain",
        "image/png",
    ]
    validate_envelope(parts[0].get_payload(decode=True))
    smil = parts[1].get_payload(decode=True).decode()
    assert 'src="offer.png"' in smil and 'src="text.txt"' in smil
    assert (
        parts[2].get_payload(decode=True).decode(parts[2].get_content_charset()) == "春节 offer ✓"
    )
    assert parts[3].get_payload(decode=True) == PNG and parts[3]["Content-Location"] == "offer.png"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (1000, Verdict.ACCEPTED),
        (1100, Verdict.ACCEPTED),
        (2000, Verdict.REFUSED),
        (2002, Verdict.REFUSED),
        (2004, Verdict.REFUSED),
        (3000, Verdict.RETRY),
        (3001, Verdict.RETRY),
        (3002, Verdict.REFUSED),
        (3099, Verdict.RETRY),
        (4001, Verdict.REFUSED),
        (4006, Verdict.RETRY),
        (4007, Verdict.REFUSED),
        (5000, Verdict.REFUSED),
    ],
)
def test_status_verdicts(code, expected):
    """Status classes map to accepted, retry (temporary server states) or refused (final)."""
    assert verdict(code) is expected


def test_response_to_repeats_the_transaction():
    """The answer to a request is its *Rsp with the same TransactionID."""
    request = DeliverReq(transaction_id="tx-9", sender=Address(value="8613800000001"))
    answer = response_to(request, Status.of(1000), service_code="mo")
    assert (answer.kind, answer.transaction_id, answer.status.text) == (
        "DeliverRsp",
        "tx-9",
        "Success",
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<not xml", "not well-formed"),
        (b'<!DOCTYPE x [<!ENTITY a "b">]><x/>', "DTD"),
        (b"<x/>", "not a SOAP 1.1 envelope"),
        (
            b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body/></e:Envelope>',
            "TransactionID",
        ),
    ],
)
def test_bad_envelopes_are_refused(body, message):
    """Broken or hostile XML raises RemoteMM7Error with a reason, never another error."""
    with pytest.raises(RemoteMM7Error, match=message):
        decode_envelope(body)


def test_unknown_operation_answers_4003():
    """An operation we do not serve is refused with status 4003 (unsupported operation)."""
    xml = encode_envelope(
        Response(kind="DeliverRsp", transaction_id="t", status=Status.of(1000))
    ).replace(b"DeliverRsp", b"CancelReq")
    with pytest.raises(RemoteMM7Error) as info:
        decode_envelope(xml)
    assert info.value.status == 4003


@settings(max_examples=300)
@given(data=st.binary(max_size=400), boundary=st.sampled_from(["b", "=_x"]))
def test_multipart_parser_fuzz(data, boundary):
    """Any bytes either parse into parts or raise RemoteMM7Error."""
    try:
        parse_multipart(f'multipart/related; boundary="{boundary}"', data)
    except RemoteMM7Error:
        pass


@settings(max_examples=300)
@given(data=st.binary(max_size=400))
def test_envelope_parser_fuzz(data):
    """Any bytes either decode into a message or raise RemoteMM7Error."""
    try:
        decode_envelope(data)
    except RemoteMM7Error:
        pass


def test_local_errors():
    """What MM7 cannot carry is refused at encoding (LocalMM7Error)."""
    with pytest.raises(LocalMM7Error):
        encode_multipart([Part(content_type="image/png\r\nX: y", body=b"")])
    with pytest.raises(LocalMM7Error):
        build_content(None, [])
    with pytest.raises(LocalMM7Error):
        encode_envelope(
            SubmitReq(transaction_id="t", vasp_id="v", vas_id="v", recipients=(), content_id="c")
        )


def test_deliver_req_as_another_mmsc_writes_it():
    """A DeliverReq written the way other MMSCs do (LF line ends, prefixed namespace, the MM
    as multipart/mixed referenced by Content-Location, quoted-printable text) is read."""
    body = (
        "--outer\n"
        "Content-Type: text/xml; charset=utf-8\n"
        "Content-ID: <env>\n"
        "\n"
        '<?xml version="1.0"?>\n'
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">\n'
        " <soap:Header>\n"
        '  <mm7:TransactionID xmlns:mm7="http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/'
        'schema/REL-5-MM7-1-2" soap:mustUnderstand="1">mo-77</mm7:TransactionID>\n'
        " </soap:Header>\n"
        " <soap:Body>\n"
        '  <mm7:DeliverReq xmlns:mm7="http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/'
        'schema/REL-5-MM7-1-2">\n'
        "   <mm7:MM7Version>5.3.0</mm7:MM7Version>\n"
        "   <mm7:Sender><mm7:Number>+8613800000009/TYPE=PLMN</mm7:Number></mm7:Sender>\n"
        "   <mm7:Recipients><mm7:To><mm7:ShortCode>10658000</mm7:ShortCode></mm7:To>"
        "</mm7:Recipients>\n"
        "   <mm7:Subject>re: offer</mm7:Subject>\n"
        '   <mm7:Content href="mm.mime"/>\n'
        "  </mm7:DeliverReq>\n"
        " </soap:Body>\n"
        "</soap:Envelope>\n"
        "--outer\n"
        'Content-Type: multipart/mixed; boundary="inner"\n'
        "Content-Location: mm.mime\n"
        "\n"
        "--inner\n"
        "Content-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: quoted-printable\n"
        "\n"
        "Y =E8=AE=A2=E8=B4=AD\n"
        "--inner\n"
        "Content-Type: image/png\n"
        "Content-Transfer-Encoding: base64\n"
        "\n" + base64.encodebytes(PNG).decode() + "--inner--\n"
        "--outer--\n"
    ).encode("utf-8")
    decoded = decode_request('multipart/related; boundary=outer; type="text/xml"', body)
    message = decoded.message
    assert isinstance(message, DeliverReq) and message.transaction_id == "mo-77"
    assert message.sender == Address(value="+8613800000009/TYPE=PLMN")
    assert message.recipients == (Address(kind="ShortCode", value="10658000"),)
    assert decoded.namespace.endswith("REL-5-MM7-1-2") and message.subject == "re: offer"
    assert decoded.content is not None
    assert content_text(decoded.content) == "Y 订购"
    assert [p.body for p in content_parts(decoded.content) if p.media_type == "image/png"] == [PNG]


@pytest.mark.parametrize("subject", ["Spring\r\noffer", "a\rb"])
def test_subject_keeps_its_carriage_returns(subject):
    """A parser turns a literal CR or CR LF into LF: the subject reaches the MMSC as ours."""
    rel = RELEASES[sorted(RELEASES)[-1]]
    message = SubmitReq(
        transaction_id="t1",
        vasp_id="v",
        vas_id="s",
        recipients=(Address(kind="Number", value="8613800000001"),),
        content_id="c1",
        subject=subject,
    )
    decoded, _ = decode_envelope(encode_envelope(message, rel))
    assert decoded.subject == subject
