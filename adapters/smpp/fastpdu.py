"""A fast path for the hot PDUs: submit_sm, submit_sm_resp, deliver_sm, deliver_sm_resp (SMPP 3.4 4.4, 4.6).

smpplib builds an object per PDU (``_set_vars`` over every parameter, a generic loop per
field), which a profile of the whole path showed to cost a large share of the event loop at
a thousand messages per second. These functions write and read the same bytes directly.

smpplib stays the reference (STYLE.md rule 2): the parameter tables below are read from its
classes, anything outside the common shape (an unknown field, a TLV of an unusual type, a
malformed body) falls back to smpplib, and property tests in
``tests/adapters/smpp/test_smpp_fastpdu.py`` prove the output byte-identical to smpplib's
``make_pdu(...).generate()`` and the decoded values identical to ``parse_pdu``. Sans-IO: no
trio, no logging.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

from smpplib import command as _command
from smpplib import consts, smpp
from smpplib.ptypes import ostr

HEADER = struct.Struct(">IIII")
SUBMIT_SM = 0x00000004
SUBMIT_SM_RESP = 0x80000004
DELIVER_SM = 0x00000005
DELIVER_SM_RESP = 0x80000005

_NUL = b"\x00"
_TLV_HEAD = struct.Struct(">HH")
_INT_FORMATS = {1: struct.Struct(">HHB"), 2: struct.Struct(">HHH"), 4: struct.Struct(">HHL")}
_CODE_TO_NAME = {code: name for name, code in consts.OPTIONAL_PARAMS.items()}


class _Spec:
    """The layout of one smpplib PDU class: mandatory fields in order, then its TLVs."""

    def __init__(self, cls: Any) -> None:
        order = cls.params_order
        cut = order.index("short_message") + 1
        self.mandatory: list[tuple[str, str, int]] = []
        for name in order[:cut]:
            p = cls.params[name]
            if p.type is int:
                self.mandatory.append((name, "int", p.size))
            elif p.type is str:
                self.mandatory.append((name, "str", p.max))
            else:
                self.mandatory.append((name, "ostr", 0))
        # TLVs smpplib writes, in its order: (name, tag, kind, struct for int / max for str)
        self.tlvs: list[tuple[str, int, str, Any]] = []
        self.tlv_kinds: dict[str, tuple[str, int]] = {}
        for name in order[cut:]:
            p = cls.params[name]
            code = consts.OPTIONAL_PARAMS[name]
            if p.type is int:
                self.tlvs.append((name, code, "int", _INT_FORMATS[p.size]))
                self.tlv_kinds[name] = ("int", p.size)
            elif p.type is ostr:
                self.tlvs.append((name, code, "ostr", None))
                self.tlv_kinds[name] = ("ostr", 0)
            elif p.type is str and not hasattr(p, "size"):
                self.tlvs.append((name, code, "str", p.max))
                self.tlv_kinds[name] = ("str", 0)
        self.encodable = frozenset(t[0] for t in self.tlvs) | frozenset(
            n for n, _k, _s in self.mandatory
        )


_SUBMIT = _Spec(_command.SubmitSM)
_DELIVER = _Spec(_command.DeliverSM)


class _Unsupported(Exception):
    """Outside the fast path: let smpplib do it."""


def _cstr(value: Any, limit: int) -> bytes:
    # smpplib: truncated to max - 1 characters, NUL-terminated, latin-1 (six.b)
    if not value:
        return _NUL
    if type(value) is not str:
        raise _Unsupported
    if len(value) >= limit:
        value = value[: limit - 1]
    return value.encode("latin-1") + _NUL


def _encode_sm(spec: _Spec, fields: Mapping[str, Any]) -> bytes:
    for key in fields:
        if key not in spec.encodable and key != "sm_length":
            raise _Unsupported
    out = bytearray()
    get = fields.get
    short = get("short_message")
    value: Any
    for name, kind, size in spec.mandatory:
        if kind == "int":
            if name == "sm_length":
                value = len(short) if short else 0
            else:
                value = get(name)
            if not value:
                out.append(0)
            elif type(value) is int and 0 <= value <= 255:
                out.append(value)
            else:
                raise _Unsupported
        elif kind == "str":
            out += _cstr(get(name), size)
        elif short:
            if type(short) is not bytes or get("message_payload"):
                raise _Unsupported
            out += short
    for name, code, kind, extra in spec.tlvs:
        value = get(name)
        if kind == "int":
            if value is not None:
                out += extra.pack(code, extra.size - 4, value)
        elif not value:
            continue
        elif kind == "ostr":
            if type(value) is not bytes:
                raise _Unsupported
            out += _TLV_HEAD.pack(code, len(value)) + value
        else:  # str: smpplib cuts at max (to max - 1), NUL-terminates, and counts characters
            if type(value) is not str or not value.isascii():
                raise _Unsupported
            if len(value) > extra:
                value = value[: extra - 1]
            out += _TLV_HEAD.pack(code, len(value) + 1) + value.encode() + _NUL
    return bytes(out)


def _reference(command: str, sequence: int, status: int, fields: Mapping[str, Any]) -> bytes:
    pdu = smpp.make_pdu(command, sequence=sequence, status=status, **fields)
    pdu.sequence = sequence  # smpplib ignores the keyword when its dummy client has one
    pdu.status = status
    return pdu.generate()


def encode_submit_sm(sequence: int, fields: Mapping[str, Any], status: int = 0) -> bytes:
    """submit_sm with the given make_pdu fields; byte-identical to smpplib's, which it falls back to."""
    try:
        body = _encode_sm(_SUBMIT, fields)
    except Exception:  # _Unsupported, or a value smpplib must judge (and raise on) itself
        return _reference("submit_sm", sequence, status, fields)
    return HEADER.pack(16 + len(body), SUBMIT_SM, status, sequence) + body


def encode_deliver_sm(sequence: int, fields: Mapping[str, Any], status: int = 0) -> bytes:
    """deliver_sm (what an SMSC sends: receipts, MO); byte-identical to smpplib's."""
    try:
        body = _encode_sm(_DELIVER, fields)
    except Exception:
        return _reference("deliver_sm", sequence, status, fields)
    return HEADER.pack(16 + len(body), DELIVER_SM, status, sequence) + body


def encode_submit_sm_resp(sequence: int, status: int, message_id: str) -> bytes:
    """submit_sm_resp; byte-identical to smpplib's (message_id cut to 64 characters)."""
    body = _cstr(message_id, 65) if type(message_id) is str or not message_id else None
    if body is None:
        return _reference("submit_sm_resp", sequence, status, {"message_id": message_id})
    return HEADER.pack(16 + len(body), SUBMIT_SM_RESP, status, sequence) + body


def encode_deliver_sm_resp(sequence: int, status: int = 0) -> bytes:
    """deliver_sm_resp: its body is one empty C-string (message_id, unused)."""
    return HEADER.pack(17, DELIVER_SM_RESP, status, sequence) + _NUL


def decode_submit_sm_resp(raw: bytes) -> str | None:
    """The message_id of a whole submit_sm_resp, as smpplib reads it (None without a body)."""
    if len(raw) <= 16:
        return None
    end = raw.find(_NUL, 16)
    # smpplib: without a NUL the length is -1 and the last octet is dropped
    return raw[16 : end if end >= 0 else -1].decode("latin-1")


# -- deliver_sm -----------------------------------------------------------------------------------


def parse_sm_fields(raw: bytes, spec: _Spec = _DELIVER) -> dict[str, Any] | None:
    """The fields smpplib's ``parse_pdu`` sets on a whole submit_sm / deliver_sm (bytes for
    strings, as smpplib leaves them), or None where only smpplib should judge the body."""
    dlen = len(raw)
    pos = 16
    f: dict[str, Any] = {}
    for name, kind, _size in spec.mandatory:
        if pos == dlen:
            break  # smpplib stops here too and leaves the rest None
        if kind == "int":
            f[name] = raw[pos]
            pos += 1
        elif kind == "str":
            end = raw.find(_NUL, pos)
            if end < 0:
                return None
            f[name] = raw[pos:end]
            pos = end + 1
        else:
            length = f["sm_length"]
            if pos + length > dlen:
                return None
            f[name] = raw[pos : pos + length]
            pos += length
    kinds = spec.tlv_kinds
    while pos < dlen:
        if pos + 4 > dlen:
            return None
        code, length = _TLV_HEAD.unpack_from(raw, pos)
        pos += 4
        tlv = _CODE_TO_NAME.get(code)
        if tlv is None:  # unknown TLV: skipped (allow_unknown_opt_params)
            pos += length
            continue
        tlv_kind = kinds.get(tlv)
        if tlv_kind is None or pos + length > dlen:
            return None
        if tlv_kind[0] == "int":
            if length != tlv_kind[1]:
                return None  # smpplib would read its own size and lose the framing
            f[tlv] = int.from_bytes(raw[pos : pos + length], "big")
        elif tlv_kind[0] == "str":
            if length < 1:
                return None
            f[tlv] = raw[pos : pos + length - 1]
        else:
            f[tlv] = raw[pos : pos + length]
        pos += length
    if pos != dlen:
        return None
    return f
