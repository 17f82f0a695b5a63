"""What the MMSC sends us on the core's HTTP host: delivery reports, read replies, MO MMS.

One POST route (``inbound_path``, default ``/mm7``) takes the three MM7 requests an MMSC
sends a VASP and answers each with its ``*Rsp`` (same TransactionID):

- ``DeliveryReportReq``: the final state of a message we submitted, matched to its contact by
  the MMSC's MessageID through the outbox's persisted map, then reported like an SMS receipt
  (``Gateway.report_delivery``: outbox state, contact-control reconciliation, observers).
  Retrieved and Forwarded are ``delivered``; Expired is ``expired``; Rejected, Unrecognised and
  DeliveryConditionNotMet are ``undeliverable``; Deferred and Indeterminate are not final and
  change nothing.
- ``ReadReplyReq``: the subscriber read (or deleted) the message: counted and logged; the
  delivery state comes from the delivery report.
- ``DeliverReq``: a subscriber sent an MMS to our short code: its text parts (or its
  subject) become a :class:`~gateway.model.MoMessage` for the ``gateway_mo_message`` hook,
  like an MO SMS.

HTTP Basic: with ``inbound_username`` set, a request without those credentials gets 401 and
is not read. A request that cannot be read gets a SOAP Fault (``VASPErrorRsp`` with the
status, HTTP 500), as TS 23.140 section 8.7.5 says.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from collections.abc import Callable
from typing import Any

import structlog

from adapters.mm7 import (
    RELEASES,
    DeliverReq,
    DeliveryReportReq,
    ReadReplyReq,
    Release,
    RemoteMM7Error,
    Response,
    Status,
    content_text,
    decode_request,
    encode_fault,
    encode_request,
    response_to,
)
from gateway.contracts import HttpRequest, HttpResponse
from gateway.model import MoMessage
from gateway.numbers import NumberError, normalise, plan_of

#: MMStatus of a delivery report -> our delivery state (None: not final, nothing to record).
REPORT_STATES: dict[str, str | None] = {
    "Retrieved": "delivered",
    "Forwarded": "delivered",
    "Expired": "expired",
    "Rejected": "undeliverable",
    "Unrecognised": "undeliverable",
    "DeliveryConditionNotMet": "undeliverable",
    "Deferred": None,
    "Indeterminate": None,
}
XML = {"Content-Type": 'text/xml; charset="utf-8"'}


def basic_auth_ok(header: str | None, username: str, password: str) -> bool:
    """Does an ``Authorization`` header carry these Basic credentials? (constant time)"""
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        given = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    expected = f"{username}:{password}".encode()
    return hmac.compare_digest(given, expected)


def _release_of(namespace: str, default: Release) -> Release:
    return next((r for r in RELEASES.values() if r.namespace == namespace), default)


def make_handler(find_channel: Callable[[], Any]) -> Callable[[HttpRequest], Any]:
    """The route handler; ``find_channel()`` returns the running MmsChannel or None."""

    async def handle(request: HttpRequest) -> HttpResponse:
        channel = find_channel()
        log = structlog.get_logger().bind(plugin="mms_mm7")
        if channel is None:
            return HttpResponse(status=503, body=b"the MMS channel is not running\n")
        config = channel.config
        if config.inbound_username and not basic_auth_ok(
            request.headers.get("authorization"), config.inbound_username, config.inbound_password
        ):
            channel.stats["inbound_refused"] += 1
            log.warning("mms.inbound_auth_refused")
            return HttpResponse(
                status=401, headers={"WWW-Authenticate": 'Basic realm="mm7"'}, body=b""
            )
        release = channel.release
        try:
            decoded = decode_request(request.headers.get("content-type", ""), request.body)
        except RemoteMM7Error as exc:
            channel.stats["inbound_refused"] += 1
            log.warning("mms.inbound_unreadable", error=str(exc), status=exc.status)
            return _fault("unknown", exc.status, str(exc), release)
        message = decoded.message
        release = _release_of(decoded.namespace, release)
        if channel.queue is None:
            return _fault(message.transaction_id, 4006, "the MMS channel is starting", release)
        if isinstance(message, DeliveryReportReq):
            return await _delivery_report(channel, message, release)
        if isinstance(message, ReadReplyReq):
            channel.stats["read_replies"] += 1
            log.info(
                "mms.read_reply",
                message_id=message.message_id,
                status=message.mm_status,
                msisdn=message.sender.value,
            )
            return _answer(response_to(message, Status.of(1000)), release)
        if isinstance(message, DeliverReq):
            return _deliver(channel, message, decoded.content, release)
        return _fault(
            message.transaction_id, 4003, f"{type(message).__name__} is not served here", release
        )

    return handle


async def _delivery_report(
    channel: Any, message: DeliveryReportReq, release: Release
) -> HttpResponse:
    state = REPORT_STATES.get(message.mm_status, "undeliverable")
    log = structlog.get_logger().bind(plugin="mms_mm7", channel=channel.name)
    if state is None:
        log.info("mms.report_not_final", message_id=message.message_id, status=message.mm_status)
        return _answer(response_to(message, Status.of(1000)), release)
    msisdn = _number(channel, message.recipient.value)
    error = (
        None
        if state == "delivered"
        else f"MM7 {message.mm_status}"
        + (f": {message.status_text}" if message.status_text else "")
    )
    applied = await channel.apply_report(message.message_id, state, msisdn, error)
    if not applied:
        log.info("mms.report_unmatched", message_id=message.message_id)
    return _answer(response_to(message, Status.of(1000)), release)


def _deliver(channel: Any, message: DeliverReq, content: Any, release: Release) -> HttpResponse:
    msisdn = _number(channel, message.sender.value)
    if msisdn is None:
        channel.stats["inbound_refused"] += 1
        return _answer(response_to(message, Status.of(2002, "sender is not a number")), release)
    try:
        text = content_text(content) if content is not None else ""
    except RemoteMM7Error as exc:
        return _fault(message.transaction_id, exc.status, str(exc), release)
    destination = next(
        (a.value for a in message.recipients if a.kind in ("ShortCode", "Number")),
        channel.config.sender,
    )
    channel.stats["mo"] += 1
    channel.gateway.report_mo(
        MoMessage(
            msisdn=msisdn,
            destination=destination,
            text=text or message.subject or "",
            channel=channel.name,
            received_at=time.time(),
            message_id=message.linked_id or message.transaction_id,
        )
    )
    service_code = channel.config.service_code or None
    return _answer(response_to(message, Status.of(1000), service_code=service_code), release)


def _number(channel: Any, text: str) -> str | None:
    """An address from the MMSC in E.164 digits (``/TYPE=PLMN`` suffix dropped), or None."""
    try:
        return normalise(text.partition("/")[0], plan_of(channel.gateway))
    except NumberError:
        return None


def _answer(response: Response, release: Release) -> HttpResponse:
    content_type, body = encode_request(response, None, release)
    return HttpResponse(status=200, headers={"Content-Type": content_type}, body=body)


def _fault(transaction_id: str, code: int, reason: str, release: Release) -> HttpResponse:
    fault = Response(
        kind="VASPErrorRsp",
        transaction_id=transaction_id or "unknown",
        status=Status.of(code, reason),
        fault=reason,
    )
    return HttpResponse(status=500, headers=XML, body=encode_fault(fault, release))
