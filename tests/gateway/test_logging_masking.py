"""The log masker: subscriber numbers of any country, roamers' IMSIs, IMEIs, secret keys."""

from __future__ import annotations

import io
import json
import re

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from gateway.logging import configure_logging, mask_text


@pytest.fixture
def out():
    stream = io.StringIO()
    configure_logging("info", fmt="json", stream=stream)
    yield stream
    configure_logging("info", fmt="json")


def line(stream: io.StringIO) -> dict:
    (only,) = stream.getvalue().splitlines()
    return json.loads(only)


@pytest.mark.parametrize(
    ("clear", "masked"),
    [
        ("234150999999999", "23415******9999"),  # a UK roamer's IMSI
        ("31026012345678", "31026*****5678"),  # 14-digit IMSI (3-digit MNC, short MSIN)
        ("+447911123456", "+4479****3456"),  # E.164 of another country
        ("14155552671", "141****2671"),
        ("6591234567", "65****4567"),
        ("85291234", "85****34"),  # 8 digits: the shortest E.164
        ("352099001761481", "35209******1481"),  # IMEI
        ("3520990017614823", "35209*******4823"),  # IMEISV
        ("35-209900-176148-1", "35-209900-******-1"),
        ("35 209900 176148 23", "35 209900 ****** 23"),
        ("35209900-176148-1", "35****00-******-1"),  # the 8-digit TAC is a long number too
    ],
)
def test_identities_of_any_country_are_masked_in_text(clear, masked):
    """Roamers' IMSIs, numbers of any country and IMEIs (with or without separators) are masked."""
    assert mask_text(f"seen {clear}, ok") == f"seen {masked}, ok"


@pytest.mark.parametrize(
    "text",
    [
        "at 1772000000.123456 after 0.000123456789 s",
        "sent 1234567 messages on port 2775",
        "date 2026-11-30T02:35:58Z, version 1.2.3",
        "uuid 550e8400-e29b-41d4",
    ],
)
def test_numbers_that_are_not_subscribers_stay(text):
    """Decimal numbers (timestamps), counters under 8 digits, dates and versions are not masked."""
    assert mask_text(text) == text


def test_secret_keys_are_hidden(out):
    """Values of auth, api_key, token, authorization, secret, passwd, password, credential, cookie are hidden."""
    keys = [
        "auth",
        "api_key",
        "token",
        "authorization",
        "secret",
        "passwd",
        "password",
        "credential",
        "cookie",
        "X-Auth-Token",
        "proxy_authorization",
        "apiKey",
        "credentials",
        "set_cookie",
    ]
    structlog.get_logger().info("x", **{k: "v4lue" for k in keys}, author="Li", authorized=True)
    record = line(out)
    assert {k: record[k] for k in keys} == dict.fromkeys(keys, "***")
    assert record["author"] == "Li" and record["authorized"] is True
    assert "v4lue" not in out.getvalue()


def test_secrets_written_in_text_are_hidden():
    """token=..., "password": "...", Authorization: Bearer ... and URL passwords in free text are hidden."""
    text = mask_text(
        'GET /cb?access_token=abc123&x=1 Authorization: Bearer eyJhbGci {"password": "hunter2"} '
        "redis://gw:s3cr3t@cache:6379 api-key: K1"
    )
    for secret in ("abc123", "eyJhbGci", "hunter2", "s3cr3t", "K1"):
        assert secret not in text, text
    assert "x=1" in text and "cache:6379" in text


def test_numbers_as_values(out):
    """Integers of 8+ digits are masked; float timestamps and measures (*_ms, *_bytes, count) stay."""
    structlog.get_logger().info(
        "x",
        peer=447911123456,
        at=1772000000.25,
        latency_ms=123456789,
        rss_bytes=123456789,
        count=12345678,
        small=1234567,
    )
    record = line(out)
    assert record["peer"] == "4479****3456"
    assert (record["at"], record["latency_ms"], record["rss_bytes"]) == (
        1772000000.25,
        123456789,
        123456789,
    )
    assert (record["count"], record["small"]) == (12345678, 1234567)


E164 = st.builds(
    lambda cc, rest: cc + rest,
    st.from_regex(r"[1-9][0-9]{0,2}", fullmatch=True),
    st.text(alphabet="0123456789", min_size=5, max_size=12),
).filter(lambda n: 8 <= len(n) <= 15)
# Around the number: anything except what would make it part of a decimal number ("3." or
# "3.14" before it, ".5" or "0.5" after it: digits may sit between it and the point).
AROUND = st.text(max_size=30)


def _decimal_before(text: str) -> bool:
    rest = re.sub(r"\d+$", "", text)
    return len(rest) >= 2 and rest[-1] == "." and rest[-2].isdecimal()


def _decimal_after(text: str) -> bool:
    rest = re.sub(r"^\d+", "", text)
    return len(rest) >= 2 and rest[0] == "." and rest[1].isdecimal()


@given(
    number=E164,
    plus=st.booleans(),
    before=AROUND.filter(lambda t: not _decimal_before(t)),
    after=AROUND.filter(lambda t: not _decimal_after(t)),
    key=st.sampled_from(["note", "msisdn", "peer", "error", "data"]),
)
def test_any_e164_number_embedded_in_a_string_is_never_logged_in_clear(
    number, plus, before, after, key
):
    """Property: an E.164 number embedded anywhere in a logged string never appears in the rendered line."""
    stream = io.StringIO()
    configure_logging("info", fmt="json", stream=stream)
    try:
        text = f"{before}{'+' if plus else ''}{number}{after}"
        structlog.get_logger().info("event.name", **{key: text}, nested={"list": [text]})
    finally:
        configure_logging("info", fmt="json")
    rendered = stream.getvalue()
    decoded = json.dumps(json.loads(rendered), ensure_ascii=False)
    assert number not in rendered and number not in decoded
