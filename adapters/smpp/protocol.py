"""SMPP 3.4 framing and the ESME side of a session, sans-IO (SMPP 3.4 sections 2.2-2.9, 4).

Bytes in (:meth:`EsmeSession.receive_data`), events out (:meth:`EsmeSession.next_event`),
requests in (``send_*``), bytes out (:meth:`EsmeSession.data_to_send`). No I/O, no clock: the
caller passes ``now`` where a time matters (request timeouts). PDU bodies are encoded and
decoded by smpplib (``make_pdu`` / ``parse_pdu``), with sequence numbers set explicitly
(smpplib's own counter belongs to its blocking client, which we do not use), except the hot
ones (submit_sm and deliver_sm with their responses), which :mod:`.fastpdu` writes and reads
byte-identically to smpplib.

A PDU with a sane length but an unknown command or an undecodable body is answered with
generic_nack and reported as :class:`Garbage`: the session survives. A command_length outside
16..``max_pdu`` loses the framing: :class:`RemoteProtocolError` is raised and the connection
must be closed.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

import attrs
from smpplib import command_codes, consts, smpp

from adapters.smpp import fastpdu

HEADER = struct.Struct(">IIII")
MAX_PDU = 72_000  # a 64 KiB message_payload plus the rest of a submit_sm

# Command ids (SMPP 3.4 5.1.2.1)
GENERIC_NACK = 0x80000000
BIND_RECEIVER = 0x00000001
BIND_TRANSMITTER = 0x00000002
SUBMIT_SM = 0x00000004
SUBMIT_SM_RESP = 0x80000004
DELIVER_SM = 0x00000005
DELIVER_SM_RESP = 0x80000005
UNBIND = 0x00000006
UNBIND_RESP = 0x80000006
BIND_TRANSCEIVER = 0x00000009
ENQUIRE_LINK = 0x00000015
ENQUIRE_LINK_RESP = 0x80000015
QUERY_SM = 0x00000003
QUERY_SM_RESP = 0x80000003
DATA_SM = 0x00000103
DATA_SM_RESP = 0x80000103

# Command status values used by the gateway (SMPP 3.4 5.1.3)
ESME_ROK = consts.SMPP_ESME_ROK
ESME_RINVCMDLEN = consts.SMPP_ESME_RINVCMDLEN
ESME_RINVCMDID = consts.SMPP_ESME_RINVCMDID
ESME_RINVBNDSTS = consts.SMPP_ESME_RINVBNDSTS
ESME_RSYSERR = consts.SMPP_ESME_RSYSERR
ESME_RBINDFAIL = consts.SMPP_ESME_RBINDFAIL
ESME_RINVPASWD = consts.SMPP_ESME_RINVPASWD
ESME_RMSGQFUL = consts.SMPP_ESME_RMSGQFUL
ESME_RTHROTTLED = consts.SMPP_ESME_RTHROTTLED
ESME_RINVPARLEN = consts.SMPP_ESME_RINVPARLEN  # also: we could not encode the message
ESME_RX_T_APPN = 0x00000064  # ESME receiver temporary app error
ESME_RDELIVERYFAILURE = 0x000000FE

#: Statuses after which the same submit_sm may succeed later: keep the message and retry.
TRANSIENT_STATUSES = frozenset(
    {ESME_RMSGQFUL, ESME_RTHROTTLED, ESME_RSYSERR, ESME_RX_T_APPN, ESME_RDELIVERYFAILURE}
)
#: Statuses that mean "slow down" for the whole account (the SMSC's flow control).
#: ESME_RMSGQFUL is about one destination's queue: see SmscAccount.queue_full.
THROTTLE_STATUSES = frozenset({ESME_RTHROTTLED})

BIND_COMMANDS = {
    "transceiver": "bind_transceiver",
    "transmitter": "bind_transmitter",
    "receiver": "bind_receiver",
}
_KNOWN = {code: name for name, code in command_codes.commands.items()}


def status_name(status: int) -> str:
    for name, value in vars(consts).items():
        if name.startswith("SMPP_ESME_") and value == status:
            return name[5:]
    return f"0x{status:08X}"


class RemoteProtocolError(Exception):
    """The peer broke the framing (impossible command_length): close the connection."""

    def __init__(self, message: str, status: int = ESME_RINVCMDLEN) -> None:
        super().__init__(message)
        self.status = status


class LocalProtocolError(Exception):
    """We asked for something the session state does not allow (submit before bind...)."""


def header_only(command_id: int, status: int, sequence: int) -> bytes:
    """A PDU without a body (enquire_link, its response, unbind, generic_nack)."""
    return HEADER.pack(16, command_id, status, sequence)


def encode_pdu(command: str, sequence: int, status: int = ESME_ROK, **fields: Any) -> bytes:
    """Encode one PDU with smpplib, with our sequence number."""
    pdu = smpp.make_pdu(command, sequence=sequence, status=status, **fields)
    pdu.sequence = sequence  # smpplib ignores the keyword when its dummy client has one
    pdu.status = status
    return pdu.generate()


def decode_pdu(data: bytes) -> Any:
    """Decode one whole PDU with smpplib (unknown TLVs skipped). Raises on a bad body."""
    return smpp.parse_pdu(data, sequence=0, allow_unknown_opt_params=True)


class PduFramer:
    """Splits a byte stream into whole PDUs (several per read, or one across many reads)."""

    def __init__(self, max_pdu: int = MAX_PDU) -> None:
        self.max_pdu = max_pdu
        self._buf = bytearray()
        self._pos = 0

    def receive_data(self, data: bytes) -> None:
        if self._pos > 65536 and self._pos * 2 > len(self._buf):
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def next_pdu(self) -> bytes | None:
        """The next whole PDU, or None until more data arrives. Raises RemoteProtocolError."""
        buf, pos = self._buf, self._pos
        if len(buf) - pos < 4:
            return None
        length = int.from_bytes(buf[pos : pos + 4], "big")
        if length < 16 or length > self.max_pdu:
            raise RemoteProtocolError(f"command_length {length} outside 16..{self.max_pdu}")
        if len(buf) - pos < length:
            return None
        self._pos = pos + length
        return bytes(buf[pos : pos + length])

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._pos


# --------------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------------


@attrs.frozen(slots=True)
class BindResponse:
    status: int
    system_id: str


@attrs.frozen(slots=True)
class SubmitResponse:
    """Answer to our submit_sm (or a generic_nack naming its sequence: ``nacked``)."""

    sequence: int
    status: int
    message_id: str | None
    context: Any
    nacked: bool = False


@attrs.frozen(slots=True)
class DeliverSm:
    """A deliver_sm (receipt or MO). The caller must answer with :meth:`EsmeSession.send_deliver_sm_resp`."""

    sequence: int
    source_addr: str
    destination_addr: str
    esm_class: int
    data_coding: int
    short_message: bytes
    message_payload: bytes | None
    receipted_message_id: str | None
    message_state: int | None
    sar: tuple[int, int, int] | None  # (ref, total, seq) from the SAR TLVs

    @property
    def is_receipt(self) -> bool:
        return bool(self.esm_class & 0x3C) and (self.esm_class & 0x3C) in (0x04, 0x08, 0x10, 0x20)

    @property
    def user_data(self) -> bytes:
        return self.message_payload if self.message_payload else self.short_message


@attrs.frozen(slots=True)
class QueryResponse:
    """Answer to our query_sm (SMPP 3.4 4.8.2): the message's state at the SMSC.

    ``message_state`` is None when the SMSC refused the query (``status`` says why) or
    answered with generic_nack (``nacked``: it does not support query_sm)."""

    sequence: int
    status: int
    message_id: str | None
    message_state: int | None
    error_code: int | None
    context: Any
    nacked: bool = False


@attrs.frozen(slots=True)
class EnquireLinkResponse:
    sequence: int


@attrs.frozen(slots=True)
class UnbindRequested:
    """The SMSC unbinds us; the unbind_resp is already queued. Close after flushing."""


@attrs.frozen(slots=True)
class UnbindResponse:
    status: int


@attrs.frozen(slots=True)
class Garbage:
    """A PDU we could not use; answered with generic_nack where it was a request."""

    command_id: int
    sequence: int
    reason: str


@attrs.define(slots=True)
class Pending:
    command: str
    sequence: int
    sent_at: float
    context: Any = None


# --------------------------------------------------------------------------------------------
# The session
# --------------------------------------------------------------------------------------------


@attrs.define
class EsmeSession:
    """ESME side of one SMPP connection: OPEN -> BINDING -> BOUND -> UNBINDING -> CLOSED."""

    max_pdu: int = MAX_PDU
    state: str = "open"
    bind_mode: str = ""
    outstanding: dict[int, Pending] = attrs.field(factory=dict)
    submits_outstanding: int = 0
    _seq: int = 0
    _out: bytearray = attrs.field(factory=bytearray)
    _framer: PduFramer = attrs.field(init=False)
    _events: list = attrs.field(factory=list)

    def __attrs_post_init__(self) -> None:
        self._framer = PduFramer(self.max_pdu)

    # -- sending --------------------------------------------------------------------------

    def next_sequence(self) -> int:
        self._seq = self._seq + 1 if self._seq < 0x7FFFFFFF else 1
        return self._seq

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def send_bind(
        self,
        mode: str,
        *,
        system_id: str,
        password: str,
        system_type: str = "",
        addr_ton: int = 0,
        addr_npi: int = 0,
        address_range: str = "",
        now: float = 0.0,
    ) -> int:
        if self.state != "open":
            raise LocalProtocolError(f"cannot bind in state {self.state}")
        command = BIND_COMMANDS[mode]
        seq = self.next_sequence()
        self._out += encode_pdu(
            command,
            seq,
            system_id=system_id,
            password=password,
            system_type=system_type,
            addr_ton=addr_ton,
            addr_npi=addr_npi,
            address_range=address_range,
        )
        self.outstanding[seq] = Pending(command, seq, now)
        self.state = "binding"
        self.bind_mode = mode
        return seq

    def send_submit(self, fields: Mapping[str, Any], context: Any = None, now: float = 0.0) -> int:
        """Queue one submit_sm; ``context`` comes back in its :class:`SubmitResponse`."""
        if self.state != "bound" or self.bind_mode == "receiver":
            raise LocalProtocolError(f"cannot submit in state {self.state} ({self.bind_mode})")
        seq = self.next_sequence()
        self._out += fastpdu.encode_submit_sm(seq, fields)
        self.outstanding[seq] = Pending("submit_sm", seq, now, context)
        self.submits_outstanding += 1
        return seq

    def send_query(
        self,
        message_id: str,
        *,
        source_addr: str = "",
        source_addr_ton: int = 0,
        source_addr_npi: int = 0,
        context: Any = None,
        now: float = 0.0,
    ) -> int:
        """Queue one query_sm (SMPP 3.4 4.8.1); the source address must be the submit's."""
        if self.state != "bound" or self.bind_mode == "receiver":
            raise LocalProtocolError(f"cannot query in state {self.state} ({self.bind_mode})")
        seq = self.next_sequence()
        self._out += encode_pdu(
            "query_sm",
            seq,
            message_id=message_id,
            source_addr=source_addr,
            source_addr_ton=source_addr_ton,
            source_addr_npi=source_addr_npi,
        )
        self.outstanding[seq] = Pending("query_sm", seq, now, context)
        return seq

    def send_enquire_link(self, now: float = 0.0) -> int:
        seq = self.next_sequence()
        self._out += header_only(ENQUIRE_LINK, 0, seq)
        self.outstanding[seq] = Pending("enquire_link", seq, now)
        return seq

    def send_unbind(self, now: float = 0.0) -> int:
        seq = self.next_sequence()
        self._out += header_only(UNBIND, 0, seq)
        self.outstanding[seq] = Pending("unbind", seq, now)
        self.state = "unbinding"
        return seq

    def send_deliver_sm_resp(self, sequence: int, status: int = ESME_ROK) -> None:
        self._out += fastpdu.encode_deliver_sm_resp(sequence, status)

    # -- timeouts -------------------------------------------------------------------------

    def pop_timed_out(self, now: float, timeout: float) -> list[Pending]:
        """Forget requests older than ``timeout``; the caller decides (retry, reconnect)."""
        expired = []
        for seq, p in list(self.outstanding.items()):
            if now - p.sent_at < timeout:
                break
            del self.outstanding[seq]
            if p.command == "submit_sm":
                self.submits_outstanding -= 1
            expired.append(p)
        return expired

    def abandon_outstanding(self) -> list[Pending]:
        """The connection is gone: every request without an answer, oldest first."""
        pending = list(self.outstanding.values())
        self.outstanding.clear()
        self.submits_outstanding = 0
        self.state = "closed"
        return pending

    # -- receiving ------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        self._framer.receive_data(data)

    def next_event(self) -> Any:
        """The next event, or None when more data is needed. Raises RemoteProtocolError."""
        while True:
            if self._events:
                return self._events.pop()
            raw = self._framer.next_pdu()
            if raw is None:
                return None
            event = self._handle(raw)
            if event is not None:
                return event

    def _handle(self, raw: bytes) -> Any:
        _length, command_id, status, seq = HEADER.unpack_from(raw)
        if command_id == SUBMIT_SM_RESP:
            pending = self._pop(seq, "submit_sm")
            message_id = fastpdu.decode_submit_sm_resp(raw)
            if pending is None:  # none outstanding, or it names another request: the SMSC's bug
                return Garbage(command_id, seq, "submit_sm_resp for no outstanding submit_sm")
            return SubmitResponse(seq, status, message_id, pending.context)
        if command_id == ENQUIRE_LINK:
            self._out += header_only(ENQUIRE_LINK_RESP, ESME_ROK, seq)
            return None
        if command_id == ENQUIRE_LINK_RESP:
            self._pop(seq)
            return EnquireLinkResponse(seq)
        if command_id not in _KNOWN:
            self._out += header_only(GENERIC_NACK, ESME_RINVCMDID, seq)
            return Garbage(command_id, seq, f"unknown command_id 0x{command_id:08X}")
        if command_id == GENERIC_NACK:
            pending = self._pop(seq)
            if pending is not None and pending.command == "submit_sm":
                return SubmitResponse(seq, status, None, pending.context, nacked=True)
            if pending is not None and pending.command == "query_sm":
                return QueryResponse(seq, status, None, None, None, pending.context, nacked=True)
            if pending is not None and pending.command.startswith("bind_"):
                self.state = "open"
                return BindResponse(status or ESME_RBINDFAIL, "")
            return Garbage(command_id, seq, f"generic_nack {status_name(status)}")
        if command_id == DELIVER_SM:
            fields = fastpdu.parse_sm_fields(raw)
            if fields is not None:  # else smpplib judges the body below
                return self._on_deliver(fields.get, seq)
        try:
            pdu = decode_pdu(raw)
        except Exception as exc:  # smpplib raises assorted errors on malformed bodies
            if not command_id & 0x80000000:
                self._out += header_only(GENERIC_NACK, ESME_RINVCMDLEN, seq)
            return Garbage(command_id, seq, f"undecodable {_KNOWN[command_id]}: {exc}")
        name = _KNOWN[command_id]
        if name in ("deliver_sm", "data_sm"):
            if name == "data_sm":
                # Answer data_sm as unsupported; SMSCs that use it for MO can be told to stop.
                self._out += encode_pdu("data_sm_resp", seq, ESME_RINVCMDID)
                return Garbage(command_id, seq, "data_sm is not supported")
            return self._on_deliver(lambda name: getattr(pdu, name, None), seq)
        if name == "query_sm_resp":
            pending = self._pop(seq, "query_sm")
            if pending is None:
                return Garbage(command_id, seq, "query_sm_resp for no outstanding query_sm")
            return QueryResponse(
                seq,
                status,
                _text(pdu.message_id) or None,
                pdu.message_state if status == ESME_ROK else None,
                pdu.error_code,
                pending.context,
            )
        if name.startswith("bind_") and name.endswith("_resp"):
            pending = self._pop(seq, "bind_")
            if pending is None:
                # unsolicited: must not flip a bound session back to open
                return Garbage(command_id, seq, f"unexpected {name}")
            system_id = (
                pdu.system_id.decode("latin-1")
                if isinstance(pdu.system_id, bytes)
                else (pdu.system_id or "")
            )
            self.state = "bound" if status == ESME_ROK else "open"
            return BindResponse(status, system_id)
        if name == "unbind":
            self._out += header_only(UNBIND_RESP, ESME_ROK, seq)
            self.state = "closed"
            return UnbindRequested()
        if name == "unbind_resp":
            pending = self._pop(seq, "unbind")
            if pending is None:
                return Garbage(command_id, seq, "unbind_resp for no outstanding unbind")
            self.state = "closed"
            return UnbindResponse(status)
        if name.endswith("_resp"):
            self._pop(seq)
            return Garbage(command_id, seq, f"unexpected {name}")
        self._out += header_only(GENERIC_NACK, ESME_RINVCMDID, seq)
        return Garbage(command_id, seq, f"{name} is not supported by an ESME")

    def _on_deliver(self, get: Any, seq: int) -> Any:
        if self.state != "bound":
            self._out += fastpdu.encode_deliver_sm_resp(seq, ESME_RINVBNDSTS)
            return Garbage(DELIVER_SM, seq, f"deliver_sm in state {self.state}")
        try:
            return deliver_event(get, seq)
        except (TypeError, ValueError, AttributeError) as exc:
            self._out += fastpdu.encode_deliver_sm_resp(seq, ESME_RSYSERR)
            return Garbage(DELIVER_SM, seq, f"unusable deliver_sm: {exc}")

    def _pop(self, seq: int, command: str = "") -> Pending | None:
        """Forget the request ``seq`` answers; with ``command``, only if it is one (a prefix):
        an answer naming another request leaves that request waiting for its own answer."""
        pending = self.outstanding.get(seq)
        if pending is None or not pending.command.startswith(command):
            return None
        del self.outstanding[seq]
        if pending.command == "submit_sm":
            self.submits_outstanding -= 1
        return pending


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def deliver_event(get: Any, seq: int) -> DeliverSm:
    """The event of a decoded deliver_sm; ``get(name)`` gives a field or None (the fields of
    smpplib's parsed PDU, or :func:`fastpdu.parse_sm_fields`: one conversion for both)."""
    sar = None
    total = get("sar_total_segments")
    if total:
        sar = (get("sar_msg_ref_num") or 0, total, get("sar_segment_seqnum") or 0)
    rmid = get("receipted_message_id")
    payload = get("message_payload")
    return DeliverSm(
        sequence=seq,
        source_addr=_text(get("source_addr")),
        destination_addr=_text(get("destination_addr")),
        esm_class=get("esm_class") or 0,
        data_coding=get("data_coding") or 0,
        short_message=bytes(get("short_message") or b""),
        message_payload=bytes(payload) if payload else None,
        receipted_message_id=_text(rmid).rstrip("\x00") if rmid else None,
        message_state=get("message_state"),
        sar=sar,
    )
