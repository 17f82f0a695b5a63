"""Applying a verified interface file to the core: profiles, lists, products, target lists.

Each kind goes where the core keeps it, through the core's public APIs:

- ``profiles``: the file becomes a *snapshot* (UTF-8, header line, under
  ``<work_dir>/profiles/``) loaded by the core's :func:`gateway.profiles.load_profiles` into
  a new index, swapped in by :meth:`ProfileHolder.replace` (the pipeline sees the old index or
  the new, never half). The applied-files row names the snapshot; at start the newest one is
  loaded again, so the index in force survives a restart.
- ``profiles_delta``: the index is column arrays sorted by key, with no in-place update; the
  increment is merged into the last snapshot (add/update/delete by MSISDN), and the merged
  snapshot is loaded and swapped like a full file. So an index is always "the last full plus
  every increment since", built whole and swapped atomically.
- ``list`` / ``list_delta``: contact control's list API: :meth:`ListStore.replace` (one
  transaction, one swap) for a full list; ``add``/``remove`` for an increment. A full list
  with no records is refused unless the feed says ``allow_empty = true`` (an empty export is
  far more often a failed job than an emptied list: fail closed).
- ``catalogue`` / ``subscriptions`` (+ ``_delta``): this plugin's tables, written in the same
  transaction as the applied-files row.
- ``targets``: the campaign named by the file name gets the list as its target list: a
  normalised list file under ``<work_dir>/targets/`` read by the campaigns loader's
  :func:`read_target_list` and stored with :meth:`CampaignStore.put`.

Atomicity across a crash (kill -9): product kinds are one transaction. For the others the
change and the applied-files row are two commits, in that order; a crash between them leaves
the file in the incoming directory, not yet recorded, and it is applied again at restart.
That second application has the same result (a replace or a snapshot load is idempotent,
adding an entry that is there or removing one that is not changes nothing), so the file takes
effect once. A profile snapshot is referenced only by its applied-files row: a crash before
that commit leaves an orphan snapshot that is never loaded (and is removed at the next load).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import attrs
import trio

from adapters.ifile.records import RecordError, split_records
from adapters.ifile.transfer import PART, fsync_dir, write_atomically
from gateway.campaigns.loader import read_target_list
from gateway.numbers import NumberError, NumberPlan, active_plan
from gateway.profiles.holder import ProfileHolder
from gateway.profiles.index import ProfileIndex
from gateway.profiles.loader import ProfileFileError, load_profiles
from plugins.boss_files.config import DELETE_OPS, UPSERT_OPS, FeedConfig
from plugins.boss_files.state import FilesState

BLOCK = 4 << 20  # transcoding block (whole lines added)
SNAPSHOT_GLOB = "snapshot-*.csv"


class Rejected(Exception):
    """The file's content cannot be applied; ``reasons`` go to the quarantine report."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons[:3]))
        self.reasons = reasons


def _report(errors: list[RecordError]) -> list[str]:
    return [f"line {e.line}: {e.reason}" for e in errors]


def validators(plan: NumberPlan, *, op: bool) -> dict[str, Any]:
    def msisdn(text: str) -> str:
        try:
            return plan.normalise(text)
        except NumberError as exc:
            raise ValueError(f"not a usable MSISDN: {exc}") from None

    def operation(text: str) -> str:
        text = text.upper()
        if text not in UPSERT_OPS | DELETE_OPS:
            raise ValueError(f"op must be one of {sorted(UPSERT_OPS | DELETE_OPS)}")
        return "D" if text in DELETE_OPS else "A"

    def expires(text: str) -> float | None:
        if not text:
            return None
        value = float(text)
        if not 0 < value < 1e11:
            raise ValueError("expires_at must be a Unix time in seconds, or empty")
        return value

    def required(text: str) -> str:
        if not text:
            raise ValueError("empty")
        return text

    out: dict[str, Any] = {"msisdn": msisdn, "expires_at": expires, "product_id": required}
    if op:
        out["op"] = operation
    return out


def parse_rows(feed: FeedConfig, data: bytes, plan: NumberPlan) -> list[dict[str, Any]]:
    rows, errors = split_records(
        data, feed.layout, validators(plan, op="op" in feed.layout.columns)
    )
    if errors:
        raise Rejected(_report(errors))
    return rows


# -- profile snapshots -----------------------------------------------------------------------

_LINE = re.compile(r"line (\d+)")


def _profile_error(exc: ProfileFileError, snapshot: Path, name: str, shift: int) -> str:
    """The loader's message in terms of the data file (its name, its line numbers)."""
    text = str(exc).replace(str(snapshot), name)
    return _LINE.sub(lambda m: f"line {int(m.group(1)) - shift}", text)


def _every_bad_line(feed: FeedConfig, path: Path) -> list[str]:
    """On a rejected profile file: every line with a wrong field count or a bad MSISDN.

    The core's loader stops at the first problem (it is built for speed); this second pass,
    only on the failure path, gives the quarantine report all of them. Empty when the
    problem is of another kind (a duplicate number, an IMSI): the loader's message says it.
    """
    plan = active_plan()
    checks = {"msisdn": validators(plan, op=False)["msisdn"]}
    _, errors = split_records(path.read_bytes(), feed.layout, checks)
    return _report(errors)


def transcode_snapshot(feed: FeedConfig, data_path: Path, target: Path) -> None:
    """Write ``data_path`` as a UTF-8 snapshot with a header line naming ``feed``'s columns."""
    layout = feed.layout
    encoding = layout.encoding
    with open(data_path, "rb") as src, open(target, "wb") as out:
        out.write((layout.separator.join(layout.columns) + "\n").encode())
        if layout.header:
            src.readline()
        while True:
            block = src.read(BLOCK)
            if not block:
                break
            if block[-1:] != b"\n":  # never cut a character: no GBK/GB18030 byte is 0x0A
                block += src.readline()
            if encoding != "utf-8":
                try:
                    block = block.decode(encoding).encode("utf-8")
                except UnicodeDecodeError as exc:
                    raise Rejected([f"not valid {encoding}: {exc.reason}"]) from None
            out.write(block)
        out.flush()
        os.fsync(out.fileno())


def merge_snapshot(
    feed: FeedConfig, base: Path, rows: list[dict[str, Any]], target: Path, plan: NumberPlan
) -> tuple[int, int]:
    """Write ``base`` with ``rows`` (delta records) applied to ``target``; (upserts, deletes)."""
    with open(base, "rb") as handle:
        header = handle.readline()
        body = handle.read()
    columns = header.decode().rstrip("\r\n").split(feed.layout.separator)
    wanted = [c for c in feed.layout.columns if c != "op"]
    if set(wanted) != set(columns):
        raise Rejected(
            [f"delta columns {wanted} differ from the profile snapshot's columns {columns}"]
        )
    sep = feed.layout.separator.encode()
    position = columns.index("msisdn")
    lines = body.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    keys = plan.normalise_column([line.split(sep)[position] for line in lines])
    merged = dict(zip(keys, lines, strict=True))
    upserts = deletes = 0
    for row in rows:
        key = int(row["msisdn"])
        if row["op"] == "D":
            deletes += merged.pop(key, None) is not None
        else:
            merged[key] = feed.layout.separator.join(str(row[c] or "") for c in columns).encode()
            upserts += 1
    with open(target, "wb") as out:
        out.write(header)
        out.write(b"\n".join(merged.values()))
        if merged:
            out.write(b"\n")
        out.flush()
        os.fsync(out.fileno())
    return upserts, deletes


@attrs.define
class Applier:
    """Applies verified files of every kind; see the module docstring."""

    gateway: Any
    state: FilesState
    work_dir: Path
    limiter: trio.CapacityLimiter = attrs.field(factory=lambda: trio.CapacityLimiter(1))

    @property
    def snapshots(self) -> Path:
        return self.work_dir / "profiles"

    async def apply(self, feed: FeedConfig, path: Path, checksum: str, records: int) -> int:
        """Apply ``path`` (verified against its check file); the applied-files row id."""
        handler = getattr(self, f"_apply_{feed.kind}")
        applied_id: int = await handler(feed, path, checksum, records)
        return applied_id

    async def _thread(self, fn: Any, *args: Any) -> Any:
        return await trio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    async def _read_rows(self, feed: FeedConfig, path: Path) -> list[dict[str, Any]]:
        plan = active_plan()
        return await self._thread(lambda: parse_rows(feed, path.read_bytes(), plan))  # type: ignore[no-any-return]

    async def _record(
        self, feed: FeedConfig, path: Path, checksum: str, records: int, **kw: Any
    ) -> int:
        return await self.state.transaction(
            lambda conn: FilesState.record_applied(
                conn,
                feed=feed.name,
                kind=feed.kind,
                name=path.name,
                checksum=checksum,
                records=records,
                **kw,
            )
        )

    # -- profiles ---------------------------------------------------------------------------

    def _holder(self) -> ProfileHolder:
        holder = self.gateway.profiles
        if holder is None:
            raise RuntimeError("the core has no profile holder (gateway.profiles)")
        return holder  # type: ignore[no-any-return]

    async def _swap_snapshot(
        self, feed: FeedConfig, path: Path, checksum: str, records: int, tmp: Path, shift: int
    ) -> int:
        """Load ``tmp`` as the new index; name it, record it, swap it in."""
        holder = self._holder()

        def load() -> ProfileIndex:
            try:
                return load_profiles(tmp, delimiter=feed.layout.separator)
            except ProfileFileError as exc:
                reasons = _every_bad_line(feed, path) or [
                    _profile_error(exc, tmp, path.name, shift)
                ]
                raise Rejected(reasons) from None

        index = await self._thread(load)
        final = self.snapshots / f"snapshot-{int(time.time() * 1000)}-{checksum[:12]}.csv"
        os.replace(tmp, final)
        fsync_dir(self.snapshots)
        applied_id = await self._record(feed, path, checksum, records, snapshot=str(final))
        carried = holder.replace(index)
        holder.last_error = None
        self.gateway.logger(plugin="boss_files").info(
            "boss_files.profiles_swapped", feed=feed.name, subscribers=len(index), carried=carried
        )
        await self._thread(self._remove_old_snapshots, final)
        return applied_id

    def _remove_old_snapshots(self, keep: Path) -> None:
        for old in self.snapshots.glob(SNAPSHOT_GLOB):
            if old != keep:
                old.unlink(missing_ok=True)
        for part in self.snapshots.glob("*" + PART):
            part.unlink(missing_ok=True)

    async def _apply_profiles(
        self, feed: FeedConfig, path: Path, checksum: str, records: int
    ) -> int:
        self.snapshots.mkdir(parents=True, exist_ok=True)
        tmp = self.snapshots / f"incoming-{checksum[:12]}.csv{PART}"
        try:
            await self._thread(transcode_snapshot, feed, path, tmp)
            return await self._swap_snapshot(
                feed, path, checksum, records, tmp, 0 if feed.layout.header else 1
            )
        finally:
            tmp.unlink(missing_ok=True)

    async def _apply_profiles_delta(
        self, feed: FeedConfig, path: Path, checksum: str, records: int
    ) -> int:
        base = await self.state.latest_snapshot()
        if base is None or not Path(base).exists():
            raise Rejected(["no full profile file has been applied yet: a delta needs a base"])
        rows = await self._read_rows(feed, path)
        self.snapshots.mkdir(parents=True, exist_ok=True)
        tmp = self.snapshots / f"incoming-{checksum[:12]}.csv{PART}"
        plan = active_plan()
        try:
            await self._thread(merge_snapshot, feed, Path(base), rows, tmp, plan)
            return await self._swap_snapshot(feed, path, checksum, records, tmp, 0)
        finally:
            tmp.unlink(missing_ok=True)

    async def restore_profiles(self) -> int | None:
        """Load the snapshot in force (at start); the number of subscribers, None if none."""
        base = await self.state.latest_snapshot()
        if base is None:
            return None
        holder = self._holder()
        try:
            index = await self._thread(lambda: load_profiles(base, delimiter=_separator_of(base)))
        except ProfileFileError as exc:
            holder.last_error = str(exc)
            self.gateway.logger(plugin="boss_files").error(
                "boss_files.snapshot_unreadable", path=base, reason=str(exc)
            )
            return None
        holder.replace(index)
        return len(index)

    # -- lists ------------------------------------------------------------------------------

    def _lists(self) -> Any:
        control = self.gateway.contact_control
        lists = getattr(control, "lists", None)
        if lists is None:
            raise RuntimeError("contact control has no lists (is [contact] configured?)")
        return lists

    async def _apply_list(self, feed: FeedConfig, path: Path, checksum: str, records: int) -> int:
        rows = await self._read_rows(feed, path)
        if not rows and not feed.allow_empty:
            raise Rejected(
                [
                    f"an empty full {feed.category} list would remove every entry; refused "
                    f"(set allow_empty = true on feed {feed.name!r} to accept empty lists)"
                ]
            )
        entries = [(r["msisdn"], r.get("reason") or "", r.get("expires_at")) for r in rows]
        await self._lists().replace(
            feed.category, entries, scope=feed.scope, source=f"boss_files:{feed.name}"
        )
        return await self._record(feed, path, checksum, records)

    async def _apply_list_delta(
        self, feed: FeedConfig, path: Path, checksum: str, records: int
    ) -> int:
        rows = await self._read_rows(feed, path)
        lists = self._lists()
        for row in rows:
            if row["op"] == "D":
                await lists.remove(feed.category, row["msisdn"], scope=feed.scope)
            else:
                await lists.add(
                    feed.category,
                    row["msisdn"],
                    scope=feed.scope,
                    source=f"boss_files:{feed.name}",
                    reason=row.get("reason") or "",
                    expires_at=row.get("expires_at"),
                )
        return await self._record(feed, path, checksum, records)

    # -- products ---------------------------------------------------------------------------

    async def _products(
        self, feed: FeedConfig, path: Path, checksum: str, records: int, write: Any
    ) -> int:
        rows = await self._read_rows(feed, path)

        def both(conn: Any) -> int:
            write(conn, rows)
            return FilesState.record_applied(
                conn,
                feed=feed.name,
                kind=feed.kind,
                name=path.name,
                checksum=checksum,
                records=records,
            )

        return await self.state.transaction(both)

    async def _apply_catalogue(
        self, feed: FeedConfig, path: Path, checksum: str, records: int
    ) -> int:
        return await self._products(feed, path, checksum, records, FilesState.replace_catalogue)

    async def _apply_subscriptions(
        self, feed: FeedConfig, path: Path, checksum: str, records: int
    ) -> int:
        return await self._products(feed, path, checksum, records, FilesState.replace_subscriptions)

    async def _apply_subscriptions_delta(
        self, feed: FeedConfig, path: Path, checksum: str, records: int
    ) -> int:
        def write(conn: Any, rows: list[dict[str, Any]]) -> None:
            FilesState.delete_subscriptions(conn, [r for r in rows if r["op"] == "D"])
            FilesState.upsert_subscriptions(
                conn, [{k: v for k, v in r.items() if k != "op"} for r in rows if r["op"] != "D"]
            )

        return await self._products(feed, path, checksum, records, write)

    # -- campaign target lists --------------------------------------------------------------

    async def _apply_targets(
        self, feed: FeedConfig, path: Path, checksum: str, records: int
    ) -> int:
        match = re.search(feed.campaign_pattern, path.name)
        if match is None or not match.group("campaign"):
            raise Rejected(
                [f"no campaign id in the file name (campaign_pattern {feed.campaign_pattern!r})"]
            )
        campaign_id = match.group("campaign")
        store = self.gateway.campaigns
        cdef = store.get(campaign_id) if store is not None else None
        if cdef is None:
            raise Rejected([f"unknown campaign {campaign_id!r}"])
        rows = await self._read_rows(feed, path)
        folder = self.work_dir / "targets"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{campaign_id}-{checksum[:12]}.txt"
        text = "".join(f"{r['msisdn']}\n" for r in rows).encode()
        await self._thread(write_atomically, target, text)
        members = await self._thread(read_target_list, target)
        raw = dict(cdef.raw)
        raw["target"] = {**dict(raw.get("target", {})), "list": str(target)}
        await store.put(
            attrs.evolve(cdef, target_list=str(target), target_members=members, raw=raw),
            actor=f"boss_files:{feed.name}",
        )
        return await self._record(feed, path, checksum, records)


def _separator_of(snapshot: str) -> str:
    """The separator of a snapshot: the first non-name character of its header line."""
    with open(snapshot, "rb") as handle:
        header = handle.readline().decode()
    for ch in header:
        if not (ch.isalnum() or ch == "_"):
            return ch if ch not in "\r\n" else ","
    return ","
