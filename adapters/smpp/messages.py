"""Messages to submit_sm segments and back: data coding, long-message split, reassembly.

A message longer than one SMS (140 octets of user data) is sent as several segments, each
carrying a User Data Header (UDH, 3GPP TS 23.040 9.2.3.24) with a concatenation element:
IEI 0x00 (8-bit reference) or 0x08 (16-bit reference), total and sequence number. The
alternative is one submit_sm with the whole text in the ``message_payload`` TLV (SMPP 3.4
5.3.2.32) and the SMSC splits it. esm_class bit 0x40 (UDHI) says the short_message starts
with a UDH; binary messages (WAP Push) use it with data_coding 0x04.

Capacity per segment, in the 140 user-data octets: GSM 7-bit 160 septets alone, 153 with an
8-bit concatenation UDH, 152 with 16-bit; UCS2 70 characters, 67 and 66.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

import attrs

from adapters.smpp import gsm0338

USER_DATA_OCTETS = 140
DC_DEFAULT = 0x00  # SMSC default alphabet (GSM 03.38 here)
DC_BINARY = 0x04
DC_UCS2 = 0x08
ESM_UDHI = 0x40
ESM_RECEIPT = 0x04  # esm_class message type: SMSC delivery receipt (SMPP 3.4 5.2.12)
IEI_CONCAT_8 = 0x00
IEI_CONCAT_16 = 0x08

CODINGS = ("auto", "gsm7", "ucs2")
LONG_MODES = ("udh8", "udh16", "payload")
MAX_SEGMENTS = 255


class MessageTooLong(ValueError):
    """Raised when a message needs more than 255 segments."""


@attrs.frozen(slots=True)
class Segment:
    """One submit_sm worth of message: fields for smpplib's ``make_pdu``."""

    esm_class: int
    data_coding: int
    short_message: bytes
    message_payload: bytes | None = None

    def pdu_fields(self) -> dict:
        fields = {"esm_class": self.esm_class, "data_coding": self.data_coding}
        if self.message_payload is not None:
            fields["message_payload"] = self.message_payload
        else:
            fields["short_message"] = self.short_message
        return fields


def concat_ie(reference: int, total: int, seq: int, *, sixteen_bit: bool) -> bytes:
    if sixteen_bit:
        return bytes((IEI_CONCAT_16, 4, (reference >> 8) & 0xFF, reference & 0xFF, total, seq))
    return bytes((IEI_CONCAT_8, 3, reference & 0xFF, total, seq))


def choose_coding(text: str, policy: str) -> str:
    """``gsm7`` or ``ucs2`` for ``text`` under the policy (auto: GSM when it fits the alphabet)."""
    if policy == "auto":
        return "gsm7" if gsm0338.can_encode(text) else "ucs2"
    return policy


def encode_text(
    text: str,
    *,
    coding: str = "auto",
    long_mode: str = "udh8",
    reference: int = 0,
    gsm_packed: bool = False,
) -> list[Segment]:
    """Split ``text`` into segments. ``reference`` identifies this message's parts (8 or 16 bit).

    With ``coding="gsm7"`` characters outside the alphabet become ``?``.
    """
    if coding not in CODINGS:
        raise ValueError(f"coding must be one of {CODINGS}")
    if long_mode not in LONG_MODES:
        raise ValueError(f"long_mode must be one of {LONG_MODES}")
    kind = choose_coding(text, coding)
    if kind == "gsm7":
        units = gsm0338.char_septets(text, replace="?")
        dc = DC_DEFAULT
        size = sum(len(u) for u in units)
        single = 160
    else:
        units = _utf16_units(text)
        dc = DC_UCS2
        size = sum(len(u) for u in units) // 2
        single = 70
    if size <= single or long_mode == "payload":
        data = _join(units, kind, gsm_packed, 0)
        if long_mode == "payload" and size > single:
            return [Segment(esm_class=0, data_coding=dc, short_message=b"", message_payload=data)]
        return [Segment(esm_class=0, data_coding=dc, short_message=data)]
    sixteen = long_mode == "udh16"
    udh_len = 7 if sixteen else 6  # UDHL + IE header + IE data
    if kind == "gsm7":
        capacity = (USER_DATA_OCTETS * 8 - udh_len * 8) // 7  # septets
    else:
        capacity = (USER_DATA_OCTETS - udh_len) // 2 * 2  # octets
    chunks = _chunk(units, capacity)
    if len(chunks) > MAX_SEGMENTS:
        raise MessageTooLong(f"message needs {len(chunks)} segments, at most {MAX_SEGMENTS}")
    segments = []
    for i, chunk in enumerate(chunks, 1):
        ie = concat_ie(reference, len(chunks), i, sixteen_bit=sixteen)
        udh = bytes((len(ie),)) + ie
        fill = gsm0338.fill_bits_after_header(len(udh))
        body = _join(chunk, kind, gsm_packed, fill)
        segments.append(Segment(esm_class=ESM_UDHI, data_coding=dc, short_message=udh + body))
    return segments


def encode_binary(
    payload: bytes, udh: bytes = b"", *, reference: int = 0, sixteen_bit: bool = False
) -> list[Segment]:
    """Binary message (e.g. WAP Push): ``udh`` is a whole UDH with its length octet, or empty.

    Too long for one SMS: split, each part carrying the given elements plus a concatenation one.
    """
    if udh and udh[0] != len(udh) - 1:
        raise ValueError("udh must start with its own length octet (UDHL)")
    if len(udh) + len(payload) <= USER_DATA_OCTETS:
        esm = ESM_UDHI if udh else 0
        return [Segment(esm_class=esm, data_coding=DC_BINARY, short_message=udh + payload)]
    ies = udh[1:]
    ie_len = 6 if sixteen_bit else 5
    capacity = USER_DATA_OCTETS - 1 - len(ies) - ie_len
    chunks = [payload[i : i + capacity] for i in range(0, len(payload), capacity)]
    if len(chunks) > MAX_SEGMENTS:
        raise MessageTooLong(f"message needs {len(chunks)} segments, at most {MAX_SEGMENTS}")
    out = []
    for i, chunk in enumerate(chunks, 1):
        all_ies = ies + concat_ie(reference, len(chunks), i, sixteen_bit=sixteen_bit)
        out.append(
            Segment(
                esm_class=ESM_UDHI,
                data_coding=DC_BINARY,
                short_message=bytes((len(all_ies),)) + all_ies + chunk,
            )
        )
    return out


def _utf16_units(text: str) -> list[bytes]:
    # One entry per character: 2 octets, or 4 for a surrogate pair (never split).
    return [ch.encode("utf-16-be") for ch in text]


def _chunk(units: list, capacity: int) -> list[list]:
    chunks: list[list] = []
    current: list = []
    used = 0
    for u in units:
        n = len(u)
        if used + n > capacity:
            chunks.append(current)
            current, used = [], 0
        current.append(u)
        used += n
    if current or not chunks:
        chunks.append(current)
    return chunks


def _join(units: Iterable, kind: str, gsm_packed: bool, fill_bits: int) -> bytes:
    if kind == "ucs2":
        return b"".join(units)
    septets = bytes(s for u in units for s in u)
    return gsm0338.pack(septets, fill_bits) if gsm_packed else septets


# --------------------------------------------------------------------------------------------
# Decoding (MO messages, the simulator) and reassembly
# --------------------------------------------------------------------------------------------


@attrs.frozen(slots=True)
class Concat:
    """Concatenation info of one segment: which message (reference) and where in it."""

    reference: int
    total: int
    seq: int


def split_udh(short_message: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """``(information elements, rest)`` of a short_message that starts with a UDH.

    Raises ValueError when the header is truncated.
    """
    if not short_message:
        raise ValueError("empty user data, expected a UDH")
    udhl = short_message[0]
    if udhl + 1 > len(short_message):
        raise ValueError("UDH longer than the user data")
    header = short_message[1 : 1 + udhl]
    ies = []
    i = 0
    while i < len(header):
        if i + 2 > len(header):
            raise ValueError("truncated information element in UDH")
        iei, length = header[i], header[i + 1]
        if i + 2 + length > len(header):
            raise ValueError("information element runs past the UDH")
        ies.append((iei, bytes(header[i + 2 : i + 2 + length])))
        i += 2 + length
    return ies, short_message[1 + udhl :]


def concat_of(ies: Iterable[tuple[int, bytes]]) -> Concat | None:
    for iei, data in ies:
        if iei == IEI_CONCAT_8 and len(data) == 3:
            return Concat(data[0], data[1], data[2])
        if iei == IEI_CONCAT_16 and len(data) == 4:
            return Concat((data[0] << 8) | data[1], data[2], data[3])
    return None


def decode_user_data(
    esm_class: int, data_coding: int, data: bytes, *, gsm_packed: bool = False
) -> tuple[Concat | None, str | bytes]:
    """Decode one short_message (or message_payload): concatenation info and the text.

    Binary data codings return bytes. Raises ValueError on a malformed header.
    """
    concat = None
    udh_len = 0
    if esm_class & ESM_UDHI:
        ies, rest = split_udh(data)
        concat = concat_of(ies)
        udh_len = len(data) - len(rest)
        data = rest
    coding = data_coding & 0x0F if data_coding & 0xF0 in (0x00, 0xF0) else data_coding
    if data_coding == DC_UCS2 or coding == DC_UCS2:
        return concat, data.decode("utf-16-be", errors="replace")
    if data_coding in (DC_DEFAULT, 0x01, 0xF0):
        if gsm_packed:
            fill = gsm0338.fill_bits_after_header(udh_len) if udh_len else 0
            return concat, gsm0338.decode(gsm0338.unpack(data, None, fill))
        return concat, gsm0338.decode(data)
    if data_coding == 0x03:  # Latin-1
        return concat, data.decode("latin-1")
    return concat, bytes(data)


@attrs.define
class Reassembler:
    """Collects segments of long messages until complete; capped, oldest dropped first.

    ``key`` tells messages apart (e.g. source and destination address); the concatenation
    reference alone is not unique across senders.
    """

    max_pending: int = 10_000
    timeout: float = 300.0
    dropped: int = 0
    _pending: OrderedDict = attrs.field(factory=OrderedDict)

    def add(self, key: object, concat: Concat, part: str | bytes, now: float) -> str | bytes | None:
        """Add one segment; the whole message once the last part arrived, else None."""
        self._expire(now)
        if concat.total <= 1:
            return part
        if not 1 <= concat.seq <= concat.total:
            raise ValueError(f"segment {concat.seq} of {concat.total} is out of range")
        slot = (key, concat.reference, concat.total)
        entry = self._pending.get(slot)
        if entry is None:
            if len(self._pending) >= self.max_pending:
                self._pending.popitem(last=False)
                self.dropped += 1
            entry = self._pending[slot] = (now, {})
        entry[1][concat.seq] = part
        if len(entry[1]) < concat.total:
            return None
        del self._pending[slot]
        parts = [entry[1][i] for i in range(1, concat.total + 1)]
        return b"".join(parts) if isinstance(parts[0], bytes) else "".join(parts)

    def _expire(self, now: float) -> None:
        while self._pending:
            slot, (first_seen, _parts) = next(iter(self._pending.items()))
            if now - first_seen <= self.timeout:
                break
            del self._pending[slot]
            self.dropped += 1

    def __len__(self) -> int:
        return len(self._pending)
