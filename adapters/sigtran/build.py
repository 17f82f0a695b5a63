"""Encoders for every message the decoder reads: tests, benchmarks and the demo capture.

The inverse of the decoding modules, layer by layer, citing the same sections: BSSMAP TS
48.008 3.2.1/3.2.2, DTAP TS 24.008 9.2/9.3 and TS 24.011 7.2/7.3, SMS-SUBMIT TS 23.040
9.2.2.2, SCCP Q.713 4, MTP3 Q.704 14.2, M3UA RFC 4666 3.3.1, M2PA RFC 4165 2, SCTP RFC 9260 3,
IPv4 RFC 791, IPv6 RFC 8200, Ethernet/802.1Q, Linux SLL/SLL2, MTP2 Q.703. Each function
returns ``bytes``; :mod:`adapters.sigtran.scenario` strings them into subscriber procedures.
"""

from __future__ import annotations

import struct

from adapters.sigtran import bssap as B
from adapters.sigtran.digits import (
    MI_IMEI,
    MI_IMEISV,
    MI_IMSI,
    MI_TMSI,
    encode_bcd,
    encode_cgi,
    encode_lai,
    encode_mobile_identity,
)

# -- BSSMAP -----------------------------------------------------------------------------------


def bssmap(mtype: int, *ies: bytes) -> bytes:
    body = bytes([mtype]) + b"".join(ies)
    return bytes([0, len(body)]) + body


def tlv(iei: int, value: bytes) -> bytes:
    return bytes([iei, len(value)]) + value


def identity(value: str | int, kind: int | None = None) -> bytes:
    """Mobile identity value: an int is a TMSI, digits an IMSI (or ``kind``)."""
    if isinstance(value, int):
        return encode_mobile_identity(MI_TMSI, value)
    return encode_mobile_identity(kind or MI_IMSI, value)


def complete_layer3(cell: tuple[str, str, int, int], l3: bytes) -> bytes:
    return bssmap(B.COMPLETE_LAYER3, tlv(B.IE_CELL_ID, encode_cgi(*cell)), tlv(B.IE_L3_INFO, l3))


def common_id(imsi: str) -> bytes:
    return bssmap(B.COMMON_ID, tlv(B.IE_IMSI, identity(imsi)))


def paging(imsi: str, tmsi: int | None, lac: int) -> bytes:
    parts = [tlv(B.IE_IMSI, identity(imsi))]
    if tmsi is not None:
        parts.append(tlv(B.IE_TMSI, tmsi.to_bytes(4, "big")))
    parts.append(tlv(B.IE_CELL_ID_LIST, b"\x05" + lac.to_bytes(2, "big")))  # LAC discriminator
    return bssmap(B.PAGING, *parts)


def cipher_mode_command() -> bytes:
    return bssmap(B.CIPHER_MODE_COMMAND, tlv(B.IE_ENCRYPTION, b"\x02" + bytes(8)))


def cipher_mode_complete() -> bytes:
    return bssmap(B.CIPHER_MODE_COMPLETE, bytes([B.IE_CHOSEN_ENCRYPTION, 0x02]))


def assignment_request(cic: int = 1) -> bytes:
    return bssmap(
        B.ASSIGNMENT_REQUEST,
        tlv(B.IE_CHANNEL_TYPE, b"\x01\x08\x01"),
        bytes([B.IE_CIC]) + cic.to_bytes(2, "big"),
    )


def assignment_complete() -> bytes:
    return bssmap(B.ASSIGNMENT_COMPLETE, bytes([B.IE_CHOSEN_CHANNEL, 0x98]))


def handover_required(cause: int, cells: list[tuple[str, str, int, int]]) -> bytes:
    cell_list = b"\x00" + b"".join(encode_cgi(*c)[1:] for c in cells)
    return bssmap(
        B.HANDOVER_REQUIRED, tlv(B.IE_CAUSE, bytes([cause])), tlv(B.IE_CELL_ID_LIST, cell_list)
    )


def handover_command(l3: bytes = b"\x06\x2b\x00") -> bytes:
    return bssmap(B.HANDOVER_COMMAND, tlv(B.IE_L3_INFO, l3))


def handover_performed(cause: int, cell: tuple[str, str, int, int]) -> bytes:
    return bssmap(
        B.HANDOVER_PERFORMED, tlv(B.IE_CAUSE, bytes([cause])), tlv(B.IE_CELL_ID, encode_cgi(*cell))
    )


def clear_command(cause: int = 0x09) -> bytes:
    return bssmap(B.CLEAR_COMMAND, tlv(B.IE_CAUSE, bytes([cause])))


def clear_complete() -> bytes:
    return bssmap(B.CLEAR_COMPLETE)


# -- DTAP -------------------------------------------------------------------------------------


def dtap(l3: bytes, dlci: int = 0) -> bytes:
    return bytes([1, dlci, len(l3)]) + l3


def _lv(value: bytes) -> bytes:
    return bytes([len(value)]) + value


MS_CLASSMARK1 = b"\x57"
MS_CLASSMARK2 = b"\x57\x18\x81"


def lu_request(lu_type: int, old_lai: tuple[str, str, int], ident: str | int) -> bytes:
    return (
        bytes([B.PD_MM, B.MM_LU_REQUEST, 0x70 | lu_type])
        + encode_lai(*old_lai)
        + MS_CLASSMARK1
        + _lv(identity(ident))
    )


def lu_accept(lai: tuple[str, str, int], tmsi: int | None = None) -> bytes:
    msg = bytes([B.PD_MM, B.MM_LU_ACCEPT]) + encode_lai(*lai)
    if tmsi is not None:
        msg += tlv(0x17, identity(tmsi))
    return msg


def lu_reject(cause: int = 0x0B) -> bytes:
    return bytes([B.PD_MM, B.MM_LU_REJECT, cause])


def imsi_detach(ident: str | int) -> bytes:
    return bytes([B.PD_MM, B.MM_IMSI_DETACH]) + MS_CLASSMARK1 + _lv(identity(ident))


def cm_service_request(ident: str | int, service: int = 1) -> bytes:
    return (
        bytes([B.PD_MM, B.MM_CM_SERVICE_REQUEST, 0x70 | service])
        + _lv(MS_CLASSMARK2)
        + _lv(identity(ident))
    )


def cm_service_accept() -> bytes:
    return bytes([B.PD_MM, B.MM_CM_SERVICE_ACCEPT])


def identity_request(kind: int) -> bytes:
    return bytes([B.PD_MM, B.MM_IDENTITY_REQUEST, kind])


def identity_response(value: str | int, kind: int = MI_IMSI) -> bytes:
    return bytes([B.PD_MM, B.MM_IDENTITY_RESPONSE]) + _lv(identity(value, kind))


def tmsi_realloc_command(lai: tuple[str, str, int], tmsi: int) -> bytes:
    return bytes([B.PD_MM, B.MM_TMSI_REALLOC_COMMAND]) + encode_lai(*lai) + _lv(identity(tmsi))


def tmsi_realloc_complete() -> bytes:
    return bytes([B.PD_MM, B.MM_TMSI_REALLOC_COMPLETE])


def paging_response(ident: str | int) -> bytes:
    return bytes([B.PD_RR, B.RR_PAGING_RESPONSE, 0x00]) + _lv(MS_CLASSMARK2) + _lv(identity(ident))


def _number(digits: str) -> bytes:
    return b"\x91" + encode_bcd(digits)  # international, ISDN numbering plan


def _cc(ti: int, mtype: int, body: bytes = b"") -> bytes:
    return bytes([(ti << 4) | B.PD_CC, mtype]) + body


def _cause(value: int) -> bytes:
    return bytes([0xE0, 0x80 | value])  # GSM PLMN coding, location: user


def cc_setup(ti: int, *, called: str | None = None, calling: str | None = None) -> bytes:
    body = tlv(0x04, b"\x60\x04\x02\x00\x05\x81")  # bearer capability: speech
    if calling is not None:
        body += tlv(0x5C, _number(calling))
    if called is not None:
        body += tlv(0x5E, _number(called))
    return _cc(ti, B.CC_SETUP, body)


def cc_simple(ti: int, mtype: int) -> bytes:
    """Call proceeding, alerting, connect, connect acknowledge: no IE needed."""
    return _cc(ti, mtype)


def cc_disconnect(ti: int, cause: int) -> bytes:
    return _cc(ti, B.CC_DISCONNECT, _lv(_cause(cause)))


def cc_release(ti: int, cause: int | None) -> bytes:
    return _cc(ti, B.CC_RELEASE, tlv(0x08, _cause(cause)) if cause is not None else b"")


def cc_release_complete(ti: int, cause: int | None) -> bytes:
    return _cc(ti, B.CC_RELEASE_COMPLETE, tlv(0x08, _cause(cause)) if cause is not None else b"")


def sms_submit(destination: str, text: str, ref: int = 0) -> bytes:
    """An SMS-SUBMIT TPDU with 8-bit data (TS 23.040 9.2.2.2)."""
    ud = text.encode("latin-1")
    return (
        bytes([0x01, ref, len(destination), 0x81])
        + encode_bcd(destination)
        + bytes([0x00, 0x04, len(ud)])
        + ud
    )


def cp_data_rp_data(ti: int, ref: int, smsc: str, destination: str, text: str) -> bytes:
    rpdu = (
        bytes([B.RP_DATA_MS, ref, 0]) + _lv(_number(smsc)) + _lv(sms_submit(destination, text, ref))
    )
    return bytes([(ti << 4) | B.PD_SMS, B.CP_DATA]) + _lv(rpdu)


def cp_data_rp_ack(ti: int, ref: int) -> bytes:
    return bytes([(ti << 4) | B.PD_SMS, B.CP_DATA]) + _lv(bytes([0x03, ref]))


def cp_ack(ti: int) -> bytes:
    return bytes([(ti << 4) | B.PD_SMS, B.CP_ACK])


# -- SCCP (Q.713 4) -----------------------------------------------------------------------------


def party(ssn: int, pc: int | None = None, gt: str | None = None) -> bytes:
    """A party address: route on SSN (GT indicator 4, E.164, when ``gt`` is given)."""
    ind = 0x02 | (0x01 if pc is not None else 0) | (0x40 if gt is None else 0x10)
    out = bytes([ind])
    if pc is not None:
        out += struct.pack("<H", pc)
    out += bytes([ssn])
    if gt is not None:
        out += bytes([0, 0x10 | (1 if len(gt) % 2 else 2), 0x04]) + encode_bcd(gt)
    return out


def _ref(value: int) -> bytes:
    return value.to_bytes(3, "little")


def sccp_cr(slr: int, data: bytes | None, *, ssn: int = 254, calling: bytes | None = None) -> bytes:
    called = party(ssn)
    opt = b""
    if calling is not None:
        opt += tlv(0x04, calling)
    if data is not None:
        opt += tlv(0x0F, data)
    opt += b"\x00"
    # pointers: called at +2 from its pointer octet, optional part after called
    return b"\x01" + _ref(slr) + b"\x02" + bytes([2, 1 + len(called) + 1]) + _lv(called) + opt


def sccp_cc(dlr: int, slr: int, data: bytes | None = None) -> bytes:
    if data is None:
        return b"\x02" + _ref(dlr) + _ref(slr) + b"\x02\x00"
    return b"\x02" + _ref(dlr) + _ref(slr) + b"\x02\x01" + tlv(0x0F, data) + b"\x00"


def sccp_cref(dlr: int, cause: int = 0) -> bytes:
    return b"\x03" + _ref(dlr) + bytes([cause, 0])


def sccp_dt1(dlr: int, data: bytes) -> bytes:
    return b"\x06" + _ref(dlr) + b"\x00\x01" + _lv(data)


def sccp_rlsd(dlr: int, slr: int, cause: int = 0) -> bytes:
    return b"\x04" + _ref(dlr) + _ref(slr) + bytes([cause, 0])


def sccp_rlc(dlr: int, slr: int) -> bytes:
    return b"\x05" + _ref(dlr) + _ref(slr)


def sccp_udt(called: bytes, calling: bytes, data: bytes) -> bytes:
    p1 = 3
    p2 = p1 - 1 + 1 + len(called)
    p3 = p2 - 1 + 1 + len(calling)
    return b"\x09\x00" + bytes([p1, p2, p3]) + _lv(called) + _lv(calling) + _lv(data)


def sccp_xudt(called: bytes, calling: bytes, data: bytes) -> bytes:
    p1 = 4
    p2 = p1 - 1 + 1 + len(called)
    p3 = p2 - 1 + 1 + len(calling)
    return b"\x11\x00\x0f" + bytes([p1, p2, p3, 0]) + _lv(called) + _lv(calling) + _lv(data)


# -- MTP3, M3UA, M2PA, SCTP ----------------------------------------------------------------------


def mtp3(opc: int, dpc: int, sccp: bytes, *, si: int = 3, ni: int = 2, sls: int = 0) -> bytes:
    label = (dpc & 0x3FFF) | ((opc & 0x3FFF) << 14) | ((sls & 15) << 28)
    return bytes([(ni << 6) | si]) + struct.pack("<I", label) + sccp


def m3ua_data(
    opc: int, dpc: int, sccp: bytes, *, si: int = 3, sls: int = 0, rc: int | None = 1
) -> bytes:
    data = struct.pack("!IIBBBB", opc, dpc, si, 2, 0, sls) + sccp
    params = b""
    if rc is not None:
        params += struct.pack("!HHI", 0x0006, 8, rc)
    pad = (-len(data)) % 4
    params += struct.pack("!HH", 0x0210, 4 + len(data)) + data + bytes(pad)
    return struct.pack("!BBBBI", 1, 0, 1, 1, 8 + len(params)) + params


def m3ua_beat() -> bytes:
    return struct.pack("!BBBBI", 1, 0, 3, 3, 8)  # ASPSM heartbeat: management, skipped


def m2pa_user_data(mtp3_message: bytes, bsn: int = 0, fsn: int = 0) -> bytes:
    body = struct.pack("!II", bsn & 0xFFFFFF, fsn & 0xFFFFFF) + b"\x00" + mtp3_message
    return struct.pack("!BBBBI", 1, 0, 11, 1, 8 + len(body)) + body


def sctp_data_chunk(
    tsn: int, payload: bytes, *, ppid: int = 3, sid: int = 1, ssn: int = 0, flags: int = 3
) -> bytes:
    chunk = struct.pack("!BBHIHHI", 0, flags, 16 + len(payload), tsn, sid, ssn, ppid) + payload
    return chunk + bytes((-len(chunk)) % 4)


def sctp_packet(sport: int, dport: int, chunks: list[bytes], vtag: int = 0x1234) -> bytes:
    return struct.pack("!HHII", sport, dport, vtag, 0) + b"".join(chunks)


def sctp_sack(tsn: int) -> bytes:
    return struct.pack("!BBHIIHH", 3, 0, 16, tsn, 65535, 0, 0)


# -- IP and links -----------------------------------------------------------------------------


def ipv4(
    src: bytes, dst: bytes, payload: bytes, *, proto: int = 132, ident: int = 0, frag: int = 0
) -> bytes:
    return (
        struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, frag, 64, proto, 0, src, dst
        )
        + payload
    )


def ipv4_fragments(
    src: bytes, dst: bytes, payload: bytes, *, ident: int, size: int = 64
) -> list[bytes]:
    """``payload`` split into fragments of ``size`` octets (a multiple of 8)."""
    out = []
    for start in range(0, len(payload), size):
        more = 0x2000 if start + size < len(payload) else 0
        out.append(
            ipv4(src, dst, payload[start : start + size], ident=ident, frag=more | (start // 8))
        )
    return out


def ipv6(src: bytes, dst: bytes, payload: bytes, *, nxt: int = 132) -> bytes:
    return struct.pack("!IHBB16s16s", 0x60000000, len(payload), nxt, 64, src, dst) + payload


MAC_A, MAC_B = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")


def ethernet(payload: bytes, *, ethertype: int = 0x0800, vlan: int | None = None) -> bytes:
    head = MAC_B + MAC_A
    if vlan is not None:
        head += struct.pack("!HH", 0x8100, vlan)
    return head + struct.pack("!H", ethertype) + payload


def sll(payload: bytes, ethertype: int = 0x0800) -> bytes:
    return struct.pack("!HHH8sH", 0, 1, 6, MAC_A + b"\0\0", ethertype) + payload


def sll2(payload: bytes, ethertype: int = 0x0800) -> bytes:
    return struct.pack("!HHIHBB8s", ethertype, 0, 2, 1, 0, 6, MAC_A + b"\0\0") + payload


def mtp2(mtp3_message: bytes) -> bytes:
    li = min(len(mtp3_message), 63)
    return bytes([0x80, 0x80, li]) + mtp3_message


def mtp2_phdr(mtp3_message: bytes) -> bytes:
    return b"\x00\x00\x00\x00" + mtp2(mtp3_message)


__all__ = ["MI_IMEI", "MI_IMEISV", "MI_IMSI", "MI_TMSI"]
