"""Delimited records of an interface file: a configured separator and column list.

BOSS exports have no quoting: the separator (often ``|``, sometimes ``,`` or a control
character such as ``\\x01``) never occurs inside a value. Text is UTF-8, GBK or GB18030 (GBK
is a subset of GB18030; both are checked as such here, strictly: a byte sequence outside the
encoding is a bad record, never replaced).

Sans-IO: :func:`split_records` takes the whole data file's bytes and returns rows and the
list of every bad line (line number and reason), so that a rejected file's report names all
of them (up to a cap), not only the first.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Mapping

import attrs

ENCODINGS = ("utf-8", "gbk", "gb18030")
MAX_ERRORS = 1000  # a report lists at most this many bad lines (and says how many more)


class RecordError(ValueError):
    """A bad line: ``line`` (1-based, counting a header) and ``reason``."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


def _check_encoding(value: str) -> str:
    name = codecs.lookup(value).name
    if name not in ENCODINGS:
        raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}, got {value!r}")
    return name


@attrs.frozen(kw_only=True)
class RecordLayout:
    """How the lines of one kind of data file are laid out."""

    columns: tuple[str, ...]
    separator: str = "|"
    encoding: str = attrs.field(default="utf-8", converter=_check_encoding)
    #: The first line names the columns (it is checked against ``columns``, not counted).
    header: bool = False

    def __attrs_post_init__(self) -> None:
        if len(self.separator) != 1 or self.separator in "\r\n":
            raise ValueError("the separator must be one character (not a line end)")
        if not self.columns or len(set(self.columns)) != len(self.columns):
            raise ValueError("columns must be a non-empty list of distinct names")


#: A column validator turns a field's text into its value or raises ValueError with a reason.
Validator = Callable[[str], object]


def split_records(
    data: bytes,
    layout: RecordLayout,
    validators: Mapping[str, Validator] | None = None,
    *,
    max_errors: int = MAX_ERRORS,
) -> tuple[list[dict[str, object]], list[RecordError]]:
    """Rows of ``data`` as ``{column: value}``, and every bad line (capped at ``max_errors``).

    Blank lines are bad (a BOSS export has none; one is a sign of a truncated or spliced
    file). CRLF line ends are accepted. The caller rejects the file when errors is not empty.
    """
    validators = validators or {}
    errors: list[RecordError] = []
    rows: list[dict[str, object]] = []
    try:
        text = data.decode(layout.encoding)
    except UnicodeDecodeError:
        text = None
    if text is None:  # find the lines that do not decode, report each
        lines_b = data.split(b"\n")
        lines = []
        for n, raw in enumerate(lines_b, 1):
            try:
                lines.append(raw.decode(layout.encoding))
            except UnicodeDecodeError as exc:
                errors.append(RecordError(n, f"not valid {layout.encoding} at byte {exc.start}"))
                lines.append("")
    else:
        lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    width = len(layout.columns)
    start = 0
    bad_lines = {e.line for e in errors}
    if layout.header and lines:
        got = tuple(
            h.strip().lower()
            for h in lines[0].rstrip("\r").lstrip("\ufeff").split(layout.separator)
        )
        if got != tuple(layout.columns):
            errors.append(RecordError(1, f"header {list(got)} differs from {list(layout.columns)}"))
        start = 1
    for n in range(start, len(lines)):
        line_no = n + 1
        if line_no in bad_lines:
            continue
        if len(errors) >= max_errors:
            break
        line = lines[n].rstrip("\r")
        if not line.strip():
            errors.append(RecordError(line_no, "blank line"))
            continue
        fields = line.split(layout.separator)
        if len(fields) != width:
            errors.append(RecordError(line_no, f"expected {width} fields, got {len(fields)}"))
            continue
        row: dict[str, object] = {}
        for column, field in zip(layout.columns, fields, strict=True):
            check = validators.get(column)
            if check is None:
                row[column] = field.strip()
                continue
            try:
                row[column] = check(field.strip())
            except ValueError as exc:
                errors.append(RecordError(line_no, f"column {column!r}: {exc}"))
                break
        else:
            rows.append(row)
    errors.sort(key=lambda e: e.line)
    return rows, errors[:max_errors]
