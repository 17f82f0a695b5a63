"""The WSP connectionless push PDU (WAP-230 8.2.4.1, 8.4): what a WAP Push carries over WDP.

::

    TID (1) | PDU type 0x06 push | headers length (uintvar) | content type | headers | data

The content type is a well-known short integer (WAP-230 Appendix A, table 40):
``application/vnd.wap.sic`` 0x2E and ``application/vnd.wap.slc`` 0x30, sent with the high bit
set (0xAE, 0xB0). The one header we send is ``X-Wap-Application-Id`` (field 0x2F, sent 0xAF)
with the push application ``x-wap-application:wml.ua`` (0x02, sent 0x82) that shows SI and
SL to the user. The decoder also reads the general content-type form (value length, type,
parameters) and textual types and application ids, which other push initiators send.
Sans-IO: bytes in, values out.
"""

from __future__ import annotations

import attrs

from adapters.wap.wbxml import encode_uintvar

PDU_PUSH = 0x06
PDU_CONFIRMED_PUSH = 0x07
#: Well-known content types (WAP-230 table 40), without the short-integer high bit.
CONTENT_TYPES = {
    0x2E: "application/vnd.wap.sic",
    0x30: "application/vnd.wap.slc",
    0x03: "text/plain",
    0x08: "text/vnd.wap.wml",
    0x14: "application/vnd.wap.wmlc",
    0x2C: "application/vnd.wap.coc",
    0x3E: "application/vnd.wap.mms-message",
}
CONTENT_TYPE_CODES = {name: code for code, name in CONTENT_TYPES.items()}
HEADER_X_WAP_APPLICATION_ID = 0x2F
#: Push application ids (WINA registry): 0x02 is the WML user agent, which shows SI/SL.
APPLICATION_IDS = {
    0x00: "x-wap-application:*",
    0x01: "x-wap-application:push.sia",
    0x02: "x-wap-application:wml.ua",
    0x04: "x-wap-application:mms.ua",
}
APP_WML_UA = 0x02


class WspError(ValueError):
    """Raised when bytes are not a WSP push PDU we can read (the message says where)."""


@attrs.frozen(kw_only=True)
class PushPdu:
    """A decoded push PDU. ``application_id`` is the name (``x-wap-application:wml.ua``)."""

    transaction_id: int
    content_type: str
    application_id: str | None
    body: bytes
    pdu_type: int = PDU_PUSH


def encode_push(
    body: bytes, content_type: str, *, transaction_id: int, application_id: int = APP_WML_UA
) -> bytes:
    """A connectionless push PDU carrying ``body`` (WAP-230 8.2.4.1)."""
    code = CONTENT_TYPE_CODES.get(content_type)
    if code is None:
        raise ValueError(f"no well-known code for content type {content_type!r}")
    if not 0 <= transaction_id <= 0xFF:
        raise ValueError("transaction id is one octet")
    if not 0 <= application_id <= 0x7F:
        raise ValueError("application id must fit a short integer")
    headers = bytes((0x80 | code, 0x80 | HEADER_X_WAP_APPLICATION_ID, 0x80 | application_id))
    return bytes((transaction_id, PDU_PUSH)) + encode_uintvar(len(headers)) + headers + body


def _uintvar(data: bytes, pos: int) -> tuple[int, int]:
    n = 0
    for _ in range(5):
        if pos >= len(data):
            raise WspError(f"truncated uintvar at offset {pos}")
        b = data[pos]
        pos += 1
        n = (n << 7) | (b & 0x7F)
        if not b & 0x80:
            return n, pos
    raise WspError(f"uintvar longer than 5 octets at offset {pos}")


def _text_string(data: bytes, pos: int, end: int) -> tuple[str, int]:
    stop = data.find(b"\x00", pos, end)
    if stop < 0:
        raise WspError(f"text string not terminated at offset {pos}")
    raw = data[pos:stop]
    if raw[:1] == b"\x7f":  # quote (WAP-230 8.4.2.1)
        raw = raw[1:]
    return raw.decode("latin-1"), stop + 1


def _content_type(data: bytes, pos: int, end: int) -> tuple[str, int]:
    if pos >= end:
        raise WspError("headers end before the content type")
    b = data[pos]
    if b & 0x80:  # short integer
        return CONTENT_TYPES.get(b & 0x7F, f"0x{b & 0x7F:02x}"), pos + 1
    if b >= 0x20:  # text string
        return _text_string(data, pos, end)
    # general form: value length, then a media type (short integer or text), then parameters
    if b == 0x1F:
        length, start = _uintvar(data, pos + 1)
    else:
        length, start = b, pos + 1
    stop = start + length
    if stop > end:
        raise WspError("content-type value longer than the headers")
    name, _ = _content_type(data, start, stop)
    return name, stop


def _skip_value(data: bytes, pos: int, end: int) -> int:
    """Skip one header value (short integer, text, or value-length data)."""
    b = data[pos]
    if b & 0x80:
        return pos + 1
    if b == 0x1F:
        length, start = _uintvar(data, pos + 1)
        return start + length
    if b < 0x1F:
        return pos + 1 + b
    return _text_string(data, pos, end)[1]


def decode_push(data: bytes) -> PushPdu:
    """A push PDU from the WDP payload; raises :class:`WspError`."""
    data = bytes(data)
    if len(data) < 3:
        raise WspError("a push PDU is at least 3 octets")
    tid, pdu_type = data[0], data[1]
    if pdu_type not in (PDU_PUSH, PDU_CONFIRMED_PUSH):
        raise WspError(f"PDU type 0x{pdu_type:02x} is not push (0x06)")
    length, pos = _uintvar(data, 2)
    end = pos + length
    if end > len(data):
        raise WspError(f"headers length {length} exceeds the PDU")
    content_type, pos = _content_type(data, pos, end)
    app_id: str | None = None
    while pos < end:
        field = data[pos]
        if field & 0x80:
            pos += 1
            if pos >= end:
                raise WspError("header without value")
            if field & 0x7F == HEADER_X_WAP_APPLICATION_ID:
                v = data[pos]
                if v & 0x80:
                    app_id = APPLICATION_IDS.get(v & 0x7F, f"0x{v & 0x7F:02x}")
                    pos += 1
                elif v < 0x1F:  # long integer
                    app_id = f"0x{int.from_bytes(data[pos + 1 : pos + 1 + v], 'big'):x}"
                    pos += 1 + v
                else:
                    app_id, pos = _text_string(data, pos, end)
            else:
                pos = _skip_value(data, pos, end)
        elif field >= 0x20:  # textual header name and value
            name, pos = _text_string(data, pos, end)
            value, pos = _text_string(data, pos, end)
            if name.lower() == "x-wap-application-id":
                app_id = value
        else:
            raise WspError(f"unexpected octet 0x{field:02x} in headers at offset {pos}")
    if pos != end:
        raise WspError("headers overrun their length")
    return PushPdu(
        transaction_id=tid,
        content_type=content_type,
        application_id=app_id,
        body=data[end:],
        pdu_type=pdu_type,
    )
