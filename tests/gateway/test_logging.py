"""Structured logging: JSON lines, levels per plugin, stdlib routing, masking of subscriber data."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from gateway.config import LoggingConfig
from gateway.logging import (
    Masker,
    configure_from_config,
    configure_logging,
    mask_identity,
    mask_text,
    update_levels,
)

MOBILE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")


@pytest.fixture
def out():
    stream = io.StringIO()
    configure_logging("info", fmt="json", stream=stream)
    yield stream
    configure_logging("info", fmt="json")


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_line_has_event_level_timestamp_and_context(out):
    """Each line is one JSON object with event, level, ISO UTC timestamp, bound and contextvars context."""
    structlog.contextvars.bind_contextvars(campaign="c1")
    try:
        structlog.get_logger().bind(plugin="sms_smpp", channel="sms").info("smpp.bind_ok", smsc="a")
    finally:
        structlog.contextvars.clear_contextvars()
    (line,) = lines(out)
    assert line["event"] == "smpp.bind_ok" and line["level"] == "info"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", line["timestamp"])
    assert (line["plugin"], line["channel"], line["campaign"], line["smsc"]) == (
        "sms_smpp",
        "sms",
        "c1",
        "a",
    )


def test_levels_global_and_per_plugin(out):
    """The global level drops debug lines; a plugin's own level lets its debug lines through."""
    configure_logging(
        "info", fmt="json", plugin_levels={"noisy": "debug", "quiet": "error"}, stream=out
    )
    log = structlog.get_logger()
    log.debug("a.debug")
    log.bind(plugin="noisy").debug("noisy.debug")
    log.bind(plugin="quiet").warning("quiet.warning")
    log.bind(plugin="other").info("other.info")
    assert [x["event"] for x in lines(out)] == ["noisy.debug", "other.info"]


def test_update_levels_applies_on_reload(out):
    """update_levels (called on reload) changes the filter without reconfiguring."""
    update_levels(LoggingConfig(level="error"))
    structlog.get_logger().warning("dropped")
    update_levels(LoggingConfig(level="debug"))
    structlog.get_logger().debug("kept")
    assert [x["event"] for x in lines(out)] == ["kept"]


def test_stdlib_logging_goes_through_the_same_renderer(out):
    """A stdlib logger (trio, smpplib) produces the same JSON lines, masked."""
    logging.getLogger("smpplib.client").warning("sending to %s", "8613812345678")
    (line,) = lines(out)
    assert line == {
        **line,
        "event": "sending to 86138****5678",
        "level": "warning",
        "logger": "smpplib.client",
    }


def test_exceptions_are_structured_without_locals(out):
    """exc_info becomes a structured traceback; no local variables are logged."""
    secret_local = "13812345678"  # noqa: F841 - must not appear
    try:
        raise ValueError("bad 13912345678")
    except ValueError:
        structlog.get_logger().exception("thing.failed")
    (line,) = lines(out)
    assert line["level"] == "error" and line["exception"][0]["exc_type"] == "ValueError"
    assert not MOBILE.search(out.getvalue())


def test_masks_nested_values_and_secrets(out):
    """MSISDNs and IMSIs are masked in nested dicts/lists and strings; secret keys are hidden."""
    structlog.get_logger().info(
        "x",
        msisdn=8613812345678,
        targets=[{"msisdn": "13812345678"}, "call 15900001111 now"],
        imsi="460001234567890",
        password="hunter2",
        smsc={"system_id": "gw", "secret": "s3"},
        api_token="t",
        count=12,
    )
    (line,) = lines(out)
    assert line["msisdn"] == "86138****5678"
    assert line["targets"] == [{"msisdn": "138****5678"}, "call 159****1111 now"]
    assert line["imsi"] == "46000******7890"
    assert (line["password"], line["smsc"], line["api_token"], line["count"]) == (
        "***",
        {"system_id": "gw", "secret": "***"},
        "***",
        12,
    )


def test_clear_text_debug_option(out):
    """clear_text_msisdn = true logs identities in clear (secrets stay hidden)."""
    configure_from_config(LoggingConfig(clear_text_msisdn=True), stream=out, force_format="json")
    structlog.get_logger().info("x", msisdn="13812345678", password="p")
    (line,) = lines(out)
    assert line["msisdn"] == "13812345678" and line["password"] == "***"


def test_console_renderer_when_forced():
    """format = console renders human lines (still masked)."""
    stream = io.StringIO()
    configure_logging("info", fmt="console", stream=stream)
    try:
        structlog.get_logger().info("hello.world", msisdn="13812345678")
    finally:
        configure_logging("info", fmt="json")
    text = stream.getvalue()
    assert "hello.world" in text and "138****5678" in text and not text.startswith("{")


@given(
    st.sampled_from("3456789"),
    st.text(alphabet="0123456789", min_size=9, max_size=9),
    st.booleans(),
)
def test_any_mobile_number_is_masked_in_text(second, rest, with_cc):
    """Every 11-digit mainland mobile number (with or without 86) is masked, keeping 3 + 4 digits."""
    number = ("86" if with_cc else "") + "1" + second + rest
    masked = mask_text(f"to {number}, ok")
    assert not MOBILE.search(masked) and number not in masked
    assert masked == f"to {number[:-8]}****{number[-4:]}, ok"


@given(st.text(alphabet="0123456789", min_size=15, max_size=15))
def test_any_imsi_is_masked_keeping_mcc_mnc_and_last_four(imsi):
    """A 15-digit IMSI keeps its 5-digit MCC+MNC and its last 4 digits only."""
    assert mask_text(imsi) == imsi[:5] + "******" + imsi[-4:]


@given(st.text())
def test_masking_never_fails_and_is_idempotent(text):
    """mask_text accepts any text and masking twice changes nothing more."""
    once = mask_text(text)
    assert mask_text(once) == once


def test_identity_fields_masked_whatever_their_format():
    """Values of identity keys are masked even when they are not mainland numbers."""
    assert mask_identity("+447700900123") == "+4477****0123"
    assert mask_identity("123") == "***"
    masker = Masker()
    assert (
        masker(None, "info", {"destination_addr": "447700900123"})["destination_addr"]
        == "4477****0123"
    )


def test_masks_objects_bytes_and_keys(out):
    """Objects rendered with str() (records, exceptions), bytes and dict keys are masked too."""

    class Record:
        def __str__(self):
            return "Record(msisdn='13812345678')"

    structlog.get_logger().info(
        "x",
        record=Record(),
        error=ValueError("no route to 13912345678"),
        raw=b"to 15900001111",
        per_subscriber={"13700001111": 2},
        amount=13812345678.0,
    )
    assert not MOBILE.search(out.getvalue().replace(".0", "")), out.getvalue()
    (line,) = lines(out)
    assert line["error"] == "no route to 139****5678"


def test_masking_never_raises_into_the_caller(out):
    """A cyclic structure or an object whose str() raises is logged (masked) instead of raising."""

    class Broken:
        def __str__(self):
            raise RuntimeError("no str")

    cyclic: list = ["13812345678"]
    cyclic.append(cyclic)
    log = structlog.get_logger()
    log.info("cyclic", data=cyclic, msisdn="13812345678")
    log.info("broken", thing=Broken())
    events = [x["event"] for x in lines(out)]
    assert events == ["cyclic", "broken"]
    assert not MOBILE.search(out.getvalue())


def test_console_exceptions_are_masked():
    """In console format the traceback text is masked as well."""
    stream = io.StringIO()
    configure_logging("info", fmt="console", stream=stream)
    try:
        try:
            raise ValueError("bad 13912345678")
        except ValueError:
            structlog.get_logger().exception("thing.failed")
    finally:
        configure_logging("info", fmt="json")
    text = stream.getvalue()
    assert "ValueError" in text and "139****5678" in text and not MOBILE.search(text)


def test_odd_plugin_field_does_not_raise(out):
    """A non-string 'plugin' field (unhashable) is filtered at the global level instead of raising."""
    structlog.get_logger().info("odd", plugin=["a", "b"])
    assert [x["event"] for x in lines(out)] == ["odd"]
