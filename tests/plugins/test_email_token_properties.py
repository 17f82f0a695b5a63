"""Property tests of approval tokens and reply reading."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugins.email_approval.token import (
    Claims,
    TokenError,
    decision_word,
    make_token,
    read_reply,
    read_token,
)

SECRET = b"k" * 20
FIELD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._", min_size=1, max_size=30)
CLAIMS = st.builds(
    Claims,
    approval=FIELD,
    step=st.integers(0, 20),
    account=FIELD,
    expires=st.integers(10**9, 2 * 10**9),
    nonce=st.text(alphabet="0123456789abcdef", min_size=16, max_size=16),
)


@given(CLAIMS, st.text(max_size=50), st.text(max_size=50))
def test_tokens_round_trip_inside_any_text(claims, before, after):
    """A token is found and read back from any surrounding text, until it expires."""
    token = make_token(SECRET, claims)
    assert read_token(SECRET, f"{before} {token} {after}", claims.expires - 1) == claims
    with pytest.raises(TokenError, match="expired"):
        read_token(SECRET, token, claims.expires + 1)


@given(CLAIMS, st.integers(0, 31))
def test_any_changed_mac_digit_is_refused(claims, position):
    """Changing any digit of the MAC, or signing with another key, makes the token invalid."""
    token = make_token(SECRET, claims)
    head, mac = token.rsplit(".", 1)
    digit = "0" if mac[position] != "0" else "1"
    forged = f"{head}.{mac[:position]}{digit}{mac[position + 1 :]}"
    with pytest.raises(TokenError):
        read_token(SECRET, forged, 0)
    with pytest.raises(TokenError, match="bad signature"):
        read_token(b"another-secret-key!!", token, 0)


@given(CLAIMS)
def test_mac_is_hmac_sha256_of_the_payload(claims):
    """The MAC is HMAC-SHA256 (RFC 2104, computed here independently) of the encoded payload."""
    _, encoded, mac = make_token(SECRET, claims).split(".")
    assert mac == hmac.new(SECRET, encoded.encode(), hashlib.sha256).hexdigest()[:32]


@given(st.binary(max_size=300))
def test_any_bytes_read_or_raise_value_error(data):
    """Any bytes are a reply or a ValueError/LookupError (the service refuses those)."""
    try:
        read_reply(data)
    except (ValueError, LookupError):
        pass


def test_decision_words():
    """不同意 rejects though it contains 同意; the first word or the whole line decides."""
    assert decision_word("不同意") == "reject"
    assert decision_word("同意。") == "approve"
    assert decision_word("Approve, looks fine") == "approve"
    assert decision_word("不同意\uff0c日期不对") == "reject"
    assert decision_word("reject: wrong dates") == "reject"
    assert decision_word("approved?? no way") == "approve"
    assert decision_word("maybe approve") is None
    assert decision_word("") is None
