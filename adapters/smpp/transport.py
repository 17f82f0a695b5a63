"""The Trio side of SMPP: binds to one SMSC account, each a connection with its session.

An :class:`SmscAccount` holds the segments waiting for this SMSC and the account's token
bucket; its binds (``run_bind``) take segments from it while their window has room, so several
binds share the contracted rate. Each bind connects (TCP or TLS), binds, then runs a reader, a
sender, an enquire_link keep-alive and a request-timeout watcher. When the connection fails,
every unanswered submit_sm goes back to the front of the account's queue (a possible duplicate
at the SMSC, counted as ``resent``) and the bind reconnects with exponential backoff and jitter.

Nothing here logs: progress and trouble go to the :class:`SmppHandler` (``on_event``), which
the channel plugin turns into logs and metrics. On cancellation a bind unbinds politely
(shielded, time-boxed); segments still unanswered go back to the account's queue.
"""

from __future__ import annotations

from typing import Any

import attrs
import trio

from adapters.smpp import protocol as p
from adapters.smpp.account import (
    BindSettings,
    BindState,
    SmppHandler,
    SmscAccount,
    SubmitJob,
    backoff_delays,
)
from adapters.smpp.ratelimit import TokenBucket

__all__ = [
    "BindRefused",
    "BindSettings",
    "BindState",
    "LinkDead",
    "SmppHandler",
    "SmscAccount",
    "SubmitJob",
    "backoff_delays",
    "run_bind",
]


class BindRefused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"bind refused: {p.status_name(status)}")
        self.status = status


class LinkDead(Exception):
    """enquire_link or bind got no answer in time."""


async def open_stream(settings: BindSettings) -> Any:
    if settings.ssl_context is not None:
        return await trio.open_ssl_over_tcp_stream(
            settings.host, settings.port, ssl_context=settings.ssl_context, https_compatible=False
        )
    return await trio.open_tcp_stream(settings.host, settings.port)


async def run_bind(
    account: SmscAccount, state: BindState, *, task_status=trio.TASK_STATUS_IGNORED
) -> None:
    """Keep one bind (mode ``transceiver``, ``transmitter`` or ``receiver``) up until cancelled."""
    s = account.settings
    h = account.handler
    delays = backoff_delays(s.reconnect_min, s.reconnect_max)
    started = False
    while True:
        state.state = "connecting"
        try:
            stream = await open_stream(s)
        except OSError as exc:
            state.last_error = str(exc)
            h.on_event("smpp.connect_failed", smsc=account.name, bind=state.name, error=str(exc))
        else:
            conn = _BindConnection(account, state, stream)
            try:
                await conn.run(task_status if not started else trio.TASK_STATUS_IGNORED)
                started = True
                delays = backoff_delays(
                    s.reconnect_min, s.reconnect_max
                )  # clean unbind: start over
            except BaseException as raised:
                exc = connection_failure(raised)
                if exc is None:
                    raise
                started = started or conn.was_bound
                state.last_error = f"{type(exc).__name__}: {exc}"
                h.on_event(
                    "smpp.disconnected", smsc=account.name, bind=state.name, error=state.last_error
                )
                if conn.was_bound:
                    delays = backoff_delays(s.reconnect_min, s.reconnect_max)
        if not started:
            task_status.started()  # the core must not wait for an SMSC that is down
            started = True
        state.state = "backoff"
        state.reconnects += 1
        await trio.sleep(next(delays))


@attrs.define(eq=False)
class _Reply:
    """Where the reader puts the answer to one query_sm."""

    done: trio.Event = attrs.field(factory=trio.Event)
    value: Any = None


CONNECTION_ERRORS = (
    OSError,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
    p.RemoteProtocolError,
    BindRefused,
    LinkDead,
)


def connection_failure(exc: BaseException) -> Exception | None:
    """The connection error behind ``exc`` (possibly inside exception groups), or None when
    anything else is in there (a bug, or Cancelled: those must propagate)."""
    if isinstance(exc, BaseExceptionGroup):
        leaves = []
        stack = [exc]
        while stack:
            e = stack.pop()
            if isinstance(e, BaseExceptionGroup):
                stack.extend(e.exceptions)
            else:
                leaves.append(e)
        if leaves and all(isinstance(e, CONNECTION_ERRORS) for e in leaves):
            return leaves[0]  # type: ignore[return-value]
        return None
    return exc if isinstance(exc, CONNECTION_ERRORS) else None


@attrs.define(eq=False)
class _BindConnection:
    account: SmscAccount
    state: BindState
    stream: Any
    session: p.EsmeSession = attrs.field(factory=p.EsmeSession)
    was_bound: bool = False
    _room: trio.Event = attrs.field(factory=trio.Event)
    _send_lock: trio.Lock = attrs.field(factory=trio.Lock)
    _taken: list = attrs.field(factory=list)  # taken from the account, not yet on the wire
    _deliver_send: Any = None
    _last_rx: float = 0.0

    async def query(
        self, message_id: str, *, source_addr: str, source_addr_ton: int, source_addr_npi: int
    ) -> p.QueryResponse:
        """Send a query_sm and wait for its answer (``request_timeout``: TooSlowError)."""
        reply = _Reply()
        self.session.send_query(
            message_id,
            source_addr=source_addr,
            source_addr_ton=source_addr_ton,
            source_addr_npi=source_addr_npi,
            context=reply,
            now=trio.current_time(),
        )
        await self.flush()
        with trio.fail_after(self.account.settings.request_timeout):
            await reply.done.wait()
        return reply.value

    def _finish(self, job: SubmitJob) -> None:
        state = self.state
        state.unsettled += 1
        job._on_settled = state.settled
        self.account.handler.on_result(job)

    async def flush(self) -> None:
        data = self.session.data_to_send()
        if data:
            async with self._send_lock:
                await self.stream.send_all(data)

    async def run(self, task_status: Any) -> None:
        s = self.account.settings
        h = self.account.handler
        mode = self.state.mode
        try:
            self.session.send_bind(
                mode,
                system_id=s.system_id,
                password=s.password,
                system_type=s.system_type,
                now=trio.current_time(),
            )
            await self.flush()
            with trio.fail_after(s.bind_timeout):
                event = await self._next_event()
                while not isinstance(event, p.BindResponse):
                    event = await self._next_event()
            if event.status != p.ESME_ROK:
                h.on_event(
                    "smpp.bind_failed",
                    smsc=self.account.name,
                    bind=self.state.name,
                    status=p.status_name(event.status),
                )
                raise BindRefused(event.status)
            self.was_bound = True
            self.state.state = "bound"
            self.state.window = s.window
            h.on_event(
                "smpp.bind_ok",
                smsc=self.account.name,
                bind=self.state.name,
                mode=mode,
                smsc_system_id=event.system_id,
            )
            task_status.started()
            if mode != "receiver":
                self.account.senders.append(self)
            send, receive = trio.open_memory_channel(4096)
            self._deliver_send = send
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._keepalive)
                nursery.start_soon(self._watch_timeouts)
                nursery.start_soon(self._deliver_worker, receive)
                if mode != "receiver":
                    nursery.start_soon(self._sender)
                await self._reader()
                nursery.cancel_scope.cancel()
        except trio.TooSlowError:
            raise LinkDead("no bind_resp in time") from None
        finally:
            if self in self.account.senders:
                self.account.senders.remove(self)
            with trio.CancelScope(shield=True):
                await self._close()

    async def _close(self) -> None:
        """Unbind (time-boxed), then put every unanswered segment back or hand it over."""
        h = self.account.handler
        if self.session.state == "bound":
            with trio.move_on_after(2.0):
                try:
                    self.session.send_unbind(now=trio.current_time())
                    await self.flush()
                    while True:
                        event = await self._next_event()
                        if isinstance(event, p.UnbindResponse):
                            h.on_event("smpp.unbound", smsc=self.account.name, bind=self.state.name)
                            break
                        if isinstance(event, p.SubmitResponse):
                            self._on_submit_response(event)
                except (
                    OSError,
                    trio.BrokenResourceError,
                    trio.ClosedResourceError,
                    p.RemoteProtocolError,
                ):
                    pass
        unanswered = [
            pd.context for pd in self.session.abandon_outstanding() if pd.command == "submit_sm"
        ]
        for job, _i in unanswered:
            job.resent += 1
        if self._taken:
            self.account.push_front(self._taken)
            self._taken = []
        if unanswered:
            self.account.push_front(unanswered)
            h.on_event(
                "smpp.requeued",
                smsc=self.account.name,
                bind=self.state.name,
                segments=len(unanswered),
            )
        self.state.outstanding = 0
        self.state.state = "idle"
        await trio.aclose_forcefully(self.stream)

    async def _next_event(self) -> Any:
        while True:
            event = self.session.next_event()
            if event is not None:
                return event
            await self.flush()  # automatic answers (enquire_link_resp, generic_nack)
            data = await self.stream.receive_some(262144)
            if not data:
                raise trio.BrokenResourceError("connection closed by the SMSC")
            self._last_rx = trio.current_time()
            self.session.receive_data(data)

    async def _reader(self) -> None:
        h = self.account.handler
        while True:
            event = await self._next_event()
            if isinstance(event, p.SubmitResponse):
                self._on_submit_response(event)
                # handle every response already buffered before waking the sender
                continue
            if isinstance(event, p.DeliverSm):
                try:  # no yield per receipt: the worker takes what is buffered together
                    self._deliver_send.send_nowait(event)
                except trio.WouldBlock:  # the worker is 4,096 behind: wait for it
                    await self._deliver_send.send(event)
            elif isinstance(event, p.QueryResponse):
                event.context.value = event
                event.context.done.set()
            elif isinstance(event, p.Garbage):
                h.on_event(
                    "smpp.garbage",
                    smsc=self.account.name,
                    bind=self.state.name,
                    reason=event.reason,
                )
                await self.flush()
            elif isinstance(event, p.UnbindRequested):
                await self.flush()
                h.on_event("smpp.unbind_by_smsc", smsc=self.account.name, bind=self.state.name)
                raise trio.BrokenResourceError("SMSC unbound")

    def _on_submit_response(self, event: p.SubmitResponse) -> None:
        account = self.account
        h = account.handler
        job, index = event.context
        self.state.outstanding = self.session.submits_outstanding
        self._room.set()
        if job.done:
            return
        status = event.status
        if status == p.ESME_ROK:
            account.throttle_streak = 0
            account.accepted += 1
            self.state.submitted += 1
            job.message_ids[index] = event.message_id
            job.remaining -= 1
            if job.remaining == 0:
                job.done = True
                self._finish(job)
            return
        if status == p.ESME_RMSGQFUL:
            if account.queue_full((job, index)):
                h.on_event(
                    "smpp.queue_full_retry",
                    smsc=account.name,
                    key=job.key,
                    destination_addr=job.segments[index].get("destination_addr", ""),
                    attempt=job.queue_full,
                )
                return
            job.status = status
            job.done = True
            self._finish(job)
            return
        if status in p.THROTTLE_STATUSES:
            streak = account.throttle_streak
            delay = account.throttled((job, index))
            account.throttled_answers += 1
            if account.throttle_streak != streak:  # one event per pause, not per answer
                h.on_event(
                    "smpp.throttled",
                    smsc=account.name,
                    bind=self.state.name,
                    status=p.status_name(status),
                    pause_s=round(delay, 3),
                    rate_per_s=round(account.effective_rate, 2),
                )
            return
        if status in p.TRANSIENT_STATUSES and job.attempts + 1 < account.settings.max_attempts:
            job.attempts += 1
            account.retry_later(
                (job, index), trio.current_time() + account.settings.retry_delay * job.attempts
            )
            h.on_event(
                "smpp.submit_retry", smsc=account.name, key=job.key, status=p.status_name(status)
            )
            return
        job.status = status
        job.done = True
        self._finish(job)

    async def _sender(self) -> None:
        s = self.account.settings
        bind_bucket = TokenBucket(s.bind_rate, now=trio.current_time())
        h = self.account.handler
        while True:
            room = s.window - self.session.submits_outstanding - self.state.unsettled
            if room <= 0:
                self._room = trio.Event()
                self.state.wake_sender = self._room.set
                await self._room.wait()
                continue
            self._taken = await self.account.take(bind_bucket, room)
            new_jobs = []
            for job, _i in self._taken:
                if not job.marked:
                    job.marked = True
                    new_jobs.append(job)
            if new_jobs:
                await h.before_send(new_jobs)
                # the handler marks jobs it may not send (cancelled, lease lost) as done
                self._taken = [item for item in self._taken if not item[0].done]
            now = trio.current_time()
            for item in self._taken:
                job = item[0]
                if job.done:
                    continue  # an earlier segment of it could not be encoded
                try:
                    self.session.send_submit(job.segments[item[1]], context=item, now=now)
                except Exception as exc:  # a message smpplib cannot encode must not kill the bind
                    h.on_event(
                        "smpp.encode_failed", smsc=self.account.name, key=job.key, error=repr(exc)
                    )
                    job.status = p.ESME_RINVPARLEN
                    job.done = True
                    self._finish(job)
            self._taken = []
            self.state.outstanding = self.session.submits_outstanding
            await self.flush()

    async def _deliver_worker(self, receive: Any) -> None:
        """Hand deliver_sm to the handler (a batch concurrently), then acknowledge them."""
        async with receive:
            while True:
                batch = [await receive.receive()]
                while len(batch) < 256:
                    try:
                        batch.append(receive.receive_nowait())
                    except trio.WouldBlock:
                        break
                statuses = [p.ESME_RX_T_APPN] * len(batch)
                h = self.account.handler
                many = getattr(h, "on_deliver_many", None)
                if many is not None:  # the handler takes them together (one commit, one task)
                    try:
                        statuses = list(await many(batch, self.state.name))
                    except Exception as exc:  # a handler bug must not kill the bind
                        h.on_event("smpp.deliver_failed", smsc=self.account.name, error=repr(exc))
                else:
                    async with trio.open_nursery() as nursery:
                        for i, event in enumerate(batch):
                            nursery.start_soon(self._deliver_one, statuses, i, event)
                for event, status in zip(batch, statuses, strict=True):
                    self.session.send_deliver_sm_resp(event.sequence, status)
                await self.flush()

    async def _deliver_one(self, statuses: list[int], i: int, event: p.DeliverSm) -> None:
        h = self.account.handler
        try:
            statuses[i] = await h.on_deliver(event, self.state.name)
        except Exception as exc:  # a handler bug must not kill the bind; the SMSC retries later
            h.on_event("smpp.deliver_failed", smsc=self.account.name, error=repr(exc))

    async def _keepalive(self) -> None:
        s = self.account.settings
        if s.enquire_link_interval <= 0:
            return
        while True:
            await trio.sleep(s.enquire_link_interval)
            self.session.send_enquire_link(now=trio.current_time())
            await self.flush()

    async def _watch_timeouts(self) -> None:
        s = self.account.settings
        h = self.account.handler
        tick = min(1.0, s.request_timeout / 4)
        while True:
            await trio.sleep(tick)
            expired = self.session.pop_timed_out(trio.current_time(), s.request_timeout)
            if not expired:
                continue
            segments = [pd.context for pd in expired if pd.command == "submit_sm"]
            # a query_sm's caller has its own deadline; anything else unanswered: link dead
            if any(pd.command not in ("submit_sm", "query_sm") for pd in expired):
                raise LinkDead("enquire_link or unbind got no answer")
            if not segments:
                continue
            for job, index in segments:
                job.resent += 1
                self.account.retry_later((job, index), trio.current_time())
            self._room.set()
            h.on_event(
                "smpp.submit_timeout",
                smsc=self.account.name,
                bind=self.state.name,
                segments=len(segments),
            )
