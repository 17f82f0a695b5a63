"""The ``[plugins.boss_files]`` section: inbound feeds and the outbound daily report.

Example (every key: etc/gateway.toml)::

    [plugins.boss_files]
    work_dir = ""                      # default: <state_dir>/boss_files
    poll_interval = "30s"
    settle_time = "10s"                # a data file's size must not change for this long

    [plugins.boss_files.feeds.profiles]
    kind = "profiles"                  # see KINDS
    source = "sftp://boss@10.1.2.3:22/out/profile"   # or ftp://..., or a local directory
    password_file = "/etc/gateway/boss.pw"
    known_hosts = "/etc/gateway/known_hosts"
    pattern = "PROFILE_*.txt"
    check_name = "{stem}.chk"
    checksum = "md5"
    encoding = "gbk"
    separator = "|"
    columns = ["msisdn", "imsi", "brand", "city"]
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from adapters.ifile.checkfile import ALGORITHMS
from adapters.ifile.records import ENCODINGS, RecordLayout
from gateway.config_reader import TableReader
from gateway.contact.config import CATEGORIES, SCOPED_CATEGORIES
from gateway.profiles.columns import ALL_FILE_COLUMNS

NAME = "boss_files"

#: What a feed's files are, and so where they go.
KINDS = (
    "profiles",  # full subscriber profiles: a new index, swapped in whole
    "profiles_delta",  # changes (op column) on the last full + earlier deltas
    "list",  # a whole do-not-disturb / black / grey / complaint list: bulk replace
    "list_delta",  # additions and removals (op column)
    "catalogue",  # the product catalogue (full)
    "subscriptions",  # product subscriptions (full)
    "subscriptions_delta",
    "targets",  # a campaign's target list (campaign id from the file name)
)
DELTA_KINDS = ("profiles_delta", "list_delta", "subscriptions_delta")
#: Values of the ``op`` column of delta files: add/update, or delete.
UPSERT_OPS = frozenset({"A", "U", "I", "1"})
DELETE_OPS = frozenset({"D", "0"})


@attrs.frozen(kw_only=True)
class SourceConfig:
    scheme: str  # "local", "ftp", "sftp"
    path: str
    host: str = ""
    port: int = 0
    user: str = ""
    password: str | None = attrs.field(default=None, repr=False)
    known_hosts: str | None = None
    client_keys: tuple[str, ...] = ()
    timeout: float = 30.0

    @property
    def label(self) -> str:
        if self.scheme == "local":
            return self.path
        return f"{self.scheme}://{self.user}@{self.host}:{self.port}{self.path}"


@attrs.frozen(kw_only=True)
class FeedConfig:
    name: str
    kind: str
    source: SourceConfig
    pattern: str = "*.txt"
    check_name: str = "{name}.chk"
    checksum: str = "md5"
    check_separator: str = "|"
    layout: RecordLayout
    category: str = ""  # list kinds
    scope: str = ""
    allow_empty: bool = False  # a full list file with no records replaces the list with nothing
    campaign_pattern: str = r"^(?P<campaign>[^_.]+)"  # targets: campaign id from the file name
    remove_remote: bool = True

    def check_for(self, name: str) -> str:
        return self.check_name.format(name=name, stem=name.rsplit(".", 1)[0])


@attrs.frozen(kw_only=True)
class ReportConfig:
    enabled: bool = False
    at: str = "01:00"  # local time the previous day's report is written
    timezone: str = "Asia/Shanghai"
    prefix: str = "EXEC_REPORT"
    encoding: str = "utf-8"
    separator: str = "|"
    checksum: str = "md5"
    destinations: tuple[SourceConfig, ...] = ()
    retries: int = 5
    backoff: float = 5.0
    backoff_max: float = 300.0


@attrs.frozen(kw_only=True)
class BossFilesConfig:
    work_dir: Path | None = None
    poll_interval: float = 30.0
    settle_time: float = 10.0
    feeds: tuple[FeedConfig, ...] = ()
    report: ReportConfig = attrs.field(factory=ReportConfig)


def _secret(r: TableReader) -> str | None:
    path = r.str("password_file", None)
    env = r.str("password_env", None)
    if path and env:
        r.problem("password_file", "give password_file or password_env, not both")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            r.problem("password_file", f"cannot read: {exc.strerror or exc}")
    if env:
        value = os.environ.get(env)
        if value is None:
            r.problem("password_env", f"environment variable {env} is not set")
        return value
    return None


def read_source(r: TableReader, key: str = "source") -> SourceConfig | None:
    text = r.str(key, None)
    if not text:
        r.problem(key, 'required: a local directory, "ftp://USER@HOST[:PORT]/DIR" or "sftp://..."')
        return None
    timeout = r.duration("timeout", 30.0)
    if "://" not in text:
        return SourceConfig(scheme="local", path=text, timeout=timeout)
    url = urllib.parse.urlsplit(text)
    if url.scheme not in ("ftp", "sftp") or not url.hostname:
        r.problem(key, f"expected ftp://USER@HOST[:PORT]/DIR or sftp://..., got {text!r}")
        return None
    if url.password:
        r.problem(key, "no password in the URL: use password_file or password_env")
    known_hosts = r.str("known_hosts", None)
    host_key_check = r.bool("host_key_check", True)
    if url.scheme == "sftp" and host_key_check and not known_hosts:
        r.problem(
            "known_hosts",
            "an SFTP source needs a known_hosts file (or host_key_check = false, explicitly)",
        )
    return SourceConfig(
        scheme=url.scheme,
        path=url.path or "/",
        host=url.hostname,
        port=url.port or (21 if url.scheme == "ftp" else 22),
        user=urllib.parse.unquote(url.username or ("anonymous" if url.scheme == "ftp" else "")),
        password=_secret(r),
        known_hosts=known_hosts if host_key_check else None,
        client_keys=tuple(r.str_list("client_keys", ()) or ()),
        timeout=timeout,
    )


def _feed(name: str, r: TableReader) -> FeedConfig | None:
    kind = r.str("kind", choices=list(KINDS))
    source = read_source(r)
    columns = tuple(c.strip().lower() for c in r.str_list("columns", ()) or ())
    separator = r.str("separator", "|") or "|"
    encoding = r.str("encoding", "utf-8") or "utf-8"
    header = r.bool("header", False)
    checksum = r.str("checksum", "md5", choices=list(ALGORITHMS)) or "md5"
    category = r.str("category", "") or ""
    scope = r.str("scope", "") or ""
    pattern = r.str("pattern", "*.txt") or "*.txt"
    check_name = r.str("check_name", "{name}.chk") or "{name}.chk"
    campaign_pattern = r.str("campaign_pattern", r"^(?P<campaign>[^_.]+)") or ""
    allow_empty = r.bool("allow_empty", False)
    remove_remote = r.bool("remove_remote", True)
    check_separator = r.str("check_separator", "|") or "|"
    layout = None
    try:
        layout = RecordLayout(
            columns=columns, separator=separator, encoding=encoding, header=header
        )
    except (ValueError, LookupError) as exc:
        r.problem("columns" if "column" in str(exc) else "encoding", str(exc))
    needs_op = kind in DELTA_KINDS
    if needs_op and "op" not in columns:
        r.problem("columns", f"a {kind} feed needs an 'op' column (A/U add or update, D delete)")
    if not needs_op and "op" in columns:
        r.problem("columns", f"'op' is only for delta kinds ({', '.join(DELTA_KINDS)})")
    data_columns = [c for c in columns if c != "op"]
    if kind in ("profiles", "profiles_delta"):
        unknown = [c for c in data_columns if c not in ALL_FILE_COLUMNS]
        if unknown:
            r.problem(
                "columns", f"unknown profile columns {unknown}; known: {sorted(ALL_FILE_COLUMNS)}"
            )
    if kind in (
        "profiles",
        "profiles_delta",
        "list",
        "list_delta",
        "subscriptions",
        "subscriptions_delta",
        "targets",
    ):
        if columns and "msisdn" not in columns:
            r.problem("columns", "needs an 'msisdn' column")
    if (
        kind in ("catalogue", "subscriptions", "subscriptions_delta")
        and "product_id" not in columns
    ):
        r.problem("columns", "needs a 'product_id' column")
    if kind in ("list", "list_delta"):
        if category not in CATEGORIES:
            r.problem("category", f"one of {', '.join(CATEGORIES)}")
        elif (category in SCOPED_CATEGORIES) != bool(scope):
            r.problem(
                "scope",
                f"{category} {'needs' if category in SCOPED_CATEGORIES else 'takes no'} scope",
            )
        extra = set(data_columns) - {"msisdn", "reason", "expires_at"}
        if extra:
            r.problem(
                "columns",
                f"list files have msisdn, reason, expires_at (and op); not {sorted(extra)}",
            )
    elif category or scope:
        r.problem("category", "only list feeds have a category")
    if "{name}" not in check_name and "{stem}" not in check_name:
        r.problem("check_name", "must contain {name} or {stem}")
    if kind == "targets":
        try:
            if "campaign" not in re.compile(campaign_pattern).groupindex:
                r.problem("campaign_pattern", "needs a (?P<campaign>...) group")
        except re.error as exc:
            r.problem("campaign_pattern", f"not a regular expression: {exc}")
    if not r.ok or source is None or layout is None or kind is None:
        return None
    return FeedConfig(
        name=name,
        kind=kind,
        source=source,
        pattern=pattern,
        check_name=check_name,
        checksum=checksum,
        check_separator=check_separator,
        layout=layout,
        category=category,
        scope=scope,
        allow_empty=allow_empty,
        campaign_pattern=campaign_pattern,
        remove_remote=remove_remote,
    )


def parse_boss_files_config(table: Mapping[str, Any], key: str) -> BossFilesConfig:
    r = TableReader(table, key)
    work_dir = r.str("work_dir", "") or ""
    poll = r.duration("poll_interval", 30.0)
    settle = r.duration("settle_time", 10.0)
    feeds = []
    for name, sub in r.subtables("feeds").items():
        feed = _feed(name, sub)
        sub.check_unknown()
        if feed is not None:
            feeds.append(feed)
    profile_feeds = [f for f in feeds if f.kind == "profiles"]
    if len(profile_feeds) > 1:
        r.problem("feeds", "at most one full profiles feed (there is one profile index)")
    rr = r.table("report")
    destination_readers = rr.tables("destinations")
    report = ReportConfig(
        enabled=rr.bool("enabled", False),
        at=rr.str("at", "01:00") or "01:00",
        timezone=rr.timezone("timezone", "Asia/Shanghai"),
        prefix=rr.str("prefix", "EXEC_REPORT") or "EXEC_REPORT",
        encoding=rr.str("encoding", "utf-8", choices=list(ENCODINGS)) or "utf-8",
        separator=rr.str("separator", "|") or "|",
        checksum=rr.str("checksum", "md5", choices=list(ALGORITHMS)) or "md5",
        destinations=tuple(d for d in (read_source(t, "target") for t in destination_readers) if d),
        retries=rr.int("retries", 5, min=0, max=100),
        backoff=rr.duration("backoff", 5.0),
        backoff_max=rr.duration("backoff_max", 300.0),
    )
    if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", report.at):
        rr.problem("at", f'expected "HH:MM", got {report.at!r}')
    for t in destination_readers:
        t.check_unknown()
    rr.check_unknown()
    r.finish()
    return BossFilesConfig(
        work_dir=Path(work_dir) if work_dir else None,
        poll_interval=poll,
        settle_time=settle,
        feeds=tuple(feeds),
        report=report,
    )
