"""The pcap directory source: order, completeness, resume, done files, shards, counters."""

from __future__ import annotations

import pytest
import trio
from signaling_fixtures import ListSink, make_capture, make_gateway, old, wait_for, wait_polls

from adapters.sigtran.pcap import CaptureReader
from gateway.errors import ConfigError
from plugins.signaling import pcap_dir
from plugins.signaling.pcap_dir import PcapDirectorySource, parse_pcap_config, read_pcap_events


def source_for(tmp_path, **keys):
    table = {"directory": str(tmp_path / "spool"), "settle": 0, "poll_interval": 0.01, **keys}
    config = parse_pcap_config(table, "plugins.signaling_pcap")
    gateway = make_gateway(tmp_path / "state", signaling_pcap=config)
    return gateway, PcapDirectorySource(gateway, config)


@pytest.fixture
def spool(tmp_path):
    (tmp_path / "spool").mkdir()
    return tmp_path / "spool"


async def test_files_are_read_in_name_order_and_moved_to_done(tmp_path, spool):
    """Two rotated files give all their events, the earlier name first; both end in done/."""
    make_capture(spool / "b.pcap", seed=2, procedures=30)
    make_capture(spool / "a.pcap", seed=1, procedures=30)
    expected_a = list(read_pcap_events(spool / "a.pcap"))
    gateway, source = source_for(tmp_path)
    sink = ListSink()
    async with trio.open_nursery() as nursery:
        await nursery.start(source.run, sink)
        await wait_for(lambda: source.spool.files_done == 2)
        nursery.cancel_scope.cancel()
    assert sorted(p.name for p in (spool / "done").iterdir()) == ["a.pcap", "b.pcap"]
    assert not list(spool.glob("*.pcap"))
    events = sink.events
    assert events[0].timestamp == expected_a[0].timestamp and events[0].source == source.name
    assert len(events) >= len(expected_a) > 20
    assert not (tmp_path / "state" / "signaling" / "pcap.progress").exists()
    snap = gateway.metrics.snapshot()["counters"]
    assert snap["signaling.events"]["source=pcap"] == len(events)
    assert snap["signaling.frames"]["source=pcap"] == source.decoder.frames


async def test_restart_resumes_without_rereading(tmp_path, spool):
    """Stopped after two batches and restarted, each packet is decoded exactly once overall."""
    make_capture(spool / "a.pcap", seed=3, procedures=120)
    with (spool / "a.pcap").open("rb") as f:
        total_frames = sum(1 for _ in CaptureReader(f).packets())
    _, first = source_for(tmp_path, chunk_packets=200, batch_size=10_000)
    async with trio.open_nursery() as nursery:
        sink = ListSink(on_send=lambda s: len(s.batches) == 2 and nursery.cancel_scope.cancel())
        await nursery.start(first.run, sink)
    assert first.decoder.frames == 400
    progress = tmp_path / "state" / "signaling" / "pcap.progress"
    assert progress.exists()
    _, second = source_for(tmp_path, chunk_packets=200)
    async with trio.open_nursery() as nursery:
        await nursery.start(second.run, ListSink())
        await wait_for(lambda: second.spool.files_done == 1)
        nursery.cancel_scope.cancel()
    assert first.decoder.frames + second.decoder.frames == total_frames
    assert not progress.exists()


async def test_incomplete_files_wait_for_the_settle_time(tmp_path, spool):
    """A file still being written (recent mtime) or named .part is not taken; an old one is."""
    make_capture(spool / "new.pcap", seed=1, procedures=5)
    make_capture(spool / "x.pcap.part", seed=1, procedures=5)
    old(make_capture(spool / "old.pcap", seed=1, procedures=5) and spool / "old.pcap")
    _, source = source_for(tmp_path, settle="1h")
    async with trio.open_nursery() as nursery:
        await nursery.start(source.run, ListSink())
        await wait_for(lambda: source.spool.files_done == 1)
        await wait_polls(source)  # several polls: the new and the .part files stay
        nursery.cancel_scope.cancel()
    assert sorted(p.name for p in spool.iterdir()) == ["done", "new.pcap", "x.pcap.part"]


@pytest.mark.parametrize("action", ["mark", "delete"])
async def test_done_files_can_be_marked_or_deleted(tmp_path, spool, action):
    """done = "mark" renames to .done; done = "delete" removes the file."""
    make_capture(spool / "a.pcap", seed=1, procedures=5)
    _, source = source_for(tmp_path, done=action)
    async with trio.open_nursery() as nursery:
        await nursery.start(source.run, ListSink())
        await wait_for(lambda: source.spool.files_done == 1)
        nursery.cancel_scope.cancel()
    assert [p.name for p in spool.iterdir()] == (["a.pcap.done"] if action == "mark" else [])


async def test_a_file_that_is_not_a_capture_is_counted_and_set_aside(tmp_path, spool):
    """Garbage in the spool is counted under pcap.bad_magic, moved to done, and reading goes on."""
    (spool / "a.pcap").write_bytes(b"this is not a capture" * 10)
    make_capture(spool / "b.pcap", seed=1, procedures=10)
    gateway, _ = source_for(tmp_path)
    [source] = pcap_dir.gateway_signal_sources(gateway)  # registered: the core shows its statistics
    sink = ListSink()
    async with trio.open_nursery() as nursery:
        await nursery.start(source.run, sink)
        await wait_for(lambda: source.spool.files_done == 2)
        nursery.cancel_scope.cancel()
    assert source.bad_files == 1 and sink.events
    assert source.statistics()["errors"]["pcap.bad_magic"] == 1


async def test_shards_partition_subscribers(tmp_path, spool):
    """Shards 1/2 and 2/2 together see every IMSI event once, and no IMSI on both."""
    make_capture(spool / "a.pcap", seed=4, procedures=200)
    everything = [
        e
        for e in read_pcap_events(
            spool / "a.pcap",
        )
        if e.imsi
    ]
    seen = []
    for shard in ("1/2", "2/2"):
        sink = ListSink()
        _, source = source_for(tmp_path / shard[0], shard=shard, directory=str(spool), done="mark")
        async with trio.open_nursery() as nursery:
            await nursery.start(source.run, sink)
            await wait_for(lambda source=source: source.spool.files_done == 1)
            nursery.cancel_scope.cancel()
        (spool / "a.pcap.done").rename(spool / "a.pcap")
        seen.append({e.imsi for e in sink.events if e.imsi})
    assert seen[0] and seen[1] and not seen[0] & seen[1]
    assert seen[0] | seen[1] == {e.imsi for e in everything}


def test_config_is_strict():
    """Unknown keys, bad shards and bad PLMNs are configuration errors naming the key."""
    with pytest.raises(ConfigError) as info:
        parse_pcap_config(
            {"directory": "/x", "shrad": "1/2", "shard": "5/4", "home_plmns": ["46"]},
            "plugins.signaling_pcap",
        )
    text = str(info.value)
    assert "plugins.signaling_pcap.shrad" in text and "plugins.signaling_pcap.shard" in text
    assert "home_plmns" in text
    assert parse_pcap_config({}, "plugins.signaling_pcap").spool is None


def test_hooks_register_the_source_status_and_reader(tmp_path):
    """With a directory the plugin returns one source (its statistics are its status) and the reader."""
    gateway, _ = source_for(tmp_path)
    [source] = pcap_dir.gateway_signal_sources(gateway)
    assert source.name == "signaling_pcap:pcap"
    assert source.statistics()["frames"] == 0
    assert not hasattr(pcap_dir, "gateway_status")  # no hook looking the source up again
    assert pcap_dir.gateway_event_readers()["pcap"] is read_pcap_events
    assert [s.name for s in pcap_dir.gateway_config_sections()] == ["signaling_pcap"]


def test_relative_directories_are_relative_to_the_config_file(tmp_path):
    """directory = "spool" in /x/etc/gateway.toml means /x/etc/spool (done dir likewise)."""
    config = parse_pcap_config({"directory": "spool", "done_directory": "old"}, "k")
    gateway = make_gateway(tmp_path / "state", signaling_pcap=config)
    gateway.config.path = tmp_path / "etc" / "gateway.toml"
    source = PcapDirectorySource(gateway, config)
    assert source.spool.config.directory == tmp_path / "etc" / "spool"
    assert source.spool.done_directory == tmp_path / "etc" / "old"


async def test_newest_file_cut_mid_record_waits_for_the_probe(tmp_path, spool):
    """A probe writing in place (tcpdump -C/-G) may pause mid-record for longer than the settle
    time: the newest file is read up to its last whole record and kept, not set aside; the rest
    is read once written, and the file is finished when the probe rotates to a later file."""
    whole = tmp_path / "whole.pcap"
    make_capture(whole, seed=5, procedures=40)
    data = whole.read_bytes()
    with whole.open("rb") as f:
        total = sum(1 for _ in CaptureReader(f).packets())
    cut = len(data) // 2 + 7
    (spool / "a.pcap").write_bytes(data[:cut])  # cut inside a record
    _, source = source_for(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(source.run, ListSink())
        await wait_for(lambda: source.decoder.frames > 0)
        await wait_polls(source)  # several polls: the cut file is neither finished nor counted bad
        assert source.spool.files_done == 0 and (spool / "a.pcap").exists()
        with (spool / "a.pcap").open("ab") as probe:  # the probe appends the rest
            probe.write(data[cut:])
        (spool / "b.pcap").write_bytes(data[:24])  # and rotated
        await wait_for(lambda: source.spool.files_done == 2)
        nursery.cancel_scope.cancel()
    assert source.decoder.frames == total
    assert source.statistics()["errors"] == {}


async def test_newest_file_without_a_whole_header_is_not_set_aside(tmp_path, spool):
    """A just-rotated file whose header is still in the probe's buffer is waited for, not garbage."""
    whole = tmp_path / "whole.pcap"
    make_capture(whole, seed=5, procedures=10)
    (spool / "a.pcap").write_bytes(b"")
    _, source = source_for(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(source.run, ListSink())
        await wait_polls(source)
        assert source.bad_files == 0 and (spool / "a.pcap").exists()
        (spool / "a.pcap").write_bytes(whole.read_bytes())
        (spool / "b.pcap").write_bytes(whole.read_bytes()[:24])
        await wait_for(lambda: source.spool.files_done == 2)
        nursery.cancel_scope.cancel()
    assert source.bad_files == 0 and source.decoder.frames > 0


async def test_cut_file_followed_by_a_later_one_is_finished_and_counted(tmp_path, spool):
    """Once a later file exists the cut tail will never come: the file is finished, the cut counted."""
    whole = tmp_path / "whole.pcap"
    make_capture(whole, seed=5, procedures=10)
    data = whole.read_bytes()
    (spool / "a.pcap").write_bytes(data[: len(data) - 3])
    (spool / "b.pcap").write_bytes(data)
    _, source = source_for(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(source.run, ListSink())
        await wait_for(lambda: source.spool.files_done == 2)
        nursery.cancel_scope.cancel()
    assert source.statistics()["errors"] == {"pcap.truncated_record": 1}


def test_rotation_counters_are_taken_in_numeric_order(tmp_path, spool):
    """tcpdump -C names its files x.pcap, x.pcap1 ... x.pcap10: 10 comes after 9, not after 1."""
    from plugins.signaling.spool import Spool

    names = ["x.pcap", "x.pcap1", "x.pcap2", "x.pcap9", "x.pcap10", "x.pcap11"]
    for name in names:
        old(make_capture(spool / name, seed=1, procedures=1) and spool / name)
    _, source = source_for(tmp_path)
    taken = []
    spool_ = Spool(source.spool.config, tmp_path / "progress")
    while (found := spool_.next_file()) is not None:
        taken.append(found[0].name)
        assert spool_.later_exists(found[0]) == (found[0].name != "x.pcap11")
        found[0].unlink()
    assert taken == names
