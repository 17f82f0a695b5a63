"""MM7 (3GPP TS 23.140) as a VASP: the SOAP messages, their multipart bodies, status codes.

Sans-IO codecs: :mod:`.model` (the message values), :mod:`.soap` (envelopes), :mod:`.mime` (multipart/related framing),
:mod:`.message` (the HTTP body of a request, the MM with its SMIL), :mod:`.status` (what a
status code means for a message). The HTTP transport is the MMS channel's (plugins.mms_mm7).
"""

from adapters.mm7.errors import LocalMM7Error, MM7Error, RemoteMM7Error
from adapters.mm7.message import (
    Decoded,
    Image,
    build_content,
    content_parts,
    content_text,
    decode_request,
    encode_request,
)
from adapters.mm7.mime import Part, encode_multipart, parse_multipart
from adapters.mm7.model import (
    RELEASES,
    Address,
    DeliverReq,
    DeliveryReportReq,
    ReadReplyReq,
    Release,
    Response,
    Status,
    SubmitReq,
    response_to,
)
from adapters.mm7.soap import decode_envelope, encode_envelope, encode_fault
from adapters.mm7.status import Verdict, status_text, verdict

__all__ = [
    "RELEASES",
    "Address",
    "Decoded",
    "DeliverReq",
    "DeliveryReportReq",
    "Image",
    "LocalMM7Error",
    "MM7Error",
    "Part",
    "ReadReplyReq",
    "Release",
    "RemoteMM7Error",
    "Response",
    "Status",
    "SubmitReq",
    "Verdict",
    "build_content",
    "content_parts",
    "content_text",
    "decode_envelope",
    "decode_request",
    "encode_envelope",
    "encode_fault",
    "encode_multipart",
    "encode_request",
    "parse_multipart",
    "response_to",
    "status_text",
    "verdict",
]
