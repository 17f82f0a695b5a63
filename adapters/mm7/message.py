"""The MM7 HTTP body: a SOAP envelope alone, or "SOAP with attachments" carrying the MM.

3GPP TS 23.140 section 8.4.3 (binding to HTTP/SOAP): a request that carries a multimedia
message is ``multipart/related; type="text/xml"; start="<envelope id>"``, whose first part
is the envelope and whose second part is the MM, referenced from ``<Content href="cid:...">``.
The MM we build is itself ``multipart/related; type="application/smil"``: a SMIL presentation
(OMA MMS Conformance Document: one image region above one text region, one ``par`` per
picture) and its text and image parts, each with a Content-ID and a Content-Location that the
SMIL refers to. Sans-IO.
"""

from __future__ import annotations

from collections.abc import Sequence
from xml.sax.saxutils import quoteattr

import attrs

from adapters.mm7.errors import LocalMM7Error, RemoteMM7Error
from adapters.mm7.mime import Part, encode_multipart, parse_content_type, parse_multipart
from adapters.mm7.model import RELEASES, Message, Release
from adapters.mm7.soap import decode_envelope, encode_envelope

ENVELOPE_ID = "mm7-envelope"
CONTENT_ID = "mm7-content"
SMIL_ID = "presentation"
#: How long each slide of the presentation shows, in milliseconds.
SLIDE_MS = 8000


@attrs.frozen(kw_only=True)
class Image:
    name: str  # file name on the handset (Content-Location), e.g. "picture.jpg"
    media_type: str  # image/jpeg, image/png, image/gif
    data: bytes


def smil(text_name: str | None, image_names: Sequence[str]) -> str:
    """The SMIL presentation: pictures above, the text below; one slide per picture."""
    regions = []
    if image_names:
        regions.append('<region id="Image" top="0" left="0" height="70%" width="100%" fit="meet"/>')
    if text_name is not None:
        top = "70%" if image_names else "0"
        height = "30%" if image_names else "100%"
        regions.append(
            f'<region id="Text" top="{top}" left="0" height="{height}" width="100%" fit="scroll"/>'
        )
    slides = []
    for i, name in enumerate(image_names or [None]):
        items = []
        if name is not None:
            items.append(f'<img src={quoteattr(name)} region="Image"/>')
        if text_name is not None and i == 0:
            items.append(f'<text src={quoteattr(text_name)} region="Text"/>')
        slides.append(f'<par dur="{SLIDE_MS}ms">{"".join(items)}</par>')
    return (
        "<smil><head><layout>"
        '<root-layout width="100%" height="100%"/>'
        + "".join(regions)
        + "</layout></head><body>"
        + "".join(slides)
        + "</body></smil>"
    )


def build_content(
    text: str | None, images: Sequence[Image], *, boundary: str | None = None
) -> Part:
    """The MM as one part: ``multipart/related`` with the SMIL first, then text, then images."""
    if text is None and not images:
        raise LocalMM7Error("an MMS needs a text or a picture")
    names = [image.name for image in images]
    if len(set(names)) != len(names) or "text.txt" in names:
        raise LocalMM7Error(f"picture names must be unique and not text.txt: {names}")
    text_name = None if text is None else "text.txt"
    parts = [
        Part(
            content_type="application/smil",
            body=smil(text_name, names).encode("utf-8"),
            content_id=SMIL_ID,
            content_location="presentation.smil",
        )
    ]
    if text is not None:
        parts.append(
            Part(
                content_type="text/plain; charset=utf-8",
                body=text.encode("utf-8"),
                content_id="text",
                content_location="text.txt",
            )
        )
    for i, image in enumerate(images):
        parts.append(
            Part(
                content_type=image.media_type,
                body=image.data,
                content_id=f"image{i}",
                content_location=image.name,
            )
        )
    content_type, body = encode_multipart(
        parts,
        params=(("type", "application/smil"), ("start", f"<{SMIL_ID}>")),
        boundary=boundary,
    )
    return Part(content_type=content_type, body=body, content_id=CONTENT_ID)


def encode_request(
    message: Message, content: Part | None = None, release: Release = RELEASES["REL-6"]
) -> tuple[str, bytes]:
    """``(Content-Type, body)`` of an MM7 HTTP request or response: the bare envelope as
    ``text/xml``, or with ``content`` attached as SOAP with attachments."""
    envelope = encode_envelope(message, release)
    if content is None:
        return 'text/xml; charset="utf-8"', envelope
    soap = Part(content_type='text/xml; charset="utf-8"', body=envelope, content_id=ENVELOPE_ID)
    return encode_multipart(
        [soap, content], params=(("type", "text/xml"), ("start", f"<{ENVELOPE_ID}>"))
    )


@attrs.frozen(kw_only=True)
class Decoded:
    message: Message
    namespace: str
    content: Part | None = None  # the attachment the envelope refers to (DeliverReq, SubmitReq)


def decode_request(content_type: str, body: bytes) -> Decoded:
    """Read an MM7 HTTP body (either form). Raises RemoteMM7Error."""
    media_type, params = parse_content_type(content_type or "text/xml")
    if media_type in ("text/xml", "application/xml", "application/soap+xml"):
        message, namespace = decode_envelope(body)
        return Decoded(message=message, namespace=namespace)
    if media_type != "multipart/related":
        raise RemoteMM7Error(f"unexpected MM7 body type {media_type}", status=2007)
    parts = parse_multipart(content_type, body)
    start = params.get("start", "").strip("<>")
    envelope = next(
        (p for p in parts if start and p.content_id == start), parts[0] if parts else None
    )
    if envelope is None:
        raise RemoteMM7Error("multipart MM7 body without parts", status=2007)
    message, namespace = decode_envelope(envelope.body)
    wanted = getattr(message, "content_id", None)
    others = [p for p in parts if p is not envelope]
    content = next((p for p in others if wanted and p.content_id == wanted), None)
    if content is None and wanted and others:
        # Some MMSCs refer to the part by Content-Location instead of Content-ID.
        content = next((p for p in others if p.content_location == wanted), others[0])
    return Decoded(message=message, namespace=namespace, content=content)


def content_parts(content: Part) -> list[Part]:
    """The leaf parts of an MM (nested multiparts flattened, at most three levels deep)."""

    def walk(part: Part, depth: int) -> list[Part]:
        if not part.media_type.startswith("multipart/"):
            return [part]
        if depth >= 3:
            raise RemoteMM7Error("multipart nested too deeply", status=2007)
        return [
            leaf
            for p in parse_multipart(part.content_type, part.body)
            for leaf in walk(p, depth + 1)
        ]

    return walk(content, 0)


def content_text(content: Part) -> str:
    """The text of an MM: its ``text/plain`` parts joined by newlines (charset respected)."""
    texts = []
    for part in content_parts(content):
        if part.media_type == "text/plain":
            charset = part.params.get("charset", "utf-8")
            try:
                texts.append(part.body.decode(charset, errors="replace"))
            except LookupError:
                texts.append(part.body.decode("utf-8", errors="replace"))
    return "\n".join(texts)
