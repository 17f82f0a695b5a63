"""What a Trio SMPP client shares across binds: settings, jobs, the account queue and its rate.

An :class:`SmscAccount` holds the segments waiting for one SMSC account and the account's token
bucket; its binds (:func:`adapters.smpp.transport.run_bind`) take segments from it while their
window has room, so several binds share the contracted rate. The owner (the channel plugin)
implements :class:`SmppHandler`.

Flow control by the SMSC:

- ESME_RTHROTTLED (the account sends faster than the SMSC allows): the account pauses briefly
  and lowers its own rate, additive increase / multiplicative decrease (AIMD, the scheme of
  TCP congestion control, RFC 5681 section 3.1): each throttling episode multiplies the rate
  by ``throttle_decrease``; every second without one adds ``throttle_increase`` times the rate
  at which the SMSC last throttled, up to the configured ``rate`` (uncapped accounts return to
  uncapped at twice that rate). So the client settles just under what the SMSC accepts instead
  of having a share of its submits rejected.
- ESME_RMSGQFUL (the SMSC's queue for one destination is full): only that segment waits
  ``queue_full_delay`` and is retried, at most ``queue_full_retries`` times; then the message
  fails with that status. Other destinations keep flowing.

This module is part of the thin Trio transport (it parks binds and sleeps on the Trio clock);
the codecs beside it stay pure.
"""

from __future__ import annotations

import collections
import heapq
import random
from collections.abc import Sequence
from typing import Any, Protocol

import attrs
import trio

from adapters.smpp import protocol as p
from adapters.smpp.ratelimit import TokenBucket


@attrs.frozen(kw_only=True)
class BindSettings:
    host: str
    port: int
    system_id: str
    password: str = attrs.field(repr=False)
    system_type: str = ""
    window: int = 10
    request_timeout: float = 10.0
    enquire_link_interval: float = 30.0
    bind_timeout: float = 10.0
    reconnect_min: float = 1.0
    reconnect_max: float = 60.0
    bind_rate: float = 0.0  # submit_sm/s per bind, 0 = no per-bind cap
    throttle_delay: float = 0.5  # pause after ESME_RTHROTTLED (doubles while it persists)
    throttle_delay_max: float = 30.0
    throttle_decrease: float = 0.85  # rate factor per throttling episode (AIMD)
    throttle_increase: float = 0.02  # per second: this share of the rate at the last throttle
    queue_full_retries: int = 3  # ESME_RMSGQFUL: retries of the segment before the message fails
    queue_full_delay: float = 30.0  # ... each after this many seconds
    retry_delay: float = 5.0  # after a transient error status or a timeout
    max_attempts: int = 5  # transient errors per message before it is given up
    ssl_context: Any = None


@attrs.define(eq=False, slots=True)
class SubmitJob:
    """One message: one or more segments (make_pdu fields), each a submit_sm."""

    key: str
    segments: list[dict]
    context: Any = None
    message_ids: list = attrs.field(factory=list)
    remaining: int = 0
    status: int | None = None  # the error that ended it, None when submitted
    done: bool = False
    marked: bool = False  # before_send was called (persisted as in flight)
    attempts: int = 0
    queue_full: int = 0  # ESME_RMSGQFUL answers so far
    resent: int = 0  # segments sent again after a lost answer (possible duplicates)
    context_account: str = ""  # name of the account it was routed to
    _on_settled: Any = None

    def settle(self) -> None:
        """The owner has durably recorded the result: the window slot of its last segment is free.

        Until then the bind counts the message as in flight, so that after a crash at most
        ``window`` messages per bind can have reached the SMSC without a record of it.
        """
        callback, self._on_settled = self._on_settled, None
        if callback is not None:
            callback()

    def __attrs_post_init__(self) -> None:
        self.message_ids = [None] * len(self.segments)
        self.remaining = len(self.segments)


class SmppHandler(Protocol):
    async def before_send(self, jobs: Sequence[SubmitJob]) -> None:
        """Persist that these messages are about to go on the wire (called once per job)."""

    def on_result(self, job: SubmitJob) -> None:
        """The job is done: every segment accepted (``status is None``) or it failed.
        Call ``job.settle()`` once the result is recorded (it frees a window slot)."""

    async def on_deliver(self, event: p.DeliverSm, bind: str) -> int:
        """A deliver_sm (receipt or MO); return the command_status of the deliver_sm_resp.

        A handler may also offer ``on_deliver_many(events, bind) -> statuses`` (one status per
        event, in order): the bind then hands it the deliver_sm read together at once."""

    def on_event(self, event: str, **fields: Any) -> None:
        """Something to log or count: ``smpp.bind_ok``, ``smpp.disconnected``, ``smpp.throttled``..."""


@attrs.define(eq=False)
class BindState:
    """What ``gatewayctl smpp`` shows about one bind."""

    name: str
    mode: str
    state: str = "idle"  # idle | connecting | bound | backoff
    window: int = 0
    outstanding: int = 0
    submitted: int = 0
    reconnects: int = 0
    last_error: str = ""
    # results handed to the owner and not yet recorded (see SubmitJob.settle); they hold
    # window slots across reconnects
    unsettled: int = 0
    wake_sender: Any = None

    def settled(self) -> None:
        self.unsettled -= 1
        if self.wake_sender is not None:
            self.wake_sender()


@attrs.define(eq=False)
class SmscAccount:
    """Segments waiting for one SMSC account, its rate, and its binds' states."""

    name: str
    settings: BindSettings
    handler: Any
    rate: float = 0.0  # submit_sm/s for the whole account, 0 = uncapped
    max_pending: int = 1000  # segments queued here before submit() waits
    config: Any = None  # the owner's settings for this SMSC (routing, encoding), opaque here
    binds: list[BindState] = attrs.field(factory=list)
    # bound connections that may send requests (transmitter, transceiver): for query_sm
    senders: list[Any] = attrs.field(factory=list)
    bucket: TokenBucket = attrs.field(init=False)
    paused_until: float = 0.0
    throttle_streak: int = 0
    throttled_answers: int = 0
    queue_full_answers: int = 0
    # AIMD after ESME_RTHROTTLED: None while the configured rate applies
    adaptive_rate: float | None = None
    accepted: int = 0  # submit_sm accepted, for the rate the SMSC took before it throttled
    _rate_at_throttle: float = 0.0
    _adapt_from: float = 0.0  # time the additive increase starts from
    _adapt_base: float = 0.0
    _accepted_mark: tuple[float, int] = (0.0, 0)
    _accepted_prev: tuple[float, int] = (0.0, 0)
    _pending: collections.deque = attrs.field(factory=collections.deque)
    _retry: list = attrs.field(factory=list)  # heap of (not_before, n, (job, index))
    _n: int = 0
    # several binds (and feeders) wait on one account: parking lots wake them all
    _have_items: trio.lowlevel.ParkingLot = attrs.field(factory=trio.lowlevel.ParkingLot)
    _have_room: trio.lowlevel.ParkingLot = attrs.field(factory=trio.lowlevel.ParkingLot)

    def __attrs_post_init__(self) -> None:
        now = trio.current_time() if _in_trio() else 0.0
        self.bucket = TokenBucket(self.rate, now=now)
        self._accepted_mark = self._accepted_prev = (now, 0)

    def set_rate(self, rate: float) -> None:
        """Change the account's cap (config reload) without touching the binds."""
        self.rate = rate
        self.adaptive_rate = None
        self.bucket = TokenBucket(rate, now=trio.current_time())

    @property
    def effective_rate(self) -> float:
        """submit_sm/s the account sends at now: the adapted rate, else ``rate`` (0 = uncapped)."""
        return self.adaptive_rate if self.adaptive_rate is not None else self.rate

    # -- producer side ------------------------------------------------------------------------

    @property
    def queued(self) -> int:
        return len(self._pending) + len(self._retry)

    async def submit(self, job: SubmitJob) -> None:
        """Queue a message's segments; waits while this account already holds ``max_pending``."""
        while self.queued >= self.max_pending:
            await self._have_room.park()
        for i in range(len(job.segments)):
            self._pending.append((job, i))
        self._have_items.unpark_all()

    def push_front(self, items: Sequence[tuple[SubmitJob, int]]) -> None:
        for item in reversed(items):
            self._pending.appendleft(item)
        self._have_items.unpark_all()

    def retry_later(self, item: tuple[SubmitJob, int], at: float) -> None:
        self._n += 1
        heapq.heappush(self._retry, (at, self._n, item))
        self._have_items.unpark_all()

    async def query(
        self,
        message_id: str,
        *,
        source_addr: str = "",
        source_addr_ton: int = 0,
        source_addr_npi: int = 0,
    ) -> Any:
        """query_sm on a bound sender: its :class:`~adapters.smpp.protocol.QueryResponse`, or
        None when no bind is up or none answered within ``request_timeout``."""
        for conn in list(self.senders):
            try:
                return await conn.query(
                    message_id,
                    source_addr=source_addr,
                    source_addr_ton=source_addr_ton,
                    source_addr_npi=source_addr_npi,
                )
            except (
                trio.TooSlowError,
                trio.BrokenResourceError,
                trio.ClosedResourceError,
                OSError,
                p.LocalProtocolError,
            ):
                continue
        return None

    # -- consumer side (binds) -------------------------------------------------------------------

    def _pop_ready(self, now: float) -> tuple[SubmitJob, int] | None:
        if self._retry and self._retry[0][0] <= now:
            return heapq.heappop(self._retry)[2]
        if self._pending:
            return self._pending.popleft()
        return None

    async def take(self, bind_bucket: TokenBucket, limit: int) -> list[tuple[SubmitJob, int]]:
        """Wait for at least one segment and the tokens to send it; up to ``limit`` without waiting more."""
        while True:
            now = trio.current_time()
            if now - self._accepted_mark[0] >= 1.0:
                self._accepted_prev, self._accepted_mark = self._accepted_mark, (now, self.accepted)
            if self.adaptive_rate is not None:
                self._increase(now)
            if now < self.paused_until:
                await trio.sleep_until(self.paused_until)
                continue
            if not self._pending and not (self._retry and self._retry[0][0] <= now):
                if self._retry:
                    with trio.move_on_at(self._retry[0][0]):
                        await self._have_items.park()
                else:
                    await self._have_items.park()
                continue
            delay = max(self.bucket.delay(now), bind_bucket.delay(now))
            if delay > 0:
                await trio.sleep(delay)
                continue
            items = []
            while (
                len(items) < limit and self.bucket.delay(now) == 0 and bind_bucket.delay(now) == 0
            ):
                item = self._pop_ready(now)
                if item is None:
                    break
                self.bucket.take(now)
                bind_bucket.take(now)
                if not item[0].done:
                    items.append(item)
            if self.queued < self.max_pending:
                self._have_room.unpark_all()
            if items:
                return items

    def throttled(self, item: tuple[SubmitJob, int]) -> float:
        """ESME_RTHROTTLED: pause the account, lower its rate, retry the segment after the pause.

        One episode per pause: answers to segments already in flight during a pause do not
        count again (a burst of them must not collapse the rate). The pause lets the SMSC's
        own rate window drain; it doubles while episodes follow each other without an
        accepted submit_sm in between, and resets on success.
        """
        s = self.settings
        now = trio.current_time()
        if now >= self.paused_until:
            delay = min(
                s.throttle_delay * (2 ** min(self.throttle_streak, 16)), s.throttle_delay_max
            )
            self.throttle_streak += 1
            self.paused_until = now + delay
            self._decrease(now)
        self.retry_later(item, self.paused_until)
        return self.paused_until - now

    def queue_full(self, item: tuple[SubmitJob, int]) -> bool:
        """ESME_RMSGQFUL for this segment's destination: retry it alone after
        ``queue_full_delay``; False once ``queue_full_retries`` are used (the message fails)."""
        job = item[0]
        job.queue_full += 1
        self.queue_full_answers += 1
        if job.queue_full > self.settings.queue_full_retries:
            return False
        self.retry_later(item, trio.current_time() + self.settings.queue_full_delay)
        return True

    def _accepted_rate(self, now: float) -> float:
        """submit_sm/s the SMSC accepted lately: over the last one to two seconds, or since the
        last mark when the account was idle before (an hour-old mark would read as ~0/s)."""
        t, n = self._accepted_prev
        if now - t > 2.5:
            t, n = self._accepted_mark
        return (self.accepted - n) / max(now - t, 0.05)

    def _decrease(self, now: float) -> None:
        current = self.effective_rate
        if current <= 0:  # uncapped: start from what the SMSC accepted lately
            current = self._accepted_rate(now)
        current = max(current, 1.0)
        self._rate_at_throttle = current
        self._adapt_base = max(current * self.settings.throttle_decrease, 0.1)
        self._adapt_from = max(self.paused_until, now)
        self.adaptive_rate = self._adapt_base
        self.bucket.set_rate(self._adapt_base, now)

    def _increase(self, now: float) -> None:
        step = self.settings.throttle_increase * self._rate_at_throttle
        rate = self._adapt_base + step * max(now - self._adapt_from, 0.0)
        limit = self.rate if self.rate > 0 else 2 * self._rate_at_throttle
        if rate >= limit:  # recovered: the configured rate applies again
            self.adaptive_rate = None
            self.bucket.set_rate(self.rate, now)
        elif rate - self.bucket.rate >= 0.01 * rate:  # only changes worth a recompute
            self.adaptive_rate = rate
            self.bucket.set_rate(rate, now)


def _in_trio() -> bool:
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        return False
    return True


def backoff_delays(lo: float, hi: float, rng: random.Random | None = None):
    """Exponential backoff with full jitter: uniform(lo, min(hi, lo * 2**n))."""
    rng = rng or random.Random()
    n = 0
    while True:
        yield rng.uniform(lo, min(hi, lo * (2**n)))
        n = min(n + 1, 30)
