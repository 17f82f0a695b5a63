"""Plain-words explanations of ledger rows, for ``gatewayctl why MSISDN [CAMPAIGN]``.

Each decision row becomes one sentence saying the outcome, the rule (by its configured name
and its reason code), the count against the limit and the window; later rows of the same
contact (committed, released, pre-empted, expired, refunded) follow it, indented.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gateway.contact.caps import LocalClock

_LIST_WORDS = {
    "blacklist": "on the blacklist",
    "global_opt_out": "opted out of all marketing",
    "opt_out_channel": "opted out of this channel",
    "opt_out_class": "opted out of this campaign class",
    "greylist": "on the greylist",
    "complaint_sensitive": "on the complaint-sensitive list",
    "vip_protected": "a protected VIP",
}

_EVENT_WORDS = {
    "committed": "handed to the network (counts as a contact)",
    "released": "reservation released, count refunded",
    "preempted": "pre-empted by a higher-priority campaign, count refunded",
    "expired": "reservation expired unsent, count refunded",
    "refunded": "not delivered, count refunded",
}


def explain_decision(row: Mapping[str, Any], clock: LocalClock) -> str:
    """One sentence for one decision row (as returned by ``Ledger.query``)."""
    when = clock.local_text(row["at"])
    head = f"{when}  campaign {row['campaign_id']} via {row['channel']} ({row['campaign_class']}): "
    event, reason, detail = row["event"], row["reason"] or "", row["detail"] or {}
    if event == "allowed":
        text = "ALLOWED"
        if reason == "duplicate":
            text += " (same contact id as an earlier reservation; not counted twice)"
        elif row.get("expires_at"):
            text += f", one contact reserved until {clock.local_text(row['expires_at'])}"
        return head + text + "."
    if event == "control":
        return head + "CONTROL GROUP: every rule allowed it, held out for evaluation, nothing sent."
    if event == "deferred":
        hours = detail.get("contact_hours", "?")
        nb = clock.local_text(row["not_before"]) if row.get("not_before") else "?"
        return (
            head + f"DEFERRED by quiet hours ({reason}): {row['channel']} may contact only "
            f"{hours} {detail.get('timezone', '')}; presented again at {nb}."
        )
    # suppressed
    if reason.startswith("dnd."):
        words = _LIST_WORDS.get(detail.get("list", ""), f"on list {detail.get('list')}")
        scope = f" ({detail['scope']})" if detail.get("scope") else ""
        src = detail.get("source") or "?"
        why = f", reason {detail['list_reason']!r}" if detail.get("list_reason") else ""
        added = clock.local_text(detail["added_at"]) if detail.get("added_at") else "?"
        return (
            head
            + f"SUPPRESSED ({reason}): the subscriber is {words}{scope} (source {src}{why}, added {added})."
        )
    if reason.startswith("quiet_hours."):
        return (
            head + f"SUPPRESSED ({reason}): real-time trigger in quiet hours; {row['channel']} may "
            f"contact only {detail.get('contact_hours', '?')} {detail.get('timezone', '')}, "
            "and the moment has passed."
        )
    if reason.startswith(("cap.", "cooldown.")):
        count, limit, window = detail.get("count"), detail.get("limit"), detail.get("window")
        since = f" since {detail['since_local']}" if detail.get("since_local") else ""
        if reason.startswith("cooldown."):
            return (
                head + f"SUPPRESSED by cooldown ({reason}): a {row['rule']} contact was already "
                f"made in the {window}{since}."
            )
        return (
            head + f"SUPPRESSED by cap {row['rule']!r} ({reason}): {count} of {limit} "
            f"allowed contact(s) already made in the window ({window}){since}."
        )
    return head + f"SUPPRESSED ({reason or 'unknown reason'})."


def explain_rows(rows: Sequence[Mapping[str, Any]], clock: LocalClock) -> str:
    """Newest-first ledger rows -> text: each decision, then what happened to it."""
    followups: dict[str, list[Mapping[str, Any]]] = {}
    lines: list[str] = []
    for row in reversed(rows):  # oldest first, to attach follow-ups to their decision
        if row["event"] in _EVENT_WORDS:
            followups.setdefault(row["contact_id"], []).append(row)
    for row in rows:
        if row["event"] in _EVENT_WORDS:
            continue
        lines.append(explain_decision(row, clock))
        for later in followups.get(row["contact_id"], ()):
            extra = (
                f" ({later['reason']})"
                if later.get("reason") and later["event"] != "preempted"
                else ""
            )
            lines.append(
                f"    then at {clock.local_text(later['at'])}: {_EVENT_WORDS[later['event']]}{extra}."
            )
    return "\n".join(lines) if lines else "No decisions recorded for this subscriber."
