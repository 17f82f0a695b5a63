"""Signal source: a directory of capture files rotated in by a probe (``[plugins.signaling_pcap]``).

Entry point ``signaling_pcap = "plugins.signaling.pcap_dir"``. Files are taken through a
:class:`~plugins.signaling.spool.Spool` (complete files, in order, resumable, moved or marked
when done) and decoded by :mod:`adapters.sigtran` in a worker thread, chunk by chunk
(``chunk_packets`` packets per thread call, through a limiter of one), so the Trio loop never
blocks; each chunk's events are handed to the pipeline in batches of ``batch_size``. The
decoder (and its correlation state) lives as long as the source, across files, because an
SCCP connection may start in one rotated file and end in the next.

Also provides the ``pcap`` reader of ``gateway_event_readers`` (``gatewayctl preview --capture``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import trio

from adapters.sigtran.decoder import Decoder, FileDecoder
from adapters.sigtran.pcap import CaptureFormatError
from gateway.config_reader import TableReader
from gateway.contracts import SectionSpec
from gateway.hookspecs import hookimpl
from gateway.model import SignalEvent
from gateway.pipeline import ReadAhead, read_ahead
from plugins.signaling.config import CommonConfig, Shard, read_common
from plugins.signaling.events import CounterMirror, counters_fragment, to_events
from plugins.signaling.spool import Spool, SpoolConfig, read_spool, resolve_against_config

NAME = "signaling_pcap"
PATTERNS = ("*.pcap", "*.pcapng", "*.cap", "*.pcap[0-9]*")


@attrs.frozen(kw_only=True)
class PcapDirConfig:
    common: CommonConfig
    spool: SpoolConfig | None  # None: no directory configured, the source is off
    chunk_packets: int = 20_000


def parse_pcap_config(table: Mapping[str, Any], key: str) -> PcapDirConfig:
    r = TableReader(table, key)
    common = read_common(r, "pcap")
    spool = read_spool(r, PATTERNS)
    chunk = r.int("chunk_packets", 20_000, min=100, max=1_000_000)
    r.finish()
    return PcapDirConfig(common=common, spool=spool, chunk_packets=chunk)


class PcapDirectorySource:
    """The SignalSource; ``statistics()`` feeds ``gatewayctl status``."""

    def __init__(self, gateway: Any, config: PcapDirConfig) -> None:
        assert config.spool is not None
        self.config = config
        self.name = f"signaling_pcap:{config.common.name}"
        self.gateway = gateway
        progress = Path(gateway.state_dir) / "signaling" / f"{config.common.name}.progress"
        self.spool = Spool(resolve_against_config(config.spool, gateway), progress)
        self.decoder = Decoder(config.common.correlator())
        self.mirror = CounterMirror(gateway.metrics, config.common.name)
        self._limiter = trio.CapacityLimiter(1)
        self.current: str | None = None
        self._waiting: str | None = None  # a file read to a cut record, waiting for the rest
        self._last_look: str | None = None  # a cut file given one more read after a later file came
        self.events_sent = 0
        self.bad_files = 0

    def statistics(self) -> dict[str, Any]:
        return {
            "directory": str(self.spool.config.directory),
            "current_file": self.current,
            "files_done": self.spool.files_done,
            "bad_files": self.bad_files,
            "frames": self.decoder.frames,
            "events": self.events_sent,
            "open_connections": len(self.decoder.correlator.conns),
            "tmsi_cache": len(self.decoder.correlator.tmsis),
            **counters_fragment(self.decoder.errors, self.decoder.skipped),
        }

    async def run(self, sink: Any, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        log = self.gateway.logger(plugin=NAME, source=self.config.common.name)
        run = trio.to_thread.run_sync
        limiter = self._limiter
        task_status.started()
        directory = self.spool.config.directory
        if not await run(directory.is_dir, limiter=limiter):
            log.warning(
                "signaling.directory_missing",
                directory=str(directory),
                hint="create it or fix [plugins.signaling_pcap] directory; polling meanwhile",
            )
        log.info("signaling.pcap_started", directory=str(directory))
        while True:
            found = await run(self.spool.next_file, limiter=limiter)
            if found is None:
                await trio.sleep(self.spool.config.poll_interval)
                continue
            path, offset = found
            if not await self._read_file(path, offset, sink, log):
                # the newest file ends inside a record: the probe is still writing it
                await trio.sleep(self.spool.config.poll_interval)
                continue
            self._waiting = None
            await run(self.spool.finish, path, limiter=limiter)
            log.info("signaling.file_done", file=path.name, frames=self.decoder.frames)

    async def _read_file(self, path: Path, offset: int, sink: Any, log: Any) -> bool:
        """Decode ``path`` from ``offset``; False when it must be read again later.

        A probe that writes in place (``tcpdump -C``/``-G``) buffers its output: the newest
        file may end inside a record (or before its header is flushed) for longer than the
        settle time. Such a file is read up to its last whole record and kept (progress saved
        there) until the rest arrives or a later file shows the probe has moved on.
        """
        run, limiter = trio.to_thread.run_sync, self._limiter
        self.current = path.name
        common, decoder = self.config.common, self.decoder
        try:
            stream = await run(path.open, "rb", limiter=limiter)
        except OSError as exc:
            log.warning("signaling.file_unreadable", file=path.name, error=str(exc))
            self.bad_files += 1
            return True
        try:
            try:
                reader = await run(
                    lambda: FileDecoder(
                        stream, decoder, start_offset=offset, count_truncation=False
                    ),
                    limiter=limiter,
                )
            except CaptureFormatError as exc:
                short = await run(lambda: os.fstat(stream.fileno()).st_size < 24, limiter=limiter)
                if short and not await run(self.spool.later_exists, path, limiter=limiter):
                    return False  # the probe has not flushed the header yet
                if self._last_look != path.name:
                    # The header may have been written between our read and the size check:
                    # one more read before the file is set aside.
                    self._last_look = path.name
                    return False
                log.warning("signaling.file_not_a_capture", file=path.name, error=str(exc))
                decoder.count_error("pcap", "bad_magic")
                self.bad_files += 1
                return True
            if offset and self._waiting != path.name:
                log.info("signaling.resumed", file=path.name, offset=offset)
            frames_before = decoder.frames

            def step() -> list[SignalEvent]:
                return to_events(reader.step(self.config.chunk_packets), self.name, common.shard)

            async with read_ahead(sink, common.read_ahead) as ahead:
                while not reader.done:
                    events = await run(step, limiter=limiter)
                    await self._send(ahead, events)
                    self.mirror.add_frames(decoder.frames - frames_before)
                    frames_before = decoder.frames
                    self.mirror.update("signaling.decode_errors", decoder.errors)
                    self.mirror.update("signaling.skipped", decoder.skipped)
                    await ahead.settled()  # recorded once what precedes it is durable
                    # what was handed on is recorded even if a shutdown arrives meanwhile
                    with trio.CancelScope(shield=True):
                        await run(
                            self.spool.save_progress, path.name, reader.offset, limiter=limiter
                        )
            if reader.truncated:
                if not await run(self.spool.later_exists, path, limiter=limiter):
                    self._waiting = path.name
                    return False
                if self._last_look != path.name:
                    # The probe finishes a file before it starts the next one, but the tail
                    # may have landed after this read and before the later file was seen:
                    # read once more before calling the tail lost.
                    self._last_look = path.name
                    self._waiting = path.name
                    return False
                decoder.count_error("pcap", reader.reader.error)  # the tail will never come
                self.mirror.update("signaling.decode_errors", decoder.errors)
            return True
        finally:
            self.current = None
            with trio.CancelScope(shield=True):
                await run(stream.close, limiter=limiter)

    async def _send(self, ahead: ReadAhead, events: list[SignalEvent]) -> None:
        size = self.config.common.batch_size
        for start in range(0, len(events), size):
            await ahead.send(events[start : start + size])
        self.events_sent += len(events)
        self.mirror.add_events(len(events))


def read_pcap_events(
    path: str | Path, *, shard: Shard | None = None, home_plmns: tuple[str, ...] = ()
) -> Iterator[SignalEvent]:
    """Every event of one capture file, blocking (for previews and ``scripts/decode.py``)."""
    from adapters.sigtran.correlate import Correlator

    decoder = Decoder(Correlator(home_plmns=home_plmns))
    shard = shard or Shard()
    with open(path, "rb") as f:
        reader = FileDecoder(f, decoder)
        while not reader.done:
            yield from to_events(reader.step(), "pcap", shard)
    yield from to_events(decoder.finish(), "pcap", shard)


# -- hooks ----------------------------------------------------------------------------------------


@hookimpl
def gateway_config_sections():
    return [SectionSpec(name=NAME, parse=parse_pcap_config, optional=True)]


@hookimpl
def gateway_signal_sources(gateway):
    config: PcapDirConfig = gateway.plugin_config(NAME)
    if config.spool is None:
        return []
    return [PcapDirectorySource(gateway, config)]


@hookimpl
def gateway_event_readers():
    return {"pcap": read_pcap_events}
