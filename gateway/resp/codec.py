"""Sans-IO RESP2 codec (Redis protocol specification, "RESP protocol description").

Replies: ``+simple`` -> :class:`str`, ``-error`` -> :class:`ErrorReply` (a value, not raised:
in a pipeline one failed command must not hide the others), ``:int`` -> :class:`int`,
``$bulk`` -> :class:`bytes` (``$-1`` -> None), ``*array`` -> :class:`list` (``*-1`` -> None).
Commands are arrays of bulk strings.

:class:`RespParser` takes bytes with :meth:`~RespParser.receive_data` and hands out whole
replies with :meth:`~RespParser.next_reply` (or :data:`NEED_DATA`). Buffers are capped;
malformed input raises :class:`RemoteProtocolError`. No I/O, no logging.
"""

from __future__ import annotations

from typing import Any

NEED_DATA: Any = type("NeedData", (), {"__repr__": lambda self: "NEED_DATA"})()

MAX_BULK = 512 * 1024 * 1024  # the Redis proto-max-bulk-len default
MAX_DEPTH = 32
MAX_ARRAY = 16 * 1024 * 1024
MAX_LINE = 64 * 1024


class LocalProtocolError(ValueError):
    """We were asked to encode something RESP cannot carry (a hint says what)."""


class RemoteProtocolError(ValueError):
    """The peer sent bytes that are not RESP2 (or exceed our caps); the connection is unusable."""


class ErrorReply:
    """A ``-ERR ...`` reply. ``kind`` is the first word (``ERR``, ``NOSCRIPT``, ``WRONGTYPE``)."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message

    @property
    def kind(self) -> str:
        return self.message.split(" ", 1)[0]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ErrorReply) and other.message == self.message

    def __hash__(self) -> int:
        return hash(self.message)

    def __repr__(self) -> str:
        return f"ErrorReply({self.message!r})"


def _arg_bytes(arg: Any) -> bytes:
    if isinstance(arg, bytes):
        return arg
    if isinstance(arg, str):
        return arg.encode()
    if isinstance(arg, bool):
        raise LocalProtocolError("booleans have no RESP form; pass 0/1 or a string")
    if isinstance(arg, int):
        return b"%d" % arg
    if isinstance(arg, float):
        return repr(arg).encode()
    raise LocalProtocolError(f"cannot send {type(arg).__name__} as a command argument")


def encode_command(*args: Any) -> bytes:
    """``encode_command("SET", "k", 1)`` -> the RESP array of bulk strings."""
    if not args:
        raise LocalProtocolError("a command needs at least its name")
    out = [b"*%d\r\n" % len(args)]
    append = out.append
    for arg in args:
        # exact-type fast paths first: this runs ~15 times per contact decision on Redis
        kind = type(arg)
        if kind is str:
            b = arg.encode()
        elif kind is int:
            b = b"%d" % arg
        else:
            b = _arg_bytes(arg)
        append(b"$%d\r\n%b\r\n" % (len(b), b))
    return b"".join(out)


class _Incomplete(Exception):
    pass


class RespParser:
    """Incremental RESP2 reply parser."""

    def __init__(self, *, max_buffer: int = MAX_BULK + 1024) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._max_buffer = max_buffer

    def receive_data(self, data: bytes) -> None:
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data
        if len(self._buf) > self._max_buffer:
            raise RemoteProtocolError(f"reply larger than {self._max_buffer} bytes")

    def next_reply(self) -> Any:
        """The next whole reply, or NEED_DATA. Raises RemoteProtocolError on bad bytes."""
        start = self._pos
        try:
            value, self._pos = self._parse(start, 0)
        except _Incomplete:
            self._pos = start
            return NEED_DATA
        return value

    def replies(self) -> list[Any]:
        """Every whole reply available now."""
        out = []
        while (r := self.next_reply()) is not NEED_DATA:
            out.append(r)
        return out

    def _line(self, pos: int) -> tuple[bytes, int]:
        buf = self._buf
        end = buf.find(b"\r\n", pos)
        if end < 0:
            if len(buf) - pos > MAX_LINE:
                raise RemoteProtocolError("header line too long")
            raise _Incomplete
        return bytes(buf[pos:end]), end + 2

    def _int(self, text: bytes) -> int:
        if not text or not (text.isdigit() or (text[:1] == b"-" and text[1:].isdigit())):
            raise RemoteProtocolError(f"not an integer: {text[:40]!r}")
        return int(text)

    def _parse(self, pos: int, depth: int) -> tuple[Any, int]:
        buf = self._buf
        if pos >= len(buf):
            raise _Incomplete
        kind = buf[pos]
        line, pos = self._line(pos + 1)
        if kind == 0x2B:  # +
            return _text(line), pos
        if kind == 0x2D:  # -
            return ErrorReply(_text(line)), pos
        if kind == 0x3A:  # :
            return self._int(line), pos
        if kind == 0x24:  # $
            n = self._int(line)
            if n == -1:
                return None, pos
            if n < 0 or n > MAX_BULK:
                raise RemoteProtocolError(f"bad bulk length {n}")
            if len(buf) < pos + n + 2:
                raise _Incomplete
            if buf[pos + n : pos + n + 2] != b"\r\n":
                raise RemoteProtocolError("bulk string not terminated by CRLF")
            return bytes(buf[pos : pos + n]), pos + n + 2
        if kind == 0x2A:  # *
            n = self._int(line)
            if n == -1:
                return None, pos
            if n < 0 or n > MAX_ARRAY:
                raise RemoteProtocolError(f"bad array length {n}")
            if depth >= MAX_DEPTH:
                raise RemoteProtocolError("arrays nested too deeply")
            items = []
            for _ in range(n):
                item, pos = self._parse(pos, depth + 1)
                items.append(item)
            return items, pos
        raise RemoteProtocolError(f"unknown reply type byte {bytes([kind])!r}")


def _text(line: bytes) -> str:
    try:
        return line.decode()
    except UnicodeDecodeError:
        raise RemoteProtocolError("simple string or error is not UTF-8") from None
