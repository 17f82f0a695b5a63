"""The outbox tables and the SQL that moves entries between states (runs in the worker thread).

States of an entry::

    queued -> leased -> sending -> submitted -> delivered | undeliverable | expired | rejected
       ^        |          |
       |        +----------+--> retry (not_before) --> queued
       +-- (lease expired, or recovery of a lease)
    sending --(crash: the submit answer was lost)--> unknown [--> queued if resend_unknown]
    queued | retry | leased --> cancelled (pre-empted) | expired (not sent in time)

``leased`` means a channel holds the message in memory and has not written it to the network:
safe to hand out again. ``sending`` is persisted *before* the channel writes it, so after a
crash we know which messages may have reached the peer.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from gateway.model import ContactRequest
from gateway.sqlite_base import database_failed, rows_in_chunks

WAITING = ("queued", "retry", "leased", "sending")
FINISHED = ("delivered", "undeliverable", "expired", "rejected", "unknown", "cancelled")
#: "the entry is finished", as the ``outbox_finished`` index and the purge write it
FINISHED_SQL = "(" + " OR ".join(f"state = '{s}'" for s in FINISHED) + ")"

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox_entries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    contact_id TEXT NOT NULL UNIQUE,
    channel TEXT NOT NULL,
    campaign_id TEXT NOT NULL,
    msisdn TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    request TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    resent INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL,
    expires_at REAL NOT NULL,
    lease_until REAL,
    message_id TEXT,
    error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
-- Partial indexes, one per state a query looks for: a message moving along its way changes
-- one or two small indexes instead of three full ones (each with the state in its key). The
-- queries repeat an index's WHERE verbatim (SQLite uses a partial index only then); the
-- finished states are an OR chain, not IN (...): an IN list in an index's WHERE cost ~30 us
-- on every UPDATE of the table (measured), an OR chain nothing. Tested by their query plans.
DROP INDEX IF EXISTS outbox_take;
DROP INDEX IF EXISTS outbox_timers;
DROP INDEX IF EXISTS outbox_campaign;
CREATE INDEX IF NOT EXISTS outbox_queued ON outbox_entries (channel, priority DESC, seq)
    WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS outbox_leased ON outbox_entries (lease_until) WHERE state = 'leased';
CREATE INDEX IF NOT EXISTS outbox_retry ON outbox_entries (not_before) WHERE state = 'retry';
CREATE INDEX IF NOT EXISTS outbox_sending ON outbox_entries (channel) WHERE state = 'sending';
DROP INDEX IF EXISTS outbox_finished;
CREATE INDEX IF NOT EXISTS outbox_done ON outbox_entries (state, updated_at) WHERE {FINISHED_SQL};
CREATE INDEX IF NOT EXISTS outbox_by_campaign ON outbox_entries (campaign_id);
CREATE TABLE IF NOT EXISTS outbox_deferred (
    contact_id TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    request TEXT NOT NULL,
    not_before REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_deferred_due ON outbox_deferred (not_before);
CREATE TABLE IF NOT EXISTS outbox_message_ids (
    channel TEXT NOT NULL,
    message_id TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    segment INTEGER NOT NULL,
    segments INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'submitted',
    PRIMARY KEY (channel, message_id)
);
-- A message's parts by its contact, for the parts of long messages only: a random key indexed
-- for every message cost a page written per message. One-part ids are found by their key and
-- purged by purge_message_ids.
DROP INDEX IF EXISTS outbox_message_contact;
CREATE INDEX IF NOT EXISTS outbox_message_parts ON outbox_message_ids (contact_id)
    WHERE segments > 1;
CREATE TABLE IF NOT EXISTS outbox_early_receipts (
    channel TEXT NOT NULL,
    message_id TEXT NOT NULL,
    state TEXT NOT NULL,
    error TEXT,
    at REAL NOT NULL,
    PRIMARY KEY (channel, message_id)
);
""".replace("{FINISHED_SQL}", FINISHED_SQL)


@attrs.frozen(kw_only=True, slots=True)
class OutboxMessage:
    """A message as a channel takes it from its queue."""

    contact_id: str
    channel: str
    campaign_id: str
    msisdn: str
    request: ContactRequest
    attempts: int = 0
    resent: int = 0  # > 0: it may already have reached the peer once (after a crash)


# -- (de)serialising requests -------------------------------------------------------------------


def _default(obj: Any) -> Any:
    if isinstance(obj, bytes | bytearray):
        return {"__bytes__": base64.b64encode(bytes(obj)).decode("ascii")}
    raise TypeError(f"cannot store {type(obj).__name__} in an outbox entry")


def _hook(obj: dict) -> Any:
    if len(obj) == 1 and "__bytes__" in obj:
        return base64.b64decode(obj["__bytes__"])
    return obj


_ENCODE = json.JSONEncoder(default=_default, separators=(",", ":")).encode
_STR = json.encoder.encode_basestring_ascii


def _default_of(field: Any) -> Any:
    default = field.default
    return default.factory() if isinstance(default, attrs.Factory) else default  # type: ignore[arg-type]


# Fields written only when they differ from their default (a batch writes a million entries:
# the defaults are most of them); load_request gives them back through the constructor.
_OPTIONAL = tuple(
    (f.name, _default_of(f)) for f in attrs.fields(ContactRequest) if f.default is not attrs.NOTHING
)
# The last content encoded, and its text: a batch's requests share one content mapping (the
# campaign's text), encoded once instead of a million times. Holding the object keeps its
# identity from being reused; contents are never changed after a request is made.
_last_content: tuple[Any, str] = (None, "")


def _content_text(content: Any) -> str:
    global _last_content
    last = _last_content  # one read, one write: safe from any thread
    if content is not last[0]:
        last = _last_content = (content, _encode_content(content))
    return last[1]


def _encode_content(content: Any) -> str:
    """``_ENCODE(content)``; a mapping of text to text (an SMS's ``{"text": ...}``) without the
    encoder's machinery (a new C encoder per call: half of dump_request). Same output."""
    if type(content) is dict:
        parts = []
        for key, value in content.items():
            if type(key) is not str or type(value) is not str:
                return _ENCODE(content)
            parts.append(f"{_STR(key)}:{_STR(value)}")
        return "{" + ",".join(parts) + "}"
    return _ENCODE(content)


_FLOAT_REPR = float.__repr__
_INT_REPR = int.__repr__
_INFINITIES = (float("-inf"), float("inf"))


def _encode_value(value: Any) -> str:
    """``_ENCODE(value)`` for a request field; the scalars a request holds (its creation time,
    trigger, priority, flags) without building a JSON encoder per call. Same output."""
    kind = type(value)
    if kind is str:
        return _STR(value)
    if kind is float and value == value and value not in _INFINITIES:
        return _FLOAT_REPR(value)
    if kind is int:
        return _INT_REPR(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    return _ENCODE(value)


def dump_request(request: ContactRequest) -> str:
    r = request
    parts = [
        '{"contact_id":',
        _STR(r.contact_id),
        ',"msisdn":',
        _STR(r.msisdn),
        ',"campaign_id":',
        _STR(r.campaign_id),
        ',"channel":',
        _STR(r.channel),
    ]
    for name, default in _OPTIONAL:
        value = getattr(r, name)
        if value != default or type(value) is not type(default):
            parts.append(f',"{name}":')
            parts.append(_content_text(value) if name == "content" else _encode_value(value))
    parts.append("}")
    return "".join(parts)


_loads = json.loads


def load_request(text: str) -> ContactRequest:
    # the hook (a Python call per mapping) only for a text that holds bytes
    if '"__bytes__"' in text:
        return ContactRequest(**_loads(text, object_hook=_hook))
    return ContactRequest(**_loads(text))


# -- operations (each runs inside a transaction opened by the group committer) -----------------------


def create(conn: sqlite3.Connection) -> None:
    conn.executescript(SCHEMA)


def insert_entries(conn: sqlite3.Connection, rows: Sequence[tuple]) -> list[str]:
    """Insert (contact_id, channel, campaign_id, msisdn, priority, request, not_before, expires_at, now); new ids.

    Entries already there (same contact_id) are left alone: one lookup for the batch, then
    one ``executemany`` of the new ones (a statement per row cost twice as much)."""
    if not rows:
        return []
    present = {
        r[0]
        for r in rows_in_chunks(
            conn,
            "SELECT contact_id FROM outbox_entries WHERE contact_id IN ({marks})",
            [r[0] for r in rows],
        )
    }
    fresh, seen = [], present
    for row in rows:
        if row[0] not in seen:
            seen.add(row[0])
            fresh.append((*row[:8], row[8], row[8]))
    conn.executemany(
        "INSERT INTO outbox_entries (contact_id, channel, campaign_id, msisdn, priority, request,"
        " state, not_before, expires_at, created_at, updated_at) VALUES (?,?,?,?,?,?,'queued',?,?,?,?)",
        fresh,
    )
    return [r[0] for r in fresh]


def take(
    conn: sqlite3.Connection, channel: str, limit: int, now: float, lease_until: float
) -> list[tuple]:
    """Lease up to ``limit`` queued messages of ``channel``, highest priority first.

    Returns plain rows (contact_id, campaign_id, msisdn, request text, attempts, resent), which
    :func:`messages_from_rows` turns into messages in the caller's process: a writer process
    sends back strings (cheap to pickle) and the outbox uses the requests it still holds."""
    rows = conn.execute(
        "SELECT seq, contact_id, campaign_id, msisdn, request, attempts, resent FROM outbox_entries"
        " WHERE channel = ? AND state = 'queued' ORDER BY priority DESC, seq LIMIT ?",
        (channel, limit),
    ).fetchall()
    if not rows:
        return []
    conn.executemany(
        "UPDATE outbox_entries SET state = 'leased', lease_until = ?, updated_at = ? WHERE seq = ?",
        [(lease_until, now, r[0]) for r in rows],
    )
    return [r[1:] for r in rows]


def messages_from_rows(
    channel: str,
    rows: Sequence[tuple],
    staged: dict[str, tuple[str, ContactRequest, float]] | None = None,
) -> list[OutboxMessage]:
    """:func:`take`'s rows as messages. ``staged``: contact_id -> (the request's stored text,
    the request) kept by the outbox when it queued them: a message whose stored text is that
    text gets that request instead of one decoded from the text (decoding cost a quarter of
    the writer's time). Entries used are removed."""
    pop = staged.pop if staged is not None else (lambda _cid, default: default)
    out = []
    for contact_id, campaign_id, msisdn, text, attempts, resent in rows:
        kept = pop(contact_id, None)
        out.append(
            OutboxMessage(
                contact_id=contact_id,
                channel=channel,
                campaign_id=campaign_id,
                msisdn=msisdn,
                request=kept[1] if kept is not None and kept[0] == text else load_request(text),
                attempts=attempts,
                resent=resent,
            )
        )
    return out


def mark_sending(conn: sqlite3.Connection, contact_ids: Sequence[str], now: float) -> list[str]:
    """Leased entries become ``sending``; the ids marked (each once). One statement per 500
    ids (one per id cost a statement's overhead and a GIL hand-over each)."""
    return [
        r[0]
        for r in rows_in_chunks(
            conn,
            "UPDATE outbox_entries SET state = 'sending', updated_at = ? WHERE state = 'leased'"
            " AND contact_id IN ({marks}) RETURNING contact_id",
            list(dict.fromkeys(contact_ids)),
            (now,),
        )
    ]


def release_leases(conn: sqlite3.Connection, contact_ids: Sequence[str], now: float) -> int:
    n = 0
    for cid in contact_ids:
        n += conn.execute(
            "UPDATE outbox_entries SET state = 'queued', lease_until = NULL, updated_at = ?"
            " WHERE contact_id = ? AND state = 'leased'",
            (now, cid),
        ).rowcount
    return n


def schedule_retry(
    conn: sqlite3.Connection,
    contact_id: str,
    now: float,
    error: str | None,
    max_attempts: int,
    backoff: float,
    backoff_max: float,
    count_attempt: bool,
) -> str | None:
    """Back to the queue after a delay; returns the state ('retry', or 'rejected'/'expired' when given up)."""
    row = conn.execute(
        "SELECT attempts, expires_at, state FROM outbox_entries WHERE contact_id = ?", (contact_id,)
    ).fetchone()
    if row is None or row[2] not in ("leased", "sending", "unknown"):
        return None
    attempts = row[0] + (1 if count_attempt else 0)
    delay = min(backoff * (2 ** max(attempts - 1, 0)), backoff_max)
    if attempts >= max_attempts:
        state = "rejected"
    elif now + delay > row[1]:
        state = "expired"
    else:
        state = "retry"
    conn.execute(
        "UPDATE outbox_entries SET state = ?, attempts = ?, not_before = ?, error = ?, lease_until = NULL,"
        " updated_at = ? WHERE contact_id = ?",
        (state, attempts, now + delay, error, now, contact_id),
    )
    return state


def record_state(
    conn: sqlite3.Connection,
    contact_id: str,
    state: str,
    message_id: str | None,
    error: str | None,
    now: float,
) -> bool:
    """Store a reported state. ``submitted`` never overwrites a final state: a receipt may be
    recorded before the submit answer it follows (they are reported concurrently)."""
    guard = (
        " AND state IN ('queued', 'retry', 'leased', 'sending', 'unknown')"
        if state == "submitted"
        else ""
    )
    cur = conn.execute(
        "UPDATE outbox_entries SET state = ?, message_id = COALESCE(?, message_id),"
        " error = COALESCE(?, error), updated_at = ? WHERE contact_id = ?" + guard,
        (state, message_id, error, now, contact_id),
    )
    return bool(cur.rowcount)


def map_message_ids(
    conn: sqlite3.Connection, channel: str, contact_id: str, message_ids: Sequence[str]
) -> None:
    conn.executemany(
        "INSERT OR REPLACE INTO outbox_message_ids (channel, message_id, contact_id, segment, segments)"
        " VALUES (?,?,?,?,?)",
        [(channel, mid, contact_id, i, len(message_ids)) for i, mid in enumerate(message_ids)],
    )


_STATE_RANK = {"delivered": 0, "unknown": 1, "expired": 2, "undeliverable": 3, "rejected": 4}


def apply_receipt(
    conn: sqlite3.Connection, channel: str, message_id: str, state: str
) -> tuple[str, str | None] | None:
    """Record one segment's receipt: ``(contact_id, overall final state or None)``; None if unknown id."""
    row = conn.execute(
        "SELECT contact_id, segments FROM outbox_message_ids WHERE channel = ? AND message_id = ?",
        (channel, message_id),
    ).fetchone()
    if row is None:
        return None
    contact_id = row[0]
    conn.execute(
        "UPDATE outbox_message_ids SET state = ? WHERE channel = ? AND message_id = ?",
        (state, channel, message_id),
    )
    if row[1] == 1:  # one part: its state is the message's (no second lookup)
        return contact_id, None if state == "submitted" else state
    states = [
        r[0]
        for r in conn.execute(
            "SELECT state FROM outbox_message_ids WHERE contact_id = ? AND segments > 1"
            " AND channel = ?",
            (contact_id, channel),
        )
    ]
    if any(s == "submitted" for s in states):
        return contact_id, None
    # Every segment has a final state: the message is as bad as its worst segment.
    return contact_id, max(states, key=lambda s: _STATE_RANK.get(s, 1))


#: ``fn(conn, contact_id, prior_state, final_state, now)``: the ledger side of a final state
#: settled by receipts, in the same transaction (see ``SqliteContactControl.receipt_recorder``).
LedgerRecorder = Callable[[sqlite3.Connection, str, str, str, float], None]


def settle_receipt(
    conn: sqlite3.Connection,
    channel: str,
    message_id: str,
    state: str,
    now: float,
    error: str | None,
    record_ledger: LedgerRecorder | None,
) -> tuple[str, str | None] | None:
    """:func:`apply_receipt`; once the message has its final state, store it on the entry and
    (``record_ledger``) reconcile the contact in the ledger: all in the caller's transaction.

    A receipt whose id is not mapped yet (it overtook the recording of its submit answer) is
    kept in ``outbox_early_receipts`` in this same transaction, so it is durable before the
    SMSC hears it acknowledged; :func:`record_submitted` applies it. Returns None then."""
    result = apply_receipt(conn, channel, message_id, state)
    if result is None:
        conn.execute(
            "INSERT OR REPLACE INTO outbox_early_receipts (channel, message_id, state, error, at)"
            " VALUES (?,?,?,?,?)",
            (channel, message_id, state, error, now),
        )
        return None
    contact_id, final = result
    if final is None:
        return result
    _settle_final(conn, contact_id, final, now, error, record_ledger)
    return result


def settle_receipts(
    conn: sqlite3.Connection,
    channel: str,
    items: Sequence[tuple[str, str, str | None]],
    now: float,
    record_ledger: LedgerRecorder | None,
) -> list[tuple[str, str | None] | None]:
    """:func:`settle_receipt` for each ``(message_id, state, error)``, in order."""
    return [
        settle_receipt(conn, channel, mid, state, now, error, record_ledger)
        for mid, state, error in items
    ]


def _settle_final(
    conn: sqlite3.Connection,
    contact_id: str,
    final: str,
    now: float,
    error: str | None,
    record_ledger: LedgerRecorder | None,
) -> None:
    row = conn.execute(
        "SELECT state FROM outbox_entries WHERE contact_id = ?", (contact_id,)
    ).fetchone()
    prior = row[0] if row is not None else ""
    record_state(conn, contact_id, final, None, None if final == "delivered" else error, now)
    if record_ledger is not None and prior != final:  # a repeated receipt changes nothing
        record_ledger(conn, contact_id, prior, final, now)


def record_submitted(
    conn: sqlite3.Connection,
    channel: str,
    contact_id: str,
    message_ids: Sequence[str],
    message_id: str | None,
    now: float,
    record_ledger: LedgerRecorder | None,
) -> tuple[str, str | None] | None:
    """A submit answer: the entry becomes ``submitted``, the peer's ids of its parts are mapped
    (for receipts), and receipts that arrived before it (``outbox_early_receipts``) are applied,
    all in one transaction. Returns ``(contact_id, final state)`` when those receipts settled
    the message, else None."""
    record_state(conn, contact_id, "submitted", message_id, None, now)
    map_message_ids(conn, channel, contact_id, message_ids)
    settled: tuple[str, str | None] | None = None
    for mid in message_ids:
        early = conn.execute(
            "SELECT state, error FROM outbox_early_receipts WHERE channel = ? AND message_id = ?",
            (channel, mid),
        ).fetchone()
        if early is None:
            continue
        conn.execute(
            "DELETE FROM outbox_early_receipts WHERE channel = ? AND message_id = ?",
            (channel, mid),
        )
        result = settle_receipt(conn, channel, mid, early[0], now, early[1], record_ledger)
        if result is not None and result[1] is not None:
            settled = result
    return settled


#: ``record_submitted_many``'s items: (channel, contact_id, part ids, message_id, at)
SubmitAnswer = tuple[str, str, Sequence[str], "str | None", float]


def record_submitted_many(
    conn: sqlite3.Connection,
    items: Sequence[SubmitAnswer],
    record_ledger: LedgerRecorder | None,
) -> list[Any]:
    """:func:`record_submitted` for many submit answers in one operation: per item its result,
    or the exception that failed it (that item alone: its writes are undone).

    The common case (no receipt waiting in ``outbox_early_receipts``) is two statements for
    all: the entries' states, then their parts' ids."""
    conn.execute("SAVEPOINT submitted_many")
    try:
        early = conn.execute("SELECT 1 FROM outbox_early_receipts LIMIT 1").fetchone()
        if early is None:
            conn.executemany(
                "UPDATE outbox_entries SET state = 'submitted',"
                " message_id = COALESCE(?, message_id), updated_at = ? WHERE contact_id = ?"
                " AND state IN ('queued', 'retry', 'leased', 'sending', 'unknown')",
                [(message_id, at, contact_id) for _c, contact_id, _k, message_id, at in items],
            )
            conn.executemany(
                "INSERT OR REPLACE INTO outbox_message_ids"
                " (channel, message_id, contact_id, segment, segments) VALUES (?,?,?,?,?)",
                [
                    (channel, mid, contact_id, i, len(keys))
                    for channel, contact_id, keys, _m, _a in items
                    for i, mid in enumerate(keys)
                ],
            )
            conn.execute("RELEASE submitted_many")
            return [None] * len(items)
    except sqlite3.Error as exc:
        if database_failed(exc):  # full, I/O: the batch fails (SQLite may have rolled back)
            raise
        conn.execute("ROLLBACK TO submitted_many")
        conn.execute("RELEASE submitted_many")
    else:
        conn.execute("RELEASE submitted_many")
    results: list[Any] = []  # receipts overtook some: each on its own, as record_submitted
    for channel, contact_id, keys, message_id, at in items:
        conn.execute("SAVEPOINT submitted_one")
        try:
            results.append(
                record_submitted(conn, channel, contact_id, keys, message_id, at, record_ledger)
            )
        except Exception as exc:
            if database_failed(exc):
                raise
            conn.execute("ROLLBACK TO submitted_one")
            conn.execute("RELEASE submitted_one")
            results.append(exc)
        else:
            conn.execute("RELEASE submitted_one")
    return results


def purge_early_receipts(conn: sqlite3.Connection, before: float) -> int:
    """Forget receipts that matched no submit answer since ``before`` (not ours, or lost)."""
    return conn.execute("DELETE FROM outbox_early_receipts WHERE at < ?", (before,)).rowcount


def cancel(conn: sqlite3.Connection, contact_id: str, reason: str, now: float) -> bool:
    cur = conn.execute(
        "UPDATE outbox_entries SET state = 'cancelled', error = ?, updated_at = ?"
        " WHERE contact_id = ? AND state IN ('queued', 'retry', 'leased')",
        (reason, now, contact_id),
    )
    if cur.rowcount:
        return True
    return bool(
        conn.execute("DELETE FROM outbox_deferred WHERE contact_id = ?", (contact_id,)).rowcount
    )


def recover(
    conn: sqlite3.Connection,
    channel: str | None,
    resend_unknown: bool,
    now: float,
    record_lost: Callable[[sqlite3.Connection, list[tuple], float], None] | None = None,
) -> tuple[int, int, list[tuple]]:
    """After a crash (or a channel restart): leases back to the queue; ``sending`` become unknown.

    ``record_lost(conn, rows, now)`` records the messages caught ``sending`` (rows of
    contact_id, channel, msisdn, campaign_id, priority) in the contact ledger, in this same
    transaction: their outcome survives the next crash (the row is no longer ``sending``).
    Returns (leases released, unknown, [(contact_id, channel, msisdn) of every one caught]).
    """
    where, args = ("AND channel = ?", (channel,)) if channel else ("", ())
    released = conn.execute(
        f"UPDATE outbox_entries SET state = 'queued', lease_until = NULL, updated_at = ? WHERE state = 'leased' {where}",
        (now, *args),
    ).rowcount
    lost = conn.execute(
        f"SELECT contact_id, channel, msisdn, campaign_id, priority FROM outbox_entries"
        f" WHERE state = 'sending' {where}",
        args,
    ).fetchall()
    if lost and record_lost is not None:
        record_lost(conn, lost, now)
    if resend_unknown:
        conn.execute(
            f"UPDATE outbox_entries SET state = 'queued', resent = resent + 1, updated_at = ? WHERE state = 'sending' {where}",
            (now, *args),
        )
    else:
        conn.execute(
            f"UPDATE outbox_entries SET state = 'unknown', error = 'crash: submit answer lost', updated_at = ?"
            f" WHERE state = 'sending' {where}",
            (now, *args),
        )
    return released, len(lost), [r[:3] for r in lost]


def due_timers(conn: sqlite3.Connection, now: float) -> tuple[int, int, list[tuple]]:
    """Retries due -> queued; expired leases -> queued; entries past expiry -> expired (returned)."""
    requeued = conn.execute(
        "UPDATE outbox_entries SET state = 'queued', updated_at = ? WHERE state = 'retry' AND not_before <= ?",
        (now, now),
    ).rowcount
    leases = conn.execute(
        "UPDATE outbox_entries SET state = 'queued', lease_until = NULL, updated_at = ?"
        " WHERE state = 'leased' AND lease_until < ?",
        (now, now),
    ).rowcount
    expired = []
    for state in ("queued", "retry"):  # one query per partial index
        expired += conn.execute(
            "UPDATE outbox_entries SET state = 'expired', error = 'not sent before expiry',"
            f" updated_at = ? WHERE state = '{state}' AND expires_at < ?"
            " RETURNING contact_id, channel, msisdn",
            (now, now),
        ).fetchall()
    return requeued, leases, expired


def purge_finished(conn: sqlite3.Connection, before: float, limit: int = 10_000) -> int:
    """Delete up to ``limit`` finished entries last changed before ``before`` (their message
    ids follow in :func:`purge_message_ids`)."""
    seqs = [
        r[0]
        for r in conn.execute(
            f"SELECT seq FROM outbox_entries WHERE {FINISHED_SQL} AND updated_at < ? LIMIT ?",
            (before, limit),
        )
    ]
    conn.executemany("DELETE FROM outbox_entries WHERE seq = ?", [(q,) for q in seqs])
    return len(seqs)


def purge_message_ids(conn: sqlite3.Connection, limit: int = 10_000) -> int:
    """Delete the message ids whose entry was purged, among the ``limit`` oldest ones; the
    number deleted. Ids are mapped in about the order their entries finish and go, so the
    oldest are the ones to look at: the caller repeats while this deletes some."""
    return conn.execute(
        "DELETE FROM outbox_message_ids WHERE rowid IN (SELECT m.rowid FROM"
        " (SELECT rowid, contact_id FROM outbox_message_ids ORDER BY rowid LIMIT ?) AS m"
        " WHERE NOT EXISTS (SELECT 1 FROM outbox_entries e WHERE e.contact_id = m.contact_id))",
        (limit,),
    ).rowcount


def insert_deferred(
    conn: sqlite3.Connection, contact_id: str, channel: str, request: str, not_before: float
) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO outbox_deferred (contact_id, channel, request, not_before) VALUES (?,?,?,?)",
        (contact_id, channel, request, not_before),
    )


def insert_deferred_many(conn: sqlite3.Connection, rows: Sequence[tuple]) -> None:
    """Hold (contact_id, channel, request, not_before) rows; a newer one replaces an older."""
    conn.executemany(
        "INSERT OR REPLACE INTO outbox_deferred (contact_id, channel, request, not_before) VALUES (?,?,?,?)",
        rows,
    )


def due_deferred(conn: sqlite3.Connection, now: float, limit: int = 1000) -> list[ContactRequest]:
    """Deferred requests due now. They stay stored until :func:`delete_deferred`, after their
    new decision is durable: a crash or a failed decision in between must not drop them."""
    rows = conn.execute(
        "SELECT request FROM outbox_deferred WHERE not_before <= ? ORDER BY not_before LIMIT ?",
        (now, limit),
    ).fetchall()
    return [load_request(r[0]) for r in rows]


def delete_deferred(conn: sqlite3.Connection, contact_id: str) -> None:
    conn.execute("DELETE FROM outbox_deferred WHERE contact_id = ?", (contact_id,))


def depths(conn: sqlite3.Connection) -> dict[str, int]:
    out: dict[str, int] = {}
    for state in WAITING:  # one query per partial index
        for channel, n in conn.execute(
            f"SELECT channel, count(*) FROM outbox_entries WHERE state = '{state}' GROUP BY channel"
        ):
            out[channel] = out.get(channel, 0) + n
    for channel, n in conn.execute(
        "SELECT channel, count(*) FROM outbox_deferred GROUP BY channel"
    ):
        out[channel] = out.get(channel, 0) + n
    return out


def counts_by_state(
    conn: sqlite3.Connection, campaign_id: str | None = None, channel: str | None = None
) -> dict[str, int]:
    if campaign_id is not None:
        rows = conn.execute(
            "SELECT state, count(*) FROM outbox_entries WHERE campaign_id = ? GROUP BY state",
            (campaign_id,),
        )
    elif channel is not None:
        rows = conn.execute(
            "SELECT state, count(*) FROM outbox_entries WHERE channel = ? GROUP BY state",
            (channel,),
        )
    else:
        # from the indexes, not the rows (``gatewayctl outbox`` and monitoring ask it often):
        # each waiting state its partial index, the finished ones theirs, ``submitted`` (no
        # index of its own: it would be written twice per message) what remains of the total
        counts: dict[str, int] = {}
        for state in WAITING:
            counts[state] = conn.execute(
                f"SELECT count(*) FROM outbox_entries WHERE state = '{state}'"
            ).fetchone()[0]
        counts.update(
            conn.execute(
                f"SELECT state, count(*) FROM outbox_entries WHERE {FINISHED_SQL} GROUP BY state"
            ).fetchall()
        )
        total = conn.execute("SELECT count(*) FROM outbox_entries").fetchone()[0]
        counts["submitted"] = total - sum(counts.values())
        return {state: n for state, n in counts.items() if n}
    return dict(rows.fetchall())


def show(conn: sqlite3.Connection, contact_id: str) -> dict | None:
    conn.row_factory = sqlite3.Row
    try:
        row = conn.execute(
            "SELECT * FROM outbox_entries WHERE contact_id = ?", (contact_id,)
        ).fetchone()
        if row is None:
            return None
        entry = {k: row[k] for k in row.keys() if k != "request"}
        # a long message's parts by the index; one part by its id (or, mapped under another
        # id than the entry's, by a scan: an operator's question, not the message path)
        parts = conn.execute(
            "SELECT message_id, state FROM outbox_message_ids WHERE contact_id = ?"
            " AND segments > 1 ORDER BY segment",
            (contact_id,),
        ).fetchall()
        if not parts and row["message_id"] is not None:
            parts = conn.execute(
                "SELECT message_id, state FROM outbox_message_ids WHERE channel = ?"
                " AND message_id = ? AND contact_id = ?",
                (row["channel"], row["message_id"], contact_id),
            ).fetchall()
        if not parts:
            parts = conn.execute(
                "SELECT message_id, state FROM outbox_message_ids WHERE contact_id = ?"
                " ORDER BY segment",
                (contact_id,),
            ).fetchall()
        entry["message_ids"] = [r["message_id"] + ":" + r["state"] for r in parts]
        return entry
    finally:
        conn.row_factory = None


class BatchFailed(Exception):
    """One operation of a batch raised: the batch is rolled back and run again op by op."""


def run_batch(conn: sqlite3.Connection, ops: Sequence[list]) -> None:
    """Run queued operations in the caller's transaction.

    Fast path: all of them straight. If one raises, the transaction is rolled back (by the
    caller) and :func:`run_batch_isolated` runs them again, each in a savepoint, so that one
    bad operation fails alone.
    """
    for op in ops:
        try:
            op[2] = op[0](conn, *op[1])
        except Exception as exc:
            raise BatchFailed() from exc


def run_batch_isolated(conn: sqlite3.Connection, ops: Sequence[list]) -> None:
    for op in ops:
        fn, args = op[0], op[1]
        op[2] = None
        conn.execute("SAVEPOINT op")
        try:
            op[2] = fn(conn, *args)
        except Exception as exc:
            conn.execute("ROLLBACK TO op")
            op[3] = exc
        conn.execute("RELEASE op")
