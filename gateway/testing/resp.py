"""A RESP2 reply encoder: the inverse of :class:`gateway.resp.RespParser`, for tests and fakes.

The gateway only ever *parses* replies (it is a Redis client); encoding them is what a fake
Redis server or a round-trip property test needs, so it lives here and not in the codec.
"""

from __future__ import annotations

from typing import Any

from gateway.resp import ErrorReply, LocalProtocolError


def encode_reply(value: Any) -> bytes:
    """Encode a reply value: the inverse of the parser."""
    if value is None:
        return b"$-1\r\n"
    if isinstance(value, ErrorReply):
        if "\r" in value.message or "\n" in value.message:
            raise LocalProtocolError("an error message cannot contain CR or LF")
        return b"-" + value.message.encode() + b"\r\n"
    if isinstance(value, str):
        if "\r" in value or "\n" in value:
            raise LocalProtocolError("a simple string cannot contain CR or LF")
        return b"+" + value.encode() + b"\r\n"
    if isinstance(value, bool):
        raise LocalProtocolError("booleans have no RESP2 form")
    if isinstance(value, int):
        return b":%d\r\n" % value
    if isinstance(value, bytes):
        return b"$%d\r\n%b\r\n" % (len(value), value)
    if isinstance(value, list | tuple):
        return b"*%d\r\n" % len(value) + b"".join(encode_reply(v) for v in value)
    raise LocalProtocolError(f"cannot encode {type(value).__name__} as a reply")
