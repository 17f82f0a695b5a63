"""The outbox's queries find their rows through the partial indexes (a message moving along its
way touches one or two small indexes, not three full ones), and a database made with the older
full indexes is brought to the new ones when it is opened."""

from __future__ import annotations

import sqlite3

import pytest

from gateway.outbox import store

#: query -> the index its plan must search (SQLite uses a partial index only when the query
#: repeats its WHERE: a reworded query would silently scan the whole table)
PLANS = {
    "SELECT seq, contact_id, campaign_id, msisdn, request, attempts, resent FROM outbox_entries"
    " WHERE channel = ? AND state = 'queued' ORDER BY priority DESC, seq LIMIT ?": "outbox_queued",
    "UPDATE outbox_entries SET state = 'queued', updated_at = ? WHERE state = 'retry'"
    " AND not_before <= ?": "outbox_retry",
    "UPDATE outbox_entries SET state = 'queued', lease_until = NULL, updated_at = ?"
    " WHERE state = 'leased' AND lease_until < ?": "outbox_leased",
    "SELECT contact_id FROM outbox_entries WHERE state = 'sending' AND channel = ?": "outbox_sending",
    f"SELECT seq FROM outbox_entries WHERE {store.FINISHED_SQL} AND updated_at < ? LIMIT ?": (
        "outbox_done"
    ),
    f"SELECT state, count(*) FROM outbox_entries WHERE {store.FINISHED_SQL} GROUP BY state": (
        "outbox_done"
    ),
    "SELECT state, count(*) FROM outbox_entries WHERE campaign_id = ? GROUP BY state": (
        "outbox_by_campaign"
    ),
    "SELECT state FROM outbox_message_ids WHERE contact_id = ? AND segments > 1"
    " AND channel = ?": "outbox_message_parts",
}


def _plan(conn: sqlite3.Connection, sql: str) -> str:
    args = (0,) * sql.count("?")
    return " | ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, args))


@pytest.fixture
def conn() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    store.create(conn)
    return conn


@pytest.mark.parametrize("sql", PLANS)
def test_each_query_searches_its_partial_index(conn, sql):
    plan = _plan(conn, sql)
    assert f"USING INDEX {PLANS[sql]}" in plan or f"USING COVERING INDEX {PLANS[sql]}" in plan, plan


def test_the_expiry_and_depth_queries_scan_no_table(conn):
    """due_timers and depths ask one state at a time (an IN list would scan the table)."""
    for state, index in (("queued", "outbox_queued"), ("retry", "outbox_retry")):
        plan = _plan(
            conn,
            "UPDATE outbox_entries SET state = 'expired', error = 'x', updated_at = ?"
            f" WHERE state = '{state}' AND expires_at < ? RETURNING contact_id",
        )
        assert index in plan, plan
    for state in store.WAITING:
        plan = _plan(
            conn,
            f"SELECT channel, count(*) FROM outbox_entries WHERE state = '{state}' GROUP BY channel",
        )
        assert "SCAN outbox_entries" not in plan or "INDEX" in plan, plan


def test_a_message_in_flight_leaves_the_finished_and_waiting_indexes_alone(conn):
    """Each index holds exactly the rows of its state, whatever path they took."""
    now = 1000.0
    rows = [(f"c{i}", "sms", "k", "8613800000000", 0, "{}", now, now + 3600, now) for i in range(6)]
    store.insert_entries(conn, rows)
    taken = store.take(conn, "sms", 4, now, now + 30)
    assert [r[0] for r in taken] == ["c0", "c1", "c2", "c3"]
    assert store.mark_sending(conn, ["c0", "c1", "c2"], now) == ["c0", "c1", "c2"]
    store.record_state(conn, "c0", "submitted", "m0", None, now)
    store.record_state(conn, "c1", "delivered", None, None, now)
    store.schedule_retry(conn, "c2", now, "busy", 5, 1.0, 10.0, True)

    def indexed(index: str, where: str) -> list[str]:
        return [
            r[0]
            for r in conn.execute(
                f"SELECT contact_id FROM outbox_entries INDEXED BY {index} WHERE {where}"
                " ORDER BY contact_id"
            )
        ]

    assert indexed("outbox_queued", "state = 'queued' AND channel = 'sms'") == ["c4", "c5"]
    assert indexed("outbox_leased", "state = 'leased' AND lease_until > 0") == ["c3"]
    assert indexed("outbox_retry", "state = 'retry' AND not_before > 0") == ["c2"]
    assert indexed("outbox_sending", "state = 'sending' AND channel = 'sms'") == []
    assert indexed("outbox_done", f"{store.FINISHED_SQL} AND updated_at > 0") == ["c1"]
    assert store.depths(conn) == {"sms": 4}  # c2 c3 c4 c5
    plain = dict(conn.execute("SELECT state, count(*) FROM outbox_entries GROUP BY state"))
    assert (
        store.counts_by_state(conn)
        == plain
        == {"queued": 2, "leased": 1, "retry": 1, "submitted": 1, "delivered": 1}
    )
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_database_with_the_old_indexes_gets_the_new_ones(tmp_path):
    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.executescript(store.SCHEMA.split("-- Partial indexes")[0])
    old.executescript(
        "CREATE INDEX outbox_take ON outbox_entries (channel, state, priority DESC, seq);"
        "CREATE INDEX outbox_timers ON outbox_entries (state, not_before);"
        "CREATE INDEX outbox_campaign ON outbox_entries (campaign_id, state);"
    )
    old.execute(
        "INSERT INTO outbox_entries (contact_id, channel, campaign_id, msisdn, request, state,"
        " not_before, expires_at, created_at, updated_at)"
        " VALUES ('q', 'sms', 'k', '1', '{}', 'queued', 0, 9e9, 0, 0)"
    )
    old.commit()
    old.close()
    conn = sqlite3.connect(path)
    store.create(conn)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert not names & {"outbox_take", "outbox_timers", "outbox_campaign"}
    assert {"outbox_queued", "outbox_done", "outbox_by_campaign"} <= names
    assert [r[0] for r in store.take(conn, "sms", 5, 1.0, 2.0)] == ["q"]


def test_message_ids_go_with_their_entries_one_part_or_many(conn):
    """Purged entries take their parts' ids along (one-part ids have no contact index: the
    sweep finds them); ids of entries still there stay, and show() lists them either way."""
    rows = [(f"c{i}", "sms", "k", "1", 0, "{}", 0.0, 9e9, 0.0) for i in range(5)]
    store.insert_entries(conn, rows)
    store.take(conn, "sms", 5, 0.0, 30.0)
    store.mark_sending(conn, [f"c{i}" for i in range(5)], 0.0)
    store.record_submitted(conn, "sms", "c0", ["m0"], "m0", 1.0, None)
    store.record_submitted(conn, "sms", "c1", ["m1a", "m1b"], "m1a", 1.0, None)
    store.record_submitted(conn, "sms", "c2", ["m2"], "m2", 1.0, None)
    store.map_message_ids(conn, "sms", "c3", ["other"])  # mapped under another id than the entry's
    store.record_submitted(conn, "sms", "c4", ["m4a", "m4b"], "m4a", 1.0, None)
    assert store.show(conn, "c1")["message_ids"] == ["m1a:submitted", "m1b:submitted"]
    assert store.show(conn, "c0")["message_ids"] == ["m0:submitted"]
    assert store.show(conn, "c3")["message_ids"] == ["other:submitted"]
    for cid in ("c0", "c1", "c3"):
        store.record_state(conn, cid, "delivered", None, None, 2.0)
    assert store.purge_finished(conn, before=3.0) == 3
    deleted = 0
    while n := store.purge_message_ids(conn, limit=2):
        deleted += n
    assert deleted == 4
    left = {r[0] for r in conn.execute("SELECT message_id FROM outbox_message_ids")}
    assert left == {"m2", "m4a", "m4b"}
    assert store.apply_receipt(conn, "sms", "m4a", "delivered") == ("c4", None)
    assert store.apply_receipt(conn, "sms", "m4b", "delivered") == ("c4", "delivered")
