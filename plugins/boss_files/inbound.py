"""Inbound feeds: find complete files, verify them against their check files, apply or quarantine.

One :class:`Feed` per ``[plugins.boss_files.feeds.<name>]``. Each poll:

1. list the source (local directory, FTP or SFTP); a data file is *ready* when its check
   file is there and its size has not changed for ``settle_time`` (a file still being
   written waits; with ``settle_time = 0`` the check file's presence is enough);
2. remote files are fetched into ``<work_dir>/incoming/<feed>/`` (``.part`` then renamed)
   and removed from the server; the local copy is what is verified and applied, and one
   left there by a crash is taken up at the next poll;
3. the check file must parse and agree (name, record count, byte size, checksum), else the
   pair goes to ``<work_dir>/quarantine/<feed>/`` with a ``.report.txt`` of the reasons;
4. a file (name and checksum) recorded in the applied-files table is never applied again (a
   second delivery is quarantined as a duplicate);
5. the file is applied (:mod:`.apply`): a bad record rejects the whole file, quarantined with
   every bad line number and reason;
6. applied files are moved to ``<work_dir>/archive/<feed>/<YYYYMMDD>/``.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import trio

from adapters.ifile.checkfile import MAX_CHECK_BYTES, CheckFile, CheckFileError, FileTally, compare
from adapters.ifile.transfer import Directory, FtpDirectory, LocalDirectory, SftpDirectory
from plugins.boss_files.apply import Applier, Rejected
from plugins.boss_files.config import FeedConfig, SourceConfig
from plugins.boss_files.state import FilesState

TALLY_BLOCK = 1 << 20


def open_directory(source: SourceConfig, limiter: trio.CapacityLimiter) -> Directory:
    if source.scheme == "ftp":
        return FtpDirectory(
            source.host,
            source.port,
            source.user,
            source.password or "",
            source.path,
            timeout=source.timeout,
            limiter=limiter,
        )
    if source.scheme == "sftp":
        return SftpDirectory(
            source.host,
            source.port,
            source.user,
            source.password,
            source.client_keys,
            source.known_hosts,
            source.path,
            timeout=source.timeout,
            limiter=limiter,
        )
    return LocalDirectory(Path(source.path), limiter=limiter)


def tally_file(path: Path, algorithm: str, header: bool) -> FileTally:
    tally = FileTally(algorithm=algorithm, header=header)
    with open(path, "rb") as handle:
        while block := handle.read(TALLY_BLOCK):
            tally.feed(block)
    return tally


def _move(src: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / src.name
    if dest.exists():
        dest = folder / f"{src.name}.{int(time.time() * 1000)}"
    shutil.move(src, dest)
    return dest


@attrs.define
class Feed:
    config: FeedConfig
    source: Directory
    work_dir: Path
    state: FilesState
    applier: Applier
    settle_time: float
    log: Any
    limiter: trio.CapacityLimiter = attrs.field(factory=lambda: trio.CapacityLimiter(1))
    #: name -> (size, when first seen at that size)
    _sightings: dict[str, tuple[int, float]] = attrs.field(factory=dict)
    counts: dict[str, int] = attrs.field(
        factory=lambda: {"polls": 0, "applied": 0, "quarantined": 0, "waiting": 0}
    )
    #: One pass at a time (the service's loop and ``gatewayctl bossfiles poll``).
    _lock: trio.Lock = attrs.field(factory=trio.Lock)
    #: Archives a crash interrupted have been finished (once, before the first pass).
    _archives_finished: bool = False

    @property
    def local(self) -> bool:
        return self.config.source.scheme == "local"

    @property
    def incoming(self) -> Path:
        if self.local:
            return Path(self.config.source.path)
        return self.work_dir / "incoming" / self.config.name

    def _data_files(self, listing: dict[str, int]) -> list[str]:
        """The data files of a listing, in name order (check files are not data files)."""
        checks = {self.config.check_for(n) for n in listing}
        return sorted(
            n
            for n in listing
            if fnmatch.fnmatchcase(n, self.config.pattern)
            and n not in checks
            and not n.endswith(".report.txt")
        )

    def _ready(self, name: str, listing: dict[str, int], now: float) -> bool:
        if self.config.check_for(name) not in listing:
            return False
        if self.settle_time <= 0:
            return True
        size = listing[name]
        seen = self._sightings.get(name)
        if seen is None or seen[0] != size:
            self._sightings[name] = (size, now)
            return False
        return now - seen[1] >= self.settle_time

    async def poll_once(self, now: float | None = None) -> list[tuple[str, str]]:
        """One pass over the source; ``[(file name, outcome)]`` for the files taken."""
        async with self._lock:
            try:
                return await self._poll(trio.current_time() if now is None else now)
            finally:
                self.counts["polls"] += 1

    async def _poll(self, now: float) -> list[tuple[str, str]]:
        done: list[tuple[str, str]] = []
        if not self._archives_finished:
            await self._finish_archives()
            self._archives_finished = True
        if not self.local:
            self.incoming.mkdir(parents=True, exist_ok=True)
            done += await self._process_incoming()  # left by a crash, or just fetched
        listing = await self.source.list()
        names = self._data_files(listing)
        self._sightings = {n: s for n, s in self._sightings.items() if n in listing}
        waiting = 0
        for name in names:
            if not self._ready(name, listing, now):
                waiting += 1
                continue
            self._sightings.pop(name, None)
            check = self.config.check_for(name)
            if self.local:
                done.append((name, await self.process(self.incoming / name, self.incoming / check)))
                continue
            await self.source.fetch(check, self.incoming / check)
            await self.source.fetch(name, self.incoming / name)
            if self.config.remove_remote:
                await self.source.delete(name)
                await self.source.delete(check)
            done.append((name, await self.process(self.incoming / name, self.incoming / check)))
        self.counts["waiting"] = waiting
        return done

    async def _process_incoming(self) -> list[tuple[str, str]]:
        files = await trio.to_thread.run_sync(
            lambda: {p.name: 0 for p in self.incoming.iterdir() if p.is_file()},
            limiter=self.limiter,
        )
        out = []
        for name in self._data_files(files):
            if self.config.check_for(name) in files:
                check = self.incoming / self.config.check_for(name)
                out.append((name, await self.process(self.incoming / name, check)))
        return out

    async def process(self, data: Path, check_path: Path) -> str:
        """Verify and apply one local pair; returns the outcome."""
        log = self.log.bind(feed=self.config.name, file=data.name)
        cfg = self.config

        def read_check() -> bytes:
            with open(check_path, "rb") as handle:
                return handle.read(MAX_CHECK_BYTES + 1)

        try:
            check = CheckFile.parse(
                await trio.to_thread.run_sync(read_check, limiter=self.limiter),
                algorithm=cfg.checksum,
                separator=cfg.check_separator,
            )
        except CheckFileError as exc:
            return await self._quarantine(data, check_path, [f"check file: {exc}"], log)
        tally = await trio.to_thread.run_sync(
            tally_file, data, cfg.checksum, cfg.layout.header, limiter=self.limiter
        )
        problems = compare(check, tally, data.name)
        if problems:
            return await self._quarantine(data, check_path, problems, log)
        earlier = await self.state.applied(data.name, tally.checksum)
        if earlier is not None:
            if not earlier["archived"]:  # applied, then a crash before it was archived
                await self._archive(data, check_path, earlier["id"])
                return "archived"
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(earlier["applied_at"]))
            return await self._quarantine(
                data,
                check_path,
                [f"duplicate: this file (same name and checksum) was applied at {when}"],
                log,
            )
        log.info("boss_files.loading", kind=cfg.kind, records=tally.records, bytes=tally.size)
        started = time.perf_counter()
        try:
            applied_id = await self.applier.apply(cfg, data, tally.checksum, tally.records)
        except Rejected as exc:
            return await self._quarantine(data, check_path, exc.reasons, log)
        await self._archive(data, check_path, applied_id)
        self.counts["applied"] += 1
        log.info(
            "boss_files.applied",
            kind=cfg.kind,
            records=tally.records,
            seconds=round(time.perf_counter() - started, 3),
        )
        return "applied"

    async def _finish_archives(self) -> None:
        """A file applied but not marked archived whose data file has left the incoming
        directory was being archived when the process died (the data file moved, then the
        check file, then the mark): move what is left and mark it. One whose data file is
        still there is archived by the pass itself (same name and checksum)."""
        for applied_id, name in await self.state.unarchived(self.config.name):
            data = self.incoming / name
            check = self.incoming / self.config.check_for(name)
            if data.exists():
                continue
            folder = self._archive_folder()

            def move(check: Path = check, folder: Path = folder) -> None:
                if check.exists():
                    _move(check, folder)
                    _fsync(folder)

            await trio.to_thread.run_sync(move, limiter=self.limiter)
            await self.state.mark_archived(applied_id)
            self.log.warning(
                "boss_files.archive_finished", feed=self.config.name, file=name, id=applied_id
            )

    def _archive_folder(self) -> Path:
        return self.work_dir / "archive" / self.config.name / time.strftime("%Y%m%d")

    async def _archive(self, data: Path, check: Path, applied_id: int) -> None:
        folder = self._archive_folder()

        def move() -> None:
            _move(data, folder)
            _move(check, folder)
            _fsync(folder)

        await trio.to_thread.run_sync(move, limiter=self.limiter)
        await self.state.mark_archived(applied_id)

    async def _quarantine(self, data: Path, check: Path, reasons: list[str], log: Any) -> str:
        folder = self.work_dir / "quarantine" / self.config.name

        def move() -> None:
            moved = _move(data, folder)
            if check.exists():
                _move(check, folder)
            report = folder / f"{moved.name}.report.txt"
            report.write_text(
                f"{data.name} rejected by feed {self.config.name!r} ({self.config.kind}):\n"
                + "".join(f"{r}\n" for r in reasons),
                encoding="utf-8",
            )
            _fsync(folder)

        await trio.to_thread.run_sync(move, limiter=self.limiter)
        await self.state.record_quarantine(self.config.name, data.name, reasons)
        self.counts["quarantined"] += 1
        log.warning("boss_files.quarantined", reasons=reasons[:5], bad_records=len(reasons))
        return "quarantined"

    async def serve(self, interval: Callable[[], float]) -> None:
        """Poll forever; an unreachable server or a failing apply is logged and retried."""
        log = self.log.bind(feed=self.config.name)
        while True:
            try:
                await self.poll_once()
            except Exception as exc:
                log.error("boss_files.poll_failed", error=str(exc), source=self.config.source.label)
            await trio.sleep(interval())


def _fsync(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
