"""The order service: acceptances in, BOSS orders out, result SMS back; and status lookups.

One supervised :class:`~gateway.contracts.Service`. ``gateway_offer_accepted`` (a synchronous
observer) only puts the acceptance on a memory channel; this service writes it to the order
book, then places due orders one round at a time. A BOSS that is down costs nothing but a
later round: the order stays ``pending`` with its next try time, durably, so it survives a
restart; the pipeline never waits for the BOSS. The request carries the contact id as the
order id, so a crash between the BOSS's answer and our record of it repeats the same order id
(the BOSS is expected to refuse a duplicate order id, as order systems do).

Status lookups (``boss_status`` trigger condition, :mod:`.status`) are queued the same way and
answered into a TTL cache; a lookup the BOSS cannot answer now is simply not cached.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import Any

import attrs
import structlog
import trio

from gateway.model import Acceptance, ContactRequest, Outcome
from gateway.numbers import mask
from gateway.store import SqliteWorker, open_sqlite
from plugins.boss_orders.client import BossClient, BossRejected, BossUnavailable
from plugins.boss_orders.config import BossOrdersConfig
from plugins.boss_orders.status import StatusCache
from plugins.boss_orders.store import Order, OrderBook

DB_NAME = "boss_orders.db"
ROUND = 32  # orders taken per round
INTAKE = 10_000  # acceptances waiting for the order book


@attrs.define(eq=False)
class OrderService:
    gateway: Any
    config: BossOrdersConfig
    clock: Callable[[], float] = time.time
    name: str = "boss_orders"
    client: BossClient | None = None
    book: OrderBook | None = None
    status_cache: StatusCache = attrs.field(factory=StatusCache)
    dropped: int = 0
    placed: int = 0
    failed: int = 0
    _send: Any = None
    _receive: Any = None
    _lookups_send: Any = None
    _lookups_receive: Any = None
    _wake: trio.Event = attrs.field(factory=trio.Event)
    _in_flight: trio.CapacityLimiter = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._send, self._receive = trio.open_memory_channel[Acceptance](INTAKE)
        self._lookups_send, self._lookups_receive = trio.open_memory_channel[str](INTAKE)
        self._in_flight = trio.CapacityLimiter(self.config.concurrency)
        self.status_cache.ttl = self.config.status_cache_ttl
        self.status_cache.request = self.request_status

    # -- intake (synchronous, from hooks) ----------------------------------------------------

    def accept(self, acceptance: Acceptance) -> None:
        """Queue an acceptance for the order book; never blocks (a full queue is logged)."""
        if acceptance.campaign_id not in self.config.products:
            return  # this campaign orders nothing
        try:
            self._send.send_nowait(acceptance)
        except trio.WouldBlock:
            self.dropped += 1
            structlog.get_logger().error(
                "boss.order_dropped", contact=acceptance.contact_id, reason="intake full"
            )

    def request_status(self, msisdn: str) -> bool:
        try:
            self._lookups_send.send_nowait(msisdn)
            return True
        except trio.WouldBlock:
            return False

    # -- the service -------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        worker = SqliteWorker(open_sqlite(self.gateway.state_dir / DB_NAME))
        self.book = OrderBook(worker)
        self.client = BossClient(self.config)
        try:
            await self.book.create()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._intake)
                nursery.start_soon(self._lookups)
                task_status.started()
                await self._orders()
        finally:
            with trio.CancelScope(shield=True):
                await self.client.aclose()
                await worker.aclose()

    async def _intake(self) -> None:
        assert self.book is not None
        async for first in self._receive:
            batch = [first]
            while True:
                try:
                    batch.append(self._receive.receive_nowait())
                except trio.WouldBlock:
                    break
            items = [(a, self.config.products[a.campaign_id]) for a in batch]
            new = await self.book.add(items, self.clock())
            structlog.get_logger().info("boss.orders_accepted", new=new, received=len(batch))
            self._wake.set()

    async def _lookups(self) -> None:
        op = self.config.status
        async for msisdn in self._lookups_receive:
            if op is None or self.client is None:
                continue
            try:
                fields = await self.client.call(op, {"msisdn": msisdn})
            except (BossUnavailable, BossRejected) as exc:
                self.status_cache.forget_pending(msisdn)
                structlog.get_logger().warning(
                    "boss.status_failed", msisdn=mask(msisdn), reason=str(exc)
                )
                continue
            ok = fields.get("code") in op.ok_codes
            self.status_cache.put(msisdn, fields if ok else None, trio.current_time())

    async def _orders(self) -> None:
        book = self.book
        assert book is not None
        while True:
            due = await book.due(self.clock(), ROUND)
            async with trio.open_nursery() as nursery:
                for order in due:
                    nursery.start_soon(self._work_limited, order)
            if len(due) == ROUND:
                continue
            self._wake = trio.Event()
            nxt = await book.next_due()
            wait = math.inf if nxt is None else max(0.05, nxt - self.clock())
            with trio.move_on_after(min(wait, self.config.order_retry_max)):
                await self._wake.wait()

    async def _work_limited(self, order: Order) -> None:
        async with self._in_flight:
            await self._work(order)

    async def _work(self, order: Order) -> None:
        assert self.book is not None and self.client is not None
        op = self.config.order
        assert op is not None
        log = structlog.get_logger().bind(contact=order.contact_id, campaign=order.campaign_id)
        if order.state == "pending":
            values = {
                "contact_id": order.contact_id,
                "msisdn": order.msisdn,
                "campaign_id": order.campaign_id,
                "product": order.product,
                "answer": order.answer,
            }
            try:
                fields = await self.client.call(op, values)
            except BossUnavailable as exc:
                attempts = order.attempts + 1
                pause = min(
                    self.config.order_retry_max,
                    max(self.config.backoff, 0.1) * 2 ** min(attempts, 20),
                )
                pause = max(pause, self.client.breaker.retry_in(trio.current_time()))
                await self.book.update(
                    order.contact_id,
                    self.clock(),
                    attempts=attempts,
                    next_at=self.clock() + pause,
                    last_error=str(exc),
                )
                log.warning("boss.order_pending", attempts=attempts, reason=str(exc))
                return
            except BossRejected as exc:
                fields = {"code": "rejected", "message": str(exc)}
            state = "placed" if fields.get("code") in op.ok_codes else "failed"
            await self.book.update(
                order.contact_id,
                self.clock(),
                state=state,
                attempts=order.attempts + 1,
                result=json.dumps(fields, ensure_ascii=False),
                last_error=None,
            )
            if state == "placed":
                self.placed += 1
            else:
                self.failed += 1
            log.info(
                "boss.order_placed" if state == "placed" else "boss.order_failed",
                code=fields.get("code"),
            )
            order = attrs.evolve(order, state=state, result=json.dumps(fields))
        await self._result_sms(order)

    async def _result_sms(self, order: Order) -> None:
        """Tell the subscriber the order's result: a service-class SMS through contact control."""
        assert self.book is not None
        sms = self.config.result_sms
        template = sms.placed if order.state == "placed" else sms.failed
        control, outbox = self.gateway.contact_control, self.gateway.outbox
        if template is None or control is None or outbox is None:
            await self.book.update(order.contact_id, self.clock(), sms="skipped")
            return
        fields = {
            "contact_id": order.contact_id,
            "msisdn": order.msisdn,
            "campaign_id": order.campaign_id,
            "product": order.product,
            "answer": order.answer,
            **json.loads(order.result),
        }
        request = ContactRequest(
            contact_id=f"order-result:{order.contact_id}",
            msisdn=order.msisdn,
            campaign_id=order.campaign_id,
            channel=sms.channel,
            campaign_class=sms.campaign_class,
            realtime=True,
            defer_if_quiet=True,
            content={"text": template.render(fields.get)},
            created_at=self.clock(),
            trigger="order_result",
        )
        (decision,) = await control.decide_and_queue([request], outbox)
        state = {Outcome.ALLOWED: "queued", Outcome.DEFERRED: "queued"}.get(
            decision.outcome, "suppressed"
        )
        await self.book.update(order.contact_id, self.clock(), sms=state)

    async def drain(self) -> None:
        """Write acceptances still in memory to the order book before the service stops."""
        if self.book is None:
            return
        batch = []
        while True:
            try:
                batch.append(self._receive.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                break
        if batch:
            await self.book.add(
                [(a, self.config.products[a.campaign_id]) for a in batch], self.clock()
            )

    def statistics(self) -> dict[str, Any]:
        stats: dict[str, Any] = {
            "placed": self.placed,
            "failed": self.failed,
            "dropped": self.dropped,
            "status_cache": len(self.status_cache),
        }
        if self.client is not None:
            stats.update(self.client.statistics())
        return stats
