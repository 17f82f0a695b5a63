"""The typed content model and the channel declarations (gateway/content.py)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.content import (
    Attachment,
    ChannelDeclaration,
    Content,
    ContentError,
    ContentKind,
    declaration_of,
    requirements_of,
)

texts = st.text(max_size=40)


@given(
    text=st.none() | texts,
    href=st.none() | texts,
    binary=st.none() | st.binary(max_size=40),
    names=st.lists(st.from_regex(r"[a-z]{1,8}", fullmatch=True), max_size=3, unique=True),
)
def test_fields_read_back_into_content(text, href, binary, names):
    """Every mapping built from the documented keys reads back into the same values."""
    fields = {}
    if text is not None:
        fields["text"] = text
    if href is not None:
        fields["href"] = href
    if binary is not None:
        fields["binary"] = base64.b64encode(binary).decode()
    for name in names:
        fields[f"attachment.{name}"] = f"image/png /srv/{name}.bin"
    content = Content.from_fields(fields)
    assert (content.text, content.href, content.binary) == (text, href, binary)
    assert content.attachments == tuple(
        Attachment(name=n, location=f"/srv/{n}.bin", media_type="image/png") for n in names
    )
    assert (ContentKind.ATTACHMENTS in content.kinds) == bool(names)


def test_attachment_media_type_is_guessed_without_one():
    """``attachment.pic = "offer.jpg"``: the media type comes from the file name."""
    content = Content.from_fields({"attachment.pic": "offers/offer.jpg"})
    assert content.attachments == (
        Attachment(name="pic", location="offers/offer.jpg", media_type="image/jpeg"),
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"binary": "not base64!"}, "content.binary: not base64"),
        ({"txt": "x"}, "content.txt: unknown content field"),
        ({"text": 3}, "content.text: expected a string"),
        ({"attachment.": "x"}, "content.attachment.: unknown content field"),
    ],
)
def test_bad_fields_name_the_key(fields, message):
    """A field that cannot be read raises ContentError naming its key."""
    with pytest.raises(ContentError, match=message):
        Content.from_fields(fields)


def test_declaration_defaults_and_refusals():
    """Undeclared channels carry text and require nothing; refusals name what is missing."""

    class Bare:
        name = "x"

    class Wap:
        name = "wap_push"
        carries = frozenset({"href", "text"})
        requires = frozenset({"wap"})

    assert declaration_of(None) == declaration_of(Bare()) == ChannelDeclaration()
    wap = declaration_of(Wap())
    assert wap.requires == {"wap"} and ContentKind.HREF in wap.carries
    picture = Content.from_fields({"text": "t", "attachment.p": "a.png"})
    assert wap.refusals(picture) == ["the channel does not carry attachments"]
    assert ChannelDeclaration().refusals(Content.from_fields({"href": "http://x"})) == [
        "the channel does not carry href"
    ]


async def test_campaign_content_reaches_the_channel_typed(tmp_path):
    """A campaign's [content.mms] (template and attachment) arrives as a typed Content."""
    from gateway.model import EventKind, SignalEvent
    from tests.fakes.campaign_fakes import campaign_toml, make_pipeline

    header = (
        'id = "{id}"\nname = "n"\nchannels = ["mms"]\ninitial_state = "running"\n'
        '[content.mms]\nsubject = "Offer for {{brand}}"\n'
        '"attachment.picture" = "image/jpeg /srv/spring.jpg"\n'
    )
    p = await make_pipeline(
        tmp_path, {"c.toml": campaign_toml('[trigger]\nevents = ["power_on"]\n', header=header)}
    )
    event = SignalEvent(kind=EventKind.POWER_ON, timestamp=1_772_000_000.0, imsi="460001234567801")
    [request] = p.match_batch([event])
    content = Content.from_fields(request.content)
    assert content.subject == "Offer for gotone"
    assert content.attachments == (
        Attachment(name="picture", location="/srv/spring.jpg", media_type="image/jpeg"),
    )


class _Declares:
    def __init__(self, requires):
        self.requires = requires


@pytest.mark.parametrize(
    "channel",
    [
        None,
        object(),
        _Declares(None),
        _Declares(()),
        _Declares(["wap", "mms"]),
        _Declares(frozenset({"mms"})),
    ],
)
def test_requirements_are_the_declarations(channel):
    """The pipeline's shortcut answers what the whole declaration answers."""
    assert requirements_of(channel) == declaration_of(channel).requires
