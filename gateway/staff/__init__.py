"""4A (account, authentication, authorisation, audit): the operator's staff directory.

Organisations, staff accounts and their roles come from the operator's 4A platform, as a
periodic full file and as incremental SPML-style pushes over the webservice
(:mod:`gateway.staff.spml`). Roles map to gateway permissions (:mod:`gateway.staff.model`).
Every action taken in the gateway's name (gatewayctl, webservices, approvals) is checked
against the directory and written to a durable audit table (:mod:`gateway.staff.directory`).
"""

from gateway.staff.directory import StaffDirectory
from gateway.staff.model import Account, Organisation, OrgLevel, Permission, PermissionDenied

__all__ = [
    "Account",
    "OrgLevel",
    "Organisation",
    "Permission",
    "PermissionDenied",
    "StaffDirectory",
]
