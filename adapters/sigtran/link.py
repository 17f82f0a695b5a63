"""Link layers and IP: from a captured frame to the SCTP segment or MTP3 message inside.

Link types (tcpdump.org LINKTYPE_* registry): NULL (0, BSD loopback), ETHERNET (1, IEEE 802.3
with 802.1Q / 802.1ad VLAN tags), RAW (101, and 12 / 228 / 229), LINUX_SLL (113), LINUX_SLL2
(276), MTP2_WITH_PHDR (139, a 4-octet pseudo-header before MTP2), MTP2 (140, ITU-T Q.703 7.1:
BSN/FSN octets and the length indicator), MTP3 (141, ITU-T Q.704 14.2: SIO + routing label).

IPv4 (RFC 791 3.1, fragments reassembled per RFC 815 with a bounded table) and IPv6 (RFC 8200
section 4: extension headers skipped; fragments are counted and skipped).

Each ``link_*`` function returns ``(kind, offset)``: the kind of what starts at ``offset``
(:data:`IP4`, :data:`IP6`, :data:`MTP3`, or :data:`NONE` for frames without signaling).
"""

from __future__ import annotations

import struct

NONE, MTP3, IP4, IP6 = 0, 3, 4, 6
_ETHERTYPE = {0x0800: IP4, 0x86DD: IP6}
_H = struct.Struct("!H").unpack_from
_HL = struct.Struct("<H").unpack_from


def link_ethernet(f: bytes) -> tuple[int, int]:
    etype = (f[12] << 8) | f[13]
    off = 14
    while etype == 0x8100 or etype == 0x88A8 or etype == 0x9100:
        etype = (f[off + 2] << 8) | f[off + 3]
        off += 4
    return _ETHERTYPE.get(etype, NONE), off


def link_sll(f: bytes) -> tuple[int, int]:
    return _ETHERTYPE.get((f[14] << 8) | f[15], NONE), 16


def link_sll2(f: bytes) -> tuple[int, int]:
    return _ETHERTYPE.get((f[0] << 8) | f[1], NONE), 20


def link_raw(f: bytes) -> tuple[int, int]:
    version = f[0] >> 4
    return (IP4 if version == 4 else IP6 if version == 6 else NONE), 0


def link_null(f: bytes) -> tuple[int, int]:
    family = f[0] | f[3]  # host byte order: one of the two ends holds the value
    return (IP4 if family == 2 else IP6 if family in (10, 24, 28, 30) else NONE), 4


def link_mtp2(f: bytes, off: int = 0) -> tuple[int, int]:
    # BSN+BIB, FSN+FIB, LI: LI 0 = fill-in, 1-2 = link status; only message signal units count.
    if (f[off + 2] & 0x3F) < 3:
        return NONE, off + 3
    return MTP3, off + 3


def link_mtp2_phdr(f: bytes) -> tuple[int, int]:
    return link_mtp2(f, 4)


def link_mtp3(f: bytes) -> tuple[int, int]:
    return MTP3, 0


LINKS = {
    0: link_null,
    1: link_ethernet,
    12: link_raw,
    101: link_raw,
    228: link_raw,
    229: link_raw,
    113: link_sll,
    276: link_sll2,
    139: link_mtp2_phdr,
    140: link_mtp2,
    141: link_mtp3,
}

# -- IPv6 ---------------------------------------------------------------------------------------

_IPV6_SKIPPABLE = {0, 43, 60}  # hop-by-hop, routing, destination options
IPV6_FRAGMENT = 44


def ipv6_payload(f: bytes, off: int) -> tuple[int, int, int]:
    """``(next header, payload offset, payload end)`` after skipping extension headers."""
    if f[off] >> 4 != 6:
        raise ValueError("not IPv6")
    end = min(len(f), off + 40 + _H(f, off + 4)[0])
    nxt = f[off + 6]
    pos = off + 40
    while nxt in _IPV6_SKIPPABLE:
        nxt, hlen = f[pos], (f[pos + 1] + 1) * 8
        pos += hlen
    if pos > end:
        raise ValueError("IPv6 extension headers beyond payload")
    return nxt, pos, end


# -- IPv4 fragment reassembly --------------------------------------------------------------------


class Ipv4Reassembler:
    """Bounded reassembly of fragmented IPv4 datagrams (RFC 815).

    At most ``max_datagrams`` in flight and ``max_bytes`` per datagram; a datagram not
    completed within ``timeout`` seconds of capture time is dropped. ``add`` returns the whole
    datagram (the first fragment's header, fragment fields cleared, then the payload) or None.
    """

    def __init__(self, *, max_datagrams: int = 1024, max_bytes: int = 65535, timeout: float = 30.0):
        self.max_datagrams = max_datagrams
        self.max_bytes = max_bytes
        self.timeout = timeout
        # key -> [first_ts, header, {offset: data}, total, octets held]
        self._pending: dict[bytes, list] = {}
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, ts: float, f: bytes, off: int, ihl: int, end: int, frag: int) -> bytes | None:
        # identification, protocol, source and destination addresses (RFC 791 3.2)
        key = f[off + 4 : off + 6] + f[off + 9 : off + 10] + f[off + 12 : off + 20]
        entry = self._pending.get(key)
        if entry is None:
            if len(self._pending) >= self.max_datagrams:
                self._expire(ts, force=True)
            entry = self._pending[key] = [ts, None, {}, None, 0]
        elif ts - entry[0] > self.timeout:
            entry[:] = [ts, None, {}, None, 0]
        offset = (frag & 0x1FFF) * 8
        data = f[off + ihl : end]
        previous = entry[2].get(offset)
        # overlapping fragments could otherwise hold far more than one datagram's octets
        entry[4] += len(data) - (0 if previous is None else len(previous))
        if offset + len(data) > self.max_bytes or entry[4] > self.max_bytes:
            del self._pending[key]
            self.dropped += 1
            raise ValueError("IPv4 datagram beyond maximum size")
        entry[2][offset] = data
        if offset == 0:
            entry[1] = f[off : off + ihl]
        if not frag & 0x2000:  # last fragment: the total length is known
            entry[3] = offset + len(data)
        if entry[1] is None or entry[3] is None:
            return None
        pieces, have = [], 0
        for start in sorted(entry[2]):
            piece = entry[2][start]
            if start > have:
                return None  # a hole remains
            pieces.append(piece[have - start :])
            have = max(have, start + len(piece))
        if have < entry[3]:
            return None
        del self._pending[key]
        header = bytearray(entry[1])
        header[6] = header[7] = 0
        total = len(header) + entry[3]
        header[2], header[3] = total >> 8, total & 0xFF
        return bytes(header) + b"".join(pieces)[: entry[3]]

    def _expire(self, ts: float, *, force: bool = False) -> None:
        stale = [k for k, e in self._pending.items() if ts - e[0] > self.timeout]
        if not stale and force:
            stale = [next(iter(self._pending))]
        for key in stale:
            del self._pending[key]
            self.dropped += 1
