"""The SOAP requests we build, and the fake BOSS's answers, checked against the WSDL of the
order service by an independent implementation (xmlschema's WSDL 1.1 reader and validator)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from xml.etree import ElementTree

import h11
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.testing.boss import SOAP_ENV, FakeBoss
from plugins.boss_orders.codec import render_soap
from plugins.boss_orders.config import parse_boss_orders_config
from tests.plugins.boss_harness import SOAP_ORDER

xmlschema_wsdl = pytest.importorskip("xmlschema.extras.wsdl")

WSDL = Path(__file__).parents[1] / "data" / "boss" / "order_service.wsdl"


@pytest.fixture(scope="module")
def operations():
    """{input element name: (soapAction, input element, output element)} from the WSDL."""
    document = xmlschema_wsdl.Wsdl11Document(str(WSDL))
    (binding,) = document.bindings.values()
    found = {}
    for op in binding.operations.values():
        (inp,) = op.input.message.parts.values()
        (out,) = op.output.message.parts.values()
        found[inp.name] = (op.soap_action, inp, out)
    return found


def config():
    table = tomllib.loads(SOAP_ORDER.format(port=1))["plugins"]["boss_orders"]
    return parse_boss_orders_config(table, "plugins.boss_orders")


def body_element(envelope: bytes) -> ElementTree.Element:
    root = ElementTree.fromstring(envelope)
    assert root.tag == f"{{{SOAP_ENV}}}Envelope"
    (element,) = root.find(f"{{{SOAP_ENV}}}Body")
    return element


order_ids = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40
)


@given(order_id=order_ids, msisdn=st.from_regex(r"86138[0-9]{8}", fullmatch=True))
def test_requests_are_valid_for_the_wsdl(operations, order_id, msisdn):
    """Both configured operations render to an element the WSDL's schema accepts, sent with
    the binding's soapAction, whatever the values."""
    c = config()
    for op in (c.order, c.status):
        element = body_element(
            render_soap(op.body, {"contact_id": order_id, "msisdn": msisdn, "product": "P1"})
        )
        action, inp, _out = operations[element.tag]
        inp.validate(element)
        assert op.soap_action == action


def test_fake_boss_answers_are_valid_for_the_wsdl(operations):
    """The fake BOSS answers each operation with the WSDL's output element."""
    c = config()
    boss = FakeBoss(protocol="soap", subscribers={"8613800000001": {"status": "active"}})
    for op in (c.order, c.status):
        request_body = render_soap(
            op.body, {"contact_id": "o1", "msisdn": "8613800000001", "product": "P1"}
        )
        request = h11.Request(
            method="POST", target="/services/OrderService", headers=[("Host", "boss")]
        )
        status, _ctype, answer = boss.handle(request, request_body)
        assert status == 200
        element = body_element(answer)
        _action, _inp, out = operations[body_element(request_body).tag]
        out.validate(element)


def test_wsdl_gives_soap_actions_and_address():
    """With ``wsdl``, an operation named by ``operation`` takes its SOAPAction from the
    binding and the url defaults to the service address; an unknown operation is refused."""
    from gateway.errors import ConfigError

    table = tomllib.loads(SOAP_ORDER.format(port=1))["plugins"]["boss_orders"]
    del table["url"]
    table["wsdl"] = str(WSDL)
    for name, operation in (("order", "PlaceOrder"), ("status", "QuerySubscriber")):
        del table[name]["soap_action"]
        table[name]["operation"] = operation
    config = parse_boss_orders_config(table, "plugins.boss_orders")
    assert config.url == "http://127.0.0.1/services/OrderService"
    assert config.order.soap_action == "urn:example:boss:order#PlaceOrder"
    assert config.status.soap_action == "urn:example:boss:order#QuerySubscriber"
    table["order"]["operation"] = "CancelOrder"
    with pytest.raises(ConfigError, match="no operation 'CancelOrder' in the WSDL"):
        parse_boss_orders_config(table, "plugins.boss_orders")
