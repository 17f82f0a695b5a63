"""FreeSWITCH event socket (ESL) line protocol, sans-IO.

The event socket (FreeSWITCH documentation, "mod_event_socket") in inbound mode: the client
connects to FreeSWITCH (port 8021), which sends ``Content-Type: auth/request``; the client
answers ``auth <password>``. Every command is one line (``api ...``, ``bgapi ...``,
``event plain ...``) plus optional header lines, ended by an empty line. Every message from the
server is a block of ``Key: Value`` lines ended by an empty line (LF only), followed by
``Content-Length`` bytes of body when that header is present. The body of a
``text/event-plain`` message is itself a header block (values URL-encoded) and may carry a body
of its own (a ``BACKGROUND_JOB`` result, ``+OK ...`` or ``-ERR CAUSE``).

No I/O, no logging: the Trio transport is :mod:`adapters.esl.client`.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import unquote

import attrs

MAX_HEADERS = 16 * 1024
MAX_BODY = 1024 * 1024


class EslError(Exception):
    """Root of the event-socket adapter's errors."""


class RemoteProtocolError(EslError):
    """FreeSWITCH sent something that is not the event-socket protocol."""


class LocalProtocolError(EslError):
    """A command we were asked to send cannot be written (a line break inside it)."""


def _headers(block: str, *, decode: bool) -> tuple[tuple[str, str], ...]:
    out = []
    for line in block.split("\n"):
        if not line:
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise RemoteProtocolError(f"event-socket line without 'Key:': {line[:80]!r}")
        value = value.strip()
        out.append((key.strip(), unquote(value) if decode else value))
    return tuple(out)


@attrs.frozen(kw_only=True, slots=True)
class EslMessage:
    """One message from FreeSWITCH: its outer headers and body."""

    headers: tuple[tuple[str, str], ...]
    body: bytes = b""

    def get(self, key: str, default: str | None = None) -> str | None:
        lowered = key.lower()
        for k, v in self.headers:
            if k.lower() == lowered:
                return v
        return default

    @property
    def content_type(self) -> str:
        return self.get("Content-Type") or ""

    def event(self) -> EslEvent | None:
        """The event inside a ``text/event-plain`` message, else None."""
        if self.content_type != "text/event-plain":
            return None
        text = self.body.decode("utf-8", "replace")
        block, sep, rest = text.partition("\n\n")
        headers = _headers(block, decode=True)
        event = EslEvent(headers=headers)
        length = event.get("Content-Length")
        if sep and length is not None and length.isdigit():
            return attrs.evolve(event, body=rest[: int(length)])
        return event


@attrs.frozen(kw_only=True, slots=True)
class EslEvent:
    """A FreeSWITCH event: ``Event-Name``, ``Unique-ID`` and the rest, URL-decoded."""

    headers: tuple[tuple[str, str], ...]
    body: str = ""

    def get(self, key: str, default: str | None = None) -> str | None:
        lowered = key.lower()
        for k, v in self.headers:
            if k.lower() == lowered:
                return v
        return default

    @property
    def name(self) -> str:
        return self.get("Event-Name") or ""


@attrs.define
class EslParser:
    """Bytes from FreeSWITCH in, :class:`EslMessage` values out (``None``: need more data)."""

    _buffer: bytearray = attrs.field(factory=bytearray)
    _pending: tuple[tuple[tuple[str, str], ...], int] | None = None
    _closed: bool = False

    def receive_data(self, data: bytes) -> None:
        if not data:
            self._closed = True
            return
        self._buffer += data
        if self._pending is None and len(self._buffer) > MAX_HEADERS:
            if self._buffer.find(b"\n\n", 0, MAX_HEADERS + 2) < 0:
                raise RemoteProtocolError(f"event-socket headers over {MAX_HEADERS} bytes")

    def next_message(self) -> EslMessage | None:
        if self._pending is None:
            while self._buffer.startswith(b"\n"):
                del self._buffer[:1]
            end = self._buffer.find(b"\n\n")
            if end < 0:
                if self._closed and self._buffer:
                    raise RemoteProtocolError("connection closed inside event-socket headers")
                return None
            headers = _headers(bytes(self._buffer[:end]).decode("utf-8", "replace"), decode=False)
            del self._buffer[: end + 2]
            length = 0
            for k, v in headers:
                if k.lower() == "content-length":
                    if not v.isdigit() or int(v) > MAX_BODY:
                        raise RemoteProtocolError(f"bad Content-Length {v[:20]!r}")
                    length = int(v)
            self._pending = (headers, length)
        headers, length = self._pending
        if len(self._buffer) < length:
            if self._closed:
                raise RemoteProtocolError("connection closed inside an event-socket body")
            return None
        body = bytes(self._buffer[:length])
        del self._buffer[:length]
        self._pending = None
        return EslMessage(headers=headers, body=body)


def command(line: str, headers: Mapping[str, str] | None = None) -> bytes:
    """Encode one command (``auth x``, ``bgapi originate ...``) with optional header lines."""
    parts = [line, *(f"{k}: {v}" for k, v in (headers or {}).items())]
    for part in parts:
        if "\n" in part or "\r" in part:
            raise LocalProtocolError("an event-socket command is one line")
    return ("\n".join(parts) + "\n\n").encode("utf-8")


def originate_command(
    call_id: str,
    dial: str,
    target: str,
    variables: Mapping[str, str] | None = None,
    *,
    timeout: float = 30.0,
) -> str:
    """``originate {origination_uuid=...,vars}DIAL TARGET`` (``&park()`` or ``EXT XML CTX``).

    Values go in the ``{}`` block, whose separator is ``,``: a comma in a value is escaped."""
    pairs = {"origination_uuid": call_id, "originate_timeout": str(int(timeout))}
    pairs.update(variables or {})
    for key, value in pairs.items():
        if any(c in key for c in "{}=, ") or "}" in value or "'" in value:
            raise LocalProtocolError(f"originate variable {key!r} cannot be written")
    # A value with spaces is single-quoted (FreeSWITCH splits the command line on spaces).
    block = ",".join(
        k + "=" + (f"'{v}'" if " " in v else v).replace(",", "\\,") for k, v in pairs.items()
    )
    return f"originate {{{block}}}{dial} {target}"


# --------------------------------------------------------------------------------------------
# Calls: events of the originated channel into one result
# --------------------------------------------------------------------------------------------

#: ``Hangup-Cause`` of a channel never answered (Q.850 names) -> the call result.
HANGUP_CAUSES = {
    "USER_BUSY": "busy",
    "NO_ANSWER": "no_answer",
    "NO_USER_RESPONSE": "no_answer",
    "ALLOTTED_TIMEOUT": "no_answer",
    "CALL_REJECTED": "rejected",
    "UNALLOCATED_NUMBER": "unreachable",
    "NO_ROUTE_DESTINATION": "unreachable",
    "SUBSCRIBER_ABSENT": "unreachable",
    "NETWORK_OUT_OF_ORDER": "failed",
    "NORMAL_TEMPORARY_FAILURE": "failed",
}


def hangup_result(cause: str | None) -> str:
    return HANGUP_CAUSES.get((cause or "").upper(), "failed")


@attrs.frozen(kw_only=True, slots=True)
class CallEnd:
    """How one originated call ended (same fields as :class:`adapters.ami.protocol.CallEnd`)."""

    call_id: str
    result: str
    started_at: float
    answered_at: float | None = None
    ended_at: float = 0.0
    digits: str = ""
    cause: str | None = None

    @property
    def duration(self) -> float:
        return 0.0 if self.answered_at is None else max(0.0, self.ended_at - self.answered_at)


@attrs.define
class _Progress:
    started_at: float
    answered_at: float | None = None
    digits: str = ""


@attrs.define
class EslCalls:
    """Follows our calls (``origination_uuid`` = call id = ``Unique-ID``; the ``bgapi`` job is
    sent with ``Job-UUID`` = call id too) and says when each ended: ``CHANNEL_ANSWER``,
    ``DTMF`` (``DTMF-Digit``), ``CHANNEL_HANGUP_COMPLETE`` (``Hangup-Cause``), or a
    ``BACKGROUND_JOB`` whose result is ``-ERR CAUSE`` (the call failed before a channel)."""

    _calls: dict[str, _Progress] = attrs.field(factory=dict)

    def start(self, call_id: str, at: float) -> None:
        self._calls[call_id] = _Progress(started_at=at)

    def forget(self, call_id: str) -> None:
        self._calls.pop(call_id, None)

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._calls

    def feed(self, event: EslEvent, at: float) -> CallEnd | None:
        name = event.name
        if name == "BACKGROUND_JOB":
            call_id = event.get("Job-UUID") or ""
            if call_id in self._calls and event.body.startswith("-ERR"):
                cause = event.body[4:].strip() or None
                return self._end(call_id, hangup_result(cause), at, cause)
            return None
        call_id = event.get("Unique-ID") or ""
        progress = self._calls.get(call_id)
        if progress is None:
            return None
        if name == "CHANNEL_ANSWER":
            if progress.answered_at is None:
                progress.answered_at = at
        elif name == "DTMF":
            progress.digits += event.get("DTMF-Digit") or ""
        elif name == "CHANNEL_HANGUP_COMPLETE":
            cause = event.get("Hangup-Cause")
            result = "answered" if progress.answered_at is not None else hangup_result(cause)
            return self._end(call_id, result, at, cause)
        return None

    def _end(self, call_id: str, result: str, at: float, cause: str | None) -> CallEnd:
        p = self._calls.pop(call_id)
        return CallEnd(
            call_id=call_id,
            result=result,
            started_at=p.started_at,
            answered_at=p.answered_at if result == "answered" else None,
            ended_at=at,
            digits=p.digits,
            cause=cause,
        )
