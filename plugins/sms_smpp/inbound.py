"""What the SMSC sends us: delivery receipts (matched to contacts) and MO messages.

Mixed into :class:`plugins.sms_smpp.channel.SmsChannel` (it uses the channel's queue, accounts,
statistics and gateway). A receipt names the SMSC's message id; the outbox's persisted map
turns it into our contact, across binds and restarts. A receipt that overtakes the recording of
its own submit answer is kept durably by the outbox before it is acknowledged, and applied in
the transaction that records the submit answer.

A receipt that does not come: with ``receipt_timeout`` set, a submitted message that asked for
a receipt is watched; when the timeout passes, the SMSC is asked with query_sm (``query_sm =
true``) and a final answer is applied like a receipt; otherwise the message is reported
``unknown``. A receipt that arrives later still settles it. The watch is in memory and bounded
(``MAX_AWAITED``): after a restart, messages submitted before it are not watched (their
receipts still settle them).
"""

from __future__ import annotations

import heapq
import time
from typing import Any

import attrs
import structlog
import trio

from adapters.smpp import protocol as p
from adapters.smpp.messages import Concat, decode_user_data
from adapters.smpp.receipt import (
    MESSAGE_STATE_TO_STAT,
    Receipt,
    ReceiptParseError,
    comparable_id,
    receipt_from_fields,
)
from gateway.model import Delivery, DeliveryState, MoMessage

MAX_AWAITED = 1_000_000  # messages watched for a late receipt (about 200 bytes each)
QUERIES_IN_FLIGHT = 32


@attrs.frozen(kw_only=True, slots=True)
class Awaited:
    """A submitted message whose receipt is awaited until ``receipt_timeout``."""

    message: Any  # the OutboxMessage
    account: str
    message_ids: tuple[str, ...]  # as the submit answers gave them
    source: tuple[str, int, int]  # source_addr, ton, npi: query_sm must repeat them
    timeout: float
    deadline: float


def fast_receipt(
    short_message: bytes, receipted_message_id: bytes | str | None, message_state: int | None
) -> Receipt | None:
    """``receipt_from_fields`` for the common receipt (both TLVs, and the text's ``err`` in
    lower case, one word, before ``text:``) without the general text parser (a third of a
    receipt's cost); None for anything else (then the general one decides). Property-tested
    equal to ``receipt_from_fields`` where it answers."""
    if not receipted_message_id or not message_state or not isinstance(short_message, bytes):
        return None
    stat = MESSAGE_STATE_TO_STAT.get(message_state)
    if stat is None:
        return None
    mid = (
        receipted_message_id.decode("latin-1")
        if isinstance(receipted_message_id, bytes)
        else receipted_message_id
    )
    head, sep, _text = short_message.partition(b" text:")
    if not sep:
        return None
    at = head.rfind(b" err:")
    if at < 0 or head.lower().count(b"err:") != 1:
        return None
    err = head[at + 5 :]
    if not err.isalnum():
        return None
    return Receipt(message_id=mid.rstrip("\x00"), stat=stat, err=err.decode("latin-1"))


class InboundMixin:
    """deliver_sm handling for the SMS channel."""

    name: str
    accounts: dict
    stats: dict
    gateway: Any
    _queue: Any
    _mo: Any
    _bind_account: dict
    _awaited: dict
    _deadlines: list
    _unknown: Any
    _watch_wakeup: Any

    async def on_deliver(self, event: p.DeliverSm, bind: str) -> int:
        return (await self.on_deliver_many([event], bind))[0]

    async def on_deliver_many(self, events: list[p.DeliverSm], bind: str) -> list[int]:
        """The deliver_sm a bind read together: MO messages one by one, the receipts settled
        together (one writer op, one commit); a status per event for its deliver_sm_resp.

        A receipt is acknowledged only once it is durable; if its settling fails it gets
        ESME_RX_T_APPN and the SMSC sends it again later."""
        account = self._bind_account.get(bind, "")
        statuses = [p.ESME_ROK] * len(events)
        receipts: list[tuple[int, str, Any, str | None]] = []
        for i, event in enumerate(events):
            if not event.is_receipt:
                statuses[i] = self._on_mo(event)
                continue
            receipt = self._read_receipt(event)
            if receipt is None or receipt.state == "submitted":
                continue  # unreadable (logged), or intermediate (ENROUTE, ACCEPTD)
            key = f"{account}/{self._receipt_id(account, receipt.message_id)}"
            receipts.append((i, key, receipt, event.source_addr or None))
        if not receipts:
            return statuses
        try:
            applied = await self._apply_receipts([(k, r, m) for _i, k, r, m in receipts])
        except Exception as exc:  # the commit failed (disk full): only the receipts wait
            applied = [exc] * len(receipts)
        for (i, _key, receipt, _msisdn), outcome in zip(receipts, applied, strict=True):
            if isinstance(outcome, Exception):
                statuses[i] = p.ESME_RX_T_APPN
                structlog.get_logger().error(
                    "sms.receipt_failed",
                    plugin="sms_smpp",
                    channel=self.name,
                    message_id=receipt.message_id,
                    error=repr(outcome),
                )
            elif not outcome:
                # Not (yet) known: the submit answer may still be on its way to the database,
                # or on another bind. The outbox kept it durably before this acknowledgement;
                # recording the submit answer applies it.
                self.stats["receipts"] += 1
                self.stats["receipts_early"] += 1
                structlog.get_logger().info(
                    "sms.receipt_unmatched",
                    plugin="sms_smpp",
                    channel=self.name,
                    message_id=receipt.message_id,
                    smsc=account,
                )
        return statuses

    def _read_receipt(self, event: p.DeliverSm) -> Any:
        """The receipt in a deliver_sm, or None (logged) for one that cannot be read: it is
        acknowledged all the same (the SMSC would resend the same unreadable text forever)."""
        try:
            return fast_receipt(
                event.short_message, event.receipted_message_id, event.message_state
            ) or receipt_from_fields(
                event.short_message, event.receipted_message_id, event.message_state
            )
        except ReceiptParseError as exc:
            structlog.get_logger().warning(
                "sms.receipt_unreadable", plugin="sms_smpp", channel=self.name, error=str(exc)
            )
            return None

    def _submit_id(self, account: str, message_id: str) -> str:
        """A submit answer's id in the form receipts are matched in (see ``receipt_id``)."""
        return comparable_id(message_id, self._id_form(account), in_receipt=False)

    def _receipt_id(self, account: str, message_id: str) -> str:
        """A receipt's id in the same form (SMSCs differ: hex vs decimal)."""
        return comparable_id(message_id, self._id_form(account), in_receipt=True)

    def _id_form(self, account: str) -> str:
        smsc = self.accounts.get(account)
        return smsc.config.receipt_id if smsc is not None else "as_is"

    async def _apply_receipt(self, key: str, receipt: Any, msisdn: str | None) -> bool:
        (outcome,) = await self._apply_receipts([(key, receipt, msisdn)])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def _apply_receipts(self, items: list[tuple[str, Any, str | None]]) -> list[Any]:
        """Settle receipts ``(key, receipt, msisdn)``: per receipt True (applied), False (its
        submit answer is not recorded yet: kept as an early receipt) or the exception that
        failed it. Each receipt, its final state and reconciliation are in one transaction
        (the outbox's), the receipts of one call in the same one."""
        results = await self._queue.settle_receipts(
            [
                (
                    key,
                    receipt.state,
                    f"{receipt.stat} err:{receipt.err}",
                    msisdn,
                    receipt.message_id,
                )
                for key, receipt, msisdn in items
            ]
        )
        out: list[Any] = []
        for result in results:
            if result is None or isinstance(result, Exception):
                out.append(False if result is None else result)
                continue
            self.stats["receipts"] += 1
            contact_id, final = result
            if final is not None:
                if self._awaited.pop(contact_id, None) is None and self._unknown.pop(
                    contact_id, None
                ):
                    self.stats["receipts_after_unknown"] += 1
            out.append(True)
        return out

    def _on_mo(self, event: p.DeliverSm) -> int:
        log = structlog.get_logger().bind(plugin="sms_smpp", channel=self.name)
        try:
            concat, part = decode_user_data(event.esm_class, event.data_coding, event.user_data)
            if concat is None and event.sar is not None:
                concat = Concat(*event.sar)
            whole = (
                part
                if concat is None
                else self._mo.add(
                    (event.source_addr, event.destination_addr), concat, part, time.monotonic()
                )
            )
        except (ValueError, TypeError) as exc:  # TypeError: parts mixing text and binary
            # acknowledged all the same: the SMSC would resend the same broken part forever
            self.stats["mo_unreadable"] += 1
            log.warning("sms.mo_unreadable", error=str(exc), msisdn=event.source_addr)
            return p.ESME_ROK
        self.stats["mo_parts"] += 1
        if whole is None:
            return p.ESME_ROK
        text = whole if isinstance(whole, str) else whole.decode("latin-1")
        self.stats["mo"] += 1
        # the text is the subscriber's: its length only; the numbers are masked by the logger
        log.info(
            "sms.mo_received",
            msisdn=event.source_addr,
            destination_addr=event.destination_addr,
            chars=len(text),
            parts=concat.total if concat is not None else 1,
        )
        self.gateway.report_mo(
            MoMessage(
                msisdn=event.source_addr,
                destination=event.destination_addr,
                text=text,
                channel=self.name,
                received_at=time.time(),
            )
        )
        return p.ESME_ROK

    # -- receipts that do not come ----------------------------------------------------------------

    def _await_receipt(self, job: Any, message_ids: list[str]) -> None:
        """Watch a submitted message for its receipt, when its SMSC has a ``receipt_timeout``."""
        smsc = self.accounts.get(job.context_account)
        if smsc is None or smsc.config.receipt_timeout <= 0:
            return
        fields = job.segments[0]
        if not int(fields.get("registered_delivery") or 0) & 0x03:
            return  # no receipt asked for
        if len(self._awaited) >= MAX_AWAITED:
            self.stats["receipt_watch_full"] = self.stats.get("receipt_watch_full", 0) + 1
            return
        timeout = smsc.config.receipt_timeout
        deadline = trio.current_time() + timeout
        self._awaited[job.key] = Awaited(
            message=job.context,
            account=job.context_account,
            message_ids=tuple(message_ids),
            source=(
                str(fields.get("source_addr") or ""),
                int(fields.get("source_addr_ton") or 0),
                int(fields.get("source_addr_npi") or 0),
            ),
            timeout=timeout,
            deadline=deadline,
        )
        if not self._deadlines or deadline < self._deadlines[0][0]:
            self._watch_wakeup.set()
        heapq.heappush(self._deadlines, (deadline, job.key))
        if len(self._deadlines) > 2 * len(self._awaited) + 10_000:
            # most receipts came: drop their deadlines rather than hold them until they pass
            self._deadlines = [(w.deadline, key) for key, w in self._awaited.items()]
            heapq.heapify(self._deadlines)

    async def _watch_receipts(self) -> None:
        """Hand each message whose receipt is overdue to :meth:`_receipt_overdue`."""
        slots = trio.Semaphore(QUERIES_IN_FLIGHT)
        async with trio.open_nursery() as nursery:
            while True:
                if not self._deadlines or self._deadlines[0][0] > trio.current_time():
                    self._watch_wakeup = trio.Event()
                    at = self._deadlines[0][0] if self._deadlines else float("inf")
                    with trio.move_on_at(at):
                        await self._watch_wakeup.wait()
                    continue
                _deadline, key = heapq.heappop(self._deadlines)
                awaited = self._awaited.get(key)
                if awaited is None:
                    continue  # its receipt came
                await slots.acquire()
                nursery.start_soon(self._receipt_overdue, key, awaited, slots)

    async def _receipt_overdue(self, key: str, awaited: Awaited, slots: trio.Semaphore) -> None:
        log = structlog.get_logger().bind(plugin="sms_smpp", channel=self.name)
        try:
            smsc = self.accounts.get(awaited.account)
            if smsc is not None and smsc.config.query_sm:
                await self._query_states(smsc, awaited)
                if key not in self._awaited:
                    return  # the SMSC's answers settled it
            if self._awaited.pop(key, None) is None:
                return  # a receipt came meanwhile
            self.stats["receipt_timeouts"] += 1
            self._unknown[key] = True
            while len(self._unknown) > 100_000:
                self._unknown.popitem(last=False)
            log.warning(
                "sms.receipt_timeout",
                contact_id=key,
                smsc=awaited.account,
                msisdn=awaited.message.msisdn,
                timeout_s=awaited.timeout,
            )
            await self.gateway.report_delivery(
                Delivery(
                    contact_id=key,
                    channel=self.name,
                    state=DeliveryState.UNKNOWN,
                    at=time.time(),
                    message_id=awaited.message_ids[0] if awaited.message_ids else None,
                    error=f"no receipt within {awaited.timeout:g}s",
                    msisdn=awaited.message.msisdn,
                )
            )
        except Exception as exc:  # one failing report must not stop the watch
            log.error("sms.receipt_timeout_failed", contact_id=key, error=repr(exc))
        finally:
            slots.release()

    async def _query_states(self, smsc: Any, awaited: Awaited) -> None:
        """query_sm each part; a final state is applied like a receipt. Stops at the first
        part the SMSC cannot tell about (not final, refused, no answer)."""
        source, ton, npi = awaited.source
        for message_id in awaited.message_ids:
            answer = await smsc.query(
                message_id, source_addr=source, source_addr_ton=ton, source_addr_npi=npi
            )
            if answer is None or answer.message_state is None:
                return
            stat = MESSAGE_STATE_TO_STAT.get(answer.message_state, "UNKNOWN")
            receipt = Receipt(message_id=message_id, stat=stat, err=str(answer.error_code or ""))
            if receipt.state in ("submitted", "unknown"):
                return
            self.stats["receipts_queried"] += 1
            key = f"{awaited.account}/{self._submit_id(awaited.account, message_id)}"
            await self._apply_receipt(key, receipt, awaited.message.msisdn)
