"""BSSAP: the A-interface application part, carried in SCCP user data.

BSSAP (3GPP TS 48.006 9.3) starts with a discriminator octet: 0 = BSSMAP (BSS management
application part, TS 48.008: messages between BSC and MSC about the radio connection), 1 =
DTAP (direct transfer application part: the subscriber's own layer 3 messages, TS 24.008 for
MM/CC, TS 24.011 for SMS CP/RP, TS 23.040 for the SMS TPDU), followed by a data link
connection identifier and a length.

:func:`decode` turns one BSSAP PDU into a flat ``dict`` of what the correlator and the
field-by-field tshark test need (message types, identities, cell, cause, numbers). Messages
that carry nothing the gateway uses come back with their type only (the fast skip). Errors
raise ``ValueError`` / ``IndexError``; the decoder counts them under layer ``bssap``.

Sections: TS 48.008 3.2.1 (message contents), 3.2.2 (IEs: 3.2.2.5 cause, 3.2.2.6 IMSI,
3.2.2.7 TMSI, 3.2.2.17 cell identifier, 3.2.2.24 layer 3 information); TS 24.008 9.2 (MM
messages), 9.3 (CC messages), 10.5.4.7 (BCD numbers), 10.5.4.11 (cause); TS 24.011 7.2 (CP),
7.3 (RP); TS 23.040 9.2.2.2 (SMS-SUBMIT).
"""

from __future__ import annotations

from adapters.sigtran.digits import (
    MI_IMEI,
    MI_IMEISV,
    MI_IMSI,
    MI_TMSI,
    bcd,
    cell_identifier,
    cell_identifier_list,
    lai,
    mobile_identity,
)
from adapters.sigtran.ss import supplementary_service, unpack_7bit

# -- BSSMAP message types (TS 48.008 3.2.2.1) ------------------------------------------------
ASSIGNMENT_REQUEST = 0x01
ASSIGNMENT_COMPLETE = 0x02
HANDOVER_REQUEST = 0x10
HANDOVER_REQUIRED = 0x11
HANDOVER_COMMAND = 0x13
HANDOVER_COMPLETE = 0x14
HANDOVER_PERFORMED = 0x17
CLEAR_COMMAND = 0x20
CLEAR_COMPLETE = 0x21
CLEAR_REQUEST = 0x22
COMMON_ID = 0x2F
PAGING = 0x52
CIPHER_MODE_COMMAND = 0x53
CIPHER_MODE_COMPLETE = 0x55
COMPLETE_LAYER3 = 0x57

#: Every message type TS 48.008 3.2.2.1 (table 3.2.2.1) defines: another value is malformed.
MESSAGE_TYPES = frozenset(
    (
        *range(0x01, 0x09),  # assignment, VGCS/VBS setup, channel modify
        *range(0x10, 0x23),  # handover family, VGCS/VBS assignment, uplink request; clear
        *range(0x25, 0x30),  # SAPI n reject, confusion, suspend, resume, LSA, location, common ID
        *range(0x30, 0x33),  # reset, reset acknowledge, overload
        *range(0x34, 0x39),  # reset circuit (+ ack), MSC/BSS invoke trace, MS reg. enquiry resp.
        *range(0x3A, 0x3D),  # connectionless information, VGCS/VBS assignment status, cell info
        *range(0x3D, 0x50),  # reset IP resource, MS registration enquiry, blocking, circuits
        *range(0x50, 0x5B),  # resource, paging, cipher mode, classmark, queuing, complete L3
        *range(0x60, 0x64),  # VGCS additional information, SMS, notification, uplink app data
        *range(0x70, 0x77),  # internal handover, LCLS
        0x78,
        0x79,  # reroute command / complete
    )
)

#: BSSMAP types that travel on an SCCP connection (TS 48.008 3.2.1): telling BSSAP from another
#: user part (RANAP) on a connection whose start the capture missed.
CONNECTION_ORIENTED = frozenset(
    (
        0x01,
        0x02,
        0x03,
        0x04,
        0x06,
        0x07,
        *range(0x10, 0x1B),
        0x20,
        0x21,
        0x22,
        0x25,
        0x26,
        0x28,
        0x29,
        0x2F,
        *range(0x53, 0x5A),
    )
)

# -- BSSMAP information element identifiers (TS 48.008 3.2.2) -----------------------------
IE_CIC = 0x01
IE_CAUSE = 0x04
IE_CELL_ID = 0x05
IE_IMSI = 0x08
IE_TMSI = 0x09
IE_ENCRYPTION = 0x0A
IE_CHANNEL_TYPE = 0x0B
IE_L3_INFO = 0x17
IE_CELL_ID_LIST = 0x1A
IE_L3_CONTENTS = 0x20
IE_CHOSEN_CHANNEL = 0x21
IE_CHOSEN_ENCRYPTION = 0x2C
IE_RR_CAUSE = 0x15
IE_MS_CLASSMARK_2 = 0x12
#: TV elements (TS 48.008 3.2.2, table 3.2.2.1 and each IE's section): identifier -> value
#: length, no length octet. Every other IE is TLV with a one-octet length. Walked from the
#: spec for every IE any message of table 3.2.2.1 can carry; 0x31 (Current Channel Type 1,
#: 3.2.2.49) and 0x40 (Speech Version, 3.2.2.51) sit in Handover Required and Performed.
_FIXED = {
    0x01: 2,  # circuit identity code
    0x03: 20,  # resource available
    0x0C: 1,  # periodicity
    0x0D: 1,  # extended resource indicator
    0x0E: 1,  # number of MSs
    0x14: 1,  # interference band to be used
    0x15: 1,  # RR cause
    0x18: 1,  # DLCI
    0x19: 1,  # downlink DTX flag
    0x1B: 0,  # response request
    0x1C: 1,  # resource indication method
    0x1D: 1,  # classmark information type 1
    0x21: 1,  # chosen channel
    0x22: 4,  # total resource accessible
    0x23: 1,  # cipher response mode
    0x24: 1,  # channel needed
    0x25: 1,  # trace type
    0x27: 2,  # trace reference
    0x2B: 1,  # forward indicator
    0x2C: 1,  # chosen encryption algorithm
    0x2D: 1,  # circuit pool
    0x2F: 1,  # time indication
    0x31: 1,  # current channel type 1
    0x32: 1,  # queuing indicator
    0x33: 1,  # assignment requirement
    0x36: 0,  # connection release requested
    0x38: 1,  # eMLPP priority
    0x39: 1,  # configuration evolution indication
    0x3F: 1,  # LSA access control suppression
    0x40: 1,  # speech version
    0x67: 1,  # paging information
    0x6A: 1,  # talker priority
    0x6B: 0,  # emergency set indication
    0x7F: 4,  # call identifier
    0x81: 1,  # A-interface selector for reset
    0x83: 16,  # Kc128
    0x85: 0,  # redirect attempt flag
    0x86: 1,  # reroute reject cause
    0x87: 1,  # send sequence number
    0x88: 1,  # reroute complete outcome
    0x8A: 1,  # LCLS-configuration
    0x8B: 1,  # LCLS-connection-status-control
    0x8C: 0,  # LCLS-correlation-not-needed
    0x8D: 1,  # LCLS-BSS-status
    0x8E: 0,  # LCLS-break-request
    0x8F: 0,  # CSFB indication
    0x90: 0,  # CS to PS SRVCC
    0x92: 0,  # CS to PS SRVCC indication
    0x94: 3,  # selected PLMN ID
    0x97: 0,  # attach indicator
    0x98: 3,  # selected operator
    0x99: 3,  # PS registered operator
    0x9A: 3,  # CS registered operator
}

# -- Layer 3 protocol discriminators (TS 24.007 11.2.3.1.1) ------------------------------------
PD_CC, PD_MM, PD_RR, PD_SMS, PD_SS = 3, 5, 6, 9, 11

# MM message types (TS 24.008 10.4, table 10.2)
MM_IMSI_DETACH = 0x01
MM_LU_ACCEPT = 0x02
MM_LU_REJECT = 0x04
MM_LU_REQUEST = 0x08
MM_IDENTITY_REQUEST = 0x18
MM_IDENTITY_RESPONSE = 0x19
MM_TMSI_REALLOC_COMMAND = 0x1A
MM_TMSI_REALLOC_COMPLETE = 0x1B
MM_CM_SERVICE_ACCEPT = 0x21
MM_CM_SERVICE_REQUEST = 0x24
# RR: paging response (TS 44.018 9.1.25), ciphering mode complete (9.1.10)
RR_PAGING_RESPONSE = 0x27
RR_CIPHERING_MODE_COMPLETE = 0x32
# CC message types (TS 24.008 10.4, table 10.3)
CC_ALERTING = 0x01
CC_CALL_PROCEEDING = 0x02
CC_CONNECT = 0x07
CC_SETUP = 0x05
CC_CONNECT_ACK = 0x0F
CC_CALL_CONFIRMED = 0x08
CC_DISCONNECT = 0x25
CC_RELEASE = 0x2D
CC_RELEASE_COMPLETE = 0x2A
# SMS CP message types (TS 24.011 8.1.3)
CP_DATA, CP_ACK, CP_ERROR = 0x01, 0x04, 0x10
# RP message types (TS 24.011 8.2.2): RP-DATA MS->network and network->MS
RP_DATA_MS = 0x00
RP_DATA_NET = 0x01
# SS message types (TS 24.080 3.4): release complete, facility, register
SS_RELEASE_COMPLETE, SS_FACILITY, SS_REGISTER = 0x2A, 0x3A, 0x3B

LU_NORMAL, LU_PERIODIC, LU_IMSI_ATTACH = 0, 1, 2
# CM service types (TS 24.008 10.5.3.3)
CM_MO_CALL, CM_EMERGENCY_CALL, CM_SMS, CM_SS = 1, 2, 4, 8
# BSSMAP cause values (TS 48.008 3.2.2.5)
CAUSE_RADIO_INTERFACE_FAILURE = 0x01
CAUSE_HANDOVER_SUCCESSFUL = 0x0B


def decode(d: bytes) -> dict | None:
    """Decode one BSSAP PDU; None when it is not BSSAP (e.g. RANAP on the same SCCP)."""
    disc = d[0]
    if disc == 0:
        length = d[1]
        if length + 2 != len(d) or length == 0:
            raise ValueError("BSSMAP length does not match the SCCP data")
        mtype = d[2]
        handler = _BSSMAP.get(mtype)
        if handler is None:
            if mtype not in MESSAGE_TYPES:
                raise ValueError(f"BSSMAP message type 0x{mtype:02x} is not defined")
            if length > 1:
                walk(d, 3, 2 + length)  # IEs are not used but must be well formed
            return {"bssmap": mtype}
        return handler(d, 3, 2 + length, {"bssmap": mtype})
    if disc == 1:
        length = d[2]
        if length + 3 != len(d) or length < 2:
            raise ValueError("DTAP length does not match the SCCP data")
        msg: dict = {"dtap": True}
        layer3(d[3 : 3 + length], msg)
        return msg
    return None


def walk(d: bytes, pos: int, end: int) -> None:
    """Check the IE structure from ``pos`` to ``end`` without keeping anything."""
    fixed = _FIXED
    while pos < end:
        size = fixed.get(d[pos])
        pos = pos + 2 + d[pos + 1] if size is None else pos + 1 + size
    if pos != end:
        raise ValueError("BSSMAP IE beyond message")


def ies(d: bytes, pos: int, end: int) -> dict[int, bytes]:
    """BSSMAP IEs from ``pos`` to ``end``: ``{iei: value}`` (first occurrence wins)."""
    found: dict[int, bytes] = {}
    fixed = _FIXED
    while pos < end:
        iei = d[pos]
        size = fixed.get(iei)
        if size is None:
            size = d[pos + 1]
            start = pos + 2
        else:
            start = pos + 1
        stop = start + size
        if stop > end:
            raise ValueError(f"BSSMAP IE 0x{iei:02x} beyond message")
        if iei not in found:
            found[iei] = d[start:stop]
        pos = stop
    return found


def _cell(value: bytes, msg: dict) -> None:
    mcc, mnc, lac, ci = cell_identifier(value)
    if lac is not None:
        msg["lac"] = lac
        if mcc is not None:
            msg["mcc"], msg["mnc"] = mcc, mnc
    if ci is not None:
        msg["ci"] = ci


def _complete_l3(d: bytes, pos: int, end: int, msg: dict) -> dict:
    found = ies(d, pos, end)
    cell = found.get(IE_CELL_ID)
    if cell:
        _cell(cell, msg)
    l3 = found.get(IE_L3_INFO)
    if l3 is None:
        raise ValueError("Complete Layer 3 Information without layer 3 information")
    layer3(l3, msg)
    return msg


def _common_id(d: bytes, pos: int, end: int, msg: dict) -> dict:
    _identity(ies(d, pos, end).get(IE_IMSI), msg)
    return msg


def _paging(d: bytes, pos: int, end: int, msg: dict) -> dict:
    found = ies(d, pos, end)
    _identity(found.get(IE_IMSI), msg)
    tmsi = found.get(IE_TMSI)
    if tmsi is not None:
        if len(tmsi) != 4:  # TS 48.008 3.2.2.7: the TMSI is 4 octets
            raise ValueError("BSSMAP TMSI not 4 octets")
        msg["tmsi"] = int.from_bytes(tmsi, "big")
    cells = found.get(IE_CELL_ID_LIST)
    if cells:
        msg["cells"] = cell_identifier_list(cells)
    return msg


def _with_cause_and_cell(d: bytes, pos: int, end: int, msg: dict) -> dict:
    found = ies(d, pos, end)
    cause = found.get(IE_CAUSE)
    if cause:
        msg["bssmap_cause"] = cause[0] & 0x7F
    cell = found.get(IE_CELL_ID)
    if cell:
        _cell(cell, msg)
    cells = found.get(IE_CELL_ID_LIST)
    if cells:
        msg["cells"] = cell_identifier_list(cells)
    return msg


def _cipher_mode_complete(d: bytes, pos: int, end: int, msg: dict) -> dict:
    """TS 48.008 3.2.1.31: the layer 3 message contents are the RR Ciphering Mode Complete
    (TS 44.018 9.1.10), where most handsets send their IMEISV (mobile equipment identity)."""
    contents = ies(d, pos, end).get(IE_L3_CONTENTS)
    if contents:
        if contents[0] & 0x0F != PD_RR or len(contents) < 2:
            raise ValueError("Cipher Mode Complete without an RR message")
        msg["rr"] = contents[1]
        if contents[1] == RR_CIPHERING_MODE_COMPLETE and len(contents) > 2:
            if contents[2] != 0x17:
                raise ValueError("RR Ciphering Mode Complete: unknown IE")
            _identity(_lv(contents, 3)[0], msg)
    return msg


def _handover_request(d: bytes, pos: int, end: int, msg: dict) -> dict:
    """TS 48.008 3.2.1.8: two Cell Identifier IEs, the serving cell then the target cell."""
    cells: list[bytes] = []
    imsi = cause = None
    fixed = _FIXED
    while pos < end:
        iei = d[pos]
        size = fixed.get(iei)
        if size is None:
            start, stop = pos + 2, pos + 2 + d[pos + 1]
        else:
            start, stop = pos + 1, pos + 1 + size
        if stop > end:
            raise ValueError(f"BSSMAP IE 0x{iei:02x} beyond message")
        if iei == IE_CELL_ID:
            cells.append(d[start:stop])
        elif iei == IE_IMSI and imsi is None:
            imsi = d[start:stop]
        elif iei == IE_CAUSE and cause is None:
            cause = d[start:stop]
        pos = stop
    if len(cells) < 2:
        raise ValueError("Handover Request without serving and target cells")
    serving = cell_identifier(cells[0])
    msg["serving"] = (serving[2], serving[3])
    if cause:
        msg["bssmap_cause"] = cause[0] & 0x7F
    _cell(cells[1], msg)
    _identity(imsi, msg)
    return msg


_BSSMAP = {
    COMPLETE_LAYER3: _complete_l3,
    COMMON_ID: _common_id,
    PAGING: _paging,
    HANDOVER_PERFORMED: _with_cause_and_cell,
    HANDOVER_REQUIRED: _with_cause_and_cell,
    HANDOVER_REQUEST: _handover_request,
    CLEAR_COMMAND: _with_cause_and_cell,
    CLEAR_REQUEST: _with_cause_and_cell,
    CIPHER_MODE_COMPLETE: _cipher_mode_complete,
}


def _identity(value: bytes | None, msg: dict) -> None:
    if not value:
        return
    kind, ident = mobile_identity(value)
    if kind == MI_IMSI:
        msg["imsi"] = ident
    elif kind == MI_TMSI:
        msg["tmsi"] = ident
    elif kind == MI_IMEI:
        msg["imei"] = ident
    elif kind == MI_IMEISV:
        msg["imeisv"] = ident


# -- DTAP layer 3 -------------------------------------------------------------------------------


def layer3(l3: bytes, msg: dict) -> None:
    """Decode a TS 24.008 layer 3 message (MM, RR paging response, CC, SMS CP) into ``msg``."""
    pd = l3[0] & 0x0F
    if pd == PD_MM:
        mtype = l3[1] & 0x3F
        msg["mm"] = mtype
        handler = _MM.get(mtype)
        if handler is not None:
            handler(l3, msg)
    elif pd == PD_CC:
        mtype = l3[1] & 0x3F
        msg["cc"] = mtype
        msg["ti"] = l3[0] >> 4
        handler = _CC.get(mtype)
        if handler is not None:
            handler(l3, msg)
    elif pd == PD_SMS:
        mtype = l3[1]
        msg["cp"] = mtype
        if mtype == CP_DATA:
            _cp_data(l3, msg)
    elif pd == PD_SS:
        mtype = l3[1] & 0x3F
        msg["ss"] = mtype
        if mtype == SS_REGISTER or mtype == SS_FACILITY:
            supplementary_service(l3, mtype, msg)
    elif pd == PD_RR:
        mtype = l3[1]
        msg["rr"] = mtype
        if mtype == RR_PAGING_RESPONSE:
            # cksn/spare (1), MS classmark 2 (LV), mobile identity (LV)
            _, pos = _lv(l3, 3)
            _identity(_lv(l3, pos)[0], msg)
    else:
        msg["pd"] = pd


def _lv(l3: bytes, pos: int) -> tuple[bytes, int]:
    length = l3[pos]
    end = pos + 1 + length
    if end > len(l3):
        raise ValueError("LV element beyond message")
    return l3[pos + 1 : end], end


def _mm_lu_request(l3: bytes, msg: dict) -> None:
    msg["lu_type"] = l3[2] & 0x03
    msg["old_mcc"], msg["old_mnc"], msg["old_lac"] = lai(l3[3:8])
    value, _ = _lv(l3, 9)  # after MS classmark 1 (1 octet)
    _identity(value, msg)


def _mm_lu_accept(l3: bytes, msg: dict) -> None:
    msg["mcc"], msg["mnc"], msg["lac"] = lai(l3[2:7])
    pos = 7
    while pos < len(l3):
        iei = l3[pos]
        if iei & 0x80:  # type 1/2 IEs: one octet
            pos += 1
            continue
        value, pos = _lv(l3, pos + 1)
        if iei == 0x17:
            _identity(value, msg)


def _mm_lu_reject(l3: bytes, msg: dict) -> None:
    msg["reject_cause"] = l3[2]


def _mm_detach(l3: bytes, msg: dict) -> None:
    _identity(_lv(l3, 3)[0], msg)


def _mm_cm_service_request(l3: bytes, msg: dict) -> None:
    msg["service_type"] = l3[2] & 0x0F
    _, pos = _lv(l3, 3)  # MS classmark 2
    _identity(_lv(l3, pos)[0], msg)


def _mm_identity_request(l3: bytes, msg: dict) -> None:
    msg["identity_type"] = l3[2] & 0x07


def _mm_identity_response(l3: bytes, msg: dict) -> None:
    _identity(_lv(l3, 2)[0], msg)


def _mm_tmsi_realloc(l3: bytes, msg: dict) -> None:
    msg["mcc"], msg["mnc"], msg["lac"] = lai(l3[2:7])
    _identity(_lv(l3, 7)[0], msg)


_MM = {
    MM_LU_REQUEST: _mm_lu_request,
    MM_LU_ACCEPT: _mm_lu_accept,
    MM_LU_REJECT: _mm_lu_reject,
    MM_IMSI_DETACH: _mm_detach,
    MM_CM_SERVICE_REQUEST: _mm_cm_service_request,
    MM_IDENTITY_REQUEST: _mm_identity_request,
    MM_IDENTITY_RESPONSE: _mm_identity_response,
    MM_TMSI_REALLOC_COMMAND: _mm_tmsi_realloc,
}


def _cc_ies(l3: bytes, pos: int, msg: dict) -> None:
    """CC optional IEs: numbers (0x5C calling, 0x5E called) and cause (0x08)."""
    while pos < len(l3):
        iei = l3[pos]
        if iei & 0x80:
            pos += 1
            continue
        if iei == 0x34:  # signal: TV, 2 octets
            pos += 2
            continue
        value, pos = _lv(l3, pos + 1)
        if iei == 0x5E and value:
            msg["called"] = bcd(value[1:] if value[0] & 0x80 else value[2:])
        elif iei == 0x5C and value:
            msg["calling"] = bcd(value[1:] if value[0] & 0x80 else value[2:])
        elif iei == 0x08 and "cause" not in msg:
            msg["cause"] = _cause(value)


def _cause(value: bytes) -> int:
    # octet 3 (coding, location), octet 3a (recommendation) when octet 3's ext bit is 0
    index = 1 if value[0] & 0x80 else 2
    return value[index] & 0x7F


def _cc_setup(l3: bytes, msg: dict) -> None:
    _cc_ies(l3, 2, msg)


def _cc_disconnect(l3: bytes, msg: dict) -> None:
    value, pos = _lv(l3, 2)
    msg["cause"] = _cause(value)
    _cc_ies(l3, pos, msg)


_CC = {
    CC_SETUP: _cc_setup,
    CC_DISCONNECT: _cc_disconnect,
    CC_RELEASE: _cc_setup,
    CC_RELEASE_COMPLETE: _cc_setup,
}


def _cp_data(l3: bytes, msg: dict) -> None:
    rpdu, _ = _lv(l3, 2)
    mti = rpdu[0] & 0x07
    msg["rp"] = mti
    if mti == RP_DATA_MS:
        # message reference (1), originator address (LV, empty), destination (LV), user data (LV)
        _, pos = _lv(rpdu, 2)
        dest, pos = _lv(rpdu, pos)
        if dest:
            msg["rp_dest"] = bcd(dest[1:])
        tpdu, _ = _lv(rpdu, pos)
        if tpdu and tpdu[0] & 0x03 == 0x01:  # SMS-SUBMIT
            msg["tp_da"] = tp_address(tpdu, 2)
    elif mti == RP_DATA_NET:
        # message reference (1), originator address (LV: the SMSC), destination (LV, empty),
        # user data (LV) holding an SMS-DELIVER (TS 23.040 9.2.2.1) whose TP-OA is the sender
        orig, pos = _lv(rpdu, 2)
        if orig:
            msg["rp_orig"] = bcd(orig[1:])
        _, pos = _lv(rpdu, pos)
        tpdu, _ = _lv(rpdu, pos)
        if tpdu and tpdu[0] & 0x03 == 0x00:  # SMS-DELIVER
            msg["tp_oa"] = tp_address(tpdu, 1)


def tp_address(tpdu: bytes, pos: int) -> str:
    """A TP address (TS 23.040 9.1.2.5) at ``pos``: digits, or text when alphanumeric."""
    ndigits = tpdu[pos]
    raw = tpdu[pos + 2 : pos + 2 + (ndigits + 1) // 2]
    if len(raw) * 2 < ndigits:
        raise ValueError("TP address beyond TPDU")
    if tpdu[pos + 1] & 0x70 == 0x50:  # type of number 101: alphanumeric, GSM 7-bit
        return unpack_7bit(raw, ndigits * 4 // 7)
    return bcd(raw)[:ndigits]
