"""Correlation: from decoded BSSAP messages on SCCP connections to subscriber behaviour events.

Where it sits: ``decoder`` -> (SCCP connection, BSSAP message dict) -> :class:`Correlator` ->
event dicts -> the signaling plugin (``SignalEvent``).

An SCCP connection (ITU-T Q.713 / Q.714 2.1) is known by two local references, one chosen by
each end: the BSC's in the CR, the MSC's in the CC. A DT1 names only the *receiver's*
reference, so a connection is indexed under ``(point code of the owner, reference)`` for both
ends. A connection is tied to a subscriber by the IMSI of a BSSMAP Common ID (TS 48.008
3.2.1.68), a Location Updating Request, Paging Response, CM Service Request or Identity
Response (TS 24.008 9.2), or by a TMSI already known: the TMSI -> IMSI cache learns from
Location Updating Accept, TMSI Reallocation Command and BSSMAP Paging, is bounded and expires.
Events on a connection whose IMSI is not yet known wait in a bounded buffer and are attributed
when it is (or emitted with the TMSI only when the connection ends; with no identity at all
they are counted as ``correlation.no_identity`` and dropped).

A call (TS 24.008 5) is one ``call_start`` (CC Setup; direction from the connection's CM
Service Request or Paging Response) and one ``call_end`` (the first CC clearing message, or
the connection's release) with an outcome (:mod:`adapters.sigtran.outcome`). A clearing with
no Setup seen (the capture began during the call) ends nothing: it is counted as
``correlation.call_start_not_seen``. An inter-BSC handover (TS 48.008 3.1.5.2) moves the
call to a new SCCP connection: the old leg (Handover Command, then Clear Command "handover
successful") releases without ending the call, the new leg (Handover Request naming the
IMSI, or a Common ID, then Handover Complete) takes it over and reports ``handover`` with
the new cell; a handed-over call nobody takes within :attr:`Correlator.handover_wait`
seconds ends at its old leg's last message.

Per IMSI, a bounded memory keeps the last IMEI (handset change), the last cell (cell change)
and whether roaming-in was reported. Event dicts carry the :class:`gateway.model.SignalEvent`
field names (``kind`` as its string value); None fields are left out.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from adapters.sigtran import bssap as B
from adapters.sigtran.digits import imei_from_imeisv as _imei_from_imeisv
from adapters.sigtran.outcome import call_outcome
from adapters.sigtran.ss import SS_CODES, SS_OPERATIONS

imei_from_imeisv = lru_cache(maxsize=4096)(_imei_from_imeisv)

_HANDOVER_STEPS = frozenset((B.HANDOVER_COMMAND, B.HANDOVER_COMPLETE, B.HANDOVER_PERFORMED))
_CC_CLEARING = frozenset((B.CC_DISCONNECT, B.CC_RELEASE, B.CC_RELEASE_COMPLETE))
_CC_USED = _CC_CLEARING | {B.CC_SETUP, B.CC_CONNECT}
_MM_USED = frozenset(
    (
        B.MM_LU_REQUEST,
        B.MM_LU_ACCEPT,
        B.MM_LU_REJECT,
        B.MM_IMSI_DETACH,
        B.MM_CM_SERVICE_REQUEST,
        B.MM_IDENTITY_RESPONSE,
        B.MM_TMSI_REALLOC_COMMAND,
    )
)
#: Message keys that make a message matter to the correlator whatever its type.
_INFORMATIVE = frozenset(("imsi", "tmsi", "lac", "ci", "imei", "imeisv", "rp", "ussd", "ss_op"))

_LU_KIND = {
    B.LU_NORMAL: "location_update",
    B.LU_PERIODIC: "periodic_update",
    B.LU_IMSI_ATTACH: "power_on",
    3: "location_update",
}


class Connection:
    """One SCCP connection and what is known about its subscriber. ``__slots__`` for the hot path."""

    __slots__ = (
        "bssap",
        "call_answer",
        "call_dir",
        "call_ended",
        "call_peer",
        "call_start",
        "ci",
        "ho_done",
        "ho_out",
        "imsi",
        "keys",
        "lac",
        "last",
        "lu",
        "mcc",
        "mnc",
        "new_tmsi",
        "origin",
        "pending",
        "ranap",
        "tmsi",
    )

    def __init__(self, ts: float) -> None:
        self.keys: list[int] = []
        self.imsi: str | None = None
        self.tmsi: int | None = None
        self.new_tmsi: int | None = None
        self.mcc = self.mnc = None
        self.lac: int | None = None
        self.ci: int | None = None
        self.pending: list[dict] | None = None
        self.lu: int | None = None
        self.call_start: float | None = None
        self.call_answer: float | None = None
        self.call_ended = False
        self.call_peer: str | None = None  # number from the Setup, repeated on the call end
        self.call_dir: str | None = None  # "mo" / "mt"
        self.origin: str | None = None  # "mo" (CM Service Request) / "mt" (Paging Response)
        self.ho_out = False  # handover away from this leg commanded (its release keeps the call)
        self.ho_done = False  # this leg is a handover target and the MS arrived
        self.last = ts  # capture time of the last message: idle connections are expired
        self.bssap: bool | None = True  # None: not known yet (capture began mid-connection)
        self.ranap = False  # Iu-CS: RANAP carries the layer 3 messages


class Correlator:
    """See the module docstring. ``events`` collects event dicts; the caller drains it."""

    def __init__(
        self,
        *,
        home_plmns: tuple[str, ...] = (),
        max_connections: int = 100_000,
        max_tmsis: int = 1_000_000,
        tmsi_ttl: float = 86_400.0,
        max_subscribers: int = 1_000_000,
        max_pending: int = 16,
        connection_idle: float = 3600.0,
        handover_wait: float = 60.0,
        count: Callable[[str, str], None] | None = None,
    ) -> None:
        self.home_plmns = tuple(home_plmns)
        self.max_connections = max_connections
        self.max_tmsis = max_tmsis
        self.tmsi_ttl = tmsi_ttl
        self.max_subscribers = max_subscribers
        self.max_pending = max_pending
        self.connection_idle = connection_idle
        self.handover_wait = handover_wait
        self.calls: dict[str, Connection] = {}  # IMSI -> the connection holding its call
        self._swept_at: float | None = None
        self.conns: dict[int, Connection] = {}
        self.tmsis: dict[int, tuple[str, float]] = {}
        self.subscribers: dict[str, list] = {}  # imsi -> [imei, lac, ci, roaming_reported]
        self.events: list[dict] = []
        self._count = count if count is not None else (lambda layer, reason: None)

    # -- SCCP connection life ------------------------------------------------------------

    def open(self, ts: float, key: int) -> Connection:
        conns = self.conns
        old = conns.get(key)
        if old is not None:
            self.release(old)
        if len(conns) >= self.max_connections:
            self._count("correlation", "connection_evicted")
            self.release(conns[next(iter(conns))])
        conn = Connection(ts)
        conn.keys.append(key)
        conns[key] = conn
        return conn

    def alias(self, conn: Connection, key: int) -> None:
        """The other end's reference (from a CC) now names the same connection."""
        if key not in conn.keys:
            conn.keys.append(key)
        self.conns[key] = conn

    def release(self, conn: Connection, ts: float | None = None) -> None:
        for key in conn.keys:
            if self.conns.get(key) is conn:
                del self.conns[key]
        conn.keys = []
        if conn.call_start is not None and not conn.call_ended:
            if conn.ho_out and conn.imsi is not None and self.calls.get(conn.imsi) is conn:
                conn.last = conn.last if ts is None else ts
                return  # handed over: the new leg takes the call (or it ends on expiry)
            self._call_end(conn, conn.call_start if ts is None else ts, None)
        if conn.pending:
            pending, conn.pending = conn.pending, None
            if conn.tmsi is None:
                self._count("correlation", "no_identity")
                return
            self._count("correlation", "unattributed")
            for event in pending:
                event["tmsi"] = conn.tmsi
                self.events.append(event)

    def end_handed_over(self, now: float | None = None) -> None:
        """End handed-over calls that no new leg took (all of them when ``now`` is None)."""
        for _imsi, conn in list(self.calls.items()):
            if conn.keys or conn.call_ended:
                continue  # still on an open connection
            if now is None or conn.last < now - self.handover_wait:
                self._count("correlation", "handover_not_completed")
                self._call_end(conn, conn.last, None)

    def expire_idle(self, now: float) -> None:
        """Release connections silent for ``connection_idle`` (their release was not captured).

        Checked at most once a minute of capture time; a call still open ends at its last message.
        """
        if self._swept_at is not None and now - self._swept_at < 60.0:
            return
        self._swept_at = now
        self.end_handed_over(now)
        limit = now - self.connection_idle
        stale = {id(c): c for c in self.conns.values() if c.last < limit}
        for conn in stale.values():
            self._count("correlation", "connection_idle_expired")
            self.release(conn, conn.last)

    # -- identities -------------------------------------------------------------------------

    def learn_tmsi(self, tmsi: int, imsi: str, ts: float) -> None:
        tmsis = self.tmsis
        if tmsis.pop(tmsi, None) is None and len(tmsis) >= self.max_tmsis:
            del tmsis[next(iter(tmsis))]  # the least recently learned goes first
        tmsis[tmsi] = (imsi, ts + self.tmsi_ttl)

    def forget_tmsi(self, tmsi: int, imsi: str) -> None:
        """``tmsi`` was replaced by a new one: the VLR may give it to another subscriber."""
        found = self.tmsis.get(tmsi)
        if found is not None and found[0] == imsi:
            del self.tmsis[tmsi]

    def imsi_of_tmsi(self, tmsi: int, ts: float) -> str | None:
        found = self.tmsis.get(tmsi)
        if found is None:
            return None
        if found[1] < ts:
            del self.tmsis[tmsi]
            self._count("correlation", "tmsi_expired")
            return None
        return found[0]

    def _set_imsi(self, conn: Connection, imsi: str, ts: float) -> None:
        if conn.imsi == imsi:
            return
        conn.imsi = imsi
        if conn.tmsi is not None and conn.new_tmsi is None:  # a replaced TMSI is not learned
            self.learn_tmsi(conn.tmsi, imsi, ts)
        if conn.new_tmsi is not None:
            self.learn_tmsi(conn.new_tmsi, imsi, ts)
        if conn.pending:
            pending, conn.pending = conn.pending, None
            for event in pending:
                event["imsi"] = imsi
                self._deliver(event)
        if conn.call_start is not None and not conn.call_ended:
            self.calls[imsi] = conn
        if conn.ho_done:
            self._take_call(conn)

    def _identify(self, conn: Connection, msg: dict, ts: float) -> None:
        tmsi = msg.get("tmsi")
        if tmsi is not None and conn.tmsi is None:
            conn.tmsi = tmsi
            if conn.imsi is None:
                known = self.imsi_of_tmsi(tmsi, ts)
                if known is not None:
                    self._set_imsi(conn, known, ts)
        imsi = msg.get("imsi")
        if imsi is not None:
            self._set_imsi(conn, imsi, ts)

    # -- messages ---------------------------------------------------------------------------

    def connectionless(self, ts: float, msg: dict) -> None:
        """A UDT/XUDT BSSMAP message: Paging teaches TMSI -> IMSI."""
        if msg.get("bssmap") == B.PAGING and "imsi" in msg and "tmsi" in msg:
            self.learn_tmsi(msg["tmsi"], msg["imsi"], ts)

    @staticmethod
    def inert(msg: dict) -> bool:
        """True when :meth:`message` would only note the time on the connection: no identity,
        no cell, and a message type that changes nothing (Clear Complete, CC Alerting, CP-ACK,
        TMSI Reallocation Complete...). The decoder skips the call for these (hot path)."""
        if not msg.keys().isdisjoint(_INFORMATIVE):
            return False
        if len(msg) == 1:
            return msg.get("bssmap") not in _HANDOVER_STEPS
        cc, mm = msg.get("cc"), msg.get("mm")
        if cc is not None:
            return cc not in _CC_USED
        if mm is not None:
            return mm not in _MM_USED
        return "cp" in msg or "ss" in msg

    def message(self, ts: float, conn: Connection, msg: dict) -> None:
        """One BSSAP message on ``conn``."""
        conn.last = ts
        if len(msg) == 1:  # a BSSMAP message without identity or cell (the fast skip)
            bssmap = msg.get("bssmap")
            if bssmap not in _HANDOVER_STEPS:
                return
            if bssmap == B.HANDOVER_COMMAND:
                conn.ho_out = True
            elif bssmap == B.HANDOVER_COMPLETE:
                conn.ho_done = True
                if conn.imsi is not None:
                    self._take_call(conn)
        if "imsi" in msg or "tmsi" in msg:
            self._identify(conn, msg, ts)
        if "lac" in msg or "ci" in msg:
            lac = msg.get("lac")
            if lac is not None:
                conn.lac = lac
                if "mcc" in msg:
                    conn.mcc, conn.mnc = msg["mcc"], msg["mnc"]
            if "ci" in msg:
                conn.ci = msg["ci"]
        mm = msg.get("mm")
        if mm is not None:
            self._mm(ts, conn, mm, msg)
            return
        cc = msg.get("cc")
        if cc is not None:
            self._cc(ts, conn, cc, msg)
            return
        rp = msg.get("rp")
        if rp is not None:
            if rp == B.RP_DATA_MS:
                event = {"kind": "mo_sms", "timestamp": ts}
                peer = msg.get("tp_da") or msg.get("rp_dest")
            elif rp == B.RP_DATA_NET:
                event = {"kind": "mt_sms", "timestamp": ts}
                peer = msg.get("tp_oa")
            else:
                return
            if peer:
                event["peer"] = peer
            self._emit(conn, event)
            return
        if "ss" in msg:
            if "ussd" in msg:
                self._emit(conn, {"kind": "ussd", "timestamp": ts, "service_code": msg["ussd"]})
            elif msg.get("ss_op") in SS_OPERATIONS and "ss_code" in msg:
                code = msg["ss_code"]
                event = {"kind": "ss_change", "timestamp": ts}
                event["service_code"] = SS_CODES.get(code) or f"ss_{code:02x}"
                event["ss_operation"] = SS_OPERATIONS[msg["ss_op"]]
                self._emit(conn, event)
            return
        rr = msg.get("rr")
        if rr == B.RR_PAGING_RESPONSE:
            conn.origin = "mt"
            self._emit(conn, {"kind": "cell_change", "timestamp": ts})
            return
        bssmap = msg.get("bssmap")
        if bssmap == B.HANDOVER_PERFORMED:
            self._emit(conn, {"kind": "handover", "timestamp": ts})
        elif bssmap == B.CIPHER_MODE_COMPLETE:
            self._handset(ts, conn, msg)
        elif bssmap == B.CLEAR_COMMAND and msg.get("bssmap_cause") == B.CAUSE_HANDOVER_SUCCESSFUL:
            conn.ho_out = True

    def _mm(self, ts: float, conn: Connection, mm: int, msg: dict) -> None:
        if mm == B.MM_LU_REQUEST:
            conn.lu = msg["lu_type"]
        elif mm == B.MM_LU_ACCEPT:
            if "tmsi" in msg:
                # _identify took it as the connection's TMSI if none was known; it is the new one
                self._reallocated(conn, msg["tmsi"], ts)
            if conn.lu is not None:
                self._emit(conn, {"kind": _LU_KIND[conn.lu], "timestamp": ts})
                conn.lu = None
        elif mm == B.MM_LU_REJECT:
            self._count("correlation", "lu_rejected")
            conn.lu = None
        elif mm == B.MM_IMSI_DETACH:
            self._emit(conn, {"kind": "power_off", "timestamp": ts})
        elif mm == B.MM_CM_SERVICE_REQUEST:
            if msg["service_type"] in (B.CM_MO_CALL, B.CM_EMERGENCY_CALL):
                conn.origin = "mo"
            self._emit(conn, {"kind": "cell_change", "timestamp": ts})
        elif mm == B.MM_IDENTITY_RESPONSE:
            self._handset(ts, conn, msg)
        elif mm == B.MM_TMSI_REALLOC_COMMAND:
            if "tmsi" in msg:
                self._reallocated(conn, msg["tmsi"], ts)

    def _handset(self, ts: float, conn: Connection, msg: dict) -> None:
        """An IMEI or IMEISV (Identity Response, Cipher Mode Complete): handset change check."""
        imei = msg.get("imei")
        if imei is None and "imeisv" in msg:
            imei = imei_from_imeisv(msg["imeisv"])
        if imei is not None:
            self._emit(conn, {"kind": "handset_change", "timestamp": ts, "imei": imei})

    def _take_call(self, conn: Connection) -> None:
        """Inter-BSC handover completed on ``conn``: the subscriber's call continues here."""
        conn.ho_done = False
        imsi = conn.imsi
        if imsi is None:
            return
        old = self.calls.get(imsi)
        if old is None or old is conn or old.call_start is None or old.call_ended:
            return
        conn.call_start, conn.call_answer = old.call_start, old.call_answer
        conn.call_peer, conn.call_dir, conn.call_ended = old.call_peer, old.call_dir, False
        old.call_start = None
        self.calls[imsi] = conn
        self._emit(conn, {"kind": "handover", "timestamp": conn.last})

    def _reallocated(self, conn: Connection, tmsi: int, ts: float) -> None:
        """The network gave the subscriber of ``conn`` a new TMSI; the old one is forgotten."""
        conn.new_tmsi = tmsi
        if conn.imsi is not None:
            self.learn_tmsi(tmsi, conn.imsi, ts)
            if conn.tmsi is not None and conn.tmsi != tmsi:
                self.forget_tmsi(conn.tmsi, conn.imsi)

    def _cc(self, ts: float, conn: Connection, cc: int, msg: dict) -> None:
        if cc not in _CC_USED:
            return  # Alerting, Call Proceeding, Connect Acknowledge...: nothing to note
        if cc == B.CC_SETUP:
            conn.call_start, conn.call_answer, conn.call_ended = ts, None, False
            called, calling = msg.get("called"), msg.get("calling")
            # the connection's start says who called; without it, an MT Setup names the caller
            direction = conn.origin or ("mt" if calling and not called else "mo")
            conn.call_dir = direction
            event = {"kind": "call_start", "timestamp": ts, "direction": direction}
            peer = called if direction == "mo" else calling
            conn.call_peer = peer or None
            if peer:
                event["peer"] = peer
            if conn.imsi is not None:
                self.calls[conn.imsi] = conn
            self._emit(conn, event)
        elif cc == B.CC_CONNECT:
            if conn.call_answer is None:
                conn.call_answer = ts
        elif cc in _CC_CLEARING:
            if conn.call_ended:
                return
            if conn.call_start is None:
                conn.call_ended = True  # counted once per connection
                self._count("correlation", "call_start_not_seen")
                return
            self._call_end(conn, ts, msg.get("cause"))

    def _call_end(self, conn: Connection, ts: float, cause: int | None) -> None:
        """Duration is the talk time: from Connect, 0 when the call was never answered."""
        conn.call_ended = True
        if conn.imsi is not None and self.calls.get(conn.imsi) is conn:
            del self.calls[conn.imsi]
        event: dict = {"kind": "call_end", "timestamp": ts}
        if cause is not None:
            event["cause"] = cause
        answer = conn.call_answer
        event["duration"] = 0.0 if answer is None else max(0.0, ts - answer)
        if conn.call_dir is not None:
            event["direction"] = conn.call_dir
        event["outcome"] = call_outcome(
            answered=answer is not None, cause=cause, mobile_terminated=conn.call_dir == "mt"
        )
        # The release carries no number: "call to 12580 ended" rules need the Setup's.
        if conn.call_peer:
            event["peer"] = conn.call_peer
        self._emit(conn, event)

    # -- output -----------------------------------------------------------------------------

    def _emit(self, conn: Connection, event: dict) -> None:
        if conn.lac is not None:
            event["lac"] = conn.lac
            if conn.mcc is not None:
                event["mcc"], event["mnc"] = conn.mcc, conn.mnc
        if conn.ci is not None:
            event["ci"] = conn.ci
        if conn.tmsi is not None:
            event["tmsi"] = conn.tmsi
        if conn.imsi is None:
            pending = conn.pending
            if pending is None:
                pending = conn.pending = []
            if len(pending) >= self.max_pending:
                self._count("correlation", "pending_overflow")
                return
            pending.append(event)
            return
        event["imsi"] = conn.imsi
        self._deliver(event)

    def _deliver(self, event: dict) -> None:
        """Apply per-IMSI memory (handset, cell, roaming) and append the event."""
        imsi = event["imsi"]
        subs = self.subscribers
        sub = subs.get(imsi)
        if sub is None:
            if len(subs) >= self.max_subscribers:
                del subs[next(iter(subs))]
            sub = subs[imsi] = [None, None, None, False]
            if self.home_plmns and not imsi.startswith(self.home_plmns):
                sub[3] = True
                roam = {
                    k: v
                    for k, v in event.items()
                    if k
                    not in (
                        "kind",
                        "peer",
                        "cause",
                        "duration",
                        "imei",
                        "direction",
                        "outcome",
                        "service_code",
                        "ss_operation",
                    )
                }
                roam["kind"] = "roaming_in"
                self.events.append(roam)
        kind = event["kind"]
        if kind == "handset_change":
            previous = sub[0]
            sub[0] = event["imei"]
            # the handset is its TAC + serial number: an MS sends the 15th (check) digit as 0
            # (TS 22.016 3) while one computed from an IMEISV is the Luhn digit
            if previous is None or previous[:14] == event["imei"][:14]:
                return
            event["previous_imei"] = previous
        lac, ci = event.get("lac"), event.get("ci")
        if kind == "cell_change":
            if ci is None or sub[2] is None or (sub[1], sub[2]) == (lac, ci):
                sub[1], sub[2] = lac, ci
                return
        if ci is not None:
            sub[1], sub[2] = lac, ci
        self.events.append(event)
