"""Correlation of SCCP connections to subscribers, and the events derived."""

from __future__ import annotations

from adapters.sigtran import bssap as B
from adapters.sigtran import build as W
from adapters.sigtran.correlate import Correlator
from adapters.sigtran.decoder import Decoder
from adapters.sigtran.digits import MI_IMEI, MI_IMEISV, imei_from_imeisv, luhn_digit

CELL = ("460", "00", 0x1001, 77)
IMSI, IMSI2 = "460001234567890", "460009876543210"
BSC, MSC = 100, 200


class Wire:
    """Feeds SCCP messages through the real decoder (M3UA frames) at increasing timestamps."""

    def __init__(self, **options):
        self.decoder = Decoder(Correlator(**options))
        self.ts = 1000.0
        self.ref = 1

    def send(self, opc, dpc, sccp, dt=1.0):
        self.ts += dt
        frame = W.ethernet(
            W.ipv4(
                b"\1\1\1\1",
                b"\2\2\2\2",
                W.sctp_packet(2905, 2905, [W.sctp_data_chunk(1, W.m3ua_data(opc, dpc, sccp))]),
            )
        )
        self.decoder.feed(self.ts, 1, frame)

    def open(self, l3, cell=CELL):
        bsc, msc = self.ref, self.ref + 1
        self.ref += 2
        self.send(BSC, MSC, W.sccp_cr(bsc, W.complete_layer3(cell, l3)))
        self.send(MSC, BSC, W.sccp_cc(bsc, msc))
        return bsc, msc

    def up(self, conn, bssap, dt=1.0):
        self.send(BSC, MSC, W.sccp_dt1(conn[1], bssap), dt)

    def down(self, conn, bssap, dt=1.0):
        self.send(MSC, BSC, W.sccp_dt1(conn[0], bssap), dt)

    def close(self, conn):
        self.send(MSC, BSC, W.sccp_rlsd(conn[0], conn[1]))
        self.send(BSC, MSC, W.sccp_rlc(conn[1], conn[0]))

    def events(self):
        return self.decoder.drain()


def attach(w, ident=IMSI, tmsi=0x11223344, imsi=IMSI):
    conn = w.open(W.lu_request(B.LU_IMSI_ATTACH, ("460", "00", 1), ident))
    if not isinstance(ident, str):
        w.down(conn, W.dtap(W.identity_request(1)))
        w.up(conn, W.dtap(W.identity_response(imsi)))
    w.down(conn, W.dtap(W.lu_accept(("460", "00", 0x1001), tmsi)))
    w.close(conn)


def test_events_before_the_imsi_wait_and_are_attributed_when_it_comes():
    """A call set up under an unknown TMSI is attributed once Common ID names the IMSI."""
    w = Wire()
    conn = w.open(W.cm_service_request(0xABCDEF01))
    w.up(conn, W.dtap(W.cc_setup(1, called="12580")))
    assert w.events() == []
    w.down(conn, W.common_id(IMSI))
    events = w.events()
    assert [(e["kind"], e["imsi"], e["tmsi"]) for e in events] == [("call_start", IMSI, 0xABCDEF01)]


def test_tmsi_learned_from_location_update_identifies_later_connections():
    """After LU Accept assigns a TMSI, a CM Service Request with that TMSI is the same IMSI."""
    w = Wire()
    attach(w)
    assert [e["kind"] for e in w.events()] == ["power_on"]
    conn = w.open(W.cm_service_request(0x11223344), cell=("460", "00", 0x1001, 78))
    events = w.events()
    assert [(e["kind"], e["imsi"], e["ci"]) for e in events] == [("cell_change", IMSI, 78)]
    w.close(conn)


def test_tmsi_reallocation_and_paging_teach_the_cache():
    """TMSI Reallocation Command and BSSMAP Paging both map a TMSI to its IMSI."""
    w = Wire()
    attach(w)
    conn = w.open(W.cm_service_request(0x11223344))
    w.down(conn, W.dtap(W.tmsi_realloc_command(("460", "00", 1), 0x55555555)))
    w.close(conn)
    page = W.paging(IMSI2, 0x66666666, 0x1001)
    w.send(MSC, BSC, W.sccp_udt(W.party(254), W.party(254), page))
    cache = w.decoder.correlator
    assert cache.imsi_of_tmsi(0x55555555, w.ts) == IMSI
    assert cache.imsi_of_tmsi(0x66666666, w.ts) == IMSI2


def test_tmsi_cache_expires_and_is_bounded():
    """Entries older than the TTL are forgotten; beyond max_tmsis the oldest goes first."""
    c = Correlator(max_tmsis=3, tmsi_ttl=10.0)
    for i in range(5):
        c.learn_tmsi(i, f"imsi{i}", 0.0)
    assert (
        len(c.tmsis) == 3 and c.imsi_of_tmsi(0, 1.0) is None and c.imsi_of_tmsi(4, 1.0) == "imsi4"
    )
    assert c.imsi_of_tmsi(4, 11.0) is None


def test_pending_buffer_and_connection_table_are_bounded():
    """A connection never identified keeps at most max_pending events; connections are capped."""
    w = Wire(max_pending=2, max_connections=4)
    conn = w.open(W.cm_service_request(0x01020304))
    for ti in range(5):
        w.up(conn, W.dtap(W.cc_setup(ti, called="1")))
    assert len(w.decoder.correlator.conns[(BSC << 24) | conn[0]].pending) == 2
    # the CM Service Request (a cell-change candidate) and five setups: six, two kept
    assert w.decoder.skipped[("correlation", "pending_overflow")] == 4
    for _ in range(10):
        w.open(W.cm_service_request(0x01020304))
    assert len(w.decoder.correlator.conns) <= 2 * 4
    assert w.decoder.skipped[("correlation", "connection_evicted")] >= 1


def test_unidentified_events_come_out_with_the_tmsi_when_the_connection_ends():
    """Released without an IMSI: the buffered events are emitted with the TMSI only."""
    w = Wire()
    conn = w.open(W.imsi_detach(0x01020304))
    w.close(conn)
    events = w.events()
    assert [(e["kind"], e.get("imsi"), e["tmsi"]) for e in events] == [
        ("power_off", None, 0x01020304)
    ]


def test_handset_change_names_old_and_new_imei():
    """A different IMEI than the last one seen for the IMSI is a handset change."""
    w = Wire()
    imeisv1, imei2 = "3569090012345601", "35690900765432" + luhn_digit("35690900765432")
    for value, kind in ((imeisv1, MI_IMEISV), (imeisv1, MI_IMEISV), (imei2, MI_IMEI)):
        conn = w.open(W.cm_service_request(IMSI))
        w.down(conn, W.dtap(W.identity_request(kind)))
        w.up(conn, W.dtap(W.identity_response(value, kind)))
        w.close(conn)
    changes = [e for e in w.events() if e["kind"] == "handset_change"]
    assert len(changes) == 1
    assert changes[0]["previous_imei"] == imei_from_imeisv(imeisv1) and changes[0]["imei"] == imei2


def test_roaming_in_once_per_foreign_imsi():
    """A foreign IMSI gives one roaming_in; home IMSIs none."""
    w = Wire(home_plmns=("46000", "46002"))
    attach(w, ident="208011234567890", imsi="208011234567890", tmsi=1)
    attach(w, ident="208011234567890", imsi="208011234567890", tmsi=2)
    attach(w, ident=IMSI, tmsi=3)
    kinds = [(e["kind"], e["imsi"][:5]) for e in w.events()]
    assert kinds.count(("roaming_in", "20801")) == 1
    assert ("roaming_in", "46000") not in kinds


def test_call_end_has_cause_and_talk_time():
    """Duration runs from Connect to the first clearing message, with its cause and the Setup's number."""
    w = Wire()
    conn = w.open(W.cm_service_request(IMSI))
    w.up(conn, W.dtap(W.cc_setup(0, called="10086")))
    w.down(conn, W.dtap(W.cc_simple(8, B.CC_CONNECT)), dt=2.0)
    w.up(conn, W.dtap(W.cc_disconnect(0, 17)), dt=42.0)
    w.down(conn, W.dtap(W.cc_release(8, 17)))
    w.up(conn, W.dtap(W.cc_release_complete(0, None)))
    w.close(conn)
    ends = [e for e in w.events() if e["kind"] == "call_end"]
    assert len(ends) == 1 and ends[0]["cause"] == 17 and ends[0]["duration"] == 42.0
    assert ends[0]["peer"] == "10086"


def test_lu_reject_gives_no_event_and_handover_gives_the_new_cell():
    """A rejected LU emits nothing; Handover Performed reports the target cell."""
    w = Wire()
    conn = w.open(W.lu_request(B.LU_NORMAL, ("460", "00", 1), IMSI))
    w.down(conn, W.dtap(W.lu_reject()))
    w.close(conn)
    assert w.events() == []
    conn = w.open(W.cm_service_request(IMSI))
    w.up(conn, W.handover_performed(0x10, ("460", "00", 0x2001, 999)))
    events = w.events()
    assert [(e["kind"], e["lac"], e["ci"]) for e in events] == [("handover", 0x2001, 999)]


def test_idle_connections_expire_and_end_their_call():
    """A connection silent for connection_idle is released: its open call ends at its last message."""
    w = Wire(connection_idle=600.0)
    conn = w.open(W.cm_service_request(IMSI))
    w.up(conn, W.dtap(W.cc_setup(0, called="10086")))
    last = w.ts
    w.events()
    w.ts += 3600
    w.open(W.cm_service_request(IMSI2))
    w.decoder.correlator.expire_idle(w.ts)
    ends = [e for e in w.events() if e["kind"] == "call_end"]
    assert [(e["imsi"], e["timestamp"]) for e in ends] == [(IMSI, last)]
    assert w.decoder.skipped[("correlation", "connection_idle_expired")] == 1
    assert len({id(c) for c in w.decoder.correlator.conns.values()}) == 1


def test_same_handset_by_imei_and_by_imeisv_is_no_change():
    """An MS sends its IMEI with the check digit as 0 (TS 22.016 3): the same handset asked
    for its IMEI, then its IMEISV (check digit computed), is not a handset change."""
    w = Wire()
    body = "35690900123456"
    for value, kind in ((body + "0", MI_IMEI), (body + "01", MI_IMEISV), (body + "0", MI_IMEI)):
        conn = w.open(W.cm_service_request(IMSI))
        w.down(conn, W.dtap(W.identity_request(kind)))
        w.up(conn, W.dtap(W.identity_response(value, kind)))
        w.close(conn)
    assert [e for e in w.events() if e["kind"] == "handset_change"] == []


def test_a_replaced_tmsi_no_longer_names_the_subscriber():
    """After TMSI reallocation the old TMSI is forgotten: the VLR may give it to someone else,
    whose events must not be attributed to the first subscriber."""
    w = Wire()
    attach(w, tmsi=0x11223344)
    conn = w.open(W.cm_service_request(0x11223344))
    w.down(conn, W.dtap(W.tmsi_realloc_command(("460", "00", 1), 0x55555555)))
    w.close(conn)
    cache = w.decoder.correlator
    assert cache.imsi_of_tmsi(0x55555555, w.ts) == IMSI
    assert cache.imsi_of_tmsi(0x11223344, w.ts) is None
    w.events()
    other = w.open(W.cm_service_request(0x11223344))  # the old TMSI, now someone else's
    w.up(other, W.dtap(W.cc_setup(1, called="12580")))
    assert w.events() == []  # waits for an identity, not attributed to IMSI
    w.down(other, W.common_id(IMSI2))
    assert [(e["kind"], e["imsi"]) for e in w.events()] == [("call_start", IMSI2)]


def test_identity_learned_late_does_not_teach_a_replaced_tmsi():
    """A connection under an unknown TMSI that gets a new TMSI, then names its IMSI, teaches
    only the new TMSI."""
    w = Wire()
    conn = w.open(W.lu_request(B.LU_NORMAL, ("460", "00", 1), 0x0BADCAFE))
    w.down(conn, W.dtap(W.lu_accept(("460", "00", 0x1001), 0x22222222)))
    w.down(conn, W.common_id(IMSI))
    w.close(conn)
    cache = w.decoder.correlator
    assert cache.imsi_of_tmsi(0x22222222, w.ts) == IMSI
    assert cache.imsi_of_tmsi(0x0BADCAFE, w.ts) is None
