"""The live AF_PACKET source, on the loopback interface (only where raw sockets are permitted)."""

from __future__ import annotations

import socket

import pytest
import trio
import trio.lowlevel
from signaling_fixtures import ListSink, make_gateway, wait_for

from adapters.sigtran.scenario import Scenario, frames
from gateway.errors import ConfigError
from plugins.signaling import live
from plugins.signaling.live import LiveSource, open_packet_socket, parse_live_config


def _raw_sockets_work() -> bool:
    try:
        open_packet_socket("lo", 1 << 16).close()
    except (OSError, AttributeError):
        return False
    return True


needs_raw = pytest.mark.skipif(
    not _raw_sockets_work(), reason="needs CAP_NET_RAW and AF_PACKET on lo"
)


@needs_raw
async def test_frames_sent_on_lo_are_decoded_into_events(tmp_path):
    """Signaling frames injected on lo come out as the scenario's events, each seen once."""
    config = parse_live_config({"interface": "lo"}, "plugins.signaling_live")
    gateway = make_gateway(tmp_path, signaling_live=config)
    source = LiveSource(gateway, config)
    scenario = Scenario(seed=21).run(30)
    expected = [x for x in scenario.expected if x[0] not in ("seen", "imei", "roaming_in")]
    sink = ListSink()
    sender = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sender.bind(("lo", 0))
    async with trio.open_nursery() as nursery:
        await nursery.start(source.run, sink)
        for _, frame in frames(scenario.messages, "m3ua"):
            sender.send(frame)
            await trio.lowlevel.checkpoint()
        await wait_for(lambda: len(sink.events) >= len(expected))
        # Instead of sleeping a while for duplicates: two marker frames (an ethertype no one
        # else sends on lo) that the source skips in order; once the second is counted, the
        # batch holding the first, and so every frame sent before it, has been decoded and sent.
        marker = bytes(12) + b"\x88\xb5" + b"gateway-test-marker"
        for n in (1, 2):
            sender.send(marker)
            await wait_for(lambda n=n: source.decoder.skipped.get(("link", "no_signaling"), 0) >= n)
        nursery.cancel_scope.cancel()
    sender.close()
    ours = [e for e in sink.events if e.source == source.name]
    assert sorted((e.kind.value, e.imsi) for e in ours) == sorted(expected)
    assert source.statistics()["errors"] == {}


def test_live_config_is_strict_and_optional():
    """Without an interface there is no source; unknown keys and link types are errors."""
    gateway = make_gateway(None, signaling_live=parse_live_config({}, "k"))
    assert live.gateway_signal_sources(gateway) == []
    with pytest.raises(ConfigError) as info:
        parse_live_config(
            {"interface": "eth0", "linktype": 9999, "promisc": True}, "plugins.signaling_live"
        )
    assert "plugins.signaling_live.linktype" in str(info.value)
    assert "plugins.signaling_live.promisc" in str(info.value)
