"""SCCP, the Signalling Connection Control Part (ITU-T Q.713), as carried over MTP3 SI=3.

Decoded messages (Q.713 section 4): CR connection request (4.2), CC connection confirm (4.3),
CREF connection refused (4.4), RLSD released (4.5), RLC release complete (4.6), DT1 data form 1
(4.7), UDT unitdata (4.10), XUDT extended unitdata (4.18). Called/calling party addresses per
Q.713 3.4 (address indicator, point code, subsystem number, global title 1-4). Local
references are 3 octets, least significant first, as Wireshark shows them.

:func:`parse` returns ``(type, dlr, slr, data, called, calling)``; fields a message does not
have are None. ``called``/``calling`` are ``(pc, ssn, digits)`` tuples. Every other message type
comes back with its type only, for the caller to count. Errors raise ``ValueError`` /
``IndexError``.
"""

from __future__ import annotations

from adapters.sigtran.digits import bcd

CR, CC, CREF, RLSD, RLC, DT1, DT2, AK, UDT, UDTS = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
IT, XUDT, XUDTS, LUDT = 0x10, 0x11, 0x12, 0x13
NAMES = {
    CR: "CR",
    CC: "CC",
    CREF: "CREF",
    RLSD: "RLSD",
    RLC: "RLC",
    DT1: "DT1",
    UDT: "UDT",
    XUDT: "XUDT",
    IT: "IT",
    DT2: "DT2",
    UDTS: "UDTS",
    XUDTS: "XUDTS",
    LUDT: "LUDT",
}
SSN_BSSAP = 254
SSN_RANAP = 142

# optional parameter names (Q.713 3.1)
_P_CALLED, _P_CALLING, _P_DATA = 0x03, 0x04, 0x0F


def ref(d: bytes, pos: int) -> int:
    return d[pos] | (d[pos + 1] << 8) | (d[pos + 2] << 16)


def address(a: bytes) -> tuple[int | None, int | None, str | None]:
    """``(point code, SSN, global title digits)`` of a party address (Q.713 3.4, ITU)."""
    ind = a[0]
    pos = 1
    pc = ssn = digits = None
    if ind & 0x01:
        pc = (a[1] | (a[2] << 8)) & 0x3FFF
        pos = 3
    if ind & 0x02:
        ssn = a[pos]
        pos += 1
    gti = (ind >> 2) & 0x0F
    if gti == 1:
        raw = a[pos + 1 :]
        digits = bcd(raw)
        if a[pos] & 0x80 and raw:  # odd number of digits: the last nibble is padding
            digits = digits[: 2 * len(raw) - 1]
    elif gti == 2:
        digits = bcd(a[pos + 1 :])
    elif gti == 3:  # translation type, numbering plan + encoding scheme (1: BCD odd)
        raw = a[pos + 2 :]
        digits = bcd(raw)
        if a[pos + 1] & 0x0F == 1 and raw:
            digits = digits[: 2 * len(raw) - 1]
    elif gti == 4:
        raw = a[pos + 3 :]
        digits = bcd(raw)
        if a[pos + 1] & 0x0F == 1 and raw:  # BCD, odd
            digits = digits[: 2 * len(raw) - 1]
    return pc, ssn, digits


def _variable(d: bytes, ptr_pos: int) -> bytes:
    """A mandatory variable parameter: a pointer, relative to its own octet, to length+value."""
    start = ptr_pos + d[ptr_pos]
    end = start + 1 + d[start]
    if d[ptr_pos] == 0 or end > len(d):
        raise ValueError("SCCP parameter beyond message")
    return d[start + 1 : end]


def _optional(d: bytes, ptr_pos: int) -> dict[int, bytes]:
    ptr = d[ptr_pos]
    if ptr == 0:
        return {}
    pos = ptr_pos + ptr
    found: dict[int, bytes] = {}
    while pos < len(d):
        name = d[pos]
        if name == 0:
            return found
        end = pos + 2 + d[pos + 1]
        if end > len(d):
            raise ValueError("SCCP optional parameter beyond message")
        found[name] = d[pos + 2 : end]
        pos = end
    return found


def parse(d: bytes) -> tuple:
    """Decode one SCCP message; see the module docstring for the result tuple."""
    t = d[0]
    if t == DT1:
        if len(d) < 6:
            raise ValueError("short DT1")
        return t, ref(d, 1), None, _variable(d, 5), None, None
    if t == CR:
        called = _variable(d, 5)
        opt = _optional(d, 6)
        calling = opt.get(_P_CALLING)
        return (
            t,
            None,
            ref(d, 1),
            opt.get(_P_DATA),
            address(called),
            address(calling) if calling else None,
        )
    if t == CC:
        opt = _optional(d, 8)
        called = opt.get(_P_CALLED)
        return t, ref(d, 1), ref(d, 4), opt.get(_P_DATA), address(called) if called else None, None
    if t == RLSD:
        _optional(d, 8)
        return t, ref(d, 1), ref(d, 4), None, None, None
    if t == RLC:
        if len(d) < 7:
            raise ValueError("short RLC")
        return t, ref(d, 1), ref(d, 4), None, None, None
    if t == CREF:
        opt = _optional(d, 5)
        return t, ref(d, 1), None, opt.get(_P_DATA), None, None
    if t == UDT:
        return (t, None, None, _variable(d, 4), address(_variable(d, 2)), address(_variable(d, 3)))
    if t == XUDT:
        return (t, None, None, _variable(d, 5), address(_variable(d, 3)), address(_variable(d, 4)))
    return t, None, None, None, None, None
