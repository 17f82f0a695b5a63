"""``gatewayctl`` commands of the contact-control core: ``why``, ``dnd``, ``contacts``.

``why MSISDN [CAMPAIGN]``      the last decisions for a subscriber, in plain words
``dnd add CATEGORY MSISDN``    add to a list (``--scope``, ``--reason``, ``--source``, ``--expires 30d``)
``dnd remove CATEGORY MSISDN`` remove from a list (``--scope``)
``dnd check MSISDN``           every list naming the subscriber
``dnd import CATEGORY FILE``   atomically replace a whole list from a file (``--scope``, ``--source``,
                               ``--allow-empty``): ``gatewayctl`` reads the file and streams it
``dnd list-categories``        the categories and their sizes
``contacts MSISDN``            contacts and open reservations counting against the caps now

Every MSISDN argument may be written in any form :mod:`gateway.numbers` accepts
(``13500000001``, ``+86 135 0000 0001``...); it is normalised before use, and refused with
a clear error when it cannot be.

With ``[staff]`` configured, the acting staff account (:mod:`gateway.staff.acting`) needs
``dnd.edit`` for add, remove and import, and ``msisdn.read_clear`` for ``--clear`` on ``why``
and ``contacts`` (whose replies are masked without it); every use is audited. Without
``[staff]``, nothing is checked and numbers are shown in clear.

The daemon never opens a path a client names for ``dnd import``: it runs with its own
privileges, and a client could make it read (and echo in an error) any file it can read.
``gatewayctl`` reads the file with the user's privileges and streams its lines over the
control socket in chunks (:mod:`gateway.contact.upload`), on one staged upload::

    dnd import-begin CATEGORY [--scope S] [--source SRC] [--allow-empty]  -> {"upload": ID}
    dnd import-lines ID SEQ TEXT     (whole lines, SEQ = 0, 1, 2 ...; each checked on arrival)
    dnd import-commit ID             -> the list is replaced, {"entries": N}
    dnd import-abort ID

A bad line ends the upload with an error naming the line number (and a masked excerpt of
the number, never the line). An import with no entries is refused unless ``--allow-empty``
was given: an empty or truncated file must not wipe a whole list by accident.
"""

from __future__ import annotations

import math
from typing import Any

from gateway.config_reader import parse_duration
from gateway.contact.config import CATEGORIES, NEVER_EXEMPT, SCOPED_CATEGORIES
from gateway.contact.explain import explain_rows
from gateway.contact.upload import Uploads
from gateway.contracts import AdminCommand, AdminReply
from gateway.errors import AdminCommandError
from gateway.numbers import NumberError, active_plan, mask
from gateway.staff.acting import authorise, clear_or_masked, masked
from gateway.staff.model import Permission

_OPTIONS = ("--scope", "--reason", "--source", "--expires", "--limit", "--as")
_FLAGS = ("--allow-empty", "--clear")


def _split(args: list[str]) -> tuple[list[str], dict[str, str]]:
    """Positional words, ``--name value`` options and ``--flag`` flags (value ``""``)."""
    words, options = [], {}
    it = iter(args)
    for arg in it:
        if arg in _FLAGS:
            options[arg[2:]] = ""
        elif arg.startswith("--"):
            if arg not in _OPTIONS:
                known = ", ".join(_OPTIONS + _FLAGS)
                raise AdminCommandError(f"unknown option {arg}; known: {known}")
            try:
                options[arg[2:]] = next(it)
            except StopIteration:
                raise AdminCommandError(f"{arg} needs a value") from None
        else:
            words.append(arg)
    return words, options


def _msisdn(word: str) -> str:
    """The E.164 form of an MSISDN argument; AdminCommandError (masked) when it has none."""
    try:
        return active_plan().normalise(word)
    except NumberError as exc:
        raise AdminCommandError(f"not a usable MSISDN {mask(word)}: {exc}") from None


def admin_commands(gateway: Any) -> list[AdminCommand]:
    uploads = Uploads()

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
        _, clear = await clear_or_masked(gateway, args, action="why", subject=mask(msisdn))
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
        data = {"msisdn": msisdn, "campaign": campaign, "rows": rows, "lists": entries}
        return AdminReply(data=data if clear else masked(data), text=text)

    async def contacts(args: list[str]) -> AdminReply:
        words, _ = _split(args)
        if len(words) != 1:
            raise AdminCommandError("usage: contacts MSISDN")
        cc = control()
        msisdn = _msisdn(words[0])
        _, clear = await clear_or_masked(gateway, args, action="contacts", subject=mask(msisdn))
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
        data = {"msisdn": msisdn, "live": live, "ledger": rows}
        return AdminReply(data=data if clear else masked(data), text="\n".join(lines))

    async def dnd(args: list[str]) -> AdminReply:
        if args[:1] == ["import-lines"]:  # raw text: no option parsing of file content
            if len(args) != 4:
                raise AdminCommandError("usage: dnd import-lines UPLOAD SEQ TEXT")
            control()
            return AdminReply(data=await uploads.add_lines(args[1], args[2], args[3]))
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
        if verb == "import":
            raise AdminCommandError(
                "the daemon does not open files named by a client: use gatewayctl dnd import "
                "CATEGORY FILE, which reads the file with your privileges and streams it"
            )
        if verb == "import-begin":
            if len(rest) != 1:
                raise AdminCommandError(
                    "usage: dnd import-begin CATEGORY [--scope S] [--source SRC] [--allow-empty]"
                )
            control()
            await authorise(
                gateway, args, Permission.EDIT_DND, action="dnd.import", subject=rest[0]
            )
            upload = uploads.begin(
                rest[0],
                scope=scope,
                source=options.get("source", "import"),
                allow_empty="allow-empty" in options,
            )
            return AdminReply(data={"upload": upload})
        if verb in ("import-commit", "import-abort"):
            if len(rest) != 1:
                raise AdminCommandError(f"usage: dnd {verb} UPLOAD")
            if verb == "import-abort":
                return AdminReply(data={"aborted": uploads.abort(rest[0])}, text="aborted")
            cc = control()
            staged = uploads.finish(rest[0])
            await authorise(
                gateway, args, Permission.EDIT_DND, action="dnd.import", subject=staged.category
            )
            try:
                size = await cc.lists.replace(
                    staged.category, staged.entries(), scope=staged.scope, source=staged.source
                )
            except ValueError as exc:
                raise AdminCommandError(str(exc)) from exc
            return AdminReply(
                data={"entries": size, "lines": staged.lines},
                text=f"{staged.category} replaced: {size} entries",
            )
        if verb in ("add", "remove") and len(rest) != 2:
            raise AdminCommandError(f"usage: dnd {verb} CATEGORY MSISDN [--scope S]")
        if verb in ("add", "remove"):
            subject = f"{rest[0]}:{mask(_msisdn(rest[1]))}"
            await authorise(
                gateway, args, Permission.EDIT_DND, action=f"dnd.{verb}", subject=subject
            )
        try:
            if verb == "add":
                expires = None
                if "expires" in options:
                    expires = cc.clock() + parse_duration(options["expires"])
                    if not math.isfinite(expires):
                        raise ValueError("--expires must be a finite duration")
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
        except ValueError as exc:
            raise AdminCommandError(str(exc)) from exc
        raise AdminCommandError(
            f"unknown dnd command {verb!r}: add, remove, check, import, list-categories"
            " (import-begin, import-lines, import-commit, import-abort: used by gatewayctl)"
        )

    return [
        AdminCommand(
            name="why",
            help="explain the last contact decisions for a subscriber",
            handler=why,
            usage="MSISDN [CAMPAIGN] [--limit N] [--clear]",
        ),
        AdminCommand(
            name="dnd",
            help="do-not-disturb lists and blacklists",
            handler=dnd,
            usage="add|remove CATEGORY MSISDN [--scope S] [--reason R] [--expires 30d] | "
            "check MSISDN | import CATEGORY FILE [--scope S] [--allow-empty] | list-categories",
        ),
        AdminCommand(
            name="contacts",
            help="contacts counting against a subscriber's caps now",
            handler=contacts,
            usage="MSISDN [--clear]",
        ),
    ]
