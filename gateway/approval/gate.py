"""The campaigns store's gate: the one place where approval is enforced.

:class:`gateway.campaigns.store.CampaignStore` asks its gates before a transition and before
storing a new or changed definition. A transition to approved or running needs an approved
approval of the campaign's *current* definition (its hash), and pause, resume, cancel and
submit need a staff account holding the permission; a new definition that would be
active at once (``initial_state`` approved or running) or a changed definition of an active
campaign is held, and an approval of it is opened; once approved, the component stores it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import structlog

from gateway.approval.book import ApprovalBook, definition_hash
from gateway.approval.model import ApprovalState
from gateway.campaigns.model import LifecycleError
from gateway.model import CampaignState
from gateway.staff.model import Permission, PermissionDenied

if TYPE_CHECKING:
    from gateway.campaigns.model import CampaignDef

ACTIVE = frozenset({CampaignState.APPROVED, CampaignState.RUNNING, CampaignState.PAUSED})
GATED_TARGETS = frozenset({CampaignState.APPROVED, CampaignState.RUNNING})
REFUSED = frozenset({ApprovalState.REJECTED, ApprovalState.RETURNED})
#: lifecycle actions people take, and the permission each needs
PERSONAL_ACTIONS = {
    "pause": Permission.PAUSE_CAMPAIGN,
    "resume": Permission.PAUSE_CAMPAIGN,
    "cancel": Permission.CANCEL_CAMPAIGN,
    "submit": Permission.CREATE_CAMPAIGN,
}


class ApprovalGate:
    """``open_for(cdef, kind)`` opens the approval of a held definition."""

    def __init__(
        self, book: ApprovalBook, open_for: Callable[[CampaignDef, str], Awaitable[object]]
    ) -> None:
        self.book = book
        self._open_for = open_for

    async def admit(self, old: CampaignDef | None, new: CampaignDef) -> bool:
        """True to store ``new`` now; False holds it until its approval completes."""
        state = old.campaign.state if old is not None else new.initial_state
        if state not in ACTIVE:
            return True
        dhash = definition_hash(new.raw)
        if self.book.is_approved(new.id, dhash):
            return True
        refused = [a for a in self.book.find(new.id, dhash) if a.state in REFUSED]
        if refused:  # asked and refused: a file reload does not ask again; a new definition does
            structlog.get_logger().warning(
                "approval.definition_refused", campaign=new.id, approval=refused[-1].id
            )
            return False
        kind = "change" if old is not None else "start"
        approval = await self._open_for(new, kind)
        structlog.get_logger().warning(
            "approval.definition_held",
            campaign=new.id,
            kind=kind,
            approval=getattr(approval, "id", None),
        )
        return False

    async def check_transition(
        self, cdef: CampaignDef, action: str, target: CampaignState, *, actor: str = ""
    ) -> None:
        """LifecycleError unless this definition of the campaign is approved, and, for the
        actions people take (pause, resume, cancel, submit), unless ``actor`` is a staff
        account holding the permission. Actors with a ``kind:`` prefix (``approval:ID``,
        ``file:PATH``, ``boss:...``) and ``scheduler`` are the gateway's own and pass."""
        permission = PERSONAL_ACTIONS.get(action)
        if permission is not None and actor != "scheduler" and ":" not in actor:
            directory = self.book.directory
            try:
                directory.require(actor, permission)
            except PermissionDenied as exc:
                await directory.audit(actor, f"campaigns.{action}", cdef.id, outcome="denied")
                raise LifecycleError(f"{exc} (name your 4A account with --by ACCOUNT)") from None
            await directory.audit(actor, f"campaigns.{action}", cdef.id)
        if target not in GATED_TARGETS:
            return
        if not self.book.is_approved(cdef.id, definition_hash(cdef.raw)):
            raise LifecycleError(
                f"cannot {action} campaign {cdef.id!r}: its definition has not been through "
                "its approval chain (see 'gatewayctl approvals pending')"
            )
