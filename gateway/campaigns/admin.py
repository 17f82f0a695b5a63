"""Admin commands: ``campaigns`` (list, show, lifecycle actions, reload), ``campaign``
(``report``, ``progress``, ``trigger``, ``test-send``, ``new --scene``) and
``preview CAMPAIGN --events FILE | --capture FILE``."""

from __future__ import annotations

import datetime as dt
import re
import time
from pathlib import Path
from typing import Any

import trio

from gateway.campaigns.config import resolve
from gateway.campaigns.evaluation import conversion_rows, evaluation
from gateway.campaigns.loader import check_campaign_files
from gateway.campaigns.manual import (
    TRIGGER_STATES,
    TriggerStamps,
    manual_requests,
    test_decisions,
    test_rows,
)
from gateway.campaigns.model import TRANSITIONS, LifecycleError
from gateway.campaigns.preview import EventFileError, read_event_lines, run_preview
from gateway.campaigns.targets import TargetListError, read_targets
from gateway.contracts import AdminCommand, AdminReply
from gateway.errors import AdminCommandError
from gateway.numbers import NumberError, active_plan, mask
from gateway.staff.acting import authorise, clear_or_masked, masked
from gateway.staff.model import Permission

USAGE = "list | show ID | " + "|".join(TRANSITIONS) + " ID [--by NAME] [--note TEXT] | reload"


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
            raise AdminCommandError(
                f"unknown option {word}; options: {', '.join('--' + n for n in names)}"
            )
        else:
            words.append(word)
            i += 1
    return words, opts


USAGE_TRIGGER = "trigger ID (MSISDN | --file PATH)"
USAGE_TEST = "test-send ID [--to MSISDN]"
USAGE_NEW = "new --scene NAME [--id ID]"
USAGE_CONVERT = "convert ID --file PATH"
CAMPAIGN_USAGE = (
    f"report ID | progress ID | {USAGE_TRIGGER} | {USAGE_TEST} | {USAGE_NEW} | {USAGE_CONVERT}"
)
_ID_LINE = re.compile(r'^id\s*=\s*"[^"\n]*"', re.M)
_STATE_LINE = re.compile(r'^initial_state\s*=\s*"[^"\n]*"', re.M)


def _when(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds") if ts else "-"


def admin_commands(gateway: Any, component: Any) -> list[AdminCommand]:
    """``component`` is the :class:`~gateway.campaigns.plugin.CampaignsComponent`."""
    stamps = TriggerStamps()  # manual triggers and test sends: one stamp each

    def store() -> Any:
        if gateway.campaigns is None:
            raise AdminCommandError("the campaigns store is not open")
        return gateway.campaigns

    def find(cid: str) -> Any:
        cdef = store().get(cid)
        if cdef is None:
            raise AdminCommandError(f"no campaign {cid!r}; see 'gatewayctl campaigns list'")
        return cdef

    async def campaigns(args: list[str]) -> AdminReply:
        words, opts = _options(args, ("by", "note"))
        action = words[0] if words else "list"
        if action == "list":
            rows = [c.summary() | {"counts": store().counts.get(c.id, {})} for c in store().list()]
            lines = [
                f"{r['id']:<28} {r['state']:<17} prio={r['priority']:<4} {r['kind']:<9} {r['name']}"
                for r in rows
            ]
            problems = [str(p) for p in store().problems]
            lines += [f"invalid: {p}" for p in problems]
            return AdminReply(
                data={"campaigns": rows, "problems": problems},
                text="\n".join(lines) or "(no campaigns)",
            )
        if action == "reload":
            result = await component.reload(gateway)
            return AdminReply(data=result, text=", ".join(f"{k}={v}" for k, v in result.items()))
        if len(words) != 2:
            raise AdminCommandError(f"usage: campaigns {USAGE}")
        cid = words[1]
        if action == "show":
            cdef = find(cid)
            audit = await store().audit(cid)
            data = cdef.summary() | {
                "description": cdef.description,
                "owner": cdef.owner,
                "target_group": cdef.target_group,
                "target_list": cdef.target_list,
                "schedule": {
                    "start": cdef.schedule.start,
                    "end": cdef.schedule.end,
                    "windows": cdef.schedule.windows,
                },
                "once_per_s": cdef.once_per,
                "control_group_percent": cdef.control_group_percent,
                "content": {
                    ch: {k: t.text for k, t in f.items()} for ch, f in cdef.content.items()
                },
                "trigger": cdef.raw.get("trigger"),
                "counts": store().counts.get(cid, {}),
                "audit": audit,
            }
            lines = [
                f"{k}: {v}" for k, v in data.items() if k not in ("audit", "content", "trigger")
            ]
            lines.append("audit:")
            lines += [
                f"  {_when(a['at'])} {a['actor']} {a['action']} {a['from'] or '-'} -> {a['to']}"
                for a in audit
            ]
            return AdminReply(data=data, text="\n".join(lines))
        if action in TRANSITIONS:
            try:
                cdef = await store().transition(
                    cid, action, actor=opts.get("by", "gatewayctl"), note=opts.get("note", "")
                )
            except LifecycleError as exc:
                raise AdminCommandError(str(exc)) from None
            return AdminReply(data=cdef.summary(), text=f"{cid}: {cdef.campaign.state.value}")
        raise AdminCommandError(f"usage: campaigns {USAGE}")

    async def progress(cid: str) -> AdminReply:
        cdef = find(cid)
        source = store().progress_source
        execution = await source(cid) if source is not None else None
        if execution is None:
            raise AdminCommandError(
                f"campaign {cid!r} ({cdef.campaign.kind.value}, {cdef.campaign.state.value})"
                " has no batch progress: it is not a batch campaign or has not started"
            )
        ledger = await _ledger_counts(gateway, cid)
        deliveries: dict[str, int] = {}
        if gateway.outbox is not None and hasattr(gateway.outbox, "delivery_counts"):
            deliveries = dict(await gateway.outbox.delivery_counts(cid))
        data = {
            "campaign": cid,
            "campaign_state": cdef.campaign.state.value,
            **execution,
            "decided": ledger["outcomes"],
            "suppressed_by_reason": ledger["suppressed_by_reason"],
            "queued": deliveries.get("queued", 0) + deliveries.get("sending", 0),
            "sent": sum(
                v
                for k, v in deliveries.items()
                if k in ("submitted", "delivered", "undeliverable", "expired", "unknown")
            ),
            "delivered": deliveries.get("delivered", 0),
            "outbox_states": deliveries,
        }
        if data.get("expected_end"):
            data["expected_end_text"] = _when(data["expected_end"])
        return AdminReply(data=data, text="\n".join(f"{k}: {v}" for k, v in data.items()))

    async def trigger(args: list[str]) -> AdminReply:
        words, opts = _options(args, ("file",))
        valid = (len(words) == 2 and "file" not in opts) or (len(words) == 1 and "file" in opts)
        if not valid:
            raise AdminCommandError(f"usage: campaign {USAGE_TRIGGER}")
        cdef = find(words[0])
        if cdef.campaign.state not in TRIGGER_STATES:
            raise AdminCommandError(
                f"campaign {cdef.id!r} is {cdef.campaign.state.value}: a manual trigger needs it"
                " approved or running (a test send does not: campaign test-send ID)"
            )
        plan = active_plan()
        numbers: list[str] = []
        if len(words) == 2:
            try:
                numbers.append(plan.normalise(words[1]))
            except NumberError as exc:
                raise AdminCommandError(f"not a usable MSISDN {mask(words[1])}: {exc}") from None
        if "file" in opts:
            try:
                keys = await trio.to_thread.run_sync(read_targets, Path(opts["file"]))
            except TargetListError as exc:
                raise AdminCommandError(str(exc)) from None
            numbers.extend(str(k) for k in keys)
        control, outbox = gateway.contact_control, gateway.outbox
        if control is None or outbox is None:
            raise AdminCommandError("contact control or the outbox is not open")
        now = time.time()
        requests = manual_requests(
            cdef,
            numbers,
            profiles=gateway.profiles,
            reply_address=store().reply_addresses.get(cdef.id),
            now=now,
            stamp=stamps.next(now),
        )
        outcomes: dict[str, int] = {}
        for start in range(0, len(requests), 5000):
            for d in await control.decide_and_queue(requests[start : start + 5000], outbox):
                outcomes[d.outcome.value] = outcomes.get(d.outcome.value, 0) + 1
        data = {"campaign": cdef.id, "subscribers": len(requests), "decided": outcomes}
        return AdminReply(data=data, text=f"{cdef.id}: {len(requests)} triggered: {outcomes}")

    async def test_send(args: list[str]) -> AdminReply:
        # campaign.test_send, audited, when [staff] is configured (gatewayctl --as, or the
        # OS user's account); a single-operator install checks nothing
        args, _account = await authorise(
            gateway,
            args,
            Permission.TEST_SEND,
            action="campaign.test_send",
            subject=args[0] if args else "-",
        )
        words, opts = _options(args, ("to",))
        if len(words) != 1:
            raise AdminCommandError(f"usage: campaign {USAGE_TEST}")
        cdef = find(words[0])
        numbers = list(component.campaigns_config(gateway).test_numbers)
        if "to" in opts:
            try:
                numbers = [active_plan().normalise(opts["to"])]
            except NumberError as exc:
                raise AdminCommandError(f"not a usable MSISDN {mask(opts['to'])}: {exc}") from None
        if not numbers:
            raise AdminCommandError(
                "no test numbers: set [campaigns] test_numbers in gateway.toml, or --to MSISDN"
            )
        ledger, outbox = gateway.ledger, gateway.outbox
        if ledger is None or outbox is None:
            raise AdminCommandError("the ledger or the outbox is not open")
        now = time.time()
        requests = manual_requests(
            cdef,
            numbers,
            profiles=gateway.profiles,
            reply_address=store().reply_addresses.get(cdef.id),
            now=now,
            prefix="ts",
            stamp=stamps.next(now),
        )
        decisions = test_decisions(requests, now)
        await ledger.durable(ledger.extend(test_rows(decisions)))
        queued = await outbox.enqueue_many(decisions)
        data = {
            "campaign": cdef.id,
            "state": cdef.campaign.state.value,
            "sent_to": len(numbers),
            "queued": queued,
            "content": dict(requests[0].content),
        }
        return AdminReply(data=data, text=f"{cdef.id}: test send to {len(numbers)} number(s)")

    async def new(args: list[str]) -> AdminReply:
        words, opts = _options(args, ("scene", "id"))
        config = component.campaigns_config(gateway)
        scenes = resolve(gateway, config.scenes_directory)
        available = sorted(p.stem for p in scenes.glob("*.toml")) if scenes else []
        if words or "scene" not in opts:
            raise AdminCommandError(
                f"usage: campaign {USAGE_NEW}; scenes: {', '.join(available) or '(none)'}"
            )
        scene = opts["scene"]
        if scene not in available or scenes is None:
            raise AdminCommandError(
                f"no scene {scene!r} in {scenes}; scenes: {', '.join(available) or '(none)'}"
            )
        cid = opts.get("id", scene)
        if not cid or not all(ch.isalnum() or ch in "-_." for ch in cid):
            raise AdminCommandError(
                f"campaign id: use letters, digits, '-', '_' or '.', got {cid!r}"
            )
        directory = resolve(gateway, config.directory)
        if directory is None:
            raise AdminCommandError("no [campaigns] directory to write the campaign file into")
        if store().get(cid) is not None:
            raise AdminCommandError(f"a campaign {cid!r} exists already: choose --id")
        target = directory / f"{cid}.toml"
        if target.exists():
            raise AdminCommandError(f"{target} exists already: choose --id")
        text = (scenes / f"{scene}.toml").read_text(encoding="utf-8")
        text, n = _ID_LINE.subn(f'id = "{cid}"', text, count=1)
        if not n:
            raise AdminCommandError(f"scene {scene!r} has no id line to set")
        text, n = _STATE_LINE.subn('initial_state = "draft"', text, count=1)
        if not n:
            text = text.replace(f'id = "{cid}"', f'id = "{cid}"\ninitial_state = "draft"', 1)
        target.write_text(text, encoding="utf-8")
        problems = check_campaign_files(directory, resolve(gateway, config.areas_file))
        mine = [str(p) for p in problems if (p.file or "").startswith(str(target))]
        data = {"campaign": cid, "file": str(target), "scene": scene, "to_edit": mine}
        hint = (
            "edit it (" + "; ".join(mine) + "), then 'gatewayctl campaigns reload'"
            if mine
            else "edit it, then 'gatewayctl campaigns reload' and submit it for approval"
        )
        return AdminReply(data=data, text=f"wrote {target} from scene {scene}: {hint}")

    async def convert(args: list[str]) -> AdminReply:
        words, opts = _options(args, ("file",))
        if len(words) != 1 or "file" not in opts:
            raise AdminCommandError(f"usage: campaign {USAGE_CONVERT}")
        cdef = find(words[0])
        try:
            keys = await trio.to_thread.run_sync(read_targets, Path(opts["file"]))
        except TargetListError as exc:
            raise AdminCommandError(str(exc)) from None
        ledger = gateway.ledger
        if ledger is None:
            raise AdminCommandError("the contact ledger is not open")
        rows = conversion_rows(cdef.id, [str(k) for k in keys], time.time())
        await ledger.durable(ledger.extend(rows))
        return AdminReply(
            data={"campaign": cdef.id, "recorded": len(rows)},
            text=f"{cdef.id}: {len(rows)} conversions recorded",
        )

    async def campaign(args: list[str]) -> AdminReply:
        if args and args[0] == "convert":
            return await convert(args[1:])
        if args and args[0] == "trigger":
            return await trigger(args[1:])
        if args and args[0] == "test-send":
            return await test_send(args[1:])
        if args and args[0] == "new":
            return await new(args[1:])
        if len(args) == 2 and args[0] == "progress":
            return await progress(args[1])
        if len(args) != 2 or args[0] != "report":
            raise AdminCommandError(f"usage: campaign {CAMPAIGN_USAGE}")
        cid = args[1]
        cdef = find(cid)
        await store().flush_counts()
        counts = dict(store().counts.get(cid, {}))
        ledger = await _ledger_counts(gateway, cid)
        deliveries = {}
        if gateway.outbox is not None and hasattr(gateway.outbox, "delivery_counts"):
            deliveries = dict(await gateway.outbox.delivery_counts(cid))
        sent = sum(
            v
            for k, v in deliveries.items()
            if k in ("submitted", "delivered", "undeliverable", "expired", "unknown")
        )
        data = {
            "campaign": cid,
            "state": cdef.campaign.state.value,
            "matched": counts.get("matched", 0),
            "allowed": ledger["outcomes"].get("allowed", counts.get("allowed", 0)),
            "suppressed": sum(ledger["suppressed_by_reason"].values())
            or counts.get("suppressed", 0),
            "suppressed_by_reason": ledger["suppressed_by_reason"],
            "deferred": ledger["outcomes"].get("deferred", counts.get("deferred", 0)),
            "control_group": ledger["outcomes"].get("control", counts.get("control", 0)),
            "control_group_matched": counts.get("control_group", 0),
            "sent": sent,
            "delivered": deliveries.get("delivered", 0),
            "outbox_states": deliveries,
            # answers to the offers (two-way SMS, IVR keys): ledger events
            "accepted": ledger["outcomes"].get("accepted", 0),
            "declined": ledger["outcomes"].get("declined", 0),
            "opted_out": ledger["outcomes"].get("opted_out", 0),
            "evaluation": await evaluation(gateway, cid),
            "not_requested": {
                k: counts[k]
                for k in ("repeat", "outside_schedule", "no_msisdn", "no_capable_channel")
                if k in counts
            },
            # channels passed over because the handset lacks what they require (WAP, MMS)
            "handset_unfit": {
                k.partition(".")[2]: v for k, v in counts.items() if k.startswith("handset_unfit.")
            },
            # responses recorded in the ledger: first click of a tracked link per contact
            "clicked": ledger["outcomes"].get("clicked", 0),
        }
        lines = [f"{k}: {v}" for k, v in data.items()]
        return AdminReply(data=data, text="\n".join(lines))

    async def preview(args: list[str]) -> AdminReply:
        words, opts = _options(args, ("events", "capture"))
        if len(words) != 1 or len(opts) != 1:
            raise AdminCommandError(
                "usage: preview CAMPAIGN --events FILE | --capture FILE (absolute paths)"
            )
        cdef = find(words[0])
        if cdef.trigger is None:
            raise AdminCommandError(f"campaign {cdef.id!r} has no trigger to preview")
        if gateway.contact_control is None:
            raise AdminCommandError("contact control is not open")
        if "events" in opts:
            path = opts["events"]

            def load() -> list[Any]:
                return list(read_event_lines(path))
        else:
            path = opts["capture"]
            readers: dict[str, Any] = {}
            for result in gateway.hook.gateway_event_readers():
                readers.update(result or {})
            reader = readers.get("pcap")
            if reader is None:
                raise AdminCommandError(
                    "no capture reader is installed (the signaling plugin provides 'pcap' through "
                    "gateway_event_readers); use --events FILE with JSON-lines events instead"
                )

            def load() -> list[Any]:
                return list(reader(path))

        try:
            events = await trio.to_thread.run_sync(load)
        except (EventFileError, OSError, ValueError) as exc:
            raise AdminCommandError(f"cannot read {path}: {exc}") from None
        result = await run_preview(gateway, cdef, events, timezone=component.timezone(gateway))
        lines = [f"{k}: {v}" for k, v in result.items()]
        return AdminReply(data=result, text="\n".join(lines))

    async def profiles(args: list[str]) -> AdminReply:
        holder = gateway.profiles
        if holder is None:
            raise AdminCommandError("profiles are not loaded")
        action = args[0] if args else "status"
        if action == "status" and len(args) <= 1:
            data = holder.statistics()
            return AdminReply(data=data, text="\n".join(f"{k}: {v}" for k, v in data.items()))
        if action == "show":  # the MSISDN is masked unless --clear (gateway.staff.acting)
            args, clear = await clear_or_masked(gateway, args, action="profiles.show")
        if action == "show" and len(args) == 2:
            index = holder.index
            row = index.row_by_msisdn(args[1])
            if row < 0:
                row = index.row_by_imsi(args[1])
            if row < 0:
                raise AdminCommandError(f"no profile for {args[1]!r} (MSISDN or IMSI)")
            view = index.view(row)
            data = {k: sorted(v) if isinstance(v, frozenset) else v for k, v in view.items()}
            data = data if clear else masked(data)
            return AdminReply(data=data, text="\n".join(f"{k}: {v}" for k, v in data.items()))
        if action == "reload" and len(args) == 1:
            result = await component.reload(gateway)
            if result.get("profiles_ok") is False:  # the file was refused: an error, exit 1
                raise AdminCommandError(
                    f"profile file not loaded, the index in force is kept: {holder.last_error}"
                )
            return AdminReply(data=result, text=", ".join(f"{k}={v}" for k, v in result.items()))
        raise AdminCommandError("usage: profiles status | show MSISDN|IMSI | reload")

    return [
        AdminCommand(
            name="profiles",
            help="subscriber profile index: status, one subscriber's attributes, reload the file",
            handler=profiles,
            usage="status | show MSISDN|IMSI | reload",
        ),
        AdminCommand(
            name="campaigns",
            help="list, show, approve/pause/resume/cancel campaigns, reload files",
            handler=campaigns,
            usage=USAGE,
        ),
        AdminCommand(
            name="campaign",
            help="campaign report (matched, allowed, suppressed by reason, sent, delivered, answers,"
            " control group, uplift); progress (a batch's targets, decided, queued, sent, rate,"
            " expected end); trigger (by hand, through contact control); test-send (to the test"
            " numbers, outside caps, not counted, before approval too); new --scene (a file from"
            " a template); convert --file (subscribers who took the product, for the uplift)",
            handler=campaign,
            usage=CAMPAIGN_USAGE,
        ),
        AdminCommand(
            name="preview",
            help="run a campaign over recorded signaling without sending: reach and suppressions",
            handler=preview,
            usage="CAMPAIGN --events FILE | --capture FILE",
        ),
    ]


async def _ledger_counts(gateway: Any, campaign_id: str) -> dict[str, Any]:
    """Decision outcomes and suppression reasons from the contact ledger, when it is there."""
    ledger = gateway.ledger
    out: dict[str, Any] = {"outcomes": {}, "suppressed_by_reason": {}}
    worker = getattr(ledger, "worker", None)
    if worker is None:
        return out
    if hasattr(ledger, "flush"):
        await ledger.flush()

    def read(conn: Any) -> list[tuple[str, str | None, int]]:
        return conn.execute(
            "SELECT event, reason, COUNT(*) FROM contact_ledger WHERE campaign_id = ? GROUP BY event, reason",
            (campaign_id,),
        ).fetchall()

    for event, reason, n in await worker.run(read):
        out["outcomes"][event] = out["outcomes"].get(event, 0) + n
        if event == "suppressed":
            out["suppressed_by_reason"][reason or "unknown"] = n
    return out
