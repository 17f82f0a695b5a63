"""Random and mutated bytes never raise out of the decoder: they are counted and skipped."""

from __future__ import annotations

import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sigtran_helpers import CAPTURES

from adapters.sigtran import bssap, ranap, sccp
from adapters.sigtran import build as W
from adapters.sigtran.decoder import Decoder, FileDecoder
from adapters.sigtran.link import LINKS
from adapters.sigtran.pcap import CaptureFormatError, CaptureReader, pcap_record, write_pcap_header
from adapters.sigtran.scenario import TRANSPORT_LINKTYPE, Scenario, frames

_SCENARIO = Scenario(seed=9).run(30)
SAMPLES = {
    transport: list(frames(_SCENARIO.messages, transport, bundle=True, sctp_fragment=50))
    for transport in ("m3ua", "m2pa", "mtp3", "sll2", "m3ua_ipv6")
}
# real Iu-CS and A-interface frames as mutation seeds too
for _name in ("3gpp_mc.cap", "iucs-mo-call-amr.pcap", "gsm-r.uus1.pcap"):
    if not (CAPTURES / _name).exists():
        continue
    with open(CAPTURES / _name, "rb") as _f:
        _reader = CaptureReader(_f)
        SAMPLES[_name] = [(ts, frame) for ts, _lt, frame in _reader.packets()]
        TRANSPORT_LINKTYPE = {**TRANSPORT_LINKTYPE, _name: _reader.linktype}
LINKTYPES = [*sorted(LINKS), 999]
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _accounted(decoder: Decoder, fed: int) -> None:
    assert decoder.frames == fed


@FUZZ
@given(st.sampled_from(LINKTYPES), st.binary(max_size=300))
def test_random_frames_on_every_link_type(linktype, frame):
    """Any bytes under any link type are decoded, skipped or counted as an error."""
    decoder = Decoder()
    decoder.feed(1.0, linktype, frame)
    _accounted(decoder, 1)


@FUZZ
@given(st.sampled_from(sorted(SAMPLES)), st.data())
def test_mutated_valid_frames(transport, data):
    """Valid frames with flipped bytes, cut tails and inserted junk never raise."""
    packets = SAMPLES[transport]
    linktype = TRANSPORT_LINKTYPE[transport]
    decoder = Decoder()
    start = data.draw(st.integers(0, max(0, len(packets) - 40)))
    chosen = packets[start : start + 40]
    for ts, frame in chosen:
        frame = bytearray(frame)
        for _ in range(data.draw(st.integers(0, 4))):
            frame[data.draw(st.integers(0, len(frame) - 1))] = data.draw(st.integers(0, 255))
        if data.draw(st.booleans()):
            frame = frame[: data.draw(st.integers(0, len(frame)))]
        decoder.feed(ts, linktype, bytes(frame))
    _accounted(decoder, len(chosen))
    decoder.finish()


@FUZZ
@given(st.binary(max_size=120))
def test_sccp_and_bssap_raise_only_decoding_errors(data):
    """SCCP, BSSAP and RANAP parsers fail only with ValueError/IndexError (counted by the decoder)."""
    for parse in (sccp.parse, bssap.decode, ranap.decode):
        try:
            parse(data)
        except (ValueError, IndexError):
            pass


@FUZZ
@given(st.binary(min_size=0, max_size=600))
def test_random_capture_files(blob):
    """Random bytes after a valid or random header never raise beyond CaptureFormatError."""
    for content in (blob, write_pcap_header(1) + blob, b"\x0a\x0d\x0d\x0a" + blob):
        try:
            fd = FileDecoder(io.BytesIO(content), Decoder())
        except CaptureFormatError:
            continue
        while not fd.done:
            fd.step(50)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 1 << 32), st.binary(max_size=80)), max_size=20))
def test_random_records_in_a_valid_file(records):
    """Well-framed records with random content are each counted, never raised."""
    content = write_pcap_header(1) + b"".join(pcap_record(ts / 1000, f) for ts, f in records)
    decoder = Decoder()
    fd = FileDecoder(io.BytesIO(content), decoder)
    while not fd.done:
        fd.step(7)
    assert decoder.frames == len(records)


@FUZZ
@given(st.integers(8, 120), st.binary(max_size=120), st.booleans())
def test_fast_path_headers_with_any_m3ua_body(mlen, body, routing_context):
    """Frames that pass the Ethernet/IPv4/SCTP/M3UA fast-path checks, whatever follows, never raise."""
    if routing_context:
        body = bytes.fromhex("00060008000000") + body
    m3ua = bytes([1, 0, 1, 1]) + mlen.to_bytes(4, "big") + body
    frame = W.ethernet(
        W.ipv4(b"\1\1\1\1", b"\2\2\2\2", W.sctp_packet(2905, 2905, [W.sctp_data_chunk(1, m3ua)]))
    )
    decoder = Decoder()
    decoder.feed(1.0, 1, frame)
    decoder.feed(1.0, 1, frame[: len(frame) - len(body) // 2])
    _accounted(decoder, 2)


@FUZZ
@given(st.integers(60, 140), st.integers(0, 200), st.binary(min_size=0, max_size=40))
def test_fast_path_chunk_longer_than_the_frame(cut, extra, body):
    """A DATA chunk (and M3UA message) claiming more octets than the captured IP datagram holds
    is counted, not read past the end of the frame."""
    m3ua = W.m3ua_data(1, 2, W.sccp_udt(W.party(254), W.party(254), b"\0\3\x55\0\0" + body))
    frame = bytearray(
        W.ethernet(
            W.ipv4(
                b"\1\1\1\1", b"\2\2\2\2", W.sctp_packet(2905, 2905, [W.sctp_data_chunk(1, m3ua)])
            )
        )
    )
    frame = frame[: min(cut, len(frame))]
    frame[16:18] = (len(frame) - 14).to_bytes(2, "big")  # IP total length: what was captured
    clen = int.from_bytes(frame[48:50], "big") + extra
    frame[48:50] = min(clen, 0xFFFF).to_bytes(2, "big")
    decoder = Decoder()
    decoder.feed(1.0, 1, bytes(frame))
    _accounted(decoder, 1)
