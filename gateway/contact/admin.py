"""``gatewayctl`` commands of the contact-control core: ``why``, ``dnd``, ``contacts``.

``why MSISDN [CAMPAIGN]``      the last decisions for a subscriber, in plain words
``dnd add CATEGORY MSISDN``    add to a list (``--scope``, ``--reason``, ``--source``, ``--expires 30d``)
``dnd remove CATEGORY MSISDN`` remove from a list (``--scope``)
``dnd check MSISDN``           every list naming the subscriber
``dnd import CATEGORY FILE``   atomically replace a whole list from a file (``--scope``, ``--source``)
``dnd list-categories``        the categories and their sizes
``contacts MSISDN``            contacts and open reservations counting against the caps now
"""

from __future__ import annotations

from typing import Any

import trio

from gateway.config_reader import parse_duration
from gateway.contact.config import CATEGORIES, NEVER_EXEMPT, SCOPED_CATEGORIES
from gateway.contact.explain import explain_rows
from gateway.contact.lists import read_list_file
from gateway.contracts import AdminCommand, AdminReply
from gateway.errors import AdminCommandError

_OPTIONS = ("--scope", "--reason", "--source", "--expires", "--limit")


def _split(args: list[str]) -> tuple[list[str], dict[str, str]]:
    """Positional words and ``--name value`` options; unknown options are an error."""
    words, options = [], {}
    it = iter(args)
    for arg in it:
        if arg.startswith("--"):
            if arg not in _OPTIONS:
                raise AdminCommandError(f"unknown option {arg}; known: {', '.join(_OPTIONS)}")
            try:
                options[arg[2:]] = next(it)
            except StopIteration:
                raise AdminCommandError(f"{arg} needs a value") from None
        else:
            words.append(arg)
    return words, options


def _msisdn(word: str) -> str:
    m = word.lstrip("+")
    if not m.isdigit():
        raise AdminCommandError(f"not an MSISDN: {word!r} (digits, international form)")
    return m


def admin_commands(gateway: Any) -> list[AdminCommand]:
    def control() -> Any:
        if gateway.contact_control is None:
            raise AdminCommandError("contact control is not running")
        return gateway.contact_control

    async def why(args: list[str]) -> AdminReply:
        words, options = _split(args)
        if not 1 <= len(words) <= 2:
            raise AdminCommandError("usage: why MSISDN [CAMPAIGN]")
        cc = control()
        msisdn = _msisdn(words[0])
        campaign = words[1] if len(words) == 2 else None
        limit = int(options.get("limit", "20"))
        rows = await cc.ledger.query(msisdn=msisdn, campaign_id=campaign, limit=limit)
        text = explain_rows(rows, cc.engine.clock)
        entries = cc.lists.entries_for(msisdn)
        if entries:
            cats = ", ".join(
                e["category"] + (f"({e['scope']})" if e["scope"] else "") for e in entries
            )
            text += f"\nNow on lists: {cats}."
        return AdminReply(
            data={"msisdn": msisdn, "campaign": campaign, "rows": rows, "lists": entries}, text=text
        )

    async def contacts(args: list[str]) -> AdminReply:
        words, _ = _split(args)
        if len(words) != 1:
            raise AdminCommandError("usage: contacts MSISDN")
        cc = control()
        msisdn = _msisdn(words[0])
        live = await cc.current_contacts(msisdn)
        rows = await cc.ledger.query(msisdn=msisdn, limit=50)
        clock = cc.engine.clock
        lines = [f"{len(live)} contact(s) counting against the caps now:"]
        for c in live:
            lines.append(
                f"  {clock.local_text(c['at'])}  {c['channel']:<8} campaign {c['campaign_id']} "
                f"({c['campaign_class']}, priority {c['priority']}) {c['state']}"
            )
        made = [r for r in rows if r["event"] in ("committed", "allowed")]
        lines.append(f"{len(made)} recent allowed/committed ledger row(s).")
        return AdminReply(
            data={"msisdn": msisdn, "live": live, "ledger": rows}, text="\n".join(lines)
        )

    async def dnd(args: list[str]) -> AdminReply:
        words, options = _split(args)
        if not words:
            raise AdminCommandError("usage: dnd add|remove|check|import|list-categories ...")
        cc = control()
        verb, rest = words[0], words[1:]
        scope = options.get("scope", "")
        if verb == "list-categories":
            sizes = cc.lists.sizes()
            data = [
                {
                    "category": c,
                    "scoped": c in SCOPED_CATEGORIES,
                    "exemptible": c not in NEVER_EXEMPT,
                    "entries": sum(n for k, n in sizes.items() if k.split(":")[0] == c),
                }
                for c in CATEGORIES
            ]
            text = "\n".join(
                f"{d['category']:<20} {d['entries']:>10}"
                + ("  (per channel/class)" if d["scoped"] else "")
                for d in data
            )
            return AdminReply(data=data, text=text)
        if verb == "check":
            if len(rest) != 1:
                raise AdminCommandError("usage: dnd check MSISDN")
            entries = cc.lists.entries_for(_msisdn(rest[0]))
            text = (
                "\n".join(
                    f"{e['category']}{'(' + e['scope'] + ')' if e['scope'] else ''}: "
                    f"source {e['source']}, reason {e['reason']!r}"
                    for e in entries
                )
                or "not on any list"
            )
            return AdminReply(data=entries, text=text)
        if verb in ("add", "remove", "import") and len(rest) != 2:
            raise AdminCommandError(
                f"usage: dnd {verb} CATEGORY {'FILE' if verb == 'import' else 'MSISDN'} [--scope S]"
            )
        try:
            if verb == "add":
                expires = None
                if "expires" in options:
                    expires = cc.clock() + parse_duration(options["expires"])
                await cc.lists.add(
                    rest[0],
                    _msisdn(rest[1]),
                    scope=scope,
                    source=options.get("source", "admin"),
                    reason=options.get("reason", ""),
                    expires_at=expires,
                )
                return AdminReply(data={"added": True}, text=f"added to {rest[0]}")
            if verb == "remove":
                removed = await cc.lists.remove(rest[0], _msisdn(rest[1]), scope=scope)
                return AdminReply(
                    data={"removed": removed}, text="removed" if removed else "was not on the list"
                )
            if verb == "import":
                items = await trio.to_thread.run_sync(lambda: list(read_list_file(rest[1])))
                size = await cc.lists.replace(
                    rest[0], items, scope=scope, source=options.get("source", "import")
                )
                return AdminReply(
                    data={"entries": size}, text=f"{rest[0]} replaced: {size} entries"
                )
        except (ValueError, OSError) as exc:
            raise AdminCommandError(str(exc)) from exc
        raise AdminCommandError(
            f"unknown dnd command {verb!r}: add, remove, check, import, list-categories"
        )

    return [
        AdminCommand(
            name="why",
            help="explain the last contact decisions for a subscriber",
            handler=why,
            usage="MSISDN [CAMPAIGN] [--limit N]",
        ),
        AdminCommand(
            name="dnd",
            help="do-not-disturb lists and blacklists",
            handler=dnd,
            usage="add|remove CATEGORY MSISDN [--scope S] [--reason R] [--expires 30d] | "
            "check MSISDN | import CATEGORY FILE [--scope S] | list-categories",
        ),
        AdminCommand(
            name="contacts",
            help="contacts counting against a subscriber's caps now",
            handler=contacts,
            usage="MSISDN",
        ),
    ]
