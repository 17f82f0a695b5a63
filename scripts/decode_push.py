#!/usr/bin/env python3
"""Decode a WAP Push (SI/SL over SMS) from hex, for operators and tests.

Usage::

    scripts/decode_push.py HEX [HEX ...]      # each HEX: one SMS's user data, UDH included
    scripts/decode_push.py --wsp HEX          # a WSP push PDU (no UDH)
    scripts/decode_push.py --wbxml HEX        # a bare SI/SL WBXML document

Prints one JSON object: ports, parts, WSP fields and the SI/SL document. Exit status 1 with
the reason on stderr when the bytes are not a push we can read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters.wap import push, wbxml, wsp


def document_fields(doc: wbxml.ServiceIndication | wbxml.ServiceLoading | None) -> Any:
    if doc is None:
        return None
    if isinstance(doc, wbxml.ServiceLoading):
        return {"type": "sl", "href": doc.href, "action": doc.action.value}
    return {
        "type": "si",
        "href": doc.href,
        "si_id": doc.si_id,
        "created": doc.created.isoformat().replace("+00:00", "Z") if doc.created else None,
        "si_expires": doc.expires.isoformat().replace("+00:00", "Z") if doc.expires else None,
        "action": doc.action.value,
        "text": doc.text,
    }


def pdu_fields(pdu: wsp.PushPdu) -> dict[str, Any]:
    return {
        "transaction_id": pdu.transaction_id,
        "pdu_type": pdu.pdu_type,
        "content_type": pdu.content_type,
        "application_id": pdu.application_id,
        "body_octets": len(pdu.body),
    }


def decode(hexes: list[str], layer: str) -> dict[str, Any]:
    raw = [bytes.fromhex("".join(h.split())) for h in hexes]
    if layer == "wbxml":
        return {"document": document_fields(wbxml.decode(raw[0]))}
    if layer == "wsp":
        pdu = wsp.decode_push(raw[0])
        doc = wbxml.decode(pdu.body) if pdu.content_type in push_types() else None
        return {"wsp": pdu_fields(pdu), "document": document_fields(doc)}
    result = push.decode(raw)
    return {
        "dest_port": result.dest_port,
        "src_port": result.src_port,
        "parts": result.parts,
        "wsp": pdu_fields(result.pdu),
        "document": document_fields(result.document),
    }


def push_types() -> tuple[str, str]:
    return (push.CONTENT_TYPE_SI, push.CONTENT_TYPE_SL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("hex", nargs="+", help="hex of each SMS's user data (UDH included)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--wsp", action="store_true", help="the hex is a WSP push PDU")
    group.add_argument("--wbxml", action="store_true", help="the hex is an SI/SL WBXML document")
    args = parser.parse_args(argv)
    layer = "wsp" if args.wsp else "wbxml" if args.wbxml else "sms"
    try:
        out = decode(args.hex, layer)
    except ValueError as exc:  # bad hex, WdpError, WspError, WbxmlError
        print(f"decode_push: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(out, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
