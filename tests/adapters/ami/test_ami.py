"""AMI codec (sans-IO) and client over TCP against the independent fake AMI server."""

from __future__ import annotations

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from adapters.ami.client import AmiClient, AmiLoginError
from adapters.ami.protocol import (
    AmiCalls,
    AmiMessage,
    AmiParser,
    LocalProtocolError,
    RemoteProtocolError,
    encode,
    md5_key,
)
from gateway.testing.ami import open_fake_ami

BANNER = b"Asterisk Call Manager/5.0.1\r\n"
keys = st.text(
    st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=":"),
    min_size=1,
    max_size=12,
)
values = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=30).map(str.strip)
messages = st.lists(
    st.lists(st.tuples(keys, values), min_size=1, max_size=6), min_size=1, max_size=5
)


def parse_all(data: bytes, step: int | None = None) -> list[AmiMessage]:
    parser = AmiParser()
    out = []
    chunks = [data] if step is None else [data[i : i + step] for i in range(0, len(data), step)]
    for chunk in chunks:
        parser.receive_data(chunk)
        while (m := parser.next_message()) is not None:
            out.append(m)
    return out


@given(messages)
def test_encode_parse_round_trip_whole_and_bytewise(msgs):
    """Encoded messages parse back to the same headers, fed whole or one byte at a time."""
    data = BANNER + b"".join(encode(m) for m in msgs)
    expected = [tuple(m) for m in msgs]
    assert [m.headers for m in parse_all(data)] == expected
    assert [m.headers for m in parse_all(data, 1)] == expected


@given(st.binary(max_size=300))
def test_garbage_parses_or_raises_remote_protocol_error(data):
    """Any bytes either parse or raise RemoteProtocolError (never another exception)."""
    try:
        parse_all(data)
    except RemoteProtocolError:
        pass


def test_line_break_in_value_is_a_local_error():
    """A value with CR/LF cannot be written: LocalProtocolError, not a broken stream."""
    with pytest.raises(LocalProtocolError):
        encode([("Action", "Originate"), ("Channel", "a\r\nAction: Logoff")])


def test_md5_key_matches_hashlib():
    """The challenge key is md5(challenge + secret) in hex (Asterisk manager.c)."""
    import hashlib

    assert md5_key("1234", "secret") == hashlib.md5(b"1234secret").hexdigest()


def test_busy_via_hangup_cause_when_reason_is_generic():
    """A Hangup cause 17 before a generic OriginateResponse failure makes the result busy."""
    calls = AmiCalls()
    calls.start("c1", 0.0)
    hang = AmiMessage(headers=(("Event", "Hangup"), ("Uniqueid", "c1"), ("Cause", "17")))
    fail = AmiMessage(
        headers=(
            ("Event", "OriginateResponse"),
            ("Uniqueid", "c1"),
            ("Response", "Failure"),
            ("Reason", "1"),
        )
    )
    assert calls.feed(hang, 1.0) is None
    end = calls.feed(fail, 1.0)
    assert end is not None and end.result == "busy"


@pytest.mark.parametrize("auth", ["md5", "plain"])
async def test_login_and_originate_with_dtmf(auth, autojump_clock):
    """Over TCP: login (MD5 challenge or plain), Originate, the pressed key and the duration."""
    async with open_fake_ami() as (server, port):
        server.pbx.script("8613800000001", outcome="answer", ring=2, digits="1", talk=5)
        client = AmiClient(
            "127.0.0.1", port, "gateway", "secret", auth=auth, clock=trio.current_time
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(client.run)
            end = await client.originate("call-1", "PJSIP/8613800000001@trunk1", context="ivr")
            nursery.cancel_scope.cancel()
    assert end.result == "answered" and end.digits == "1"
    assert end.duration == pytest.approx(5 + 1, abs=0.01)  # one digit_delay, then talk
    assert server.logins == 1


async def test_login_failure_raises(autojump_clock):
    """A wrong secret is AmiLoginError out of run(), not a reconnect loop."""
    async with open_fake_ami() as (server, port):
        client = AmiClient("127.0.0.1", port, "gateway", "wrong")
        with pytest.raises(AmiLoginError):
            await client.run()
    assert server.login_failures == 1


@pytest.mark.parametrize("outcome,result", [("busy", "busy"), ("no_answer", "no_answer"),
                                            ("reject", "rejected"), ("unreachable", "unreachable"),
                                            ("fail", "failed")])  # fmt: skip
async def test_failure_results(outcome, result, autojump_clock):
    """Each scripted failure reaches the client as its call result."""
    async with open_fake_ami() as (server, port):
        server.pbx.script("8613800000002", outcome=outcome)
        client = AmiClient("127.0.0.1", port, "gateway", "secret")
        async with trio.open_nursery() as nursery:
            await nursery.start(client.run)
            end = await client.originate("c2", "PJSIP/8613800000002@t", context="ivr")
            nursery.cancel_scope.cancel()
    assert end.result == result and end.digits == ""


async def test_reconnect_keeps_following_a_live_call(autojump_clock):
    """Connections dropped mid-call: the client reconnects, the call is neither lost nor placed twice."""
    async with open_fake_ami() as (server, port):
        server.pbx.script("8613800000003", ring=1, digits="2", digit_delay=5, talk=5)
        client = AmiClient("127.0.0.1", port, "gateway", "secret", reconnect_initial=0.1)
        async with trio.open_nursery() as nursery:
            await nursery.start(client.run)

            async def drop() -> None:
                await trio.sleep(2)  # answered, key not yet pressed
                await server.pbx.drop_connections()

            nursery.start_soon(drop)
            end = await client.originate("c3", "PJSIP/8613800000003@t", context="ivr")
            nursery.cancel_scope.cancel()
    assert end.result == "answered" and end.digits == "2"
    assert server.logins == 2 and server.pbx.duplicates == 0 and len(server.pbx.calls) == 1


# Independent implementation: panoramisk (an asyncio AMI client) parses what we write, and we
# parse what it writes. Values are kept clear of what panoramisk treats specially (leading or
# trailing spaces, its URL-quoted keys).
pan_keys = st.sampled_from(
    ["Channel", "Context", "Exten", "Priority", "Uniqueid", "Digit", "Cause"]
)
pan_values = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20)


@given(st.dictionaries(pan_keys, pan_values, min_size=1, max_size=5), pan_values)
def test_panoramisk_reads_our_events_and_we_read_its_actions(fields, action_id):
    """Our encoding parses in panoramisk to the same headers, and panoramisk's Action parses in ours."""
    from panoramisk.actions import Action
    from panoramisk.message import Message

    ours = encode([("Event", "Hangup"), *fields.items()])
    theirs = Message.from_line(ours.decode().rstrip("\r\n"))
    assert theirs is not None and theirs["Event"] == "Hangup"
    for k, v in fields.items():
        assert theirs[k] == v

    written = str(Action({"Action": "Originate", "ActionID": action_id, **fields})).encode()
    parser = AmiParser(expect_banner=False)
    parser.receive_data(written)
    message = parser.next_message()
    assert message is not None and message.get("Action") == "Originate"
    assert message.action_id == action_id
    for k, v in fields.items():
        assert message.get(k) == v
