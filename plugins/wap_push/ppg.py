"""The WAP Push channel's second transport: PAP 2.0 over HTTP to an external Push Proxy Gateway.

``[plugins.wap_push] transport = "ppg"``: instead of its own SMPP binds, the channel submits
each push to the operator's PPG (``[plugins.wap_push.ppg] url``) as a PAP ``push-message``
(:mod:`adapters.wap.pap`) with the SI/SL as XML; the PPG compiles and sends it. The push ID is
the contact id, so a push sent again after a crash is answered 2007 (duplicate) and counted
as submitted, not delivered twice. Result codes: 1000/1001 (and 2007) -> ``submitted``; the
transient 3000/3008-3010/4000/4001, HTTP 5xx and network errors -> the outbox's retry with
back-off; every other 2xxx/3xxx code and HTTP 4xx -> ``rejected`` with the code and its
description. With ``notify_url`` the PPG is asked for result notifications, served on the
core's HTTP host under that URL's path (a query in the URL, ``?key=SECRET``, must come back
with each one: the HTTP host has no authentication of its own): ``delivered``, ``undeliverable``, ``expired``... end
the contact like an SMS receipt.

HTTP client: httpx on Trio (httpcore's Trio backend), one connection pool per channel run.
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
import time
from typing import Any

import httpx
import structlog
import trio

from adapters.wap import pap
from gateway.contracts import HttpRequest, HttpResponse
from gateway.model import Delivery, DeliveryState
from plugins.wap_push.config import PpgConfig


class PpgSender:
    """Submits pushes to the PPG for a :class:`~plugins.wap_push.channel.WapPushChannel`."""

    def __init__(self, channel: Any, config: PpgConfig) -> None:
        self.channel = channel
        self.config = config
        self.in_flight = 0
        self.stats = {"ppg_accepted": 0, "ppg_rejected": 0, "ppg_retried": 0, "ppg_notified": 0}
        self._client: httpx.AsyncClient | None = None
        self._limiter = trio.CapacityLimiter(config.max_in_flight)

    async def run(self, nursery: trio.Nursery, queue: Any) -> None:
        """Take, encode and submit until the channel drains; every task lives in ``nursery``."""
        auth = (self.config.username, self.config.password) if self.config.username else None
        async with httpx.AsyncClient(timeout=self.config.timeout, auth=auth) as client:
            self._client = client
            channel = self.channel
            while not channel.draining:
                if self._limiter.available_tokens == 0:
                    await trio.sleep(0.005)
                    continue
                ready = await channel.take_ready(queue, int(self._limiter.available_tokens))
                if not ready:
                    continue
                marked = await queue.mark_sending([m.contact_id for m, _ in ready])
                for message, doc in ready:
                    if message.contact_id in marked:
                        self.in_flight += 1
                        nursery.start_soon(self._submit, queue, message, doc)

    async def _submit(self, queue: Any, message: Any, doc: Any) -> None:
        log = structlog.get_logger().bind(plugin="wap_push", channel=self.channel.name)
        try:
            async with self._limiter:
                result, error = await self._exchange(message, doc)
            if result == "submitted":
                self.stats["ppg_accepted"] += 1
                await self.channel._report(
                    message, DeliveryState.SUBMITTED, None, message.contact_id
                )
                return
            if result == "retry":
                state = await queue.retry(message.contact_id, error)
                if state == "retry":
                    self.stats["ppg_retried"] += 1
                    log.info("wap_push.ppg_retry", contact_id=message.contact_id, error=error)
                    return
                final = DeliveryState.EXPIRED if state == "expired" else DeliveryState.REJECTED
            else:
                final = DeliveryState.REJECTED
            self.stats["ppg_rejected"] += 1
            log.warning("wap_push.ppg_rejected", contact_id=message.contact_id, error=error)
            await self.channel._report(message, final, error)
        except Exception as exc:  # one push's failure must not stop the others
            log.error("wap_push.report_failed", contact_id=message.contact_id, error=repr(exc))
        finally:
            self.in_flight -= 1

    async def _exchange(self, message: Any, doc: Any) -> tuple[str, str | None]:
        """POST one push-message; (``submitted`` | ``retry`` | ``rejected``, error text)."""
        assert self._client is not None
        content, content_type = pap.document_xml(doc)
        c = self.config
        deliver_before = (
            dt.datetime.fromtimestamp(time.time() + c.deliver_within, dt.UTC)
            if c.deliver_within
            else None
        )
        body, header = pap.push_message(
            push_id=message.contact_id,
            client_address=pap.address(message.msisdn, c.address_domain),
            content=content,
            content_type=content_type,
            boundary="wap-" + secrets.token_hex(12),
            deliver_before=deliver_before,
            notify_to=c.notify_url,
        )
        try:
            response = await self._client.post(
                c.url, content=body, headers={"content-type": header}
            )
        except httpx.HTTPError as exc:  # connect error, timeout, broken connection
            return "retry", f"PPG unreachable: {type(exc).__name__}"
        if response.status_code >= 500:
            return "retry", f"PPG HTTP {response.status_code}"
        if response.status_code >= 300:
            return "rejected", f"PPG HTTP {response.status_code}"
        try:
            answer = pap.parse_push_response(response.content)
        except pap.PapError as exc:  # we cannot know: send again (a duplicate answers 2007)
            return "retry", f"PPG answer unreadable: {exc}"
        desc = answer.desc or pap.CODES.get(answer.code, "")
        return pap.outcome(answer.code), f"PAP {answer.code} {desc}".strip()

    async def handle_notification(self, request: HttpRequest) -> HttpResponse:
        """POST from the PPG: a result notification ends the contact (like an SMS receipt)."""
        log = structlog.get_logger().bind(plugin="wap_push", channel=self.channel.name)
        expected = self.config.notify_query
        if expected and not all(
            hmac.compare_digest(request.query.get(k, ""), v) for k, v in expected.items()
        ):
            log.warning("wap_push.ppg_notification_refused", reason="query key mismatch")
            return HttpResponse(status=403, body=b"forbidden\n")
        try:
            note = pap.parse_result_notification(request.body)
        except pap.PapError as exc:
            log.warning("wap_push.ppg_notification_unreadable", error=str(exc))
            return HttpResponse(status=400, body=f"{exc}\n".encode())
        reply = {"content-type": "application/xml"}
        outbox = self.channel.gateway.outbox
        entry = await outbox.show(note.push_id) if outbox is not None else None
        if entry is None or entry.get("channel") != self.channel.name:
            body = pap.result_notification_response(note.push_id, 2004)
            return HttpResponse(status=200, headers=reply, body=body)
        self.stats["ppg_notified"] += 1
        state = note.state
        if state is not None:
            await self.channel.gateway.report_delivery(
                Delivery(
                    contact_id=note.push_id,
                    channel=self.channel.name,
                    state=DeliveryState(state),
                    at=time.time(),
                    message_id=note.push_id,
                    error=None if state == "delivered" else f"PAP {note.code} {note.message_state}",
                )
            )
        body = pap.result_notification_response(note.push_id, 1000)
        return HttpResponse(status=200, headers=reply, body=body)
