"""Profile index: bulk load, lookups, learned attributes, atomic replace, bad files rejected."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.model import EventKind, SignalEvent
from gateway.numbers import DEFAULT_PLAN
from gateway.profiles import ProfileFileError, ProfileHolder, load_profiles

GOOD = """msisdn,imsi,brand,plan,products,capabilities,home_cell,tags,region
8613800000001,460001234567801,gotone,G58,12593|mms10,mms|wap,4101-1001,vip,beijing
8613800000002,460001234567802,mzone,M18,,wap,4101-1002,,hebei
8613800000003,,easyown,E8,mms10,,,,beijing
"""


def write(tmp_path: Path, text: str, name: str = "profiles.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_lookup_by_imsi_and_msisdn(tmp_path):
    """Rows are found by IMSI and by MSISDN (with or without '+'), unknown keys give -1."""
    index = load_profiles(write(tmp_path, GOOD))
    assert len(index) == 3
    assert index.row_by_imsi("460001234567802") == 1
    assert index.row_by_msisdn("+8613800000003") == 2
    assert index.row_by_msisdn("8613800000009") == -1
    assert index.row_by_imsi(None) == -1
    assert index.row_by_imsi("abc") == -1


def test_attributes_and_sets(tmp_path):
    """Single values, set-valued columns (bitmasks) and empty cells read back as written."""
    index = load_profiles(write(tmp_path, GOOD))
    view = index.view(0)
    assert view["brand"] == "gotone"
    assert view["products"] == {"12593", "mms10"}
    assert view["capabilities"] == {"mms", "wap"}
    column = index.sets["products"]
    assert column.masks[column.codes[0]] & column.bit("12593")
    assert not column.masks[column.codes[1]] & column.bit("12593")
    assert "products" not in index.view(1)
    assert index.imsi(2) is None
    assert index.subscriber(1).msisdn == "8613800000002"


def test_observe_learns_dynamic_attributes(tmp_path):
    """Events update last cell, IMEI and last seen; a late event does not roll them back."""
    index = load_profiles(write(tmp_path, GOOD))
    ev = SignalEvent(
        kind=EventKind.LOCATION_UPDATE,
        timestamp=100.0,
        imsi="460001234567801",
        lac=4101,
        ci=7,
        imei="356938035643809",
    )
    index.observe(0, ev)
    assert index.view(0)["last_cell"] == "4101-7"
    assert index.view(0)["last_imei"] == "356938035643809"
    late = SignalEvent(kind=EventKind.CELL_CHANGE, timestamp=50.0, lac=4101, ci=9)
    index.observe(0, late)
    assert index.view(0)["last_cell"] == "4101-7"
    assert index.view(0)["last_seen"] == 100.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty file"),
        ("msisdn,brnad\n1,x\n", "line 1: unknown column 'brnad' (did you mean 'brand'?)"),
        ("imsi,brand\n1,x\n", "'msisdn' column is required"),
        ("msisdn,brand\n8613800000001,x\n8613800000002\n", "line 3: expected 2 fields, got 1"),
        (
            "msisdn,brand\n8613800000001,x\n86138000x0002,y\n",
            "line 3: column 'msisdn': only ASCII digits",
        ),
        ("msisdn,brand\n8613800000001,x\n,y\n", "line 3: column 'msisdn'"),
        (
            "msisdn,brand\n8613800000001,x\n8613800000001,y\n",
            "msisdn 8613800000001 appears on more than one line",
        ),
        (
            "msisdn,imsi\n8613800000001,5\n8613800000002,5\n",
            "imsi 5 appears on more than one line",
        ),
        (  # one subscriber in two spellings is a duplicate (gateway/numbers.py)
            "msisdn\n13800000003\n+86 138 0000 0003\n",
            "msisdn 8613800000003 appears on more than one line",
        ),
    ],
)
def test_bad_file_rejected_with_reason(tmp_path, text, message):
    """A bad file is rejected whole, and the reason names the file, line and column."""
    path = write(tmp_path, text)
    with pytest.raises(ProfileFileError) as info:
        load_profiles(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_pipe_delimiter_and_crlf(tmp_path):
    """The delimiter is configurable and CRLF line ends are accepted."""
    path = write(tmp_path, "msisdn|brand\r\n8613800000001|gotone\r\n")
    index = load_profiles(path, delimiter="|")
    assert index.view(0)["brand"] == "gotone"


async def test_holder_replaces_atomically_and_keeps_old_on_bad_file(tmp_path):
    """A good file replaces the index (learned attributes carried); a bad one changes nothing."""
    holder = ProfileHolder()
    assert await holder.load(write(tmp_path, GOOD))
    first = holder.index
    first.observe(1, SignalEvent(kind=EventKind.POWER_ON, timestamp=5.0, lac=1, ci=2))
    reordered = "msisdn,brand\n8613800000002,mzone\n8613800000004,gotone\n"
    assert await holder.load(write(tmp_path, reordered, "v2.csv"))
    assert holder.index is not first
    assert holder.index.view(0)["last_cell"] == "1-2"
    good = holder.index
    assert not await holder.load(write(tmp_path, "msisdn\nbad\n", "v3.csv"))
    assert holder.index is good
    assert "line 2" in holder.last_error
    assert not await holder.load(tmp_path / "missing.csv")
    assert holder.index is good


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.integers(min_value=10**7, max_value=10**15 - 1).filter(
            lambda n: DEFAULT_PLAN.is_normal(str(n))
        ),
        min_size=1,
        max_size=60,
        unique=True,
    )
)
def test_every_msisdn_found_at_its_row(tmp_path_factory, numbers):
    """Property: after load, each (E.164) MSISDN maps back to the row it was written on."""
    path = tmp_path_factory.mktemp("p") / "p.csv"
    path.write_text("msisdn\n" + "".join(f"{n}\n" for n in numbers))
    index = load_profiles(path)
    for row, n in enumerate(numbers):
        assert index.row_by_msisdn(str(n)) == row
        assert index.msisdn(row) == str(n)


def test_presorted_and_unsorted_keys_give_the_same_lookups(tmp_path):
    """A file sorted by MSISDN (shared column, no sort) and a shuffled one answer alike."""
    rows = [(8613800000000 + i * 3, 460000000000000 + (i * 7) % 50) for i in range(50)]
    text = "msisdn,imsi\n" + "".join(f"{m},{s}\n" for m, s in rows)
    shuffled = "msisdn,imsi\n" + "".join(f"{m},{s}\n" for m, s in reversed(rows))
    a = load_profiles(write(tmp_path, text, "a.csv"))
    b = load_profiles(write(tmp_path, shuffled, "b.csv"))
    assert a.msisdn_keys is a.msisdn_col  # the sorted column is shared, not copied
    for m, s in rows:
        assert a.msisdn(a.row_by_msisdn(str(m))) == b.msisdn(b.row_by_msisdn(str(m))) == str(m)
        assert a.msisdn(a.row_by_imsi(str(s))) == b.msisdn(b.row_by_imsi(str(s))) == str(m)
    assert a.row_by_msisdn("8613800000001") == -1 and a.row_by_msisdn("1") == -1
    assert a.row_by_msisdn("9" * 15) == -1


def test_learned_imei_keeps_a_leading_zero(tmp_path):
    """An IMEI whose type allocation code starts with 0 (e.g. 01...) reads back with all 15 digits."""
    index = load_profiles(write(tmp_path, GOOD))
    index.observe(
        0, SignalEvent(kind=EventKind.HANDSET_CHANGE, timestamp=1.0, imei="013456789012345")
    )
    assert index.view(0)["last_imei"] == "013456789012345"
    assert index.attribute("last_imei", 0) == "013456789012345"
