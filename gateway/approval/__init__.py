"""The approval workflow: nothing runs, and no change to a running campaign applies, without
the approvals of the right people.

- :mod:`gateway.approval.chains` chooses the chain of steps for a campaign (its class, the
  level of its owner's organisation, the size of its target list);
- :mod:`gateway.approval.book` holds every approval, its signatures and delegations, durably;
- :mod:`gateway.approval.gate` is the campaigns store's gate (no transition to approved or
  running, no new or changed active definition, without an approval of that definition);
- :mod:`gateway.approval.plugin` is the core component (config, store, service, commands).

OA to-dos and email approval are plugins (``plugins/oa``, ``plugins/email_approval``) that watch
the book (:meth:`~gateway.approval.book.ApprovalBook.subscribe`) and decide through it.
"""

from gateway.approval.book import ApprovalBook, ApprovalError
from gateway.approval.model import Approval, ApprovalEvent, ApprovalState, Decision, Step, StepKind

__all__ = [
    "Approval",
    "ApprovalBook",
    "ApprovalError",
    "ApprovalEvent",
    "ApprovalState",
    "Decision",
    "Step",
    "StepKind",
]
