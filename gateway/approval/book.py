"""The approval book: every approval, its signatures and delegations, in SQLite and in memory.

One row per approval (its chain of steps, the current step, the state), one row per decision
and one per delegation, all written before the call returns, so approval state survives a
restart exactly (:meth:`ApprovalBook.open` reloads it). Who may decide is asked of the staff
directory at the moment of the decision: an account disabled in 4A, or one that lost the role,
can no longer sign, whichever face (gatewayctl, OA, email) it comes through.

Watchers (:meth:`ApprovalBook.subscribe`) hear when a step starts waiting and when it closes;
they must return at once (queue the work).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import structlog

from gateway.approval.model import (
    Approval,
    ApprovalEvent,
    ApprovalState,
    Decision,
    Sign,
    Step,
    StepKind,
)
from gateway.errors import GatewayError
from gateway.staff.directory import StaffDirectory
from gateway.staff.model import PermissionDenied
from gateway.store import SqliteWorker

SCHEMA = """
CREATE TABLE IF NOT EXISTS approvals (
    id TEXT PRIMARY KEY, campaign_id TEXT NOT NULL, kind TEXT NOT NULL,
    definition_hash TEXT NOT NULL, raw TEXT NOT NULL, steps TEXT NOT NULL, summary TEXT NOT NULL,
    step INTEGER NOT NULL, state TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS approvals_by_campaign ON approvals (campaign_id, created_at);
CREATE TABLE IF NOT EXISTS approval_signs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, approval_id TEXT NOT NULL, step INTEGER NOT NULL,
    actor TEXT NOT NULL, on_behalf TEXT NOT NULL, decision TEXT NOT NULL, comment TEXT NOT NULL,
    detail TEXT NOT NULL, via TEXT NOT NULL, at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS approval_delegations (
    approval_id TEXT NOT NULL, step INTEGER NOT NULL, from_account TEXT NOT NULL,
    to_account TEXT NOT NULL, at REAL NOT NULL, PRIMARY KEY (approval_id, step, from_account)
);
"""


class ApprovalError(GatewayError):
    """Raised when a decision or delegation is refused; the message says why."""


def definition_hash(raw: Mapping[str, Any]) -> str:
    text = json.dumps(raw, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _date(value: Any) -> str | None:
    """A confirmed date as the summary holds it ("-" or empty: no date)."""
    return None if value in (None, "", "-") else str(value)


Watcher = Callable[[ApprovalEvent], None]


class ApprovalBook:
    """Open with :meth:`open`; decisions go through :meth:`decide` and :meth:`delegate`."""

    def __init__(self, worker: SqliteWorker, directory: StaffDirectory) -> None:
        self._worker = worker
        self.directory = directory
        self.approvals: dict[str, Approval] = {}
        self._watchers: list[Watcher] = []
        #: called with an approval that reached a final state (the component applies it)
        self.on_final: list[Callable[[Approval], Any]] = []
        #: the campaigns store's gate (``gateway.approval.gate.ApprovalGate``) when approval
        #: is required, else None
        self.gate: Any = None

    @classmethod
    async def open(cls, worker: SqliteWorker, directory: StaffDirectory) -> ApprovalBook:
        book = cls(worker, directory)

        def load(conn: Any) -> tuple[list[Any], list[Any], list[Any]]:
            conn.executescript(SCHEMA)
            return (
                conn.execute(
                    "SELECT id, campaign_id, kind, definition_hash, raw, steps, summary, step, "
                    "state, created_at, updated_at FROM approvals ORDER BY created_at"
                ).fetchall(),
                conn.execute(
                    "SELECT approval_id, step, actor, on_behalf, decision, comment, detail, via, at "
                    "FROM approval_signs ORDER BY seq"
                ).fetchall(),
                conn.execute(
                    "SELECT approval_id, step, from_account, to_account FROM approval_delegations"
                ).fetchall(),
            )

        rows, signs, delegations = await worker.run(load)
        for aid, cid, kind, dhash, raw, steps, summary, step, state, created, updated in rows:
            book.approvals[aid] = Approval(
                id=aid,
                campaign_id=cid,
                kind=kind,
                definition_hash=dhash,
                raw=raw,
                steps=tuple(Step.from_json(s) for s in json.loads(steps)),
                summary=json.loads(summary),
                step=step,
                state=ApprovalState(state),
                created_at=created,
                updated_at=updated,
            )
        for aid, step, actor, on_behalf, decision, comment, detail, via, at in signs:
            book.approvals[aid].signs.append(
                Sign(
                    step=step,
                    actor=actor,
                    on_behalf=on_behalf,
                    decision=Decision(decision),
                    comment=comment,
                    detail=json.loads(detail),
                    via=via,
                    at=at,
                )
            )
        for aid, step, who, to in delegations:
            book.approvals[aid].delegations[(step, who)] = to
        return book

    # -- watchers ------------------------------------------------------------------------------

    def subscribe(self, watcher: Watcher) -> None:
        """``watcher(event)`` for every step that starts waiting or closes (return at once)."""
        self._watchers.append(watcher)

    def unsubscribe(self, watcher: Watcher) -> None:
        """Stop telling ``watcher`` (a service that stops or restarts)."""
        if watcher in self._watchers:
            self._watchers.remove(watcher)

    def _emit(self, event: ApprovalEvent) -> None:
        for watcher in self._watchers:
            try:
                watcher(event)
            except Exception as exc:
                structlog.get_logger().error(
                    "approval.watcher_failed", approval=event.approval.id, error=repr(exc)
                )

    def _waiting(self, approval: Approval) -> None:
        if approval.current() is not None:
            self._emit(
                ApprovalEvent(
                    kind="waiting",
                    approval=approval,
                    step=approval.step,
                    approvers=tuple(self.approvers(approval)),
                )
            )

    # -- reading -------------------------------------------------------------------------------

    def get(self, approval_id: str) -> Approval | None:
        return self.approvals.get(approval_id)

    def pending(self) -> list[Approval]:
        return [a for a in self.approvals.values() if a.state is ApprovalState.PENDING]

    def history(self, campaign_id: str | None = None) -> list[Approval]:
        return [
            a
            for a in self.approvals.values()
            if campaign_id is None or a.campaign_id == campaign_id
        ]

    def find(self, campaign_id: str, dhash: str) -> list[Approval]:
        return [
            a
            for a in self.approvals.values()
            if a.campaign_id == campaign_id and a.definition_hash == dhash
        ]

    def is_approved(self, campaign_id: str, dhash: str) -> bool:
        """True when this exact definition of the campaign went through its whole chain."""
        return any(a.state is ApprovalState.APPROVED for a in self.find(campaign_id, dhash))

    def approvers(self, approval: Approval) -> list[str]:
        """Accounts that may sign the current step now (delegates in place of their delegators)."""
        step = approval.current()
        if step is None:
            return []
        owner = str(approval.summary.get("owner", ""))
        signed = approval.signed(approval.step)
        out = []
        for account in self.directory.holders(step.permission, org=step.org or None):
            if account.id == owner or account.id in signed:
                continue
            delegate = approval.delegations.get((approval.step, account.id))
            if delegate is not None:
                target = self.directory.accounts.get(delegate)
                if target is not None and target.enabled:
                    out.append(delegate)
                continue
            out.append(account.id)
        return sorted(set(out))

    def may_decide(self, approval: Approval, actor: str) -> str:
        """The approver whose slot ``actor`` fills (itself or its delegator); ApprovalError if none."""
        step = approval.current()
        if step is None:
            raise ApprovalError(f"approval {approval.id} is {approval.state.value}, not waiting")
        if actor == approval.summary.get("owner"):
            raise ApprovalError("the campaign owner cannot approve their own campaign")
        account = self.directory.accounts.get(actor)
        if account is None or not account.enabled:
            raise ApprovalError(f"staff account {actor!r} is unknown or disabled in 4A")
        signed = approval.signed(approval.step)
        for (step_no, who), to in approval.delegations.items():
            if step_no == approval.step and to == actor and who not in signed:
                try:  # a delegate signs for an approver who still holds the role
                    self._require_on_step(who, step)
                except ApprovalError:
                    continue
                return who
        self._require_on_step(actor, step)
        if (approval.step, actor) in approval.delegations:
            raise ApprovalError(
                f"{actor} delegated this step to {approval.delegations[(approval.step, actor)]}"
            )
        if actor in signed:
            raise ApprovalError(f"{actor} already signed this step")
        return actor

    def _require_on_step(self, account_id: str, step: Step) -> None:
        try:
            account = self.directory.require(account_id, step.permission)
        except PermissionDenied as exc:
            raise ApprovalError(str(exc)) from None
        if step.org and self.directory.unit_of(account.org) != step.org:
            raise ApprovalError(f"{account_id} is not an approver of organisation {step.org}")

    # -- writing -------------------------------------------------------------------------------

    async def open_approval(
        self,
        *,
        campaign_id: str,
        kind: str,
        definition: Mapping[str, Any],
        origin: str,
        steps: Iterable[Step],
        summary: Mapping[str, Any],
    ) -> Approval:
        """Open an approval of this definition (or return the open or approved one for it)."""
        dhash = definition_hash(definition)
        for existing in self.find(campaign_id, dhash):
            if existing.state in (ApprovalState.PENDING, ApprovalState.APPROVED):
                return existing
        now = time.time()
        approval = Approval(
            id=f"ap-{int(now)}-{secrets.token_hex(3)}",
            campaign_id=campaign_id,
            kind=kind,
            definition_hash=dhash,
            raw=json.dumps(
                {"definition": definition, "origin": origin},
                sort_keys=True,
                ensure_ascii=False,
                default=str,
            ),
            steps=tuple(steps),
            summary=dict(summary),
            created_at=now,
            updated_at=now,
        )
        if not approval.steps:
            approval.state = ApprovalState.APPROVED

        def write(conn: Any) -> None:
            conn.execute(
                "INSERT INTO approvals (id, campaign_id, kind, definition_hash, raw, steps, summary, "
                "step, state, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    approval.id,
                    campaign_id,
                    kind,
                    dhash,
                    approval.raw,
                    json.dumps([s.to_json() for s in approval.steps]),
                    json.dumps(approval.summary, ensure_ascii=False, default=str),
                    0,
                    approval.state.value,
                    now,
                    now,
                ),
            )

        superseded = [
            a
            for a in self.approvals.values()
            if a.campaign_id == campaign_id and a.state is ApprovalState.PENDING
        ]

        def write_all(conn: Any) -> None:
            write(conn)
            for old in superseded:  # approvers must not sign a definition that is gone
                conn.execute(
                    "UPDATE approvals SET state=?, updated_at=? WHERE id=?",
                    (ApprovalState.WITHDRAWN.value, now, old.id),
                )

        await self._worker.transaction(write_all)
        self.approvals[approval.id] = approval
        for old in superseded:
            old.state, old.updated_at = ApprovalState.WITHDRAWN, now
            structlog.get_logger().info(
                "approval.withdrawn", approval=old.id, campaign=campaign_id, by=approval.id
            )
            self._emit(ApprovalEvent(kind="closed", approval=old, step=old.step))
        structlog.get_logger().info(
            "approval.opened",
            approval=approval.id,
            campaign=campaign_id,
            kind=kind,
            steps=[s.kind.value + (f":{s.org}" if s.org else "") for s in approval.steps],
        )
        self._waiting(approval)
        return approval

    async def decide(
        self,
        approval_id: str,
        actor: str,
        decision: Decision,
        *,
        comment: str = "",
        detail: Mapping[str, Any] | None = None,
        via: str = "ctl",
    ) -> Approval:
        """Record one decision. ApprovalError when ``actor`` may not decide this step now."""
        approval = self.approvals.get(approval_id)
        if approval is None:
            raise ApprovalError(f"no approval {approval_id!r}")
        slot = self.may_decide(approval, actor)
        step_no = approval.step
        step = approval.steps[step_no]
        detail = dict(detail or {})
        if decision is Decision.APPROVE and step.kind is StepKind.CHANNEL:
            self._check_channel_confirmation(approval, detail)
        if decision is Decision.APPROVE and step.kind is StepKind.FILING and not detail.get("ref"):
            raise ApprovalError("a filing needs the regulator's reference (--ref)")
        if decision is not Decision.APPROVE and not comment:
            raise ApprovalError(f"{decision.value} needs a comment saying why")
        now = time.time()
        sign = Sign(
            step=step_no,
            actor=actor,
            on_behalf="" if slot == actor else slot,
            decision=decision,
            comment=comment,
            detail=detail,
            via=via,
            at=now,
        )
        new_step, new_state = step_no, approval.state
        if decision is Decision.REJECT:
            new_state = ApprovalState.REJECTED
        elif decision is Decision.SEND_BACK:
            new_state = ApprovalState.RETURNED
        elif len(approval.signed(step_no) | {slot}) >= step.required:
            new_step = step_no + 1
            if new_step >= len(approval.steps):
                new_state = ApprovalState.APPROVED

        def write(conn: Any) -> None:
            conn.execute(
                "INSERT INTO approval_signs (approval_id, step, actor, on_behalf, decision, comment, "
                "detail, via, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    approval_id,
                    step_no,
                    actor,
                    sign.on_behalf,
                    decision.value,
                    comment,
                    json.dumps(detail, ensure_ascii=False, default=str),
                    via,
                    now,
                ),
            )
            conn.execute(
                "UPDATE approvals SET step=?, state=?, updated_at=? WHERE id=?",
                (new_step, new_state.value, now, approval_id),
            )

        await self._worker.transaction(write)
        before = set(self.approvers(approval))
        approval.signs.append(sign)
        approval.step, approval.state, approval.updated_at = new_step, new_state, now
        structlog.get_logger().info(
            "approval.decided",
            approval=approval_id,
            campaign=approval.campaign_id,
            step=step_no,
            actor=actor,
            on_behalf=sign.on_behalf or None,
            decision=decision.value,
            via=via,
            state=new_state.value,
        )
        if new_step != step_no or new_state is not ApprovalState.PENDING:
            self._emit(ApprovalEvent(kind="closed", approval=approval, step=step_no))
            self._waiting(approval)
        else:  # counter-signing goes on: the signer's to-do closes, the others still wait
            self._emit(
                ApprovalEvent(
                    kind="closed",
                    approval=approval,
                    step=step_no,
                    approvers=tuple(sorted(before - set(self.approvers(approval)))),
                )
            )
        if new_state is not ApprovalState.PENDING:
            for callback in self.on_final:
                await callback(approval)
        return approval

    def _check_channel_confirmation(self, approval: Approval, detail: Mapping[str, Any]) -> None:
        """The channel owner confirms the figures the approvers saw, or the step refuses."""
        want_count = approval.summary.get("target_count")
        want_dates = (approval.summary.get("start_date"), approval.summary.get("end_date"))
        try:
            count = int(detail.get("count", -1))
        except (TypeError, ValueError):
            count = -1
        if count != want_count:
            raise ApprovalError(
                f"the confirmed target count ({detail.get('count')}) differs from the campaign's ({want_count})"
            )
        dates = (_date(detail.get("start_date")), _date(detail.get("end_date")))
        if dates != want_dates:
            raise ApprovalError(
                f"the confirmed dates {dates[0]}..{dates[1]} differ from the campaign's {want_dates[0]}..{want_dates[1]}"
            )

    async def delegate(
        self, approval_id: str, actor: str, to: str, *, via: str = "ctl"
    ) -> Approval:
        """``actor`` (an approver of the current step) hands its signature to ``to``."""
        approval = self.approvals.get(approval_id)
        if approval is None:
            raise ApprovalError(f"no approval {approval_id!r}")
        slot = self.may_decide(approval, actor)
        if slot != actor:
            raise ApprovalError("a delegate cannot delegate further")
        target = self.directory.accounts.get(to)
        if target is None or not target.enabled:
            raise ApprovalError(f"staff account {to!r} is unknown or disabled in 4A")
        if to == actor or to == approval.summary.get("owner"):
            raise ApprovalError(f"cannot delegate to {to}")
        now = time.time()
        await self._worker.transaction(
            lambda c: c.execute(
                "INSERT OR REPLACE INTO approval_delegations (approval_id, step, from_account, "
                "to_account, at) VALUES (?, ?, ?, ?, ?)",
                (approval_id, approval.step, actor, to, now),
            )
        )
        approval.delegations[(approval.step, actor)] = to
        structlog.get_logger().info(
            "approval.delegated", approval=approval_id, step=approval.step, by=actor, to=to, via=via
        )
        self._emit(
            ApprovalEvent(kind="closed", approval=approval, step=approval.step, approvers=(actor,))
        )
        self._emit(
            ApprovalEvent(kind="waiting", approval=approval, step=approval.step, approvers=(to,))
        )
        return approval
