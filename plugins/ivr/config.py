"""The ``[plugins.ivr]`` table: switch, trunks and pacing, retries, contact hours, presence."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from gateway.config_reader import TableReader

#: Call results (see adapters.ami.protocol / adapters.esl.protocol) a retry may follow.
RETRYABLE = ("busy", "no_answer", "unreachable", "failed")
NEXT_DAY = "next_day"
_HOURS = re.compile(r"^(\d\d):(\d\d)-(\d\d):(\d\d)$")


@attrs.frozen(kw_only=True)
class TrunkConfig:
    name: str
    concurrent: int = 10  # calls up at once on this trunk
    calls_per_second: float = 5.0  # originates per second on this trunk


@attrs.frozen(kw_only=True)
class RetryRule:
    """Call again after ``after`` seconds (or at the next day's first contact hour, when
    ``next_day``), at most ``max`` times for this result."""

    after: float = 600.0
    next_day: bool = False
    max: int = 0


@attrs.frozen(kw_only=True)
class ContactHours:
    start: dt.time = dt.time(9, 0)
    end: dt.time = dt.time(20, 0)
    timezone: str = "Asia/Shanghai"

    def _zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def contains(self, at: float) -> bool:
        local = dt.datetime.fromtimestamp(at, self._zone()).time()
        return self.start <= local < self.end

    def closes_in(self, at: float) -> float:
        """Seconds from ``at`` (inside the hours) to their end that day."""
        zone = self._zone()
        local = dt.datetime.fromtimestamp(at, zone)
        return max(0.0, dt.datetime.combine(local.date(), self.end, zone).timestamp() - at)

    def next_open(self, at: float) -> float:
        """``at`` when inside the hours, else the next opening."""
        if self.contains(at):
            return at
        zone = self._zone()
        local = dt.datetime.fromtimestamp(at, zone)
        day = local.date() if local.time() < self.start else local.date() + dt.timedelta(days=1)
        return dt.datetime.combine(day, self.start, zone).timestamp()

    def next_day_open(self, at: float) -> float:
        """The opening of the day after ``at``'s (local) day."""
        zone = self._zone()
        day = dt.datetime.fromtimestamp(at, zone).date() + dt.timedelta(days=1)
        return dt.datetime.combine(day, self.start, zone).timestamp()


@attrs.frozen(kw_only=True)
class IvrConfig:
    backend: str = "ami"  # "ami" (Asterisk) or "esl" (FreeSWITCH event socket)
    host: str | None = None  # no host: the channel is not registered
    port: int = 5038
    username: str = "gateway"  # AMI only
    secret: str = ""  # AMI secret or event-socket password
    auth: str = "md5"  # AMI login: md5 challenge or plain
    channel: str = "ivr"
    #: Dial string; {number} is the subscriber in E.164 digits, {trunk} the trunk's name.
    dial: str = "PJSIP/{number}@{trunk}"
    #: AMI: dialplan context/extension the answered call enters (or an application).
    context: str = "gateway-offer"
    exten: str = "s"
    application: str | None = None
    application_data: str = ""
    #: Event socket: what the answered call runs (``&park()``, ``offer XML ivr``).
    target: str = "&park()"
    ring_timeout: float = 30.0
    accept_keys: tuple[str, ...] = ("1",)
    trunks: tuple[TrunkConfig, ...] = (TrunkConfig(name="trunk1"),)
    hours: ContactHours = attrs.field(factory=ContactHours)
    retry: Mapping[str, RetryRule] = attrs.field(
        factory=lambda: {
            "busy": RetryRule(after=600.0, max=2),
            "no_answer": RetryRule(next_day=True, max=1),
        }
    )
    #: A retry goes through contact control as a new contact (caps, quiet hours) when true.
    retry_is_new_contact: bool = False
    presence_check: bool = True
    presence_unseen: float | None = None  # seconds; None: only power_off defers
    presence_defer_max: float = 12 * 3600.0  # deferred at most this long, then called
    reconnect_initial: float = 0.5
    reconnect_max: float = 30.0
    #: Call-centre files: where ``gatewayctl ivr-export`` writes and results are read.
    callout_dir: Path | None = None
    callout_channel: str = "callcentre"

    @property
    def concurrent(self) -> int:
        return sum(t.concurrent for t in self.trunks)


def _hours(r: TableReader, timezone: str) -> ContactHours:
    text = r.str("contact_hours", "09:00-20:00")
    match = _HOURS.match(text or "")
    if match is None:
        r.problem("contact_hours", f'expected "HH:MM-HH:MM", got {text!r}')
        return ContactHours(timezone=timezone)
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
        r.problem("contact_hours", f"not a time of day: {text!r}")
        return ContactHours(timezone=timezone)
    end = dt.time(23, 59, 59, 999999) if h2 == 24 else dt.time(h2, m2)
    start = dt.time(h1, m1)
    if start >= end:
        r.problem("contact_hours", "must end after it starts, on the same day")
    return ContactHours(start=start, end=end, timezone=timezone)


def parse_ivr_config(table: Mapping[str, Any], key: str = "plugins.ivr") -> IvrConfig:
    d = IvrConfig()
    r = TableReader(table, key)
    backend = r.str("backend", "ami", choices=("ami", "esl"))
    trunks = []
    for t in r.tables("trunk"):
        trunks.append(
            TrunkConfig(
                name=t.str("name"),
                concurrent=t.int("concurrent", 10, min=1, max=10_000),
                calls_per_second=t.float("calls_per_second", 5.0, min=0.01, max=10_000),
            )
        )
        t.check_unknown()
    if len({t.name for t in trunks}) != len(trunks):
        r.problem("trunk", "trunk names must be unique")
    retry: dict[str, RetryRule] = dict(d.retry)
    for result, sub in r.subtables("retry").items():
        if result not in RETRYABLE:
            sub.problem("", f"no retry for result {result!r}; one of {', '.join(RETRYABLE)}")
            continue
        after = sub.raw("after", "10m")
        if after == NEXT_DAY:
            rule = RetryRule(next_day=True, max=sub.int("max", 1, min=0, max=100))
        else:
            rule = RetryRule(
                after=sub.duration("after", 600.0, min=1), max=sub.int("max", 1, min=0, max=100)
            )
        sub.check_unknown()
        retry[result] = rule
    timezone = r.timezone("timezone", "Asia/Shanghai")
    unseen = r.duration("presence_unseen", 0.0, min=0)
    callout_dir = r.str("callout_dir", None)
    config = IvrConfig(
        backend=backend,
        host=r.str("host", None),
        port=r.int("port", 5038 if backend == "ami" else 8021, min=1, max=65535),
        username=r.str("username", d.username),
        secret=r.str("secret", d.secret),
        auth=r.str("auth", "md5", choices=("md5", "plain")),
        channel=r.str("channel", d.channel),
        dial=r.str("dial", d.dial if backend == "ami" else "sofia/gateway/{trunk}/{number}"),
        context=r.str("context", d.context),
        exten=r.str("exten", d.exten),
        application=r.str("application", None),
        application_data=r.str("application_data", ""),
        target=r.str("target", d.target),
        ring_timeout=r.duration("ring_timeout", d.ring_timeout, min=1, max=600),
        accept_keys=tuple(r.str_list("accept_keys", ["1"])),
        trunks=tuple(trunks) or d.trunks,
        hours=_hours(r, timezone or "Asia/Shanghai"),
        retry=retry,
        retry_is_new_contact=r.bool("retry_is_new_contact", False),
        presence_check=r.bool("presence_check", True),
        presence_unseen=unseen or None,
        presence_defer_max=r.duration("presence_defer_max", d.presence_defer_max, min=1),
        reconnect_initial=r.duration("reconnect_initial", 0.5, min=0.01),
        reconnect_max=r.duration("reconnect_max", 30.0, min=0.01),
        callout_dir=None if callout_dir is None else Path(callout_dir),
        callout_channel=r.str("callout_channel", d.callout_channel),
    )
    if "{number}" not in (config.dial or ""):
        r.problem("dial", "must contain {number}")
    r.finish()
    return config
