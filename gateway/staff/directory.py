"""The staff directory: organisations and accounts synced from 4A, permissions, the audit trail.

State lives in its own SQLite database (``staff.sqlite`` in the state directory) and in memory;
every check (:meth:`StaffDirectory.require`) reads memory, which a push updates in the same
call that commits it, so an account disabled in 4A loses access at once. A full file replaces
the organisations and disables every account it no longer lists; an incremental push adds,
modifies or deletes one object (a deleted account is kept, disabled, so the audit trail still
names it).

The audit table is append-only: who (the staff account, or a system actor such as
``4a-push`` or ``scheduler``), when, what, on what, and whether it was allowed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import structlog

from gateway import numbers
from gateway.staff.model import Account, Organisation, OrgLevel, Permission, PermissionDenied
from gateway.store import SqliteWorker

SCHEMA = """
CREATE TABLE IF NOT EXISTS staff_orgs (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, level TEXT NOT NULL, parent TEXT
);
CREATE TABLE IF NOT EXISTS staff_accounts (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, org TEXT NOT NULL, email TEXT NOT NULL,
    mobile TEXT NOT NULL, roles TEXT NOT NULL, enabled INTEGER NOT NULL, updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS staff_audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, actor TEXT NOT NULL,
    action TEXT NOT NULL, subject TEXT NOT NULL, outcome TEXT NOT NULL, detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS staff_audit_by_actor ON staff_audit (actor, seq);
"""

_TRUE = {"1", "true", "yes", "enabled", "active", "normal"}
_FALSE = {"0", "false", "no", "disabled", "locked", "inactive", "suspended"}


class DirectoryError(ValueError):
    """A 4A record that cannot be used (unknown level, bad number...); names the record."""


def _bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise DirectoryError(f"{where}: enabled must be true/false, got {value!r}")


def organisation_from(record: Mapping[str, Any]) -> Organisation:
    oid = str(record.get("id", "")).strip()
    if not oid:
        raise DirectoryError("an organisation without an id")
    try:
        level = OrgLevel(str(record.get("level", "")).strip().lower())
    except ValueError:
        raise DirectoryError(
            f"organisation {oid}: level must be one of {', '.join(OrgLevel)}"
        ) from None
    parent = str(record.get("parent") or "").strip() or None
    return Organisation(id=oid, name=str(record.get("name", oid)), level=level, parent=parent)


def account_from(record: Mapping[str, Any]) -> Account:
    aid = str(record.get("id", "")).strip()
    if not aid:
        raise DirectoryError("an account without an id")
    roles = record.get("roles", ())
    if isinstance(roles, str):
        roles = [r for r in roles.replace(";", ",").split(",")]
    mobile = str(record.get("mobile") or "").strip()
    if mobile:
        try:
            mobile = numbers.normalise(mobile)
        except numbers.NumberError as exc:
            raise DirectoryError(f"account {aid}: mobile: {exc}") from None
    return Account(
        id=aid,
        name=str(record.get("name", "")),
        org=str(record.get("org", "")).strip(),
        email=str(record.get("email", "")).strip().lower(),
        mobile=mobile,
        roles=frozenset(str(r).strip() for r in roles if str(r).strip()),
        enabled=_bool(record.get("enabled", True), f"account {aid}"),
    )


def _account_row(a: Account, now: float) -> tuple[Any, ...]:
    return (
        a.id,
        a.name,
        a.org,
        a.email,
        a.mobile,
        json.dumps(sorted(a.roles)),
        int(a.enabled),
        now,
    )


_UPSERT_ACCOUNT = (
    "INSERT INTO staff_accounts (id, name, org, email, mobile, roles, enabled, updated_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET name=excluded.name, "
    "org=excluded.org, email=excluded.email, mobile=excluded.mobile, roles=excluded.roles, "
    "enabled=excluded.enabled, updated_at=excluded.updated_at"
)
_UPSERT_ORG = (
    "INSERT INTO staff_orgs (id, name, level, parent) VALUES (?, ?, ?, ?) "
    "ON CONFLICT(id) DO UPDATE SET name=excluded.name, level=excluded.level, parent=excluded.parent"
)
_AUDIT = "INSERT INTO staff_audit (at, actor, action, subject, outcome, detail) VALUES (?, ?, ?, ?, ?, ?)"


class StaffDirectory:
    """Organisations, accounts and role permissions of one gateway. Open with :meth:`open`."""

    def __init__(
        self, worker: SqliteWorker, roles: Mapping[str, frozenset[Permission]] | None = None
    ) -> None:
        self._worker = worker
        self.roles: dict[str, frozenset[Permission]] = dict(roles or {})
        self.orgs: dict[str, Organisation] = {}
        self.accounts: dict[str, Account] = {}
        self.last_full_sync: float | None = None
        self._units: dict[str, str] = {}  # org id -> its unit; cleared when organisations change

    @classmethod
    async def open(
        cls, worker: SqliteWorker, roles: Mapping[str, frozenset[Permission]] | None = None
    ) -> StaffDirectory:
        directory = cls(worker, roles)

        def load(conn: Any) -> tuple[list[Any], list[Any]]:
            conn.executescript(SCHEMA)
            return (
                conn.execute("SELECT id, name, level, parent FROM staff_orgs").fetchall(),
                conn.execute(
                    "SELECT id, name, org, email, mobile, roles, enabled FROM staff_accounts"
                ).fetchall(),
            )

        orgs, accounts = await worker.run(load)
        for oid, name, level, parent in orgs:
            directory.orgs[oid] = Organisation(
                id=oid, name=name, level=OrgLevel(level), parent=parent
            )
        for aid, name, org, email, mobile, role_json, enabled in accounts:
            directory.accounts[aid] = Account(
                id=aid,
                name=name,
                org=org,
                email=email,
                mobile=mobile,
                roles=frozenset(json.loads(role_json)),
                enabled=bool(enabled),
            )
        return directory

    # -- checks ------------------------------------------------------------------------------

    def permissions(self, account_id: str) -> frozenset[Permission]:
        account = self.accounts.get(account_id)
        return account.permissions(self.roles) if account is not None else frozenset()

    def allows(self, account_id: str, permission: Permission) -> bool:
        return permission in self.permissions(account_id)

    def require(self, account_id: str, permission: Permission) -> Account:
        """The account, if it exists, is enabled and holds ``permission``; else PermissionDenied."""
        account = self.accounts.get(account_id)
        if account is None:
            raise PermissionDenied(f"no staff account {account_id!r} in the 4A directory")
        if not account.enabled:
            raise PermissionDenied(f"staff account {account_id!r} is disabled in 4A")
        if permission not in account.permissions(self.roles):
            raise PermissionDenied(
                f"staff account {account_id!r} lacks the permission {permission.value} "
                f"(roles: {', '.join(sorted(account.roles)) or 'none'})"
            )
        return account

    def holders(self, permission: Permission, *, org: str | None = None) -> list[Account]:
        """Enabled accounts holding ``permission`` (in ``org`` or one of its departments)."""
        out = []
        for account in self.accounts.values():
            if org is not None and self.unit_of(account.org) != org:
                continue  # the cheap test first: most accounts are in other units
            if permission not in account.permissions(self.roles):
                continue
            out.append(account)
        return sorted(out, key=lambda a: a.id)

    def unit_of(self, org_id: str) -> str:
        """The province, city or county organisation that ``org_id`` is (or is a department of)."""
        unit = self._units.get(org_id)
        if unit is None:
            unit = self._units[org_id] = self._find_unit(org_id)
        return unit

    def _find_unit(self, org_id: str) -> str:
        seen = set()
        org = self.orgs.get(org_id)
        while org is not None and org.level is OrgLevel.DEPARTMENT and org.parent:
            if org.id in seen:
                break
            seen.add(org.id)
            org = self.orgs.get(org.parent)
        return org.id if org is not None else org_id

    def by_email(self, address: str) -> Account | None:
        address = address.strip().lower()
        for account in self.accounts.values():
            if account.email and account.email == address:
                return account
        return None

    # -- 4A sync -------------------------------------------------------------------------------

    async def apply_full(
        self, orgs: Iterable[Organisation], accounts: Iterable[Account], *, actor: str
    ) -> dict[str, int]:
        """A full file: replace organisations, upsert accounts, disable the accounts it omits."""
        orgs, accounts = list(orgs), list(accounts)
        listed = {a.id for a in accounts}
        gone = [
            attrs.evolve(a, enabled=False)
            for a in self.accounts.values()
            if a.id not in listed and a.enabled
        ]
        now = time.time()
        result = {
            "organisations": len(orgs),
            "accounts": len(accounts),
            "disabled_missing": len(gone),
        }

        def write(conn: Any) -> None:
            conn.execute("DELETE FROM staff_orgs")
            conn.executemany(_UPSERT_ORG, [(o.id, o.name, o.level.value, o.parent) for o in orgs])
            conn.executemany(_UPSERT_ACCOUNT, [_account_row(a, now) for a in accounts + gone])
            conn.execute(_AUDIT, (now, actor, "staff.full_sync", "4a", "ok", json.dumps(result)))

        await self._worker.transaction(write)
        self.orgs = {o.id: o for o in orgs}
        self._units.clear()
        for account in accounts + gone:
            self.accounts[account.id] = account
        self.last_full_sync = now
        structlog.get_logger().info("staff.full_sync", actor=actor, **result)
        return result

    async def put_account(self, account: Account, *, actor: str, action: str) -> None:
        now = time.time()
        detail = json.dumps(account.summary() | {"email": bool(account.email)})

        def write(conn: Any) -> None:
            conn.execute(_UPSERT_ACCOUNT, _account_row(account, now))
            conn.execute(_AUDIT, (now, actor, action, account.id, "ok", detail))

        await self._worker.transaction(write)
        self.accounts[account.id] = account  # at once: the next check sees it

    async def put_organisation(self, org: Organisation, *, actor: str, action: str) -> None:
        now = time.time()

        def write(conn: Any) -> None:
            conn.execute(_UPSERT_ORG, (org.id, org.name, org.level.value, org.parent))
            conn.execute(_AUDIT, (now, actor, action, org.id, "ok", org.level.value))

        await self._worker.transaction(write)
        self.orgs[org.id] = org
        self._units.clear()

    async def delete_organisation(self, org_id: str, *, actor: str) -> None:
        now = time.time()

        def write(conn: Any) -> None:
            conn.execute("DELETE FROM staff_orgs WHERE id=?", (org_id,))
            conn.execute(_AUDIT, (now, actor, "staff.org_delete", org_id, "ok", ""))

        await self._worker.transaction(write)
        self.orgs.pop(org_id, None)
        self._units.clear()

    # -- audit ---------------------------------------------------------------------------------

    async def audit(
        self, actor: str, action: str, subject: str, *, outcome: str = "ok", detail: str = ""
    ) -> None:
        """Append one line to the durable audit trail (committed before this returns)."""
        now = time.time()
        await self._worker.transaction(
            lambda c: c.execute(_AUDIT, (now, actor, action, subject, outcome, detail))
        )

    async def audit_trail(
        self, *, actor: str | None = None, subject: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        where, args = [], []
        if actor is not None:
            where.append("actor=?")
            args.append(actor)
        if subject is not None:
            where.append("subject=?")
            args.append(subject)
        sql = "SELECT at, actor, action, subject, outcome, detail FROM staff_audit"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq DESC LIMIT ?"
        rows = await self._worker.run(lambda c: c.execute(sql, (*args, limit)).fetchall())
        keys = ("at", "actor", "action", "subject", "outcome", "detail")
        return [dict(zip(keys, row, strict=True)) for row in reversed(rows)]
