#!/usr/bin/env python3
"""A-interface captures whose BSSAP payloads come from an independent encoder (pycrate).

Usage: independent_capture.py OUT.pcap [--seed N] [--subscribers N] [--procedures N] [--packets N]

Our own encoder (:mod:`adapters.sigtran.build`) only writes what our decoder expects; a
defect shared by both hides. Here every BSSMAP message (TS 48.008) and every layer 3 message
(TS 24.008 MM/CC, TS 44.018 RR, TS 24.011 SMS, TS 24.080 SS) is encoded by pycrate
(``pycrate_mobile``, ``pycrate_asn1dir.SS``), optional IEs included and, in BSSMAP, in a
shuffled order (TS 48.008 3.1: the receiver takes IEs by identifier). Only the outer layers
(SCCP, M3UA, SCTP, IP, Ethernet, pcap) are ours.

:class:`Corpus` plays subscribers through procedures (attach, location update and reject,
detach, MO and MT calls with every outcome, intra- and inter-BSC handover, MO and MT SMS,
USSD, supplementary service changes, a call whose start the capture missed) and records the
events a correct decoder derives (``expected``). :func:`broken` gives frames that are
malformed on purpose, each of which the decoder must count as an error.

Used by tests/adapters/sigtran/test_independent_corpus.py and scripts/bench_decode.py.
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pycrate_asn1dir import SS as _SS_ASN  # noqa: E402
from pycrate_mobile import TS24008_CC as CC  # noqa: E402
from pycrate_mobile import TS24008_IE as IE  # noqa: E402
from pycrate_mobile import TS24008_MM as MM  # noqa: E402
from pycrate_mobile import TS24011_PPSMS as PP  # noqa: E402
from pycrate_mobile import TS24080_SS as SSM  # noqa: E402
from pycrate_mobile import TS44018_RR as RR  # noqa: E402
from pycrate_mobile.TS23038 import encode_7b  # noqa: E402
from pycrate_mobile.TS23040_SMS import SMS_DELIVER, SMS_SUBMIT  # noqa: E402
from pycrate_mobile.TS48006_BSSAP import BSSAP  # noqa: E402
from pycrate_mobile.TS48008_BSSMAP import BSSMAP, CellIdentifier  # noqa: E402

from adapters.sigtran import build as W  # noqa: E402
from adapters.sigtran.pcap import pcap_record, write_pcap_header  # noqa: E402
from adapters.sigtran.scenario import frames  # noqa: E402

BSC_PC, BSC2_PC, MSC_PC = 100, 101, 200
PLMN = "46000"

# -- pycrate encoders ---------------------------------------------------------------------------


def mobile_identity(kind: int, value: str | int) -> bytes:
    """TS 24.008 10.5.1.4 value part (1 IMSI, 2 IMEI, 3 IMEISV, 4 TMSI)."""
    ident = IE.ID()
    ident.encode(kind, value)
    return ident.to_bytes()


def lai(lac: int) -> bytes:
    return IE.LAI(val={"PLMN": PLMN, "LAC": lac}).to_bytes()


def cell_id(lac: int, ci: int, disc: int = 0) -> bytes:
    if disc == 0:
        val: Any = {"Discriminator": 0, "CellID": {"PLMN": PLMN, "LAC": lac, "CI": ci}}
    elif disc == 1:
        val = {"Discriminator": 1, "CellID": {"LAC": lac, "CI": ci}}
    else:
        val = {"Discriminator": 2, "CellID": ci}
    return CellIdentifier(val=val).to_bytes()


OPT = True  # marks an optional IE: ``(iei, value, OPT)``


def bssmap(mtype: int, ies: list[tuple], rng: random.Random | None = None) -> bytes:
    """A BSSMAP PDU (BSSAP header included) by pycrate.

    ``ies`` in the order of the message's table in TS 48.008 3.2.1 (the order tshark's
    dissector, like a real BSC, follows); with ``rng`` each optional IE is left out at random.
    """
    kept = [ie for ie in ies if len(ie) == 2 or rng is None or rng.random() < 0.7]
    ses = [{"ID": ie[0], "Val": ie[1]} for ie in kept]
    body = BSSMAP(val={"Type": mtype, "SES": ses}).to_bytes()
    return BSSAP(val={"DistributionUnit": (0, 0), "L3": body}).to_bytes()


def dtap(l3: bytes, sapi: int = 0) -> bytes:
    return BSSAP(val={"DistributionUnit": (0, 1), "DLCI": {"SAPI": sapi}, "L3": l3}).to_bytes()


def bcd_number(digits: str, *, called: bool = True) -> bytes:
    cls = IE.CalledPartyBCDNumber if called else IE.CallingPartyBCDNumber
    return cls(val={"Num": digits}).to_bytes()


def cc_cause(value: int, location: int = 1) -> bytes:
    """TS 24.008 10.5.4.11 value part: the 7-bit cause is pycrate's class (3) + value (4)."""
    return IE.Cause(val={"Location": location, "Class": value >> 4, "Value": value & 15}).to_bytes()


def ss_facility(op: int, arg: tuple[str, dict]) -> bytes:
    fac = _SS_ASN.SS_Facility.Facility
    fac.set_val(("invoke", {"invokeID": 1, "operationCode": ("local", op), "parameters": arg}))
    return fac.to_ber()


def ussd_facility(text: str) -> bytes:
    packed, _ = encode_7b(text)
    arg = {"ussd-DataCodingScheme": b"\x0f", "ussd-String": packed}
    return ss_facility(59, ("USSD-Arg", arg))


# -- the corpus ---------------------------------------------------------------------------------


class Sub:
    def __init__(self, imsi: str, imeisv: str, msisdn: str) -> None:
        self.imsi, self.imeisv, self.msisdn = imsi, imeisv, msisdn
        self.tmsi: int | None = None


class Corpus:
    """See the module docstring. ``messages``: ``(ts, opc, dpc, sccp)``; ``expected``: dicts."""

    def __init__(self, seed: int = 1, subscribers: int = 12, start: float = 1_767_225_600.0):
        self.rng = random.Random(seed)
        self.ts = start
        self.messages: list[tuple[float, int, int, bytes]] = []
        self.expected: list[dict] = []
        self._ref = 0x10
        self._tmsi = 0x1000_0000 + seed
        rng = self.rng
        self.subs = [
            Sub(
                f"{PLMN}{rng.randrange(10**9):09d}{i % 10}",
                f"35{rng.randrange(10**12):012d}0{i % 10}",
                f"861{rng.randrange(10**10):010d}",
            )
            for i in range(subscribers)
        ]
        self.seen: set[str] = set()
        #: how an inter-BSC handover's new leg names the subscriber: "imsi" (in the Handover
        #: Request), "common_id" (a Common ID after Handover Complete), "lost" (not captured)
        self.ho_mode = "imsi"
        self._radio_loss = itertools.cycle((True, False))  # every other failure: radio

    # -- plumbing -------------------------------------------------------------------------

    def _tick(self, lo: float = 0.01, hi: float = 0.3) -> float:
        self.ts += self.rng.uniform(lo, hi)
        return self.ts

    def _send(self, opc: int, dpc: int, sccp: bytes) -> None:
        self.messages.append((self._tick(), opc, dpc, sccp))

    def _cell(self) -> tuple[int, int]:
        return self.rng.choice((0x1001, 0x1002, 0x2001)), self.rng.randrange(1, 65535)

    def _expect(self, kind: str, sub: Sub, **fields: Any) -> None:
        self.expected.append({"kind": kind, "imsi": sub.imsi, **fields})

    def _refs(self) -> tuple[int, int]:
        bsc, msc = self._ref, self._ref + 1
        self._ref += 2
        return bsc, msc

    def _open(self, l3: bytes, cell: tuple[int, int], bsc_pc: int = BSC_PC) -> tuple[int, int]:
        bsc, msc = self._refs()
        rng = self.rng
        disc = rng.choice((0, 1))
        cl3 = bssmap(
            0x57,
            [
                (0x05, cell_id(*cell, disc=disc)),
                (0x17, l3),
                (0x21, b"\x09", OPT),  # chosen channel
                (0x85, b"", OPT),  # redirect attempt flag
                (0x87, b"\x01", OPT),  # send sequence number
            ],
            rng,
        )
        self._send(bsc_pc, MSC_PC, W.sccp_cr(bsc, cl3, calling=W.party(254, bsc_pc)))
        self._send(MSC_PC, bsc_pc, W.sccp_cc(bsc, msc))
        return bsc, msc

    def _up(self, conn: tuple[int, int], payload: bytes, bsc_pc: int = BSC_PC) -> None:
        self._send(bsc_pc, MSC_PC, W.sccp_dt1(conn[1], payload))

    def _down(self, conn: tuple[int, int], payload: bytes, bsc_pc: int = BSC_PC) -> None:
        self._send(MSC_PC, bsc_pc, W.sccp_dt1(conn[0], payload))

    def _close(self, conn: tuple[int, int], cause: int = 0x09, bsc_pc: int = BSC_PC) -> None:
        self._down(conn, bssmap(0x20, [(0x04, bytes([cause]))]), bsc_pc)
        self._up(conn, bssmap(0x21, []), bsc_pc)
        self._send(MSC_PC, bsc_pc, W.sccp_rlsd(conn[0], conn[1]))
        self._send(bsc_pc, MSC_PC, W.sccp_rlc(conn[1], conn[0]))

    def _common_id(self, conn: tuple[int, int], sub: Sub) -> None:
        self._down(conn, bssmap(0x2F, [(0x08, mobile_identity(1, sub.imsi))]))

    def _cipher(self, conn: tuple[int, int], sub: Sub, *, imeisv: bool = True) -> None:
        key = bytes(range(8))
        self._down(
            conn,
            bssmap(0x53, [(0x0A, b"\x03" + key), (0x23, b"\x03", OPT)], self.rng),
        )
        rr = RR.RRCipheringModeComplete(
            val={"MEId": mobile_identity(3, sub.imeisv)} if imeisv else {}
        ).to_bytes()
        self._up(conn, bssmap(0x55, [(0x20, rr), (0x2C, b"\x02", OPT)], self.rng))

    def _first_seen(self, sub: Sub) -> None:
        self.seen.add(sub.imsi)

    def _assignment(self, conn: tuple[int, int]) -> None:
        rng = self.rng
        self._down(
            conn,
            bssmap(
                0x01, [(0x0B, b"\x01\x08\x01"), (0x01, b"\x00\x05", OPT), (0x19, b"\x00", OPT)], rng
            ),
        )
        self._up(
            conn,
            bssmap(
                0x02,
                [
                    (0x15, b"\x00", OPT),
                    (0x21, b"\x09", OPT),
                    (0x2C, b"\x02", OPT),
                    (0x40, b"\x21", OPT),
                ],
                rng,
            ),
        )

    # -- procedures -----------------------------------------------------------------------

    def attach(self, sub: Sub, lu_type: int = 2, *, reject: bool = False) -> None:
        """Location updating (TS 24.008 4.4.4) with identity, ciphering and a new TMSI."""
        cell = self._cell()
        ident = (
            mobile_identity(4, sub.tmsi) if sub.tmsi is not None else mobile_identity(1, sub.imsi)
        )
        lur = MM.MMLocationUpdatingRequest(
            val={"LocUpdateType": {"Type": lu_type}, "LAI": lai(0x0999), "ID": ident}
        ).to_bytes()
        conn = self._open(lur, cell)
        if reject:
            self._down(
                conn, dtap(MM.MMLocationUpdatingReject(val={"RejectCause": 0x0B}).to_bytes())
            )
            self._close(conn)
            return
        if sub.tmsi is None:
            self._down(conn, dtap(MM.MMIdentityRequest(val={"IDType": 1}).to_bytes()))
            self._up(
                conn,
                dtap(MM.MMIdentityResponse(val={"ID": mobile_identity(1, sub.imsi)}).to_bytes()),
            )
        self._common_id(conn, sub)
        self._cipher(conn, sub)
        self._tmsi += 7919
        accept = MM.MMLocationUpdatingAccept(
            val={"LAI": lai(cell[0]), "ID": mobile_identity(4, self._tmsi)}
        ).to_bytes()
        self._down(conn, dtap(accept))
        self._up(conn, dtap(MM.MMTMSIReallocationComplete().to_bytes()))
        sub.tmsi = self._tmsi
        kind = {0: "location_update", 1: "periodic_update", 2: "power_on"}[lu_type]
        self._expect(kind, sub, lac=cell[0], ci=cell[1])
        self._close(conn)

    def detach(self, sub: Sub) -> None:
        ident = (
            mobile_identity(4, sub.tmsi) if sub.tmsi is not None else mobile_identity(1, sub.imsi)
        )
        conn = self._open(MM.MMIMSIDetachIndication(val={"ID": ident}).to_bytes(), self._cell())
        self._expect("power_off", sub)
        self._close(conn)

    def _service(self, sub: Sub, service: int, cell: tuple[int, int]) -> tuple[int, int]:
        req = MM.MMCMServiceRequest(
            val={"Service": service, "ID": mobile_identity(1, sub.imsi)}
        ).to_bytes()
        conn = self._open(req, cell)
        self._common_id(conn, sub)
        self._cipher(conn, sub)
        return conn

    def _cc(self, conn, name: str, ti: int, mo: bool, from_ms: bool, bsc_pc: int = BSC_PC, **ies):
        """A CC message (TS 24.008 9.3) on ``conn``, pycrate's class for its direction.

        The TI flag (TS 24.007 11.2.3.1.3) is 0 from the side that allocated the TI: the MS
        in an MO call, the network in an MT call.
        """
        cls = getattr(CC, f"CC{name}{'MO' if from_ms else 'MT'}", None) or getattr(CC, f"CC{name}")
        header = {"TIPD": {"TIFlag": 1 if from_ms != mo else 0, "TIO": ti}}
        l3 = cls(val={"CCHeader": header, **ies}).to_bytes()
        (self._up if from_ms else self._down)(conn, dtap(l3), bsc_pc)

    def mo_call(self, sub: Sub, outcome: str, *, handover: str = "") -> None:
        """A mobile originated call (TS 24.008 5.2.1) ending with ``outcome``."""
        cell = self._cell()
        conn = self._service(sub, 1, cell)
        called = f"0{self.rng.randrange(10**10):010d}"
        self._cc(
            conn,
            "Setup",
            0,
            True,
            True,
            BearerCap1=b"\xa0",
            CalledPartyBCDNumber=bcd_number(called),
        )
        self._expect("call_start", sub, direction="mo", peer=called)
        self._cc(conn, "CallProceeding", 0, True, False)
        self._assignment(conn)
        self._end_call(sub, conn, outcome, called, handover=handover, mo=True)

    def mt_call(self, sub: Sub, outcome: str, *, handover: str = "") -> None:
        """A mobile terminated call (TS 24.008 5.2.2): paging, paging response, Setup."""
        cell = self._cell()
        tmsi_page = sub.tmsi is not None
        paging_ies = [
            (0x08, mobile_identity(1, sub.imsi)),
            (0x1A, b"\x05" + cell[0].to_bytes(2, "big")),
        ]
        opt = [(0x09, sub.tmsi.to_bytes(4, "big"), OPT)] if tmsi_page else []
        page = bssmap(0x52, [paging_ies[0], *opt, paging_ies[1], (0x24, b"\x00", OPT)], self.rng)
        self._send(MSC_PC, BSC_PC, W.sccp_udt(W.party(254), W.party(254), page))
        ident = mobile_identity(4, sub.tmsi) if tmsi_page else mobile_identity(1, sub.imsi)
        conn = self._open(RR.RRPagingResponse(val={"ID": ident}).to_bytes(), cell)
        self._common_id(conn, sub)
        self._cipher(conn, sub)
        calling = f"86{self.rng.randrange(10**11):011d}" if self.rng.random() < 0.8 else None
        ies: dict[str, bytes] = {"BearerCap1": b"\xa0"}
        if calling:
            ies["CallingPartyBCDNumber"] = bcd_number(calling, called=False)
        self._cc(conn, "Setup", 1, False, False, **ies)
        fields: dict[str, Any] = {"direction": "mt"}
        if calling:
            fields["peer"] = calling
        self._expect("call_start", sub, **fields)
        self._cc(conn, "CallConfirmed", 1, False, True)
        self._assignment(conn)
        self._end_call(sub, conn, outcome, calling, handover=handover, mo=False)

    def _end_call(self, sub, conn, outcome, peer, *, handover: str, mo: bool) -> None:
        ti = 0 if mo else 1
        callee_is_ms = not mo  # who alerts and answers
        self._cc(conn, "Alerting", ti, mo, callee_is_ms)
        fields: dict[str, Any] = {"direction": "mo" if mo else "mt", "outcome": outcome}
        if peer:
            fields["peer"] = peer
        bsc_pc = BSC_PC
        if outcome == "answered":
            self._cc(conn, "Connect", ti, mo, callee_is_ms)
            answered = self.ts
            self._cc(conn, "ConnectAcknowledge", ti, mo, not callee_is_ms)
            self._tick(5, 20)
            if handover == "intra":
                conn = self._intra_bsc_handover(sub, conn)
            elif handover == "inter":
                conn, bsc_pc = self._inter_bsc_handover(sub, conn), BSC2_PC
                if self.ho_mode == "lost":  # the call ends, as far as seen, at the old leg's RLSD
                    fields["duration"] = round(self.messages[-2][0] - answered, 6)
                    self.expected.append({"kind": "call_end", "imsi": sub.imsi, **fields})
                    return
            self._tick(5, 20)
            self._clear_call(conn, ti, mo, self.rng.random() < 0.5, 16, bsc_pc)
            fields["duration"] = round(self._ended - answered, 6)
            fields["cause"] = 16
        elif outcome == "network_failure" and next(self._radio_loss):
            # the radio link is lost: the BSC asks to clear (TS 48.008 3.2.1.20), no CC cause
            self._up(conn, bssmap(0x22, [(0x04, b"\x01")]))
        else:
            by_ms, cause = {
                "busy": (False, 17),
                "rejected": (not mo, self.rng.choice((17, 21)) if not mo else 21),
                "no_answer": (False, self.rng.choice((18, 19) if mo else (16, 19))),
                "unallocated_number": (False, 1),
                "network_failure": (False, self.rng.choice((34, 41, 47))),
            }[outcome]
            self._clear_call(conn, ti, mo, by_ms, cause, bsc_pc)
            fields["cause"] = cause
        self.expected.append({"kind": "call_end", "imsi": sub.imsi, **fields})
        self._close(conn, bsc_pc=bsc_pc)

    def _clear_call(self, conn, ti: int, mo: bool, by_ms: bool, cause: int, bsc_pc: int) -> None:
        """Disconnect, Release, Release Complete (TS 24.008 5.4), the first from ``by_ms``."""
        value = cc_cause(cause, 0 if by_ms else 2)
        self._cc(conn, "Disconnect", ti, mo, by_ms, bsc_pc, Cause=value)
        self._ended = self.ts
        self._cc(conn, "Release", ti, mo, not by_ms, bsc_pc)
        self._cc(conn, "ReleaseComplete", ti, mo, by_ms, bsc_pc)

    def _intra_bsc_handover(self, sub: Sub, conn):
        """Handover Required / Command / Performed on one BSC (TS 48.008 3.1.5.1, 3.1.5.2)."""
        rng = self.rng
        new = self._cell()
        cells = b"\x01" + new[0].to_bytes(2, "big") + new[1].to_bytes(2, "big")
        self._up(
            conn,
            bssmap(
                0x11,
                [(0x04, b"\x0c"), (0x1A, cells), (0x31, b"\x09", OPT), (0x40, b"\x21", OPT)],
                rng,
            ),
        )
        self._down(conn, bssmap(0x13, [(0x17, b"\x06\x2b\x00\x00")], rng))
        self._up(
            conn,
            bssmap(
                0x17,
                [
                    (0x04, b"\x0c"),
                    (0x05, cell_id(*new, disc=rng.choice((0, 1)))),
                    (0x21, b"\x09", OPT),  # chosen channel
                    (0x2C, b"\x02", OPT),  # chosen encryption algorithm
                    (0x40, b"\x21", OPT),  # speech version (chosen)
                ],
                rng,
            ),
        )
        self._expect("handover", sub, lac=new[0], ci=new[1])
        return conn

    def _inter_bsc_handover(self, sub: Sub, old):
        """Inter-BSC handover (TS 48.008 3.1.5.2): a new SCCP connection to the new BSC."""
        rng = self.rng
        new_cell = self._cell()
        cells = b"\x01" + new_cell[0].to_bytes(2, "big") + new_cell[1].to_bytes(2, "big")
        self._up(
            old,
            bssmap(
                0x11,
                [(0x04, b"\x0c"), (0x1A, cells), (0x31, b"\x09", OPT), (0x40, b"\x21", OPT)],
                rng,
            ),
        )
        msc, bsc2 = self._refs()
        request = bssmap(
            0x10,
            [
                (0x0B, b"\x01\x08\x01"),
                (0x0A, b"\x03" + bytes(range(8))),
                (0x12, b"\x33\x19\xa2"),  # MS classmark 2
                (0x05, cell_id(0x0999, 7, disc=1)),  # serving cell
                (0x01, b"\x00\x07", OPT),  # circuit identity code
                (0x05, cell_id(*new_cell, disc=1)),  # target cell
                (0x04, b"\x0c", OPT),  # cause
                (0x31, b"\x09", OPT),  # current channel type 1
                (0x40, b"\x21", OPT),  # speech version (used)
                *([(0x08, mobile_identity(1, sub.imsi))] if self.ho_mode == "imsi" else []),
            ],
            rng,
        )
        if self.ho_mode == "lost":  # the new leg is not captured (another link, another probe)
            self._down(old, bssmap(0x13, [(0x17, b"\x06\x2b\x00\x00")], rng))
            self._close(old, cause=0x0B)
            return old
        self._send(MSC_PC, BSC2_PC, W.sccp_cr(msc, request, calling=W.party(254, MSC_PC)))
        ack = bssmap(
            0x12, [(0x17, b"\x06\x2b\x00\x00"), (0x21, b"\x09", OPT), (0x2C, b"\x02", OPT)], rng
        )
        self._send(BSC2_PC, MSC_PC, W.sccp_cc(msc, bsc2, ack))
        self._down(old, bssmap(0x13, [(0x17, b"\x06\x2b\x00\x00")], rng))
        self._send(BSC2_PC, MSC_PC, W.sccp_dt1(msc, bssmap(0x1B, [])))
        self._send(BSC2_PC, MSC_PC, W.sccp_dt1(msc, bssmap(0x14, [(0x15, b"\x00", OPT)], rng)))
        if self.ho_mode == "common_id":  # no IMSI in the request: the MSC names it afterwards
            self._send(
                MSC_PC,
                BSC2_PC,
                W.sccp_dt1(bsc2, bssmap(0x2F, [(0x08, mobile_identity(1, sub.imsi))])),
            )
        self._close(old, cause=0x0B)  # "handover successful"
        self._expect("handover", sub, lac=new_cell[0], ci=new_cell[1])
        # on the new leg, uplink DT1s name the MSC's reference and downlink the BSC's
        return (bsc2, msc)

    def mo_sms(self, sub: Sub) -> None:
        conn = self._service(sub, 4, self._cell())
        dest = f"1{self.rng.randrange(10**10):010d}"
        tpdu = SMS_SUBMIT(val={"TP_MR": 5, "TP_DA": {"Num": dest}, "TP_UD": {"UD": "hello"}})
        rp = PP.RP_DATA_MO(
            val={"RPDestinationAddress": {"Num": "8613800000000"}, "RPUserData": tpdu.to_bytes()}
        ).to_bytes()
        cp = PP.CP_DATA(
            val={"CPHeader": {"TIPD": {"TIFlag": 0, "TIO": 0}}, "CPUserData": rp}
        ).to_bytes()
        self._up(conn, dtap(cp, sapi=3))
        self._down(
            conn, dtap(PP.CP_ACK(val={"CPHeader": {"TIPD": {"TIFlag": 1, "TIO": 0}}}).to_bytes(), 3)
        )
        self._expect("mo_sms", sub, peer=dest)
        self._close(conn)

    def mt_sms(self, sub: Sub) -> None:
        cell = self._cell()
        page = bssmap(
            0x52,
            [(0x08, mobile_identity(1, sub.imsi)), (0x1A, b"\x06"), (0x24, b"\x00", OPT)],
            self.rng,
        )
        self._send(MSC_PC, BSC_PC, W.sccp_udt(W.party(254), W.party(254), page))
        conn = self._open(
            RR.RRPagingResponse(val={"ID": mobile_identity(1, sub.imsi)}).to_bytes(), cell
        )
        self._common_id(conn, sub)
        self._cipher(conn, sub, imeisv=False)
        origin = f"86{self.rng.randrange(10**11):011d}" if self.rng.random() < 0.7 else "10086"
        tpdu = SMS_DELIVER(val={"TP_OA": {"Num": origin}, "TP_UD": {"UD": "hi"}})
        rp = PP.RP_DATA_MT(
            val={"RPOriginatorAddress": {"Num": "8613800000000"}, "RPUserData": tpdu.to_bytes()}
        ).to_bytes()
        cp = PP.CP_DATA(
            val={"CPHeader": {"TIPD": {"TIFlag": 0, "TIO": 2}}, "CPUserData": rp}
        ).to_bytes()
        self._down(conn, dtap(cp, sapi=3))
        self._up(
            conn, dtap(PP.CP_ACK(val={"CPHeader": {"TIPD": {"TIFlag": 1, "TIO": 2}}}).to_bytes(), 3)
        )
        self._expect("mt_sms", sub, peer=origin)
        self._close(conn)

    def ussd(self, sub: Sub, code: str = "*139#") -> None:
        conn = self._service(sub, 8, self._cell())
        reg = SSM.SSRegisterMO(
            val={
                "SSHeader": {"TIPD": {"TIFlag": 0, "TIO": 0}},
                "Facility": ussd_facility(code),
                "SSVersion": b"\x00",
            }
        ).to_bytes()
        self._up(conn, dtap(reg))
        done = SSM.SSReleaseComplete(val={"SSHeader": {"TIPD": {"TIFlag": 1, "TIO": 0}}}).to_bytes()
        self._down(conn, dtap(done))
        self._expect("ussd", sub, service_code=code)
        self._close(conn)

    def ss_change(self, sub: Sub, op: int, code: int, name: str, operation: str) -> None:
        conn = self._service(sub, 8, self._cell())
        if op == 10:
            arg = (
                "RegisterSS-Arg",
                {"ss-Code": bytes([code]), "forwardedToNumber": b"\x91\x68\x31\x08\x00\x00\xf0"},
            )
        else:
            arg = ("SS-ForBS-Code", {"ss-Code": bytes([code])})
        reg = SSM.SSRegisterMO(
            val={"SSHeader": {"TIPD": {"TIFlag": 0, "TIO": 1}}, "Facility": ss_facility(op, arg)}
        ).to_bytes()
        self._up(conn, dtap(reg))
        done = SSM.SSReleaseComplete(val={"SSHeader": {"TIPD": {"TIFlag": 1, "TIO": 1}}}).to_bytes()
        self._down(conn, dtap(done))
        self._expect("ss_change", sub, service_code=name, ss_operation=operation)
        self._close(conn)

    def handset_change(self, sub: Sub) -> None:
        """A new handset: the IMEISV in the next Cipher Mode Complete differs."""
        old = sub.imeisv
        sub.imeisv = f"86{self.rng.randrange(10**12):012d}01"
        conn = self._service(sub, 1, self._cell())
        self._send(MSC_PC, BSC_PC, W.sccp_dt1(conn[0], bssmap(0x20, [(0x04, b"\x09")])))
        self._up(conn, bssmap(0x21, []))
        self._send(MSC_PC, BSC_PC, W.sccp_rlsd(conn[0], conn[1]))
        self._send(BSC_PC, MSC_PC, W.sccp_rlc(conn[1], conn[0]))
        from adapters.sigtran.digits import imei_from_imeisv

        self._expect(
            "handset_change",
            sub,
            imei=imei_from_imeisv(sub.imeisv),
            previous_imei=imei_from_imeisv(old),
        )

    # -- a day --------------------------------------------------------------------------------

    def run(self, procedures: int = 60) -> Corpus:
        """Every subscriber attaches, then ``procedures`` drawn from the whole list."""
        for sub in self.subs:
            self.attach(sub, 2)
        rng = self.rng
        outcomes = (
            "answered",
            "rejected",
            "busy",
            "no_answer",
            "unallocated_number",
            "network_failure",
        )
        mo_outcomes = itertools.cycle(outcomes)
        # an MT call is not "busy" or "unallocated" from the subscriber's side
        mt_outcomes = itertools.cycle(("answered", "rejected", "no_answer", "network_failure"))
        cf = [
            (10, 0x21, "cfu", "register"),
            (12, 0x29, "cfb", "activate"),
            (13, 0x2A, "cfnry", "deactivate"),
            (11, 0x2B, "cfnrc", "erase"),
        ]
        cf_cycle = itertools.cycle(cf)
        steps = [
            lambda s: self.attach(s, 0),
            lambda s: self.attach(s, 1),
            lambda s: self.attach(s, 0, reject=True),
            lambda s: self.mo_call(s, next(mo_outcomes)),
            lambda s: self.mt_call(s, next(mt_outcomes)),
            lambda s: self.mo_call(s, "answered", handover=rng.choice(("intra", "inter"))),
            lambda s: self.mt_call(s, "answered", handover=rng.choice(("intra", "inter"))),
            self.mo_sms,
            self.mt_sms,
            lambda s: self.ussd(s, rng.choice(("*139#", "*100#", "#123*1#"))),
            lambda s: self.ss_change(s, *next(cf_cycle)),
            self.handset_change,
        ]
        for i in range(procedures):
            sub = rng.choice(self.subs)
            steps[i % len(steps)](sub)
        for sub in self.subs[: len(self.subs) // 3]:
            self.detach(sub)
        return self


def broken(
    seed: int = 3,
) -> tuple[list[tuple[float, bytes]], list[tuple[str, tuple[float, bytes]]]]:
    """``(prefix, [(name, packet), ...])``: frames malformed on purpose, one defect each.

    ``prefix`` opens an SCCP connection (CR with a Complete Layer 3, CC) so that broken DT1s
    land on a connection known to carry BSSAP; each broken packet must then be counted as
    exactly one error and never as a skip. Valid parts come from pycrate; the damage is ours.
    """
    c = Corpus(seed, subscribers=1)
    sub = c.subs[0]
    lur = MM.MMLocationUpdatingRequest(
        val={"LocUpdateType": {"Type": 2}, "LAI": lai(0x0999), "ID": mobile_identity(1, sub.imsi)}
    ).to_bytes()
    conn = c._open(lur, (0x1001, 7))
    prefix = packets(c.messages)
    ts = prefix[-1][0]

    def dt1_up(payload: bytes) -> tuple[float, bytes]:
        return packets([(ts + 1, BSC_PC, MSC_PC, W.sccp_dt1(conn[1], payload))])[0]

    def cl3(l3: bytes) -> tuple[float, bytes]:
        cr = W.sccp_cr(0x7777, bssmap(0x57, [(0x05, cell_id(0x1001, 7)), (0x17, l3)]))
        return packets([(ts + 1, BSC_PC, MSC_PC, cr)])[0]

    def raw_imsi(nibbles: list[int], odd: bool) -> bytes:
        """An IMSI mobile identity with the nibbles as given (fillers included)."""
        first = (nibbles[0] << 4) | (0x08 if odd else 0) | 1
        rest = nibbles[1:] + ([15] if len(nibbles[1:]) % 2 else [])
        return bytes([first]) + bytes(rest[i] | rest[i + 1] << 4 for i in range(0, len(rest), 2))

    def lu_with(ident: bytes) -> bytes:
        return MM.MMLocationUpdatingRequest(
            val={"LocUpdateType": {"Type": 0}, "LAI": lai(0x0999), "ID": ident}
        ).to_bytes()

    setup = dtap(CCSetupMO_bytes(called="0123456789"))
    register = SSM.SSRegisterMO(
        val={"SSHeader": {"TIPD": {"TIFlag": 0, "TIO": 0}}, "Facility": ussd_facility("*139#")}
    ).to_bytes()
    good = dt1_up(bssmap(0x21, []))
    m3ua_at = 62  # Ethernet 14 + IPv4 20 + SCTP common header 12 + DATA chunk header 16
    filler_inside = [4, 6, 0, 0, 15, 8, 5, 9, 0, 0, 8, 6, 9, 3, 1]
    frames_ = [
        ("bssmap_unknown_type", dt1_up(b"\x00\x01\xff")),
        ("bssmap_ie_beyond_message", dt1_up(b"\x00\x03\x21\x04\x05")),
        ("bssmap_fixed_ie_cut", dt1_up(b"\x00\x05\x11\x04\x01\x0c\x31")),
        ("bssmap_length_mismatch", dt1_up(b"\x00\x05\x20\x04\x01\x09")),
        ("bssap_bad_discriminator", dt1_up(b"\x02\x03\x20\x04\x01")),
        ("dtap_length_mismatch", dt1_up(b"\x01\x00\x05\x05\x24")),
        ("cc_setup_ie_beyond_message", dt1_up(setup[:-2])),
        (
            "handover_performed_short_cell",
            dt1_up(bssmap(0x17, [(0x04, b"\x0c"), (0x05, b"\x00\x64\xf0")])),
        ),
        ("cipher_mode_complete_not_rr", dt1_up(bssmap(0x55, [(0x20, b"\x05\x32")]))),
        ("cp_data_rp_beyond", dt1_up(dtap(b"\x09\x01\x10\x00\x01", sapi=3))),
        ("ss_register_bad_ber", dt1_up(dtap(register.replace(b"\xa1\x12", b"\xa1\x30")))),
        ("lu_request_truncated", cl3(lu_with(mobile_identity(1, sub.imsi))[:8])),
        ("imsi_filler_inside", cl3(lu_with(raw_imsi(filler_inside, True)))),
        ("imsi_17_digits", cl3(lu_with(raw_imsi([4, 6, 0, 0, 0] + [1] * 12, True)))),
        (
            "imei_14_digits",
            dt1_up(
                dtap(
                    MM.MMIdentityResponse(
                        val={
                            "ID": raw_imsi([3] * 14, False)[:1].replace(b"\x31", b"\x32")
                            + raw_imsi([3] * 14, False)[1:]
                        }
                    ).to_bytes()
                )
            ),
        ),
        (
            "paging_cell_list_length",
            packets(
                [
                    (
                        ts + 1,
                        MSC_PC,
                        BSC_PC,
                        W.sccp_udt(
                            W.party(254),
                            W.party(254),
                            bssmap(
                                0x52,
                                [(0x08, mobile_identity(1, sub.imsi)), (0x1A, b"\x01\x10\x01\x00")],
                            ),
                        ),
                    )
                ]
            )[0],
        ),
        (
            "paging_tmsi_length",
            packets(
                [
                    (
                        ts + 1,
                        MSC_PC,
                        BSC_PC,
                        W.sccp_udt(
                            W.party(254),
                            W.party(254),
                            bssmap(
                                0x52,
                                [
                                    (0x08, mobile_identity(1, sub.imsi)),
                                    (0x09, b"\x01\x02\x03"),
                                    (0x1A, b"\x06"),
                                ],
                            ),
                        ),
                    )
                ]
            )[0],
        ),
        ("sccp_unknown_type", packets([(ts + 1, BSC_PC, MSC_PC, b"\x1f\x00\x00\x01")])[0]),
        (
            "sccp_dt1_pointer_beyond",
            packets([(ts + 1, BSC_PC, MSC_PC, W.sccp_dt1(conn[1], b"\x00\x01\x21")[:-2])])[0],
        ),
        (
            "sccp_cr_pointer_beyond",
            packets([(ts + 1, BSC_PC, MSC_PC, b"\x01\x01\x02\x03\x02\x40\x00")])[0],
        ),
        ("m3ua_bad_version", (good[0], good[1][:m3ua_at] + b"\x07" + good[1][m3ua_at + 1 :])),
        (
            "m3ua_length_beyond",
            (good[0], good[1][: m3ua_at + 4] + b"\x00\x00\x04\x00" + good[1][m3ua_at + 8 :]),
        ),
        (
            "m3ua_parameter_length",
            (good[0], good[1][: m3ua_at + 10] + b"\x00\x02" + good[1][m3ua_at + 12 :]),
        ),
        ("sctp_chunk_length", (good[0], good[1][:48] + b"\x00\x02" + good[1][50:])),
        ("ip_total_length_beyond", (good[0], good[1][:16] + b"\x0f\xff" + good[1][18:])),
        ("ip_bad_header_length", (good[0], good[1][:14] + b"\x43" + good[1][15:])),
    ]
    return prefix, frames_


def CCSetupMO_bytes(*, called: str) -> bytes:
    """An MO CC Setup (TS 24.008 9.3.23.2) with a called number, by pycrate."""
    return CC.CCSetupMO(
        val={
            "CCHeader": {"TIPD": {"TIFlag": 0, "TIO": 0}},
            "BearerCap1": b"\xa0",
            "CalledPartyBCDNumber": bcd_number(called),
        }
    ).to_bytes()


def packets(messages) -> list[tuple[float, bytes]]:
    """The messages on M3UA/SCTP/IPv4/Ethernet, one per packet."""
    return list(frames(messages, "m3ua"))


def write(path: Path, pkts: list[tuple[float, bytes]], total: int = 0) -> int:
    """Write a pcap; with ``total``, the block repeats (shifted in time) up to that many
    packets (a benchmark's size without pycrate's encoding time). Returns the packet count."""
    total = total or len(pkts)
    span = pkts[-1][0] - pkts[0][0] + 1.0
    written, shift = 0, 0.0
    with path.open("wb") as f:
        f.write(write_pcap_header(1))
        while written < total:
            part = pkts[: total - written]
            f.write(b"".join(pcap_record(ts + shift, frame) for ts, frame in part))
            written += len(part)
            shift += span
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--subscribers", type=int, default=12)
    parser.add_argument("--procedures", type=int, default=60)
    parser.add_argument(
        "--packets", type=int, default=0, help="repeat the corpus (shifted in time) to this size"
    )
    args = parser.parse_args(argv)
    corpus = Corpus(args.seed, args.subscribers).run(args.procedures)
    n = write(args.out, packets(corpus.messages), args.packets)
    print(
        f"{len(corpus.messages)} messages, {len(corpus.expected)} expected events, "
        f"{n} packets written",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
