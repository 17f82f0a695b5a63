"""Asterisk Manager Interface (AMI) line protocol, sans-IO.

AMI is a text protocol over TCP (Asterisk documentation, "AMI v2 Specification"): the server
greets with one banner line (``Asterisk Call Manager/5.0.1``), then both sides exchange
*messages*: ``Key: Value`` lines ended by CRLF, a message ended by an empty line. A message
from the client is an *action* (``Action: Originate``) carrying an ``ActionID`` that the server
copies into its *response* (``Response: Success|Error``); everything else the server sends is
an *event* (``Event: Hangup``).

This module only turns bytes into :class:`AmiMessage` values and back, and computes the MD5
challenge login key (``Action: Challenge`` then ``Login`` with ``AuthType: MD5`` and
``Key = md5(challenge + secret)``). No I/O, no logging: the Trio transport is
:mod:`adapters.ami.client`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

import attrs

#: One message may not exceed this (a Status list entry is under 2 KiB; 64 KiB is generous).
MAX_MESSAGE = 64 * 1024
#: The banner line is short; anything longer is not an AMI server.
MAX_BANNER = 256


class AmiError(Exception):
    """Root of the AMI adapter's errors."""


class RemoteProtocolError(AmiError):
    """The peer sent something that is not AMI (no banner, an over-long message, a bad line)."""


class LocalProtocolError(AmiError):
    """We were asked to send something AMI cannot carry (CR/LF inside a value, a bad key)."""


@attrs.frozen(kw_only=True, slots=True)
class AmiMessage:
    """One AMI message: its header lines in order (keys keep their case; lookup ignores it)."""

    headers: tuple[tuple[str, str], ...]

    def get(self, key: str, default: str | None = None) -> str | None:
        """The first value of ``key`` (case-insensitive), or ``default``."""
        lowered = key.lower()
        for k, v in self.headers:
            if k.lower() == lowered:
                return v
        return default

    def get_all(self, key: str) -> list[str]:
        """Every value of ``key`` (``Variable:`` lines may repeat)."""
        lowered = key.lower()
        return [v for k, v in self.headers if k.lower() == lowered]

    @property
    def event(self) -> str | None:
        return self.get("Event")

    @property
    def response(self) -> str | None:
        return self.get("Response")

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")

    @classmethod
    def build(cls, first: tuple[str, str], fields: Mapping[str, str] | None = None) -> AmiMessage:
        """A message whose first line is ``first`` (``("Action", "Originate")``)."""
        return cls(headers=(first, *((fields or {}).items())))


def encode(message: AmiMessage | Iterable[tuple[str, str]]) -> bytes:
    """The wire form of a message: ``Key: Value\\r\\n`` lines and an empty line."""
    headers = message.headers if isinstance(message, AmiMessage) else tuple(message)
    out = []
    for key, value in headers:
        if not key or any(c in key for c in ":\r\n") or key != key.strip():
            raise LocalProtocolError(f"bad AMI header name {key!r}")
        if "\r" in value or "\n" in value:
            raise LocalProtocolError(f"AMI header {key} has a line break in its value")
        out.append(f"{key}: {value}\r\n")
    out.append("\r\n")
    return "".join(out).encode("utf-8")


def action(name: str, action_id: str, fields: Mapping[str, str] | None = None) -> bytes:
    """Encode ``Action: name`` with ``ActionID`` and ``fields``."""
    headers = [("Action", name), ("ActionID", action_id)]
    headers.extend((fields or {}).items())
    return encode(headers)


def md5_key(challenge: str, secret: str) -> str:
    """The ``Key`` of an MD5 challenge login: hex MD5 of the challenge followed by the secret."""
    return hashlib.md5((challenge + secret).encode("utf-8")).hexdigest()


@attrs.define
class AmiParser:
    """Bytes from the server in, the banner and :class:`AmiMessage` values out.

    Feed with :meth:`receive_data`; call :meth:`next_message` until it returns None (more data
    needed). The banner is available as :attr:`banner` once read. ``receive_data(b"")`` marks
    the end of the stream; a half message at that point is a :class:`RemoteProtocolError`.
    """

    banner: str | None = None
    _buffer: bytearray = attrs.field(factory=bytearray)
    _closed: bool = False
    expect_banner: bool = True

    def receive_data(self, data: bytes) -> None:
        if not data:
            self._closed = True
            return
        self._buffer += data
        limit = MAX_BANNER if self.banner is None and self.expect_banner else MAX_MESSAGE
        if len(self._buffer) > limit and self._complete_end() < 0:
            raise RemoteProtocolError(f"AMI message over {limit} bytes without its end")

    def _complete_end(self) -> int:
        if self.banner is None and self.expect_banner:
            return self._buffer.find(b"\r\n")
        return self._buffer.find(b"\r\n\r\n")

    def next_message(self) -> AmiMessage | None:
        """The next complete message, or None until more bytes arrive."""
        if self.banner is None and self.expect_banner:
            end = self._buffer.find(b"\r\n")
            if end < 0:
                self._check_eof()
                return None
            line = bytes(self._buffer[:end]).decode("utf-8", "replace")
            del self._buffer[: end + 2]
            if "/" not in line or not line.strip():
                raise RemoteProtocolError(f"not an AMI banner: {line[:80]!r}")
            self.banner = line
        # Some servers end with a bare "\r\n" keep-alive between messages: skip empty lines.
        while self._buffer.startswith(b"\r\n"):
            del self._buffer[:2]
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_MESSAGE:
                raise RemoteProtocolError(f"AMI message over {MAX_MESSAGE} bytes")
            self._check_eof()
            return None
        block = bytes(self._buffer[:end]).decode("utf-8", "replace")
        del self._buffer[: end + 4]
        headers = []
        for line in block.split("\r\n"):
            key, sep, value = line.partition(":")
            if not sep or not key.strip():
                raise RemoteProtocolError(f"AMI line without 'Key:': {line[:80]!r}")
            headers.append((key.strip(), value.strip()))
        return AmiMessage(headers=tuple(headers))

    def _check_eof(self) -> None:
        if self._closed and self._buffer.strip():
            raise RemoteProtocolError("connection closed inside an AMI message")


# --------------------------------------------------------------------------------------------
# Calls: OriginateResponse reasons and hangup causes into one result
# --------------------------------------------------------------------------------------------

#: ``Reason`` of an OriginateResponse event (Asterisk's AST_CONTROL_* of the dialled leg).
ORIGINATE_REASONS = {
    "0": "failed",  # no such channel or technology failure
    "1": "rejected",  # hung up before answer
    "3": "no_answer",  # rang until the timeout
    "4": "answered",
    "5": "busy",
    "8": "unreachable",  # congestion: network or subscriber not reachable
}

#: Q.850 cause codes of the ``Hangup`` event (``Cause``) that say why an unanswered call ended.
HANGUP_CAUSES = {
    "1": "unreachable",  # unallocated number
    "3": "unreachable",  # no route to destination
    "17": "busy",  # user busy
    "18": "no_answer",  # no user responding
    "19": "no_answer",  # no answer from user (user alerted)
    "20": "unreachable",  # subscriber absent (phone off)
    "21": "rejected",  # call rejected
    "34": "unreachable",  # no circuit available
    "38": "failed",  # network out of order
}


def hangup_result(cause: str | None) -> str:
    """The call result for a hangup ``Cause`` of a call never answered."""
    return HANGUP_CAUSES.get(cause or "", "failed")


@attrs.frozen(kw_only=True, slots=True)
class CallEnd:
    """How one originated call ended. ``result``: answered, busy, no_answer, rejected, failed,
    unreachable. ``digits``: the keys the subscriber pressed (DTMF or a dialplan UserEvent)."""

    call_id: str
    result: str
    started_at: float
    answered_at: float | None = None
    ended_at: float = 0.0
    digits: str = ""
    cause: str | None = None

    @property
    def duration(self) -> float:
        """Seconds from answer to hangup (0 for a call never answered)."""
        return 0.0 if self.answered_at is None else max(0.0, self.ended_at - self.answered_at)


@attrs.define
class _Progress:
    started_at: float
    answered_at: float | None = None
    digits: str = ""
    cause: str | None = None


@attrs.define
class AmiCalls:
    """Follows the calls we originated (``ChannelId`` = our call id = the ``Uniqueid`` of
    their events) and says when each one ended.

    Asterisk sends, for an ``Async`` Originate: ``OriginateResponse`` (``Response: Success``
    once answered, ``Failure`` with a ``Reason`` otherwise), then on the answered channel
    ``Newstate``, ``DTMFEnd`` (``Digit``, ``Direction: Received``; ``DTMF`` with ``End: Yes``
    on Asterisk 11), ``UserEvent`` (a dialplan may report the key with ``Key:``), ``VarSet``
    and finally ``Hangup`` with a Q.850 ``Cause``. ``digits_var`` names a channel variable
    whose ``VarSet`` also carries the key (a dialplan ``Read()`` result).
    """

    digits_var: str = "GW_KEY"
    _calls: dict[str, _Progress] = attrs.field(factory=dict)

    def start(self, call_id: str, at: float) -> None:
        self._calls[call_id] = _Progress(started_at=at)

    def forget(self, call_id: str) -> None:
        self._calls.pop(call_id, None)

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._calls

    def __len__(self) -> int:
        return len(self._calls)

    def feed(self, message: AmiMessage, at: float) -> CallEnd | None:
        """Apply one event; the call's :class:`CallEnd` when this event ended it."""
        name = message.event
        if name is None:
            return None
        call_id = message.get("Uniqueid") or message.get("ChannelId") or ""
        progress = self._calls.get(call_id)
        if progress is None:
            return None
        if name == "OriginateResponse":
            if (message.response or "").lower() == "success":
                if progress.answered_at is None:
                    progress.answered_at = at
                return None
            reason = message.get("Reason", "0") or "0"
            result = ORIGINATE_REASONS.get(reason, "failed")
            if reason in ("0", "1") and progress.cause is not None:
                result = hangup_result(progress.cause)
            return self._end(call_id, result, at)
        if name == "Newstate" and message.get("ChannelState") == "6":  # Up
            if progress.answered_at is None:
                progress.answered_at = at
        elif name in ("DTMFEnd", "DTMF"):
            if name == "DTMF" and (message.get("End") or "").lower() != "yes":
                return None
            if (message.get("Direction") or "Received").lower() == "received":
                progress.digits += message.get("Digit") or ""
        elif name == "UserEvent" and message.get("Key"):
            progress.digits += message.get("Key") or ""
        elif name == "VarSet" and message.get("Variable") == self.digits_var:
            progress.digits += message.get("Value") or ""
        elif name == "Hangup":
            progress.cause = message.get("Cause")
            if progress.answered_at is not None:
                return self._end(call_id, "answered", at)
            # Unanswered: the OriginateResponse that follows gives the result.
        return None

    def _end(self, call_id: str, result: str, at: float) -> CallEnd:
        p = self._calls.pop(call_id)
        return CallEnd(
            call_id=call_id,
            result=result,
            started_at=p.started_at,
            answered_at=p.answered_at if result == "answered" else None,
            ended_at=at,
            digits=p.digits,
            cause=p.cause,
        )
