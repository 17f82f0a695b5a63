"""The GSM 03.38 default alphabet and septet packing (3GPP TS 23.038 section 6.2.1 and 6.1.2.1).

SMS text in the default alphabet is a sequence of 7-bit *septets*. Characters of the extension
table (``{ } [ ] ~ \\ | ^ €`` and form feed) take two septets: ESC (0x1B) then the code.
Over SMPP most SMSCs take one septet per octet ("unpacked") with data_coding 0; some expect the
septets packed eight into seven octets as on the air interface: both are supported here.
"""

from __future__ import annotations

from collections.abc import Sequence

ESC = 0x1B

#: Basic character set, indexed by septet value (TS 23.038 6.2.1). 0x1B is the escape.
BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
assert len(BASIC) == 128

#: Extension table (TS 23.038 6.2.1.1): septet after ESC -> character.
EXTENSION = {
    0x0A: "\f",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}

_ENCODE: dict[str, tuple[int, ...]] = {ch: (i,) for i, ch in enumerate(BASIC) if i != ESC}
_ENCODE.update({ch: (ESC, code) for code, ch in EXTENSION.items()})
_ALPHABET = frozenset(_ENCODE)


class GsmEncodeError(ValueError):
    """Raised when text holds a character outside the GSM 03.38 default alphabet."""


def can_encode(text: str) -> bool:
    """True if every character of ``text`` is in the default alphabet (or its extension)."""
    return _ALPHABET.issuperset(text)  # one C loop (a generator per character cost 2 % of a core)


def char_septets(text: str, *, replace: str | None = None) -> list[tuple[int, ...]]:
    """The septets of each character (one or two), so that splitting never cuts an escape."""
    enc = _ENCODE
    out = []
    for ch in text:
        code = enc.get(ch)
        if code is None:
            if replace is None:
                raise GsmEncodeError(f"character {ch!r} is not in the GSM 03.38 default alphabet")
            code = enc[replace]
        out.append(code)
    return out


def encode(text: str, *, replace: str | None = None) -> bytes:
    """Text to unpacked septets (one per octet). ``replace`` substitutes unknown characters."""
    return bytes(s for code in char_septets(text, replace=replace) for s in code)


def decode(septets: bytes | Sequence[int]) -> str:
    """Unpacked septets to text. An unknown extension code decodes as its basic character
    (TS 23.038: "display the character of the basic table"); a trailing ESC is dropped."""
    out = []
    escaped = False
    for s in septets:
        s &= 0x7F
        if escaped:
            out.append(EXTENSION.get(s, BASIC[s] if s != ESC else " "))
            escaped = False
        elif s == ESC:
            escaped = True
        else:
            out.append(BASIC[s])
    return "".join(out)


def pack(septets: bytes | Sequence[int], fill_bits: int = 0) -> bytes:
    """Pack septets LSB first into octets (TS 23.038 6.1.2.1.1).

    ``fill_bits`` zero bits come first: after a user data header the first septet starts on a
    septet boundary counted from the start of the user data (TS 23.040 9.2.3.24).
    """
    septets = bytes(septets)
    if (fill_bits + 7 * len(septets)) % 8 == 1:
        # Seven spare bits would read back as "@": pad with CR instead (TS 23.038 6.1.2.3.1).
        septets += b"\r"
    acc = 0
    nbits = fill_bits
    out = bytearray()
    for s in septets:
        acc |= (s & 0x7F) << nbits
        nbits += 7
        while nbits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            nbits -= 8
    if nbits:
        out.append(acc & 0xFF)
    return bytes(out)


def unpack(data: bytes, count: int | None = None, fill_bits: int = 0) -> bytes:
    """Unpack octets to septets. Without ``count``, as many whole septets as the bits hold.

    Without ``count`` a trailing CR that exactly fills the last octet is taken as the padding
    :func:`pack` adds (so a text that really ends in CR at that boundary loses it: the
    standard's own ambiguity).
    """
    total_bits = len(data) * 8 - fill_bits
    value = int.from_bytes(data, "little") >> fill_bits
    if count is None:
        count = total_bits // 7
        if (
            count
            and (fill_bits + 7 * count) % 8 == 0
            and (value >> (7 * (count - 1))) & 0x7F == 0x0D
        ):
            count -= 1  # the CR that padded seven spare bits
    elif count * 7 > total_bits:
        raise ValueError(f"{len(data)} octets cannot hold {count} septets")
    return bytes((value >> (7 * i)) & 0x7F for i in range(count))


def fill_bits_after_header(udh_octets: int) -> int:
    """Fill bits between a UDH of ``udh_octets`` (with its length octet) and packed text."""
    return (7 - (udh_octets * 8) % 7) % 7
