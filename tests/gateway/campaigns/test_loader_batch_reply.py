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


def test_periodic_kind_is_refused_with_a_reason():
    """kind = "periodic" is refused (not executed yet), naming the key and what to use."""
    assert "kind: periodic campaigns are not executed" in problems({**BASE, "kind": "periodic"})


def test_batch_needs_one_channel_and_a_target_list(tmp_path):
    """A batch with two channels (no fallback yet) or no target list is refused."""
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
    assert "target.list: a batch campaign needs a target list" in problems(
        {**BASE, "kind": "batch"}
    )


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
