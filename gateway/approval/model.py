"""Values of the approval workflow."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import attrs

from gateway.staff.model import Permission


class StepKind(enum.StrEnum):
    APPROVE = "approve"  # an organisation level approves (with counter-signing: several must)
    FILING = "filing"  # content templates were filed with the regulator's desk ("报备")
    CHANNEL = "channel"  # the channel owner confirms target count and dates ("渠道确认")


class ApprovalState(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    RETURNED = "returned"  # sent back to the author with comments
    WITHDRAWN = "withdrawn"  # superseded by a newer definition of the same campaign


class Decision(enum.StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    SEND_BACK = "send_back"


PERMISSION_OF: Mapping[StepKind, Permission] = {
    StepKind.APPROVE: Permission.APPROVE_CAMPAIGN,
    StepKind.FILING: Permission.FILE_TEMPLATE,
    StepKind.CHANNEL: Permission.CONFIRM_CHANNEL,
}


@attrs.frozen(kw_only=True)
class Step:
    kind: StepKind
    org: str = ""  # the organisation whose approvers sign ("" = any holder of the permission)
    level: str = ""
    required: int = 1  # signatures needed ("会签": counter-signing when more than one)

    @property
    def permission(self) -> Permission:
        return PERMISSION_OF[self.kind]

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "org": self.org,
            "level": self.level,
            "required": self.required,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Step:
        return cls(
            kind=StepKind(raw["kind"]),
            org=raw.get("org", ""),
            level=raw.get("level", ""),
            required=int(raw.get("required", 1)),
        )


@attrs.frozen(kw_only=True)
class Sign:
    """One decision on one step."""

    step: int
    actor: str  # who decided
    on_behalf: str = ""  # the delegating approver, when ``actor`` is a delegate ("委派")
    decision: Decision
    comment: str = ""
    detail: Mapping[str, Any] = attrs.field(factory=dict)
    via: str = ""  # ctl, oa, email, http
    at: float = 0.0

    @property
    def slot(self) -> str:
        """The approver whose signature this is."""
        return self.on_behalf or self.actor


@attrs.define
class Approval:
    id: str
    campaign_id: str
    kind: str  # "start" (a new campaign) or "change" (a new definition of an active one)
    definition_hash: str
    raw: str  # the definition as JSON, with its origin, to apply it once approved
    steps: tuple[Step, ...]
    summary: Mapping[str, Any]
    step: int = 0
    state: ApprovalState = ApprovalState.PENDING
    created_at: float = 0.0
    updated_at: float = 0.0
    signs: list[Sign] = attrs.Factory(list)
    #: (step, delegating approver) -> delegate
    delegations: dict[tuple[int, str], str] = attrs.Factory(dict)

    def current(self) -> Step | None:
        if self.state is not ApprovalState.PENDING or self.step >= len(self.steps):
            return None
        return self.steps[self.step]

    def signed(self, step: int) -> set[str]:
        return {s.slot for s in self.signs if s.step == step and s.decision is Decision.APPROVE}

    def to_json(self) -> dict[str, Any]:
        current = self.current()
        return {
            "id": self.id,
            "campaign": self.campaign_id,
            "kind": self.kind,
            "state": self.state.value,
            "step": self.step,
            "steps": [s.to_json() for s in self.steps],
            "current": current.to_json() if current else None,
            "summary": dict(self.summary),
            "signs": [
                {
                    "step": s.step,
                    "actor": s.actor,
                    "on_behalf": s.on_behalf,
                    "decision": s.decision.value,
                    "comment": s.comment,
                    "via": s.via,
                    "at": s.at,
                }
                for s in self.signs
            ],
            "delegations": [
                {"step": step, "from": who, "to": to}
                for (step, who), to in self.delegations.items()
            ],
            "created_at": self.created_at,
        }


@attrs.frozen(kw_only=True)
class ApprovalEvent:
    """What watchers (OA, email) hear: a step now waits for ``approvers``, or it closed."""

    kind: str  # "waiting" or "closed"
    approval: Approval
    step: int
    approvers: tuple[str, ...] = ()
