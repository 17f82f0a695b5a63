"""The number-segment and TAC tables: strict loaders, lookups, atomic reload."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.enrich import Enrichment, Region, TableFileError, load_segments, load_tac
from gateway.enrich.segments import SegmentTable, builtin_area_codes
from gateway.model import EventKind, SignalEvent

ETC = Path(__file__).resolve().parents[3] / "etc" / "enrich"
BJ, SH = Region("beijing", "beijing"), Region("shanghai", "shanghai")


def write(tmp_path: Path, text: str, name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_sample_segments_mobile_fixed_and_foreign():
    """Mobile numbers by 7-digit segment, fixed lines by area code (file rows and built-in),
    foreign and unknown numbers have no region."""
    table = load_segments(ETC / "segments.csv")
    assert table.region_of("8613901001234") == BJ
    assert table.region_of("8613921009999") == SH
    assert table.region_of("8613931201234") == Region("hebei", "baoding")
    assert table.region_of("8613999999999") is None  # segment not in the table
    assert table.region_of("861065528888") == BJ  # fixed line, built-in area code 10
    assert table.region_of("8675512345678") == Region("guangdong", "shenzhen")
    assert table.region_of("8631612345678") == Region("hebei", "langfang")  # file row 0316
    assert table.region_of("447700900123") is None  # another country
    assert table.region_of(None) is None


def test_dialled_numbers_national_forms_carrier_prefix_and_service_numbers():
    """A called number as dialled: national mobile, 0+area code, +86, a 12593 carrier prefix;
    short service numbers have no region."""
    table = load_segments(ETC / "segments.csv")
    assert table.region_of_dialled("13921001234") == SH
    assert table.region_of_dialled("02112345678") == SH
    assert table.region_of_dialled("+8613921001234") == SH
    assert table.region_of_dialled("125930216543210") == SH
    assert table.region_of_dialled("12593013921001234") == SH
    assert table.region_of_dialled("12580") is None
    assert table.region_of_dialled("10086") is None
    assert table.region_of_dialled("") is None


def test_builtin_area_codes_can_be_left_out(tmp_path):
    """builtin=False keeps only the file's area codes; a file row overrides a built-in one."""
    path = write(tmp_path, "prefix,province,city\n1390100,beijing,beijing\n0755,gd,sz\n")
    table = load_segments(path, builtin=False)
    assert table.region_of("861065528888") is None
    assert table.region_of("8675512345678") == Region("gd", "sz")
    assert load_segments(path).region_of("861065528888") == BJ


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            "prefix,province,city\n139010,beijing,beijing\n",
            "t.csv:2: a number segment has 7 digits",
        ),
        ("prefix,province,city\n13901a0,beijing,beijing\n", "t.csv:2: prefix must be ASCII digits"),
        ("prefix,province,city\n0010,x,y\n", "t.csv:2: an area code is 0 and 2 to 4 digits"),
        (
            "prefix,province,city\n1390100,,beijing\n",
            "t.csv:2: province and city must not be empty",
        ),
        ("prefix,province,city\n1390100,bj\n", "t.csv:2: 2 fields, the header has 3"),
        (
            "# c\nprefix,province,city\n1390100,a,b\n\n1390100,a,b\n",
            "t.csv:5: prefix 1390100 already on line 3",
        ),
        ("prefix,province\n1390100,a\n", "header lacks city"),
        ("prefix,province,city,zip\n", "unknown column 'zip'"),
        ("prefix,province,city\n", "no rows"),
        ("", "empty (needs a header line"),
    ],
)
def test_bad_segment_file_is_refused_with_file_line_and_reason(tmp_path, text, reason):
    """Every malformed file is rejected whole, naming the file, the line and the reason."""
    path = write(tmp_path, text)
    with pytest.raises(TableFileError) as info:
        load_segments(path)
    assert reason in str(info.value)
    assert str(path) in str(info.value)


def test_segment_file_not_utf8_names_the_line(tmp_path):
    """A file saved in GBK is refused with its line and a hint to save as UTF-8."""
    path = tmp_path / "gbk.csv"
    path.write_bytes("prefix,province,city\n1390100,北京,北京\n".encode("gbk"))
    with pytest.raises(TableFileError, match=r"gbk.csv:2: not valid UTF-8.*save the file as UTF-8"):
        load_segments(path)


def test_chinese_names_and_case_are_normalised(tmp_path):
    """Names keep their script and are compared case-folded; a BOM is allowed."""
    path = tmp_path / "zh.csv"
    path.write_bytes(
        "\ufeffPrefix,Province,City\n1390100,北京,北京\n1380200,Shanghai,SHANGHAI\n".encode()
    )
    table = load_segments(path)
    assert table.region_of("8613901001234") == Region("北京", "北京")
    assert table.region_of("8613802001234") == SH


@given(
    st.dictionaries(
        st.integers(1_000_000, 1_999_999),
        st.sampled_from([BJ, SH, Region("hebei", "baoding")]),
        max_size=40,
    ),
    st.integers(0, 9999),
    st.integers(1_000_000, 1_999_999),
)
def test_segment_array_agrees_with_a_dict(segments, suffix, probe):
    """The array lookup gives what a plain dict of prefixes gives, for any table and number."""
    table = SegmentTable(segments=segments, area_codes=builtin_area_codes())
    for prefix in [*segments, probe]:
        number = f"86{prefix}{suffix:04d}"
        assert table.region_of(number) == segments.get(prefix)


def test_sample_tac_lookup():
    """IMEI or IMEISV to brand, model and capabilities; unknown TACs give None."""
    tac = load_tac(ETC / "tac.csv")
    handset = tac.handset("356938035643809")
    assert (handset.brand, handset.model) == ("nokia", "n95")
    assert handset.capabilities == {"mms", "wap", "3g"}
    assert handset.mask & tac.bit("mms") and not handset.mask & tac.bit("lte")
    assert tac.handset("3569380356438012") == handset  # IMEISV: 16 digits
    assert tac.handset_of_key(356938035643809) == handset
    assert tac.handset_of_key(12345000000001) == tac.handset("012345000000001")  # leading 0 TAC
    assert tac.handset("999999990000000") is None
    assert tac.handset("3569") is None
    assert tac.handset("35290611000000").capabilities == frozenset()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            "tac,brand,model,capabilities\n3569380,nokia,n95,mms\n",
            "t.csv:2: a TAC is 8 ASCII digits",
        ),
        ("tac,brand,model,capabilities\n35693803,,n95,mms\n", "t.csv:2: brand and model"),
        ("tac,brand,model,capabilities\n35693803,nokia,n95,mms;wap\n", "t.csv:2: capability names"),
        (
            "tac,brand,model,capabilities\n35693803,a,b,\n35693803,a,b,\n",
            "t.csv:3: TAC 35693803 already on line 2",
        ),
        ('tac,brand,model,capabilities\n35693803,"a,b,\n', "t.csv"),
        ("tac,brand,model\n", "header lacks capabilities"),
    ],
)
def test_bad_tac_file_is_refused(tmp_path, text, reason):
    """A malformed TAC file is rejected whole with file, line and reason."""
    with pytest.raises(TableFileError) as info:
        load_tac(write(tmp_path, text))
    assert reason in str(info.value)


async def test_reload_is_atomic_and_a_bad_file_keeps_the_table(tmp_path):
    """A good file replaces the table; a bad one leaves it in force and records why."""
    enrich = Enrichment(local_province="beijing", local_city="beijing")
    seg = write(tmp_path, "prefix,province,city\n1390100,beijing,beijing\n", "seg.csv")
    assert await enrich.load_segments(seg)
    first = enrich.segments
    assert first.region_of("8613901001234") == BJ
    seg.write_text("prefix,province,city\n1390100,beijing,beijing\n13921,shanghai,shanghai\n")
    assert not await enrich.load_segments(seg)
    assert enrich.segments is first
    assert (
        "seg.csv:3: a number segment has 7 digits" in enrich.statistics()["segments"]["last_error"]
    )
    seg.write_text("prefix,province,city\n1390100,beijing,beijing\n1392100,shanghai,shanghai\n")
    assert await enrich.load_segments(seg, only_if_changed=True)
    assert enrich.segments.region_of("8613921001234") == SH
    assert enrich.statistics()["segments"]["last_error"] is None
    assert not await enrich.load_tac(tmp_path / "missing.csv")
    assert "cannot open" in enrich.last_error["tac"]


async def test_local_region_missing_from_the_table_is_refused(tmp_path):
    """A misspelt local province would make everyone a visitor: the file is refused."""
    enrich = Enrichment(local_province="beijng")
    seg = write(tmp_path, "prefix,province,city\n1390100,beijing,beijing\n")
    assert not await enrich.load_segments(seg)
    assert "local province 'beijng'" in enrich.last_error["segments"]


def test_describe_lists_regions_and_handsets():
    """describe() gives the fields decode.py --enrich prints."""
    enrich = Enrichment(
        segments=load_segments(ETC / "segments.csv"),
        tac=load_tac(ETC / "tac.csv"),
        local_province="beijing",
        local_city="beijing",
    )
    event = SignalEvent(
        kind=EventKind.HANDSET_CHANGE,
        timestamp=1.0,
        msisdn="8613921001234",
        imei="868915031234567",
        previous_imei="352906110000000",
    )
    assert enrich.describe(event) == {
        "home_province": "shanghai",
        "home_city": "shanghai",
        "visitor": True,
        "handset_brand": "huawei",
        "handset_model": "p40",
        "handset_capabilities": ["lte", "mms", "volte", "wap"],
        "previous_handset_model": "1110",
    }
    call = SignalEvent(
        kind=EventKind.CALL_START, timestamp=1.0, msisdn="8613901001234", peer="02112345678"
    )
    assert enrich.describe(call) == {
        "home_province": "beijing",
        "home_city": "beijing",
        "visitor": False,
        "peer_province": "shanghai",
        "peer_city": "shanghai",
        "long_distance": True,
    }


_CELLS = st.sampled_from(
    [
        "prefix",
        "province",
        "city",
        "tac",
        "brand",
        "model",
        "capabilities",
        "1390100",
        "0755",
        "35693803",
        "mms|wap",
        "beijing",
        "",
        " ",
        '"',
        "#",
        "0",
        "1" * 9,
        "北京",
        "\ufeff",
    ]
)


@given(st.lists(st.lists(_CELLS, max_size=5), max_size=6), st.binary(max_size=8))
def test_any_file_loads_or_is_refused_with_table_file_error(tmp_path_factory, rows, noise):
    """Whatever the bytes, a loader returns a table or raises TableFileError (nothing else)."""
    path = tmp_path_factory.mktemp("fuzz") / "t.csv"
    path.write_bytes("\n".join(",".join(row) for row in rows).encode() + noise)
    for load in (load_segments, load_tac):
        try:
            table = load(path)
        except TableFileError as exc:
            assert str(path) in str(exc)
        else:
            assert len(table) > 0 or load is load_segments
