"""The ``[contact]`` section of gateway.toml: lists, contact hours, caps, cooldowns, backend.

Parsed strictly with :class:`~gateway.config_reader.TableReader` into frozen values that the
engine reads on every decision. Example::

    [contact]
    backend = "sqlite"                 # or "redis"
    timezone = "Asia/Shanghai"         # default: the [gateway] timezone
    reservation_timeout = "10m"
    refund_on = ["undeliverable", "expired", "rejected"]
    passive_channels = ["crm"]

    [contact.contact_hours]            # contacts allowed only inside; outside is quiet
    sms = "08:00-21:00"

    [contact.caps.sms_daily]
    scope = "channel"                  # channel | all_channels | campaign | campaign_class
    channel = "sms"
    window = "day"                     # day | week | month | lifetime | a duration ("24h")
    limit = 1

    [contact.cooldowns]
    telemarketing = "60d"

    [contact.exemptions]
    service = ["greylist", "complaint_sensitive", "vip_protected"]
    # or, to exempt the class from caps and cooldowns too (reminders, notices):
    # service = { lists = ["greylist"], caps = true }
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Mapping
from typing import Any

import attrs

from gateway.config_reader import TableReader, parse_duration

#: Do-not-disturb / blacklist categories, the one definition, in the order a request is checked
#: (the first hit is the reason given). ``opt_out_channel`` and ``opt_out_class`` entries
#: carry a scope (the channel or campaign class they apply to); the others are global.
CATEGORIES = (
    "blacklist",
    "global_opt_out",
    "opt_out_channel",
    "opt_out_class",
    "greylist",
    "complaint_sensitive",
    "vip_protected",
)
SCOPED_CATEGORIES = ("opt_out_channel", "opt_out_class")
#: No campaign class may be exempted from these.
NEVER_EXEMPT = ("blacklist", "global_opt_out")

SCOPES = ("channel", "all_channels", "campaign", "campaign_class")
CALENDAR_WINDOWS = ("day", "week", "month")
DELIVERY_FINAL_STATES = ("undeliverable", "expired", "rejected", "unknown", "delivered")

_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


@attrs.frozen(kw_only=True)
class CapRule:
    """One frequency cap: at most ``limit`` contacts per subscriber in ``window``.

    ``window`` is ``day``/``week``/``month`` (calendar, local time), ``rolling`` (the last
    ``seconds``) or ``lifetime`` (no window). ``channel`` / ``campaign_class`` restrict the
    requests the rule applies to (None: every channel, each counted on its own for scope
    ``channel``).
    """

    name: str
    scope: str
    window: str
    limit: int
    seconds: float = 0.0
    channel: str | None = None
    campaign_class: str | None = None

    @property
    def reason(self) -> str:
        if self.window == "lifetime":
            return f"cap.{self.scope}"
        return f"cap.{self.scope}.{self.window}"

    @property
    def window_label(self) -> str:
        if self.window == "rolling":
            return f"last {_human_seconds(self.seconds)}"
        return self.window


@attrs.frozen(kw_only=True)
class ContactHours:
    """The daily window in which a channel may contact (local time), ``[start, end)`` seconds."""

    start: int
    end: int
    text: str

    def allows(self, second_of_day: int) -> bool:
        if self.start <= self.end:
            return self.start <= second_of_day < self.end
        return second_of_day >= self.start or second_of_day < self.end  # wraps midnight


#: Storage settings, fixed when contact control opens: a reload that changes one says that it
#: needs a restart (``SectionSpec.restart_keys``), and ``reconfigure`` keeps the running value.
RESTART_KEYS = (
    "backend",
    "redis_host",
    "redis_port",
    "redis_prefix",
    "synchronous",
    "group_commit_interval",
    "state_writer",
)

#: Where the state database's group commits run (gateway.writer_process).
STATE_WRITERS = ("process", "thread")


@attrs.frozen(kw_only=True)
class ContactConfig:
    backend: str = "sqlite"
    redis_host: str = "127.0.0.1"
    redis_port: int = 6379
    redis_prefix: str = "gw"
    timezone: str = ""  # "" = the [gateway] timezone (see plugin.contact_config)
    reservation_timeout: float = 600.0
    refund_on: frozenset[str] = frozenset({"undeliverable", "expired", "rejected"})
    contact_hours: Mapping[str, ContactHours] = attrs.field(factory=dict)
    caps: tuple[CapRule, ...] = ()
    cooldowns: Mapping[str, float] = attrs.field(factory=dict)
    exemptions: Mapping[str, frozenset[str]] = attrs.field(factory=dict)
    #: campaign classes outside the marketing caps: neither capped nor counted (like a passive
    #: channel), so they never use up a marketing contact; set by ``caps = true`` in
    #: ``[contact.exemptions]``
    cap_exempt_classes: frozenset[str] = frozenset()
    passive_channels: frozenset[str] = frozenset()
    group_commit_interval: float = 0.0
    #: "process": the group commits run in a writer process of their own (the GIL is not
    #: shared with the event loop); "thread": in a thread of the daemon.
    state_writer: str = "thread"
    synchronous: str = ""  # "" = the [gateway] sqlite_synchronous (see plugin.contact_config)
    sweep_interval: float = 30.0
    #: A write waiting longer than this for durability means work is not moving: the daemon
    #: withholds its systemd watchdog ping (and logs why) until writes move again.
    durable_wait_limit: float = 30.0
    ledger_retention: float = 0.0  # seconds; 0 keeps the ledger forever
    list_sync_interval: float = 1.0  # redis backend: how often a node follows list changes

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone or "Asia/Shanghai")

    @property
    def horizon(self) -> float:
        """How far back contacts must be remembered (longest window or cooldown); inf if lifetime."""
        longest = 0.0
        for cap in self.caps:
            if cap.window == "lifetime":
                return float("inf")
            longest = max(
                longest,
                {"day": 2 * 86400.0, "week": 8 * 86400.0, "month": 32 * 86400.0}.get(
                    cap.window, cap.seconds
                ),
            )
        for seconds in self.cooldowns.values():
            longest = max(longest, seconds)
        return max(longest, self.reservation_timeout) + 60.0


def _human_seconds(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def parse_hours(text: str) -> ContactHours:
    m = _HOURS.match(text)
    if not m:
        raise ValueError(f'expected "HH:MM-HH:MM", got {text!r}')
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h1 > 24 or h2 > 24 or m1 > 59 or m2 > 59:
        raise ValueError(f"not a time of day: {text!r}")
    return ContactHours(start=h1 * 3600 + m1 * 60, end=h2 * 3600 + m2 * 60, text=text.strip())


def _parse_cap(name: str, r: TableReader) -> CapRule | None:
    scope = r.str("scope", choices=SCOPES)
    limit = r.int("limit", min=0)
    channel = r.str("channel", None)
    campaign_class = r.str("campaign_class", None)
    window_raw = r.raw("window", "day")
    r.check_unknown()
    window, seconds = "day", 0.0
    if window_raw in CALENDAR_WINDOWS or window_raw == "lifetime":
        window = window_raw
    else:
        try:
            seconds = parse_duration(window_raw)
            window = "rolling"
            if seconds <= 0:
                raise ValueError("must be longer than 0")
        except ValueError as exc:
            r.problem("window", f"day, week, month, lifetime or a duration: {exc}")
    if scope is None or limit is None:
        return None
    return CapRule(
        name=name,
        scope=scope,
        window=window,
        seconds=seconds,
        limit=limit,
        channel=channel,
        campaign_class=campaign_class,
    )


def parse_contact_config(table: Mapping[str, Any], key: str = "contact") -> ContactConfig:
    """Parse the ``[contact]`` table; raises ConfigError naming every bad key."""
    r = TableReader(table, key)
    backend = r.str("backend", "sqlite", choices=("sqlite", "redis"))
    redis = r.str("redis", "127.0.0.1:6379")
    redis_prefix = r.str("redis_prefix", "gw")
    timezone = r.str("timezone", "")
    try:
        zoneinfo.ZoneInfo(timezone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        timezone = ""
        r.problem(
            "timezone", f"unknown timezone {timezone!r} (use an IANA name such as Asia/Shanghai)"
        )
    timeout = r.duration("reservation_timeout", 600.0, min=1.0)
    refund_on = r.str_list("refund_on", ("undeliverable", "expired", "rejected"))
    for state in refund_on or ():
        if state not in DELIVERY_FINAL_STATES:
            r.problem(
                "refund_on",
                f"unknown delivery state {state!r}; use {', '.join(DELIVERY_FINAL_STATES)}",
            )
    passive = r.str_list("passive_channels", ())
    interval = r.duration("group_commit_interval", 0.0, max=1.0)
    state_writer = r.str("state_writer", "thread", choices=STATE_WRITERS)
    synchronous = r.str("synchronous", "", choices=("", "normal", "full", "extra"))
    sweep = r.duration("sweep_interval", 30.0, min=0.1)
    durable_wait = r.duration("durable_wait_limit", 30.0, min=0.1, max=3600)
    retention = r.duration("ledger_retention", 0.0)
    list_sync = r.duration("list_sync_interval", 1.0, min=0.05)

    hours: dict[str, ContactHours] = {}
    hours_reader = r.table("contact_hours")
    for channel in hours_reader.keys():
        text = hours_reader.str(channel)
        if text is None:
            continue
        try:
            hours[channel] = parse_hours(text)
        except ValueError as exc:
            hours_reader.problem(channel, str(exc))

    caps = []
    for name, cap_reader in r.subtables("caps").items():
        cap = _parse_cap(name, cap_reader)
        if cap is not None:
            caps.append(cap)

    cooldowns: dict[str, float] = {}
    cool_reader = r.table("cooldowns")
    for cls in cool_reader.keys():
        seconds = cool_reader.duration(cls, min=1.0)
        if seconds is not None:
            cooldowns[cls] = seconds

    exemptions: dict[str, frozenset[str]] = {}
    cap_exempt: set[str] = set()
    ex_reader = r.table("exemptions")
    for cls in ex_reader.keys():
        if isinstance(ex_reader.raw(cls), Mapping):  # { lists = [...], caps = true }
            cls_reader = ex_reader.table(cls)
            cats = cls_reader.str_list("lists", ()) or ()
            if cls_reader.bool("caps", False):
                cap_exempt.add(cls)
            cls_reader.check_unknown()
        else:
            cats = ex_reader.str_list(cls) or ()
        for cat in cats:
            if cat in NEVER_EXEMPT:
                ex_reader.problem(cls, f"no campaign class may be exempt from {cat!r}")
            elif cat not in CATEGORIES:
                ex_reader.problem(
                    cls, f"unknown list category {cat!r}; use {', '.join(CATEGORIES)}"
                )
        exemptions[cls] = frozenset(c for c in cats if c in CATEGORIES and c not in NEVER_EXEMPT)
    # A cap or cooldown that could never apply is a setting that does nothing: refuse it.
    for cap in caps:
        if cap.campaign_class in cap_exempt:
            r.problem(
                f"caps.{cap.name}.campaign_class",
                f"class {cap.campaign_class!r} is exempt from caps ([contact.exemptions])",
            )
    for cls in cooldowns:
        if cls in cap_exempt:
            r.problem(f"cooldowns.{cls}", "this class is exempt from caps ([contact.exemptions])")

    host, port = "127.0.0.1", 6379
    if redis:
        h, _, p = redis.rpartition(":")
        if not h or not p.isdigit():
            r.problem("redis", f'expected "host:port", got {redis!r}')
        else:
            host, port = h, int(p)
    config = ContactConfig(
        backend=backend,
        redis_host=host,
        redis_port=port,
        redis_prefix=redis_prefix,
        timezone=timezone,
        reservation_timeout=timeout,
        refund_on=frozenset(refund_on),
        contact_hours=hours,
        caps=tuple(caps),
        cooldowns=cooldowns,
        exemptions=exemptions,
        cap_exempt_classes=frozenset(cap_exempt),
        passive_channels=frozenset(passive),
        group_commit_interval=interval,
        state_writer=state_writer or "thread",
        synchronous=synchronous,
        sweep_interval=sweep,
        durable_wait_limit=durable_wait,
        ledger_retention=retention,
        list_sync_interval=list_sync,
    )
    if r.ok and retention and retention < config.horizon:
        r.problem(
            "ledger_retention",
            f"must cover the longest window or cooldown ({config.horizon / 86400:.0f} days), or be 0 (keep all)",
        )
    r.finish()
    return config
