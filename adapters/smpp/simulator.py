"""An SMSC simulator that speaks real SMPP 3.4 over TCP (optionally TLS), for tests and demos.

It binds ESMEs with credentials (transceiver, or separate transmitter and receiver binds),
answers submit_sm with message ids and query_sm with the message's state, sends delivery
receipts after a delay (on any receiver-capable bind of the same account, so receipts cross
binds and survive reconnects) or withholds them, sends MO messages on request, and injects
faults: ESME_RTHROTTLED above a rate (like an SMSC enforcing its contract), ESME_RMSGQFUL for
some destinations, dropped connections, garbage PDUs, delayed responses.

This module is a Trio transport, not a codec (it serves TCP connections and keeps timers on
the Trio clock, so tests can run it under ``MockClock``); the PDU codecs it uses
(:mod:`.protocol`, :mod:`.fastpdu`) stay pure.

It decodes submit_sm with its own small parser (not smpplib) so that tests check our encoding
against an independent reading, and answers from pre-encoded templates to stay fast: the
simulator must not be the bottleneck of ``scripts/bench_smpp.py``.
"""

from __future__ import annotations

import collections
import math
import struct
import time
from typing import Any

import attrs
import trio

from adapters.smpp import fastpdu
from adapters.smpp import protocol as p
from adapters.smpp.messages import ESM_RECEIPT, Reassembler, decode_user_data, encode_text
from adapters.smpp.receipt import STAT_TO_MESSAGE_STATE, Receipt, format_receipt_text

HEADER = p.HEADER
_BIND_RESP = {
    p.BIND_TRANSCEIVER: 0x80000009,
    p.BIND_TRANSMITTER: 0x80000002,
    p.BIND_RECEIVER: 0x80000001,
}
_BIND_MODE = {
    p.BIND_TRANSCEIVER: "transceiver",
    p.BIND_TRANSMITTER: "transmitter",
    p.BIND_RECEIVER: "receiver",
}


@attrs.define
class SimulatorConfig:
    """Behaviour of the simulator; may be changed while it runs (tests flip faults on and off)."""

    credentials: dict[str, str] = attrs.field(factory=lambda: {"gateway": "secret"})
    system_id: str = "SIMSMSC"
    receipt_delay: float | None = 0.05  # None: never send receipts
    receipt_tlvs: bool = True  # receipted_message_id / message_state besides the text
    receipt_id_decimal: bool = False  # receipt text gives the id in decimal (some SMSCs do)
    undeliverable_prefixes: tuple[str, ...] = ()  # receipt UNDELIV for these destinations
    response_delay: float = 0.0  # hold every submit_sm_resp this long (windowing tests)
    throttle_every: int = 0  # answer every Nth submit_sm with throttle_status
    throttle_status: int = p.ESME_RTHROTTLED
    max_rate: float = 0.0  # submit_sm per second per account beyond which: throttle_status
    reject_prefixes: dict[str, int] = attrs.field(factory=dict)  # destination prefix -> error
    # destination prefix -> how many submit_sm to it get ESME_RMSGQFUL before it accepts again
    # (the subscriber's queue at the SMSC is full); a negative count: always
    queue_full: dict[str, int] = attrs.field(factory=dict)
    query_sm: bool = True  # answer query_sm (False: generic_nack, as SMSCs without it do)
    drop_after_pdus: int = 0  # close a connection after this many PDUs received ...
    drop_times: int = 0  # ... this many times in all
    enquire_link_interval: float = 0.0  # the SMSC's own keep-alive towards the ESME
    gsm_packed: bool = False  # how to read data_coding 0 text


@attrs.define
class Submitted:
    """One accepted submit_sm as the simulator read it."""

    message_id: str
    system_id: str
    connection: int
    source_addr: str
    destination_addr: str
    esm_class: int
    data_coding: int
    registered_delivery: int
    short_message: bytes
    message_payload: bytes | None
    received_at: float
    priority_flag: int = 0
    validity_period: str = ""
    service_type: str = ""


def parse_submit_body(body: bytes) -> dict[str, Any]:
    """Our own reading of a submit_sm body (SMPP 3.4 4.4.1); raises ValueError when malformed."""
    pos = 0

    def cstr() -> str:
        nonlocal pos
        end = body.index(b"\x00", pos)
        value = body[pos:end].decode("latin-1")
        pos = end + 1
        return value

    f: dict[str, Any] = {}
    f["service_type"] = cstr()
    f["source_addr_ton"], f["source_addr_npi"] = body[pos], body[pos + 1]
    pos += 2
    f["source_addr"] = cstr()
    f["dest_addr_ton"], f["dest_addr_npi"] = body[pos], body[pos + 1]
    pos += 2
    f["destination_addr"] = cstr()
    f["esm_class"], f["protocol_id"], f["priority_flag"] = body[pos], body[pos + 1], body[pos + 2]
    pos += 3
    f["schedule_delivery_time"] = cstr()
    f["validity_period"] = cstr()
    (
        f["registered_delivery"],
        f["replace_if_present_flag"],
        f["data_coding"],
        f["sm_default_msg_id"],
        sm_length,
    ) = body[pos : pos + 5]
    pos += 5
    f["short_message"] = body[pos : pos + sm_length]
    if len(f["short_message"]) != sm_length:
        raise ValueError("short_message shorter than sm_length")
    pos += sm_length
    tlvs = {}
    while pos + 4 <= len(body):
        tag, length = struct.unpack_from(">HH", body, pos)
        tlvs[tag] = body[pos + 4 : pos + 4 + length]
        pos += 4 + length
    f["tlvs"] = tlvs
    f["message_payload"] = tlvs.get(0x0424)
    return f


@attrs.define(eq=False)
class _Connection:
    id: int
    stream: Any
    system_id: str = ""
    mode: str = ""
    pdus: int = 0
    outstanding: int = 0  # submit_sm received and not yet answered
    max_outstanding: int = 0
    seq: int = 0x40000000  # our own requests to the ESME
    sent_deliver: dict = attrs.field(factory=dict)  # seq -> queued item awaiting deliver_sm_resp
    send_lock: trio.Lock = attrs.field(factory=trio.Lock)
    closed: bool = False

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    async def send(self, data: bytes) -> None:
        async with self.send_lock:
            await self.stream.send_all(data)


@attrs.define(eq=False)
class SmscSimulator:
    config: SimulatorConfig = attrs.field(factory=SimulatorConfig)
    ssl_context: Any = None
    port: int = 0
    submitted: list[Submitted] = attrs.field(factory=list)
    stats: collections.Counter = attrs.field(factory=collections.Counter)
    max_outstanding: int = 0
    mo_received_resp: int = 0
    _connections: dict[int, _Connection] = attrs.field(factory=dict)
    _next_conn: int = 0
    _next_mid: int = 0
    _deliveries: collections.deque = attrs.field(
        factory=collections.deque
    )  # (due, system_id, pdu fields)
    _delivery_wakeup: trio.Event = attrs.field(factory=trio.Event)
    _rate_window: collections.deque = attrs.field(factory=collections.deque)
    # (system_id, message_id) -> (stat, source_addr, submitted at): what query_sm answers
    _states: dict = attrs.field(factory=dict)
    _nursery: Any = None

    # -- serving ------------------------------------------------------------------------------

    async def serve(
        self, host: str = "127.0.0.1", port: int = 0, *, task_status=trio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen and serve until cancelled; ``task_status.started(port)``."""
        listeners = await trio.open_tcp_listeners(port, host=host)
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._delivery_loop)
            await nursery.start(trio.serve_listeners, self._handle, listeners)
            task_status.started(self.port)

    async def _handle(self, stream: Any) -> None:
        if self.ssl_context is not None:
            stream = trio.SSLStream(stream, self.ssl_context, server_side=True)
            try:
                await stream.do_handshake()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
        self._next_conn += 1
        conn = _Connection(self._next_conn, stream)
        self._connections[conn.id] = conn
        self.stats["connections"] += 1
        try:
            async with trio.open_nursery() as nursery:
                if self.config.enquire_link_interval:
                    nursery.start_soon(self._keepalive, conn)
                await self._read_loop(conn, nursery)
                nursery.cancel_scope.cancel()
        except* (trio.BrokenResourceError, trio.ClosedResourceError, p.RemoteProtocolError):
            self.stats["connection_errors"] += 1
        finally:
            conn.closed = True
            self._connections.pop(conn.id, None)
            # Receipts and MO sent on this connection but not acknowledged go out again later.
            for item in conn.sent_deliver.values():
                self._deliveries.appendleft(item)
            self._delivery_wakeup.set()
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(stream)

    async def _keepalive(self, conn: _Connection) -> None:
        while True:
            await trio.sleep(self.config.enquire_link_interval)
            if conn.mode:
                self.stats["enquire_link_sent"] += 1
                await conn.send(p.header_only(p.ENQUIRE_LINK, 0, conn.next_seq()))

    async def _read_loop(self, conn: _Connection, nursery: Any) -> None:
        framer = p.PduFramer()
        cfg = self.config
        while True:
            data = await conn.stream.receive_some(262144)
            if not data:
                return
            framer.receive_data(data)
            out = bytearray()
            delayed = []
            while (raw := framer.next_pdu()) is not None:
                conn.pdus += 1
                self.stats["pdus"] += 1
                if cfg.drop_after_pdus and cfg.drop_times > 0 and conn.pdus >= cfg.drop_after_pdus:
                    cfg.drop_times -= 1
                    self.stats["dropped_connections"] += 1
                    if out:
                        await conn.send(bytes(out))
                    return
                resp = self._on_pdu(conn, raw)
                if resp is None:
                    continue
                if cfg.response_delay and raw[4:8] == b"\x00\x00\x00\x04":
                    delayed.append(resp)
                else:
                    if raw[4:8] == b"\x00\x00\x00\x04":
                        conn.outstanding -= 1
                    out += resp
            if out:
                await conn.send(bytes(out))
            if delayed:
                nursery.start_soon(self._send_later, conn, delayed, cfg.response_delay)

    async def _send_later(self, conn: _Connection, responses: list[bytes], delay: float) -> None:
        await trio.sleep(delay)
        conn.outstanding -= len(responses)
        if not conn.closed:
            await conn.send(b"".join(responses))

    # -- one PDU ----------------------------------------------------------------------------------

    def _on_pdu(self, conn: _Connection, raw: bytes) -> bytes | None:
        _length, command_id, status, seq = HEADER.unpack_from(raw)
        if command_id == p.SUBMIT_SM:
            return self._on_submit(conn, raw, seq)
        if command_id == p.DELIVER_SM_RESP:
            conn.sent_deliver.pop(seq, None)
            self.stats["deliver_sm_resp"] += 1
            if status:
                self.stats["deliver_sm_resp_errors"] += 1
            return None
        if command_id == p.QUERY_SM and self.config.query_sm:
            return self._on_query(conn, raw, seq)
        if command_id == p.ENQUIRE_LINK:
            self.stats["enquire_link_received"] += 1
            return p.header_only(p.ENQUIRE_LINK_RESP, 0, seq)
        if command_id == p.ENQUIRE_LINK_RESP:
            self.stats["enquire_link_resp_received"] += 1
            return None
        if command_id in _BIND_RESP:
            return self._on_bind(conn, raw, command_id, seq)
        if command_id == p.UNBIND:
            self.stats["unbind_received"] += 1
            conn.mode = ""
            return p.header_only(p.UNBIND_RESP, 0, seq)
        if command_id == p.GENERIC_NACK:
            self.stats["generic_nack_received"] += 1
            return None
        self.stats["unknown_received"] += 1
        return p.header_only(p.GENERIC_NACK, p.ESME_RINVCMDID, seq)

    def _on_bind(self, conn: _Connection, raw: bytes, command_id: int, seq: int) -> bytes:
        body = raw[16:]
        parts = body.split(b"\x00", 2)
        system_id = parts[0].decode("latin-1")
        password = parts[1].decode("latin-1") if len(parts) > 1 else ""
        resp_id = _BIND_RESP[command_id]
        if conn.mode:
            status = p.consts.SMPP_ESME_RALYBND
        elif self.config.credentials.get(system_id) != password:
            status = p.ESME_RINVPASWD
            self.stats["bind_refused"] += 1
        else:
            status = 0
            conn.system_id = system_id
            conn.mode = _BIND_MODE[command_id]
            self.stats["binds"] += 1
            self._delivery_wakeup.set()
        body = self.config.system_id.encode() + b"\x00"
        return HEADER.pack(16 + len(body), resp_id, status, seq) + body

    def _on_submit(self, conn: _Connection, raw: bytes, seq: int) -> bytes:
        cfg = self.config
        if conn.mode not in ("transceiver", "transmitter"):
            return _submit_resp(seq, p.ESME_RINVBNDSTS, "")
        conn.outstanding += 1
        if conn.outstanding > conn.max_outstanding:
            conn.max_outstanding = conn.outstanding
            self.max_outstanding = max(self.max_outstanding, conn.outstanding)
        self.stats["submit_sm"] += 1
        try:
            f = parse_submit_body(raw[16:])
        except (ValueError, IndexError):
            self.stats["submit_sm_malformed"] += 1
            return _submit_resp(seq, p.consts.SMPP_ESME_RINVMSGLEN, "")
        if cfg.throttle_every and self.stats["submit_sm"] % cfg.throttle_every == 0:
            self.stats["throttled"] += 1
            return _submit_resp(seq, cfg.throttle_status, "")
        if cfg.max_rate:
            now = trio.current_time()
            window = self._rate_window
            while window and now - window[0] >= 1.0:
                window.popleft()
            if len(window) >= cfg.max_rate:
                self.stats["throttled"] += 1
                return _submit_resp(seq, cfg.throttle_status, "")
            window.append(now)
        dest = f["destination_addr"]
        for prefix, left in cfg.queue_full.items():
            if dest.startswith(prefix) and left != 0:
                cfg.queue_full[prefix] = left - 1 if left > 0 else left
                self.stats["queue_full"] += 1
                return _submit_resp(seq, p.ESME_RMSGQFUL, "")
        for prefix, error in cfg.reject_prefixes.items():
            if dest.startswith(prefix):
                self.stats["rejected"] += 1
                return _submit_resp(seq, error, "")
        self._next_mid += 1
        mid = f"{self._next_mid:010X}"
        now = time.time()
        self.submitted.append(
            Submitted(
                message_id=mid,
                system_id=conn.system_id,
                connection=conn.id,
                source_addr=f["source_addr"],
                destination_addr=dest,
                esm_class=f["esm_class"],
                data_coding=f["data_coding"],
                registered_delivery=f["registered_delivery"],
                short_message=f["short_message"],
                message_payload=f["message_payload"],
                received_at=now,
                priority_flag=f["priority_flag"],
                validity_period=f["validity_period"],
                service_type=f["service_type"],
            )
        )
        stat = (
            "UNDELIV" if any(dest.startswith(x) for x in cfg.undeliverable_prefixes) else "DELIVRD"
        )
        self._states[(conn.system_id, mid)] = (stat, f["source_addr"], now)
        if len(self._states) > 1_000_000:  # bounded: the oldest cannot be queried any more
            del self._states[next(iter(self._states))]
        if f["registered_delivery"] & 0x03 and cfg.receipt_delay is not None:
            self._queue_receipt(conn.system_id, mid, f, stat, now)
        return _submit_resp(seq, 0, mid)

    def _on_query(self, conn: _Connection, raw: bytes, seq: int) -> bytes:
        """query_sm (SMPP 3.4 4.8): the final state of a message this account submitted."""
        self.stats["query_sm"] += 1
        parts = raw[16:].split(b"\x00")
        mid = parts[0].decode("latin-1")
        known = self._states.get((conn.system_id, mid))
        if conn.mode not in ("transceiver", "transmitter"):
            return p.encode_pdu("query_sm_resp", seq, p.ESME_RINVBNDSTS)
        if known is None:
            return p.encode_pdu("query_sm_resp", seq, p.consts.SMPP_ESME_RQUERYFAIL)
        stat, _source, at = known
        return p.encode_pdu(
            "query_sm_resp",
            seq,
            message_id=mid,
            final_date=time.strftime("%y%m%d%H%M%S000+", time.gmtime(at)),
            message_state=STAT_TO_MESSAGE_STATE[stat],
            error_code=0 if stat == "DELIVRD" else 1,
        )

    # -- receipts and MO ---------------------------------------------------------------------------

    def _queue_receipt(self, system_id: str, mid: str, f: dict, stat: str, now: float) -> None:
        stamp = time.strftime("%y%m%d%H%M", time.gmtime(now))
        text = format_receipt_text(
            Receipt(
                message_id=str(int(mid, 16)) if self.config.receipt_id_decimal else mid,
                stat=stat,
                submit_date=stamp,
                done_date=stamp,
                err="000" if stat == "DELIVRD" else "001",
            )
        )
        fields: dict[str, Any] = dict(
            source_addr=f["destination_addr"],
            destination_addr=f["source_addr"],
            esm_class=ESM_RECEIPT,
            short_message=text.encode("latin-1"),
        )
        if self.config.receipt_tlvs:
            fields["receipted_message_id"] = mid
            fields["message_state"] = STAT_TO_MESSAGE_STATE[stat]
        self._deliveries.append(
            (trio.current_time() + (self.config.receipt_delay or 0.0), system_id, fields)
        )
        self._delivery_wakeup.set()

    async def send_mo(
        self,
        source: str,
        destination: str,
        text: str,
        *,
        system_id: str = "gateway",
        long_mode: str = "udh8",
        reference: int = 1,
    ) -> int:
        """Queue an MO message (split like a handset would) to any receiver bind; segments sent."""
        segments = encode_text(text, long_mode=long_mode, reference=reference)
        for seg in segments:
            fields = dict(source_addr=source, destination_addr=destination, **seg.pdu_fields())
            self._deliveries.append((trio.current_time(), system_id, fields))
        self._delivery_wakeup.set()
        self.stats["mo_queued"] += len(segments)
        return len(segments)

    async def inject_garbage(self) -> int:
        """Send a PDU with an unknown command_id on every bound connection; how many got one."""
        n = 0
        for conn in list(self._connections.values()):
            if conn.mode and not conn.closed:
                await conn.send(p.header_only(0x000000AA, 0, conn.next_seq()))
                n += 1
        self.stats["garbage_sent"] += n
        return n

    async def drop_all(self) -> None:
        """Close every connection abruptly (the network failed)."""
        for conn in list(self._connections.values()):
            conn.closed = True
            await trio.aclose_forcefully(conn.stream)

    def _receiver_for(self, system_id: str) -> _Connection | None:
        best = None
        for conn in self._connections.values():
            if (
                conn.system_id == system_id
                and conn.mode in ("transceiver", "receiver")
                and not conn.closed
            ):
                if best is None or len(conn.sent_deliver) < len(best.sent_deliver):
                    best = conn
        return best

    async def _delivery_loop(self) -> None:
        while True:
            if not self._deliveries:
                self._delivery_wakeup = trio.Event()
                await self._delivery_wakeup.wait()
                continue
            due, system_id, _fields = self._deliveries[0]
            delay = due - trio.current_time()
            if delay > 0:
                with trio.move_on_after(delay):
                    self._delivery_wakeup = trio.Event()
                    await self._delivery_wakeup.wait()
                continue
            conn = self._receiver_for(system_id)
            if conn is None:
                # Nobody to deliver to: wait for a bind (or retry in a while).
                with trio.move_on_after(0.5):
                    self._delivery_wakeup = trio.Event()
                    await self._delivery_wakeup.wait()
                continue
            # Send every due delivery for this account in one write.
            batch = bytearray()
            now = trio.current_time()
            while (
                self._deliveries
                and self._deliveries[0][0] <= now
                and self._deliveries[0][1] == system_id
                and len(batch) < 65536
            ):
                item = self._deliveries.popleft()
                seq = conn.next_seq()
                conn.sent_deliver[seq] = item
                batch += fastpdu.encode_deliver_sm(seq, item[2])
                self.stats["deliver_sm_sent"] += 1
            try:
                await conn.send(bytes(batch))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the connection's handler puts them back

    # -- inspection ----------------------------------------------------------------------------

    def texts(self) -> list[str | bytes]:
        """Every accepted message, long ones reassembled, in order of completion."""
        r = Reassembler(timeout=math.inf)
        out = []
        for s in self.submitted:
            data = s.message_payload if s.message_payload else s.short_message
            concat, part = decode_user_data(
                s.esm_class, s.data_coding, data, gsm_packed=self.config.gsm_packed
            )
            if concat is None:
                out.append(part)
                continue
            whole = r.add((s.source_addr, s.destination_addr), concat, part, 0.0)
            if whole is not None:
                out.append(whole)
        return out

    @property
    def pending_deliveries(self) -> int:
        return len(self._deliveries) + sum(len(c.sent_deliver) for c in self._connections.values())

    def bound(self) -> list[tuple[str, str]]:
        return [(c.system_id, c.mode) for c in self._connections.values() if c.mode]


def _submit_resp(seq: int, status: int, message_id: str) -> bytes:
    return fastpdu.encode_submit_sm_resp(seq, status, message_id)
