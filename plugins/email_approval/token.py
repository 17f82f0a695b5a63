"""Approval tokens carried by notification emails, and reading a reply (sans-IO, no logging).

A token names one approval step for one approver until it expires::

    GWA1.<base64url of "approval|step|account|expires|nonce">.<HMAC-SHA256, 32 hex digits>

The MAC (RFC 2104, under the plugin's secret) makes it unforgeable; the nonce makes it
single-use (the service records used nonces durably); ``expires`` (Unix seconds) bounds it.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import hashlib
import hmac
import re
from email.message import EmailMessage
from email.utils import parseaddr

import attrs

PREFIX = "GWA1"
TOKEN_RE = re.compile(r"GWA1\.([A-Za-z0-9_-]{8,400})\.([0-9a-f]{32})")
APPROVE_WORDS = frozenset({"approve", "approved", "yes", "agree", "同意", "批准"})
WORD_END = re.compile("[\\s,.;:!?\uff0c\u3002\uff1b\uff1a\uff01\uff1f\u3001]+")
REJECT_WORDS = frozenset({"reject", "rejected", "no", "disagree", "不同意", "驳回"})


class TokenError(ValueError):
    """The token is missing, forged, malformed or expired (the reason is for the log only)."""


@attrs.frozen(kw_only=True)
class Claims:
    approval: str
    step: int
    account: str
    expires: int
    nonce: str


def _mac(secret: bytes, payload: str) -> str:
    return hmac.new(secret, payload.encode(), hashlib.sha256).hexdigest()[:32]


def make_token(secret: bytes, claims: Claims) -> str:
    payload = f"{claims.approval}|{claims.step}|{claims.account}|{claims.expires}|{claims.nonce}"
    if payload.count("|") != 4:
        raise ValueError("token fields may not contain '|'")
    encoded = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
    return f"{PREFIX}.{encoded}.{_mac(secret, encoded)}"


def read_token(secret: bytes, text: str, now: float) -> Claims:
    """The claims of the first token in ``text``. Raises TokenError."""
    match = TOKEN_RE.search(text)
    if match is None:
        raise TokenError("no token")
    encoded, mac = match.groups()
    if not hmac.compare_digest(mac, _mac(secret, encoded)):
        raise TokenError("bad signature")
    try:
        payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        approval, step, account, expires, nonce = payload.split("|")
        claims = Claims(
            approval=approval, step=int(step), account=account, expires=int(expires), nonce=nonce
        )
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise TokenError("malformed") from None
    if claims.expires < now:
        raise TokenError("expired")
    return claims


@attrs.frozen(kw_only=True)
class Reply:
    sender: str  # the From: address, lower-case
    text: str  # subject and plain-text body, for the token search
    first_line: str  # the first non-empty line of the body


def read_reply(data: bytes) -> Reply:
    """Parse a reply. Raises ValueError when it has no readable plain-text part."""
    message = email.message_from_bytes(data, policy=email.policy.default)
    if not isinstance(message, EmailMessage):
        raise ValueError("not a message")
    sender = parseaddr(str(message.get("From", "")))[1].strip().lower()
    part = message.get_body(preferencelist=("plain",))
    if part is None:
        raise ValueError("no text/plain part")
    body = part.get_content()
    if not isinstance(body, str):
        raise ValueError("no text body")
    first = next((line.strip() for line in body.splitlines() if line.strip()), "")
    return Reply(sender=sender, text=f"{message.get('Subject', '')}\n{body}", first_line=first)


def decision_word(first_line: str) -> str | None:
    """``approve``, ``reject`` or None, from the first line (its first word, or the whole line)."""
    line = first_line.strip().lower()
    # the first word ends at a space or punctuation, full-width (Chinese) punctuation included
    candidates = [line, *WORD_END.split(line)[:1]]
    for word in candidates:
        if word in REJECT_WORDS:  # before approve: 不同意 contains 同意
            return "reject"
        if word in APPROVE_WORDS:
            return "approve"
    return None
