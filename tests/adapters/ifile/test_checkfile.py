"""Check files and record splitting, checked against coreutils (md5sum, wc) and Python's codecs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.ifile import (
    CheckFile,
    CheckFileError,
    FileTally,
    RecordLayout,
    compare,
    split_records,
)


def tally_of(
    data: bytes, *, algorithm: str = "md5", header: bool = False, chunk: int = 7
) -> FileTally:
    tally = FileTally(algorithm=algorithm, header=header)
    for i in range(0, len(data), chunk):
        tally.feed(data[i : i + chunk])
    return tally


@pytest.mark.parametrize(
    "algorithm,tool", [("md5", "md5sum"), ("sha1", "sha1sum"), ("sha256", "sha256sum")]
)
def test_tally_agrees_with_coreutils(tmp_path: Path, algorithm: str, tool: str) -> None:
    """Size, line count and checksum equal what wc and md5sum/sha*sum say of the same file."""
    data = "13800138000|金卡|北京\n13900139000|普通|上海\n".encode("gbk") * 50
    path = tmp_path / "f.txt"
    path.write_bytes(data)
    tally = tally_of(data, algorithm=algorithm)
    assert (
        tally.checksum
        == subprocess.run(
            [tool, str(path)], capture_output=True, text=True, check=True
        ).stdout.split()[0]
    )
    assert tally.size == int(
        subprocess.run(
            ["wc", "-c", str(path)], capture_output=True, text=True, check=True
        ).stdout.split()[0]
    )
    assert tally.lines == int(
        subprocess.run(
            ["wc", "-l", str(path)], capture_output=True, text=True, check=True
        ).stdout.split()[0]
    )


@given(st.binary(max_size=300), st.integers(1, 50), st.sampled_from(["md5", "sha1", "sha256"]))
def test_check_file_round_trip(data: bytes, chunk: int, algorithm: str) -> None:
    """A rendered check file parses back to itself and agrees with the data it describes, whatever the chunking."""
    tally = tally_of(data, algorithm=algorithm, chunk=chunk)
    check = tally.check_file("A_20261130.txt")
    again = CheckFile.parse(check.render(), algorithm=algorithm)
    assert again == check
    assert compare(again, tally_of(data, algorithm=algorithm), "A_20261130.txt") == []


def test_last_line_without_newline_counts() -> None:
    """A final record without a line end is a record; a header line is not."""
    assert tally_of(b"a\nb").records == 2
    assert tally_of(b"h\na\nb\n", header=True).records == 2
    assert tally_of(b"").records == 0


def test_compare_names_every_disagreement() -> None:
    """Name, size, count and checksum mismatches are each reported."""
    check = CheckFile(name="X.txt", records=3, size=1, checksum="0" * 32)
    problems = compare(check, tally_of(b"a\nb\n"), "Y.txt")
    assert len(problems) == 4
    assert any("record count" in p for p in problems)


@pytest.mark.parametrize(
    "text",
    [
        b"",
        b"a|1|2",
        b"a|x|2|" + b"0" * 32,
        b"a|1|2|zz",
        b"../x|1|2|" + b"0" * 32,
        b"a|1|2|" + b"0" * 32 + b"\nb|1|2|3",
    ],
)
def test_bad_check_files_are_refused(text: bytes) -> None:
    """Wrong shape, non-digits, non-hex, a path, or two lines: CheckFileError."""
    with pytest.raises(CheckFileError):
        CheckFile.parse(text)


@given(st.binary(max_size=200))
def test_check_parse_any_bytes(data: bytes) -> None:
    """Any bytes parse as a check file or raise CheckFileError, nothing else."""
    try:
        CheckFile.parse(data)
    except CheckFileError:
        pass


@pytest.mark.parametrize("encoding", ["gbk", "gb18030", "utf-8"])
def test_records_in_chinese_encodings(encoding: str) -> None:
    """Records in GBK, GB18030 and UTF-8 decode to the same text (GB18030 also carries 𠀀, outside GBK)."""
    name = "张三𠀀" if encoding != "gbk" else "张三"
    data = f"13800138000|{name}|全球通\n".encode(encoding)
    rows, errors = split_records(
        data, RecordLayout(columns=("msisdn", "name", "brand"), encoding=encoding)
    )
    assert errors == []
    assert rows == [{"msisdn": "13800138000", "name": name, "brand": "全球通"}]


def test_gbk_file_read_as_utf8_is_refused_per_line() -> None:
    """A GBK file declared UTF-8 is refused with the line numbers that do not decode."""
    data = "13800138000|ok\n13800138001|张三\n".encode("gbk")
    _, errors = split_records(data, RecordLayout(columns=("msisdn", "name")))
    assert [e.line for e in errors] == [2]
    assert "utf-8" in errors[0].reason


def test_every_bad_line_is_reported() -> None:
    """Wrong field counts, a blank line and a validator's refusal are all listed, by line."""

    def digits(value: str) -> str:
        if not value.isdigit():
            raise ValueError("not digits")
        return value

    data = b"1|a\n2\n\nx|b\n3|c|d\n4|e\n"
    rows, errors = split_records(data, RecordLayout(columns=("n", "v")), {"n": digits})
    assert [(e.line, e.reason.split(":")[0]) for e in errors] == [
        (2, "expected 2 fields, got 1"),
        (3, "blank line"),
        (4, "column 'n'"),
        (5, "expected 2 fields, got 3"),
    ]
    assert len(rows) == 2


def test_header_is_checked() -> None:
    """With header = true the first line must name the configured columns."""
    _, errors = split_records(b"a|c\n1|2\n", RecordLayout(columns=("a", "b"), header=True))
    assert errors and errors[0].line == 1
    rows, errors = split_records(b"A|B\r\n1|2\r\n", RecordLayout(columns=("a", "b"), header=True))
    assert errors == [] and rows == [{"a": "1", "b": "2"}]


@given(st.binary(max_size=400), st.sampled_from(["utf-8", "gbk", "gb18030"]))
def test_split_records_any_bytes(data: bytes, encoding: str) -> None:
    """Any bytes give rows and errors (never an exception); every line is a row or an error, once."""
    layout = RecordLayout(columns=("a", "b"), encoding=encoding)
    rows, errors = split_records(data, layout)
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    assert len(rows) + len({e.line for e in errors}) == len(lines)


_FIELD = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="|\r\n"),
    max_size=8,
).map(str.strip)


@given(st.lists(st.tuples(_FIELD, _FIELD), max_size=20), st.sampled_from(["utf-8", "gb18030"]))
def test_split_records_round_trip(rows: list[tuple[str, str]], encoding: str) -> None:
    """Rows joined with the separator and encoded come back as the same rows."""
    rows = [r for r in rows if any(r)]  # an all-empty line would be blank
    data = "".join(f"{a}|{b}\n" for a, b in rows).encode(encoding)
    got, errors = split_records(data, RecordLayout(columns=("a", "b"), encoding=encoding))
    assert errors == []
    assert got == [{"a": a, "b": b} for a, b in rows]
