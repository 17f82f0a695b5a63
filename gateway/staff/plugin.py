"""The staff directory as a core component (see ``gateway.default_plugins``).

Hooks: the ``[staff]`` section (full-file path and period, the role -> permission map, the
webservice path of 4A pushes); the store (``staff.sqlite``, sets ``gateway.staff``); a service
that re-reads the full file when it changed; the SPML push route on the shared HTTP host; the
``staff`` admin command.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import structlog
import trio

from gateway.config_reader import TableReader
from gateway.contracts import (
    AdminCommand,
    AdminReply,
    HttpRequest,
    HttpResponse,
    HttpRoute,
    SectionSpec,
)
from gateway.errors import AdminCommandError, GatewayError
from gateway.hookspecs import hookimpl
from gateway.staff import spml
from gateway.staff.acting import ActingRules, acting_account
from gateway.staff.directory import DirectoryError, StaffDirectory
from gateway.staff.model import Permission, PermissionDenied
from gateway.staff.sync import apply_spml, read_full_file
from gateway.store import SqliteWorker, open_sqlite

if TYPE_CHECKING:
    from gateway.app import Gateway

DB_NAME = "staff.sqlite"


def resolve(gateway: Gateway, value: str) -> Path | None:
    """``value`` as a path relative to gateway.toml's directory; None when empty. (Here, not
    imported from the campaigns component: campaigns' admin commands use gateway.staff.)"""
    if not value:
        return None
    path = Path(value)
    base = getattr(gateway.config, "path", None)
    if not path.is_absolute() and base is not None:
        path = Path(base).resolve().parent / path
    return path


@attrs.frozen(kw_only=True)
class StaffConfig:
    full_file: str = ""  # the 4A full file (JSON), relative to gateway.toml
    full_interval: float = 3600.0  # how often it is checked for a new version
    push_path: str = "/4a/spml"  # where 4A posts SPML requests on the HTTP host
    push_actor: str = "4a-push"  # the name 4A pushes are audited under
    max_push_bytes: int = 1 << 20
    roles: Mapping[str, frozenset[Permission]] = attrs.field(factory=dict)
    #: OS user of a gatewayctl client -> its staff account; who may use --as
    acting: ActingRules = attrs.field(factory=ActingRules)
    #: False when the configuration has no (or an empty) ``[staff]``: a single-operator
    #: install, where the contact commands check no permission (gateway.staff.acting)
    configured: bool = False


def parse_staff_config(table: Mapping[str, Any], key: str = "staff") -> StaffConfig:
    r = TableReader(table, key)
    d = StaffConfig()
    roles: dict[str, frozenset[Permission]] = {}
    raw_roles = r.raw("roles", {})
    if not isinstance(raw_roles, Mapping):
        r.problem("roles", "must be a table of role = [permissions]")
        raw_roles = {}
    known = ", ".join(p.value for p in Permission)
    for role, perms in raw_roles.items():
        if not isinstance(perms, list) or not all(isinstance(p, str) for p in perms):
            r.problem(f"roles.{role}", "must be a list of permission names")
            continue
        granted = set()
        for perm in perms:
            try:
                granted.add(Permission(perm))
            except ValueError:
                r.problem(f"roles.{role}", f"unknown permission {perm!r}; known: {known}")
        roles[role] = frozenset(granted)
    os_users: dict[str, str] = {}
    users_reader = r.table("os_users")
    for user in users_reader.keys():
        account = users_reader.str(user)
        if account is not None and not account.strip():
            users_reader.problem(user, "must name a staff account")
        elif account is not None:
            os_users[user] = account.strip()
    admin_group = r.str("admin_group", "")
    push_path = r.str("push_path", d.push_path)
    if push_path is not None and not push_path.startswith("/"):
        r.problem("push_path", "must start with /")
    config = StaffConfig(
        full_file=r.str("full_file", d.full_file),
        full_interval=r.duration("full_interval", d.full_interval, min=1),
        push_path=push_path or d.push_path,
        push_actor=r.str("push_actor", d.push_actor),
        max_push_bytes=r.int("max_push_bytes", d.max_push_bytes, min=1024),
        roles=roles,
        acting=ActingRules(os_users=os_users, admin_group=admin_group or ""),
        configured=bool(table),
    )
    r.finish()
    return config


class StaffComponent:
    """Owns the directory of one gateway; also the ``Service`` re-reading the full file."""

    name = "staff"

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.directory: StaffDirectory | None = None
        self._files = trio.CapacityLimiter(1)
        self._seen: tuple[float, int] | None = None  # (mtime, size) of the last file applied
        self.synced = trio.Event()  # set after each full sync attempt (for tests)

    def config(self) -> StaffConfig:
        config: StaffConfig | None = self.gateway.config.sections.get("staff")
        return config or StaffConfig()

    def opened(self) -> StaffDirectory:
        if self.directory is None:
            raise GatewayError("the staff directory is not open")
        return self.directory

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[None]:
        gateway = self.gateway
        sync = gateway.config.gateway.sqlite_synchronous
        worker = SqliteWorker(open_sqlite(gateway.state_dir / DB_NAME, synchronous=sync))
        try:
            self.directory = await StaffDirectory.open(worker, self.config().roles)
            gateway.staff = self.directory
            await self.sync_full()  # before the approval chains of stored campaigns are chosen
            try:
                yield
            finally:
                gateway.staff = None
                self.directory = None
        finally:
            with trio.CancelScope(shield=True):
                await worker.aclose()

    def reload(self) -> None:
        if self.directory is not None:
            self.directory.roles = dict(self.config().roles)
            self._seen = None

    async def sync_full(self, *, force: bool = False) -> dict[str, Any] | None:
        """Apply the full file if it changed since the last sync (or ``force``)."""
        path = resolve(self.gateway, self.config().full_file)
        if path is None:
            return None
        try:
            st = path.stat()
        except OSError as exc:
            structlog.get_logger().error(
                "staff.full_file_unreadable", path=str(path), error=str(exc)
            )
            return None
        seen = (st.st_mtime, st.st_size)
        if seen == self._seen and not force:
            return None
        try:
            orgs, accounts = await trio.to_thread.run_sync(
                partial(read_full_file, Path(path)), limiter=self._files
            )
        except DirectoryError as exc:
            structlog.get_logger().error("staff.full_file_invalid", reason=str(exc))
            return {"error": str(exc)}
        result = await self.opened().apply_full(orgs, accounts, actor="4a-full-file")
        self._seen = seen
        return result

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            self.synced.set()
            self.synced = trio.Event()
            await trio.sleep(self.config().full_interval)
            await self.sync_full()

    async def handle_push(self, request: HttpRequest) -> HttpResponse:
        """One SPML request from 4A; always answered in SPML (failures as status=failure)."""
        config = self.config()
        log = structlog.get_logger()
        headers = {"content-type": "text/xml; charset=utf-8"}
        if len(request.body) > config.max_push_bytes:
            body = spml.build_response("", error=spml.CUSTOM, message="request too large")
            return HttpResponse(status=413, headers=headers, body=body)
        try:
            parsed = spml.parse_request(request.body)
        except spml.SpmlError as exc:
            log.warning("staff.push_refused", code=exc.code, reason=str(exc))
            body = spml.build_response("", error=exc.code, message=str(exc))
            return HttpResponse(status=400, headers=headers, body=body)
        try:
            await apply_spml(self.opened(), parsed, actor=config.push_actor)
        except spml.SpmlError as exc:
            log.warning("staff.push_failed", pso=parsed.pso_id, code=exc.code, reason=str(exc))
            await self.opened().audit(
                config.push_actor,
                f"staff.{parsed.objectclass}_{parsed.operation}",
                parsed.pso_id,
                outcome="refused",
                detail=str(exc),
            )
            error: str | None = exc.code
            message = str(exc)
        else:
            log.info("staff.push_applied", pso=parsed.pso_id, operation=parsed.operation)
            error, message = None, ""
        body = spml.build_response(
            parsed.operation,
            request_id=parsed.request_id,
            pso_id=parsed.pso_id,
            error=error,
            message=message,
            soap=parsed.soap,
        )
        return HttpResponse(status=200, headers=headers, body=body)

    async def command(self, args: list[str]) -> AdminReply:
        directory = self.opened()
        words, actor = await acting_account(
            args, self.config().acting, directory, action="staff.command"
        )
        action = words[0] if words else "list"
        try:
            if action == "sync":
                directory.require(actor, Permission.READ_STAFF)
                result = await self.sync_full(force=True)
                await directory.audit(actor, "staff.sync", "4a", detail=str(result))
                return AdminReply(data=result or {"full_file": None})
            directory.require(actor, Permission.READ_STAFF)
        except PermissionDenied as exc:
            await directory.audit(actor or "-", f"staff.{action}", "4a", outcome="denied")
            raise AdminCommandError(str(exc)) from None
        if action == "list":
            rows = [
                a.summary() | {"permissions": sorted(a.permissions(directory.roles))}
                for a in sorted(directory.accounts.values(), key=lambda a: a.id)
            ]
            lines = [
                f"{r['id']:<16} {'enabled ' if r['enabled'] else 'DISABLED'} {r['org']:<12} {','.join(r['roles'])}"
                for r in rows
            ]
            return AdminReply(data={"accounts": rows}, text="\n".join(lines) or "(no accounts)")
        if action == "orgs":
            rows = [attrs.asdict(o) for o in directory.orgs.values()]
            return AdminReply(data={"organisations": rows})
        if action == "audit":
            trail = await directory.audit_trail(subject=words[1] if len(words) > 1 else None)
            return AdminReply(data={"audit": trail})
        raise AdminCommandError("usage: staff list|orgs|audit [SUBJECT]|sync [--as ACCOUNT]")


class StaffPlugin:
    """The hooks of the staff component; one instance per plugin manager."""

    def __init__(self) -> None:
        self.component: StaffComponent | None = None

    def component_of(self, gateway: Gateway) -> StaffComponent:
        if self.component is None or self.component.gateway is not gateway:
            self.component = StaffComponent(gateway)
        return self.component

    @hookimpl
    def gateway_config_sections(self) -> Iterable[SectionSpec]:
        return [SectionSpec(name="staff", parse=parse_staff_config, top_level=True)]

    @hookimpl
    def gateway_stores(self, gateway: Gateway) -> Iterable[AbstractAsyncContextManager[None]]:
        return [self.component_of(gateway).open()]

    @hookimpl
    def gateway_services(self, gateway: Gateway) -> Iterable[StaffComponent]:
        return [self.component_of(gateway)]

    @hookimpl
    def gateway_reload(self, gateway: Gateway) -> None:
        self.component_of(gateway).reload()

    @hookimpl
    def gateway_http_routes(self, gateway: Gateway) -> Iterable[HttpRoute]:
        component = self.component_of(gateway)
        config = component.config()
        if not config.configured:  # no 4A here: no SPML endpoint on the host either
            return []
        return [HttpRoute(method="POST", path=config.push_path, handler=component.handle_push)]

    @hookimpl
    def gateway_admin_commands(self, gateway: Gateway) -> Iterable[AdminCommand]:
        component = self.component_of(gateway)
        return [
            AdminCommand(
                name="staff",
                help="4A staff directory: accounts, organisations, audit trail, full sync",
                usage="list|orgs|audit [SUBJECT]|sync [--as ACCOUNT]",
                handler=component.command,
            )
        ]

    @hookimpl
    def gateway_status(self, gateway: Gateway) -> Mapping[str, Any] | None:
        directory = self.component_of(gateway).directory
        if directory is None:
            return None
        return {
            "accounts": len(directory.accounts),
            "enabled": sum(a.enabled for a in directory.accounts.values()),
            "last_full_sync": directory.last_full_sync,
        }
