"""Redis backend specifics: nodes share one view, hash-tagged keys, script reload."""

from __future__ import annotations

import trio
import trio.lowlevel
from contact_helpers import req

from gateway.resp.client import open_redis

DAY1 = {"caps": {"sms_day": {"scope": "channel", "window": "day", "limit": 1}}}


async def test_two_nodes_share_one_view(open_redis_cc) -> None:
    """A contact reserved on one node fills the cap for the other; a release on either refunds it."""
    async with open_redis_cc(DAY1, prefix="shared") as a, open_redis_cc(DAY1, prefix="shared") as b:
        assert (await a.decide(req("861", contact_id="n1"))).allowed
        assert (await b.decide(req("861", contact_id="n2"))).reason == "cap.channel.day"
        assert await b.release("n1", "send_failed")  # b finds the subscriber through the index key
        assert not await a.release("n1", "send_failed")
        assert (await b.decide(req("861", contact_id="n3"))).allowed


async def test_keys_carry_the_subscriber_hash_tag(open_redis_cc, redis_server) -> None:
    """Every per-subscriber key has the {msisdn} hash tag, so scripts stay in one cluster slot."""
    async with open_redis_cc(DAY1, prefix="tagged") as cc:
        await cc.decide(req("8613700000001", contact_id="t1"))
        async with open_redis(redis_server.host, redis_server.port) as r:
            keys = sorted(k.decode() for k in await r.execute("KEYS", "tagged:*"))
        assert keys == ["tagged:r:t1", "tagged:{8613700000001}:c"]


async def test_scripts_reloaded_after_flush(open_redis_cc, redis_server) -> None:
    """If Redis loses the scripts (restart, SCRIPT FLUSH), the next call reloads them."""
    async with open_redis_cc(DAY1) as cc:
        async with open_redis(redis_server.host, redis_server.port) as r:
            assert await r.execute("SCRIPT", "FLUSH") == "OK"
        assert (await cc.decide(req("862", contact_id="s1"))).allowed
        assert (await cc.decide(req("862", contact_id="s2"))).reason == "cap.channel.day"


async def test_odd_characters_in_ids(open_redis_cc) -> None:
    """Campaign ids with separators used by other formats (| , ;) are counted correctly."""
    caps = {"per_campaign": {"scope": "campaign", "window": "day", "limit": 1}}
    async with open_redis_cc({"caps": caps}) as cc:
        assert (await cc.decide(req("863", campaign="a|b;c,d", contact_id="o1"))).allowed
        assert (
            await cc.decide(req("863", campaign="a|b;c,d", contact_id="o2"))
        ).reason == "cap.campaign.day"
        assert (await cc.decide(req("863", campaign="a|b", contact_id="o3"))).allowed
        assert [c["campaign_id"] for c in await cc.current_contacts("863")] == ["a|b;c,d", "a|b"]
        assert await cc.release("o1", "send_failed")


async def test_redis_outage_is_a_clear_error_then_recovers(tmp_path, clock) -> None:
    """With Redis down a decision raises ContactControlError; after a restart it works again."""
    import pytest

    from gateway.contact.config import parse_contact_config
    from gateway.contact.redis_backend import open_redis_contact_control
    from gateway.errors import ContactControlError
    from tests.fakes.redis_server import RedisServer

    server = RedisServer().start()
    try:
        config = parse_contact_config(dict(DAY1, backend="redis", redis=f"127.0.0.1:{server.port}"))
        async with open_redis_contact_control(config, tmp_path / "l.sqlite", clock=clock) as cc:
            assert (await cc.decide(req("864", contact_id="u1"))).allowed
            port = server.port
            server.stop()
            with pytest.raises(ContactControlError, match="unavailable"):
                await cc.decide(req("864", contact_id="u2"))
            server.start(port=port)  # empty again: persistence is off
            assert (await cc.decide(req("864", contact_id="u3"))).allowed
            assert (await cc.decide(req("864", contact_id="u4"))).reason == "cap.channel.day"
    finally:
        server.stop()


async def test_lists_are_shared_between_nodes(open_redis_cc) -> None:
    """An entry added, removed or bulk-replaced on one node applies on the other after a sync."""
    async with open_redis_cc(prefix="lists") as a, open_redis_cc(prefix="lists") as b:
        await a.lists.add("blacklist", "865", reason="fraud")
        assert (await b.decide(req("865"))).allowed  # not yet followed
        assert await b.lists.sync_once() == 1
        assert (await b.decide(req("865"))).reason == "dnd.blacklist"
        new = [(str(8615000000000 + i), "bulk", None) for i in range(25_000)]
        assert await a.lists.replace("greylist", new) == 25_000
        await a.lists.remove("blacklist", "865")
        await b.lists.sync_once()
        assert b.lists.size("greylist") == 25_000
        assert (await b.decide(req("8615000024999"))).reason == "dnd.greylist"
        assert (await b.decide(req("865"))).allowed
    async with open_redis_cc(prefix="lists") as c:  # a node started later loads the lists
        assert c.lists.size("greylist") == 25_000 and c.lists.size("blacklist") == 0


async def test_bulk_replace_switches_at_once_on_a_following_node(open_redis_cc) -> None:
    """A following node sees the old list or the new one, never a mix, while it reloads."""
    # b follows only through the explicit sync_once below: its background sync (1 s by default)
    # could otherwise take the new list while a's 30,000-entry replace runs on a loaded machine,
    # and the reader would never see the old one.
    quiet = {"list_sync_interval": "1h"}
    async with open_redis_cc(prefix="swap") as a, open_redis_cc(quiet, prefix="swap") as b:
        await a.lists.replace("blacklist", [("8616000000000", "old", None)])
        await b.lists.sync_once()
        await a.lists.replace(
            "blacklist", [(str(8617000000000 + i), "new", None) for i in range(30_000)]
        )
        seen = set()
        done = trio.Event()
        rounds = 0

        async def reader() -> None:
            nonlocal rounds
            while not done.is_set():
                old = (await b.check(req("8616000000000"))).reason == "dnd.blacklist"
                new = (await b.check(req("8617000029999"))).reason == "dnd.blacklist"
                seen.add((old, new))
                rounds += 1
                await trio.lowlevel.checkpoint()

        async def reader_rounds(n: int) -> None:
            """Wait until the reader completed ``n`` more rounds (so one began after now)."""
            target = rounds + n
            while rounds < target:
                await trio.lowlevel.checkpoint()

        async with trio.open_nursery() as n:
            n.start_soon(reader)
            await reader_rounds(1)
            await b.lists.sync_once()
            await reader_rounds(2)
            done.set()
        assert seen == {(True, False), (False, True)}


async def test_redis_that_stops_answering_is_an_error_not_a_hang(tmp_path, clock) -> None:
    """A Redis that accepts but never answers (SIGSTOP) fails decisions in time; they work again after."""
    import signal

    import pytest

    from gateway.contact.config import parse_contact_config
    from gateway.contact.redis_backend import open_redis_contact_control
    from gateway.errors import ContactControlError
    from tests.fakes.redis_server import RedisServer

    server = RedisServer().start()
    try:
        config = parse_contact_config(dict(DAY1, backend="redis", redis=f"127.0.0.1:{server.port}"))
        async with open_redis_contact_control(config, tmp_path / "l.sqlite", clock=clock) as cc:
            cc.timeout = 0.3
            assert (await cc.decide(req("865", contact_id="h1"))).allowed
            server._proc.send_signal(signal.SIGSTOP)
            try:
                with trio.fail_after(5):
                    with pytest.raises(ContactControlError, match="unavailable"):
                        await cc.decide(req("865", contact_id="h2"))
            finally:
                server._proc.send_signal(signal.SIGCONT)
            assert (await cc.decide(req("865", contact_id="h3"))).reason == "cap.channel.day"
    finally:
        server.stop()


async def test_node_behind_a_trimmed_change_stream_reloads_its_lists(
    open_redis_cc, redis_server
) -> None:
    """A node whose place in the change stream was trimmed away (MAXLEN) reloads the lists, missing nothing."""
    async with open_redis_cc(prefix="trim") as a, open_redis_cc(prefix="trim") as b:
        await a.lists.add("blacklist", "866")
        assert await b.lists.sync_once() == 1
        await a.lists.add("blacklist", "867")
        async with open_redis(redis_server.host, redis_server.port) as r:
            await r.execute("XTRIM", "trim:lists:changes", "MAXLEN", 0)
        await b.lists.sync_once()
        assert (await b.check(req("867"))).reason == "dnd.blacklist"
        assert (await b.check(req("866"))).reason == "dnd.blacklist"
