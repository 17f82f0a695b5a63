"""Campaign files: kinds and tables the gateway cannot execute are refused, not ignored."""

from __future__ import annotations

import pytest

from gateway.campaigns.loader import parse_campaign
from gateway.errors import ConfigError

BASE = {"id": "c", "name": "c", "channels": ["sms"], "content": {"sms": {"text": "hi"}}}


def problems(table) -> str:
    with pytest.raises(ConfigError) as info:
        parse_campaign(table, origin="c.toml", areas={})
    return str(info.value)


def test_periodic_needs_when_and_whom():
    """A periodic campaign without [periodic], or without a selection, is refused; a weekly
    one needs its weekday; [select] on another kind is refused."""
    assert "periodic: a periodic campaign needs [periodic]" in problems(
        {**BASE, "kind": "periodic"}
    )
    text = problems({**BASE, "kind": "periodic", "periodic": {"every": "weekly", "at": "25:00"}})
    assert "periodic.at: expected a local time" in text
    assert "periodic.weekday: a weekly run needs a weekday" in text
    assert "select.tag: name at least one of" in text
    table = {**BASE, "select": {"tag": "vip"}, "trigger": {"events": ["power_on"]}}
    assert 'only a campaign of kind = "periodic"' in problems(table)
    cdef = parse_campaign(
        {
            **BASE,
            "kind": "periodic",
            "periodic": {"every": "weekly", "weekday": "friday", "at": "10:30"},
            "select": {"anniversary": "network_since"},
        },
        origin="c.toml",
        areas={},
    )
    assert cdef.periodic is not None
    assert (cdef.periodic.weekday, cdef.periodic.at) == (4, 10 * 3600 + 1800)


def test_batch_needs_one_channel_without_fallback(tmp_path):
    """A batch with two channels and no [fallback] is refused; one without a list is accepted."""
    (tmp_path / "t.txt").write_text("13900000001\n")
    text = problems(
        {
            **BASE,
            "kind": "batch",
            "channels": ["sms", "wap"],
            "content": {"sms": {"text": "a"}, "wap": {"url": "http://x"}},
            "target": {"list": str(tmp_path / "t.txt")},
        }
    )
    assert "channels: a batch campaign sends on one channel" in text
    assert "add a [fallback]" in text
    # without a list it is accepted (the list may come later): progress says it waits for one
    assert parse_campaign({**BASE, "kind": "batch"}, origin="c.toml", areas={}).target_list is None


def test_batch_table_only_on_batch_campaigns():
    """[batch] on a realtime campaign is an error (it would do nothing)."""
    table = {**BASE, "batch": {"rate": 5}, "trigger": {"events": ["power_on"]}}
    assert "batch.rate: only a campaign of kind" in problems(table)


def test_reply_keywords_are_folded_and_must_not_overlap():
    """[reply] keywords are compared folded; one word in two lists is refused."""
    cdef = parse_campaign(
        {**BASE, "trigger": {"events": ["power_on"]}, "reply": {"accept": ["y", "好"]}},
        origin="c.toml",
        areas={},
    )
    assert cdef.reply is not None and cdef.reply.accept == frozenset({"Y", "好"})
    table = {**BASE, "trigger": {"events": ["power_on"]}, "reply": {"decline": ["Y"]}}
    assert "reply.decline: Y is also an accept keyword" in problems(table)
