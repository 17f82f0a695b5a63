"""Strict reading of the operator's small CSV tables (number segments, TAC database).

A table file is accepted whole or rejected whole: the first problem raises
:class:`TableFileError` naming the file, the line and the reason, and the table in force is
kept (see :mod:`gateway.enrich.holder`). UTF-8 (a byte-order mark is allowed: spreadsheets
write one), a header line naming the columns, blank lines and lines starting with ``#``
ignored.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from pathlib import Path

from gateway.errors import GatewayError

#: A table file larger than this is refused before it is read (a wrong file, not a table).
MAX_TABLE_BYTES = 256 * 2**20


class TableFileError(GatewayError):
    """Raised when an enrichment table file cannot be used; the message is ``file:line: reason``.

    Fix the line and reload (``gatewayctl enrichment reload``); the table in force stays.
    """


def read_rows(
    path: Path, columns: Sequence[str], optional: Sequence[str] = ()
) -> Iterator[tuple[int, dict[str, str]]]:
    """``(line number, {column: stripped value})`` for each data line of ``path``.

    The header must hold every name of ``columns`` (any order), may hold ``optional`` ones,
    and nothing else.
    """
    name = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_TABLE_BYTES:
            raise TableFileError(f"{name}: larger than {MAX_TABLE_BYTES // 2**20} MB")
        raw = path.read_bytes()
    except OSError as exc:
        raise TableFileError(f"{name}: cannot open: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise TableFileError(
            f"{name}:{line}: not valid UTF-8 (byte {exc.start}); save the file as UTF-8"
        ) from None
    header: list[str] | None = None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        for fields in reader:
            line = reader.line_num
            if not fields or not any(f.strip() for f in fields) or fields[0].startswith("#"):
                continue
            if header is None:
                header = [f.strip().lower() for f in fields]
                _check_header(f"{name}:{line}", header, columns, optional)
                continue
            if len(fields) != len(header):
                raise TableFileError(
                    f"{name}:{line}: {len(fields)} fields, the header has {len(header)}"
                )
            yield line, {h: f.strip() for h, f in zip(header, fields, strict=True)}
    except csv.Error as exc:
        raise TableFileError(f"{name}:{reader.line_num}: {exc}") from None
    if header is None:
        raise TableFileError(f"{name}: empty (needs a header line: {','.join(columns)})")


def _check_header(
    name: str, header: list[str], columns: Sequence[str], optional: Sequence[str]
) -> None:
    if len(set(header)) != len(header):
        raise TableFileError(f"{name}: a column appears twice in the header")
    missing = [c for c in columns if c not in header]
    if missing:
        raise TableFileError(
            f"{name}: header lacks {', '.join(missing)} (expected: {','.join(columns)})"
        )
    unknown = [h for h in header if h not in columns and h not in optional]
    if unknown:
        raise TableFileError(
            f"{name}: unknown column {unknown[0]!r} (columns: {', '.join([*columns, *optional])})"
        )


def region_name(text: str) -> str:
    """A province or city name as compared: stripped and case-folded (pinyin or Chinese)."""
    return text.strip().casefold()
