"""The email approval service: a notification per waiting approver, and the replies.

Notifications go through the configured SMTP relay with :mod:`smtplib` in a worker thread
(``trio.to_thread.run_sync`` with a limiter of two connections). Each carries the campaign
summary and a token for that approver and step (:mod:`.token`), issued into a durable table.

A reply counts only if every check passes: within the rate limits, not over the size limit,
a token whose MAC is right, not expired, issued by us and never used before, for the step the
approval is at now; the envelope sender and the From: header are the approver's address in
4A; the approver is enabled and still holds the role (the approval book checks that at the
moment of the decision); the first line says approve or reject (also 同意 / 不同意). A reply
that fails a check is refused with the reason logged; the SMTP answer is the same ``250`` as
for an accepted one, so a sender learns nothing about whether a campaign or approval exists.
"""

from __future__ import annotations

import collections
import secrets
import smtplib
import ssl
import time
from email.message import EmailMessage
from email.utils import make_msgid, parseaddr
from functools import partial
from typing import TYPE_CHECKING, Any

import structlog
import trio

from gateway.approval.book import ApprovalError
from gateway.approval.model import ApprovalEvent, Decision, StepKind
from gateway.store import SqliteWorker, open_sqlite
from plugins.email_approval.server import serve_smtp, tls_context
from plugins.email_approval.token import (
    Claims,
    TokenError,
    decision_word,
    make_token,
    read_reply,
    read_token,
)

if TYPE_CHECKING:
    from plugins.email_approval import EmailApprovalConfig

DB_NAME = "email_approval.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS email_tokens (
    nonce TEXT PRIMARY KEY, approval_id TEXT NOT NULL, step INTEGER NOT NULL,
    account TEXT NOT NULL, issued_at REAL NOT NULL, expires_at REAL NOT NULL, used_at REAL
);
"""
ACCEPTED = "250 2.0.0 OK"  # the answer to every reply that reaches a decision or a refusal
TRY_LATER = "451 4.7.1 Try again later"


class Refused(Exception):
    """A reply that does not count; ``code`` and the message are logged, never sent back."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class EmailApprovalService:
    name = "email_approval"

    def __init__(self, gateway: Any, config: EmailApprovalConfig) -> None:
        self.gateway = gateway
        self.config = config
        self._send_channel, self._receive_channel = trio.open_memory_channel[ApprovalEvent](
            float("inf")
        )
        self._smtp = trio.CapacityLimiter(2)
        self._db: SqliteWorker | None = None
        self._recent: dict[str, collections.deque[float]] = {}
        self.port: int | None = None
        self.sent = 0
        self.already_notified = 0
        self.not_by_email = 0
        self.accepted = 0
        self.refused = 0
        #: refusals by reason code (for ``gatewayctl status`` and tests)
        self.refusals: collections.Counter[str] = collections.Counter()
        self.processed = trio.Event()  # set (and replaced) after each reply, for tests

    def statistics(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "accepted": self.accepted,
            "refused": self.refused,
            "port": self.port,
        }

    # -- lifecycle -----------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        gateway, config = self.gateway, self.config
        book = gateway.approvals
        if book is None:
            raise RuntimeError("the approval book is not open")
        sync = gateway.config.gateway.sqlite_synchronous
        self._db = SqliteWorker(open_sqlite(gateway.state_dir / DB_NAME, synchronous=sync))
        try:
            await self._db.run(lambda c: c.executescript(SCHEMA))
            tls = tls_context(config.tls_cert, config.tls_key) if config.tls_cert else None
            host, _, port = config.listen.rpartition(":")
            async with trio.open_nursery() as nursery:
                self.port = await nursery.start(
                    partial(
                        serve_smtp,
                        self.receive,
                        host=host.strip("[]"),
                        port=int(port),
                        hard_limit=config.max_message_bytes * 2,
                        tls=tls,
                    )
                )
                book.subscribe(self._send_channel.send_nowait)
                for approval in book.pending():
                    self._send_channel.send_nowait(
                        ApprovalEvent(
                            kind="waiting",
                            approval=approval,
                            step=approval.step,
                            approvers=tuple(book.approvers(approval)),
                        )
                    )
                task_status.started()
                async for event in self._receive_channel:
                    if event.kind == "waiting":
                        for account in event.approvers:
                            await self._notify(event, account)
        finally:
            book.unsubscribe(self._send_channel.send_nowait)
            with trio.CancelScope(shield=True):
                await self._db.aclose()

    # -- notifications -------------------------------------------------------------------------

    async def _notify(self, event: ApprovalEvent, account_id: str) -> None:
        log = structlog.get_logger()
        staff, db = self.gateway.staff, self._db
        account = staff.accounts.get(account_id) if staff is not None else None
        if account is None or not account.email or db is None:
            return
        approval, now = event.approval, time.time()
        if approval.steps[event.step].kind is not StepKind.APPROVE:
            # a filing needs its reference, a channel confirmation its figures: not by email
            self.not_by_email += 1
            return
        outstanding = await db.run(
            lambda c: c.execute(
                "SELECT 1 FROM email_tokens WHERE approval_id=? AND step=? AND account=? "
                "AND used_at IS NULL AND expires_at > ?",
                (approval.id, event.step, account_id, now),
            ).fetchone()
        )
        if outstanding is not None:  # already notified (before a restart): no second email
            self.already_notified += 1
            return
        claims = Claims(
            approval=approval.id,
            step=event.step,
            account=account_id,
            expires=int(now + self.config.token_ttl),
            nonce=secrets.token_hex(8),
        )
        token = make_token(self.config.secret.encode(), claims)
        await db.transaction(
            lambda c: c.execute(
                "INSERT INTO email_tokens (nonce, approval_id, step, account, issued_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (claims.nonce, approval.id, event.step, account_id, now, claims.expires),
            )
        )
        message = self._message(event, account.email, token)
        try:
            await trio.to_thread.run_sync(self._send_mail, message, limiter=self._smtp)
        except (OSError, smtplib.SMTPException) as exc:
            log.error(
                "email_approval.send_failed",
                approval=approval.id,
                account=account_id,
                error=str(exc),
            )
            return
        self.sent += 1
        log.info(
            "email_approval.notified", approval=approval.id, account=account_id, step=event.step
        )

    def _message(self, event: ApprovalEvent, to: str, token: str) -> EmailMessage:
        approval = event.approval
        summary = approval.summary
        step = approval.steps[event.step]
        message = EmailMessage()
        message["From"] = self.config.from_address
        message["To"] = to
        message["Reply-To"] = self.config.reply_address or self.config.from_address
        message["Subject"] = (
            f"[Approval {step.kind.value}] {summary.get('name', approval.campaign_id)}"
        )
        message["Message-ID"] = make_msgid(domain="gateway.approvals")
        lines = [
            "Reply to this message with APPROVE (同意) or REJECT (不同意) on the first line.",
            "A rejection should give the reason on the following lines.",
            "",
            f"Campaign: {summary.get('name', '')} ({approval.campaign_id})",
            f"Class: {summary.get('class', '')}   Owner: {summary.get('owner', '')}",
            f"Channels: {', '.join(summary.get('channels', []))}",
            f"Targets: {summary.get('target_count', 0)} ({summary.get('target_group', '')})",
            f"Dates: {summary.get('start_date') or '-'} .. {summary.get('end_date') or '-'}",
            f"Step: {event.step + 1} of {len(approval.steps)} ({step.kind.value})",
        ]
        for channel, text in dict(summary.get("content", {})).items():
            lines.append(f"Content ({channel}): {text}")
        lines += ["", "Test send: not recorded for this campaign.", "", f"Token: {token}", ""]
        message.set_content("\n".join(lines))
        return message

    def _send_mail(self, message: EmailMessage) -> None:
        config = self.config
        with smtplib.SMTP(
            config.relay_host, config.relay_port, timeout=config.relay_timeout
        ) as smtp:
            if config.relay_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if config.relay_user:
                smtp.login(config.relay_user, config.relay_password)
            smtp.send_message(message)

    # -- replies -------------------------------------------------------------------------------

    def _rate_limited(self, key: str, now: float) -> bool:
        window = self._recent.setdefault(key, collections.deque())
        while window and window[0] <= now - 60:
            window.popleft()
        if len(window) >= self.config.rate_per_minute:
            return True
        window.append(now)
        return False

    async def receive(self, peer: str, mail_from: str, data: bytes) -> str:
        """One message from the SMTP island. Returns the SMTP reply (the same for any refusal)."""
        log = structlog.get_logger()
        sender = parseaddr(mail_from)[1].strip().lower()
        now = time.time()
        if self._rate_limited(f"ip:{peer}", now) or self._rate_limited(f"from:{sender}", now):
            log.warning("email_approval.refused", code="rate", reason="rate limit", peer=peer)
            self.refused += 1
            self.refusals["rate"] += 1
            return TRY_LATER
        try:
            account, approval_id = await self._decide(sender, data, now)
        except Refused as exc:
            self.refused += 1
            self.refusals[exc.code] += 1
            log.warning("email_approval.refused", code=exc.code, reason=str(exc), peer=peer)
        else:
            self.accepted += 1
            log.info("email_approval.accepted", approval=approval_id, account=account, peer=peer)
        self.processed.set()
        self.processed = trio.Event()
        return ACCEPTED

    async def _decide(self, sender: str, data: bytes, now: float) -> tuple[str, str]:
        if len(data) > self.config.max_message_bytes:
            raise Refused("oversize", f"message of {len(data)} bytes over the limit")
        try:
            reply = read_reply(data)
        except (ValueError, LookupError) as exc:
            raise Refused("unreadable", f"unreadable message: {exc}") from None
        try:
            claims = read_token(self.config.secret.encode(), reply.text, now)
        except TokenError as exc:
            raise Refused(f"token_{exc}".replace(" ", "_"), f"token: {exc}") from None
        book, staff, db = self.gateway.approvals, self.gateway.staff, self._db
        if book is None or staff is None or db is None:
            raise Refused("closed", "approval book closed")
        row = await db.run(
            lambda c: c.execute(
                "SELECT approval_id, step, account, used_at FROM email_tokens WHERE nonce=?",
                (claims.nonce,),
            ).fetchone()
        )
        if row is None or tuple(row[:3]) != (claims.approval, claims.step, claims.account):
            raise Refused("token_unknown", "token was not issued by this gateway")
        if row[3] is not None:
            raise Refused("token_used", "token already used")
        account = staff.accounts.get(claims.account)
        if account is None or not account.email:
            raise Refused("wrong_sender", "approver unknown in 4A")
        if sender != account.email or reply.sender != account.email:
            raise Refused("wrong_sender", "sender is not the approver's address in 4A")
        approval = book.get(claims.approval)
        if approval is None or approval.step != claims.step or approval.current() is None:
            raise Refused("not_current", "the approval is no longer at this step")
        word = decision_word(reply.first_line)
        if word is None:
            raise Refused("no_decision", "first line is neither approve nor reject")
        # single use: burnt before the decision, whatever its outcome
        used = await db.transaction(
            lambda c: (
                c.execute(
                    "UPDATE email_tokens SET used_at=? WHERE nonce=? AND used_at IS NULL",
                    (now, claims.nonce),
                ).rowcount
            )
        )
        if used != 1:
            raise Refused("token_used", "token already used")
        decision = Decision.APPROVE if word == "approve" else Decision.REJECT
        comment = (
            "by email" if decision is Decision.APPROVE else (reply.first_line[:200] or "by email")
        )
        try:
            await book.decide(
                claims.approval, claims.account, decision, comment=comment, via="email"
            )
        except ApprovalError as exc:
            await staff.audit(
                claims.account,
                f"approvals.{decision.value}",
                claims.approval,
                outcome="refused",
                detail=f"email: {exc}",
            )
            raise Refused("decision_refused", f"decision refused: {exc}") from None
        await staff.audit(
            claims.account, f"approvals.{decision.value}", claims.approval, detail="email"
        )
        return claims.account, claims.approval
