"""Synthetic A-interface traffic: subscriber procedures built from :mod:`adapters.sigtran.build`.

A :class:`Scenario` plays subscribers through the procedures of TS 24.008 4.4 (location
updating: IMSI attach, normal, periodic, reject; IMSI detach), 4.5 (CM service: mobile
originated call and SMS, paging response for a mobile terminated call), 5 (call control with
handover, TS 48.008 3.1.5) and TS 24.011 5 (SMS CP/RP), each on its own SCCP connection
(Q.714: CR, CC, DT1..., RLSD, RLC; some refused with CREF), with paging as UDT or XUDT.
It records the signaling messages ``(ts, opc, dpc, sccp)`` and the events a correct decoder
derives from them (``expected``). :func:`frames` puts the messages on a transport (M3UA over
SCTP/IP over Ethernet, Linux cooked, raw IP, IPv6, M2PA, MTP2, MTP3) and :func:`write_pcap`
writes a capture. Deterministic for a given seed. Used by tests, the benchmark and the demo.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from adapters.sigtran import bssap as B
from adapters.sigtran import build as W
from adapters.sigtran.digits import MI_IMEI, MI_IMEISV, MI_IMSI, imei_from_imeisv
from adapters.sigtran.pcap import pcap_record, write_pcap_header

BSC_PC, MSC_PC = 100, 200
BSC_IP, MSC_IP = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
BSC_IP6, MSC_IP6 = bytes(15) + b"\x01", bytes(15) + b"\x02"
HOME = ("460", "00")


class _Sub:
    __slots__ = ("attached", "cell", "imeisv", "imsi", "tmsi")

    def __init__(self, imsi: str, imeisv: str) -> None:
        self.imsi, self.imeisv, self.tmsi = imsi, imeisv, None
        self.cell: tuple[str, str, int, int] | None = None
        self.attached = False


class Scenario:
    """See the module docstring. ``messages`` and ``expected`` grow as procedures run."""

    def __init__(
        self,
        seed: int = 1,
        *,
        subscribers: int = 40,
        start: float = 1_767_225_600.0,
        foreign: float = 0.1,
        imsis: list[str] | None = None,
        cells: list[tuple[int, int]] | None = None,
        gap: float = 0.0,
    ) -> None:
        """``imsis``: use these subscribers (else ``subscribers`` random ones, ``foreign`` of
        them roaming); ``cells``: (LAC, CI) pairs to draw from; ``gap``: up to this many
        seconds of quiet between procedures."""
        rng = self.rng = random.Random(seed)
        self.ts = start
        self.gap = gap
        self.cells = cells
        self.messages: list[tuple[float, int, int, bytes]] = []
        self.expected: list[tuple[str, str | None]] = []
        self._ref = rng.randrange(1, 1 << 20)
        self._tmsi = rng.randrange(1 << 30)
        self.subs = [_Sub(imsi, f"35{rng.randrange(10**12):012d}01") for imsi in imsis or ()]
        for i in range(0 if imsis else subscribers):
            plmn = "46000" if rng.random() >= foreign else "20801"
            imsi = plmn + f"{rng.randrange(10**9):09d}{i % 10}"
            self.subs.append(_Sub(imsi, f"35{rng.randrange(10**12):012d}01"))

    # -- plumbing ---------------------------------------------------------------------------

    def _tick(self, lo: float = 0.01, hi: float = 0.3) -> float:
        self.ts += self.rng.uniform(lo, hi)
        return self.ts

    def _up(self, sccp: bytes) -> None:
        self.messages.append((self._tick(), BSC_PC, MSC_PC, sccp))

    def _down(self, sccp: bytes) -> None:
        self.messages.append((self._tick(), MSC_PC, BSC_PC, sccp))

    def _cell(self) -> tuple[str, str, int, int]:
        if self.cells:
            return (*HOME, *self.rng.choice(self.cells))
        return (*HOME, self.rng.choice((0x1001, 0x1002, 0x2001)), self.rng.randrange(1, 65535))

    def _open(self, l3: bytes, cell: tuple) -> tuple[int, int]:
        bsc, msc = self._ref, self._ref + 1
        self._ref = (self._ref + 2) & 0xFFFFFF or 1
        self._up(W.sccp_cr(bsc, W.complete_layer3(cell, l3), calling=W.party(254, BSC_PC)))
        self._down(W.sccp_cc(bsc, msc))
        return bsc, msc

    def _close(self, bsc: int, msc: int) -> None:
        self._down(W.sccp_dt1(bsc, W.clear_command()))
        self._up(W.sccp_dt1(msc, W.clear_complete()))
        self._down(W.sccp_rlsd(bsc, msc))
        self._up(W.sccp_rlc(msc, bsc))

    def _cipher(self, bsc: int, msc: int) -> None:
        self._down(W.sccp_dt1(bsc, W.cipher_mode_command()))
        self._up(W.sccp_dt1(msc, W.cipher_mode_complete()))

    def _new_tmsi(self) -> int:
        self._tmsi = (self._tmsi + 7919) & 0xFFFFFFFF
        return self._tmsi

    def _expect(self, kind: str, sub: _Sub) -> None:
        if not any(k == "seen" and s == sub.imsi for k, s in self.expected):
            self.expected.append(("seen", sub.imsi))
            if not sub.imsi.startswith("46000"):
                self.expected.append(("roaming_in", sub.imsi))
        self.expected.append((kind, sub.imsi))

    # -- procedures -------------------------------------------------------------------------

    def location_update(self, sub: _Sub, lu_type: int, *, reject: bool = False) -> None:
        cell = self._cell()
        ident = sub.tmsi if sub.tmsi is not None else sub.imsi
        bsc, msc = self._open(W.lu_request(lu_type, (*HOME, 0x1001), ident), cell)
        if sub.tmsi is not None and self.rng.random() < 0.3:
            self._down(W.sccp_dt1(bsc, W.dtap(W.identity_request(MI_IMSI))))
            self._up(W.sccp_dt1(msc, W.dtap(W.identity_response(sub.imsi))))
        if reject:
            self._down(W.sccp_dt1(bsc, W.dtap(W.lu_reject())))
            self._close(bsc, msc)
            return
        self._cipher(bsc, msc)
        if lu_type == B.LU_IMSI_ATTACH:
            kind = MI_IMEI if self.rng.random() < 0.3 else MI_IMEISV
            self._down(W.sccp_dt1(bsc, W.dtap(W.identity_request(kind))))
            if self.rng.random() < 0.2:  # a new handset
                sub.imeisv = f"35{self.rng.randrange(10**12):012d}02"
                if any(k == "imei" and s == sub.imsi for k, s in self.expected):
                    self.expected.append(("handset_change", sub.imsi))
            value = sub.imeisv if kind == MI_IMEISV else imei_from_imeisv(sub.imeisv)
            self._up(W.sccp_dt1(msc, W.dtap(W.identity_response(value, kind))))
            self.expected.append(("imei", sub.imsi))
        sub.tmsi = self._new_tmsi()
        self._down(W.sccp_dt1(bsc, W.dtap(W.lu_accept((*HOME, cell[2]), sub.tmsi))))
        self._up(W.sccp_dt1(msc, W.dtap(W.tmsi_realloc_complete())))
        kind = {B.LU_IMSI_ATTACH: "power_on", B.LU_PERIODIC: "periodic_update"}.get(
            lu_type, "location_update"
        )
        self._expect(kind, sub)
        sub.cell, sub.attached = cell, True
        self._close(bsc, msc)

    def detach(self, sub: _Sub) -> None:
        ident = sub.tmsi if sub.tmsi is not None else sub.imsi
        bsc, msc = self._open(W.imsi_detach(ident), sub.cell or self._cell())
        if sub.tmsi is None or self.rng.random() < 0.5:
            self._down(W.sccp_dt1(bsc, W.common_id(sub.imsi)))
        self._expect("power_off", sub)
        sub.attached = False
        self._close(bsc, msc)

    def _service(self, sub: _Sub, service: int, *, paged: bool = False) -> tuple[int, int]:
        cell = self._cell()
        if paged:
            page = W.paging(sub.imsi, sub.tmsi, cell[2])
            called, calling = W.party(254, BSC_PC), W.party(254, MSC_PC)
            if self.rng.random() < 0.5:  # routed on a global title (E.164 of the BSC)
                called = W.party(254, gt="861390000" + str(self.rng.randrange(10, 1000)))
            self._down(
                W.sccp_xudt(called, calling, page)
                if self.rng.random() < 0.5
                else W.sccp_udt(called, calling, page)
            )
            l3 = W.paging_response(sub.tmsi if sub.tmsi is not None else sub.imsi)
        else:
            l3 = W.cm_service_request(sub.tmsi if sub.tmsi is not None else sub.imsi, service)
        bsc, msc = self._open(l3, cell)
        self._down(W.sccp_dt1(bsc, W.common_id(sub.imsi)))
        if sub.cell is not None and sub.cell[2:] != cell[2:]:
            self._expect("cell_change", sub)
        sub.cell = cell
        self._cipher(bsc, msc)
        if self.rng.random() < 0.2:
            sub.tmsi = self._new_tmsi()
            self._down(W.sccp_dt1(bsc, W.dtap(W.tmsi_realloc_command((*HOME, cell[2]), sub.tmsi))))
            self._up(W.sccp_dt1(msc, W.dtap(W.tmsi_realloc_complete())))
        return bsc, msc

    def call(self, sub: _Sub, *, mobile_originated: bool = True) -> None:
        bsc, msc = self._service(sub, 1, paged=not mobile_originated)
        ti = self.rng.randrange(7)
        peer = self.rng.choice(("12580", "10086", "8613900001111", "8613812345678"))
        if mobile_originated:
            self._up(W.sccp_dt1(msc, W.dtap(W.cc_setup(ti, called=peer))))
            self._down(W.sccp_dt1(bsc, W.dtap(W.cc_simple(ti | 8, B.CC_CALL_PROCEEDING))))
        else:
            self._down(W.sccp_dt1(bsc, W.dtap(W.cc_setup(ti, calling=peer))))
            self._up(W.sccp_dt1(msc, W.dtap(W.cc_simple(ti | 8, 0x08))))  # call confirmed
        self._expect("call_start", sub)
        self._down(W.sccp_dt1(bsc, W.assignment_request()))
        self._up(W.sccp_dt1(msc, W.assignment_complete()))
        self._down(W.sccp_dt1(bsc, W.dtap(W.cc_simple(ti | 8, B.CC_ALERTING))))
        self._down(W.sccp_dt1(bsc, W.dtap(W.cc_simple(ti | 8, B.CC_CONNECT))))
        self._up(W.sccp_dt1(msc, W.dtap(W.cc_simple(ti, B.CC_CONNECT_ACK))))
        self.ts += self.rng.uniform(5, 120)
        if self.rng.random() < 0.3:
            new_cell = self._cell()
            self._up(W.sccp_dt1(msc, W.handover_required(0x10, [new_cell])))
            self._down(W.sccp_dt1(bsc, W.handover_command()))
            self._up(W.sccp_dt1(msc, W.handover_performed(0x10, new_cell)))
            self._expect("handover", sub)
            sub.cell = new_cell
        self._up(W.sccp_dt1(msc, W.dtap(W.cc_disconnect(ti, 16))))
        self._down(W.sccp_dt1(bsc, W.dtap(W.cc_release(ti | 8, None))))
        self._up(W.sccp_dt1(msc, W.dtap(W.cc_release_complete(ti, 16))))
        self._expect("call_end", sub)
        self._close(bsc, msc)

    def sms(self, sub: _Sub) -> None:
        bsc, msc = self._service(sub, 4)
        ti, ref = self.rng.randrange(7), self.rng.randrange(256)
        dest = self.rng.choice(("10086", "8613900002222", "106575"))
        self._up(
            W.sccp_dt1(
                msc, W.dtap(W.cp_data_rp_data(ti, ref, "8613800100500", dest, "hello"), dlci=3)
            )
        )
        self._down(W.sccp_dt1(bsc, W.dtap(W.cp_ack(ti | 8), dlci=3)))
        self._down(W.sccp_dt1(bsc, W.dtap(W.cp_data_rp_ack(ti | 8, ref), dlci=3)))
        self._up(W.sccp_dt1(msc, W.dtap(W.cp_ack(ti), dlci=3)))
        self._expect("mo_sms", sub)
        self._close(bsc, msc)

    def refused(self, sub: _Sub) -> None:
        bsc = self._ref
        self._ref = (self._ref + 2) & 0xFFFFFF or 1
        cell = sub.cell or self._cell()
        self._up(W.sccp_cr(bsc, W.complete_layer3(cell, W.cm_service_request(sub.imsi))))
        self._down(W.sccp_cref(bsc, 0x0A))

    def step(self) -> None:
        """One random procedure of one random subscriber."""
        rng = self.rng
        if self.gap:
            self.ts += rng.uniform(0, self.gap)
        sub = rng.choice(self.subs)
        if not sub.attached:
            self.location_update(sub, B.LU_IMSI_ATTACH)
            return
        r = rng.random()
        if r < 0.25:
            self.call(sub, mobile_originated=True)
        elif r < 0.4:
            self.call(sub, mobile_originated=False)
        elif r < 0.55:
            self.sms(sub)
        elif r < 0.7:
            self.location_update(sub, B.LU_PERIODIC)
        elif r < 0.8:
            self.location_update(sub, B.LU_NORMAL)
        elif r < 0.85:
            self.location_update(sub, B.LU_NORMAL, reject=True)
        elif r < 0.9:
            self.refused(sub)
        else:
            self.detach(sub)

    def run(self, procedures: int) -> Scenario:
        for _ in range(procedures):
            self.step()
        return self


# -- transports ----------------------------------------------------------------------------------

TRANSPORT_LINKTYPE = {
    "m3ua": 1,
    "m3ua_vlan": 1,
    "m3ua_ipv6": 1,
    "sll": 113,
    "sll2": 276,
    "raw": 101,
    "m2pa": 1,
    "mtp2": 140,
    "mtp2_phdr": 139,
    "mtp3": 141,
}


def _ip4(pc: int) -> bytes:
    """The IPv4 address of a signaling point: each its own, so each SCTP association is one."""
    return {BSC_PC: BSC_IP, MSC_PC: MSC_IP}.get(pc) or bytes([10, 0, pc >> 8 & 255, pc & 255])


def frames(
    messages: Iterable[tuple[float, int, int, bytes]],
    transport: str = "m3ua",
    *,
    bundle: bool = False,
    sctp_fragment: int = 0,
    ip_fragment: int = 0,
) -> Iterator[tuple[float, bytes]]:
    """``(ts, frame)`` for each message on ``transport`` (see :data:`TRANSPORT_LINKTYPE`).

    ``bundle``: up to three consecutive same-direction messages share one SCTP packet.
    ``sctp_fragment``: user messages longer than this are split into DATA fragments.
    ``ip_fragment``: IPv4 datagrams longer than this are split into fragments.
    """
    tsn = {BSC_PC: 1000, MSC_PC: 5000}  # another point code starts at 1000 + its code
    ident = 1
    if transport in ("mtp2", "mtp2_phdr", "mtp3"):
        wrap = {"mtp2": W.mtp2, "mtp2_phdr": W.mtp2_phdr, "mtp3": lambda m: m}[transport]
        for ts, opc, dpc, sccp in messages:
            yield ts, wrap(W.mtp3(opc, dpc, sccp))
        return
    batch: list[tuple[float, int, int, bytes]] = []

    def flush() -> Iterator[tuple[float, bytes]]:
        nonlocal ident
        ts, opc, _dpc = batch[0][0], batch[0][1], batch[0][2]
        chunks = []
        for _, o, d, sccp in batch:
            if transport == "m2pa":
                payload, ppid = W.m2pa_user_data(W.mtp3(o, d, sccp)), 5
            else:
                payload, ppid = W.m3ua_data(o, d, sccp), 3
            if sctp_fragment and len(payload) > sctp_fragment:
                parts = [
                    payload[i : i + sctp_fragment] for i in range(0, len(payload), sctp_fragment)
                ]
                for i, part in enumerate(parts):
                    flags = (2 if i == 0 else 0) | (1 if i == len(parts) - 1 else 0)
                    chunks.append(
                        W.sctp_data_chunk(tsn.setdefault(o, 1000 + o), part, ppid=ppid, flags=flags)
                    )
                    tsn[o] += 1
            else:
                chunks.append(W.sctp_data_chunk(tsn.setdefault(o, 1000 + o), payload, ppid=ppid))
                tsn[o] += 1
        batch.clear()
        port = 2905 if transport != "m2pa" else 3565
        other = opc if opc not in (BSC_PC, MSC_PC) else _dpc if _dpc not in (BSC_PC, MSC_PC) else 0
        segment = W.sctp_packet(port, port, chunks, vtag=0x1234 + other)
        up = opc == BSC_PC
        if transport == "m3ua_ipv6":
            ip = W.ipv6(BSC_IP6 if up else MSC_IP6, MSC_IP6 if up else BSC_IP6, segment)
            yield ts, W.ethernet(ip, ethertype=0x86DD)
            return
        src, dst = _ip4(opc), _ip4(_dpc)
        ident = (ident + 1) & 0xFFFF
        if ip_fragment and len(segment) > ip_fragment:
            datagrams = W.ipv4_fragments(src, dst, segment, ident=ident, size=ip_fragment & ~7)
        else:
            datagrams = [W.ipv4(src, dst, segment, ident=ident)]
        for ip in datagrams:
            if transport == "sll":
                yield ts, W.sll(ip)
            elif transport == "sll2":
                yield ts, W.sll2(ip)
            elif transport == "raw":
                yield ts, ip
            else:
                yield ts, W.ethernet(ip, vlan=(ident & 0xFFF) if transport == "m3ua_vlan" else None)

    for msg in messages:
        if batch and (not bundle or len(batch) == 3 or batch[-1][1] != msg[1]):
            yield from flush()
        batch.append(msg)
    if batch:
        yield from flush()


def write_pcap(
    stream: BinaryIO,
    linktype: int,
    packets: Iterable[tuple[float, bytes]],
    *,
    nanosecond: bool = False,
    big_endian: bool = False,
) -> int:
    """Write a classic pcap; returns the number of packets."""
    stream.write(write_pcap_header(linktype, nanosecond=nanosecond, big_endian=big_endian))
    n = 0
    for ts, frame in packets:
        stream.write(pcap_record(ts, frame, nanosecond=nanosecond, big_endian=big_endian))
        n += 1
    return n


def write_pcapng(stream: BinaryIO, linktype: int, packets: Iterable[tuple[float, bytes]]) -> int:
    """Write a pcapng (one section, one interface, microsecond timestamps)."""

    def block(btype: int, body: bytes) -> bytes:
        body += bytes((-len(body)) % 4)
        return struct.pack("<II", btype, len(body) + 12) + body + struct.pack("<I", len(body) + 12)

    stream.write(block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))
    stream.write(block(1, struct.pack("<HHI", linktype, 0, 262144)))
    n = 0
    for ts, frame in packets:
        units = round(ts * 1e6)
        stream.write(
            block(
                6,
                struct.pack("<IIIII", 0, units >> 32, units & 0xFFFFFFFF, len(frame), len(frame))
                + frame,
            )
        )
        n += 1
    return n
