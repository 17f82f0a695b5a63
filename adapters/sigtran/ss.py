"""Supplementary services in DTAP: USSD strings and SS operations (call forwarding, barring).

An MS asks for a supplementary service with a CM Service Request of type 8 (TS 24.008
10.5.3.3) and then an SS Register (TS 24.080 2.4) whose Facility IE (TS 24.080 3.6) holds
a ROSE component (ITU-T X.880) in BER: an Invoke with an operation code from TS 29.002
(MAP) 17.2: 10 registerSS, 11 eraseSS, 12 activateSS, 13 deactivateSS, 14 interrogateSS,
19 processUnstructuredSS-Data (phase 1 USSD, IA5 text), 59 processUnstructuredSS-Request
(USSD-Arg: a data coding scheme, TS 23.038 5, and the string, usually GSM 7-bit packed).

:func:`supplementary_service` adds to the message dict ``ss_op`` (the first Invoke's
operation code), ``ussd`` (the string the subscriber dialled, e.g. ``*139#``) or ``ss_code``
(the SS-Code of TS 29.002 17.7.5; :data:`SS_CODES` names it, e.g. ``cfu``). Malformed BER
raises ``ValueError``. Pure functions.
"""

from __future__ import annotations

#: GSM 7-bit default alphabet (TS 23.038 6.2.1), septet value -> character; 0x1B escapes.
GSM7 = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)

#: TS 29.002 17.7.5 SS-Code values, as the names campaigns use.
SS_CODES = {
    0x00: "all_ss",
    0x10: "all_line_identification",
    0x11: "clip",
    0x12: "clir",
    0x13: "colp",
    0x14: "colr",
    0x20: "all_forwarding",
    0x21: "cfu",
    0x24: "cd",
    0x28: "all_conditional_forwarding",
    0x29: "cfb",
    0x2A: "cfnry",
    0x2B: "cfnrc",
    0x31: "ect",
    0x41: "cw",
    0x42: "hold",
    0x43: "ccbs_a",
    0x44: "ccbs_b",
    0x51: "mpty",
    0x61: "cug",
    0x71: "aoci",
    0x72: "aocc",
    0x90: "all_barring",
    0x91: "barring_outgoing",
    0x92: "baoc",
    0x93: "boic",
    0x94: "boic_ex_hc",
    0x99: "barring_incoming",
    0x9A: "baic",
    0x9B: "bic_roam",
}

#: MAP operation codes (TS 29.002 17.5) of the SS operations that change a service.
SS_OPERATIONS = {10: "register", 11: "erase", 12: "activate", 13: "deactivate"}
OP_USSD_DATA, OP_USSD_REQUEST = 19, 59

_IEI_FACILITY = 0x1C


def unpack_7bit(data: bytes, count: int) -> str:
    """``count`` septets of GSM 7-bit packed ``data`` (TS 23.038 6.1.2.1) as text."""
    if count * 7 > len(data) * 8:
        raise ValueError("7-bit string shorter than its length")
    out = []
    for i in range(count):
        bit = i * 7
        byte, shift = bit >> 3, bit & 7
        value = data[byte] >> shift
        if shift > 1:
            value |= data[byte + 1] << (8 - shift)
        out.append(GSM7[value & 0x7F])
    return "".join(out)


def ussd_text(dcs: int, data: bytes) -> str:
    """A USSD string by its CBS data coding scheme (TS 23.038 5): 7-bit, 8-bit or UCS2."""
    group = dcs >> 4
    alphabet = 0  # 0 GSM 7-bit, 1 8-bit, 2 UCS2
    if group in (4, 5, 6, 7):
        alphabet = (dcs >> 2) & 3
    elif group == 0x0F:
        alphabet = 1 if dcs & 0x04 else 0
    elif dcs == 0x11:
        alphabet = 2
    if alphabet == 2:
        return data.decode("utf-16-be", errors="replace")
    if alphabet == 1:
        return data.decode("latin-1")
    text = unpack_7bit(data, len(data) * 8 // 7)
    # TS 23.038 6.1.2.3.1: seven spare bits at the end are filled with CR, not a character
    if len(data) * 8 % 7 == 0 and text.endswith("\r"):
        text = text[:-1]
    return text


def _tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """``(tag, value start, value end)`` of the BER element at ``pos`` (one-octet tags)."""
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise ValueError("multi-octet BER tag in an SS component")
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        octets = length & 0x7F
        if not 1 <= octets <= 2:
            raise ValueError("BER length form not allowed here")
        length = int.from_bytes(data[pos : pos + octets], "big")
        pos += octets
    end = pos + length
    if end > len(data):
        raise ValueError("BER element beyond the facility")
    return tag, pos, end


def _integer(data: bytes, start: int, end: int) -> int:
    if not 1 <= end - start <= 4:
        raise ValueError("BER integer length")
    return int.from_bytes(data[start:end], "big", signed=True)


def facility(data: bytes, msg: dict) -> None:
    """The components of a Facility IE value: the first Invoke's operation goes to ``msg``."""
    pos = 0
    while pos < len(data):
        tag, start, end = _tlv(data, pos)
        pos = end
        if tag != 0xA1 or "ss_op" in msg or "ussd" in msg:
            continue  # return result / error / reject: nothing the subscriber asked for
        # Invoke ::= SEQUENCE { invokeID INTEGER, linkedID [0] IMPLICIT INTEGER OPTIONAL,
        #                       opCode INTEGER, parameter ANY OPTIONAL }
        t, s, e = _tlv(data, start)
        if t != 0x02:
            raise ValueError("Invoke without an invoke ID")
        t, s, e = _tlv(data, e)
        if t == 0x80:
            t, s, e = _tlv(data, e)
        if t != 0x02:
            raise ValueError("Invoke without a local operation code")
        op = _integer(data, s, e)
        msg["ss_op"] = op
        param = _tlv(data, e) if e < end else None
        if op == OP_USSD_REQUEST and param is not None and param[0] == 0x30:
            _ussd_arg(data, param[1], param[2], msg)
        elif op == OP_USSD_DATA and param is not None and param[0] == 0x16:
            msg["ussd"] = data[param[1] : param[2]].decode("ascii", errors="replace")
        elif op in SS_OPERATIONS and param is not None and param[0] == 0x30:
            t, s, e = _tlv(data, param[1])
            if t != 0x04 or e - s != 1:
                raise ValueError("SS operation without an SS-Code")
            msg["ss_code"] = data[s]


def _ussd_arg(data: bytes, pos: int, end: int, msg: dict) -> None:
    """USSD-Arg ::= SEQUENCE { ussd-DataCodingScheme OCTET STRING, ussd-String OCTET STRING, ...}"""
    t, s, e = _tlv(data, pos)
    if t != 0x04 or e - s != 1:
        raise ValueError("USSD-Arg without a data coding scheme")
    dcs = data[s]
    t, s, e = _tlv(data, e)
    if t != 0x04 or e > end:
        raise ValueError("USSD-Arg without a string")
    msg["ussd"] = ussd_text(dcs, data[s:e])


def supplementary_service(l3: bytes, mtype: int, msg: dict) -> None:
    """SS Register (Facility IE 0x1C, TLV) or Facility (Facility, LV) of TS 24.080 2.3-2.4."""
    if mtype == 0x3A:  # Facility: the facility is mandatory, LV, right after the header
        length = l3[2]
        if 3 + length > len(l3):
            raise ValueError("SS Facility beyond message")
        facility(l3[3 : 3 + length], msg)
        return
    pos = 2
    while pos < len(l3):
        iei = l3[pos]
        if pos + 1 >= len(l3):
            raise ValueError("SS IE without length")
        end = pos + 2 + l3[pos + 1]
        if end > len(l3):
            raise ValueError("SS IE beyond message")
        if iei == _IEI_FACILITY:
            facility(l3[pos + 2 : end], msg)
        pos = end
