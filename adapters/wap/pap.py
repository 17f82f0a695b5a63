"""PAP 2.0 (WAP-247, Push Access Protocol): a push initiator talking to a Push Proxy Gateway.

The push initiator POSTs a ``push-message`` to the PPG over HTTP as ``multipart/related``
(WAP-247 8.2; type ``application/xml``): the PAP control entity (XML), then the content
entity (here the SI or SL as XML, ``text/vnd.wap.si`` / ``text/vnd.wap.sl``, which the PPG
compiles to WBXML). The PPG answers with a ``push-response`` holding a ``response-result``
code (9.13): 1xxx success (1000 OK, 1001 accepted for processing), 2xxx the request was wrong
(2007 duplicate push ID), 3xxx the PPG failed, 4xxx the service failed (4001 unavailable).
When asked (``ppg-notify-requested-to``), it later POSTs a ``resultnotification-message``
with the final ``message-state``, which the initiator answers with a
``resultnotification-response``. Addresses follow WAP-249 7.1:
``WAPPUSH=+8613800000001/TYPE=PLMN@ppg.example.com``. Sans-IO: bytes in, values out.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

import attrs

from adapters.wap.wbxml import ServiceIndication, ServiceLoading

MAX_XML = 64 * 1024  # a PAP answer is a few hundred octets
PAP_DOCTYPE = (
    '<!DOCTYPE pap PUBLIC "-//WAPFORUM//DTD PAP 2.0//EN" "http://www.wapforum.org/DTD/pap_2.0.dtd">'
)

#: response-result codes (WAP-247 9.13) and their descriptions.
CODES = {
    1000: "OK",
    1001: "Accepted for processing",
    2000: "Bad request",
    2001: "Forbidden",
    2002: "Address error",
    2003: "Address not found",
    2004: "Push ID not found",
    2005: "Capabilities mismatch",
    2006: "Required capabilities not supported",
    2007: "Duplicate push ID",
    2008: "Cancellation not possible",
    3000: "Internal server error",
    3001: "Not implemented",
    3002: "Version not supported",
    3003: "Not possible",
    3004: "Capability matching not supported",
    3005: "Multiple addresses not supported",
    3006: "Transformation failure",
    3007: "Specified delivery method not possible",
    3008: "Capabilities not available",
    3009: "Required network not available",
    3010: "Required bearer not available",
    3011: "Replacement not supported",
    4000: "Service failure",
    4001: "Service unavailable",
}
#: Codes after which the same push may succeed later: sent again after a back-off.
TRANSIENT_CODES = frozenset({3000, 3008, 3009, 3010, 4000, 4001})
#: message-state of a result notification -> our delivery state names.
MESSAGE_STATES = {
    "delivered": "delivered",
    "undeliverable": "undeliverable",
    "expired": "expired",
    "timeout": "expired",
    "rejected": "rejected",
    "aborted": "undeliverable",
    "cancelled": "undeliverable",
    "pending": None,
    "unknown": None,
}


class PapError(ValueError):
    """Raised when a PPG's answer or notification is not PAP we can read."""


def outcome(code: int) -> str:
    """What a response-result code means for the push: ``submitted``, ``retry`` or ``rejected``.

    2007 (duplicate push ID) is ``submitted``: the push ID is the contact id, so a duplicate
    is a resend of a push the PPG already has (after a crash between send and answer).
    """
    if code in (1000, 1001, 2007):
        return "submitted"
    if code in TRANSIENT_CODES:
        return "retry"
    return "rejected"


def address(msisdn: str, ppg_domain: str = "") -> str:
    """The PAP client address of an E.164 number (WAP-249 7.1)."""
    digits = msisdn.lstrip("+")
    if not digits.isdigit():
        raise ValueError(f"not an E.164 number: {msisdn!r}")
    return f"WAPPUSH=+{digits}/TYPE=PLMN" + (f"@{ppg_domain}" if ppg_domain else "")


def _date(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def document_xml(doc: ServiceIndication | ServiceLoading) -> tuple[bytes, str]:
    """The SI or SL as XML (WAP-167 / WAP-168 DTDs) and its content type."""
    if isinstance(doc, ServiceLoading):
        text = (
            '<?xml version="1.0"?>\n<!DOCTYPE sl PUBLIC "-//WAPFORUM//DTD SL 1.0//EN"'
            ' "http://www.wapforum.org/DTD/sl.dtd">\n'
            f"<sl href={quoteattr(doc.href)} action={quoteattr(doc.action.value)}/>\n"
        )
        return text.encode("utf-8"), "text/vnd.wap.sl"
    attrs_ = [
        ("href", doc.href),
        ("si-id", doc.si_id),
        ("created", _date(doc.created) if doc.created else None),
        ("si-expires", _date(doc.expires) if doc.expires else None),
        ("action", doc.action.value),
    ]
    a = " ".join(f"{k}={quoteattr(v)}" for k, v in attrs_ if v is not None)
    # a CR as a reference: a parser turns a literal CR (or CR LF) into LF
    body = f"<indication {a}>{escape(doc.text, {chr(13): '&#13;'})}</indication>"
    text = (
        '<?xml version="1.0"?>\n<!DOCTYPE si PUBLIC "-//WAPFORUM//DTD SI 1.0//EN"'
        f' "http://www.wapforum.org/DTD/si.dtd">\n<si>{body}</si>\n'
    )
    return text.encode("utf-8"), "text/vnd.wap.si"


def push_message(
    *,
    push_id: str,
    client_address: str,
    content: bytes,
    content_type: str,
    boundary: str,
    deliver_before: dt.datetime | None = None,
    notify_to: str = "",
) -> tuple[bytes, str]:
    """The HTTP body of a push submission and its Content-Type header value."""
    if any(c in boundary for c in '\r\n"') or not 1 <= len(boundary) <= 70:
        raise ValueError("bad multipart boundary")
    extra = ""
    if deliver_before is not None:
        extra += f" deliver-before-timestamp={quoteattr(_date(deliver_before))}"
    if notify_to:
        extra += f" ppg-notify-requested-to={quoteattr(notify_to)}"
    control = (
        f'<?xml version="1.0"?>\n{PAP_DOCTYPE}\n<pap>\n'
        f"<push-message push-id={quoteattr(push_id)}{extra}>\n"
        f"<address address-value={quoteattr(client_address)}/>\n"
        '<quality-of-service delivery-method="unconfirmed" bearer="SMS"/>\n'
        "</push-message>\n</pap>\n"
    ).encode()
    delimiter = f"--{boundary}".encode()
    body = (
        delimiter
        + b"\r\nContent-Type: application/xml\r\n\r\n"
        + control
        + b"\r\n"
        + delimiter
        + f"\r\nContent-Type: {content_type}\r\n\r\n".encode()
        + content
        + b"\r\n"
        + delimiter
        + b"--\r\n"
    )
    return body, f'multipart/related; boundary="{boundary}"; type="application/xml"'


@attrs.frozen(kw_only=True)
class PushResponse:
    """A PPG's answer to a push-message (or a badmessage-response: push_id None)."""

    code: int
    desc: str = ""
    push_id: str | None = None


@attrs.frozen(kw_only=True)
class ResultNotification:
    """The final outcome of a push, sent by the PPG when it was asked to."""

    push_id: str
    message_state: str
    code: int
    desc: str = ""

    @property
    def state(self) -> str | None:
        """Our delivery state, or None while the push is still pending / unknown."""
        return MESSAGE_STATES.get(self.message_state.lower())


def _root(data: bytes) -> ET.Element:
    if len(data) > MAX_XML:
        raise PapError(f"PAP document larger than {MAX_XML} octets")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise PapError(f"not XML: {exc}") from None
    if root.tag != "pap":
        raise PapError(f"root element is <{root.tag}>, not <pap>")
    return root


def _code(element: ET.Element, name: str = "code") -> int:
    raw = element.get(name, "")
    if not raw.isdigit():
        raise PapError(f"<{element.tag}> has no numeric {name}")
    return int(raw)


def parse_push_response(data: bytes) -> PushResponse:
    """The push-response (or badmessage-response) of a PPG; raises :class:`PapError`."""
    root = _root(data)
    child = next(iter(root), None)
    if child is None:
        raise PapError("empty <pap>")
    if child.tag == "badmessage-response":
        return PushResponse(code=_code(child), desc=child.get("desc", ""))
    if child.tag != "push-response":
        raise PapError(f"expected <push-response>, got <{child.tag}>")
    result = child.find("response-result")
    if result is None:
        raise PapError("<push-response> without <response-result>")
    return PushResponse(
        code=_code(result), desc=result.get("desc", ""), push_id=child.get("push-id")
    )


def parse_result_notification(data: bytes) -> ResultNotification:
    """A resultnotification-message from the PPG; raises :class:`PapError`."""
    root = _root(data)
    child = next(iter(root), None)
    if child is None or child.tag != "resultnotification-message":
        raise PapError("expected <resultnotification-message>")
    push_id, state = child.get("push-id"), child.get("message-state")
    if not push_id or not state:
        raise PapError("<resultnotification-message> needs push-id and message-state")
    return ResultNotification(
        push_id=push_id, message_state=state, code=_code(child), desc=child.get("desc", "")
    )


def result_notification_response(push_id: str, code: int = 1000) -> bytes:
    """Our answer to a result notification (WAP-247 8.5)."""
    return (
        f'<?xml version="1.0"?>\n{PAP_DOCTYPE}\n<pap>\n'
        f"<resultnotification-response push-id={quoteattr(push_id)}>\n"
        f'<response-result code="{code}" desc={quoteattr(CODES.get(code, ""))}/>\n'
        "</resultnotification-response>\n</pap>\n"
    ).encode()
