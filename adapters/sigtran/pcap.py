"""Streaming readers for pcap and pcapng capture files.

- pcap: the libpcap file format (draft-ietf-opsawg-pcap, section 4 file header, section 5
  packet record), both byte orders, microsecond (``a1b2c3d4``) and nanosecond (``a1b23c4d``).
- pcapng: draft-ietf-opsawg-pcapng, section 4.1 Section Header Block (byte order per
  section), 4.2 Interface Description Block (link type, ``if_tsresol`` option), 4.3 Enhanced
  Packet Block, 4.4 Simple Packet Block; every other block is skipped.

The reader holds one chunk of the file (1 MiB) at a time, whatever the file size: memory is
constant. :meth:`CaptureReader.packets` yields ``(timestamp, linktype, frame bytes)``;
:attr:`CaptureReader.offset` is the file offset just after the last yielded record, so a
consumer can persist it and resume there (``start_offset``). A record that cannot be framed
(a length beyond :data:`MAX_RECORD`, a truncated tail) ends the iteration and is noted in
:attr:`CaptureReader.error`: the rest of such a file cannot be resynchronised.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from itertools import islice
from typing import BinaryIO

CHUNK = 1 << 20
MAX_RECORD = 256 * 1024  # larger than any snaplen in use; beyond it the file is corrupt


class CaptureFormatError(ValueError):
    """The file is neither pcap nor pcapng (bad magic), or its header is truncated."""


_PCAP_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"


class CaptureReader:
    """Reads packets from a pcap or pcapng stream; see the module docstring."""

    def __init__(self, stream: BinaryIO, *, start_offset: int = 0) -> None:
        self._f = stream
        head = stream.read(24)
        if len(head) < 24:
            raise CaptureFormatError("file shorter than a capture header")
        self.offset = 0
        self.error: str | None = None
        self.packets_read = 0
        self._buf: bytes | None = None  # pump() state: buffer, position, its file offset
        self._pos = self._base = 0
        self._iter: Iterator | None = None
        magic = head[:4]
        if magic in _PCAP_MAGIC:
            self.format = "pcap"
            order, self._scale = _PCAP_MAGIC[magic]
            self._order = order
            self.linktype = struct.unpack(order + "I", head[20:24])[0] & 0x0FFFFFFF
            self._start = max(24, start_offset)
        elif magic == _PCAPNG_SHB:
            self.format = "pcapng"
            self.linktype = None
            self._start = start_offset
        else:
            raise CaptureFormatError(f"not a pcap/pcapng file (magic {magic.hex()})")

    def packets(self) -> Iterator[tuple[float, int, bytes]]:
        """Yield ``(timestamp, linktype, frame)`` for every packet from the start offset on."""
        if self.format == "pcap":
            return self._pcap()
        return self._pcapng()

    # -- pcap -------------------------------------------------------------------------------

    def _pcap(self) -> Iterator[tuple[float, int, bytes]]:
        f = self._f
        f.seek(self._start)
        base = self._start
        buf = f.read(CHUNK)
        pos = 0
        unpack = struct.Struct(self._order + "IIII").unpack_from
        scale = self._scale
        linktype = self.linktype
        while True:
            if pos + 16 > len(buf):
                more = f.read(CHUNK)
                if not more:
                    if pos != len(buf):
                        self.error = "truncated_header"
                    return
                base += pos
                buf = buf[pos:] + more
                pos = 0
                continue
            sec, frac, caplen, _orig = unpack(buf, pos)
            if caplen > MAX_RECORD:
                self.error = "record_too_large"
                return
            end = pos + 16 + caplen
            if end > len(buf):
                more = f.read(max(CHUNK, caplen + 16))
                if not more:
                    self.error = "truncated_record"
                    return
                base += pos
                buf = buf[pos:] + more
                pos = 0
                continue
            self.offset = base + end
            self.packets_read += 1
            yield sec + frac * scale, linktype, buf[pos + 16 : end]
            pos = end

    def pump(self, feed, max_packets: int) -> int:
        """Call ``feed(ts, linktype, frame)`` for up to ``max_packets`` packets; returns how many.

        The same records as :meth:`packets` without a generator between reader and decoder
        (the decoder's hot loop); for pcapng it simply drives :meth:`packets`. Fewer than
        ``max_packets`` means the end of the file (or :attr:`error`).
        """
        if self.format != "pcap":
            if self._iter is None:
                self._iter = self.packets()
            n = 0
            for ts, linktype, frame in islice(self._iter, max_packets):
                feed(ts, linktype, frame)
                n += 1
            return n
        f = self._f
        if self._buf is None:
            f.seek(self._start)
            self._base, self._buf, self._pos = self._start, f.read(CHUNK), 0
        buf, pos, base = self._buf, self._pos, self._base
        unpack = struct.Struct(self._order + "IIII").unpack_from
        scale, linktype = self._scale, self.linktype
        n = 0
        try:
            while n < max_packets:
                end = pos + 16
                if end <= len(buf):
                    sec, frac, caplen, _orig = unpack(buf, pos)
                    end += caplen
                    if end <= len(buf) and caplen <= MAX_RECORD:
                        feed(sec + frac * scale, linktype, buf[pos + 16 : end])
                        pos = end
                        n += 1
                        continue
                    if caplen > MAX_RECORD:
                        self.error = "record_too_large"
                        break
                more = f.read(max(CHUNK, end - pos))
                if not more:
                    if pos != len(buf):
                        self.error = (
                            "truncated_header" if pos + 16 > len(buf) else "truncated_record"
                        )
                    break
                base += pos
                buf = buf[pos:] + more
                pos = 0
        finally:
            self._buf, self._pos, self._base = buf, pos, base
            self.offset = base + pos
            self.packets_read += n
        return n

    # -- pcapng -----------------------------------------------------------------------------

    def _pcapng(self) -> Iterator[tuple[float, int, bytes]]:
        f = self._f
        f.seek(0)
        base = 0
        buf = f.read(CHUNK)
        pos = 0
        order = "<"
        interfaces: list[tuple[int, float]] = []
        skip_before = self._start
        while True:
            if pos + 12 > len(buf):
                more = f.read(CHUNK)
                if not more:
                    if pos != len(buf):
                        self.error = "truncated_header"
                    return
                base += pos
                buf = buf[pos:] + more
                pos = 0
                continue
            btype_raw = buf[pos : pos + 4]
            if btype_raw == _PCAPNG_SHB:
                bom = buf[pos + 8 : pos + 12]
                if bom == b"\x4d\x3c\x2b\x1a":
                    order = "<"
                elif bom == b"\x1a\x2b\x3c\x4d":
                    order = ">"
                else:
                    self.error = "bad_byte_order"
                    return
                interfaces = []
            btype, blen = struct.unpack_from(order + "II", buf, pos)
            if blen < 12 or blen % 4 or blen > MAX_RECORD:
                self.error = "bad_block_length"
                return
            end = pos + blen
            if end > len(buf):
                more = f.read(max(CHUNK, blen))
                if not more:
                    self.error = "truncated_record"
                    return
                base += pos
                buf = buf[pos:] + more
                pos = 0
                continue
            if skip_before and (btype == 6 or btype == 3):
                # resuming: the section and interface headers are read; jump to the offset
                # (interfaces described after the first packet are not supported on resume)
                f.seek(skip_before)
                base, buf, pos, skip_before = skip_before, f.read(CHUNK), 0, 0
                continue
            body = buf[pos + 8 : end - 4]
            self.offset = base + end
            pos = end
            if btype == 1 and len(body) >= 8:  # Interface Description Block
                linktype = struct.unpack_from(order + "H", body, 0)[0]
                interfaces.append((linktype, _tsresol(body[8:], order)))
            elif btype == 6 and len(body) >= 20:  # Enhanced Packet Block
                ifid, hi, lo, caplen, _orig = struct.unpack_from(order + "IIIII", body, 0)
                if ifid >= len(interfaces) or 20 + caplen > len(body):
                    continue
                linktype, scale = interfaces[ifid]
                self.packets_read += 1
                yield ((hi << 32) | lo) * scale, linktype, body[20 : 20 + caplen]
            elif btype == 3 and len(body) >= 4 and interfaces:  # Simple Packet Block
                self.packets_read += 1
                yield 0.0, interfaces[0][0], body[4:]


def _tsresol(options: bytes, order: str) -> float:
    """Seconds per timestamp unit from the IDB options (``if_tsresol``, code 9)."""
    pos = 0
    while pos + 4 <= len(options):
        code, length = struct.unpack_from(order + "HH", options, pos)
        if code == 0:
            break
        if code == 9 and length >= 1:
            value = options[pos + 4]
            return 2.0 ** -(value & 0x7F) if value & 0x80 else 10.0**-value
        pos += 4 + ((length + 3) & ~3)
    return 1e-6


def write_pcap_header(
    linktype: int, *, nanosecond: bool = False, big_endian: bool = False
) -> bytes:
    """A classic pcap file header (for the builder and tests)."""
    order = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
    return struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 262144, linktype)


def pcap_record(
    ts: float, frame: bytes, *, nanosecond: bool = False, big_endian: bool = False
) -> bytes:
    """One pcap packet record (header + frame)."""
    order = ">" if big_endian else "<"
    sec = int(ts)
    frac = round((ts - sec) * (1e9 if nanosecond else 1e6))
    return struct.pack(order + "IIII", sec, frac, len(frame), len(frame)) + frame
