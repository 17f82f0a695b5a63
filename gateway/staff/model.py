"""Values of the staff directory: organisations, accounts, permissions."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import attrs

from gateway.errors import GatewayError


class Permission(enum.StrEnum):
    """What a role lets an account do in the gateway."""

    CREATE_CAMPAIGN = "campaign.create"
    APPROVE_CAMPAIGN = "campaign.approve"
    PAUSE_CAMPAIGN = "campaign.pause"
    CANCEL_CAMPAIGN = "campaign.cancel"
    EDIT_DND = "dnd.edit"
    READ_CLEAR_MSISDN = "msisdn.read_clear"
    TEST_SEND = "campaign.test_send"
    #: the channel owner's confirmation of target count and execution dates ("渠道确认")
    CONFIRM_CHANNEL = "channel.confirm"
    #: recording that content templates were filed with the regulator's desk ("报备")
    FILE_TEMPLATE = "template.file"
    #: read the directory and the audit trail
    READ_STAFF = "staff.read"


class OrgLevel(enum.StrEnum):
    PROVINCE = "province"
    CITY = "city"
    COUNTY = "county"
    DEPARTMENT = "department"  # inside an organisation of one of the other levels


class PermissionDenied(GatewayError):
    """Raised when an account is unknown, disabled in 4A, or lacks the permission asked for."""


@attrs.frozen(kw_only=True)
class Organisation:
    id: str
    name: str
    level: OrgLevel
    parent: str | None = None


@attrs.frozen(kw_only=True)
class Account:
    id: str
    name: str = ""
    org: str = ""
    email: str = ""
    mobile: str = ""  # E.164 digits (normalised at the entrance), or ""
    roles: frozenset[str] = frozenset()
    enabled: bool = True

    def permissions(self, roles: Mapping[str, frozenset[Permission]]) -> frozenset[Permission]:
        if not self.enabled:
            return frozenset()
        granted: set[Permission] = set()
        for role in self.roles:
            granted |= roles.get(role, frozenset())
        return frozenset(granted)

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "org": self.org,
            "email": self.email,
            "roles": sorted(self.roles),
            "enabled": self.enabled,
        }
