"""What a Trio SMPP client shares across binds: settings, jobs, the account queue and its rate.

An :class:`SmscAccount` holds the segments waiting for one SMSC account and the account's token
bucket; its binds (:func:`adapters.smpp.transport.run_bind`) take segments from it while their
window has room, so several binds share the contracted rate. Throttling answers pause the whole
account. The owner (the channel plugin) implements :class:`SmppHandler`.
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
    throttle_delay: float = 1.0  # first back-off after ESME_RTHROTTLED / ESME_RMSGQFUL
    throttle_delay_max: float = 30.0
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
        """A deliver_sm (receipt or MO); return the command_status of the deliver_sm_resp."""

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
    bucket: TokenBucket = attrs.field(init=False)
    paused_until: float = 0.0
    throttle_streak: int = 0
    throttled_answers: int = 0
    _pending: collections.deque = attrs.field(factory=collections.deque)
    _retry: list = attrs.field(factory=list)  # heap of (not_before, n, (job, index))
    _n: int = 0
    # several binds (and feeders) wait on one account: parking lots wake them all
    _have_items: trio.lowlevel.ParkingLot = attrs.field(factory=trio.lowlevel.ParkingLot)
    _have_room: trio.lowlevel.ParkingLot = attrs.field(factory=trio.lowlevel.ParkingLot)

    def __attrs_post_init__(self) -> None:
        self.bucket = TokenBucket(self.rate, now=trio.current_time() if _in_trio() else 0.0)

    def set_rate(self, rate: float) -> None:
        """Change the account's cap (config reload) without touching the binds."""
        self.rate = rate
        self.bucket = TokenBucket(rate, now=trio.current_time())

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
        """The SMSC said slow down: pause the whole account, retry the segment after it.

        The pause doubles with each throttled answer that comes *after* a pause ended (answers
        to segments already in flight during a pause do not count), and resets on success.
        """
        s = self.settings
        now = trio.current_time()
        if now >= self.paused_until:
            delay = min(
                s.throttle_delay * (2 ** min(self.throttle_streak, 16)), s.throttle_delay_max
            )
            self.throttle_streak += 1
            self.paused_until = now + delay
        self.retry_later(item, self.paused_until)
        return self.paused_until - now


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
