"""pcap/pcapng reading: formats, resume offsets, damaged files."""

from __future__ import annotations

import io

import pytest
from sigtran_helpers import decode_file, make_capture

from adapters.sigtran.decoder import Decoder, FileDecoder
from adapters.sigtran.pcap import CaptureFormatError, CaptureReader, pcap_record, write_pcap_header


def _all(path, start=0):
    with open(path, "rb") as f:
        reader = CaptureReader(f, start_offset=start)
        return list(reader.packets()), reader


def test_resume_from_offset_reads_only_the_rest(tmp_path):
    """Resuming at a saved offset yields exactly the packets after it, for pcap and pcapng."""
    for fmt in ({}, {"pcapng": True}):
        path = tmp_path / "c"
        make_capture(path, seed=3, procedures=30, **fmt)
        packets, _ = _all(path)
        with open(path, "rb") as f:
            reader = CaptureReader(f)
            it = reader.packets()
            head = [next(it) for _ in range(17)]
            offset = reader.offset
        rest, _ = _all(path, offset)
        assert head + rest == packets


def test_file_decoder_steps_resume_without_rereading(tmp_path):
    """Decoding in steps, stopping, and resuming at ``offset`` feeds each packet exactly once."""
    path = tmp_path / "c.pcap"
    make_capture(path, seed=3, procedures=40)
    total = len(_all(path)[0])
    d1 = Decoder()
    with path.open("rb") as f:
        fd = FileDecoder(f, d1)
        fd.step(100)
        offset = fd.offset
    d2 = Decoder()
    with path.open("rb") as f:
        fd = FileDecoder(f, d2, start_offset=offset)
        while not fd.done:
            fd.step(100)
    assert d1.frames == 100 and d1.frames + d2.frames == total


def test_big_records_across_chunk_boundaries(tmp_path, monkeypatch):
    """Records straddling the reader's chunk boundary are reassembled intact."""
    monkeypatch.setattr("adapters.sigtran.pcap.CHUNK", 97)
    path = tmp_path / "c.pcap"
    make_capture(path, seed=3, procedures=20)
    monkeypatch.undo()
    expected = _all(path)[0]
    monkeypatch.setattr("adapters.sigtran.pcap.CHUNK", 97)
    assert _all(path)[0] == expected


def test_bad_magic_is_a_format_error():
    """A file that is not a capture is refused with CaptureFormatError."""
    with pytest.raises(CaptureFormatError):
        CaptureReader(io.BytesIO(b"GIF89a" + bytes(40)))
    with pytest.raises(CaptureFormatError):
        CaptureReader(io.BytesIO(b"\xd4\xc3"))


def test_truncated_and_oversized_records_stop_with_a_reason():
    """A cut tail or an absurd record length ends the file with a counted reason, no exception."""
    good = pcap_record(1.0, b"x" * 40)
    data = write_pcap_header(1) + good + good[:30]
    reader = CaptureReader(io.BytesIO(data))
    assert len(list(reader.packets())) == 1 and reader.error == "truncated_record"
    huge = write_pcap_header(1) + good + b"\0" * 8 + (10**7).to_bytes(4, "little") * 2
    reader = CaptureReader(io.BytesIO(huge))
    assert len(list(reader.packets())) == 1 and reader.error == "record_too_large"


def test_pcap_errors_are_counted_by_the_file_decoder(tmp_path):
    """FileDecoder counts a damaged tail under layer pcap."""
    path = tmp_path / "c.pcap"
    make_capture(path, seed=3, procedures=5)
    path.write_bytes(path.read_bytes()[:-7])
    _, decoder = decode_file(path)
    assert decoder.errors.get(("pcap", "truncated_record")) == 1


@pytest.mark.parametrize("chunk", [97, 1000, 1 << 20])
@pytest.mark.parametrize("fmt", [{}, {"pcapng": True}, {"big_endian": True, "nanosecond": True}])
def test_pump_feeds_the_same_packets_as_the_iterator(tmp_path, monkeypatch, chunk, fmt):
    """pump() (the decoder's loop) yields exactly packets(), in steps, across chunk boundaries."""
    path = tmp_path / "c"
    make_capture(path, seed=3, procedures=25, **fmt)
    expected = _all(path)[0]
    monkeypatch.setattr("adapters.sigtran.pcap.CHUNK", chunk)
    got = []
    with path.open("rb") as f:
        reader = CaptureReader(f)
        while reader.pump(lambda *packet: got.append(packet), 33) == 33:
            pass
        assert reader.error is None and reader.packets_read == len(expected)
    assert got == expected


def test_pump_stops_on_damage_with_a_reason():
    """pump() reports a cut tail or an absurd length like the iterator does."""
    good = pcap_record(1.0, b"x" * 40)
    for tail, reason in (
        (good[:30], "truncated_record"),
        (good[:9], "truncated_header"),
        (b"\0" * 8 + (10**7).to_bytes(4, "little") * 2, "record_too_large"),
    ):
        reader = CaptureReader(io.BytesIO(write_pcap_header(1) + good + tail))
        fed: list = []
        assert reader.pump(lambda *p, fed=fed: fed.append(p), 10) == 1 and reader.error == reason
