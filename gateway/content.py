"""What a contact carries to the handset, and what a channel declares it can carry.

Content travels from campaign to channel as a mapping of strings: a campaign's
``[content.<channel>]`` table holds templates, the pipeline renders them per subscriber into
``ContactRequest.content``, the outbox stores that mapping with the message (it survives
kill -9), and the channel reads it back from ``OutboxMessage.request.content``. This module
gives that mapping a typed reading, :class:`Content`, with these keys (all optional):

``text``
    The message text (SMS body, MMS text part, IVR prompt to speak).
``subject``
    A subject line (MMS, e-mail-like channels).
``href``
    A link the handset opens (WAP Push SI/SL, the URL of an MMS or an e-channel).
``binary``
    Raw bytes, base64 in the campaign file (a WAP Push body, a ringtone).
``attachment.<name>``
    A file sent along (an MMS picture): ``"<path or URL>"`` or ``"<media/type> <path or URL>"``;
    without a media type it is guessed from the name.

A channel declares, as optional members of its :class:`~gateway.contracts.Channel` object:

``carries: frozenset[ContentKind]``
    The kinds of content it can deliver (default: text only).
``requires: frozenset[str]``
    What the subscriber's handset must support for this channel to be chosen (profile
    column ``capabilities``): ``{"mms"}`` for MMS, ``{"wap"}`` for WAP Push. Default: nothing.

:func:`declaration_of` reads both with their defaults; :meth:`ChannelDeclaration.refusals`
says why a message's content cannot go over a channel.
"""

from __future__ import annotations

import base64
import binascii
import enum
import mimetypes
from collections.abc import Mapping
from typing import Any

import attrs

from gateway.errors import GatewayError

ATTACHMENT_PREFIX = "attachment."


class ContentError(GatewayError):
    """Raised by :meth:`Content.from_fields` when a content field cannot be read (bad base64,
    an unknown key); the message names the key. Fix the campaign's ``[content.<channel>]``."""


class ContentKind(enum.StrEnum):
    TEXT = "text"  # text and subject
    BINARY = "binary"
    HREF = "href"
    ATTACHMENTS = "attachments"


@attrs.frozen(kw_only=True)
class Attachment:
    """A file sent along with a message. ``location`` is a path or a URL, not the bytes:
    the outbox stores the reference, the channel reads the file when it sends."""

    name: str
    location: str
    media_type: str = "application/octet-stream"

    @classmethod
    def from_field(cls, name: str, value: str) -> Attachment:
        media_type, _, location = value.strip().partition(" ")
        if not location or "/" not in media_type or media_type.startswith(("/", ".")):
            location = value.strip()
            media_type = mimetypes.guess_type(location)[0] or "application/octet-stream"
        return cls(name=name, location=location.strip(), media_type=media_type)


@attrs.frozen(kw_only=True)
class Content:
    """The typed reading of ``ContactRequest.content``."""

    text: str | None = None
    subject: str | None = None
    href: str | None = None
    binary: bytes | None = None
    attachments: tuple[Attachment, ...] = ()

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> Content:
        """Read the rendered content mapping; raises :class:`ContentError` naming a bad key."""
        values: dict[str, Any] = {}
        attachments = []
        for key, value in fields.items():
            if not isinstance(value, str):
                raise ContentError(f"content.{key}: expected a string, got {type(value).__name__}")
            if key in ("text", "subject", "href"):
                values[key] = value
            elif key == "binary":
                try:
                    values["binary"] = base64.b64decode(value, validate=True)
                except (binascii.Error, ValueError) as exc:
                    raise ContentError(f"content.binary: not base64 ({exc})") from exc
            elif key.startswith(ATTACHMENT_PREFIX) and len(key) > len(ATTACHMENT_PREFIX):
                attachments.append(Attachment.from_field(key[len(ATTACHMENT_PREFIX) :], value))
            else:
                raise ContentError(
                    f"content.{key}: unknown content field"
                    " (text, subject, href, binary, attachment.<name>)"
                )
        return cls(**values, attachments=tuple(attachments))

    @property
    def kinds(self) -> frozenset[ContentKind]:
        """The kinds of content this message holds."""
        kinds: set[ContentKind] = set()
        if self.text is not None or self.subject is not None:
            kinds.add(ContentKind.TEXT)
        if self.binary is not None:
            kinds.add(ContentKind.BINARY)
        if self.href is not None:
            kinds.add(ContentKind.HREF)
        if self.attachments:
            kinds.add(ContentKind.ATTACHMENTS)
        return frozenset(kinds)


@attrs.frozen(kw_only=True)
class ChannelDeclaration:
    """What a channel carries and what the handset needs for it (see the module docstring)."""

    carries: frozenset[ContentKind] = frozenset({ContentKind.TEXT})
    requires: frozenset[str] = frozenset()

    def refusals(self, content: Content) -> list[str]:
        """Why ``content`` cannot go over this channel (empty when it can)."""
        return [
            f"the channel does not carry {kind.value}"
            for kind in sorted(content.kinds - self.carries)
        ]


def requirements_of(channel: Any) -> frozenset[str]:
    """``declaration_of(channel).requires`` without building the declaration (asked per
    contact request by the pipeline)."""
    requires = getattr(channel, "requires", None) if channel is not None else None
    if not requires:
        return frozenset()
    return requires if type(requires) is frozenset else frozenset(requires)


def declaration_of(channel: Any) -> ChannelDeclaration:
    """The declaration of a registered channel object (defaults for members it lacks).

    ``channel`` may be None (a campaign channel no plugin registered): no requirement.
    """
    if channel is None:
        return ChannelDeclaration()
    carries = getattr(channel, "carries", None)
    requires = getattr(channel, "requires", None)
    return ChannelDeclaration(
        carries=ChannelDeclaration().carries
        if carries is None
        else frozenset(ContentKind(k) for k in carries),
        requires=frozenset() if requires is None else frozenset(requires),
    )
