"""MM7 message values (3GPP TS 23.140 section 8.7): what the VASP and the MMSC send each other.

Frozen values, no I/O: :mod:`adapters.mm7.soap` turns them into SOAP envelopes and back. The
schema release (REL-6 by default, REL-5 on request) sets the XML namespace and ``MM7Version``.
"""

from __future__ import annotations

from typing import Any

import attrs

from adapters.mm7.errors import LocalMM7Error
from adapters.mm7.status import status_text

_SCHEMA_BASE = "http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/"


@attrs.frozen(kw_only=True)
class Release:
    """A schema release: its namespace and the ``MM7Version`` value sent with it."""

    name: str
    namespace: str
    version: str


RELEASES: dict[str, Release] = {
    "REL-6": Release(name="REL-6", namespace=_SCHEMA_BASE + "REL-6-MM7-1-4", version="6.8.0"),
    "REL-5": Release(name="REL-5", namespace=_SCHEMA_BASE + "REL-5-MM7-1-3", version="5.6.0"),
}

# -- values --------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Address:
    """An MM7 address: ``Number`` (MSISDN), ``ShortCode`` or ``RFC2822Address`` (e-mail)."""

    kind: str = "Number"
    value: str

    def __attrs_post_init__(self) -> None:
        if self.kind not in ("Number", "ShortCode", "RFC2822Address"):
            raise LocalMM7Error(f"unknown address kind {self.kind!r}")


@attrs.frozen(kw_only=True)
class Status:
    code: int
    text: str = ""
    details: str | None = None

    @classmethod
    def of(cls, code: int, details: str | None = None) -> Status:
        return cls(code=code, text=status_text(code), details=details)


@attrs.frozen(kw_only=True)
class SubmitReq:
    """MM7_submit.REQ: one multimedia message to one or more recipients."""

    transaction_id: str
    vasp_id: str
    vas_id: str
    recipients: tuple[Address, ...]
    content_id: str  # the Content-ID of the MM part (``Content href="cid:..."``)
    sender: Address | None = None
    service_code: str | None = None
    linked_id: str | None = None
    message_class: str | None = "Informational"  # Personal, Informational, Advertisement, Auto
    expiry: str | None = None  # xs:dateTime or xs:duration
    delivery_report: bool = True
    read_reply: bool = False
    priority: str | None = None  # Normal, High, Low
    subject: str | None = None
    charged_party: str | None = None  # Sender, Recipient, Both, Neither, ThirdParty
    allow_adaptations: bool = True


@attrs.frozen(kw_only=True)
class DeliveryReportReq:
    """MM7_delivery_report.REQ: the fate of a message we submitted, per recipient."""

    transaction_id: str
    message_id: str
    recipient: Address
    sender: Address
    date: str
    mm_status: str  # Expired, Retrieved, Rejected, Indeterminate, Forwarded, Deferred, ...
    status_text: str | None = None
    relay_server_id: str | None = None


@attrs.frozen(kw_only=True)
class ReadReplyReq:
    """MM7_read_reply_report.REQ: the recipient read (or deleted) a message we submitted."""

    transaction_id: str
    message_id: str
    recipient: Address
    sender: Address
    timestamp: str
    mm_status: str  # Read, Deleted, Indeterminate
    status_text: str | None = None
    relay_server_id: str | None = None


@attrs.frozen(kw_only=True)
class DeliverReq:
    """MM7_deliver.REQ: a subscriber sent an MMS to the VASP (mobile originated)."""

    transaction_id: str
    sender: Address
    recipients: tuple[Address, ...] = ()
    linked_id: str | None = None
    timestamp: str | None = None
    priority: str | None = None
    subject: str | None = None
    content_id: str | None = None
    relay_server_id: str | None = None


@attrs.frozen(kw_only=True)
class Response:
    """Any ``*Rsp`` (``kind``: ``SubmitRsp``, ``DeliverRsp``...) or a SOAP Fault's
    ``RSErrorRsp``/``VASPErrorRsp`` (then ``fault`` holds the faultstring)."""

    kind: str
    transaction_id: str
    status: Status
    message_id: str | None = None  # SubmitRsp
    service_code: str | None = None  # DeliverRsp
    fault: str | None = None


Request = SubmitReq | DeliveryReportReq | ReadReplyReq | DeliverReq
Message = Request | Response
RESPONSE_OF = {
    "SubmitReq": "SubmitRsp",
    "DeliveryReportReq": "DeliveryReportRsp",
    "ReadReplyReq": "ReadReplyRsp",
    "DeliverReq": "DeliverRsp",
}


def response_to(request: Request, status: Status, **fields: Any) -> Response:
    """The ``*Rsp`` answering ``request`` (same TransactionID)."""
    return Response(
        kind=RESPONSE_OF[type(request).__name__],
        transaction_id=request.transaction_id,
        status=status,
        **fields,
    )
