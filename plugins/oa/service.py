"""The OA service: pushes and withdraws to-dos, receives decisions, sends SMS reminders.

Pushes are JSON POSTs to ``todo_url`` (``{"action": "create" | "withdraw", "todo_id", ...}``)
made with httpx (on Trio through its anyio backend), retried with doubling backoff. Every
push and every callback carries ``X-OA-Timestamp`` (Unix seconds) and ``X-OA-Signature``, the
hex HMAC-SHA256 of ``timestamp + "." + body`` under the shared secret: OA can check that a
to-do came from the gateway, and the gateway refuses a callback that OA did not sign, or
signed too long ago. A decision through OA is checked by the approval book like any other
(the account must still be enabled and hold the role) and audited with ``via = "oa"``.

The SMS reminder is a contact like any other: it goes through contact control and the outbox
(``decide_and_queue``) with the campaign class ``reminder_class`` (``service`` by default),
so do-not-disturb lists still apply and the class's exemptions (``[contact.exemptions]``)
are those of a service message.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import time
from typing import TYPE_CHECKING, Any

import httpx
import structlog
import trio

from gateway.approval.book import ApprovalError
from gateway.approval.model import ApprovalEvent, Decision
from gateway.contracts import HttpRequest, HttpResponse
from gateway.model import ContactRequest

if TYPE_CHECKING:
    from plugins.oa import OaConfig

DECISIONS = {
    "approve": Decision.APPROVE,
    "agree": Decision.APPROVE,
    "reject": Decision.REJECT,
    "send_back": Decision.SEND_BACK,
    "return": Decision.SEND_BACK,
}


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def _json(status: int, data: dict[str, Any]) -> HttpResponse:
    return HttpResponse(
        status=status,
        headers={"content-type": "application/json"},
        body=json.dumps(data, ensure_ascii=False).encode(),
    )


class OaService:
    name = "oa"

    def __init__(self, gateway: Any, config: OaConfig) -> None:
        self.gateway = gateway
        self.config = config
        self._send, self._receive = trio.open_memory_channel[ApprovalEvent](math.inf)
        #: open to-dos: todo_id -> (approval id, step)
        self.todos: dict[str, tuple[str, int]] = {}
        self.pushed = 0
        self.failed = 0
        self.reminders = 0
        self.callbacks = 0

    def statistics(self) -> dict[str, Any]:
        return {
            "open_todos": len(self.todos),
            "pushed": self.pushed,
            "push_failed": self.failed,
            "reminders": self.reminders,
            "callbacks": self.callbacks,
        }

    def _watch(self, event: ApprovalEvent) -> None:
        self._send.send_nowait(event)  # unbounded: a watcher must never block the book

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        book = self.gateway.approvals
        if book is None:
            raise RuntimeError("the approval book is not open")
        book.subscribe(self._watch)
        try:
            for approval in book.pending():  # after a restart: OA treats a known todo_id as a no-op
                self._watch(
                    ApprovalEvent(
                        kind="waiting",
                        approval=approval,
                        step=approval.step,
                        approvers=tuple(book.approvers(approval)),
                    )
                )
            async with httpx.AsyncClient(timeout=self.config.timeout) as client:
                task_status.started()
                async for event in self._receive:
                    await self._handle(client, event)
        finally:
            book.unsubscribe(self._watch)

    async def _handle(self, client: httpx.AsyncClient, event: ApprovalEvent) -> None:
        approval = event.approval
        if event.kind == "waiting":
            for account in event.approvers:
                todo_id = f"{approval.id}:{event.step}:{account}"
                link = self.config.link.format(approval=approval.id, campaign=approval.campaign_id)
                payload = {
                    "action": "create",
                    "todo_id": todo_id,
                    "account": account,
                    "approval": approval.id,
                    "campaign": approval.campaign_id,
                    "step": approval.steps[event.step].kind.value,
                    "title": f"Approve campaign {approval.summary.get('name', approval.campaign_id)}",
                    "summary": dict(approval.summary),
                    "link": link,
                }
                if await self._push(client, payload):
                    self.todos[todo_id] = (approval.id, event.step)
                if self.config.sms_reminder:
                    await self._remind(account, approval.id, event.step, approval, link)
            return
        closed = [
            todo_id
            for todo_id, (aid, step) in self.todos.items()
            if aid == approval.id
            and step == event.step
            and (not event.approvers or todo_id.rsplit(":", 1)[1] in event.approvers)
        ]
        for todo_id in closed:
            if await self._push(client, {"action": "withdraw", "todo_id": todo_id}):
                del self.todos[todo_id]

    async def _push(self, client: httpx.AsyncClient, payload: dict[str, Any]) -> bool:
        log = structlog.get_logger()
        body = json.dumps(payload, ensure_ascii=False, default=str).encode()
        delay = 1.0
        for attempt in range(1, self.config.attempts + 1):
            stamp = str(int(time.time()))
            headers = {
                "content-type": "application/json",
                "x-oa-timestamp": stamp,
                "x-oa-signature": sign(self.config.secret, stamp, body),
            }
            try:
                response = await client.post(self.config.todo_url, content=body, headers=headers)
                if response.status_code < 300:
                    self.pushed += 1
                    log.info("oa.pushed", action=payload["action"], todo=payload["todo_id"])
                    return True
                reason = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                reason = f"{type(exc).__name__}: {exc}"
            log.warning("oa.push_failed", todo=payload["todo_id"], attempt=attempt, reason=reason)
            if attempt < self.config.attempts:
                await trio.sleep(delay)
                delay = min(delay * 2, 60.0)
        self.failed += 1
        return False

    async def _remind(
        self, account_id: str, approval_id: str, step: int, approval: Any, link: str
    ) -> None:
        gateway, log = self.gateway, structlog.get_logger()
        staff = gateway.staff
        account = staff.accounts.get(account_id) if staff is not None else None
        if account is None or not account.mobile:
            return
        if gateway.contact_control is None or gateway.outbox is None:
            log.warning("oa.reminder_skipped", approval=approval_id, reason="no contact control")
            return
        text = self.config.reminder_text.format(
            name=approval.summary.get("name", ""), campaign=approval.campaign_id, link=link
        )
        request = ContactRequest(
            contact_id=f"approval-reminder:{approval_id}:{step}:{account_id}",
            msisdn=account.mobile,
            campaign_id="approval-reminders",
            channel=self.config.sms_channel,
            campaign_class=self.config.reminder_class,
            priority=100,
            content={"text": text},
            created_at=time.time(),
            trigger="approval",
        )
        (decision,) = await gateway.contact_control.decide_and_queue([request], gateway.outbox)
        self.reminders += decision.allowed
        log.info(
            "oa.reminder",
            approval=approval_id,
            account=account_id,
            outcome=decision.outcome.value,
            reason=decision.reason,
        )

    async def callback(self, request: HttpRequest) -> HttpResponse:
        """OA's decision: ``{"approval", "account", "decision", "comment"}``, signed."""
        log = structlog.get_logger()
        stamp = request.headers.get("x-oa-timestamp", "")
        given = request.headers.get("x-oa-signature", "")
        try:
            age = abs(time.time() - int(stamp))
        except ValueError:
            age = math.inf
        expected = sign(self.config.secret, stamp, request.body)
        if age > self.config.max_skew or not hmac.compare_digest(given, expected):
            log.warning("oa.callback_refused", reason="bad or stale signature")
            return _json(401, {"ok": False, "error": "signature"})
        try:
            data = json.loads(request.body)
            approval_id = str(data["approval"])
            account = str(data["account"])
            decision = DECISIONS[str(data["decision"]).lower()]
            comment = str(data.get("comment", ""))
            detail = data.get("detail") or {}  # the channel step's count and dates
            if not isinstance(detail, dict):
                raise TypeError("detail")
        except (ValueError, KeyError, TypeError):
            return _json(400, {"ok": False, "error": "expected approval, account, decision"})
        book, staff = self.gateway.approvals, self.gateway.staff
        self.callbacks += 1
        try:
            approval = await book.decide(
                approval_id, account, decision, comment=comment, detail=detail, via="oa"
            )
        except ApprovalError as exc:
            await staff.audit(
                account,
                f"approvals.{decision.value}",
                approval_id,
                outcome="refused",
                detail=f"oa: {exc}",
            )
            log.warning(
                "oa.decision_refused", approval=approval_id, account=account, reason=str(exc)
            )
            return _json(409, {"ok": False, "error": str(exc)})
        await staff.audit(
            account, f"approvals.{decision.value}", approval_id, detail=f"oa: {comment}"
        )
        return _json(200, {"ok": True, "state": approval.state.value})
