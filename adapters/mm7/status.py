"""MM7 request status codes (3GPP TS 23.140 REL-6, Annex "Status code and status text") and
what each means for a message we submitted: accepted, worth another try, or refused for good.

Classes: 1xxx success, 2xxx client errors (the request was wrong: sending it again cannot
help), 3xxx server errors (the MMSC could not do it now: most are worth a retry), 4xxx general
service errors (identification, version, denial: a configuration problem, except 4006 service
unavailable, which is a temporary state of the MMSC).
"""

from __future__ import annotations

import enum

STATUS_TEXT: dict[int, str] = {
    1000: "Success",
    1100: "Partial success",
    2000: "Client error",
    2001: "Operation restricted",
    2002: "Address Error",
    2003: "Address Not Found",
    2004: "Multimedia content refused",
    2005: "Message ID Not found",
    2006: "LinkedID not found",
    2007: "Message format corrupt",
    2008: "Application ID not found",
    2009: "Reply Application ID not found",
    3000: "Server Error",
    3001: "Not Possible",
    3002: "Message rejected",
    3003: "Multiple addresses not supported",
    3004: "Application Addressing not supported",
    4000: "General service error",
    4001: "Improper identification",
    4002: "Unsupported version",
    4003: "Unsupported operation",
    4004: "Validation error",
    4005: "Service error",
    4006: "Service unavailable",
    4007: "Service denied",
    4008: "Application denied",
}

#: Codes of the final classes that are nevertheless temporary states of the MMSC.
_RETRYABLE = frozenset({3000, 3001, 4000, 4005, 4006})


class Verdict(enum.StrEnum):
    """What a SubmitRsp status means for the message."""

    ACCEPTED = "accepted"  # 1xxx: the MMSC took it
    RETRY = "retry"  # temporary: send it again later
    REFUSED = "refused"  # final: sending it again cannot help


def verdict(code: int) -> Verdict:
    """The verdict for a status code; unknown codes take their class's verdict (an unknown
    3xxx is retried, an unknown 2xxx or 4xxx refused, anything outside 1000-4999 refused)."""
    if 1000 <= code < 2000:
        return Verdict.ACCEPTED
    if code in _RETRYABLE or (3000 <= code < 4000 and code not in (3002, 3003, 3004)):
        return Verdict.RETRY
    return Verdict.REFUSED


def status_text(code: int) -> str:
    """The standard text of a code, or its class's text for a code not in the table."""
    return STATUS_TEXT.get(code) or STATUS_TEXT.get(code // 1000 * 1000, "Unknown status")
