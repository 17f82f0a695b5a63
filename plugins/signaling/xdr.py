"""Signal source: XDR records from a signaling probe (``[plugins.signaling_xdr]``).

Entry point ``signaling_xdr = "plugins.signaling.xdr"``. An XDR (x detail record) is one
delimited text line per subscriber event, already decoded by the probe. The record layout is
configured by column names (``columns = ["time", "imsi", "event", "lac", "ci", "-"]``: ``-``
skips a column), the probe's event codes are mapped to event kinds (``[...event_codes]``), and
timestamps are epoch seconds, epoch milliseconds or a ``strftime`` pattern in a timezone.

Records arrive over TCP (``listen``: one record per line, any number of probe connections) and/or
as files in a spool directory (``directory``: complete files, in order, resumable, done files
moved; see :mod:`plugins.signaling.spool`). A bad record (wrong column count, bad time, unknown
event code, bad number, line too long) is counted under ``signaling.decode_errors{layer=xdr}``
and skipped.
"""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import trio

from gateway.config_reader import TableReader
from gateway.contracts import SectionSpec
from gateway.hookspecs import hookimpl
from gateway.model import CallDirection, CallOutcome, EventKind, SignalEvent, SsOperation
from gateway.pipeline import ReadAhead, read_ahead
from plugins.signaling.config import CommonConfig, read_common
from plugins.signaling.events import CounterMirror, counters_fragment, signal_msisdn
from plugins.signaling.spool import Spool, SpoolConfig, read_spool, resolve_against_config

NAME = "signaling_xdr"
SKIP = "-"
_TEXT = {"imsi", "msisdn", "imei", "previous_imei", "mcc", "mnc", "peer", "service_code"}
_INT = {"tmsi", "lac", "ci", "cause"}
_FLOAT = {"duration"}
#: Columns whose values are a closed vocabulary (gateway.model): another value is a bad record.
_CHOICE = {
    "direction": frozenset(d.value for d in CallDirection),
    "outcome": frozenset(o.value for o in CallOutcome),
    "ss_operation": frozenset(o.value for o in SsOperation),
}
COLUMNS = {"time", "event"} | _TEXT | _INT | _FLOAT | set(_CHOICE)


class BadRecord(ValueError):
    """A record that does not fit the configured layout; ``reason`` names the counter."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@attrs.frozen(kw_only=True)
class XdrConfig:
    common: CommonConfig
    columns: tuple[str, ...] = ()
    delimiter: str = "|"
    time_format: str = "epoch"
    timezone: str = "UTC"
    event_codes: Mapping[str, EventKind] = attrs.field(factory=dict)
    header: bool = False
    max_line: int = 4096
    listen_host: str | None = None
    listen_port: int = 0
    spool: SpoolConfig | None = None
    chunk_lines: int = 20_000


def parse_xdr_config(table: Mapping[str, Any], key: str) -> XdrConfig:
    r = TableReader(table, key)
    common = read_common(r, "xdr")
    columns = r.str_list("columns", ())
    for column in columns or ():
        if column != SKIP and column not in COLUMNS:
            r.problem(
                "columns", f"unknown column {column!r}; known: {', '.join(sorted(COLUMNS))}, or '-'"
            )
    named = [c for c in columns or () if c != SKIP]
    if len(named) != len(set(named)):
        r.problem("columns", "a column name appears twice")
    listen = r.str("listen", None)
    spool = read_spool(r, ("*.xdr", "*.csv", "*.txt"))
    if (listen or spool) and not {"time", "event"} <= set(named):
        r.problem("columns", "must name at least the 'time' and 'event' columns")
    host, port = None, 0
    if listen:
        host, _, port_text = listen.rpartition(":")
        if not host or not port_text.isdigit() or int(port_text) > 65535:
            r.problem("listen", f'expected "HOST:PORT" such as "0.0.0.0:9400", got {listen!r}')
        host, port = host.strip("[]") or None, int(port_text) if port_text.isdigit() else 0
    time_format = r.str("time_format", "epoch")
    tz = r.str("timezone", "UTC")
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        r.problem("timezone", f"unknown timezone {tz!r}")
    codes: dict[str, EventKind] = {}
    sub = r.table("event_codes")
    for code in sub.keys():
        kind = sub.str(code, choices=[k.value for k in EventKind])
        if kind is not None:
            codes[code] = EventKind(kind)
    delimiter = r.str("delimiter", "|")
    if delimiter is not None and len(delimiter) != 1:
        r.problem("delimiter", "must be one character")
    config = XdrConfig(
        common=common,
        columns=tuple(columns or ()),
        delimiter=delimiter or "|",
        time_format=time_format or "epoch",
        timezone=tz or "UTC",
        event_codes=codes,
        header=r.bool("header", False),
        max_line=r.int("max_line", 4096, min=64, max=1 << 20),
        listen_host=host,
        listen_port=port,
        spool=spool,
        chunk_lines=r.int("chunk_lines", 20_000, min=10),
    )
    r.finish()
    return config


class XdrParser:
    """One line in, one :class:`SignalEvent` out, or :class:`BadRecord`."""

    def __init__(self, config: XdrConfig, source: str) -> None:
        self.config = config
        self.source = source
        self._layout = [(i, c) for i, c in enumerate(config.columns) if c != SKIP]
        self._width = len(config.columns)
        self._tz = zoneinfo.ZoneInfo(config.timezone)
        kinds = {k.value: k for k in EventKind}
        self._kinds = dict(config.event_codes) or kinds

    def _time(self, text: str) -> float:
        fmt = self.config.time_format
        if fmt == "epoch":
            return float(text)
        if fmt == "epoch_ms":
            return int(text) / 1000.0
        stamp = dt.datetime.strptime(text, fmt)
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=self._tz)
        return stamp.timestamp()

    def parse(self, line: str) -> SignalEvent:
        fields = line.rstrip("\r\n").split(self.config.delimiter)
        if len(fields) != self._width:
            raise BadRecord("column_count")
        values: dict[str, Any] = {}
        for index, column in self._layout:
            text = fields[index].strip()
            if not text:
                continue
            if column == "time":
                try:
                    stamp = self._time(text)
                except (ValueError, OverflowError):
                    raise BadRecord("bad_time") from None
                if not math.isfinite(stamp):
                    raise BadRecord("bad_time")
                values["timestamp"] = stamp
            elif column == "event":
                kind = self._kinds.get(text)
                if kind is None:
                    raise BadRecord("unknown_event")
                values["kind"] = kind
            elif column in _INT:
                try:
                    values[column] = int(text, 16) if text[:2].lower() == "0x" else int(text)
                except ValueError:
                    raise BadRecord(f"bad_{column}") from None
            elif column in _FLOAT:
                try:
                    value = float(text)
                except ValueError:
                    raise BadRecord(f"bad_{column}") from None
                if not math.isfinite(value) or value < 0:
                    raise BadRecord(f"bad_{column}")
                values[column] = value
            elif column in _CHOICE:
                if text not in _CHOICE[column]:
                    raise BadRecord(f"bad_{column}")
                values[column] = text
            elif column == "msisdn":  # one number form (gateway/numbers.py), else refused
                values[column] = signal_msisdn(text)
                if values[column] is None:
                    raise BadRecord("bad_msisdn")
            else:
                values[column] = text
        if "timestamp" not in values:
            raise BadRecord("bad_time")
        if "kind" not in values:
            raise BadRecord("unknown_event")
        return SignalEvent(source=self.source, **values)


class XdrSource:
    """The SignalSource: a TCP listener and/or a spool directory of XDR files."""

    def __init__(self, gateway: Any, config: XdrConfig) -> None:
        self.config = config
        self.gateway = gateway
        self.name = f"signaling_xdr:{config.common.name}"
        self.parser = XdrParser(config, self.name)
        self.errors: dict[tuple[str, str], int] = {}
        self.skipped: dict[tuple[str, str], int] = {}
        self.records = 0
        self.events_sent = 0
        self.port: int | None = None
        self.connections = 0
        self.mirror = CounterMirror(gateway.metrics, config.common.name)
        self._limiter = trio.CapacityLimiter(1)
        self.spool = None
        if config.spool is not None:
            progress = Path(gateway.state_dir) / "signaling" / f"{config.common.name}.progress"
            self.spool = Spool(resolve_against_config(config.spool, gateway), progress)

    def statistics(self) -> dict[str, Any]:
        return {
            "listen_port": self.port,
            "connections": self.connections,
            "records": self.records,
            "events": self.events_sent,
            "files_done": self.spool.files_done if self.spool else 0,
            **counters_fragment(self.errors, self.skipped),
        }

    def parse_lines(self, lines: list[str]) -> list[SignalEvent]:
        """Parse, count bad records, apply the shard (runs in the caller's thread)."""
        out = []
        parse, shard = self.parser.parse, self.config.common.shard
        for line in lines:
            if not line.strip():
                continue
            self.records += 1
            try:
                event = parse(line)
            except BadRecord as exc:
                key = ("xdr", exc.reason)
                self.errors[key] = self.errors.get(key, 0) + 1
                continue
            if shard.keeps(event.imsi):
                out.append(event)
        return out

    async def _send(self, ahead: ReadAhead, events: list[SignalEvent]) -> None:
        size = self.config.common.batch_size
        for start in range(0, len(events), size):
            await ahead.send(events[start : start + size])
        self.events_sent += len(events)
        self.mirror.add_events(len(events))
        self.mirror.update("signaling.decode_errors", self.errors)

    async def run(self, sink: Any, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        log = self.gateway.logger(plugin=NAME, source=self.config.common.name)
        async with trio.open_nursery() as nursery:
            if self.config.listen_host is not None:
                listeners = await nursery.start(
                    partial(trio.serve_tcp, host=self.config.listen_host),
                    partial(self._serve_probe, sink=sink, log=log),
                    self.config.listen_port,
                )
                self.port = listeners[0].socket.getsockname()[1]
                log.info("signaling.xdr_listening", host=self.config.listen_host, port=self.port)
            if self.spool is not None:
                nursery.start_soon(self._serve_files, sink, log)
            task_status.started()

    # -- TCP -------------------------------------------------------------------------------

    async def _serve_probe(self, stream: trio.SocketStream, sink: Any, log: Any) -> None:
        self.connections += 1
        peer = "?"
        try:
            peer = "{}:{}".format(*stream.socket.getpeername()[:2])
            log.info("signaling.xdr_connected", peer=peer)
            pending = b""
            discarding = False
            limit = self.config.max_line
            async with read_ahead(sink, self.config.common.read_ahead) as ahead:
                async for data in stream:
                    pending += data
                    *lines, pending = pending.split(b"\n")
                    if discarding and lines:
                        lines, discarding = lines[1:], False  # the end of an over-long line
                    if len(pending) > limit:
                        if not discarding:
                            self._count_error("line_too_long")
                        pending, discarding = b"", True
                    good = []
                    for raw in lines:
                        if len(raw) > limit:
                            self._count_error("line_too_long")
                        else:
                            good.append(raw.decode("utf-8", "replace"))
                    events = self.parse_lines(good)
                    if events:
                        await self._send(ahead, events)
                if pending.strip() and not discarding:
                    await self._send(ahead, self.parse_lines([pending.decode("utf-8", "replace")]))
        except (trio.BrokenResourceError, OSError) as exc:
            log.warning("signaling.xdr_connection_lost", peer=peer, error=str(exc))
        finally:
            self.connections -= 1
            self.mirror.update("signaling.decode_errors", self.errors)
            log.info("signaling.xdr_disconnected", peer=peer)

    def _count_error(self, reason: str) -> None:
        key = ("xdr", reason)
        self.errors[key] = self.errors.get(key, 0) + 1

    # -- files -----------------------------------------------------------------------------

    async def _serve_files(self, sink: Any, log: Any) -> None:
        run, limiter, spool = trio.to_thread.run_sync, self._limiter, self.spool
        assert spool is not None
        while True:
            found = await run(spool.next_file, limiter=limiter)
            if found is None:
                await trio.sleep(spool.config.poll_interval)
                continue
            path, offset = found
            try:
                stream = await run(path.open, "rb", limiter=limiter)
            except OSError as exc:
                log.warning("signaling.file_unreadable", file=path.name, error=str(exc))
            else:
                try:
                    await self._read_file(path, stream, offset, sink)
                finally:
                    with trio.CancelScope(shield=True):
                        await run(stream.close, limiter=limiter)
            await run(spool.finish, path, limiter=limiter)
            log.info("signaling.file_done", file=path.name, records=self.records)

    async def _read_file(self, path: Path, stream: Any, offset: int, sink: Any) -> None:
        run, limiter, spool = trio.to_thread.run_sync, self._limiter, self.spool
        chunk, limit, header = self.config.chunk_lines, self.config.max_line, self.config.header

        def step(position: int) -> tuple[list[SignalEvent], int, bool]:
            stream.seek(position)
            if position == 0 and header:
                stream.readline(limit + 2)
            lines = []
            for _ in range(chunk):
                raw = stream.readline(limit + 2)
                if not raw:
                    return self.parse_lines(lines), stream.tell(), True
                if len(raw) > limit and not raw.endswith(b"\n"):
                    self._count_error("line_too_long")
                    while raw and not raw.endswith(b"\n"):
                        raw = stream.readline(1 << 16)
                    continue
                lines.append(raw.decode("utf-8", "replace"))
            return self.parse_lines(lines), stream.tell(), False

        done = False
        async with read_ahead(sink, self.config.common.read_ahead) as ahead:
            while not done:
                events, offset, done = await run(step, offset, limiter=limiter)
                await self._send(ahead, events)
                await ahead.settled()  # the position is recorded once what precedes it is durable
                with trio.CancelScope(shield=True):
                    await run(spool.save_progress, path.name, offset, limiter=limiter)


# -- hooks ----------------------------------------------------------------------------------------


@hookimpl
def gateway_config_sections():
    return [SectionSpec(name=NAME, parse=parse_xdr_config, optional=True)]


@hookimpl
def gateway_signal_sources(gateway):
    config: XdrConfig = gateway.plugin_config(NAME)
    if config.listen_host is None and config.spool is None:
        return []
    return [XdrSource(gateway, config)]
