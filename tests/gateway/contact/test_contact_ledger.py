"""The ledger: group commit, lookup tables filled behind the writes, queries across both."""

from __future__ import annotations

import trio

from gateway.contact import ledger as ledger_module
from gateway.contact.ledger import Ledger
from gateway.store import StateWriter, open_sqlite, open_state_writer
from gateway.testing import wait_until


def _row(i: int) -> tuple:
    return (
        float(i),
        "allowed",
        f"c{i}",
        f"86{i % 7}",
        f"k{i % 3}",
        "sms",
        "marketing",
        0,
        None,
        None,
        None,
        None,
        None,
    )


async def test_queries_see_indexed_rows_and_the_unindexed_tail(tmp_path, monkeypatch) -> None:
    """By subscriber or campaign, newest first, whether or not the indexer caught up."""
    monkeypatch.setattr(ledger_module, "INDEX_CHUNK", 40)
    async with open_state_writer(tmp_path / "l.sqlite") as writer:
        await writer.setup(Ledger.create_schema)
        ledger = Ledger(writer)
        await ledger.durable(ledger.extend([_row(i) for i in range(100)]))
        assert await ledger.index_pending() == 40  # 60 rows left in the tail
        await ledger.durable(ledger.append(_row(100)))
        for _ in range(2):
            expected_m = [i for i in range(100, -1, -1) if i % 7 == 3]
            rows = await ledger.query(msisdn="863", limit=1000)
            assert [r["contact_id"] for r in rows] == [f"c{i}" for i in expected_m]
            both = await ledger.query(msisdn="863", campaign_id="k1", limit=5)
            assert [r["contact_id"] for r in both] == [f"c{i}" for i in expected_m if i % 3 == 1][
                :5
            ]
            by_campaign = await ledger.query(campaign_id="k2", limit=1000)
            assert len(by_campaign) == sum(1 for i in range(101) if i % 3 == 2)
            while await ledger.index_pending():  # now fully indexed: same answers
                pass


async def test_group_commit_shares_transactions() -> None:
    """Many concurrent appends are committed in far fewer transactions, each durable on return."""
    async with open_state_writer(":memory:") as writer:
        await writer.setup(Ledger.create_schema)
        ledger = Ledger(writer)

        async def one(i: int) -> None:
            await ledger.durable(ledger.append(_row(i)))

        async with trio.open_nursery() as writers:
            for i in range(500):
                writers.start_soon(one, i)
        assert ledger.rows_written == 500 and ledger.commits < 50


def test_start_up_reads_only_the_horizon() -> None:
    """Bisection on seq finds the first row of the horizon (minus a margin for clock steps)."""
    import sqlite3

    from gateway.contact.ledger import first_seq_since, load_counter_rows

    conn = sqlite3.connect(":memory:")
    Ledger.create_schema(conn)
    conn.executemany(
        "INSERT INTO contact_ledger (at, event, contact_id, msisdn) VALUES (?, 'allowed', ?, '861')",
        [(i * 3600.0, f"c{i}") for i in range(1000)],
    )
    assert first_seq_since(conn, 500 * 3600.0, margin=0) == 501  # seq starts at 1
    assert first_seq_since(conn, 500 * 3600.0) == 501 - 24
    assert first_seq_since(conn, float("-inf")) == 0
    assert first_seq_since(conn, 10**9) == 1000  # past the end: the last row, filtered by at
    assert len(load_counter_rows(conn, 990 * 3600.0)) == 10


async def test_retention_prunes_old_rows_and_lookups(open_sqlite, clock) -> None:
    """Rows older than ledger_retention go, with their lookup entries; recent ones stay."""
    from contact_helpers import req

    async with open_sqlite({"ledger_retention": "30d"}) as cc:
        await cc.decide(req("861", contact_id="old"))
        await cc.ledger.index_pending()
        clock.advance(31 * 86400)
        await cc.decide(req("861", contact_id="new"))
        assert await cc.prune_ledger() == 1
        assert await cc.prune_ledger() == 0  # at most once an hour
        assert [r["contact_id"] for r in await cc.ledger.query(msisdn="861")] == ["new"]
        rows = await cc.ledger.worker.run(
            lambda c: c.execute("SELECT count(*) FROM contact_ledger_by_msisdn").fetchone()
        )
        assert rows == (0,)


def test_retention_must_cover_the_horizon() -> None:
    """A retention shorter than the longest cooldown is refused."""
    import pytest

    from gateway.contact.config import parse_contact_config
    from gateway.errors import ConfigError

    with pytest.raises(ConfigError, match="ledger_retention"):
        parse_contact_config({"ledger_retention": "7d", "cooldowns": {"telemarketing": "60d"}})


async def test_a_cancelled_flush_is_not_reported_durable(tmp_path) -> None:
    """A flush cancelled before its rows were written fails its waiters instead of telling them 'durable'."""
    import pytest

    from gateway.errors import StoreError

    conn = open_sqlite(tmp_path / "l.sqlite")
    Ledger.create_schema(conn)
    writer = StateWriter(conn, tmp_path / "l.sqlite")  # its loop is not running
    ledger = Ledger(writer)
    batch = ledger.append(_row(1))
    async with writer._limiter:  # the writer thread is busy
        with trio.move_on_after(0.05):
            await ledger.flush()
    with pytest.raises(StoreError, match=r"l\.sqlite"):
        await ledger.durable(batch)
    assert await writer.run(
        lambda c: c.execute("SELECT count(*) FROM contact_ledger").fetchone()
    ) == (0,)


async def test_the_indexer_leaves_a_busy_writer_alone_up_to_the_backlog(
    tmp_path, monkeypatch
) -> None:
    """While the writer is busy the lookup tables wait (until INDEX_BACKLOG rows are behind);
    once it idles they catch up; a forced round (the first after start) runs regardless."""
    monkeypatch.setattr(ledger_module, "INDEX_CHUNK", 10)
    monkeypatch.setattr(ledger_module, "INDEX_BACKLOG", 50)

    async def indexed(writer: StateWriter) -> int:
        return await writer.run(
            lambda c: c.execute("SELECT count(*) FROM contact_ledger_by_msisdn").fetchone()[0]
        )

    async with open_state_writer(tmp_path / "l.sqlite") as writer:
        await writer.setup(Ledger.create_schema)
        ledger = Ledger(writer)
        busy = [True]
        monkeypatch.setattr(writer, "busy", lambda: busy[0])
        await ledger.durable(ledger.extend([_row(i) for i in range(25)]))
        assert await ledger.index_round(force=True) == 25  # busy or not
        await ledger.durable(ledger.extend([_row(i) for i in range(25, 65)]))
        assert await ledger.index_round() == 0  # 40 behind, under the backlog: left alone
        assert ledger.index_deferred == 1 and await indexed(writer) == 25
        await ledger.durable(ledger.extend([_row(i) for i in range(65, 90)]))
        # 65 behind: filled although busy, until less than the backlog is behind
        assert await ledger.index_round() == 20
        assert await indexed(writer) == 45 and ledger.index_backlog() == 45
        busy[0] = False
        assert await ledger.index_round() == 45  # idle: all of it
        assert await indexed(writer) == 90 and ledger.index_backlog() == 0


async def test_the_indexer_task_catches_up_when_the_writer_idles(tmp_path) -> None:
    """The background task: rows written are in the lookup tables soon after, by itself."""
    async with open_state_writer(tmp_path / "l.sqlite") as writer:
        await writer.setup(Ledger.create_schema)
        ledger = Ledger(writer)
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda **kw: ledger.serve_indexer(interval=0.01, **kw))
            await ledger.durable(ledger.extend([_row(i) for i in range(30)]))

            async def caught_up() -> bool:
                return bool(
                    await writer.run(
                        lambda c: (
                            c.execute("SELECT count(*) FROM contact_ledger_by_msisdn").fetchone()[0]
                            == 30
                        )
                    )
                )

            await wait_until(caught_up, within=10)
            nursery.cancel_scope.cancel()
