"""A WAP Push end to end: SI/SL document -> WBXML -> WSP push PDU -> WDP SMS parts, and back.

:func:`encode` gives the user data of each SMS (UDH included) for a submit_sm with esm_class
UDHI and data_coding 0x04; :func:`decode` reads them back (any order) into a :class:`Push`.
"""

from __future__ import annotations

import attrs

from adapters.wap import wbxml, wdp, wsp

CONTENT_TYPE_SI = "application/vnd.wap.sic"
CONTENT_TYPE_SL = "application/vnd.wap.slc"


@attrs.frozen(kw_only=True)
class Push:
    """A decoded push: its transport fields and the document (None when not SI or SL)."""

    dest_port: int
    src_port: int
    parts: int
    pdu: wsp.PushPdu
    document: wbxml.ServiceIndication | wbxml.ServiceLoading | None


def encode_document(document: wbxml.ServiceIndication | wbxml.ServiceLoading) -> tuple[bytes, str]:
    """The WBXML and its content type."""
    if isinstance(document, wbxml.ServiceIndication):
        return wbxml.encode_si(document), CONTENT_TYPE_SI
    return wbxml.encode_sl(document), CONTENT_TYPE_SL


def encode_pdu(
    document: wbxml.ServiceIndication | wbxml.ServiceLoading, *, transaction_id: int = 0
) -> bytes:
    """The WSP push PDU of a document (the WDP datagram payload)."""
    body, content_type = encode_document(document)
    return wsp.encode_push(body, content_type, transaction_id=transaction_id)


def encode(
    document: wbxml.ServiceIndication | wbxml.ServiceLoading,
    *,
    transaction_id: int = 0,
    reference: int = 0,
    sixteen_bit: bool = False,
) -> list[bytes]:
    """The SMS user data (UDH + data) of each part of the push."""
    pdu = encode_pdu(document, transaction_id=transaction_id)
    return wdp.segment(pdu, reference=reference, sixteen_bit=sixteen_bit)


def decode(parts: list[bytes]) -> Push:
    """Read the user data of a push's SMS parts; raises ``WdpError``/``WspError``/``WbxmlError``."""
    first, payload = wdp.reassemble(parts)
    pdu = wsp.decode_push(payload)
    document: wbxml.ServiceIndication | wbxml.ServiceLoading | None = None
    if pdu.content_type in (CONTENT_TYPE_SI, CONTENT_TYPE_SL):
        document = wbxml.decode(pdu.body)
    return Push(
        dest_port=first.dest_port,
        src_port=first.src_port,
        parts=len(parts),
        pdu=pdu,
        document=document,
    )
