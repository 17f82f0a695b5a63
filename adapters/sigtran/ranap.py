"""RANAP (3GPP TS 25.413), just enough to reach the subscriber's layer 3 messages on Iu-CS.

On the 3G circuit-switched interface (Iu-CS) the same MM/CC/SMS messages as on the A interface
(TS 24.008) travel inside RANAP, on SCCP connections to subsystem 142. This module walks the
ALIGNED PER encoding (ITU-T X.691) of a RANAP-PDU without a full ASN.1 decoder:

- RANAP-PDU (TS 25.413 9.3.2): a CHOICE with extension marker, then procedureCode (one
  octet), criticality (two bits, octet-aligned) and the value as an open type (a length
  determinant, X.691 10.9.3.5-8, then the octets);
- the value is a SEQUENCE holding a ProtocolIE-Container (9.3.3): one preamble octet, a 16-bit
  count, then per IE its id (16 bits), criticality (one octet) and an open-type value.

IEs read (9.3.4, ids from 9.3.6): id-LAI (15: PLMN + LAC), id-SAI (58: PLMN + LAC + SAC, the
3G service area standing for the cell), id-NAS-PDU (16: the TS 24.008 message, decoded by
:func:`adapters.sigtran.bssap.layer3`), id-PermanentNAS-UE-ID (23: the IMSI in Common ID, a
CHOICE whose IMSI is a TBCD string of 3-8 octets with a 3-bit length). Other procedures come
back with their code only. Errors raise ``ValueError`` / ``IndexError``.
"""

from __future__ import annotations

from adapters.sigtran.bssap import layer3
from adapters.sigtran.digits import bcd, plmn

# procedure codes (TS 25.413 9.3.6)
RAB_ASSIGNMENT, IU_RELEASE, COMMON_ID, PAGING, INITIAL_UE_MESSAGE, DIRECT_TRANSFER = (
    0,
    1,
    15,
    14,
    19,
    20,
)
# protocol IE ids
ID_LAI, ID_NAS_PDU, ID_PERMANENT_NAS_UE_ID, ID_SAI = 15, 16, 23, 58


def _length(d: bytes, pos: int) -> tuple[int, int]:
    """An unconstrained length determinant (X.691 10.9.3.6-7): ``(length, next position)``."""
    first = d[pos]
    if first < 0x80:
        return first, pos + 1
    if first < 0xC0:
        return ((first & 0x3F) << 8) | d[pos + 1], pos + 2
    raise ValueError("fragmented PER length (over 16K) is not used by RANAP signaling")


def decode(d: bytes) -> dict:
    """Decode a RANAP-PDU into a message dict (``{"ranap": procedure code, ...}``)."""
    if d[0] & 0x80:
        raise ValueError("RANAP-PDU extension alternative")
    proc = d[1]
    length, pos = _length(d, 3)
    end = pos + length
    if end != len(d):
        raise ValueError("RANAP value length does not match the SCCP data")
    msg: dict = {"ranap": proc}
    if proc not in (INITIAL_UE_MESSAGE, DIRECT_TRANSFER, COMMON_ID, PAGING):
        return msg
    count = (d[pos + 1] << 8) | d[pos + 2]
    pos += 3
    for _ in range(count):
        ie_id = (d[pos] << 8) | d[pos + 1]
        vlen, vpos = _length(d, pos + 3)
        pos = vpos + vlen
        if pos > end:
            raise ValueError("RANAP IE beyond value")
        if ie_id == ID_NAS_PDU:
            nlen, npos = _length(d, vpos)
            if npos + nlen > pos:
                raise ValueError("NAS-PDU beyond IE")
            layer3(d[npos : npos + nlen], msg)
        elif ie_id == ID_SAI or ie_id == ID_LAI:
            # preamble octet (extension + optional bits), PLMN identity (3), LAC (2), [SAC (2)]
            msg["mcc"], msg["mnc"] = plmn(d[vpos + 1 : vpos + 4])
            msg["lac"] = (d[vpos + 4] << 8) | d[vpos + 5]
            if ie_id == ID_SAI:
                msg["ci"] = msg["sac"] = (d[vpos + 6] << 8) | d[vpos + 7]
        elif ie_id == ID_PERMANENT_NAS_UE_ID:
            head = d[vpos]
            if head & 0x80:
                raise ValueError("PermanentNAS-UE-ID extension alternative")
            size = ((head >> 4) & 0x07) + 3
            msg["imsi"] = bcd(d[vpos + 1 : vpos + 1 + size])
    return msg
