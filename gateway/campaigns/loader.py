"""Campaign definitions from TOML files: one campaign per file in the campaigns directory.

Strict like every config: unknown keys are errors and every problem names the file and the
dotted key (``etc/campaigns/airport.toml: trigger.conditions[0].at_least: ...``). A file with
problems is skipped as a whole; the others still load. The full format is in docs/rules.md.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.campaigns.model import CampaignDef, Schedule
from gateway.config import read_toml
from gateway.config_reader import TableReader
from gateway.errors import ConfigError, ConfigProblem
from gateway.model import Campaign, CampaignKind, CampaignState
from gateway.numbers import NumberError, active_plan, mask
from gateway.profiles.columns import ALL_ATTRIBUTES
from gateway.rules.areas import Area, load_areas
from gateway.rules.enriched import ENRICHED_FIELDS
from gateway.rules.parsers import clock_seconds, clock_window
from gateway.rules.template import Template, TemplateError
from gateway.rules.trigger import parse_trigger

#: Fields a content template may use besides the subscriber's profile attributes.
EVENT_FIELDS = ("peer", "cell", "lac", "ci", "campaign_name", "event_kind", *ENRICHED_FIELDS)
TEMPLATE_FIELDS = frozenset(ALL_ATTRIBUTES + EVENT_FIELDS)
INITIAL_STATES = ("draft", "pending_approval", "approved", "running")


def _json_safe(value: Any) -> Any:
    """TOML values as JSON (datetimes to ISO strings) for the store."""
    if isinstance(value, Mapping):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return value


def _timestamp(r: TableReader, name: str) -> float | None:
    value = r.raw(name, None)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            r.problem(
                name, f"expected a date-time such as 2026-01-01T00:00:00+08:00, got {value!r}"
            )
            return None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if not isinstance(value, dt.datetime):
        r.problem(name, f"expected a date-time, got {value!r}")
        return None
    if value.tzinfo is None:
        r.problem(name, "needs a UTC offset (e.g. 2026-01-01T00:00:00+08:00)")
        return None
    return value.timestamp()


def read_target_list(path: Path) -> frozenset[int]:
    """A file with one MSISDN per line (blank lines and # comments ignored).

    Numbers are normalised to E.164 (gateway/numbers.py); one that cannot be is refused with
    its line and a masked excerpt.
    """
    members = set()
    plan = active_plan()
    with open(path, encoding="utf-8") as handle:
        for n, line in enumerate(handle, 1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            try:
                members.add(int(plan.normalise(text)))
            except NumberError as exc:
                raise ValueError(f"line {n}: not a usable MSISDN {mask(text)}: {exc}") from None
    return frozenset(members)


def parse_campaign(
    table: Mapping[str, Any],
    *,
    origin: str,
    areas: Mapping[str, Area],
    plugin_types: Mapping[str, Any] | None = None,
    base_dir: Path | None = None,
) -> CampaignDef:
    """One campaign table -> :class:`CampaignDef`; ConfigError naming ``origin`` and the keys."""
    r = TableReader(table, "")
    cid = r.str("id")
    if cid is not None and (not cid or not all(ch.isalnum() or ch in "-_." for ch in cid)):
        r.problem("id", f"use letters, digits, '-', '_' or '.', got {cid!r}")
    name = r.str("name")
    description = r.str("description", "")
    owner = r.str("owner", "")
    cclass = r.str("class", "marketing")
    priority = r.int("priority", 0, min=0, max=1000)
    kind = r.str("kind", "realtime", choices=[k.value for k in CampaignKind])
    channels = r.str_list("channels")
    if channels is not None and not channels:
        r.problem("channels", 'needs at least one channel (e.g. ["sms"])')
    initial = r.str("initial_state", "pending_approval", choices=INITIAL_STATES)
    control = r.float("control_group_percent", 0.0, min=0.0, max=100.0)
    defer = r.bool("defer_if_quiet", False)

    sched = r.table("schedule")
    start, end = _timestamp(sched, "start"), _timestamp(sched, "end")
    if start is not None and end is not None and end <= start:
        sched.problem("end", "must be after start")
    windows = []
    for i, text in enumerate(sched.str_list("send_windows", ())):
        a, sep, b = text.partition("-")
        sa, sb = clock_seconds(a), clock_seconds(b)
        if not sep or sa is None or sb is None or sa == sb:
            sched.problem(f"send_windows[{i}]", f'expected "HH:MM-HH:MM", got {text!r}')
        else:
            windows.append(clock_window(sa, sb))
    sched.check_unknown()

    policy = r.table("policy")
    once_per = policy.duration("once_per", 0.0)
    policy.check_unknown()

    target = r.table("target")
    group = target.str("group", "")
    list_name = target.str("list", None)
    members = None
    list_path = None
    if list_name:
        list_path = (
            Path(list_name)
            if Path(list_name).is_absolute()
            else (base_dir or Path.cwd()) / list_name
        )
        try:
            members = read_target_list(list_path)
        except (OSError, ValueError) as exc:
            target.problem(
                "list", f"cannot use {list_path}: {getattr(exc, 'strerror', None) or exc}"
            )
    target.check_unknown()

    content: dict[str, dict[str, Template]] = {}
    content_tables = r.subtables("content")
    for channel, sub in content_tables.items():
        fields = {}
        for key in sub.keys():
            text = sub.str(key)
            if text is None:
                continue
            try:
                fields[key] = Template(text, TEMPLATE_FIELDS)
            except TemplateError as exc:
                sub.problem(key, str(exc))
        content[channel] = fields
    for channel in channels or ():
        if channel not in content:
            r.problem(
                f"content.{channel}",
                f"channel {channel!r} is listed in channels but has no content",
            )

    trigger = None
    if r.has("trigger"):
        trigger = parse_trigger(
            r.table("trigger"),
            areas=areas,
            campaign_id=cid or "",
            target_list=members,
            plugin_types=plugin_types,
        )
    elif kind == "realtime":
        r.problem("trigger", "a realtime campaign needs a [trigger] table")
    try:
        r.finish()
    except ConfigError as exc:
        raise ConfigError([p.with_file(origin) for p in exc.problems]) from None

    raw = _json_safe(table)
    if list_path is not None:
        raw.setdefault("target", {})["list"] = str(list_path.resolve())
    return CampaignDef(
        campaign=Campaign(
            id=cid,
            name=name,
            campaign_class=cclass,
            priority=priority,
            kind=CampaignKind(kind),
            state=CampaignState(initial),
            channels=tuple(channels),
        ),
        description=description,
        owner=owner,
        origin=origin,
        content=content,
        target_group=group,
        target_list=str(list_path) if list_path else None,
        target_members=members,
        schedule=Schedule(start=start, end=end, windows=tuple(windows)),
        once_per=once_per,
        control_group_percent=control,
        defer_if_quiet=defer,
        trigger=trigger,
        initial_state=CampaignState(initial),
        raw=raw,
    )


def load_campaign_file(
    path: Path, *, areas: Mapping[str, Area], plugin_types: Mapping[str, Any] | None = None
) -> CampaignDef:
    table = read_toml(path)  # the one TOML loader: file:line:column on a syntax error
    return parse_campaign(
        table, origin=str(path), areas=areas, plugin_types=plugin_types, base_dir=path.parent
    )


def load_campaign_dir(
    directory: Path, *, areas: Mapping[str, Area], plugin_types: Mapping[str, Any] | None = None
) -> tuple[list[CampaignDef], list[ConfigProblem]]:
    """Every ``*.toml`` in ``directory`` (sorted). Bad files are skipped, their problems returned."""
    defs: list[CampaignDef] = []
    problems: list[ConfigProblem] = []
    seen: dict[str, str] = {}
    for path in sorted(Path(directory).glob("*.toml")):
        try:
            cdef = load_campaign_file(path, areas=areas, plugin_types=plugin_types)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        except Exception as exc:  # a bug in one file's parsing must not stop the others
            problems.append(
                ConfigProblem("", f"cannot load: {type(exc).__name__}: {exc}", file=str(path))
            )
            continue
        if cdef.id in seen:
            problems.append(
                ConfigProblem(
                    "id", f"campaign id {cdef.id!r} is also used by {seen[cdef.id]}", file=str(path)
                )
            )
            continue
        seen[cdef.id] = str(path)
        defs.append(cdef)
    return defs, problems


def check_campaign_files(
    directory: Path | None,
    areas_file: Path | None,
    *,
    plugin_types: Mapping[str, Any] | None = None,
) -> list[ConfigProblem]:
    """Every problem of the areas file and of each campaign file (``--check-config``).

    A missing or unreadable directory is a problem of ``campaigns.directory``: the daemon would
    start with no file campaigns at all.
    """
    problems: list[ConfigProblem] = []
    areas: dict[str, Area] = {}
    if areas_file is not None:
        try:
            areas = load_areas(areas_file)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if directory is None:
        return problems
    if not directory.is_dir():
        reason = "is not a directory" if directory.exists() else "no such directory"
        problems.append(ConfigProblem("campaigns.directory", f"{directory}: {reason}"))
    elif not os.access(directory, os.R_OK | os.X_OK):
        problems.append(ConfigProblem("campaigns.directory", f"{directory}: permission denied"))
    else:
        problems.extend(load_campaign_dir(directory, areas=areas, plugin_types=plugin_types)[1])
    return problems
