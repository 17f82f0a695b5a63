"""The approval workflow as a core component (see ``gateway.default_plugins``).

Hooks: the ``[approval]`` section (whether approval is required, the chain rules); the store
(``approvals.sqlite``, sets ``gateway.approvals``, and when required hands the campaigns store
its gate); a service that opens an approval for every campaign waiting for one; the
``approvals`` admin command. A completed approval is applied here: a new campaign is approved
(then started by the campaigns scheduler on its date), a held definition is stored; a rejected
or sent-back new campaign returns to draft.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import attrs
import structlog
import trio

from gateway.approval.book import ApprovalBook, ApprovalError, definition_hash
from gateway.approval.chains import ChainConfig, select_chain
from gateway.approval.gate import ApprovalGate
from gateway.approval.model import Approval, ApprovalState, Decision
from gateway.campaigns.config import campaign_timezone
from gateway.campaigns.loader import parse_campaign
from gateway.campaigns.model import LifecycleError
from gateway.config_reader import TableReader
from gateway.contracts import AdminCommand, AdminReply, SectionSpec
from gateway.errors import AdminCommandError, ConfigError, GatewayError
from gateway.hookspecs import hookimpl
from gateway.model import CampaignState
from gateway.staff.acting import ActingRules, acting_account
from gateway.store import SqliteWorker, open_sqlite

if TYPE_CHECKING:
    from gateway.app import Gateway
    from gateway.campaigns.model import CampaignDef

DB_NAME = "approvals.sqlite"


@attrs.frozen(kw_only=True)
class ApprovalConfig:
    #: When true, no campaign starts and no change to an active one applies without approval.
    required: bool = False
    chain: ChainConfig = attrs.field(factory=ChainConfig)
    tick: float = 10.0  # how often waiting campaigns are looked for


def parse_approval_config(table: Mapping[str, Any], key: str = "approval") -> ApprovalConfig:
    r = TableReader(table, key)
    d, dc = ApprovalConfig(), ChainConfig()
    countersign = r.raw("countersign", {})
    if not isinstance(countersign, Mapping) or not all(
        isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 20
        for v in countersign.values()
    ):
        r.problem("countersign", "must be a table of class = number of signatures (1-20)")
        countersign = {}
    chain = ChainConfig(
        large_target_count=r.int("large_target_count", dc.large_target_count, min=1),
        extra_level_classes=frozenset(r.str_list("extra_level_classes", []) or []),
        countersign=dict(countersign),
        filing_classes=frozenset(r.str_list("filing_classes", []) or []),
        channel_confirmation=r.bool("channel_confirmation", dc.channel_confirmation),
    )
    config = ApprovalConfig(
        required=r.bool("required", d.required),
        chain=chain,
        tick=r.duration("tick", d.tick, min=0.1),
    )
    r.finish()
    return config


def _date(ts: float | None, tz: str) -> str | None:
    if ts is None:
        return None
    from zoneinfo import ZoneInfo

    return dt.datetime.fromtimestamp(ts, ZoneInfo(tz)).date().isoformat()


class ApprovalComponent:
    """The book of one gateway, its gate, and the ``Service`` opening waiting approvals."""

    name = "approval"

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.book: ApprovalBook | None = None

    def config(self) -> ApprovalConfig:
        config: ApprovalConfig | None = self.gateway.config.sections.get("approval")
        return config or ApprovalConfig()

    def opened(self) -> ApprovalBook:
        if self.book is None:
            raise GatewayError("the approval book is not open")
        return self.book

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[None]:
        gateway = self.gateway
        if gateway.staff is None:
            raise GatewayError("the approval workflow needs the staff directory")
        sync = gateway.config.gateway.sqlite_synchronous
        worker = SqliteWorker(open_sqlite(gateway.state_dir / DB_NAME, synchronous=sync))
        try:
            book = await ApprovalBook.open(worker, gateway.staff)
            book.on_final.append(self.apply_final)
            if self.config().required:
                book.gate = ApprovalGate(book, self.open_for)
            self.book = gateway.approvals = book
            try:
                yield
            finally:
                gateway.approvals = None
                self.book = None
        finally:
            with trio.CancelScope(shield=True):
                await worker.aclose()

    def summary(self, cdef: CampaignDef) -> dict[str, Any]:
        tz = campaign_timezone(self.gateway.config)
        content = cdef.raw.get("content", {})
        texts = {
            channel: str(body.get("text", ""))[:500]
            for channel, body in (content.items() if isinstance(content, Mapping) else [])
            if isinstance(body, Mapping)
        }
        return cdef.summary() | {
            "owner": cdef.owner,
            "description": cdef.description,
            "target_group": cdef.target_group,
            "target_count": len(cdef.target_members or ()),
            "start_date": _date(cdef.schedule.start, tz),
            "end_date": _date(cdef.schedule.end, tz),
            "content": texts,
        }

    async def open_for(self, cdef: CampaignDef, kind: str) -> Approval:
        book = self.opened()
        directory = book.directory
        owner = directory.accounts.get(cdef.owner)
        summary = self.summary(cdef)
        steps = select_chain(
            campaign_class=cdef.campaign.campaign_class,
            owner_org=owner.org if owner is not None else "",
            target_count=summary["target_count"],
            orgs=directory.orgs,
            config=self.config().chain,
        )
        return await book.open_approval(
            campaign_id=cdef.id,
            kind=kind,
            definition=dict(cdef.raw),
            origin=cdef.origin,
            steps=steps,
            summary=summary,
        )

    async def open_waiting(self) -> int:
        """Open an approval for each campaign pending approval that has none for its definition."""
        store, book = self.gateway.campaigns, self.opened()
        if store is None:
            return 0
        opened = 0
        for cdef in store.list():
            if cdef.campaign.state is not CampaignState.PENDING_APPROVAL:
                continue
            if any(
                a.state in (ApprovalState.PENDING, ApprovalState.APPROVED)
                for a in book.find(cdef.id, definition_hash(cdef.raw))
            ):
                continue
            await self.open_for(cdef, "start")
            opened += 1
        return opened

    async def apply_final(self, approval: Approval) -> None:
        """A decided approval takes effect on the campaign."""
        store = self.gateway.campaigns
        log = structlog.get_logger()
        if store is None:
            log.error("approval.not_applied", approval=approval.id, reason="campaigns store closed")
            return
        actor = f"approval:{approval.id}"
        current = store.get(approval.campaign_id)
        stored = json.loads(approval.raw)
        held = current is None or definition_hash(current.raw) != approval.definition_hash
        try:
            if approval.state is ApprovalState.APPROVED:
                if held:
                    cdef = parse_campaign(
                        stored["definition"],
                        origin=stored["origin"],
                        areas=store.areas,
                        plugin_types=store.plugin_types,
                    )
                    await store.put(cdef, actor=actor)
                elif (
                    current is not None and current.campaign.state is CampaignState.PENDING_APPROVAL
                ):
                    await store.transition(
                        current.id, "approve", actor=actor, note="approval chain complete"
                    )
            elif (
                not held
                and current is not None
                and current.campaign.state is CampaignState.PENDING_APPROVAL
            ):
                last = approval.signs[-1].comment if approval.signs else ""
                await store.transition(current.id, "reject", actor=actor, note=last)
        except (LifecycleError, ConfigError, ValueError) as exc:
            log.error("approval.not_applied", approval=approval.id, reason=str(exc))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            try:
                await self.open_waiting()
            except Exception as exc:
                structlog.get_logger().error("approval.open_failed", error=repr(exc))
            await trio.sleep(self.config().tick)

    async def command(self, args: list[str]) -> AdminReply:
        return await approvals_command(self, args)


async def approvals_command(component: ApprovalComponent, args: list[str]) -> AdminReply:
    """``gatewayctl approvals ...``: every use names the acting account and is audited."""
    book = component.opened()
    directory = book.directory
    staff = component.gateway.config.sections.get("staff")
    rules = staff.acting if staff is not None else ActingRules()
    words, actor = await acting_account(args, rules, directory, action="approvals.command")
    words, opts = _options(words, ("comment", "count", "start-date", "end-date", "ref"))
    action = words[0] if words else "pending"
    account = directory.accounts.get(actor)
    if account is None or not account.enabled:
        await directory.audit(actor, f"approvals.{action}", "-", outcome="denied")
        raise AdminCommandError(f"staff account {actor!r} is unknown or disabled in 4A")
    if action == "pending":
        rows = [a.to_json() | {"approvers": book.approvers(a)} for a in book.pending()]
        lines = [
            f"{r['id']:<22} {r['campaign']:<24} step {r['step'] + 1}/{len(r['steps'])} "
            f"{r['current']['kind']:<8} waiting: {', '.join(r['approvers']) or '(nobody eligible)'}"
            for r in rows
        ]
        return AdminReply(data={"pending": rows}, text="\n".join(lines) or "(nothing pending)")
    if action == "history":
        rows = [a.to_json() for a in book.history(words[1] if len(words) > 1 else None)]
        lines = [f"{r['id']:<22} {r['campaign']:<24} {r['kind']:<7} {r['state']}" for r in rows]
        return AdminReply(data={"approvals": rows}, text="\n".join(lines) or "(no approvals)")
    if len(words) < 2:
        raise AdminCommandError(f"usage: approvals {USAGE}")
    approval_id = words[1]
    if action == "show":
        approval = book.get(approval_id)
        if approval is None:
            raise AdminCommandError(f"no approval {approval_id!r}")
        return AdminReply(data=approval.to_json() | {"approvers": book.approvers(approval)})
    try:
        if action == "delegate":
            if len(words) != 3:
                raise AdminCommandError("usage: approvals delegate ID TO_ACCOUNT --as ACCOUNT")
            approval = await book.delegate(approval_id, actor, words[2])
            detail = f"to {words[2]}"
        else:
            decision, detail_map = _decision(action, opts)
            approval = await book.decide(
                approval_id,
                actor,
                decision,
                comment=opts.get("comment", ""),
                detail=detail_map,
                via="ctl",
            )
            detail = opts.get("comment", "")
    except ApprovalError as exc:
        await directory.audit(
            actor, f"approvals.{action}", approval_id, outcome="refused", detail=str(exc)
        )
        raise AdminCommandError(str(exc)) from None
    await directory.audit(actor, f"approvals.{action}", approval_id, detail=detail)
    return AdminReply(
        data=approval.to_json(),
        text=f"{approval.id}: {approval.state.value}, step {approval.step + 1}/{len(approval.steps)}",
    )


USAGE = (
    "pending | history [CAMPAIGN] | show ID | approve|reject|send-back ID [--comment TEXT] | "
    "confirm ID --count N --start-date D --end-date D | file ID --ref REF | "
    "delegate ID ACCOUNT [--as ACCOUNT]"
)


def _decision(action: str, opts: Mapping[str, str]) -> tuple[Decision, dict[str, Any]]:
    if action == "approve":
        return Decision.APPROVE, {}
    if action == "reject":
        return Decision.REJECT, {}
    if action == "send-back":
        return Decision.SEND_BACK, {}
    if action == "confirm":
        return Decision.APPROVE, {
            "count": opts.get("count"),
            "start_date": opts.get("start-date"),
            "end_date": opts.get("end-date"),
        }
    if action == "file":
        return Decision.APPROVE, {"ref": opts.get("ref", "")}
    raise AdminCommandError(f"usage: approvals {USAGE}")


def _options(args: list[str], names: tuple[str, ...]) -> tuple[list[str], dict[str, str]]:
    words, opts = [], {}
    i = 0
    while i < len(args):
        word = args[i]
        if word.startswith("--") and word[2:] in names:
            if i + 1 >= len(args):
                raise AdminCommandError(f"{word} needs a value")
            opts[word[2:]] = args[i + 1]
            i += 2
        elif word.startswith("--"):
            raise AdminCommandError(f"unknown option {word}")
        else:
            words.append(word)
            i += 1
    return words, opts


class ApprovalPlugin:
    """The hooks of the approval component; one instance per plugin manager."""

    def __init__(self) -> None:
        self.component: ApprovalComponent | None = None

    def component_of(self, gateway: Gateway) -> ApprovalComponent:
        if self.component is None or self.component.gateway is not gateway:
            self.component = ApprovalComponent(gateway)
        return self.component

    @hookimpl
    def gateway_config_sections(self) -> Iterable[SectionSpec]:
        return [
            SectionSpec(
                name="approval",
                parse=parse_approval_config,
                top_level=True,
                restart_keys=("required",),
            )
        ]

    @hookimpl
    def gateway_stores(self, gateway: Gateway) -> Iterable[AbstractAsyncContextManager[None]]:
        return [self.component_of(gateway).open()]

    @hookimpl
    def gateway_services(self, gateway: Gateway) -> Iterable[ApprovalComponent]:
        return [self.component_of(gateway)]

    @hookimpl
    def gateway_admin_commands(self, gateway: Gateway) -> Iterable[AdminCommand]:
        return [
            AdminCommand(
                name="approvals",
                help="approval workflow: pending, history, decide, delegate",
                usage=USAGE,
                handler=self.component_of(gateway).command,
            )
        ]

    @hookimpl
    def gateway_status(self, gateway: Gateway) -> Mapping[str, Any] | None:
        book = self.component_of(gateway).book
        if book is None:
            return None
        return {
            "pending": len(book.pending()),
            "required": self.component_of(gateway).config().required,
        }
