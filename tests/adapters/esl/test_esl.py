"""Event-socket codec (sans-IO) and client over TCP against the independent fake server."""

from __future__ import annotations

from urllib.parse import quote

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from adapters.esl.client import EslClient, EslLoginError
from adapters.esl.protocol import (
    EslCalls,
    EslMessage,
    EslParser,
    LocalProtocolError,
    RemoteProtocolError,
    command,
    originate_command,
)
from gateway.testing.esl import open_fake_esl

keys = st.text(
    st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=":"),
    min_size=1,
    max_size=12,
)
values = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=30).map(str.strip)


def frame(headers, body: bytes = b"") -> bytes:
    head = "".join(f"{k}: {v}\n" for k, v in headers)
    if body:
        head += f"Content-Length: {len(body)}\n"
    return head.encode() + b"\n" + body


def parse_all(data: bytes, step: int | None = None) -> list[EslMessage]:
    parser = EslParser()
    out = []
    chunks = [data] if step is None else [data[i : i + step] for i in range(0, len(data), step)]
    for chunk in chunks:
        parser.receive_data(chunk)
        while (m := parser.next_message()) is not None:
            out.append(m)
    return out


@given(
    st.lists(
        st.tuples(
            st.lists(st.tuples(keys, values), min_size=1, max_size=5), st.binary(max_size=40)
        ),
        min_size=1,
        max_size=4,
    )
)
def test_frames_parse_whole_and_bytewise(msgs):
    """Header blocks with Content-Length bodies parse the same fed whole or byte by byte."""
    data = b"".join(frame(h, b) for h, b in msgs)
    whole = parse_all(data)
    assert [m.body for m in whole] == [b for _h, b in msgs]
    assert [(m.headers, m.body) for m in parse_all(data, 1)] == [(m.headers, m.body) for m in whole]


@given(
    st.dictionaries(
        keys.filter(lambda k: k.lower() not in ("content-length", "event-name")),
        values,
        min_size=1,
        max_size=5,
    ).filter(lambda d: len({k.lower() for k in d}) == len(d)),
    st.text(max_size=20),
)
def test_event_plain_headers_are_url_decoded(fields, job_body):
    """A text/event-plain body is decoded into the event's headers, with its own body."""
    fields = {"Event-Name": "BACKGROUND_JOB", **fields}
    inner = "".join(f"{k}: {quote(v)}\n" for k, v in fields.items())
    inner += f"Content-Length: {len(job_body.encode())}\n\n{job_body}"
    (message,) = parse_all(frame([("Content-Type", "text/event-plain")], inner.encode()))
    event = message.event()
    assert event is not None
    for k, v in fields.items():
        assert event.get(k) == v
    assert event.body.encode()[: len(job_body.encode())] == job_body.encode()


@given(st.binary(max_size=300))
def test_garbage_parses_or_raises_remote_protocol_error(data):
    """Any bytes either parse or raise RemoteProtocolError."""
    try:
        parse_all(data)
    except RemoteProtocolError:
        pass


def test_commands_are_one_line():
    """A line break inside a command is refused before it reaches the socket."""
    with pytest.raises(LocalProtocolError):
        command("api status\nexit")
    with pytest.raises(LocalProtocolError):
        originate_command("u1", "sofia/gateway/t/1", "&park()", {"x": "a}b"})
    assert originate_command("u1", "sofia/gateway/t/1", "&park()", {"p": "a,b"}).startswith(
        "originate {origination_uuid=u1,originate_timeout=30,p=a\\,b}sofia"
    )
    assert "{origination_uuid=u1,originate_timeout=30,t='press 1'}" in originate_command(
        "u1", "sofia/gateway/t/1", "&park()", {"t": "press 1"}
    )


def test_background_job_error_ends_a_call_before_any_channel():
    """-ERR USER_BUSY in the bgapi job result is a busy call."""
    from adapters.esl.protocol import EslEvent

    calls = EslCalls()
    calls.start("u1", 0.0)
    end = calls.feed(
        EslEvent(
            headers=(("Event-Name", "BACKGROUND_JOB"), ("Job-UUID", "u1")), body="-ERR USER_BUSY\n"
        ),
        2.0,
    )
    assert end is not None and end.result == "busy"


async def test_auth_and_originate_with_dtmf(autojump_clock):
    """Over TCP: auth, bgapi originate, the pressed key and the duration."""
    async with open_fake_esl() as (server, port):
        server.pbx.script("8613800000001", ring=2, digits="1", talk=5)
        client = EslClient("127.0.0.1", port, "ClueCon", clock=trio.current_time)
        async with trio.open_nursery() as nursery:
            await nursery.start(client.run)
            end = await client.originate("u-1", "sofia/gateway/t1/8613800000001", "offer XML ivr")
            nursery.cancel_scope.cancel()
    assert end.result == "answered" and end.digits == "1"
    assert end.duration == pytest.approx(6, abs=0.01)


async def test_login_failure_raises(autojump_clock):
    """A wrong password is EslLoginError out of run()."""
    async with open_fake_esl() as (server, port):
        with pytest.raises(EslLoginError):
            await EslClient("127.0.0.1", port, "wrong").run()
    assert server.login_failures == 1


@pytest.mark.parametrize("outcome,result", [("busy", "busy"), ("no_answer", "no_answer"),
                                            ("reject", "rejected"), ("unreachable", "unreachable"),
                                            ("fail", "failed")])  # fmt: skip
async def test_failure_results(outcome, result, autojump_clock):
    """Each scripted failure reaches the client as its call result."""
    async with open_fake_esl() as (server, port):
        server.pbx.script("8613800000002", outcome=outcome)
        client = EslClient("127.0.0.1", port, "ClueCon")
        async with trio.open_nursery() as nursery:
            await nursery.start(client.run)
            end = await client.originate("u2", "sofia/gateway/t/8613800000002")
            nursery.cancel_scope.cancel()
    assert end.result == result


async def test_reconnect_keeps_following_a_live_call(autojump_clock):
    """Connections dropped mid-call: reconnect, uuid_exists, the call neither lost nor doubled."""
    async with open_fake_esl() as (server, port):
        server.pbx.script("8613800000003", ring=1, digits="2", digit_delay=5, talk=5)
        client = EslClient("127.0.0.1", port, "ClueCon", reconnect_initial=0.1)
        async with trio.open_nursery() as nursery:
            await nursery.start(client.run)

            async def drop() -> None:
                await trio.sleep(2)
                await server.pbx.drop_connections()

            nursery.start_soon(drop)
            end = await client.originate("u3", "sofia/gateway/t/8613800000003")
            nursery.cancel_scope.cancel()
    assert end.result == "answered" and end.digits == "2"
    assert server.logins == 2 and server.pbx.duplicates == 0 and len(server.pbx.calls) == 1
