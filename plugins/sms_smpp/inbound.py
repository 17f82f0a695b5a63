"""What the SMSC sends us: delivery receipts (matched to contacts) and MO messages.

Mixed into :class:`plugins.sms_smpp.channel.SmsChannel` (it uses the channel's queue, accounts,
statistics and gateway). A receipt names the SMSC's message id; the outbox's persisted map
turns it into our contact, across binds and restarts. A receipt that overtakes the recording of
its own submit answer is kept (bounded) and applied when the submit is recorded.
"""

from __future__ import annotations

import time
from typing import Any

import structlog

from adapters.smpp import protocol as p
from adapters.smpp.messages import Concat, decode_user_data
from adapters.smpp.receipt import ReceiptParseError, receipt_from_fields
from gateway.model import MoMessage


class InboundMixin:
    """deliver_sm handling for the SMS channel."""

    name: str
    accounts: dict
    stats: dict
    gateway: Any
    _queue: Any
    _orphans: Any
    _mo: Any
    _bind_account: dict

    async def on_deliver(self, event: p.DeliverSm, bind: str) -> int:
        if event.is_receipt:
            return await self._on_receipt(event, self._bind_account.get(bind, ""))
        return self._on_mo(event)

    async def _on_receipt(self, event: p.DeliverSm, account: str) -> int:
        log = structlog.get_logger().bind(plugin="sms_smpp", channel=self.name)
        try:
            receipt = receipt_from_fields(
                event.short_message, event.receipted_message_id, event.message_state
            )
        except ReceiptParseError as exc:
            log.warning("sms.receipt_unreadable", error=str(exc))
            return p.ESME_ROK  # the SMSC would resend the same unreadable text forever
        state = receipt.state
        if state == "submitted":
            return p.ESME_ROK  # intermediate (ENROUTE, ACCEPTD)
        key = f"{account}/{self._receipt_id(account, receipt.message_id)}"
        if not await self._apply_receipt(key, receipt, event.source_addr or None):
            # Not (yet) known: the submit answer may still be on its way to the database, or on
            # another bind. Keep it a while; recording the submit applies it.
            now = time.monotonic()
            while self._orphans and (
                len(self._orphans) >= 10_000 or now - next(iter(self._orphans.values()))[2] > 300
            ):
                self._orphans.popitem(last=False)
                self.stats["receipts_unmatched"] += 1
            self._orphans[key] = (receipt, event.source_addr or None, now)
            log.info("sms.receipt_unmatched", message_id=receipt.message_id, smsc=account)
        return p.ESME_ROK

    def _submit_id(self, account: str, message_id: str) -> str:
        """A submit answer's id in the form receipts are matched in (see ``receipt_id``)."""
        smsc = self.accounts.get(account)
        mode = smsc.config.receipt_id if smsc is not None else "as_is"
        try:
            if mode == "dec_to_hex":  # hex ids: compare without case or leading zeros
                return f"{int(message_id, 16):x}"
            if mode == "hex_to_dec":
                return str(int(message_id))
        except ValueError:
            pass
        return message_id

    def _receipt_id(self, account: str, message_id: str) -> str:
        """The receipt's id in the form of the submit answer's (SMSCs differ: hex vs decimal)."""
        smsc = self.accounts.get(account)
        mode = smsc.config.receipt_id if smsc is not None else "as_is"
        try:
            if mode == "hex_to_dec":
                return str(int(message_id, 16))
            if mode == "dec_to_hex":
                return f"{int(message_id):x}"
        except ValueError:
            pass
        return message_id

    async def _apply_receipt(self, key: str, receipt: Any, msisdn: str | None) -> bool:
        # the receipt, the final state and its reconciliation: one transaction (the outbox's)
        result = await self._queue.settle_receipt(
            key,
            receipt.state,
            error=f"{receipt.stat} err:{receipt.err}",
            msisdn=msisdn,
            receipt_id=receipt.message_id,
        )
        if result is None:
            return False
        self.stats["receipts"] += 1
        return True

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
