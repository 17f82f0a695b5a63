"""MM7 messages in SOAP 1.1 envelopes (3GPP TS 23.140 section 8.7, the MM7 XML schema).

The VASP (us) sends ``SubmitReq`` and reads ``SubmitRsp``; the MMSC (MMS Relay/Server) sends
``DeliveryReportReq`` (MM7_delivery_report), ``ReadReplyReq`` (MM7_read_reply_report) and
``DeliverReq`` (MM7_deliver: a mobile-originated MMS to the VASP), which we answer with the
matching ``*Rsp``. Each envelope carries the ``TransactionID`` header (``mustUnderstand="1"``);
the answer repeats it. Errors that stop a request come as a SOAP Fault whose ``detail`` holds
an ``RSErrorRsp`` (from the MMSC) or ``VASPErrorRsp`` (from us) with the status.

The namespace says the schema release: REL-6-MM7-1-4 by default, REL-5-MM7-1-3 when an MMSC
wants REL-5 (:data:`adapters.mm7.model.RELEASES`). Parsing accepts any TS 23.140 schema namespace and matches
elements by local name, since MMSCs of different releases differ in little else for the
elements we use. Sans-IO: values in, bytes out, and back; no logging.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from xml.sax.saxutils import escape, quoteattr

from adapters.mm7.errors import LocalMM7Error, RemoteMM7Error
from adapters.mm7.model import (
    RELEASES,
    Address,
    DeliverReq,
    DeliveryReportReq,
    Message,
    ReadReplyReq,
    Release,
    Response,
    Status,
    SubmitReq,
)
from adapters.mm7.status import status_text

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
MAX_XML_BYTES = 1024 * 1024


# -- encoding ------------------------------------------------------------------------------

# An element: (tag, text or children, attributes); None children are left out.
Node = tuple[str, "str | list[Node | None]", dict[str, str]]


def _el(tag: str, value: str | list[Node | None] | None, **attrs_: str) -> Node | None:
    return None if value is None else (tag, value, attrs_)


_CR = {"\r": "&#13;"}


def _write(node: Node, out: list[str]) -> None:
    tag, value, attributes = node
    attr_text = "".join(f" {k}={quoteattr(v)}" for k, v in attributes.items())
    if isinstance(value, str):
        # a CR as a reference: a parser turns a literal CR (or CR LF) into LF
        out.append(f"<{tag}{attr_text}>{escape(value, _CR)}</{tag}>")
        return
    out.append(f"<{tag}{attr_text}>")
    for child in value:
        if child is not None:
            _write(child, out)
    out.append(f"</{tag}>")


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _address(tag: str, address: Address | None) -> Node | None:
    if address is None:
        return None
    return (tag, [(address.kind, address.value, {})], {})


def _status(status: Status) -> Node:
    return (
        "Status",
        [
            ("StatusCode", str(status.code), {}),
            _el("StatusText", status.text or status_text(status.code)),
            _el("Details", status.details),
        ],
        {},
    )


def _body_of(message: Message, release: Release) -> Node:
    version: Node = ("MM7Version", release.version, {})
    if isinstance(message, SubmitReq):
        if not message.recipients:
            raise LocalMM7Error("a SubmitReq needs at least one recipient")
        return (
            "SubmitReq",
            [
                version,
                (
                    "SenderIdentification",
                    [
                        ("VASPID", message.vasp_id, {}),
                        ("VASID", message.vas_id, {}),
                        _address("SenderAddress", message.sender),
                    ],
                    {},
                ),
                (
                    "Recipients",
                    [("To", [(a.kind, a.value, {}) for a in message.recipients], {})],
                    {},
                ),
                _el("ServiceCode", message.service_code),
                _el("LinkedID", message.linked_id),
                _el("MessageClass", message.message_class),
                _el("ExpiryDate", message.expiry),
                ("DeliveryReport", _bool(message.delivery_report), {}),
                ("ReadReply", _bool(message.read_reply), {}),
                _el("Priority", message.priority),
                _el("Subject", message.subject),
                _el("ChargedParty", message.charged_party),
                (
                    "Content",
                    [],
                    {
                        "href": f"cid:{message.content_id}",
                        "allowAdaptations": _bool(message.allow_adaptations),
                    },
                ),
            ],
            {},
        )
    if isinstance(message, DeliveryReportReq):
        return (
            "DeliveryReportReq",
            [
                version,
                _el("MMSRelayServerID", message.relay_server_id),
                ("MessageID", message.message_id, {}),
                _address("Recipient", message.recipient),
                _address("Sender", message.sender),
                ("Date", message.date, {}),
                ("MMStatus", message.mm_status, {}),
                _el("StatusText", message.status_text),
            ],
            {},
        )
    if isinstance(message, ReadReplyReq):
        return (
            "ReadReplyReq",
            [
                version,
                _el("MMSRelayServerID", message.relay_server_id),
                ("MessageID", message.message_id, {}),
                _address("Recipient", message.recipient),
                _address("Sender", message.sender),
                ("TimeStamp", message.timestamp, {}),
                ("MMStatus", message.mm_status, {}),
                _el("StatusText", message.status_text),
            ],
            {},
        )
    if isinstance(message, DeliverReq):
        return (
            "DeliverReq",
            [
                version,
                _el("MMSRelayServerID", message.relay_server_id),
                _el("LinkedID", message.linked_id),
                _address("Sender", message.sender),
                (
                    (
                        "Recipients",
                        [("To", [(a.kind, a.value, {}) for a in message.recipients], {})],
                        {},
                    )
                    if message.recipients
                    else None
                ),
                _el("TimeStamp", message.timestamp),
                _el("Priority", message.priority),
                _el("Subject", message.subject),
                ("Content", [], {"href": f"cid:{message.content_id}"})
                if message.content_id is not None
                else None,
            ],
            {},
        )
    if message.fault is not None:
        raise LocalMM7Error("encode a fault with encode_fault")
    return (
        message.kind,
        [
            version,
            _status(message.status),
            _el("MessageID", message.message_id),
            _el("ServiceCode", message.service_code),
        ],
        {},
    )


def _envelope(transaction_id: str, body: Node, release: Release) -> bytes:
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<env:Envelope xmlns:env="{SOAP_ENV}"><env:Header>',
        f'<mm7:TransactionID xmlns:mm7="{release.namespace}" env:mustUnderstand="1">',
        escape(transaction_id),
        "</mm7:TransactionID></env:Header><env:Body>",
    ]
    tag, value, attributes = body
    _write((tag, value, {"xmlns": release.namespace, **attributes}), out)
    out.append("</env:Body></env:Envelope>")
    return "".join(out).encode("utf-8")


def encode_envelope(message: Message, release: Release = RELEASES["REL-6"]) -> bytes:
    """The SOAP envelope (UTF-8 XML) of a request or response."""
    if not message.transaction_id or any(c in message.transaction_id for c in "\r\n"):
        raise LocalMM7Error("a TransactionID must be a non-empty line")
    return _envelope(message.transaction_id, _body_of(message, release), release)


def encode_fault(response: Response, release: Release = RELEASES["REL-6"]) -> bytes:
    """A SOAP Fault carrying ``response`` (kind ``VASPErrorRsp`` or ``RSErrorRsp``) as detail:
    the answer to a request that could not be processed (TS 23.140 section 8.7.5)."""
    code = "env:Client" if 2000 <= response.status.code < 3000 else "env:Server"
    detail: Node = (
        response.kind,
        [("MM7Version", release.version, {}), _status(response.status)],
        {"xmlns": release.namespace},
    )
    body: Node = (
        "env:Fault",
        [
            ("faultcode", code, {}),
            ("faultstring", response.fault or response.status.text, {}),
            ("detail", [detail], {}),
        ],
        {},
    )
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<env:Envelope xmlns:env="{SOAP_ENV}"><env:Header>',
        f'<mm7:TransactionID xmlns:mm7="{release.namespace}" env:mustUnderstand="1">',
        escape(response.transaction_id),
        "</mm7:TransactionID></env:Header><env:Body>",
    ]
    _write(body, out)
    out.append("</env:Body></env:Envelope>")
    return "".join(out).encode("utf-8")


# -- parsing -------------------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _children(element: ET.Element) -> Iterator[tuple[str, ET.Element]]:
    for child in element:
        if isinstance(child.tag, str):
            yield _local(child.tag), child


def _find(element: ET.Element, name: str) -> ET.Element | None:
    return next((child for local, child in _children(element) if local == name), None)


def _text(element: ET.Element, name: str, *, required: bool = False) -> str | None:
    child = _find(element, name)
    if child is None:
        if required:
            raise RemoteMM7Error(f"{_local(element.tag)} without {name}")
        return None
    return (child.text or "").strip()


def _first_text(element: ET.Element, *names: str) -> str | None:
    for name in names:
        value = _text(element, name)
        if value is not None:
            return value
    return None


def _req(element: ET.Element, name: str) -> str:
    value = _text(element, name, required=True)
    assert value is not None
    return value


def _flag(element: ET.Element, name: str, default: bool) -> bool:
    value = _text(element, name)
    if value is None:
        return default
    if value not in ("true", "false", "1", "0"):
        raise RemoteMM7Error(f"{name} must be a boolean, got {value!r}")
    return value in ("true", "1")


def _read_address(element: ET.Element | None, name: str) -> Address | None:
    if element is None:
        return None
    for kind, child in _children(element):
        if kind in ("Number", "ShortCode", "RFC2822Address"):
            return Address(kind=kind, value=(child.text or "").strip())
    raise RemoteMM7Error(f"{name} holds no Number, ShortCode or RFC2822Address")


def _required_address(element: ET.Element, name: str) -> Address:
    address = _read_address(_find(element, name), name)
    if address is None:
        raise RemoteMM7Error(f"{_local(element.tag)} without {name}")
    return address


def _recipients(element: ET.Element) -> tuple[Address, ...]:
    recipients = _find(element, "Recipients")
    if recipients is None:
        return ()
    found = []
    for _kind, group in _children(recipients):  # To, Cc, Bcc
        for kind, child in _children(group):
            if kind in ("Number", "ShortCode", "RFC2822Address"):
                found.append(Address(kind=kind, value=(child.text or "").strip()))
    return tuple(found)


def _content_id(element: ET.Element) -> str | None:
    content = _find(element, "Content")
    if content is None:
        return None
    href = content.get("href", "")
    return href[4:] if href.startswith("cid:") else href or None


def _read_status(element: ET.Element) -> Status:
    status = _find(element, "Status")
    if status is None:
        raise RemoteMM7Error(f"{_local(element.tag)} without Status")
    code = _req(status, "StatusCode")
    if not code.isdigit():
        raise RemoteMM7Error(f"StatusCode is not a number: {code!r}")
    details = _find(status, "Details")
    return Status(
        code=int(code),
        text=_text(status, "StatusText") or "",
        details=None if details is None else "".join(details.itertext()).strip(),
    )


def parse_xml(xml: bytes) -> ET.Element:
    """Parse an envelope's XML, refusing DTDs (entity expansion) and oversized documents."""
    if len(xml) > MAX_XML_BYTES:
        raise RemoteMM7Error(f"SOAP envelope larger than {MAX_XML_BYTES} bytes", status=2007)
    if b"<!DOCTYPE" in xml or b"<!ENTITY" in xml:
        raise RemoteMM7Error("a SOAP envelope must not have a DTD", status=2007)
    try:
        return ET.fromstring(xml)
    except ET.ParseError as exc:
        raise RemoteMM7Error(f"not well-formed XML ({exc})", status=2007) from exc


def decode_envelope(xml: bytes) -> tuple[Message, str]:
    """The message of an envelope and the namespace it used; raises RemoteMM7Error."""
    root = parse_xml(xml)
    if root.tag != f"{{{SOAP_ENV}}}Envelope":
        raise RemoteMM7Error(f"not a SOAP 1.1 envelope: {root.tag}")
    header = root.find(f"{{{SOAP_ENV}}}Header")
    transaction = None if header is None else _find(header, "TransactionID")
    if transaction is None:
        raise RemoteMM7Error("envelope without the TransactionID header")
    transaction_id = (transaction.text or "").strip()
    body = root.find(f"{{{SOAP_ENV}}}Body")
    element = None if body is None else next((c for _n, c in _children(body)), None)
    if element is None:
        raise RemoteMM7Error("envelope with an empty Body")
    namespace = element.tag[1:].partition("}")[0] if element.tag.startswith("{") else ""
    return _decode_body(_local(element.tag), element, transaction_id), namespace


def _decode_body(kind: str, e: ET.Element, transaction_id: str) -> Message:
    tid = transaction_id
    if kind == "SubmitReq":
        ident = _find(e, "SenderIdentification")
        if ident is None:
            raise RemoteMM7Error("SubmitReq without SenderIdentification")
        content_id = _content_id(e)
        if content_id is None:
            raise RemoteMM7Error("SubmitReq without Content")
        content = _find(e, "Content")
        assert content is not None
        return SubmitReq(
            transaction_id=tid,
            vasp_id=_text(ident, "VASPID") or "",
            vas_id=_text(ident, "VASID") or "",
            sender=_read_address(_find(ident, "SenderAddress"), "SenderAddress"),
            recipients=_recipients(e),
            service_code=_text(e, "ServiceCode"),
            linked_id=_text(e, "LinkedID"),
            message_class=_text(e, "MessageClass"),
            expiry=_text(e, "ExpiryDate"),
            delivery_report=_flag(e, "DeliveryReport", False),
            read_reply=_flag(e, "ReadReply", False),
            priority=_text(e, "Priority"),
            subject=_text(e, "Subject"),
            charged_party=_text(e, "ChargedParty"),
            content_id=content_id,
            allow_adaptations=content.get("allowAdaptations", "true") in ("true", "1"),
        )
    if kind == "DeliveryReportReq":
        return DeliveryReportReq(
            transaction_id=tid,
            relay_server_id=_text(e, "MMSRelayServerID"),
            message_id=_req(e, "MessageID"),
            recipient=_required_address(e, "Recipient"),
            sender=_required_address(e, "Sender"),
            date=_req(e, "Date"),
            mm_status=_req(e, "MMStatus"),
            status_text=_first_text(e, "StatusText", "MMStatusText"),
        )
    if kind == "ReadReplyReq":
        return ReadReplyReq(
            transaction_id=tid,
            relay_server_id=_text(e, "MMSRelayServerID"),
            message_id=_req(e, "MessageID"),
            recipient=_required_address(e, "Recipient"),
            sender=_required_address(e, "Sender"),
            timestamp=_req(e, "TimeStamp"),
            mm_status=_req(e, "MMStatus"),
            status_text=_text(e, "StatusText"),
        )
    if kind == "DeliverReq":
        return DeliverReq(
            transaction_id=tid,
            relay_server_id=_text(e, "MMSRelayServerID"),
            linked_id=_text(e, "LinkedID"),
            sender=_required_address(e, "Sender"),
            recipients=_recipients(e),
            timestamp=_text(e, "TimeStamp"),
            priority=_text(e, "Priority"),
            subject=_text(e, "Subject"),
            content_id=_content_id(e),
        )
    if kind.endswith("Rsp"):
        return Response(
            kind=kind,
            transaction_id=tid,
            status=_read_status(e),
            message_id=_text(e, "MessageID"),
            service_code=_text(e, "ServiceCode"),
        )
    if kind == "Fault":
        detail = _find(e, "detail")
        error = None if detail is None else next((c for _n, c in _children(detail)), None)
        fault = _text(e, "faultstring") or "SOAP Fault"
        if error is None:
            return Response(kind="Fault", transaction_id=tid, status=Status.of(3000), fault=fault)
        return Response(
            kind=_local(error.tag), transaction_id=tid, status=_read_status(error), fault=fault
        )
    raise RemoteMM7Error(f"unsupported MM7 operation {kind}", status=4003)
