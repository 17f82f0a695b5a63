"""Delivery receipts (DLR): the SMSC's report on a message it accepted earlier.

A receipt arrives as a deliver_sm with the receipt bit in esm_class (0x04). Its state is in
the ``receipted_message_id`` / ``message_state`` TLVs when the SMSC sends them (SMPP 3.4
5.3.2.12, 5.3.2.35), and otherwise only in the short_message text whose de-facto format is
SMPP 3.4 Appendix B::

    id:IIIIIIIIII sub:SSS dlvr:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DDDDDDD err:E text: ...

SMSCs vary: field order, case, missing fields and hex or decimal ids all occur, so the parser
looks for ``key:value`` pairs anywhere and needs only ``id`` and ``stat``.
"""

from __future__ import annotations

import re

import attrs

#: Receipt ``stat`` words -> our delivery state names (gateway.model.DeliveryState values).
STAT_TO_STATE = {
    "DELIVRD": "delivered",
    "EXPIRED": "expired",
    "DELETED": "undeliverable",
    "UNDELIV": "undeliverable",
    "ACCEPTD": "submitted",
    "ENROUTE": "submitted",
    "UNKNOWN": "unknown",
    "REJECTD": "rejected",
}

#: message_state TLV values (SMPP 3.4 5.2.28) -> receipt stat words.
MESSAGE_STATE_TO_STAT = {
    1: "ENROUTE",
    2: "DELIVRD",
    3: "EXPIRED",
    4: "DELETED",
    5: "UNDELIV",
    6: "ACCEPTD",
    7: "UNKNOWN",
    8: "REJECTD",
}
STAT_TO_MESSAGE_STATE = {v: k for k, v in MESSAGE_STATE_TO_STAT.items()}

#: receipt_id settings: (base of the ids in receipts, base of the ids in submit_sm_resp).
#: SMSCs differ: some answer submit_sm with a hex id and write it in decimal in the receipt.
ID_FORMS = {"as_is": (None, None), "hex_to_dec": (16, 10), "dec_to_hex": (10, 16)}

_FIELD = re.compile(r"(?i)\b(id|sub|dlvr|submit date|done date|stat|err|text)\s*:")


class ReceiptParseError(ValueError):
    """Raised when a receipt text has no ``id`` or no ``stat``."""


@attrs.frozen(kw_only=True, slots=True)
class Receipt:
    message_id: str
    stat: str  # DELIVRD, UNDELIV, ...
    err: str = ""
    sub: str = ""
    dlvr: str = ""
    submit_date: str = ""
    done_date: str = ""
    text: str = ""

    @property
    def state(self) -> str:
        """Our delivery state name for ``stat`` (``unknown`` for an unknown word)."""
        return STAT_TO_STATE.get(self.stat.upper(), "unknown")


def parse_receipt_text(text: str) -> Receipt:
    """Parse the Appendix B receipt text. Keys are case-insensitive; order does not matter."""
    fields: dict[str, str] = {}
    matches = list(_FIELD.finditer(text))
    for i, m in enumerate(matches):
        key = m.group(1).lower()
        if key == "text":
            fields["text"] = text[m.end() :]
            break
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        fields.setdefault(key, text[m.end() : end].strip())
    if not fields.get("id") or not fields.get("stat"):
        raise ReceiptParseError(f"not a delivery receipt: {text[:80]!r}")
    return Receipt(
        message_id=fields["id"],
        stat=fields["stat"].upper(),
        err=fields.get("err", ""),
        sub=fields.get("sub", ""),
        dlvr=fields.get("dlvr", ""),
        submit_date=fields.get("submit date", ""),
        done_date=fields.get("done date", ""),
        text=fields.get("text", ""),
    )


def format_receipt_text(r: Receipt) -> str:
    """The Appendix B text for ``r`` (what an SMSC, or our simulator, sends)."""
    return (
        f"id:{r.message_id} sub:{r.sub or '001'} dlvr:{r.dlvr or '001'} "
        f"submit date:{r.submit_date} done date:{r.done_date} "
        f"stat:{r.stat} err:{r.err or '000'} text:{r.text}"
    )


def comparable_id(message_id: str, form: str, *, in_receipt: bool) -> str:
    """A message id in the form both sides are matched in: the number written in the submit
    answer's base (hex in lower case, no leading zeros), or the id as it is (``as_is``, or an
    id that is not a number in the expected base)."""
    receipt_base, submit_base = ID_FORMS[form]
    base = receipt_base if in_receipt else submit_base
    if base is None:
        return message_id
    try:
        number = int(message_id, base)
    except ValueError:
        return message_id
    return str(number) if submit_base == 10 else f"{number:x}"


def receipt_from_fields(
    short_message: bytes, receipted_message_id: bytes | str | None, message_state: int | None
) -> Receipt:
    """The receipt of a deliver_sm: TLVs where present, else the text. Raises ReceiptParseError."""
    if receipted_message_id and message_state:
        mid = (
            receipted_message_id.decode("latin-1")
            if isinstance(receipted_message_id, bytes)
            else receipted_message_id
        )
        stat = MESSAGE_STATE_TO_STAT.get(message_state, "UNKNOWN")
        err = ""
        try:
            parsed = parse_receipt_text(short_message.decode("latin-1"))
            err = parsed.err
        except ReceiptParseError:
            pass
        return Receipt(message_id=mid.rstrip("\x00"), stat=stat, err=err)
    return parse_receipt_text(short_message.decode("latin-1"))
