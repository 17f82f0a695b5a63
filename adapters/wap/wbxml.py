"""Service Indication and Service Loading in WBXML: encode and decode.

- WAP-192 (WBXML 1.3 binary XML): the header (version, public identifier, charset, string
  table), the global tokens (``END``, ``STR_I``, ``STR_T``, ``OPAQUE``...), tags with the
  attribute (0x80) and content (0x40) bits.
- WAP-167 (Service Indication, SI 1.0, public id 0x05): ``<si><indication href si-id created
  si-expires action>text</indication></si>``; section 8 gives the token tables, and 8.2.2
  the dates ``created`` / ``si-expires`` as OPAQUE data: the 14 digits ``YYYYMMDDhhmmss``
  in BCD (7 octets), trailing zero octets dropped.
- WAP-168 (Service Loading, SL 1.0, public id 0x06): ``<sl href action/>``.

An href starts with a prefix token (``http://www.``, ``https://``...) where one matches, and
the well-known fragments ``.com/ .edu/ .net/ .org/`` inside it become attribute value tokens;
the rest is inline strings (UTF-8). Sans-IO: bytes in, values out, no logging.
"""

from __future__ import annotations

import datetime as dt
import enum

import attrs

WBXML_VERSION = 0x02  # WBXML 1.2: what handsets and libwbxml write for SI/SL
PUBLIC_ID_SI = 0x05  # "-//WAPFORUM//DTD SI 1.0//EN"
PUBLIC_ID_SL = 0x06  # "-//WAPFORUM//DTD SL 1.0//EN"
CHARSET_UTF8 = 0x6A  # IANA MIBenum 106

# Global tokens (WAP-192 7.1).
SWITCH_PAGE = 0x00
END = 0x01
ENTITY = 0x02
STR_I = 0x03
LITERAL = 0x04
STR_T = 0x83
OPAQUE = 0xC3
TAG_ATTRS = 0x80
TAG_CONTENT = 0x40

#: Attribute value tokens shared by SI and SL (WAP-167 8.3.3, WAP-168 9.3.3).
VALUE_TOKENS = {0x85: ".com/", 0x86: ".edu/", 0x87: ".net/", 0x88: ".org/"}
_VALUE_BY_TEXT = {text: token for token, text in VALUE_TOKENS.items()}

# SI tags (WAP-167 8.3.1) and attribute start tokens (8.3.2).
SI_TAG_SI = 0x05
SI_TAG_INDICATION = 0x06
SI_TAG_INFO = 0x07
SI_TAG_ITEM = 0x08
SI_ATTRS: dict[int, tuple[str, str]] = {
    0x05: ("action", "signal-none"),
    0x06: ("action", "signal-low"),
    0x07: ("action", "signal-medium"),
    0x08: ("action", "signal-high"),
    0x09: ("action", "delete"),
    0x0A: ("created", ""),
    0x0B: ("href", ""),
    0x0C: ("href", "http://"),
    0x0D: ("href", "http://www."),
    0x0E: ("href", "https://"),
    0x0F: ("href", "https://www."),
    0x10: ("si-expires", ""),
    0x11: ("si-id", ""),
    0x12: ("class", ""),
}
# SL tag (WAP-168 9.3.1) and attribute start tokens (9.3.2).
SL_TAG_SL = 0x05
SL_ATTRS: dict[int, tuple[str, str]] = {
    0x05: ("action", "execute-low"),
    0x06: ("action", "execute-high"),
    0x07: ("action", "cache"),
    0x08: ("href", ""),
    0x09: ("href", "http://"),
    0x0A: ("href", "http://www."),
    0x0B: ("href", "https://"),
    0x0C: ("href", "https://www."),
}


class SiAction(enum.StrEnum):
    SIGNAL_NONE = "signal-none"
    SIGNAL_LOW = "signal-low"
    SIGNAL_MEDIUM = "signal-medium"
    SIGNAL_HIGH = "signal-high"
    DELETE = "delete"


class SlAction(enum.StrEnum):
    EXECUTE_LOW = "execute-low"
    EXECUTE_HIGH = "execute-high"
    CACHE = "cache"


class WbxmlError(ValueError):
    """Raised when bytes are not a WBXML SI or SL document we can read (the message says where)."""


class LocalWbxmlError(ValueError):
    """Raised when a value cannot be encoded (a NUL in a string, a date before year 1000)."""


def _utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise LocalWbxmlError("SI dates must be timezone-aware (UTC is sent)")
    return value.astimezone(dt.UTC).replace(microsecond=0)


@attrs.frozen(kw_only=True)
class ServiceIndication:
    """An SI (WAP-167): the handset shows ``text`` and offers to open ``href``."""

    href: str | None = None
    text: str = ""
    si_id: str | None = None
    created: dt.datetime | None = attrs.field(
        default=None, converter=attrs.converters.optional(_utc)
    )
    expires: dt.datetime | None = attrs.field(
        default=None, converter=attrs.converters.optional(_utc)
    )
    action: SiAction = attrs.field(default=SiAction.SIGNAL_MEDIUM, converter=SiAction)


@attrs.frozen(kw_only=True)
class ServiceLoading:
    """An SL (WAP-168): the handset loads ``href`` (``execute-*``) or caches it (``cache``)."""

    href: str
    action: SlAction = attrs.field(default=SlAction.EXECUTE_LOW, converter=SlAction)


# -- encoding ------------------------------------------------------------------------------


def _inline(text: str) -> bytes:
    if "\x00" in text:
        raise LocalWbxmlError("a WBXML inline string cannot contain NUL")
    return bytes((STR_I,)) + text.encode("utf-8") + b"\x00"


def _value(text: str) -> bytes:
    """An attribute value: inline strings with the .com/ .edu/ .net/ .org/ tokens cut out."""
    out = bytearray()
    start = i = 0
    while i < len(text):
        if text[i] == ".":
            frag = text[i : i + 5]
            token = _VALUE_BY_TEXT.get(frag)
            if token is not None:
                if i > start:
                    out += _inline(text[start:i])
                out.append(token)
                i += 5
                start = i
                continue
        i += 1
    if start < len(text):
        out += _inline(text[start:])
    return bytes(out)


def _href(href: str, attrs_table: dict[int, tuple[str, str]]) -> bytes:
    best, best_len = None, -1
    for token, (name, prefix) in attrs_table.items():
        if name == "href" and href.startswith(prefix) and len(prefix) > best_len:
            best, best_len = token, len(prefix)
    assert best is not None  # the bare href token has the empty prefix
    return bytes((best,)) + _value(href[best_len:])


def encode_date(value: dt.datetime) -> bytes:
    """The OPAQUE body of an SI date (WAP-167 8.2.2): BCD ``YYYYMMDDhhmmss``, zeros dropped."""
    value = _utc(value)
    if value.year < 1000:
        raise LocalWbxmlError("SI dates need a four-digit year")
    digits = value.strftime("%Y%m%d%H%M%S")
    octets = bytes.fromhex(digits)
    return octets.rstrip(b"\x00")


def _opaque(data: bytes) -> bytes:
    return bytes((OPAQUE,)) + encode_uintvar(len(data)) + data


def encode_uintvar(n: int) -> bytes:
    """A multi-byte unsigned integer (WAP-192 5.1, WAP-230 8.1.2): 7 bits per octet, MSB first."""
    if n < 0:
        raise LocalWbxmlError("uintvar cannot be negative")
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def _header(public_id: int) -> bytes:
    return bytes((WBXML_VERSION, public_id, CHARSET_UTF8, 0x00))


_SI_ACTION_TOKEN = {value: token for token, (name, value) in SI_ATTRS.items() if name == "action"}
_SL_ACTION_TOKEN = {value: token for token, (name, value) in SL_ATTRS.items() if name == "action"}


def encode_si(si: ServiceIndication) -> bytes:
    """The WBXML of an SI document (content type application/vnd.wap.sic)."""
    attrs_out = bytearray()
    if si.href is not None:
        attrs_out += _href(si.href, SI_ATTRS)
    if si.si_id is not None:
        attrs_out += bytes((0x11,)) + _value(si.si_id)
    if si.created is not None:
        attrs_out += bytes((0x0A,)) + _opaque(encode_date(si.created))
    if si.expires is not None:
        attrs_out += bytes((0x10,)) + _opaque(encode_date(si.expires))
    attrs_out.append(_SI_ACTION_TOKEN[si.action.value])
    out = bytearray(_header(PUBLIC_ID_SI))
    out.append(SI_TAG_SI | TAG_CONTENT)
    if si.text:
        out.append(SI_TAG_INDICATION | TAG_ATTRS | TAG_CONTENT)
        out += attrs_out
        out.append(END)
        out += _inline(si.text)
        out.append(END)  # </indication>
    else:
        out.append(SI_TAG_INDICATION | TAG_ATTRS)
        out += attrs_out
        out.append(END)
    out.append(END)  # </si>
    return bytes(out)


def encode_sl(sl: ServiceLoading) -> bytes:
    """The WBXML of an SL document (content type application/vnd.wap.slc)."""
    out = bytearray(_header(PUBLIC_ID_SL))
    out.append(SL_TAG_SL | TAG_ATTRS)
    out += _href(sl.href, SL_ATTRS)
    out.append(_SL_ACTION_TOKEN[sl.action.value])
    out.append(END)
    return bytes(out)


# -- decoding ------------------------------------------------------------------------------


@attrs.define
class _Reader:
    data: bytes
    pos: int = 0
    strtbl: bytes = b""

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise WbxmlError(f"truncated at offset {self.pos}")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def peek(self) -> int:
        if self.pos >= len(self.data):
            raise WbxmlError(f"truncated at offset {self.pos}")
        return self.data[self.pos]

    def uintvar(self) -> int:
        n = 0
        for _ in range(5):
            b = self.byte()
            n = (n << 7) | (b & 0x7F)
            if not b & 0x80:
                return n
        raise WbxmlError(f"uintvar longer than 5 octets at offset {self.pos}")

    def cstring(self) -> bytes:
        end = self.data.find(b"\x00", self.pos)
        if end < 0:
            raise WbxmlError(f"inline string not terminated at offset {self.pos}")
        raw = self.data[self.pos : end]
        self.pos = end + 1
        return raw

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise WbxmlError(f"{n} octets announced at offset {self.pos}, fewer left")
        raw = self.data[self.pos : self.pos + n]
        self.pos += n
        return raw

    def table_string(self, index: int) -> bytes:
        end = self.strtbl.find(b"\x00", index)
        if index >= len(self.strtbl) or end < 0:
            raise WbxmlError(f"string table reference {index} out of range")
        return self.strtbl[index:end]


def decode_date(data: bytes) -> dt.datetime:
    """An SI date from its OPAQUE body (1 to 7 BCD octets, missing trailing octets are zero)."""
    if not 1 <= len(data) <= 7:
        raise WbxmlError(f"an SI date has 1-7 octets, got {len(data)}")
    digits = (data + bytes(7 - len(data))).hex()
    if not digits.isdigit():
        raise WbxmlError(f"an SI date is BCD digits, got {data.hex()}")
    try:
        return dt.datetime.strptime(digits, "%Y%m%d%H%M%S").replace(tzinfo=dt.UTC)
    except ValueError as exc:
        raise WbxmlError(f"bad SI date {digits}: {exc}") from None


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WbxmlError(f"string is not UTF-8: {exc}") from None


def _read_value(r: _Reader) -> str | bytes:
    """Attribute value parts up to the next attribute start token or END; OPAQUE returns bytes."""
    parts: list[str] = []
    while True:
        b = r.peek()
        if b == STR_I:
            r.pos += 1
            parts.append(_text(r.cstring()))
        elif b == STR_T:
            r.pos += 1
            parts.append(_text(r.table_string(r.uintvar())))
        elif b == ENTITY:
            r.pos += 1
            parts.append(chr(r.uintvar()))
        elif b == OPAQUE:
            r.pos += 1
            if parts:
                raise WbxmlError("OPAQUE after a string in one attribute value")
            return r.take(r.uintvar())
        elif b in VALUE_TOKENS:
            r.pos += 1
            parts.append(VALUE_TOKENS[b])
        else:
            return "".join(parts)


def _read_attrs(r: _Reader, table: dict[int, tuple[str, str]]) -> dict[str, str | bytes]:
    out: dict[str, str | bytes] = {}
    while True:
        b = r.byte()
        if b == END:
            return out
        if b == SWITCH_PAGE:
            if r.byte() != 0:
                raise WbxmlError("only attribute code page 0 is defined")
            continue
        if b not in table:
            raise WbxmlError(f"unknown attribute token 0x{b:02x} at offset {r.pos - 1}")
        name, prefix = table[b]
        value = _read_value(r)
        if isinstance(value, bytes):
            if prefix:
                raise WbxmlError(f"OPAQUE value after a prefixed {name}")
            out[name] = value
        else:
            out[name] = prefix + value
    # unreachable


def _read_content_text(r: _Reader) -> str:
    parts: list[str] = []
    while True:
        b = r.byte()
        if b == END:
            return "".join(parts)
        if b == STR_I:
            parts.append(_text(r.cstring()))
        elif b == STR_T:
            parts.append(_text(r.table_string(r.uintvar())))
        elif b == ENTITY:
            parts.append(chr(r.uintvar()))
        else:
            raise WbxmlError(f"unexpected token 0x{b:02x} in text at offset {r.pos - 1}")


def _skip_element(r: _Reader, tag: int) -> None:
    """Skip an element we do not keep (SI ``<info>``), with its attributes and content."""
    if tag & TAG_ATTRS:
        _read_attrs(r, SI_ATTRS)
    if not tag & TAG_CONTENT:
        return
    while True:
        b = r.byte()
        if b == END:
            return
        if b in (STR_I,):
            r.cstring()
        elif b == STR_T or b == ENTITY:
            r.uintvar()
        elif b == OPAQUE:
            r.take(r.uintvar())
        else:
            _skip_element(r, b)


def _start(data: bytes) -> tuple[_Reader, int]:
    r = _Reader(bytes(data))
    version = r.byte()
    if version not in (0x01, 0x02, 0x03):
        raise WbxmlError(f"WBXML version 0x{version:02x} not supported (1.1-1.3)")
    public_id = r.uintvar()
    if public_id == 0:
        raise WbxmlError("public identifier in the string table is not supported")
    charset = r.uintvar()
    if charset not in (CHARSET_UTF8, 0x04, 0x03):  # UTF-8, latin-1 (read as its ASCII part), ASCII
        raise WbxmlError(f"charset MIBenum {charset} not supported")
    r.strtbl = r.take(r.uintvar())
    return r, public_id


def _str_attr(values: dict[str, str | bytes], name: str) -> str | None:
    v = values.get(name)
    if v is None:
        return None
    return v.decode("latin-1") if isinstance(v, bytes) else v


def _date_attr(values: dict[str, str | bytes], name: str) -> dt.datetime | None:
    v = values.get(name)
    if v is None:
        return None
    if isinstance(v, bytes):
        return decode_date(v)
    try:  # a date written as a string (ISO 8601 "1999-06-25T15:23:15Z")
        return dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise WbxmlError(f"bad {name} date {v!r}") from None


def decode(data: bytes) -> ServiceIndication | ServiceLoading:
    """An SI or SL document from its WBXML; raises :class:`WbxmlError` on anything else."""
    r, public_id = _start(data)
    tag = r.byte()
    if public_id == PUBLIC_ID_SL:
        if tag & 0x3F != SL_TAG_SL or not tag & TAG_ATTRS:
            raise WbxmlError(f"expected <sl> with attributes, got token 0x{tag:02x}")
        values = _read_attrs(r, SL_ATTRS)
        if tag & TAG_CONTENT and r.byte() != END:
            raise WbxmlError("<sl> has no content")
        href = _str_attr(values, "href")
        if href is None:
            raise WbxmlError("<sl> without href")
        return ServiceLoading(href=href, action=_str_attr(values, "action") or "execute-low")
    if public_id != PUBLIC_ID_SI:
        raise WbxmlError(f"public identifier 0x{public_id:02x} is neither SI (0x05) nor SL (0x06)")
    if tag & 0x3F != SI_TAG_SI or not tag & TAG_CONTENT:
        raise WbxmlError(f"expected <si> with content, got token 0x{tag:02x}")
    found: ServiceIndication | None = None
    while True:
        b = r.byte()
        if b == END:
            break
        if b & 0x3F == SI_TAG_INDICATION:
            values = _read_attrs(r, SI_ATTRS) if b & TAG_ATTRS else {}
            text = _read_content_text(r) if b & TAG_CONTENT else ""
            found = ServiceIndication(
                href=_str_attr(values, "href"),
                text=text,
                si_id=_str_attr(values, "si-id"),
                created=_date_attr(values, "created"),
                expires=_date_attr(values, "si-expires"),
                action=_str_attr(values, "action") or "signal-medium",
            )
        elif b & 0x3F == SI_TAG_INFO:
            _skip_element(r, b)
        else:
            raise WbxmlError(f"unexpected token 0x{b:02x} in <si> at offset {r.pos - 1}")
    if found is None:
        raise WbxmlError("<si> without <indication>")
    return found
