"""The decoding pipeline: captured frame -> IP -> SCTP -> M3UA/M2PA -> MTP3 -> SCCP -> BSSAP.

Standards, layer by layer: link types and IP in :mod:`adapters.sigtran.link`; SCTP RFC 9260
3.1 (common header), 3.2 (chunks), 3.3.1 (DATA chunk: B/E flags, TSN, stream, payload
protocol identifier 3 = M3UA, 5 = M2PA), 6.9 (fragmentation: reassembled here, bounded); M3UA
RFC 4666 3.1 (common header), 3.3.1 (DATA, Protocol Data parameter 0x0210: OPC, DPC, SI);
M2PA RFC 4165 2.1-2.3 (common header, BSN/FSN, User Data: priority octet then the MTP3
message); MTP3 ITU-T Q.704 14.2 (SIO, 4-octet ITU routing label; SI 3 = SCCP); SCCP in
:mod:`adapters.sigtran.sccp`; BSSAP in :mod:`adapters.sigtran.bssap`.

Designed for throughput in pure Python: no object per layer, offsets into the one frame
``bytes`` (``struct.Struct.unpack_from`` precompiled), dispatch by table, packets without
SCCP skipped after a few byte reads. Every frame that cannot be decoded is counted in
:attr:`Decoder.errors` under ``(layer, reason)`` and skipped; frames carrying nothing of
interest (other protocols, M3UA management) are counted in :attr:`Decoder.skipped`. Nothing
raises out of :meth:`Decoder.feed`.
"""

from __future__ import annotations

import struct

from adapters.sigtran import bssap, ranap, sccp
from adapters.sigtran.bssap import COMPLETE_LAYER3
from adapters.sigtran.correlate import Connection, Correlator
from adapters.sigtran.digits import IdentityError
from adapters.sigtran.link import (
    IP4,
    IP6,
    IPV6_FRAGMENT,
    LINKS,
    MTP3,
    Ipv4Reassembler,
    ipv6_payload,
)
from adapters.sigtran.pcap import CaptureReader
from adapters.sigtran.sccp import CC, DT1, RLC, RLSD
from adapters.sigtran.sctp import SctpReassembler

_BAD = (IndexError, ValueError, struct.error, KeyError, TypeError)
_IP4 = struct.Struct("!BxHxxHxB").unpack_from  # version/ihl, total length, flags/fragment, proto
_CHUNK_LEN = struct.Struct("!H").unpack_from
_DATA = struct.Struct("!BBHIHHI").unpack_from  # type, flags, length, TSN, stream, SSN, PPID
_PORTS = struct.Struct("!HH").unpack_from
# Ethernet type; IPv4 version/IHL, total length, flags/fragment, protocol; first SCTP chunk's
# type, flags, length, PPID; M3UA version, class, type, length (70 octets from the frame start)
# and, where a routing context comes first (the usual layout), the next parameter's tag and
# length and the protocol data's OPC, DPC and SI (91 octets from the frame start)
_FAST = struct.Struct("!12xHBxHxxHxB10x12xBBH8xIBxBBIHH4xHHIIB").unpack_from
_M3UA = struct.Struct("!BxBBI").unpack_from  # version, class, type, length
_TAG = struct.Struct("!HH").unpack_from
_PROTO_DATA = struct.Struct("!IIB").unpack_from  # OPC, DPC, SI
_LABEL = struct.Struct("<I").unpack_from
_CC_RLSD = (CC, RLSD)
_CACHE_SIZE = 4096  # decoded BSSAP payloads kept (see Decoder._dt1_bssap)
PPID_M3UA, PPID_M2PA = 3, 5
PORT_M3UA, PORT_M2PA = 2905, 3565
SI_SCCP = 3


class Decoder:
    """Feeds frames through the layers into a :class:`Correlator`; see the module docstring.

    ``trace``: when a list, every SCCP message is appended as ``(frame number, SCCP type,
    dlr, slr, BSSAP dict or None, called, calling)``, for the field-by-field tests.
    """

    def __init__(
        self,
        correlator: Correlator | None = None,
        *,
        trace: list | None = None,
        max_sctp_pending: int = 1024,
        max_message: int = 65536,
    ) -> None:
        self.errors: dict[tuple[str, str], int] = {}
        self.skipped: dict[tuple[str, str], int] = {}
        self.correlator = correlator or Correlator(count=self._skip)
        if correlator is not None:
            correlator._count = self._skip
        self.trace = trace
        self.frames = 0
        self.last_ts = 0.0  # capture time of the last frame
        self.messages = 0  # SCCP messages decoded
        # BSSAP payload -> (its message dict, Correlator.inert(it)), bounded
        self._decoded: dict[bytes, tuple[dict, bool]] = {}
        self._links = LINKS
        self._ip4_frags = Ipv4Reassembler()
        self._sctp_frags = SctpReassembler(
            self._error, max_pending=max_sctp_pending, max_message=max_message
        )

    def _error(self, layer: str, reason: str) -> None:
        key = (layer, reason)
        self.errors[key] = self.errors.get(key, 0) + 1

    def _skip(self, layer: str, reason: str) -> None:
        key = (layer, reason)
        self.skipped[key] = self.skipped.get(key, 0) + 1

    def finish(self) -> list[dict]:
        """End of input: close every open connection (pending events come out) and drain."""
        corr = self.correlator
        for conn in list(corr.conns.values()):
            corr.release(conn)
        corr.end_handed_over()
        return self.drain()

    #: For callers that find a problem outside the frame path (a file that is not a capture).
    count_error = _error

    def drain(self) -> list[dict]:
        """The event dicts produced since the last call."""
        events = self.correlator.events
        self.correlator.events = []
        return events

    # -- frames -----------------------------------------------------------------------------

    def feed(self, ts: float, linktype: int, f: bytes) -> None:
        """Decode one captured frame; events accumulate until :meth:`drain`."""
        self.frames += 1
        self.last_ts = ts
        # Fast path for the common case, one unpack for Ethernet + IPv4 + SCTP + the first
        # chunk + its M3UA header; anything else (and any short frame) takes the general path.
        # fmt: off
        if linktype == 1:
            try:
                (etype, vihl, total, frag, proto, ctype, flags, clen, ppid, version, mclass,
                 mtype, mlen, tag, plen, tag2, plen2, opc, dpc, si) = _FAST(f)
            except struct.error:
                pass
            else:
                if (
                    etype == 0x0800 and vihl == 0x45 and proto == 132 and not frag & 0x3FFF
                    and ctype == 0 and flags & 3 == 3 and ppid == PPID_M3UA
                    and version == 1 and mclass == 1 and mtype == 1 and mlen >= 8
                    and 14 + total <= len(f)  # the IP datagram is all there
                    and 46 + ((clen + 3) & ~3) >= 14 + total  # and holds only this chunk
                    and 46 + clen <= 14 + total  # which is all inside it
                    and 62 + mlen <= 46 + clen  # which holds the whole M3UA message
                ):
                    # usually a routing context, then the protocol data: no loop needed
                    end = 62 + mlen
                    if tag == 0x0006 and plen == 8 and tag2 == 0x0210 and end >= 91:
                        q, tag, plen = 78, tag2, plen2  # OPC, DPC, SI came with the rest
                    else:
                        q, tag, plen = 70, 0, 0
                        if end >= 74:
                            tag, plen = _TAG(f, 70)
                        if tag == 0x0210 and plen >= 17 and 70 + plen <= end:
                            opc, dpc, si = _PROTO_DATA(f, 74)
                        else:
                            tag = 0
                    if tag == 0x0210 and plen >= 17 and q + plen <= end:
                        if si == SI_SCCP:
                            # a DT1 on a connection known to carry BSSAP (two packets in
                            # three), read in place; anything else, or any doubt: _sccp
                            s = q + 16
                            if f[s] == DT1 and plen >= 24 and f[s + 5]:
                                start = s + 5 + f[s + 5]
                                stop = start + 1 + f[start] if start < q + plen else end + 1
                                if start + 1 < stop <= q + plen:
                                    dlr = f[s + 1] | (f[s + 2] << 8) | (f[s + 3] << 16)
                                    conn = self.correlator.conns.get((dpc << 24) | dlr)
                                    if conn is not None and conn.bssap is True:
                                        self._dt1_bssap(ts, conn, dlr, f[start + 1 : stop])
                                        return
                            self._sccp(ts, f[s : q + plen], opc, dpc)
                            return
                    self._m3ua_data(ts, f, 70, 62 + mlen)
                    return
        # fmt: on
        link = self._links.get(linktype)
        if link is None:
            self._skip("link", f"linktype_{linktype}")
            return
        try:
            kind, off = link(f)
        except _BAD:
            self._error("link", "truncated")
            return
        if kind == IP4:
            self._ip4(ts, f, off)
        elif kind == MTP3:
            self._mtp3(ts, f, off, len(f))
        elif kind == IP6:
            self._ip6(ts, f, off)
        else:
            self._skip("link", "no_signaling")

    def _ip4(self, ts: float, f: bytes, off: int) -> None:
        try:
            vihl, total, frag, proto = _IP4(f, off)
        except struct.error:
            self._error("ip", "truncated")
            return
        ihl = (vihl & 15) << 2
        if vihl >> 4 != 4 or ihl < 20:
            self._error("ip", "bad_header")
            return
        if proto != 132:
            self._skip("ip", "not_sctp")
            return
        end = off + total
        if end > len(f) or total < ihl:
            self._error("ip", "truncated")
            return
        if frag & 0x3FFF:
            try:
                whole = self._ip4_frags.add(ts, f, off, ihl, end, frag)
            except _BAD:
                self._error("ip", "fragment_too_large")
                return
            if whole is None:
                return
            f, off, end = whole, 0, len(whole)
        self._sctp(ts, f, off + ihl, end, off + 12, 8)

    def _ip6(self, ts: float, f: bytes, off: int) -> None:
        try:
            nxt, pos, end = ipv6_payload(f, off)
        except _BAD:
            self._error("ip", "bad_ipv6")
            return
        if nxt == 132:
            self._sctp(ts, f, pos, end, off + 8, 32)
        elif nxt == IPV6_FRAGMENT:
            self._skip("ip", "ipv6_fragment")
        else:
            self._skip("ip", "not_sctp")

    # -- SCTP -------------------------------------------------------------------------------

    def _sctp(self, ts: float, f: bytes, off: int, end: int, addr: int, addr_len: int) -> None:
        pos = off + 12
        if pos > end:
            self._error("sctp", "truncated")
            return
        try:
            while pos + 4 <= end:
                if f[pos]:  # not DATA: only its length matters
                    clen = _CHUNK_LEN(f, pos + 2)[0]
                    if clen < 4:
                        self._error("sctp", "bad_chunk_length")
                        return
                    pos += (clen + 3) & ~3
                    continue
                _t, flags, clen, tsn, sid, _ssn, ppid = _DATA(f, pos)
                cend = pos + clen
                if clen < 16 or cend > end:
                    self._error("sctp", "bad_chunk_length")
                    return
                if flags & 3 == 3:
                    self._user(ts, f, pos + 16, cend, ppid, off)
                else:
                    key = (f[addr : addr + addr_len], f[off : off + 4], sid)
                    whole = self._sctp_frags.add(key, tsn, flags, f[pos + 16 : cend])
                    if whole is not None:
                        self._user(ts, whole, 0, len(whole), ppid, None, f, off)
                pos += (clen + 3) & ~3
        except _BAD:
            self._error("sctp", "truncated")

    def _user(
        self,
        ts: float,
        f: bytes,
        p: int,
        end: int,
        ppid: int,
        sctp_off: int | None,
        frame: bytes | None = None,
        frame_off: int = 0,
    ) -> None:
        if ppid == 0:  # unspecified: guess from the well-known ports
            ports = _PORTS(
                f if sctp_off is not None else frame,
                sctp_off if sctp_off is not None else frame_off,
            )
            ppid = PPID_M3UA if PORT_M3UA in ports else PPID_M2PA if PORT_M2PA in ports else 0
        if ppid == PPID_M3UA:
            self._m3ua(ts, f, p, end)
        elif ppid == PPID_M2PA:
            self._m2pa(ts, f, p, end)
        else:
            self._skip("sctp", "other_payload")

    # -- M3UA, M2PA, MTP3 --------------------------------------------------------------------

    def _m3ua(self, ts: float, f: bytes, p: int, end: int) -> None:
        try:
            version, mclass, mtype, mlen = _M3UA(f, p)
            if version != 1 or mlen < 8 or p + mlen > end:
                self._error("m3ua", "bad_header")
                return
            if mclass != 1 or mtype != 1:
                self._skip("m3ua", "not_data")
                return
        except _BAD:
            self._error("m3ua", "truncated")
            return
        self._m3ua_data(ts, f, p + 8, p + mlen)

    def _m3ua_data(self, ts: float, f: bytes, q: int, end: int) -> None:
        """The parameters of an M3UA DATA message whose header was checked by the caller."""
        try:
            while q + 4 <= end:
                tag, plen = _TAG(f, q)
                if plen < 4 or q + plen > end:
                    self._error("m3ua", "bad_parameter")
                    return
                if tag == 0x0210:
                    opc, dpc, si = _PROTO_DATA(f, q + 4)
                    if si != SI_SCCP:
                        self._skip("mtp3", "not_sccp")
                        return
                    self._sccp(ts, f[q + 16 : q + plen], opc, dpc)
                    return
                q += (plen + 3) & ~3
            self._error("m3ua", "no_protocol_data")
        except _BAD:
            self._error("m3ua", "truncated")

    def _m2pa(self, ts: float, f: bytes, p: int, end: int) -> None:
        if end - p < 22 or f[p] != 1 or f[p + 2] != 11:
            self._error("m2pa", "bad_header")
            return
        if f[p + 3] != 1:
            self._skip("m2pa", "link_status")
            return
        self._mtp3(ts, f, p + 17, end)  # common header 8, BSN 4, FSN 4, priority 1

    def _mtp3(self, ts: float, f: bytes, p: int, end: int) -> None:
        if end - p < 6:
            self._error("mtp3", "truncated")
            return
        if f[p] & 0x0F != SI_SCCP:
            self._skip("mtp3", "not_sccp")
            return
        label = _LABEL(f, p + 1)[0]
        self._sccp(ts, f[p + 5 : end], (label >> 14) & 0x3FFF, label & 0x3FFF)

    # -- SCCP and up --------------------------------------------------------------------------

    def _sccp(self, ts: float, d: bytes, opc: int, dpc: int) -> None:
        try:
            if d[0] == DT1:  # three messages in four: parsed inline (Q.713 4.7)
                dlr = d[1] | (d[2] << 8) | (d[3] << 16)
                start = 5 + d[5]
                stop = start + 1 + d[start]
                if d[5] == 0 or stop > len(d):
                    raise ValueError("DT1 data beyond message")
                data = d[start + 1 : stop]
                conn = self.correlator.conns.get((dpc << 24) | dlr)
                if conn is not None and conn.bssap is True and data:
                    self._dt1_bssap(ts, conn, dlr, data)
                    return
                t, slr, called, calling = DT1, None, None, None
            elif (len(d) == 7 and d[0] == RLC) or (len(d) == 9 and d[0] in _CC_RLSD and not d[8]):
                # RLC, or CC / RLSD without an optional part: two references (Q.713 4.3-4.5)
                t, data, called, calling = d[0], None, None, None
                dlr = d[1] | (d[2] << 8) | (d[3] << 16)
                slr = d[4] | (d[5] << 8) | (d[6] << 16)
            else:
                t, dlr, slr, data, called, calling = sccp.parse(d)
        except _BAD:
            self._error("sccp", "malformed")
            return
        self._sccp_general(ts, t, dlr, slr, data, called, calling, opc, dpc)

    def _dt1_bssap(self, ts: float, conn: Connection, dlr: int, data: bytes) -> None:
        """The hot path: data on a connection known to carry BSSAP."""
        self.messages += 1
        # Many messages are byte-identical (Clear Complete, Cipher Mode Command, CC Alerting
        # ...): their decoded dict is kept (bounded) and shared, nothing downstream changes
        # it, with whether the correlator has anything to do with it (most of these: no).
        cache = self._decoded
        entry = cache.get(data)
        msg: dict | None = None
        if entry is None:
            try:
                msg = bssap.decode(data)
            except IdentityError:
                self._error("bssap", "bad_identity")
            except _BAD:
                self._error("bssap", "malformed")
            else:
                if msg is None:  # the discriminator is neither BSSMAP nor DTAP
                    self._error("bssap", "bad_discriminator")
                else:
                    if len(cache) >= _CACHE_SIZE:
                        cache.clear()
                    entry = cache[data] = (msg, Correlator.inert(msg))
        if entry is not None:
            msg, inert = entry
            if inert:
                conn.last = ts
            else:
                try:
                    self.correlator.message(ts, conn, msg)
                except _BAD:
                    self._error("correlation", "inconsistent_message")
        if self.trace is not None:
            self.trace.append((self.frames, DT1, dlr, None, msg, None, None))

    def _sccp_general(self, ts, t, dlr, slr, data, called, calling, opc, dpc) -> None:
        self.messages += 1
        corr = self.correlator
        conn: Connection | None = None
        if t == sccp.DT1:
            conn = corr.conns.get((dpc << 24) | dlr)
            if conn is None:  # capture began inside the connection: BSSAP not yet known
                self._skip("sccp", "connection_midstream")
                conn = corr.open(ts, (dpc << 24) | dlr)
                conn.bssap = None
        elif t == sccp.CR:
            conn = corr.open(ts, (opc << 24) | slr)
            ssn = called[1]
            # BSSAP for SSN 254, RANAP for 142; any other (or none): told apart by content
            conn.ranap = ssn == sccp.SSN_RANAP
            conn.bssap = True if ssn == sccp.SSN_BSSAP else False if conn.ranap else None
        elif t == sccp.CC:
            conn = corr.conns.get((dpc << 24) | dlr)
            if conn is not None:
                corr.alias(conn, (opc << 24) | slr)
        elif t == sccp.RLSD or t == sccp.RLC or t == sccp.CREF:
            conn = corr.conns.get((dpc << 24) | dlr)
            if conn is not None:
                corr.release(conn, ts)
                if t == sccp.RLSD:
                    conn = None
        elif t != sccp.UDT and t != sccp.XUDT:
            name = sccp.NAMES.get(t)
            if name is None:  # not a message type of Q.713 4.1: malformed, not uninteresting
                self._error("sccp", "unknown_type")
            else:
                self._skip("sccp", name)
            return
        msg = self._user_data(ts, conn, called, data) if data else None
        if self.trace is not None:
            self.trace.append((self.frames, t, dlr, slr, msg, called, calling))

    def _user_data(self, ts: float, conn: Connection | None, called, data: bytes) -> dict | None:
        """Decode SCCP user data as BSSAP or (Iu-CS) RANAP, and correlate it.

        The subsystem says which (254 BSSAP, 142 RANAP); where it is absent or another
        number (national variants, a capture that began mid-connection), the content decides:
        strict BSSAP first (lengths exact, a type allowed there), then strict RANAP.
        """
        ssn = None if called is None else called[1]
        if conn is not None:
            kind = "ranap" if conn.ranap else "bssap" if conn.bssap else None
            if conn.bssap is False and not conn.ranap:
                self._skip("sccp", "not_bssap_subsystem")
                return None
        else:
            kind = "bssap" if ssn == sccp.SSN_BSSAP else "ranap" if ssn == sccp.SSN_RANAP else None
        if kind is None:
            msg = self._guess(conn, data)
            if msg is None:
                self._skip("sccp", "not_bssap_subsystem")
                return None
        else:
            try:
                msg = (ranap.decode if kind == "ranap" else bssap.decode)(data)
            except IdentityError:
                self._error(kind, "bad_identity")
                return None
            except _BAD:
                self._error(kind, "malformed")
                return None
            if msg is None:  # on the BSSAP subsystem, a discriminator of neither part
                self._error("bssap", "bad_discriminator")
                return None
        try:
            if conn is not None:
                self.correlator.message(ts, conn, msg)
            else:
                self.correlator.connectionless(ts, msg)
        except _BAD:
            self._error("correlation", "inconsistent_message")
        return msg

    def _guess(self, conn: Connection | None, data: bytes) -> dict | None:
        """BSSAP or RANAP by content; the answer sticks to the connection."""
        try:
            msg = bssap.decode(data)
        except _BAD:
            msg = None
        if msg is not None and (
            conn is None or msg.get("bssmap", COMPLETE_LAYER3) in bssap.CONNECTION_ORIENTED
        ):
            if conn is not None:
                conn.bssap = True
            return msg
        try:
            msg = ranap.decode(data)
        except _BAD:
            msg = None
        if conn is not None:
            conn.bssap, conn.ranap = False, msg is not None
        return msg


# -- files ------------------------------------------------------------------------------------


class FileDecoder:
    """Decodes one capture file in steps, so a caller can hand events on between steps.

    ``offset`` after a step is the file position to resume from (``start_offset``).
    With ``count_truncation=False`` a file that ends inside a record is not counted as an
    error (:attr:`truncated` tells): the caller may be reading a file the probe still writes.
    """

    def __init__(
        self, stream, decoder: Decoder, *, start_offset: int = 0, count_truncation: bool = True
    ) -> None:
        self.reader = CaptureReader(stream, start_offset=start_offset)
        self.decoder = decoder
        self.done = False
        self.count_truncation = count_truncation

    @property
    def truncated(self) -> bool:
        """The input ended inside a record (or a record header), after :attr:`offset`."""
        error = self.reader.error
        return error is not None and error.startswith("truncated")

    @property
    def offset(self) -> int:
        return self.reader.offset

    def step(self, max_packets: int = 20_000) -> list[dict]:
        """Decode up to ``max_packets`` packets; returns the events; sets ``done`` at the end."""
        decoder = self.decoder
        n = self.reader.pump(decoder.feed, max_packets)
        if n:
            decoder.correlator.expire_idle(decoder.last_ts)
        if n < max_packets:
            self.done = True
            if self.reader.error and (self.count_truncation or not self.truncated):
                decoder.count_error("pcap", self.reader.error)
        return decoder.drain()
