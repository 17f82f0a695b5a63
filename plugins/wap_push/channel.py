"""The WAP Push channel: outbox queue -> SI/SL -> binary SMS over SMPP; receipts back.

Transports: ``smpp`` (below) or ``ppg``, PAP 2.0 to an external Push Proxy Gateway
(:mod:`.ppg`). Design choice (issue 14, item 3): with ``smpp`` the channel opens **its own
SMPP binds** through ``adapters.smpp`` (:class:`~adapters.smpp.transport.SmscAccount` and
``run_bind``: window, rate, reconnect, enquire_link) with its own ``[plugins.wap_push.smsc]``
settings, rather than a core seam into the SMS channel. Operators usually get a separate SMSC account for WAP Push
(its own source address and tariff); the shared part, the SMPP client, is already a reusable
adapter, so what this module adds is small: building the binary segments and reporting.

One message: ``content.href`` (and ``content.text`` for an SI) -> optionally a tracking link
(:mod:`.tracking`) -> SI or SL (``[plugins.wap_push] document``) -> WBXML -> WSP push ->
WDP parts (``adapters.wap``) -> one submit_sm per part, esm_class UDHI (0x40), data_coding
0x04. ``si-id`` is derived from the contact id (:func:`si_id_for`).
"""

from __future__ import annotations

import base64
import collections
import datetime as dt
import hashlib
import math
import random
import time
from typing import Any

import attrs
import structlog
import trio

from adapters.smpp import protocol as p
from adapters.smpp.receipt import ReceiptParseError, receipt_from_fields
from adapters.smpp.transport import BindSettings, BindState, SmscAccount, SubmitJob, run_bind
from adapters.wap import push as wap
from adapters.wap.wbxml import ServiceIndication, ServiceLoading
from gateway.content import Content, ContentKind, declaration_of
from gateway.model import Delivery, DeliveryState
from plugins.wap_push.config import WapPushConfig, WapSmscConfig
from plugins.wap_push.ppg import PpgSender
from plugins.wap_push.tracking import LinkTracker

ESM_UDHI = 0x40
DC_BINARY = 0x04


def relative_validity(seconds: float) -> str:
    """SMPP relative time "YYMMDDhhmmss000R" (SMPP 3.4 7.1.1)."""
    s = int(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    return f"0000{days:02d}{hours:02d}{minutes:02d}{s:02d}000R"


def bind_settings(c: WapSmscConfig) -> BindSettings:
    return BindSettings(
        host=c.host,
        port=c.port,
        system_id=c.system_id,
        password=c.password,
        system_type=c.system_type,
        window=c.window,
        request_timeout=c.request_timeout,
        enquire_link_interval=c.enquire_link_interval,
        reconnect_min=c.reconnect_min,
        reconnect_max=c.reconnect_max,
    )


def si_id_for(contact_id: str) -> str:
    """The SI's si-id: 8 characters derived from the contact id. A resend of the same contact
    carries the same si-id, so the handset replaces it instead of showing it twice (WAP-167,
    si-id); the whole contact id would cost 20 more octets, often a second SMS."""
    digest = hashlib.blake2b(contact_id.encode(), digest_size=6).digest()
    return base64.urlsafe_b64encode(digest).decode()


class BadContent(ValueError):
    """The message cannot be a WAP Push (no href, an unreadable field)."""


@attrs.define(eq=False)
class WapPushChannel:
    """The ``wap_push`` channel registered through ``gateway_channels``."""

    gateway: Any
    config: WapPushConfig
    tracker: LinkTracker | None = None
    name: str = "wap_push"
    #: What this channel carries and what the handset must support (gateway/content.py):
    #: the pipeline never picks this channel for a subscriber whose profile lacks "wap".
    carries: frozenset[ContentKind] = frozenset({ContentKind.TEXT, ContentKind.HREF})
    requires: frozenset[str] = frozenset({"wap"})
    account: SmscAccount | None = None
    stats: dict[str, int] = attrs.field(
        factory=lambda: dict.fromkeys(
            (
                "submitted",
                "segments",
                "failed",
                "retried",
                "bad_content",
                "receipts",
                "receipts_unmatched",
                "mo_ignored",
            ),
            0,
        )
    )
    _queue: Any = None
    _results: Any = None
    _reference: int = attrs.field(factory=lambda: random.randrange(65536))
    _tid: int = attrs.field(factory=lambda: random.randrange(256))
    _draining: bool = False
    #: receipts that overtook the recording of their submit answer: key -> (state, since)
    _early: collections.OrderedDict[str, tuple[str, float]] = attrs.field(
        factory=collections.OrderedDict
    )

    ppg: PpgSender | None = None

    def __attrs_post_init__(self) -> None:
        self.name = self.config.channel
        if self.config.document == "sl":  # an SL has no text: a text would be lost, say so
            self.carries = frozenset({ContentKind.HREF})
        if self.config.transport == "ppg" and self.config.ppg is not None:
            self.ppg = PpgSender(self, self.config.ppg)

    @property
    def draining(self) -> bool:
        """Set by :meth:`drain`: take no more messages."""
        return self._draining

    def statistics(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.stats)
        if self.tracker is not None:
            out.update({f"link_{k}": v for k, v in self.tracker.stats.items()})
        if self.ppg is not None:
            out.update(self.ppg.stats, ppg_in_flight=self.ppg.in_flight)
        if self.account is not None:
            out["binds_bound"] = sum(b.state == "bound" for b in self.account.binds)
        return out

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        log = structlog.get_logger().bind(plugin="wap_push", channel=self.name)
        outbox = self.gateway.outbox
        if outbox is None or not self.config.enabled:
            raise RuntimeError("the wap_push channel needs the outbox and its transport's table")
        self._draining = False
        async with outbox.open_queue(self.name) as queue, trio.open_nursery() as nursery:
            self._queue = queue
            await queue.recover()
            if self.tracker is not None:
                await self.tracker.open()
            if self.ppg is not None:
                nursery.start_soon(self.ppg.run, nursery, queue)
                log.info("wap_push.channel_started", document=self.config.document, via="ppg")
                task_status.started()
                return
            smsc = self.config.smsc
            assert smsc is not None
            send, receive = trio.open_memory_channel[SubmitJob](math.inf)
            self._results = send
            nursery.start_soon(self._reporter, receive)
            self.account = SmscAccount(
                "wap",
                bind_settings(smsc),
                self,
                rate=smsc.rate,
                max_pending=max(2 * smsc.window * smsc.binds, 64),
                config=smsc,
            )
            for i in range(smsc.binds):
                state = BindState(f"wap/{i}", "transceiver")
                self.account.binds.append(state)
                await nursery.start(run_bind, self.account, state)
            nursery.start_soon(self._feeder, queue)
            log.info("wap_push.channel_started", document=self.config.document, via="smpp")
            task_status.started()

    async def drain(self) -> None:
        """Stop taking messages; wait for the answers of those already handed on."""
        self._draining = True
        account, ppg = self.account, self.ppg
        while (  # noqa: ASYNC110 - polls counters
            (ppg is not None and ppg.in_flight)
            or (
                account is not None
                and (
                    (account.queued and any(b.state == "bound" for b in account.binds))
                    or any(b.outstanding or b.unsettled for b in account.binds)
                )
            )
        ):
            await trio.sleep(0.05)

    # -- outbound ----------------------------------------------------------------------------

    def document(
        self, content: Content, href: str, contact_id: str, now: float
    ) -> ServiceIndication | ServiceLoading:
        if self.config.document == "sl":
            return ServiceLoading(href=href, action=self.config.sl_action)
        created = dt.datetime.fromtimestamp(int(now), dt.UTC)
        expires = (
            dt.datetime.fromtimestamp(int(now + self.config.si_expires_after), dt.UTC)
            if self.config.si_expires_after
            else None
        )
        return ServiceIndication(
            href=href,
            text=content.text or "",
            si_id=si_id_for(contact_id),
            created=created,
            expires=expires,
            action=self.config.si_action,
        )

    def read_content(self, message: Any) -> Content:
        """The message's content, checked for this channel; raises BadContent."""
        try:
            content = Content.from_fields(message.request.content)
        except ValueError as exc:
            raise BadContent(str(exc)) from None
        refusals = declaration_of(self).refusals(content)
        if refusals:
            raise BadContent("; ".join(refusals))
        if not content.href:
            raise BadContent("a WAP Push needs content.href")
        for field, value in (("href", content.href), ("text", content.text or "")):
            if any(ord(c) < 0x20 and c not in "\t\n\r" for c in value):
                raise BadContent(f"content.{field} holds a control character")
        return content

    def build_job(self, message: Any, doc: ServiceIndication | ServiceLoading) -> SubmitJob:
        """The submit_sm fields of each part of ``message``'s push; raises BadContent."""
        try:
            self._reference = (self._reference + 1) & 0xFFFF
            self._tid = (self._tid + 1) & 0xFF
            parts = wap.encode(
                doc,
                transaction_id=self._tid,
                reference=self._reference,
                sixteen_bit=self.config.concatenation == "udh16",
            )
        except ValueError as exc:  # NUL in text, push longer than 255 SMS
            raise BadContent(str(exc)) from None
        c = self.config.smsc
        assert c is not None
        common = dict(
            source_addr=c.source_addr,
            source_addr_ton=c.source_addr_ton,
            source_addr_npi=c.source_addr_npi,
            destination_addr=message.msisdn,
            dest_addr_ton=c.dest_addr_ton,
            dest_addr_npi=c.dest_addr_npi,
            registered_delivery=c.registered_delivery,
            validity_period=relative_validity(c.validity) if c.validity else "",
            esm_class=ESM_UDHI,
            data_coding=DC_BINARY,
        )
        segments = [{**common, "short_message": ud} for ud in parts]
        return SubmitJob(key=message.contact_id, segments=segments, context=message)

    async def take_ready(
        self, queue: Any, limit: int
    ) -> list[tuple[Any, ServiceIndication | ServiceLoading]]:
        """Take up to ``limit`` messages and make their documents (tracking links included);
        those that cannot be a WAP Push are reported rejected here."""
        log = structlog.get_logger().bind(plugin="wap_push", channel=self.name)
        good: list[tuple[Any, Content]] = []
        for message in await queue.take(limit, max_wait=1.0):
            try:
                good.append((message, self.read_content(message)))
            except BadContent as exc:
                await self._bad(log, message, exc)
        hrefs = [str(content.href) for _, content in good]
        if self.tracker is not None and good:  # one commit for the links of the whole batch
            hrefs = await self.tracker.links_for(
                [(m, h) for (m, _), h in zip(good, hrefs, strict=True)]
            )
        now = time.time()
        ready = []
        for (message, content), href in zip(good, hrefs, strict=True):
            try:
                ready.append((message, self.document(content, href, message.contact_id, now)))
            except ValueError as exc:  # a NUL in the text
                await self._bad(log, message, exc)
        return ready

    async def _feeder(self, queue: Any) -> None:
        log = structlog.get_logger().bind(plugin="wap_push", channel=self.name)
        account = self.account
        assert account is not None
        while not self._draining:
            room = account.max_pending - account.queued
            if room <= 0:
                await trio.sleep(0.005)
                continue
            for message, doc in await self.take_ready(queue, min(room, 256)):
                try:
                    job = self.build_job(message, doc)
                except BadContent as exc:
                    await self._bad(log, message, exc)
                    continue
                self.stats["segments"] += len(job.segments)
                await account.submit(job)

    async def _bad(self, log: Any, message: Any, exc: Exception) -> None:
        self.stats["bad_content"] += 1
        log.warning("wap_push.bad_content", contact_id=message.contact_id, error=str(exc))
        await self._report(message, DeliveryState.REJECTED, f"bad content: {exc}")

    async def _report(
        self, message: Any, state: DeliveryState, error: str | None, message_id: str | None = None
    ) -> None:
        try:
            await self.gateway.report_delivery(
                Delivery(
                    contact_id=message.contact_id,
                    channel=self.name,
                    state=state,
                    at=time.time(),
                    message_id=message_id,
                    error=error,
                    msisdn=message.msisdn,
                )
            )
        except Exception as exc:  # contact control down: logged, the channel goes on
            structlog.get_logger().error(
                "wap_push.report_failed", contact_id=message.contact_id, error=repr(exc)
            )

    # -- SmppHandler (called by the binds) ---------------------------------------------------

    async def before_send(self, jobs: list[SubmitJob]) -> None:
        marked = await self._queue.mark_sending([j.key for j in jobs])
        for job in jobs:
            if job.key in marked:
                marked.discard(job.key)
            else:
                job.done = True  # pre-empted or lease lost: not sent

    def on_result(self, job: SubmitJob) -> None:
        self._results.send_nowait(job)

    async def _reporter(self, receive: Any) -> None:
        async with receive, trio.open_nursery() as nursery:
            async for job in receive:
                nursery.start_soon(self._report_job, job)

    async def _report_job(self, job: SubmitJob) -> None:
        message = job.context
        try:
            if job.status is None:
                self.stats["submitted"] += 1
                ids = [m or "" for m in job.message_ids]
                keys = [f"wap/{m}" for m in ids]
                await self._queue.map_message_ids(job.key, keys)
                await self._report(message, DeliveryState.SUBMITTED, None, ids[0])
                for key in keys:  # receipts that arrived before this answer was recorded
                    early = self._early.pop(key, None)
                    if early is not None:
                        await self._apply_receipt(key, early[0])
                return
            error = p.status_name(job.status)
            final = DeliveryState.REJECTED
            if job.status in p.TRANSIENT_STATUSES:
                state = await self._queue.retry(job.key, error)
                if state == "retry":
                    self.stats["retried"] += 1
                    return
                final = DeliveryState.EXPIRED if state == "expired" else DeliveryState.REJECTED
            self.stats["failed"] += 1
            await self._report(message, final, error)
        except Exception as exc:  # one bad report must not stop the others
            structlog.get_logger().error(
                "wap_push.report_failed", contact_id=job.key, error=repr(exc)
            )
        finally:
            job.settle()

    async def on_deliver(self, event: p.DeliverSm, bind: str) -> int:
        if not event.is_receipt:
            self.stats["mo_ignored"] += 1  # replies go to the SMS channel's service number
            return p.ESME_ROK
        try:
            receipt = receipt_from_fields(
                event.short_message, event.receipted_message_id, event.message_state
            )
        except ReceiptParseError as exc:
            structlog.get_logger().warning("wap_push.receipt_unreadable", error=str(exc))
            return p.ESME_ROK
        if receipt.state == "submitted":
            return p.ESME_ROK
        key = f"wap/{receipt.message_id}"
        if not await self._apply_receipt(key, receipt.state):
            # the submit answer may still be on its way to the database: keep it a while
            now = time.monotonic()
            while self._early and (
                len(self._early) >= 10_000 or now - next(iter(self._early.values()))[1] > 300
            ):
                self._early.popitem(last=False)
                self.stats["receipts_unmatched"] += 1
            self._early[key] = (receipt.state, now)
        return p.ESME_ROK

    async def _apply_receipt(self, key: str, state: str) -> bool:
        """Apply a receipt's final state; False when no message has this SMSC id (yet)."""
        result = await self._queue.apply_receipt(key, state)
        if result is None:
            return False
        self.stats["receipts"] += 1
        contact_id, final = result
        if final is not None:
            await self.gateway.report_delivery(
                Delivery(
                    contact_id=contact_id,
                    channel=self.name,
                    state=DeliveryState(final),
                    at=time.time(),
                    message_id=key.partition("/")[2],
                )
            )
        return True

    def on_event(self, event: str, **fields: Any) -> None:
        log = structlog.get_logger().bind(plugin="wap_push", channel=self.name)
        if event in ("smpp.bind_ok", "smpp.unbound", "smpp.requeued", "smpp.submit_retry"):
            log.info(event, **fields)
        else:
            log.warning(event, **fields)
