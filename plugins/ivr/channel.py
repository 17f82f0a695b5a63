"""The IVR callout channel: a contact is a call that plays the offer and takes a key press.

It consumes its outbox queue (docs/channels.md) and places each call through the switch
backend (Asterisk AMI or FreeSWITCH event socket), paced per trunk (concurrent calls, calls
per second), inside the IVR contact hours. What happens to a contact:

- Before the first call, "is the phone on?": a subscriber whose last signaling event is
  ``power_off`` (or who was not seen for ``presence_unseen``) is not called. The contact is
  given back (outbox entry cancelled, reservation refunded) and presented again through the
  outbox's deferral as ``<contact_id>~p1`` at the next ``power_on`` or after
  ``presence_defer_max``; that one is called without asking again.
- The first call placed reports ``submitted`` (the contact counts once). ``answered`` is then
  ``delivered``; a key in ``accept_keys`` is an acceptance (ledger row and the
  ``gateway_offer_accepted`` hook, the same path as an SMS "Y"). ``rejected`` is
  ``undeliverable`` at once.
- busy, no answer, unreachable, failed: retried per ``[plugins.ivr.retry.<result>]`` (after a
  delay, or at the next day's first contact hour), up to ``max`` times, inside the contact
  hours; the retries wait in this channel's durable schedule and are not new contacts. With
  ``retry_is_new_contact`` a retry is instead a new contact (``<contact_id>~r<n>``) deferred
  through the outbox, so contact control (caps, quiet hours) decides it again. When the retries
  are used up the contact is ``undeliverable`` with the last result as its error.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import attrs
import structlog
import trio

from gateway.content import Content, ContentError, ContentKind, declaration_of
from gateway.model import Acceptance, ContactRequest, Delivery, DeliveryState
from plugins.ivr.backend import CallBackend, TrunkPacer, make_backend
from plugins.ivr.config import IvrConfig
from plugins.ivr.schedule import Retry, RetrySchedule

_NAMESPACE = uuid.UUID("4d1f7a3e-7c55-4b8e-9a31-3f6f0c2b9e10")
NEVER = float("inf")
IDLE_WAIT = 60.0  # the longest the loop waits for work before it looks again
WAKEUP_WAIT = 1.0  # how soon a power-on is applied while subscribers are held


def call_id_for(contact_id: str, attempt: int) -> str:
    """The call's id on the switch (AMI ChannelId, FreeSWITCH origination_uuid): the same for
    the same attempt, so a resend after a reconnect is recognised as the same call."""
    return str(uuid.uuid5(_NAMESPACE, f"{contact_id}#{attempt}"))


def split_contact_id(contact_id: str) -> tuple[str, str, int]:
    """``("base", "p"|"r"|"", n)`` of ``base~p1`` / ``base~r2`` / ``base``."""
    base, sep, tail = contact_id.rpartition("~")
    if sep and tail[:1] in ("p", "r") and tail[1:].isdigit():
        return base, tail[0], int(tail[1:])
    return contact_id, "", 0


@attrs.frozen(kw_only=True)
class Job:
    """One call to place for one contact."""

    contact_id: str
    campaign_id: str
    msisdn: str
    content: dict[str, Any]
    attempt: int = 1
    counts: dict[str, int] = attrs.field(factory=dict)
    submitted: bool = False  # the first call was placed (reported submitted)
    message_id: str | None = None
    presence_checked: bool = False  # waited once already: called whatever presence says


@attrs.define(eq=False)
class IvrChannel:
    gateway: Any
    config: IvrConfig
    clock: Callable[[], float] = time.time
    backend: CallBackend = attrs.field(default=None)
    name: str = attrs.field(init=False)
    carries = frozenset({ContentKind.TEXT, ContentKind.ATTACHMENTS})
    requires: frozenset[str] = frozenset()
    trunks: list[TrunkPacer] = attrs.field(init=False)
    stats: dict[str, int] = attrs.field(
        factory=lambda: dict.fromkeys(
            (
                "calls",
                "answered",
                "busy",
                "no_answer",
                "rejected",
                "unreachable",
                "failed",
                "lost",
                "accepted",
                "retries_scheduled",
                "deferred_presence",
                "rejected_content",
            ),
            0,
        )
    )
    schedule: RetrySchedule = attrs.field(init=False)
    active: int = 0
    max_active: int = 0
    _slot_freed: trio.Event = attrs.field(factory=trio.Event)
    _woken: trio.Event = attrs.field(factory=trio.Event)
    _held: dict[str, list[ContactRequest]] = attrs.field(factory=dict)
    _wakeups: list[str] = attrs.field(factory=list)
    _rotation: int = 0

    def __attrs_post_init__(self) -> None:
        self.name = self.config.channel
        self.trunks = [TrunkPacer(config=t) for t in self.config.trunks]
        if self.backend is None:
            self.backend = make_backend(self.config, self.clock)
        self.schedule = RetrySchedule(self.gateway.state_dir / f"ivr-{self.name}.sqlite")

    def statistics(self) -> dict[str, Any]:
        return {
            **self.stats,
            "active": self.active,
            "max_active": self.max_active,
            "connected": self.backend.connected,
            "switch": dict(self.backend.stats),
            "held_for_presence": sum(len(v) for v in self._held.values()),
        }

    # -- the loop -------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self.schedule.open()
        presence = getattr(self.gateway, "presence", None)
        try:
            async with self.gateway.outbox.open_queue(self.name) as queue:
                await queue.recover()
                async with trio.open_nursery() as nursery:
                    await nursery.start(self.backend.run)  # a refused login raises here
                    if presence is not None:
                        presence.add_listener(self._power_on)
                    task_status.started()
                    await self._settle_lost_calls()
                    await self._loop(queue, nursery)
        finally:
            if presence is not None:
                presence.remove_listener(self._power_on)
            with trio.CancelScope(shield=True):
                await self.schedule.close()

    async def _loop(self, queue: Any, nursery: trio.Nursery) -> None:
        hours = self.config.hours
        while True:
            await self._apply_wakeups()
            now = self.clock()
            if not hours.contains(now):
                # A millisecond past the opening: wall-clock floats near 1.8e9 s are 2.4e-7 s
                # apart, and the loop must not wake just before it, again and again.
                await trio.sleep(max(hours.next_open(now) - now, 0.0) + 0.001)
                continue
            free = self.config.concurrent - self.active
            if free <= 0:
                await self._slot_freed.wait()
                continue
            for retry in await self.schedule.due(now, free):
                await self._start_retry(retry, nursery)
                free -= 1
            if free <= 0:
                continue
            # Wait for new contacts no longer than until the next retry is due, the contact
            # hours end, or (while subscribers wait for their phone) a power-on is applied.
            next_due = await self.schedule.next_due()
            wait = min(IDLE_WAIT, hours.closes_in(now) + 0.001)
            if next_due is not None:
                wait = min(wait, max(next_due - now, 0.0))
            if self._held or self._wakeups:
                wait = min(wait, WAKEUP_WAIT)
            for message in await queue.take(free, max_wait=max(wait, 0.001)):
                await self._start_first(queue, message, nursery)

    def _pick_trunk(self) -> TrunkPacer:
        """The next trunk (round robin) with a free call; the caller counted a free slot."""
        n = len(self.trunks)
        for i in range(n):
            trunk = self.trunks[(self._rotation + i) % n]
            if trunk.free > 0:
                self._rotation = (self._rotation + i + 1) % n
                return trunk
        raise AssertionError("no free trunk although a slot was free")

    def _occupy(self) -> TrunkPacer:
        trunk = self._pick_trunk()
        trunk.acquire_nowait()
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        if self._slot_freed.is_set():
            self._slot_freed = trio.Event()
        return trunk

    def _free(self, trunk: TrunkPacer) -> None:
        trunk.release()
        self.active -= 1
        self._slot_freed.set()

    # -- first calls, from the outbox --------------------------------------------------------

    async def _start_first(self, queue: Any, message: Any, nursery: trio.Nursery) -> None:
        log = structlog.get_logger()
        try:
            content = Content.from_fields(message.request.content)
            refusals = declaration_of(self).refusals(content)
        except ContentError as exc:
            refusals = [str(exc)]
        if refusals:
            self.stats["rejected_content"] += 1
            await self._report(message.contact_id, message.msisdn, DeliveryState.REJECTED,
                               error="; ".join(refusals))  # fmt: skip
            return
        base, kind, n = split_contact_id(message.contact_id)
        counts: dict[str, int] = {}
        if kind == "r":  # a retry made a new contact: its counts are kept under the base
            held = await self.schedule.get(base)
            counts = dict(held.counts) if held is not None else {}
        job = Job(
            contact_id=message.contact_id,
            campaign_id=message.campaign_id,
            msisdn=message.msisdn,
            content=dict(message.request.content),
            attempt=n + 1 if kind == "r" else 1,
            counts=counts,
            presence_checked=kind == "p",
        )
        if not job.presence_checked and await self._defer_if_absent(queue, message):
            return
        sending = await queue.mark_sending([message.contact_id])
        if message.contact_id not in sending:  # cancelled or lease expired meanwhile
            return
        log.info("ivr.call", channel=self.name, contact_id=job.contact_id, msisdn=job.msisdn,
                 attempt=job.attempt)  # fmt: skip
        nursery.start_soon(self._call, job, self._occupy())

    async def _defer_if_absent(self, queue: Any, message: Any) -> bool:
        presence = getattr(self.gateway, "presence", None)
        if not self.config.presence_check or presence is None:
            return False
        now = self.clock()
        reason = presence.absent(message.msisdn, now, self.config.presence_unseen)
        if reason is None:
            return False
        base, _kind, n = split_contact_id(message.contact_id)
        request = attrs.evolve(message.request, contact_id=f"{base}~p{n + 1}")
        outbox = self.gateway.outbox
        # Deferred first (idempotent by its id), then the original given back: a crash between
        # the two leaves the original leased; it comes back and is deferred to the same id.
        await outbox.defer(request, now + self.config.presence_defer_max)
        await outbox.cancel(message.contact_id, f"ivr.presence.{reason}")
        queue.leased.discard(message.contact_id)
        if self.gateway.contact_control is not None:
            await self.gateway.contact_control.release(message.contact_id, "refund.ivr_presence")
        self._held.setdefault(message.msisdn, []).append(request)
        self.stats["deferred_presence"] += 1
        structlog.get_logger().info(
            "ivr.deferred_phone_off", channel=self.name, contact_id=message.contact_id,
            msisdn=message.msisdn, reason=reason, deferred_as=request.contact_id,
        )  # fmt: skip
        return True

    def _power_on(self, subject: str, at: float) -> None:
        """Presence listener (on the pipeline's path): only note it."""
        if len(self._wakeups) < 10_000:  # past that, the deferral window still ends
            self._wakeups.append(subject)

    async def _apply_wakeups(self) -> None:
        while self._wakeups:
            msisdn = self._wakeups.pop()
            for request in self._held.pop(msisdn, []):
                await self.gateway.outbox.defer(request, 0.0)  # due at once
            await self.schedule.wake(msisdn, self.clock())

    # -- retries, from this channel's schedule --------------------------------------------

    async def _settle_lost_calls(self) -> None:
        """Retries claimed for a call when the gateway stopped: the call may have been placed
        and its result is gone. Not called again (no double call): undeliverable."""
        for retry in await self.schedule.all():
            if retry.reason == "calling":
                self.stats["lost"] += 1
                await self._report(retry.contact_id, retry.msisdn, DeliveryState.UNDELIVERABLE,
                                   message_id=retry.message_id, error="ivr.result_lost")  # fmt: skip
                await self.schedule.delete(retry.contact_id)

    async def _start_retry(self, retry: Retry, nursery: trio.Nursery) -> None:
        job = Job(
            contact_id=retry.contact_id,
            campaign_id=retry.campaign_id,
            msisdn=retry.msisdn,
            content=retry.content,
            attempt=retry.attempt,
            counts=retry.counts,
            submitted=True,
            message_id=retry.message_id,
            presence_checked=retry.reason == "presence",
        )
        presence = getattr(self.gateway, "presence", None)
        if not job.presence_checked and self.config.presence_check and presence is not None:
            now = self.clock()
            if presence.absent(job.msisdn, now, self.config.presence_unseen) is not None:
                until = self.config.hours.next_open(now + self.config.presence_defer_max)
                await self.schedule.put(attrs.evolve(retry, not_before=until, reason="presence"))
                self.stats["deferred_presence"] += 1
                return
        # Claimed before the call: a restart meanwhile finds it not due (no double call).
        await self.schedule.put(attrs.evolve(retry, not_before=NEVER, reason="calling"))
        nursery.start_soon(self._call, job, self._occupy())

    # -- one call -------------------------------------------------------------------------

    def _variables(self, job: Job) -> dict[str, str]:
        content = job.content
        variables = {"GW_CONTACT": job.contact_id, "GW_CAMPAIGN": job.campaign_id}
        if content.get("text"):
            variables["GW_PROMPT"] = str(content["text"])
        for key, value in content.items():
            if key.startswith("attachment.") and isinstance(value, str):
                variables["GW_PROMPT_FILE"] = value.split(" ", 1)[-1]
        return variables

    async def _call(self, job: Job, trunk: TrunkPacer) -> None:
        call_id = call_id_for(job.contact_id, job.attempt)
        try:
            await trunk.pace()
            self.stats["calls"] += 1
            try:
                end = await self.backend.call(
                    call_id, job.msisdn, trunk.config.name, self._variables(job)
                )
                result, digits, cause = end.result, end.digits, end.cause
                duration = end.duration
            except Exception as exc:  # a broken switch answer must not stop the channel
                result, digits, cause, duration = "failed", "", repr(exc), 0.0
        finally:
            self._free(trunk)
        await self._settle(job, call_id, result, digits, cause, duration)

    async def _settle(
        self, job: Job, call_id: str, result: str, digits: str, cause: str | None, duration: float
    ) -> None:
        log = structlog.get_logger()
        now = self.clock()
        self.stats[result] = self.stats.get(result, 0) + 1
        message_id = job.message_id or call_id
        if not job.submitted:
            await self._report(job.contact_id, job.msisdn, DeliveryState.SUBMITTED,
                               message_id=message_id)  # fmt: skip
        log.info("ivr.call_ended", channel=self.name, contact_id=job.contact_id, digits=digits,
                 msisdn=job.msisdn, attempt=job.attempt, result=result,
                 duration_s=round(duration, 3), cause=cause)  # fmt: skip
        base = split_contact_id(job.contact_id)[0]
        if result == "answered":
            # The acceptance first: an observer of "delivered" finds it recorded.
            key = next((k for k in digits if k in self.config.accept_keys), None)
            if key is not None:
                self.stats["accepted"] += 1
                await self.gateway.report_acceptance(
                    Acceptance(
                        contact_id=job.contact_id,
                        campaign_id=job.campaign_id,
                        msisdn=job.msisdn,
                        channel=self.name,
                        answer=key,
                        at=now,
                    )
                )
            await self._report(job.contact_id, job.msisdn, DeliveryState.DELIVERED,
                               message_id=message_id)  # fmt: skip
            await self.schedule.delete(job.contact_id)
            await self.schedule.delete(base)
            return
        counts = dict(job.counts)
        counts[result] = counts.get(result, 0) + 1
        rule = self.config.retry.get(result)
        if rule is not None and counts[result] <= rule.max:
            hours = self.config.hours
            due = hours.next_day_open(now) if rule.next_day else now + rule.after
            due = hours.next_open(due)
            self.stats["retries_scheduled"] += 1
            retry = Retry(
                contact_id=job.contact_id,
                campaign_id=job.campaign_id,
                msisdn=job.msisdn,
                content=job.content,
                message_id=message_id,
                counts=counts,
                attempt=job.attempt + 1,
                not_before=due,
                reason=result,
            )
            if not self.config.retry_is_new_contact:
                await self.schedule.put(retry)
                return
            # A new contact: this one ends here; the next is decided by contact control again.
            await self._report(job.contact_id, job.msisdn, DeliveryState.UNDELIVERABLE,
                               message_id=message_id, error=f"ivr.{result}")  # fmt: skip
            await self.schedule.put(attrs.evolve(retry, contact_id=base, not_before=NEVER))
            request = ContactRequest(
                contact_id=f"{base}~r{job.attempt}",
                msisdn=job.msisdn,
                campaign_id=job.campaign_id,
                channel=self.name,
                realtime=False,
                content=job.content,
                created_at=now,
                trigger="ivr_retry",
            )
            await self.gateway.outbox.defer(request, due)
            return
        await self.schedule.delete(job.contact_id)
        await self.schedule.delete(base)
        error = f"ivr.{result}" + (f" ({cause})" if cause else "")
        await self._report(job.contact_id, job.msisdn, DeliveryState.UNDELIVERABLE,
                           message_id=message_id, error=error)  # fmt: skip

    async def _report(
        self,
        contact_id: str,
        msisdn: str,
        state: DeliveryState,
        *,
        message_id: str | None = None,
        error: str | None = None,
    ) -> None:
        await self.gateway.report_delivery(
            Delivery(
                contact_id=contact_id,
                channel=self.name,
                state=state,
                at=self.clock(),
                message_id=message_id,
                error=error,
                msisdn=msisdn,
            )
        )
