"""Digit and identity codings shared by the GSM layers.

- BCD digits, low nibble first, ``0xF`` filler: 3GPP TS 24.008 10.5.4.7 (called party BCD
  number), TS 24.011 8.2.5 (RP addresses), TS 23.040 9.1.2.3 (TP addresses, semi-octets).
- Mobile identity (IMSI, IMEI, IMEISV, TMSI): TS 24.008 10.5.1.4.
- Location area identification (MCC, MNC, LAC): TS 24.008 10.5.1.3.
- Cell identifier (CGI / LAC+CI / CI): TS 48.008 3.2.2.17.

Pure functions on ``bytes``; they raise :class:`ValueError` (or ``IndexError``) on input too
short, which the decoder counts. No state, no I/O.
"""

from __future__ import annotations

# 0-9 and the telephony digits TS 24.008 table 10.5.118 gives to 0xA-0xE; 0xF is filler.
_DIGIT = "0123456789*#abc"
_DIGIT16 = _DIGIT + "f"  # a filler where a digit must be: caught as a non-digit
#: byte -> (low digit, high digit) as strings, "" for the filler nibble.
_PAIR: list[str] = []
for _b in range(256):
    _lo, _hi = _b & 0x0F, _b >> 4
    _PAIR.append((_DIGIT[_lo] if _lo != 15 else "") + (_DIGIT[_hi] if _hi != 15 else ""))
del _b, _lo, _hi

# Mobile identity types (TS 24.008 table 10.5.4).
MI_NONE, MI_IMSI, MI_IMEI, MI_IMEISV, MI_TMSI = 0, 1, 2, 3, 4


def bcd(data: bytes) -> str:
    """Digits of a BCD string, low nibble first; a filler nibble (0xF) ends nothing, it is dropped."""
    pair = _PAIR
    return "".join([pair[b] for b in data])


def encode_bcd(digits: str) -> bytes:
    """Inverse of :func:`bcd` for 0-9 * # a b c, padding an odd count with 0xF."""
    values = [_DIGIT.index(d) for d in digits]
    if len(values) % 2:
        values.append(15)
    return bytes(values[i] | (values[i + 1] << 4) for i in range(0, len(values), 2))


class IdentityError(ValueError):
    """A mobile identity that breaks TS 24.008 10.5.1.4 / TS 23.003: a filler or a non-digit
    inside the digits, or a digit count that the type does not allow. Counted as an error."""


#: Digit counts TS 23.003 allows: IMSI at most 15 (2.2; MCC + MNC + MSIN, at least 6 here),
#: IMEI 15 (6.2.1), IMEISV 16 (6.2.2).
_DIGITS_ALLOWED = {MI_IMSI: range(6, 16), MI_IMEI: range(15, 16), MI_IMEISV: range(16, 17)}


def mobile_identity(data: bytes) -> tuple[int, str | int | None]:
    """``(type, value)``: digits for IMSI/IMEI/IMEISV, an int for TMSI, None otherwise.

    ``data`` is the value part (without IEI and length) of a mobile identity IE. Digits are
    checked (:class:`IdentityError`): 0-9 only, the 0xF filler only as the last nibble of an
    even count (the odd/even indicator, bit 4 of the first octet, says which), and a count
    the type allows.
    """
    if not data:
        raise ValueError("empty mobile identity")
    first = data[0]
    kind = first & 0x07
    if kind == MI_TMSI:
        if len(data) < 5:
            raise ValueError("short TMSI")
        return kind, int.from_bytes(data[1:5], "big")
    if kind in (MI_IMSI, MI_IMEI, MI_IMEISV):
        # The first digit sits in the high nibble of octet 1; an even count ends in a 0xF
        # filler nibble, which bcd() drops, as it drops a filler misplaced inside (caught by
        # the count below).
        digits = _DIGIT16[first >> 4] + bcd(data[1:])
        count = 2 * len(data) - 1 if first & 0x08 else 2 * len(data) - 2
        if (
            len(digits) != count
            or not digits.isdigit()
            or count not in _DIGITS_ALLOWED[kind]
            or (not first & 0x08 and data[-1] >> 4 != 15)
        ):
            raise IdentityError(f"malformed mobile identity of type {kind}")
        return kind, digits
    return kind, None


def encode_mobile_identity(kind: int, value: str | int) -> bytes:
    """Value part of a mobile identity IE (inverse of :func:`mobile_identity`)."""
    if kind == MI_TMSI:
        return b"\xf4" + int(value).to_bytes(4, "big")
    digits = str(value)
    odd = len(digits) % 2
    first = (int(digits[0]) << 4) | (0x08 if odd else 0) | kind
    return bytes([first]) + encode_bcd(digits[1:])


def luhn_digit(digits14: str) -> str:
    """Check digit of a 14-digit IMEI body (TS 23.003 B.2, the Luhn formula)."""
    total = 0
    for i, ch in enumerate(digits14):
        d = int(ch)
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def imei_from_imeisv(imeisv: str) -> str:
    """The 15-digit IMEI (TAC + SNR + check digit) of a 16-digit IMEISV."""
    body = imeisv[:14]
    return body + luhn_digit(body)


def plmn(data: bytes) -> tuple[str, str]:
    """``(mcc, mnc)`` from the 3-octet PLMN coding of TS 24.008 10.5.1.3."""
    b0, b1, b2 = data[0], data[1], data[2]
    mcc = f"{b0 & 15}{b0 >> 4}{b1 & 15}"
    mnc3 = b1 >> 4
    mnc = f"{b2 & 15}{b2 >> 4}" + ("" if mnc3 == 15 else str(mnc3))
    return mcc, mnc


def encode_plmn(mcc: str, mnc: str) -> bytes:
    mnc3 = int(mnc[2]) if len(mnc) == 3 else 15
    return bytes(
        [int(mcc[0]) | int(mcc[1]) << 4, int(mcc[2]) | mnc3 << 4, int(mnc[0]) | int(mnc[1]) << 4]
    )


def lai(data: bytes) -> tuple[str, str, int]:
    """``(mcc, mnc, lac)`` of a 5-octet location area identification."""
    if len(data) < 5:
        raise ValueError("short LAI")
    mcc, mnc = plmn(data)
    return mcc, mnc, (data[3] << 8) | data[4]


def encode_lai(mcc: str, mnc: str, lac: int) -> bytes:
    return encode_plmn(mcc, mnc) + lac.to_bytes(2, "big")


def cell_identifier(data: bytes) -> tuple[str | None, str | None, int | None, int | None]:
    """``(mcc, mnc, lac, ci)`` of a BSSMAP Cell Identifier value (TS 48.008 3.2.2.17).

    Discriminator 0: whole CGI; 1: LAC + CI; 2: CI only; 4/5/6: no cell (BSS-wide).
    """
    disc = data[0] & 0x0F
    if disc == 0:
        if len(data) < 8:
            raise ValueError("short CGI")
        mcc, mnc = plmn(data[1:4])
        return mcc, mnc, (data[4] << 8) | data[5], (data[6] << 8) | data[7]
    if disc == 1:
        if len(data) < 5:
            raise ValueError("short LAC+CI")
        return None, None, (data[1] << 8) | data[2], (data[3] << 8) | data[4]
    if disc == 2:
        if len(data) < 3:
            raise ValueError("short CI")
        return None, None, None, (data[1] << 8) | data[2]
    return None, None, None, None


def cell_identifier_list(data: bytes) -> list[tuple[int | None, int | None]]:
    """``[(lac, ci), ...]`` of a BSSMAP Cell Identifier List value (TS 48.008 3.2.2.27).

    Discriminators: 0 CGI (7 octets each), 1 LAC+CI (4), 2 CI (2), 4 LAI (5), 5 LAC (2);
    others (BSS-wide, no cell) give an empty list.
    """
    disc = data[0] & 0x0F
    size, lac_at, ci_at = {
        0: (7, 3, 5),
        1: (4, 0, 2),
        2: (2, None, 0),
        4: (5, 3, None),
        5: (2, 0, None),
    }.get(disc, (0, None, None))
    cells = []
    if not size:
        return cells
    if (len(data) - 1) % size:
        raise ValueError("cell identifier list length")
    for pos in range(1, len(data), size):
        item = data[pos : pos + size]
        lac = None if lac_at is None else (item[lac_at] << 8) | item[lac_at + 1]
        ci = None if ci_at is None else (item[ci_at] << 8) | item[ci_at + 1]
        cells.append((lac, ci))
    return cells


def encode_cgi(mcc: str, mnc: str, lac: int, ci: int) -> bytes:
    return b"\x00" + encode_plmn(mcc, mnc) + lac.to_bytes(2, "big") + ci.to_bytes(2, "big")
