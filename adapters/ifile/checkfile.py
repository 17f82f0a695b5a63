"""Check files ("校验文件"): the name, record count, byte size and checksum of a data file.

There is no public standard for BOSS interface files; every operator province writes its own
interface specification. The common shape, and the one read and written here, is one line::

    DATA_FILE_NAME|RECORDS|BYTES|CHECKSUM

with a configurable separator and checksum algorithm (MD5 by default, as most specifications
ask; SHA-1 and SHA-256 for the newer ones). The checksum is lower-case hex of the whole data
file. ``RECORDS`` counts data lines: a final line without a newline counts, a header line
(when the layout has one) does not.

Sans-IO: :class:`FileTally` takes the data file's bytes in chunks and is compared with a
parsed :class:`CheckFile` by :func:`compare`.
"""

from __future__ import annotations

import hashlib
from typing import Any

import attrs

#: Checksum algorithms a check file may use (hashlib names).
ALGORITHMS = ("md5", "sha1", "sha256")
MAX_CHECK_BYTES = 4096  # a check file is one short line; anything longer is not one


class CheckFileError(ValueError):
    """Raised when a check file cannot be read (wrong shape, not a number, not hex)."""


@attrs.frozen(kw_only=True)
class CheckFile:
    """What a check file states about its data file."""

    name: str
    records: int
    size: int
    checksum: str
    algorithm: str = "md5"

    @classmethod
    def parse(cls, data: bytes, *, algorithm: str = "md5", separator: str = "|") -> CheckFile:
        """Read a check file's bytes; :class:`CheckFileError` says what is wrong."""
        if algorithm not in ALGORITHMS:
            raise CheckFileError(f"unknown checksum algorithm {algorithm!r}")
        if len(data) > MAX_CHECK_BYTES:
            raise CheckFileError(f"check file longer than {MAX_CHECK_BYTES} bytes")
        try:
            text = data.decode("ascii").lstrip("\ufeff").strip()
        except UnicodeDecodeError:
            raise CheckFileError("check file is not ASCII") from None
        lines = [line for line in text.splitlines() if line.strip()]
        if len(lines) != 1:
            raise CheckFileError(f"expected one line, got {len(lines)}")
        parts = [p.strip() for p in lines[0].split(separator)]
        if len(parts) != 4:
            raise CheckFileError(
                f"expected NAME{separator}RECORDS{separator}BYTES{separator}CHECKSUM, "
                f"got {len(parts)} fields"
            )
        name, records, size, checksum = parts
        if not name or "/" in name or "\\" in name or name in (".", ".."):
            raise CheckFileError(f"bad data file name {name!r}")
        if not records.isdigit() or not size.isdigit():
            raise CheckFileError("record count and byte size must be decimal digits")
        digest_len = hashlib.new(algorithm).digest_size * 2
        checksum = checksum.lower()
        if len(checksum) != digest_len or any(c not in "0123456789abcdef" for c in checksum):
            raise CheckFileError(f"checksum is not {digest_len} hex digits of {algorithm}")
        return cls(
            name=name, records=int(records), size=int(size), checksum=checksum, algorithm=algorithm
        )

    def render(self, *, separator: str = "|") -> bytes:
        """The check file's bytes (one line, LF-terminated)."""
        fields = (self.name, str(self.records), str(self.size), self.checksum)
        return (separator.join(fields) + "\n").encode("ascii")


@attrs.define
class FileTally:
    """Byte size, line count and checksum of a data file fed in chunks."""

    algorithm: str = "md5"
    header: bool = False
    size: int = 0
    newlines: int = 0
    _last: bytes = b""
    _hash: Any = None

    def __attrs_post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise CheckFileError(f"unknown checksum algorithm {self.algorithm!r}")
        self._hash = hashlib.new(self.algorithm)

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        self._hash.update(chunk)
        self.size += len(chunk)
        self.newlines += chunk.count(b"\n")
        self._last = chunk[-1:]

    @property
    def lines(self) -> int:
        """Lines in the file: a last line without a newline counts."""
        return self.newlines + (1 if self.size and self._last != b"\n" else 0)

    @property
    def records(self) -> int:
        return max(0, self.lines - (1 if self.header else 0))

    @property
    def checksum(self) -> str:
        return str(self._hash.hexdigest())

    def check_file(self, name: str) -> CheckFile:
        """The check file that describes what was fed (for outbound files)."""
        return CheckFile(
            name=name,
            records=self.records,
            size=self.size,
            checksum=self.checksum,
            algorithm=self.algorithm,
        )


def compare(check: CheckFile, tally: FileTally, name: str) -> list[str]:
    """Every way the data file (``name``, ``tally``) disagrees with its check file; [] if none."""
    problems = []
    if check.name != name:
        problems.append(f"check file names {check.name!r}, the data file is {name!r}")
    if check.size != tally.size:
        problems.append(f"size: check file says {check.size} bytes, the file has {tally.size}")
    if check.records != tally.records:
        problems.append(
            f"record count: check file says {check.records}, the file has {tally.records}"
        )
    if check.checksum != tally.checksum:
        problems.append(f"{check.algorithm} checksum differs from the check file's")
    return problems
