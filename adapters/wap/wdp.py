"""WDP over SMS (WAP-259 6.5): a push PDU as the user data of one or more binary SMS.

Every part carries a User Data Header (3GPP TS 23.040 9.2.3.24) with the application port
addressing element, IEI 0x05 (16-bit ports: destination 2948, the WAP Push connectionless
port, and source 9200, the WAP connectionless session service); a push that does not fit
in one SMS (140 octets of user data, header included) is split, each part also carrying a
concatenation element: IEI 0x00 (8-bit reference) or IEI 0x08 (16-bit reference), with the
total and the part's number. SMPP sends each part as a submit_sm with esm_class UDHI (0x40)
and data_coding 0x04 (8-bit data). Sans-IO: bytes in, values out.
"""

from __future__ import annotations

import attrs

USER_DATA_OCTETS = 140
IEI_CONCAT_8 = 0x00
IEI_CONCAT_16 = 0x08
IEI_PORTS_16 = 0x05
IEI_PORTS_8 = 0x04
PORT_PUSH = 2948  # WAP Push connectionless (WAP-259 Appendix B)
PORT_WSP = 9200  # WSP connectionless session service
MAX_PARTS = 255


class WdpError(ValueError):
    """Raised when SMS user data is not a WDP datagram part (the message says why)."""


class PushTooLong(ValueError):
    """Raised when a push needs more than 255 SMS."""


@attrs.frozen(kw_only=True)
class WdpPart:
    """One SMS of a datagram: ports, and (when concatenated) reference, total and number."""

    dest_port: int
    src_port: int
    data: bytes
    reference: int | None = None
    total: int = 1
    seq: int = 1


def _ports_ie(dest: int, src: int) -> bytes:
    return bytes((IEI_PORTS_16, 4)) + dest.to_bytes(2, "big") + src.to_bytes(2, "big")


def segment(
    payload: bytes,
    *,
    reference: int = 0,
    sixteen_bit: bool = False,
    dest_port: int = PORT_PUSH,
    src_port: int = PORT_WSP,
) -> list[bytes]:
    """The SMS user data (UDH + data) of each part of the datagram ``payload``."""
    ports = _ports_ie(dest_port, src_port)
    if 1 + len(ports) + len(payload) <= USER_DATA_OCTETS:
        return [bytes((len(ports),)) + ports + payload]
    concat_len = 6 if sixteen_bit else 5
    capacity = USER_DATA_OCTETS - 1 - len(ports) - concat_len
    chunks = [payload[i : i + capacity] for i in range(0, len(payload), capacity)]
    if len(chunks) > MAX_PARTS:
        raise PushTooLong(f"the push needs {len(chunks)} SMS, at most {MAX_PARTS}")
    out = []
    for seq, chunk in enumerate(chunks, 1):
        if sixteen_bit:
            concat = bytes((IEI_CONCAT_16, 4)) + (reference & 0xFFFF).to_bytes(2, "big")
        else:
            concat = bytes((IEI_CONCAT_8, 3, reference & 0xFF))
        ies = concat + bytes((len(chunks), seq)) + ports
        out.append(bytes((len(ies),)) + ies + chunk)
    return out


def parse(user_data: bytes) -> WdpPart:
    """One SMS's user data (starting with its UDH) as a WDP part; raises :class:`WdpError`."""
    user_data = bytes(user_data)
    if not user_data:
        raise WdpError("empty user data")
    udhl = user_data[0]
    if 1 + udhl > len(user_data):
        raise WdpError(f"UDH length {udhl} exceeds the user data")
    header, data = user_data[1 : 1 + udhl], user_data[1 + udhl :]
    ports: tuple[int, int] | None = None
    reference: int | None = None
    total = seq = 1
    pos = 0
    while pos < len(header):
        if pos + 2 > len(header):
            raise WdpError("truncated information element in the UDH")
        iei, length = header[pos], header[pos + 1]
        value = header[pos + 2 : pos + 2 + length]
        if len(value) != length:
            raise WdpError(f"information element 0x{iei:02x} overruns the UDH")
        pos += 2 + length
        if iei == IEI_PORTS_16 and length == 4:
            ports = (int.from_bytes(value[:2], "big"), int.from_bytes(value[2:], "big"))
        elif iei == IEI_PORTS_8 and length == 2:
            ports = (value[0], value[1])
        elif iei == IEI_CONCAT_8 and length == 3:
            reference, total, seq = value[0], value[1], value[2]
        elif iei == IEI_CONCAT_16 and length == 4:
            reference, total, seq = int.from_bytes(value[:2], "big"), value[2], value[3]
    if ports is None:
        raise WdpError("no application port element (IEI 0x05) in the UDH: not WDP")
    if reference is not None and not 1 <= seq <= total:
        raise WdpError(f"part {seq} of {total}")
    return WdpPart(
        dest_port=ports[0], src_port=ports[1], data=data, reference=reference, total=total, seq=seq
    )


def reassemble(parts: list[bytes]) -> tuple[WdpPart, bytes]:
    """The datagram from all the user data of one push (any order); raises :class:`WdpError`.

    Returns the first part (ports, reference) and the joined payload.
    """
    if not parts:
        raise WdpError("no parts")
    parsed = sorted((parse(p) for p in parts), key=lambda w: w.seq)
    first = parsed[0]
    if len(parsed) == 1 and first.reference is None:
        return first, first.data
    if any(w.reference != first.reference or w.total != first.total for w in parsed):
        raise WdpError("parts of different messages (reference or total differ)")
    if [w.seq for w in parsed] != list(range(1, first.total + 1)):
        raise WdpError(f"parts {[w.seq for w in parsed]} of {first.total}: some missing or twice")
    return first, b"".join(w.data for w in parsed)
