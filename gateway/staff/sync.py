"""4A sync: the periodic full file and the incremental SPML pushes, applied to the directory.

The full file is JSON (UTF-8)::

    {"organisations": [{"id": "gd", "name": "...", "level": "province", "parent": null}, ...],
     "accounts": [{"id": "zhang3", "name": "...", "org": "gz-mkt", "email": "...",
                   "mobile": "13800138000", "roles": ["marketing"], "enabled": true}, ...]}

A file with a record that cannot be used is refused whole (nothing applied): a half-applied
directory would disable accounts that are merely misspelt.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from gateway.staff import spml
from gateway.staff.directory import (
    DirectoryError,
    StaffDirectory,
    account_from,
    organisation_from,
)
from gateway.staff.model import Account, Organisation

#: SPML attribute names as 4A platforms spell them -> our field names
_ATTR_ALIASES = {
    "name": "name",
    "fullname": "name",
    "displayname": "name",
    "org": "org",
    "orgid": "org",
    "organisation": "org",
    "organization": "org",
    "email": "email",
    "mail": "email",
    "mobile": "mobile",
    "telephonenumber": "mobile",
    "roles": "roles",
    "role": "roles",
    "enabled": "enabled",
    "status": "enabled",
    "level": "level",
    "parent": "parent",
}


def read_full_file(path: Path) -> tuple[list[Organisation], list[Account]]:
    """Parse the full file (blocking). Raises DirectoryError naming the file and the record."""
    try:
        raw = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise DirectoryError(f"{path}: {exc}") from None
    if not isinstance(raw, dict):
        raise DirectoryError(f"{path}: expected an object with organisations and accounts")
    try:
        orgs = [organisation_from(r) for r in raw.get("organisations", [])]
        accounts = [account_from(r) for r in raw.get("accounts", [])]
    except (DirectoryError, AttributeError, TypeError) as exc:
        raise DirectoryError(f"{path}: {exc}") from None
    if not accounts:
        raise DirectoryError(f"{path}: no accounts (refusing to disable everyone)")
    return orgs, accounts


def _fields(values: Mapping[str, tuple[str, ...]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, vals in values.items():
        key = _ATTR_ALIASES.get(name.lower())
        if key is None:
            continue
        out[key] = list(vals) if key == "roles" else (vals[0] if vals else "")
    return out


async def apply_spml(directory: StaffDirectory, request: spml.SpmlRequest, *, actor: str) -> None:
    """Apply one push. Raises SpmlError with the code to answer."""
    try:
        if request.objectclass == "organisation":
            await _apply_org(directory, request, actor=actor)
        else:
            await _apply_account(directory, request, actor=actor)
    except DirectoryError as exc:
        raise spml.SpmlError(spml.MALFORMED, str(exc)) from None


async def _apply_account(
    directory: StaffDirectory, request: spml.SpmlRequest, *, actor: str
) -> None:
    aid = request.pso_id
    old = directory.accounts.get(aid)
    if request.operation == "add":
        if old is not None and old.enabled:
            raise spml.SpmlError(spml.ALREADY_EXISTS, f"account {aid} exists")
        account = account_from(_fields(request.data) | {"id": aid})
        await directory.put_account(account, actor=actor, action="staff.account_add")
        return
    if old is None:
        raise spml.SpmlError(spml.NO_SUCH, f"no account {aid}")
    if request.operation == "delete":
        await directory.put_account(
            attrs.evolve(old, enabled=False), actor=actor, action="staff.account_delete"
        )
        return
    record: dict[str, Any] = {
        "id": aid,
        "name": old.name,
        "org": old.org,
        "email": old.email,
        "mobile": old.mobile,
        "roles": set(old.roles),
        "enabled": old.enabled,
    }
    for mod in request.modifications:
        for key, value in _fields(mod.attrs).items():
            if key == "roles":
                if mod.mode == "add":
                    record["roles"] |= set(value)
                elif mod.mode == "delete":
                    record["roles"] -= set(value)
                else:
                    record["roles"] = set(value)
            elif mod.mode == "delete":
                record[key] = False if key == "enabled" else ""
            else:
                record[key] = value
    account = account_from(record)
    await directory.put_account(account, actor=actor, action="staff.account_modify")


async def _apply_org(directory: StaffDirectory, request: spml.SpmlRequest, *, actor: str) -> None:
    oid = request.pso_id
    old = directory.orgs.get(oid)
    if request.operation == "delete":
        if old is None:
            raise spml.SpmlError(spml.NO_SUCH, f"no organisation {oid}")
        await directory.delete_organisation(oid, actor=actor)
        return
    record: dict[str, Any] = {"id": oid}
    if old is not None:
        record |= {"name": old.name, "level": old.level.value, "parent": old.parent}
    elif request.operation == "modify":
        raise spml.SpmlError(spml.NO_SUCH, f"no organisation {oid}")
    record |= _fields(request.data)
    for mod in request.modifications:
        record |= _fields(mod.attrs)
    await directory.put_organisation(
        organisation_from(record), actor=actor, action=f"staff.org_{request.operation}"
    )
