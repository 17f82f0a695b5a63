"""A small 4A directory for tests: a province, a city, a county, departments, and staff."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.staff.model import Permission
from gateway.staff.plugin import parse_staff_config

ORGS = [
    {"id": "gd", "name": "Province", "level": "province"},
    {"id": "gd-mkt", "name": "Province marketing", "level": "department", "parent": "gd"},
    {"id": "gz", "name": "City", "level": "city", "parent": "gd"},
    {"id": "gz-mkt", "name": "City marketing", "level": "department", "parent": "gz"},
    {"id": "hp", "name": "County", "level": "county", "parent": "gz"},
    {"id": "hp-mkt", "name": "County marketing", "level": "department", "parent": "hp"},
]


def account(aid: str, org: str, *roles: str, email: str = "", enabled: bool = True) -> dict:
    return {
        "id": aid,
        "name": aid.title(),
        "org": org,
        "email": email or f"{aid}@corp.example",
        "mobile": "13800138000",
        "roles": list(roles),
        "enabled": enabled,
    }


ACCOUNTS = [
    account("author", "hp-mkt", "marketing"),
    account("cityauthor", "gz-mkt", "marketing"),
    account("city1", "gz-mkt", "approver"),
    account("city2", "gz-mkt", "approver"),
    account("prov1", "gd-mkt", "approver"),
    account("chan", "gd-mkt", "channel_owner"),
    account("filer", "gd-mkt", "filing"),
    account("admin", "gd", "admin"),
    account("helper", "gz-mkt", "clerk"),
]

ROLES_TOML = {
    "marketing": ["campaign.create", "campaign.test_send"],
    "approver": ["campaign.approve"],
    "channel_owner": ["channel.confirm"],
    "filing": ["template.file"],
    "admin": ["staff.read"],
    "clerk": [],
}

ROLES = parse_staff_config({"roles": ROLES_TOML}).roles
assert ROLES["approver"] == frozenset({Permission.APPROVE_CAMPAIGN})


def write_full_file(
    path: Path, accounts: list[dict] | None = None, orgs: list[dict] | None = None
) -> Path:
    path.write_text(
        json.dumps(
            {"organisations": orgs or ORGS, "accounts": ACCOUNTS if accounts is None else accounts}
        ),
        encoding="utf-8",
    )
    return path


STAFF_TOML = """
[staff]
full_file = "{full_file}"
[staff.roles]
marketing = ["campaign.create", "campaign.test_send"]
approver = ["campaign.approve", "campaign.pause", "campaign.cancel"]
channel_owner = ["channel.confirm"]
filing = ["template.file"]
admin = ["staff.read"]
clerk = []
"""
