"""Target lists of batch campaigns: read, normalise, de-duplicate, shard, snapshot (read by the
loader to check a file, and by the batch runner, gateway.batch, to execute it).

A target file has one MSISDN per line (blank lines and ``#`` comments ignored). It is read
whole and refused whole: one number that cannot be normalised (``gateway.numbers``) refuses
the file, naming its line, so a campaign never runs on half a list. Numbers become integer
E.164 keys, de-duplicated and sorted (a stable order: a restart resumes at the same index).

The node keeps its share (:class:`Shard`, the same CRC-32 rule as the signaling shards, over
the MSISDN digits) in a snapshot file under the state directory, written atomically (a
temporary file, fsync, rename). Once a campaign has started, the snapshot, not the target
file, is what it runs on: editing the file afterwards cannot shift the cursor.
"""

from __future__ import annotations

import os
import zlib
from array import array
from pathlib import Path

import attrs

from gateway.errors import GatewayError
from gateway.numbers import ColumnNumberError, NumberPlan, active_plan, mask
from gateway.shard import parse_shard


class TargetListError(GatewayError):
    """Raised when a target file cannot be read or holds a number that cannot be normalised;
    the message names the file and line. Fix the file: nothing of it was used."""


@attrs.frozen(kw_only=True)
class Shard:
    """This node's share of a batch: ``index`` of ``count`` (1-based).

    CRC-32 of the MSISDN's E.164 digits modulo ``count``, as the signaling sources shard by
    IMSI: identical on every node and every restart.
    """

    index: int = 1
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        index, count = parse_shard(text)
        return cls(index=index, count=count)

    @property
    def text(self) -> str:
        return f"{self.index}/{self.count}"

    def keeps(self, msisdn: int) -> bool:
        if self.count == 1:
            return True
        return zlib.crc32(str(msisdn).encode()) % self.count == self.index - 1

    def select(self, keys: array) -> array:
        if self.count == 1:
            return keys
        count, want, crc = self.count, self.index - 1, zlib.crc32
        return array("Q", (k for k in keys if crc(str(k).encode()) % count == want))


def parse_targets(data: bytes, *, source: str, plan: NumberPlan | None = None) -> array:
    """The numbers of a target file's bytes: normalised, de-duplicated, sorted (``array('Q')``)."""
    plan = plan or active_plan()
    values: list[bytes] = []
    lines: list[int] = []
    for n, line in enumerate(data.split(b"\n"), 1):
        if b"#" in line:
            line = line.split(b"#", 1)[0]
        line = line.strip()
        if line:
            values.append(line)
            lines.append(n)
    try:
        keys = plan.normalise_column(values)
    except ColumnNumberError as exc:
        bad = values[exc.offset].decode("utf-8", "replace")
        raise TargetListError(
            f"{source}: line {lines[exc.offset]}: not a usable MSISDN {mask(bad)}: {exc}"
        ) from None
    return array("Q", sorted(set(keys)))


def read_targets(path: Path, *, plan: NumberPlan | None = None) -> array:
    """:func:`parse_targets` of the file at ``path`` (blocking: call in a worker thread)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TargetListError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return parse_targets(data, source=str(path), plan=plan)


def write_snapshot(path: Path, keys: array) -> None:
    """Write ``keys`` to ``path`` atomically and durably (blocking)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        keys.tofile(handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_snapshot(path: Path) -> array:
    """The keys written by :func:`write_snapshot` (blocking)."""
    keys = array("Q")
    keys.frombytes(Path(path).read_bytes())
    return keys
