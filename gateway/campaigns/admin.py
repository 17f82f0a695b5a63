"""Admin commands: ``campaigns`` (list, show, lifecycle actions, reload), ``campaign report ID``
and ``preview CAMPAIGN --events FILE | --capture FILE``."""

from __future__ import annotations

import datetime as dt
from typing import Any

import trio

from gateway.campaigns.model import TRANSITIONS, LifecycleError
from gateway.campaigns.preview import EventFileError, read_event_lines, run_preview
from gateway.contracts import AdminCommand, AdminReply
from gateway.errors import AdminCommandError
from gateway.staff.acting import clear_or_masked, masked

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


def _when(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds") if ts else "-"


def admin_commands(gateway: Any, component: Any) -> list[AdminCommand]:
    """``component`` is the :class:`~gateway.campaigns.plugin.CampaignsComponent`."""

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

    async def campaign(args: list[str]) -> AdminReply:
        if len(args) != 2 or args[0] != "report":
            raise AdminCommandError("usage: campaign report ID")
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
            help="campaign report: matched, allowed, suppressed by reason, sent, delivered, control group",
            handler=campaign,
            usage="report ID",
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
