"""Redis backend specifics: nodes share one view, hash-tagged keys, script reload."""

from __future__ import annotations

from contact_helpers import req

from adapters.resp.client import open_redis

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
