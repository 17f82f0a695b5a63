"""Which approvals a campaign needs: the chain by class, organisation level and size.

The chain climbs the organisation tree from the unit (province, city or county) of the
campaign owner's organisation: a county campaign is approved by its city, a city campaign by
its province, a province campaign by the province itself (by approvers other than the
owner). A large target list, or a class listed in ``extra_level_classes``, adds the next level
up where there is one. Each approval step needs ``countersign[class]`` signatures (default 1).
Then, when configured: the regulator filing step (classes in ``filing_classes``) and the
channel owner's confirmation.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from gateway.approval.model import Step, StepKind
from gateway.staff.model import Organisation, OrgLevel


@attrs.frozen(kw_only=True)
class ChainConfig:
    large_target_count: int = 100_000
    extra_level_classes: frozenset[str] = frozenset()
    countersign: Mapping[str, int] = attrs.field(factory=dict)
    filing_classes: frozenset[str] = frozenset()
    channel_confirmation: bool = True


def _unit(org_id: str, orgs: Mapping[str, Organisation]) -> Organisation | None:
    org = orgs.get(org_id)
    hops = 0
    while org is not None and org.level is OrgLevel.DEPARTMENT and org.parent and hops < 16:
        org = orgs.get(org.parent)
        hops += 1
    return org if org is not None and org.level is not OrgLevel.DEPARTMENT else None


def select_chain(
    *,
    campaign_class: str,
    owner_org: str,
    target_count: int,
    orgs: Mapping[str, Organisation],
    config: ChainConfig,
) -> tuple[Step, ...]:
    """The steps, in order. An owner outside the directory starts at the province."""
    unit = _unit(owner_org, orgs)
    provinces = sorted(o.id for o in orgs.values() if o.level is OrgLevel.PROVINCE)
    approvers: list[Organisation] = []
    if unit is None:
        approvers = [orgs[provinces[0]]] if provinces else []
    elif unit.level is OrgLevel.PROVINCE or not unit.parent or unit.parent not in orgs:
        approvers = [unit]
    else:
        approvers = [orgs[unit.parent]]
    extra = (
        target_count >= config.large_target_count or campaign_class in config.extra_level_classes
    )
    if extra and approvers:
        top = approvers[-1]
        if top.parent and top.parent in orgs:
            approvers.append(orgs[top.parent])
    required = max(1, config.countersign.get(campaign_class, 1))
    steps = [
        Step(kind=StepKind.APPROVE, org=o.id, level=o.level.value, required=required)
        for o in approvers
    ]
    if campaign_class in config.filing_classes:
        steps.append(Step(kind=StepKind.FILING))
    if config.channel_confirmation:
        steps.append(Step(kind=StepKind.CHANNEL))
    return tuple(steps)
