"""The ``mms`` channel: outbox messages to MM7 SubmitReq over HTTP (httpx on Trio).

One SubmitReq per contact (one recipient), at most ``concurrency`` in flight. The flow follows
the outbox consumer protocol of docs/channels.md: ``take`` as many messages as there are free
slots (so nothing leased waits for one), compose each MM in a worker thread (pictures read and
fitted to the MMSC profile; a message that cannot fit is ``rejected`` with the reason),
``mark_sending`` the ones composed, POST each, and report:

- status 1xxx: ``submitted`` with the MMSC's MessageID (mapped for the delivery report);
- a temporary failure of this message (a 3xxx server error, 4006 service unavailable, no
  answer within ``timeout``, an unreadable answer): ``queue.retry``, and the final state it
  returns once attempts run out;
- the MMSC cannot be used at all (connection refused, HTTP 401/403: credentials to fix, any
  answer that is not MM7 such as a proxy's 502 or 503 page): the message goes back to the queue without using an attempt
  and the channel pauses with a doubling backoff, so an outage or a configuration error does
  not use up the campaign's messages;
- a final refusal (2xxx, 3002-3004, other 4xxx): ``rejected`` with the status code and text.

The TransactionID is the contact id, so an MMSC that deduplicates on it drops a message
resent after a crash. Delivery reports, read replies and MO MMS arrive on the core's HTTP host
(:mod:`plugins.mms_mm7.inbound`).
"""

from __future__ import annotations

import functools
import math
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import attrs
import httpx
import structlog
import trio

from adapters.mm7 import (
    RELEASES,
    Address,
    RemoteMM7Error,
    Response,
    SubmitReq,
    Verdict,
    decode_request,
    encode_request,
    status_text,
    verdict,
)
from gateway.campaigns.config import resolve
from gateway.content import Content, ContentError, ContentKind, declaration_of
from gateway.model import Delivery, DeliveryState
from plugins.mms_mm7.compose import ComposeError, Composer
from plugins.mms_mm7.config import MmsConfig

#: Media types of an MM7 answer; any other answer is the MMSC (or a proxy) being unavailable.
MM7_MEDIA_TYPES = ("text/xml", "application/xml", "application/soap+xml", "multipart/related")
#: Pause of the channel while the MMSC is unavailable: doubles from PAUSE_MIN to PAUSE_MAX.
PAUSE_MIN = 0.5
PAUSE_MAX = 60.0


@attrs.frozen
class Unavailable:
    """The SubmitReq never reached the MMSC (connection refused, connect timeout)."""

    reason: str


#: Delivery reports kept while their SubmitRsp is still being recorded (bounded, 5 minutes).
MAX_ORPHANS = 10_000
ORPHAN_AGE = 300.0


def expiry_of(seconds: float) -> str | None:
    """An xs:duration (``PT86400S``) for a relative expiry, None for the MMSC's default."""
    return None if seconds <= 0 else f"PT{int(seconds)}S"


@attrs.define(eq=False)
class MmsChannel:
    """The channel object the core starts (see docs/channels.md)."""

    gateway: Any
    config: MmsConfig
    name: str = attrs.field(init=False)
    #: Text, subject and pictures; only for handsets whose profile says ``mms``.
    carries = frozenset({ContentKind.TEXT, ContentKind.ATTACHMENTS})
    requires = frozenset({"mms"})
    composer: Composer = attrs.field(init=False)
    queue: Any = None  # the open outbox queue while run() runs (the inbound routes use it)
    stats: dict[str, int] = attrs.field(
        factory=lambda: dict.fromkeys(
            (
                "submitted",
                "refused",
                "retried",
                "timeouts",
                "auth_refused",
                "unavailable",
                "content_rejected",
                "receipts",
                "receipts_unmatched",
                "read_replies",
                "mo",
                "inbound_refused",
            ),
            0,
        )
    )
    _limiter: trio.CapacityLimiter = attrs.field(factory=lambda: trio.CapacityLimiter(2))
    _orphans: OrderedDict[str, tuple[Any, float]] = attrs.field(factory=OrderedDict)
    _in_flight: int = 0
    _draining: bool = False
    _backoff: float = 0.0  # seconds of the current pause while the MMSC is unavailable
    _paused_until: float = 0.0  # Trio time

    def __attrs_post_init__(self) -> None:
        self.name = self.config.channel
        self.composer = self._composer(self.config)

    def _composer(self, config: MmsConfig) -> Composer:
        media = resolve(self.gateway, config.media_dir) if config.media_dir else None
        if media is None:
            campaigns = getattr(self.gateway.config, "sections", {}).get("campaigns")
            directory = getattr(campaigns, "directory", "")
            media = resolve(self.gateway, directory) if directory else None
        return Composer(
            media_dir=None if media is None else Path(media),
            max_message_bytes=config.max_message_bytes,
            max_image_size=config.max_image_size,
        )

    def reload(self, config: MmsConfig) -> None:
        """New limits, identity, credentials and timeout apply to the next SubmitReq; a new
        ``concurrency`` or ``inbound_path`` needs a restart (said in the log)."""
        for key in ("concurrency", "inbound_path", "channel"):
            if getattr(config, key) != getattr(self.config, key):
                structlog.get_logger().warning(
                    "mms.reload_needs_restart", plugin="mms_mm7", key=key
                )
        self.config = config
        self.composer = self._composer(config)

    def statistics(self) -> dict[str, Any]:
        paused = max(0.0, self._paused_until - trio.current_time()) if self.queue else 0.0
        return {**self.stats, **self.composer.stats, "paused_s": round(paused, 1)}

    @property
    def release(self) -> Any:
        return RELEASES[self.config.release]

    # -- the delivery loop -----------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        log = structlog.get_logger().bind(plugin="mms_mm7", channel=self.name)
        slots = trio.Semaphore(self.config.concurrency)  # SubmitReq on the wire
        pending = trio.Semaphore(4 * self.config.concurrency)  # ... or answered, not recorded
        async with (
            httpx.AsyncClient(
                timeout=httpx.Timeout(self.config.timeout),
                limits=httpx.Limits(max_connections=self.config.concurrency),
            ) as client,
            self.gateway.outbox.open_queue(self.name) as queue,
        ):
            await queue.recover()
            self.queue = queue
            try:
                async with trio.open_nursery() as nursery:
                    if self.config.embedded_mmsc:
                        await self._start_embedded_mmsc(nursery)
                    log.info("mms.ready", mmsc=self.config.url, release=self.config.release)
                    task_status.started()
                    while True:
                        # MMSC unavailable: wait (the deadline may move while we sleep).
                        while trio.current_time() < self._paused_until:  # noqa: ASYNC110
                            await trio.sleep_until(self._paused_until)
                        # Take only what can go out now, so nothing leased waits for a slot.
                        async with pending, slots:
                            free = min(slots.value, pending.value) + 1
                        messages = await queue.take(min(free, self.config.batch))
                        if self._draining:
                            await queue.release([m.contact_id for m in messages])
                            await trio.sleep_forever()
                        for message, mm in await self._prepare(queue, messages):
                            await pending.acquire()
                            await slots.acquire()
                            self._in_flight += 1
                            nursery.start_soon(
                                self._send_one, queue, client, message, mm, slots, pending
                            )
            finally:
                self.queue = None

    async def _start_embedded_mmsc(self, nursery: trio.Nursery) -> None:
        """DEMO ONLY (``embedded_mmsc``): a fake MMSC on a loopback port in this nursery, which
        reports every MMS it accepted as retrieved ``embedded_report_delay`` later."""
        from gateway.testing.mmsc import FakeMmsc  # test support, imported only in demo mode

        mmsc = FakeMmsc(username=self.config.username, password=self.config.password)
        await nursery.start(mmsc.serve)
        self.config = attrs.evolve(self.config, url=mmsc.url)
        structlog.get_logger().warning(
            "mms.embedded_mmsc",
            plugin="mms_mm7",
            url=mmsc.url,
            hint="demo mode: MMS go to a fake MMSC",
        )

        async def report_retrieved() -> None:
            seen = 0
            while True:
                submits = await mmsc.wait_submits(seen + 1, within=math.inf)
                for submit in submits[seen:]:
                    if submit.message_id is not None:
                        nursery.start_soon(retrieved, submit)
                seen = len(submits)

        async def retrieved(submit: Any) -> None:
            await trio.sleep(self.config.embedded_report_delay)
            msisdn = submit.request.recipients[0].value
            await self.apply_report(submit.message_id, "delivered", msisdn, None)

        nursery.start_soon(report_retrieved)

    async def drain(self) -> None:
        """Stop taking messages; wait for the SubmitReq in flight to be answered and recorded
        (the daemon bounds this with its drain deadline)."""
        self._draining = True
        while self._in_flight:  # noqa: ASYNC110 - polls the in-flight counter
            await trio.sleep(0.05)

    async def _prepare(self, queue: Any, messages: list[Any]) -> list[tuple[Any, Any]]:
        """Compose each MM (rejecting what cannot be sent), then mark them sending: the
        messages to POST with their MM."""
        composed = {}
        for message in messages:
            try:
                content = Content.from_fields(message.request.content)
                refusals = declaration_of(self).refusals(content)
                if refusals:
                    raise ComposeError("; ".join(refusals))
                mm, _size = await trio.to_thread.run_sync(
                    self.composer.compose, content, limiter=self._limiter
                )
                composed[message.contact_id] = (mm, content.subject)
            except (ContentError, ComposeError) as exc:  # final: retrying cannot fix it
                self.stats["content_rejected"] += 1
                await self._report(message, DeliveryState.REJECTED, error=str(exc))
        if not composed:
            return []
        sending = set(await queue.mark_sending(list(composed)))
        return [(m, composed[m.contact_id]) for m in messages if m.contact_id in sending]

    async def _send_one(
        self,
        queue: Any,
        client: httpx.AsyncClient,
        message: Any,
        mm: Any,
        slots: trio.Semaphore,
        pending: trio.Semaphore,
    ) -> None:
        """POST holding an HTTP slot; record the answer after giving the slot back, so that the
        MMSC gets ``concurrency`` requests at once while the durable writes of several answers
        share one commit of the state writer."""
        try:
            try:
                answer = await self._post(client, message, mm)
            finally:
                slots.release()
            await self._record(queue, message, answer)
        finally:
            self._in_flight -= 1
            pending.release()

    def submit_request(self, message: Any, content_id: str, subject: str | None) -> SubmitReq:
        config = self.config
        return SubmitReq(
            transaction_id=message.contact_id,
            vasp_id=config.vasp_id,
            vas_id=config.vas_id,
            sender=Address(kind="ShortCode", value=config.sender) if config.sender else None,
            recipients=(Address(kind="Number", value=message.msisdn),),
            service_code=config.service_code or None,
            message_class=config.message_class,
            expiry=expiry_of(config.expiry),
            delivery_report=config.delivery_report,
            read_reply=config.read_reply,
            subject=subject,
            charged_party=config.charged_party,
            content_id=content_id,
        )

    async def _post(self, client: httpx.AsyncClient, message: Any, mm: Any) -> httpx.Response | str:
        """The MMSC's HTTP answer to the SubmitReq, or why there is none (retried)."""
        mm, subject = mm
        request = self.submit_request(message, mm.content_id, subject)
        content_type, body = encode_request(request, mm, self.release)
        auth = (
            httpx.BasicAuth(self.config.username, self.config.password)
            if self.config.username
            else httpx.USE_CLIENT_DEFAULT
        )
        try:
            return await client.post(
                self.config.url,
                content=body,
                headers={"Content-Type": content_type, "SOAPAction": '""'},
                auth=auth,
                timeout=self.config.timeout,  # per request: a reload applies at once
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            return Unavailable(reason=f"MMSC unreachable: {type(exc).__name__}: {exc}")
        except httpx.TimeoutException:  # sent: the MMSC may have it, so an attempt is used
            self.stats["timeouts"] += 1
            return f"no answer from the MMSC in {self.config.timeout}s"
        except httpx.HTTPError as exc:  # reset mid-answer, a broken answer
            return f"MMSC answer lost: {type(exc).__name__}: {exc}"

    async def _record(self, queue: Any, message: Any, answer: httpx.Response | str) -> None:
        """Report what the MMSC's answer means for the message (see the module docstring)."""
        log = structlog.get_logger().bind(
            plugin="mms_mm7", channel=self.name, contact_id=message.contact_id
        )
        if isinstance(answer, str):
            await self._retry(queue, message, answer)
            return
        if isinstance(answer, Unavailable):
            await self._unavailable(queue, message, answer.reason)
            return
        media_type = answer.headers.get("content-type", "").partition(";")[0].strip().lower()
        if answer.status_code in (401, 403) or media_type not in MM7_MEDIA_TYPES:
            # Not an MM7 answer: credentials refused, or a proxy's or server's own error page.
            if answer.status_code in (401, 403):
                self.stats["auth_refused"] += 1
                log.error(
                    "mms.auth_refused",
                    status=answer.status_code,
                    hint="check [plugins.mms_mm7] username and password",
                )
            reason = f"HTTP {answer.status_code} from the MMSC"
            await self._unavailable(queue, message, reason)
            return
        self._backoff = 0.0  # the MMSC answers
        try:
            response = decode_request(
                answer.headers.get("content-type", ""), answer.content
            ).message
            if not isinstance(response, Response):
                raise RemoteMM7Error(f"the MMSC answered with a {type(response).__name__}")
        except RemoteMM7Error as exc:
            await self._retry(
                queue, message, f"unreadable MMSC answer (HTTP {answer.status_code}): {exc}"
            )
            return
        code = response.status.code
        error = f"MM7 {code} {response.status.text or status_text(code)}"
        outcome = verdict(code)
        if outcome is Verdict.ACCEPTED and response.message_id:
            self.stats["submitted"] += 1
            # Both durable writes at once: the state writer commits them together. A report
            # that finds the id mapped before "submitted" is recorded is fine (docs/channels.md).
            async with trio.open_nursery() as nursery:
                nursery.start_soon(queue.map_message_ids, message.contact_id, [response.message_id])
                nursery.start_soon(
                    functools.partial(
                        self._report,
                        message,
                        DeliveryState.SUBMITTED,
                        message_id=response.message_id,
                    )
                )
            await self._apply_orphan(response.message_id)
        elif outcome is Verdict.ACCEPTED:  # no MessageID: no report can ever find it
            self.stats["submitted"] += 1
            await self._report(message, DeliveryState.SUBMITTED)
            log.warning("mms.submit_without_message_id", status=code)
        elif outcome is Verdict.RETRY:
            await self._retry(queue, message, error)
        else:
            self.stats["refused"] += 1
            log.warning("mms.refused", status=code, status_text=response.status.text)
            await self._report(message, DeliveryState.REJECTED, error=error)

    async def _unavailable(self, queue: Any, message: Any, reason: str) -> None:
        """The MMSC cannot be used now (down, refusing our credentials, overloaded without an
        MM7 answer): the message goes back to the queue (after the outbox's retry backoff)
        without using an attempt, and the
        channel pauses (doubling from PAUSE_MIN to PAUSE_MAX), as the SMS channel keeps its
        messages while no SMSC bind is up. They expire after ``[outbox] expiry``."""
        self.stats["unavailable"] += 1
        state = await queue.retry(message.contact_id, reason, count_attempt=False)
        if state in ("rejected", "expired"):  # its time ran out meanwhile
            await self._report(message, DeliveryState(state), error=reason)
        self._backoff = min(max(PAUSE_MIN, self._backoff * 2), PAUSE_MAX)
        until = trio.current_time() + self._backoff
        if until > self._paused_until:
            self._paused_until = until
            structlog.get_logger().warning(
                "mms.mmsc_unavailable",
                plugin="mms_mm7",
                channel=self.name,
                reason=reason,
                pause_s=self._backoff,
            )

    async def _retry(self, queue: Any, message: Any, error: str) -> None:
        self.stats["retried"] += 1
        structlog.get_logger().warning(
            "mms.submit_failed", plugin="mms_mm7", contact_id=message.contact_id, error=error
        )
        state = await queue.retry(message.contact_id, error)
        if state in ("rejected", "expired"):  # attempts or time used up: report it
            await self._report(message, DeliveryState(state), error=error)

    async def _report(
        self,
        message: Any,
        state: DeliveryState,
        *,
        message_id: str | None = None,
        error: str | None = None,
    ) -> None:
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

    # -- delivery reports (called by the inbound route) ------------------------------------

    async def apply_report(
        self, message_id: str, state: str, msisdn: str | None, error: str | None
    ) -> bool:
        """Apply a final delivery state to the contact of ``message_id``; keep it a while when
        the id is not known yet (its SubmitRsp is still being recorded). True when applied."""
        queue = self.queue
        if queue is None:
            return False
        result = await queue.apply_receipt(message_id, state)
        if result is None:
            now = time.monotonic()
            while self._orphans and (
                len(self._orphans) >= MAX_ORPHANS
                or now - next(iter(self._orphans.values()))[1] > ORPHAN_AGE
            ):
                self._orphans.popitem(last=False)
                self.stats["receipts_unmatched"] += 1
            self._orphans[message_id] = ((state, msisdn, error), now)
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
                    message_id=message_id,
                    error=error,
                    msisdn=msisdn,
                )
            )
        return True

    async def _apply_orphan(self, message_id: str) -> None:
        orphan = self._orphans.pop(message_id, None)
        if orphan is not None:
            state, msisdn, error = orphan[0]
            await self.apply_report(message_id, state, msisdn, error)
