"""The XDR source: configured column layouts over TCP and from files; bad records counted."""

from __future__ import annotations

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st
from signaling_fixtures import ListSink, make_gateway, old, wait_for

from gateway.errors import ConfigError
from gateway.model import EventKind
from plugins.signaling import xdr
from plugins.signaling.xdr import BadRecord, XdrParser, XdrSource, parse_xdr_config

LAYOUT = {
    "columns": ["time", "imsi", "msisdn", "event", "lac", "ci", "peer", "-", "duration"],
    "delimiter": "|",
    "event_codes": {"1": "power_on", "2": "power_off", "7": "call_end"},
}
GOOD = [
    "1767225600|460001234567890|8613800000001|1|4101|1001||x|",
    "1767225700|460001234567891|8613800000002|7|0x1005|0x3e9|12580|x|65.5",
]
BAD = [
    "1767225600|460001234567890|1|4101|1001||x|",  # a column missing
    "yesterday|460001234567890|8613800000001|1|4101|1001||x|",  # bad time
    "1767225600|460001234567890|8613800000001|99|4101|1001||x|",  # unknown event code
    "1767225600|460001234567890|8613800000001|1|LAC|1001||x|",  # bad number
    "inf|460001234567890|8613800000001|1|4101|1001||x|",  # not a finite time
]


def source_for(tmp_path, **keys):
    config = parse_xdr_config({**LAYOUT, **keys}, "plugins.signaling_xdr")
    gateway = make_gateway(tmp_path / "state", signaling_xdr=config)
    return gateway, XdrSource(gateway, config)


def test_parser_maps_columns_codes_and_numbers():
    """Named columns fill SignalEvent fields; '-' is ignored; hex and decimal numbers both read."""
    parser = XdrParser(parse_xdr_config(LAYOUT, "k"), "xdr")
    first, second = (parser.parse(line) for line in GOOD)
    assert first.kind is EventKind.POWER_ON and first.timestamp == 1767225600.0
    assert (first.imsi, first.msisdn, first.lac, first.ci, first.peer) == (
        "460001234567890",
        "8613800000001",
        4101,
        1001,
        None,
    )
    assert second.kind is EventKind.CALL_END and second.lac == 0x1005 and second.ci == 1001
    assert second.peer == "12580" and second.duration == 65.5


def test_call_direction_outcome_and_service_code_columns():
    """direction / outcome / ss_operation take the model's values only; service_code is text."""
    config = parse_xdr_config(
        {
            "columns": ["time", "event", "imsi", "direction", "outcome", "service_code"],
            "delimiter": ",",
        },
        "k",
    )
    parser = XdrParser(config, "xdr")
    event = parser.parse("1767225600,call_end,460001234567890,mt,rejected,")
    assert (event.kind, event.direction, event.outcome) == (EventKind.CALL_END, "mt", "rejected")
    ussd = parser.parse("1767225600,ussd,460001234567890,,,*139#")
    assert ussd.kind is EventKind.USSD and ussd.service_code == "*139#"
    with pytest.raises(BadRecord, match="bad_outcome"):
        parser.parse("1767225600,call_end,460001234567890,mt,hung_up,")
    with pytest.raises(BadRecord, match="bad_direction"):
        parser.parse("1767225600,call_end,460001234567890,sideways,busy,")


def test_strftime_times_are_read_in_the_configured_timezone():
    """time_format with a strftime pattern is interpreted in ``timezone``."""
    config = parse_xdr_config(
        {
            "columns": ["time", "event", "imsi"],
            "delimiter": ",",
            "time_format": "%Y-%m-%d %H:%M:%S",
            "timezone": "Asia/Shanghai",
        },
        "k",
    )
    event = XdrParser(config, "xdr").parse("2026-01-01 08:00:00,power_on,460001234567890")
    assert event.timestamp == 1767225600.0  # 00:00 UTC


async def test_records_over_tcp_with_bad_ones_counted(tmp_path):
    """A probe connection's good records become events; each bad one is counted and skipped."""
    gateway, _ = source_for(tmp_path, listen="127.0.0.1:0", max_line=200)
    [source] = xdr.gateway_signal_sources(gateway)  # registered: its statistics reach gatewayctl
    sink = ListSink()
    async with trio.open_nursery() as nursery:
        await nursery.start(source.run, sink)
        stream = await trio.open_tcp_stream("127.0.0.1", source.port)
        payload = "\n".join(GOOD[:1] + BAD + ["x" * 500] + GOOD[1:]) + "\n"
        for i in range(0, len(payload), 37):  # arbitrary TCP segmentation
            await stream.send_all(payload[i : i + 37].encode())
        await wait_for(lambda: len(sink.events) == 2)
        await stream.aclose()
        await wait_for(lambda: source.connections == 0)
        nursery.cancel_scope.cancel()
    assert [e.kind for e in sink.events] == [EventKind.POWER_ON, EventKind.CALL_END]
    errors = source.statistics()["errors"]
    assert errors == {
        "xdr.column_count": 1,
        "xdr.bad_time": 2,
        "xdr.unknown_event": 1,
        "xdr.bad_lac": 1,
        "xdr.line_too_long": 1,
    }
    counters = gateway.metrics.snapshot()["counters"]["signaling.decode_errors"]
    assert counters["layer=xdr,reason=bad_time,source=xdr"] == 2


async def test_files_with_header_are_read_and_resumed(tmp_path):
    """XDR files in the spool are read once, header skipped, progress kept, then moved."""
    spool = tmp_path / "spool"
    spool.mkdir()
    lines = ["time|imsi|msisdn|event|lac|ci|peer|x|duration"] + GOOD * 50 + BAD
    (spool / "a.xdr").write_text("\n".join(lines))
    old(spool / "a.xdr")
    _, source = source_for(
        tmp_path, directory=str(spool), header=True, settle=0, poll_interval=0.01, chunk_lines=10
    )
    sink = ListSink()
    async with trio.open_nursery() as nursery:
        await nursery.start(source.run, sink)
        await wait_for(lambda: source.spool.files_done == 1)
        nursery.cancel_scope.cancel()
    assert len(sink.events) == 100 and sum(source.errors.values()) == 5
    assert (spool / "done" / "a.xdr").exists()


async def test_shard_keeps_only_its_share(tmp_path):
    """With shard 1/2 and 2/2 the TCP records are split between nodes, none lost."""
    lines = [f"1767225600|4600012345{i:05d}|8613800000001|1|1|1||x|" for i in range(200)]
    kept = []
    for shard in ("1/2", "2/2"):
        _, source = source_for(tmp_path / shard[0], listen="127.0.0.1:0", shard=shard)
        kept.append({e.imsi for e in source.parse_lines(lines)})
    assert kept[0] and kept[1] and not kept[0] & kept[1] and len(kept[0] | kept[1]) == 200


def test_config_errors_name_the_key():
    """Unknown columns, a layout without time/event, bad listen and codes are config errors."""
    with pytest.raises(ConfigError) as info:
        parse_xdr_config(
            {"columns": ["time", "imsy"], "listen": "nowhere", "event_codes": {"1": "power_up"}},
            "plugins.signaling_xdr",
        )
    text = str(info.value)
    for key in (
        "plugins.signaling_xdr.columns",
        "plugins.signaling_xdr.listen",
        "plugins.signaling_xdr.event_codes.1",
    ):
        assert key in text
    assert (
        xdr.gateway_signal_sources(make_gateway(None, signaling_xdr=parse_xdr_config({}, "k")))
        == []
    )


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_random_lines_are_events_or_counted_bad_records(line):
    """Any text line either parses or is a BadRecord with a reason: nothing else escapes."""
    parser = XdrParser(parse_xdr_config(LAYOUT, "k"), "xdr")
    try:
        parser.parse(line)
    except BadRecord as exc:
        assert exc.reason
