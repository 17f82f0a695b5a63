"""The BOSS client on its own: templates, answers, retries and the circuit breaker."""

from __future__ import annotations

import json
import tomllib
from xml.etree import ElementTree

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import ConfigError
from gateway.testing.boss import BOSS_NS, SOAP_ENV, open_fake_boss
from plugins.boss_orders.breaker import BreakerState, CircuitBreaker
from plugins.boss_orders.client import BossClient, BossRejected, BossUnavailable
from plugins.boss_orders.codec import SoapFault, parse_json, parse_soap, render_json, render_soap
from plugins.boss_orders.config import parse_boss_orders_config
from tests.plugins.boss_harness import JSON_ORDER, SOAP_ORDER


def config_of(text: str, **changes):
    table = tomllib.loads(text)["plugins"]["boss_orders"]
    table.update(changes)
    return parse_boss_orders_config(table, "plugins.boss_orders")


@pytest.fixture
def clock(mock_clock):
    """Virtual time that jumps once the test has been idle 50 ms of real time (real sockets)."""
    mock_clock.autojump_threshold = 0.05
    return mock_clock


@given(st.text())
def test_soap_values_cannot_add_elements(value):
    """Any text put in a SOAP template comes back as the same text of the same element."""
    config = config_of(SOAP_ORDER.format(port=1))
    body = render_soap(config.order.body, {"contact_id": value, "msisdn": "1", "product": "P"})
    clean = "".join(
        c for c in value if c in "\t\n\r" or " " <= c <= "\ud7ff" or "\ue000" <= c <= "\ufffd"
    )
    if clean != value:
        return  # characters XML 1.0 cannot carry at all
    root = ElementTree.fromstring(body)
    (operation,) = root.find(f"{{{SOAP_ENV}}}Body")
    assert [child.tag.split("}")[1] for child in operation] == ["orderId", "msisdn", "productCode"]
    assert (operation.findtext(f"{{{BOSS_NS}}}orderId") or "") == value


@pytest.mark.parametrize("value", ["\r\n", "a\rb", "\r", "x\n\r\ny"])
def test_soap_values_keep_their_carriage_returns(value):
    """XML parsers turn a literal CR or CR LF into LF; the value must reach the BOSS as ours
    (hypothesis found '\r\n' arriving as '\n')."""
    config = config_of(SOAP_ORDER.format(port=1))
    body = render_soap(config.order.body, {"contact_id": value, "msisdn": "1", "product": "P"})
    (operation,) = ElementTree.fromstring(body).find(f"{{{SOAP_ENV}}}Body")
    assert operation.findtext(f"{{{BOSS_NS}}}orderId") == value


@given(st.text())
def test_json_values_stay_strings(value):
    """Any text put in a JSON template is that string in the document sent."""
    config = config_of(JSON_ORDER.format(port=1))
    body = render_json(config.order.json, {"contact_id": value, "msisdn": "1", "product": "P"})
    assert json.loads(body)["orderId"] == value


def test_answers_are_read_by_field():
    """Fields are read by element local name (SOAP) and dotted path (JSON); faults raise."""
    soap = (
        f'<e:Envelope xmlns:e="{SOAP_ENV}"><e:Body><x:R xmlns:x="urn:x"><x:code>0</x:code>'
        "<x:no>7</x:no></x:R></e:Body></e:Envelope>"
    ).encode()
    assert parse_soap(soap, {"code": "code", "n": "no"}) == {"code": "0", "n": "7"}
    fault = (
        f'<e:Envelope xmlns:e="{SOAP_ENV}"><e:Body><e:Fault><faultcode>e:Client.Auth</faultcode>'
        "<faultstring>bad</faultstring></e:Fault></e:Body></e:Envelope>"
    ).encode()
    with pytest.raises(SoapFault) as info:
        parse_soap(fault, {"code": "code"})
    assert info.value.client
    assert parse_json(b'{"a": {"b": 0, "c": true}}', {"code": "a.b", "x": "a.c", "y": "z"}) == {
        "code": "0",
        "x": "true",
    }


def test_config_errors_name_the_key():
    """A SOAP operation without a body, or an unknown template field, is refused by key."""
    with pytest.raises(ConfigError, match=r"plugins\.boss_orders\.order\.body"):
        config_of(SOAP_ORDER.format(port=1), order={"fields": {"code": "c"}})
    with pytest.raises(ConfigError, match=r"result_sms\.placed"):
        config_of(SOAP_ORDER.format(port=1), result_sms={"placed": "{nonsense}"})


def test_breaker_opens_after_failures_and_closes_after_a_good_trial():
    """Closed -> open after the threshold; refused while open; one trial after the reset
    time: a failure reopens, a success closes."""
    b = CircuitBreaker(failure_threshold=2, reset_after=10)
    b.record_failure(0)
    assert b.allow(0) and b.state is BreakerState.CLOSED
    b.record_failure(1)
    assert b.state is BreakerState.OPEN and not b.allow(5)
    assert b.allow(11) and b.state is BreakerState.HALF_OPEN
    assert not b.allow(11)  # one trial at a time
    b.record_failure(12)
    assert b.state is BreakerState.OPEN and not b.allow(13)
    assert b.allow(22)
    b.record_success()
    assert b.state is BreakerState.CLOSED and b.allow(22)


async def test_circuit_breaker_opens_and_closes_over_real_http(clock):
    """Against a BOSS answering 500, calls fail after retries until the breaker opens; then
    calls are refused without a request; after breaker_reset a good answer closes it."""
    async with open_fake_boss("soap") as boss:
        config = config_of(SOAP_ORDER.format(port=boss.port))
        client = BossClient(config)
        values = {"contact_id": "c1", "msisdn": "8613800000001", "product": "P"}
        boss.fail_next = 100
        for _ in range(2):
            with pytest.raises(BossUnavailable):
                await client.call(config.order, values)
        assert client.breaker.state is BreakerState.OPEN
        sent = boss.requests
        assert sent == config.breaker_failures
        with pytest.raises(BossUnavailable, match="circuit breaker open"):
            await client.call(config.order, values)
        assert boss.requests == sent  # refused locally
        boss.fail_next = 0
        await trio.sleep(config.breaker_reset)
        fields = await client.call(config.order, values)
        assert fields["code"] == "0" and client.breaker.state is BreakerState.CLOSED
        await client.aclose()


async def test_timeout_counts_as_unavailable_and_client_fault_is_final(clock):
    """A BOSS that never answers costs one timeout per try; a SOAP Client fault is final."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    config = config_of(SOAP_ORDER.format(port=port), attempts=1)
    client = BossClient(config)
    started = trio.current_time()
    with pytest.raises(BossUnavailable):
        await client.call(config.order, {"contact_id": "c", "msisdn": "1", "product": "P"})
    assert trio.current_time() - started == pytest.approx(config.timeout, abs=0.1)
    await client.aclose()
    async with open_fake_boss("soap") as boss:
        config = config_of(
            SOAP_ORDER.format(port=boss.port),
            order={
                "body": "<b:Nope xmlns:b='urn:x'/>",
                "fields": {"code": "resultCode", "message": "m", "order_no": "n"},
            },
        )
        client = BossClient(config)
        with pytest.raises(BossRejected):
            await client.call(config.order, {})
        assert client.breaker.state is BreakerState.CLOSED
        await client.aclose()


async def test_credentials_are_sent_and_a_refusal_keeps_the_work(clock):
    """Configured Basic credentials are accepted; wrong ones (401) are 'unavailable' (the
    order waits for the operator), never a final refusal of the order."""
    async with open_fake_boss("soap", username="gw", password="s3cret") as boss:
        values = {"contact_id": "c1", "msisdn": "8613800000001", "product": "P"}
        good = config_of(SOAP_ORDER.format(port=boss.port), username="gw", password="s3cret")
        assert "s3cret" not in repr(good)
        client = BossClient(good)
        assert (await client.call(good.order, values))["code"] == "0"
        await client.aclose()
        bad = config_of(SOAP_ORDER.format(port=boss.port), username="gw", password="wrong")
        client = BossClient(bad)
        with pytest.raises(BossUnavailable, match="401"):
            await client.call(bad.order, values)
        await client.aclose()
        assert boss.auth_refused == bad.attempts and len(boss.orders) == 1
