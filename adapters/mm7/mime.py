"""multipart/related bodies (RFC 2387 on the framing of RFC 2046 section 5.1), as MM7 uses them.

An MM7 request is "SOAP with attachments": a ``multipart/related`` body whose start part is
the SOAP envelope (``text/xml``) and whose other part is the multimedia message itself, itself
a ``multipart/related`` (SMIL presentation first, then text and images), referenced from the
envelope by its ``Content-ID`` (3GPP TS 23.140 section 8.4.3; an MMS without SMIL may be
``multipart/mixed``).

Sans-IO: bytes in, :class:`Part` values out, and back. Parsing is capped (body size, part
count, header size, nesting through :func:`parse_multipart` calls made by the caller) and
raises :class:`~adapters.mm7.errors.RemoteMM7Error` on anything it cannot read. Encoding
chooses a boundary that occurs in no part and base64 for every body that is not text.
"""

from __future__ import annotations

import base64
import binascii
import quopri
import secrets
from collections.abc import Sequence

import attrs

from adapters.mm7.errors import LocalMM7Error, RemoteMM7Error

MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_PARTS = 64
MAX_HEADER_BYTES = 16 * 1024

#: Media types sent as 8-bit text; every other body goes as base64.
_TEXT_TYPES = ("text/", "application/smil", "application/xml", "application/soap+xml")


@attrs.frozen(kw_only=True)
class Part:
    """One body part: its decoded bytes and the headers MM7 uses. ``content_type`` is the whole
    header value (``image/jpeg``, ``text/plain; charset=utf-8``, ``multipart/related;
    boundary=...`` for a nested multipart, whose ``body`` is the encoded multipart)."""

    content_type: str
    body: bytes
    content_id: str | None = None  # without the angle brackets
    content_location: str | None = None

    @property
    def media_type(self) -> str:
        return parse_content_type(self.content_type)[0]

    @property
    def params(self) -> dict[str, str]:
        return parse_content_type(self.content_type)[1]


def parse_content_type(value: str) -> tuple[str, dict[str, str]]:
    """``("multipart/related", {"boundary": "b", "type": "text/xml"})`` from a header value.

    Media type and parameter names are lower-cased; quoted values are unquoted (RFC 2045
    section 5.1). Raises RemoteMM7Error on a value without a ``type/subtype``.
    """
    head, _, rest = value.partition(";")
    media_type = head.strip().lower()
    if media_type.count("/") != 1 or not all(media_type.split("/")):
        raise RemoteMM7Error(f"bad content type {value!r}", status=2007)
    params: dict[str, str] = {}
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in " \t;":
            i += 1
        eq = rest.find("=", i)
        if eq < 0:
            break
        name = rest[i:eq].strip().lower()
        i = eq + 1
        while i < n and rest[i] in " \t":
            i += 1
        if i < n and rest[i] == '"':
            chars: list[str] = []
            i += 1
            while i < n and rest[i] != '"':
                if rest[i] == "\\" and i + 1 < n:
                    i += 1
                chars.append(rest[i])
                i += 1
            i += 1
            params[name] = "".join(chars)
        else:
            end = rest.find(";", i)
            end = n if end < 0 else end
            params[name] = rest[i:end].strip()
            i = end
        if name == "":
            raise RemoteMM7Error(f"bad content type parameter in {value!r}", status=2007)
    return media_type, params


def quote(value: str) -> str:
    """A parameter value as an RFC 2045 quoted string."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# -- encoding ------------------------------------------------------------------------------


def _header_value(name: str, value: str) -> str:
    if any(c in value for c in "\r\n\0") or not value.isascii():
        raise LocalMM7Error(f"{name} must be ASCII on one line, got {value!r}")
    return value


def _encode_part(part: Part) -> bytes:
    media_type = part.media_type
    lines = [f"Content-Type: {_header_value('Content-Type', part.content_type)}"]
    if media_type.startswith("multipart/"):
        body = part.body  # already framed: 7bit/8bit, never re-encoded (RFC 2046 5.1)
    elif media_type.startswith(_TEXT_TYPES):
        lines.append("Content-Transfer-Encoding: 8bit")
        body = part.body
    else:
        lines.append("Content-Transfer-Encoding: base64")
        body = base64.encodebytes(part.body).replace(b"\n", b"\r\n")
    if part.content_id is not None:
        lines.append(f"Content-ID: <{_header_value('Content-ID', part.content_id)}>")
    if part.content_location is not None:
        lines.append(
            f"Content-Location: {_header_value('Content-Location', part.content_location)}"
        )
    return "\r\n".join(lines).encode("ascii") + b"\r\n\r\n" + body


def encode_multipart(
    parts: Sequence[Part],
    *,
    subtype: str = "related",
    params: Sequence[tuple[str, str]] = (),
    boundary: str | None = None,
) -> tuple[str, bytes]:
    """Frame ``parts`` as ``multipart/<subtype>``: returns ``(content_type, body)``.

    ``params`` are extra Content-Type parameters (``("type", "text/xml")``, ``("start",
    "<id>")``). The boundary is random unless given, and is checked against every encoded
    part (a given boundary that occurs in a part raises LocalMM7Error).
    """
    if not parts:
        raise LocalMM7Error("a multipart body needs at least one part")
    encoded = [_encode_part(p) for p in parts]
    if boundary is None:
        while True:
            boundary = "=_mm7_" + secrets.token_hex(12)
            if not any(boundary.encode() in e for e in encoded):
                break
    elif any(f"--{boundary}".encode() in e for e in encoded) or not 0 < len(boundary) <= 70:
        raise LocalMM7Error(f"boundary {boundary!r} is too long or occurs in a part")
    delimiter = b"--" + boundary.encode("ascii")
    body = b"".join(delimiter + b"\r\n" + e + b"\r\n" for e in encoded) + delimiter + b"--\r\n"
    header = f"multipart/{subtype}; boundary={quote(boundary)}" + "".join(
        f"; {name}={quote(value)}" for name, value in params
    )
    return _header_value("Content-Type", header), body


# -- parsing -------------------------------------------------------------------------------


def parse_headers(block: bytes) -> dict[str, str]:
    """Header lines (unfolded, names lower-cased; a repeated header keeps the first)."""
    if len(block) > MAX_HEADER_BYTES:
        raise RemoteMM7Error("part headers too large", status=2007)
    headers: dict[str, str] = {}
    text = block.decode("latin-1").replace("\r\n", "\n")
    name = ""
    for line in text.split("\n"):
        if not line:
            continue
        if line[0] in " \t" and name:
            headers[name] += " " + line.strip()
            continue
        key, sep, value = line.partition(":")
        if not sep or not key.strip():
            raise RemoteMM7Error(f"bad header line {line[:60]!r}", status=2007)
        name = key.strip().lower()
        if name in headers:
            name = ""  # a repeated header: keep the first, ignore its continuation lines
            continue
        headers[name] = value.strip()
    return headers


def _split_head(raw: bytes) -> tuple[bytes, bytes]:
    for blank in (b"\r\n", b"\n"):
        if raw.startswith(blank):  # no headers at all
            return b"", raw[len(blank) :]
    found = [(at, sep) for sep in (b"\r\n\r\n", b"\n\n") if (at := raw.find(sep)) >= 0]
    if not found:
        raise RemoteMM7Error("a body part has no blank line after its headers", status=2007)
    at, sep = min(found)
    return raw[:at], raw[at + len(sep) :]


def _decode_body(encoding: str, body: bytes) -> bytes:
    encoding = encoding.lower() or "7bit"
    if encoding in ("7bit", "8bit", "binary"):
        return body
    if encoding == "base64":
        try:
            return base64.b64decode(b"".join(body.split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise RemoteMM7Error(f"bad base64 body ({exc})", status=2007) from exc
    if encoding == "quoted-printable":
        try:
            return quopri.decodestring(body)
        except binascii.Error as exc:  # pragma: no cover - quopri is lenient
            raise RemoteMM7Error(f"bad quoted-printable body ({exc})", status=2007) from exc
    raise RemoteMM7Error(f"unknown Content-Transfer-Encoding {encoding!r}", status=2007)


def _strip_id(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value[1:-1] if value.startswith("<") and value.endswith(">") else value


def parse_part(raw: bytes) -> Part:
    """One body part (headers, blank line, body) into a :class:`Part` with its body decoded."""
    head, body = _split_head(raw)
    headers = parse_headers(head)
    content_type = headers.get("content-type", "text/plain; charset=us-ascii")
    media_type, _ = parse_content_type(content_type)
    encoding = headers.get("content-transfer-encoding", "")
    if media_type.startswith("multipart/") and encoding.lower() not in (
        "",
        "7bit",
        "8bit",
        "binary",
    ):
        raise RemoteMM7Error("a multipart part must not be transfer-encoded", status=2007)
    return Part(
        content_type=content_type,
        body=_decode_body(encoding, body),
        content_id=_strip_id(headers.get("content-id")),
        content_location=headers.get("content-location"),
    )


def parse_multipart(content_type: str, body: bytes) -> list[Part]:
    """The parts of a multipart body, given its Content-Type header value.

    Follows RFC 2046 section 5.1.1: the preamble before the first delimiter and the epilogue
    after the close delimiter are ignored; a delimiter is ``--boundary`` at the start of a
    line, the CRLF before it belongs to it. Bare LF line ends are accepted too.
    """
    if len(body) > MAX_BODY_BYTES:
        raise RemoteMM7Error(f"body larger than {MAX_BODY_BYTES} bytes", status=2007)
    media_type, params = parse_content_type(content_type)
    boundary = params.get("boundary", "")
    if not media_type.startswith("multipart/") or not boundary:
        raise RemoteMM7Error(f"not a multipart body: {content_type!r}", status=2007)
    delimiter = b"--" + boundary.encode("latin-1")
    # Positions of every delimiter that starts a line.
    starts: list[int] = []
    at = 0 if body.startswith(delimiter) else -1
    if at < 0:
        at = _next_delimiter(body, delimiter, 0)
    while at >= 0:
        starts.append(at)
        if len(starts) > MAX_PARTS + 1:
            raise RemoteMM7Error(f"more than {MAX_PARTS} parts", status=2007)
        at = _next_delimiter(body, delimiter, at + len(delimiter))
    parts: list[Part] = []
    for i, start in enumerate(starts):
        after = start + len(delimiter)
        if body.startswith(b"--", after):
            return parts  # the close delimiter
        line_end = body.find(b"\n", after)
        if line_end < 0 or body[after:line_end].strip(b" \t\r"):
            raise RemoteMM7Error("junk after a boundary delimiter", status=2007)
        if i + 1 == len(starts):
            break
        end = starts[i + 1]
        chunk = body[line_end + 1 : end]
        chunk = chunk[:-2] if chunk.endswith(b"\r\n") else chunk[:-1]  # the delimiter's line end
        parts.append(parse_part(chunk))
    raise RemoteMM7Error("multipart body without its close delimiter", status=2007)


def _next_delimiter(body: bytes, delimiter: bytes, start: int) -> int:
    at = body.find(b"\n" + delimiter, start)
    return at + 1 if at >= 0 else -1
