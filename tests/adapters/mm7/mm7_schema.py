"""The MM7 schema of tests/data/mm7 (written from TS 23.140, see its header), loaded with
xmlschema, an XSD validator independent of our codec; and Python's email package as an
independent MIME parser of our multipart bodies."""

from __future__ import annotations

import email
import email.policy
import functools
import tempfile
from pathlib import Path

import xmlschema

from adapters.mm7 import RELEASES

DATA = Path(__file__).resolve().parents[2] / "data" / "mm7"
REL6 = RELEASES["REL-6"].namespace


@functools.cache
def envelope_schema(namespace: str = REL6) -> xmlschema.XMLSchema:
    """The SOAP 1.1 envelope schema importing the MM7 schema for ``namespace`` (REL-5 uses
    the same definitions under its own namespace: the file is copied with it replaced)."""
    folder = Path(tempfile.mkdtemp(prefix="mm7-xsd-"))
    mm7 = (DATA / "mm7.xsd").read_text(encoding="utf-8").replace(REL6, namespace)
    (folder / "mm7.xsd").write_text(mm7, encoding="utf-8")
    soap = (DATA / "soap-envelope.xsd").read_text(encoding="utf-8")
    (folder / "soap-envelope.xsd").write_text(soap.replace("MM7_NAMESPACE", namespace))
    return xmlschema.XMLSchema(str(folder / "soap-envelope.xsd"))


def validate_envelope(xml: bytes, namespace: str = REL6) -> None:
    """Raise xmlschema's error unless ``xml`` is a valid SOAP envelope of MM7 messages."""
    envelope_schema(namespace).validate(xml.decode("utf-8"))


def email_parts(content_type: str, body: bytes) -> list[email.message.Message]:
    """The leaf parts of a multipart body, as Python's email package reads it."""
    message = email.message_from_bytes(
        b"Content-Type: " + content_type.encode("ascii") + b"\r\n\r\n" + body,
        policy=email.policy.compat32,
    )
    assert not message.defects, message.defects
    return [part for part in message.walk() if not part.is_multipart()]
