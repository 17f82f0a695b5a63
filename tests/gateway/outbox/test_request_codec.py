"""An outbox entry's stored request reads back as the very request that was queued, whatever
its fields hold (defaults are left out of the stored text and restored on load)."""

from __future__ import annotations

import json

import attrs
from hypothesis import given
from hypothesis import strategies as st

from gateway.model import ContactRequest
from gateway.outbox.store import dump_request, load_request

text = st.text(max_size=20)
leaf = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | text | st.binary(max_size=20)
content = st.dictionaries(
    text.filter(lambda k: k != "__bytes__"),
    st.recursive(leaf, lambda inner: st.lists(inner, max_size=3), max_leaves=5),
    max_size=4,
)
requests = st.builds(
    ContactRequest,
    contact_id=text,
    msisdn=text,
    campaign_id=text,
    channel=st.sampled_from(["sms", "wap", "mms", "ivr"]),
    campaign_class=st.sampled_from(["marketing", "service", "telemarketing"]),
    priority=st.integers(-1000, 1000),
    realtime=st.booleans(),
    defer_if_quiet=st.booleans(),
    content=content,
    created_at=st.floats(allow_nan=False, allow_infinity=False),
    trigger=st.none() | text,
    control_group=st.booleans(),
)


def _plain(value: object) -> object:
    """Lists come back as lists (JSON has no tuples); compare in that form."""
    return json.loads(json.dumps(value, default=repr))


@given(requests)
def test_stored_request_reads_back_equal(request: ContactRequest) -> None:
    back = load_request(dump_request(request))
    assert back == request or (
        _plain(back.content) == _plain(request.content)
        and back == ContactRequest(**{**_fields(request), "content": back.content})
    )


def _fields(request: ContactRequest) -> dict:
    return attrs.asdict(request, recurse=False)


def test_defaults_are_left_out_and_restored() -> None:
    request = ContactRequest(
        contact_id="c1", msisdn="8613800000001", campaign_id="k", channel="sms"
    )
    stored = json.loads(dump_request(request))
    assert stored == {
        "contact_id": "c1",
        "msisdn": "8613800000001",
        "campaign_id": "k",
        "channel": "sms",
    }
    assert load_request(dump_request(request)) == request
    odd = ContactRequest(
        contact_id="c2", msisdn="1", campaign_id="k", channel="sms", created_at=0, priority=0
    )
    assert load_request(dump_request(odd)).created_at == 0


@given(st.dictionaries(st.text(max_size=30), st.text(max_size=200), max_size=4) | content)
def test_content_fast_path_writes_what_the_json_encoder_writes(value):
    """The fast path for text-to-text contents is byte for byte the JSON encoder's output
    (any character: control, non-ASCII, lone surrogates); other contents take the encoder."""
    from gateway.outbox.store import _ENCODE, _encode_content

    assert _encode_content(value) == _ENCODE(value)


@given(leaf | st.floats() | st.integers() | st.lists(leaf, max_size=3))
def test_field_fast_path_writes_what_the_json_encoder_writes(value):
    """Scalars (floats of every kind, ints of any size, text, flags, null) are written byte
    for byte as the JSON encoder writes them; anything else takes the encoder."""
    from gateway.outbox.store import _ENCODE, _encode_value

    assert _encode_value(value) == _ENCODE(value)
