"""RESP2 codec: round trips, byte-by-byte feeding, fuzz; the Trio client against redis-server."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.resp import (
    NEED_DATA,
    ErrorReply,
    LocalProtocolError,
    RemoteProtocolError,
    RespParser,
    encode_command,
)
from gateway.resp.client import RedisReplyError, open_redis
from gateway.testing.resp import encode_reply
from tests.fakes.redis_server import redis_server  # noqa: F401

line_text = st.text(
    st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=20
)
replies = st.recursive(
    st.none()
    | st.integers(-(2**63), 2**63 - 1)
    | st.binary(max_size=40)
    | line_text
    | line_text.map(ErrorReply),
    lambda children: st.lists(children, max_size=5),
    max_leaves=20,
)


def _parse_all(data: bytes, *, step: int | None = None) -> list:
    p = RespParser()
    out = []
    chunks = [data] if step is None else [data[i : i + step] for i in range(0, len(data), step)]
    for chunk in chunks:
        p.receive_data(chunk)
        out.extend(p.replies())
    assert p.next_reply() is NEED_DATA
    return out


@given(st.lists(replies, max_size=4))
def test_replies_round_trip_whole_and_byte_by_byte(values) -> None:
    """Encoded replies parse back to the same values, fed whole or one byte at a time."""
    data = b"".join(encode_reply(v) for v in values)
    assert _parse_all(data) == values
    assert _parse_all(data, step=1) == values


@given(
    st.lists(st.binary(max_size=30) | st.integers() | st.text(max_size=10), min_size=1, max_size=6)
)
def test_commands_are_arrays_of_bulk_strings(args) -> None:
    """A command encodes as an array of bulk strings carrying each argument's bytes."""
    (parsed,) = _parse_all(encode_command(*args))
    assert parsed == [a if isinstance(a, bytes) else str(a).encode() for a in args]


@given(st.binary(max_size=200))
def test_fuzz_parses_or_raises_remote_error(data) -> None:
    """Arbitrary bytes either parse, wait for more, or raise RemoteProtocolError; fed whole or bytewise."""
    for step in (None, 1):
        p = RespParser()
        try:
            chunks = [data] if step is None else [data[i : i + 1] for i in range(len(data))]
            for chunk in chunks:
                p.receive_data(chunk)
                p.replies()
        except RemoteProtocolError:
            pass


@pytest.mark.parametrize(
    "bad",
    [b"?x\r\n", b":12a\r\n", b"$5\r\nabcdefg\r\n", b"*-2\r\n", b"$-5\r\n", b"+" + b"x" * 70000],
)
def test_malformed_input_is_a_remote_error(bad) -> None:
    """Unknown types, bad lengths, missing CRLF and overlong lines are refused."""
    p = RespParser()
    with pytest.raises(RemoteProtocolError):
        p.receive_data(bad)
        p.next_reply()


def test_deep_nesting_and_buffer_cap() -> None:
    """Nesting beyond the cap and oversized buffers are refused."""
    p = RespParser()
    p.receive_data(b"*1\r\n" * 40 + b":1\r\n")
    with pytest.raises(RemoteProtocolError):
        p.next_reply()
    small = RespParser(max_buffer=10)
    with pytest.raises(RemoteProtocolError):
        small.receive_data(b"$100\r\n" + b"x" * 20)


def test_local_errors() -> None:
    """Values RESP cannot carry are refused locally with a hint."""
    with pytest.raises(LocalProtocolError):
        encode_command()
    with pytest.raises(LocalProtocolError):
        encode_command("SET", "k", True)
    with pytest.raises(LocalProtocolError):
        encode_reply("a\r\nb")


async def test_client_against_real_redis(redis_server) -> None:  # noqa: F811
    """Commands, a pipeline with an error in the middle, and EVAL work against redis-server."""
    async with open_redis(redis_server.host, redis_server.port) as r:
        assert await r.execute("PING") == "PONG"
        assert await r.execute("SET", "resp:test", "v") == "OK"
        out = await r.pipeline([("GET", "resp:test"), ("INCR", "resp:test"), ("DEL", "resp:test")])
        assert out[0] == b"v" and isinstance(out[1], ErrorReply) and out[2] == 1
        with pytest.raises(RedisReplyError):
            await r.execute("NOSUCHCOMMAND")
        assert await r.execute("EVAL", "return {1, 'a', {2}}", 0) == [1, b"a", [2]]
        many = await r.pipeline([("ECHO", str(i)) for i in range(5000)])
        assert many[-1] == b"4999"
