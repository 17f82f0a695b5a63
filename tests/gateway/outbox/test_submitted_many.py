"""``record_submitted_many`` (a burst of submit answers in one operation) leaves the database
as ``record_submitted`` one by one does: entries, part ids, receipts that overtook their
answer, final states never overwritten; an item that fails is undone alone."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.outbox import store


def fresh(n: int) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    store.create(conn)
    rows = [(f"c{i}", "sms", "k", "1", 0, "{}", 0.0, 9e9, 0.0) for i in range(n)]
    store.insert_entries(conn, rows)
    store.take(conn, "sms", n, 0.0, 30.0)
    store.mark_sending(conn, [f"c{i}" for i in range(n)], 0.0)
    return conn


def snapshot(conn: sqlite3.Connection) -> tuple:
    entries = conn.execute(
        "SELECT contact_id, state, message_id, error, updated_at FROM outbox_entries"
        " ORDER BY contact_id"
    ).fetchall()
    ids = conn.execute(
        "SELECT channel, message_id, contact_id, segment, segments, state FROM outbox_message_ids"
        " ORDER BY channel, message_id"
    ).fetchall()
    early = conn.execute("SELECT * FROM outbox_early_receipts ORDER BY message_id").fetchall()
    return entries, ids, early


answer = st.tuples(
    st.integers(0, 5),  # which entry
    st.integers(1, 3),  # parts
    st.sampled_from([None, "delivered", "undeliverable"]),  # a receipt that overtook it
    st.booleans(),  # the entry already final (a receipt settled it another way)
)


@settings(max_examples=150, deadline=None)
@given(st.lists(answer, min_size=1, max_size=8, unique_by=lambda a: a[0]))
def test_many_is_the_same_as_one_by_one(answers) -> None:
    one, many = fresh(6), fresh(6)
    items = []
    for cid_n, parts, early, final in answers:
        cid = f"c{cid_n}"
        keys = [f"{cid}m{p}" for p in range(parts)]
        for conn in (one, many):
            if final:
                store.record_state(conn, cid, "expired", None, None, 0.5)
            if early is not None:  # the receipt of the first part came before the answer
                assert store.settle_receipt(conn, "sms", keys[0], early, 0.7, None, None) is None
        items.append(("sms", cid, keys, keys[0], 1.0))
    expected = [store.record_submitted(one, *item, None) for item in items]
    got = store.record_submitted_many(many, items, None)
    assert got == expected
    assert snapshot(many) == snapshot(one)


def test_an_item_that_fails_is_undone_alone(monkeypatch) -> None:
    """A receipt waiting makes each answer be recorded on its own; one that raises leaves
    nothing of itself and the others are recorded."""
    conn = fresh(3)
    store.settle_receipt(conn, "sms", "c1m0", "delivered", 0.7, None, None)
    real = store.map_message_ids

    def broken(conn, channel, contact_id, message_ids):
        if contact_id == "c1":
            raise ValueError("a bad id")
        real(conn, channel, contact_id, message_ids)

    monkeypatch.setattr(store, "map_message_ids", broken)
    conn.execute("BEGIN")
    got = store.record_submitted_many(
        conn, [("sms", f"c{i}", [f"c{i}m0"], f"c{i}m0", 1.0) for i in range(3)], None
    )
    conn.execute("COMMIT")
    assert got[0] is None and got[2] is None and isinstance(got[1], ValueError)
    states = dict(conn.execute("SELECT contact_id, state FROM outbox_entries"))
    assert states == {"c0": "submitted", "c1": "sending", "c2": "submitted"}
    assert conn.execute(
        "SELECT count(*) FROM outbox_early_receipts WHERE message_id = 'c1m0'"
    ).fetchone() == (1,)  # still waiting for its answer


def test_a_full_database_fails_the_whole_operation() -> None:
    """Not an item's problem: the error reaches the batch (its transaction is rolled back)."""
    conn = fresh(1)
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    conn.execute("BEGIN")
    with pytest.raises(sqlite3.OperationalError, match="full"):
        store.record_submitted_many(conn, [("sms", "c0", ["m" * 3000], "m", 1.0)], None)
