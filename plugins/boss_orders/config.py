"""``[plugins.boss_orders]``: the BOSS endpoint, its two operations, retries, the result SMS.

::

    [plugins.boss_orders]
    url = "http://boss.example.com:8080/services/OrderService"  # default: the WSDL's address
    protocol = "soap"                # soap (SOAP 1.1, WSDL-described) | json
    wsdl = "/etc/gateway/boss/order_service.wsdl"  # optional: SOAPActions and address from it
    username = ""                    # HTTP Basic authentication ("" = none)
    password = ""
    headers = { }                    # extra request headers (an API key the BOSS wants)
    timeout = "5s"                   # one HTTP exchange
    attempts = 3                     # tries of one call before it counts as failed
    backoff = "0.5s"                 # first pause between tries, doubled each time
    breaker_failures = 5             # consecutive failed calls that open the circuit breaker
    breaker_reset = "30s"            # open this long, then one trial call
    order_retry_max = "5m"           # a pending order waits at most this long between rounds
    concurrency = 8                  # orders in flight at once
    status_cache_ttl = "10m"         # how long a subscriber status answer is reused
    max_answer_bytes = 1048576

    [plugins.boss_orders.products]   # campaign id -> BOSS product code ordered on acceptance
    "spring-mms-offer" = "DATA1G10"

    [plugins.boss_orders.order]      # the product order operation
    operation = "PlaceOrder"         # its name in the WSDL (gives soap_action), or:
    soap_action = "urn:boss:order#PlaceOrder"
    body = '<o:PlaceOrder xmlns:o="urn:boss:order"><o:orderId>{contact_id}</o:orderId>...'
    # json = { orderId = "{contact_id}", msisdn = "{msisdn}", product = "{product}" }
    fields = { code = "resultCode", message = "resultDesc", order_no = "orderNo" }
    ok_codes = ["0"]

    [plugins.boss_orders.status]     # the subscriber status query (optional)
    soap_action = "urn:boss:order#QuerySubscriber"
    body = '<o:QuerySubscriber xmlns:o="urn:boss:order"><o:msisdn>{msisdn}</o:msisdn>...'
    fields = { code = "resultCode", status = "status", brand = "brand", arrears = "arrears" }
    ok_codes = ["0"]

    [plugins.boss_orders.result_sms] # sent back to the subscriber (service class)
    channel = "sms"
    campaign_class = "service"
    placed = "Your order of {product} is done (order {order_no})."
    failed = "Sorry, your order of {product} could not be placed: {message}"

Fields of the templates: ``contact_id``, ``msisdn``, ``campaign_id``, ``product``, ``answer``
in requests; in the SMS also every name of the order's ``fields``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from gateway.config_reader import TableReader
from gateway.rules.template import Template, TemplateError
from plugins.boss_orders.wsdl import WsdlError, WsdlService, read_wsdl

PROTOCOLS = ("soap", "json")
REQUEST_FIELDS = ("contact_id", "msisdn", "campaign_id", "product", "answer")


@attrs.frozen(kw_only=True)
class Operation:
    """One BOSS operation: how to build the request and read the answer."""

    name: str
    soap_action: str = ""
    body: Template | None = None  # SOAP: the operation element
    json: Mapping[str, Any] | None = None  # JSON: the request document (leaves are Templates)
    url: str = ""  # "" = the plugin's url
    fields: Mapping[str, str] = attrs.field(factory=dict)  # name -> element / dotted path
    ok_codes: frozenset[str] = frozenset({"0"})


@attrs.frozen(kw_only=True)
class ResultSms:
    channel: str = "sms"
    campaign_class: str = "service"
    placed: Template | None = None
    failed: Template | None = None


@attrs.frozen(kw_only=True)
class BossOrdersConfig:
    url: str = ""
    protocol: str = "soap"
    username: str = ""
    password: str = attrs.field(default="", repr=False)  # never logged
    headers: Mapping[str, str] = attrs.field(factory=dict, repr=False)  # may carry a key
    timeout: float = 5.0
    attempts: int = 3
    backoff: float = 0.5
    breaker_failures: int = 5
    breaker_reset: float = 30.0
    order_retry_max: float = 300.0
    concurrency: int = 8
    status_cache_ttl: float = 600.0
    max_answer_bytes: int = 1024 * 1024
    products: Mapping[str, str] = attrs.field(factory=dict)
    order: Operation | None = None
    status: Operation | None = None
    result_sms: ResultSms = attrs.field(factory=ResultSms)

    @property
    def enabled(self) -> bool:
        return bool(self.url) and self.order is not None


def _template(r: TableReader, name: str, known: tuple[str, ...]) -> Template | None:
    text = r.str(name, None)
    if text is None:
        return None
    try:
        return Template(text, known)
    except TemplateError as exc:
        r.problem(name, str(exc))
        return None


def _json_document(r: TableReader, name: str, node: Any, known: tuple[str, ...]) -> Any:
    if isinstance(node, str):
        try:
            return Template(node, known)
        except TemplateError as exc:
            r.problem(name, str(exc))
            return None
    if isinstance(node, Mapping):
        return {k: _json_document(r, f"{name}.{k}", v, known) for k, v in node.items()}
    if isinstance(node, list):
        return [_json_document(r, f"{name}[{i}]", v, known) for i, v in enumerate(node)]
    return node


def _operation(
    r: TableReader, name: str, protocol: str, wsdl: WsdlService | None
) -> Operation | None:
    if not r.has(name):
        return None
    t = r.table(name)
    soap_action = t.str("soap_action", None)
    operation = t.str("operation", None)
    if operation is not None:
        if wsdl is None:
            t.problem("operation", "names a WSDL operation: set [plugins.boss_orders] wsdl")
        elif operation not in wsdl.actions:
            t.problem(
                "operation",
                f"no operation {operation!r} in the WSDL (it has: {', '.join(sorted(wsdl.actions))})",
            )
        elif soap_action is None:
            soap_action = wsdl.actions[operation]
    body = _template(t, "body", REQUEST_FIELDS)
    document = t.raw("json", None)
    if document is not None and not isinstance(document, Mapping):
        t.problem("json", "expected a table (the JSON request document)")
        document = None
    json_doc = _json_document(t, "json", document, REQUEST_FIELDS) if document else None
    if protocol == "soap" and body is None:
        t.problem("body", "protocol soap needs body (the operation element of the WSDL)")
    if protocol == "json" and json_doc is None:
        t.problem("json", "protocol json needs json (the request document)")
    fields = t.raw("fields", {})
    if not isinstance(fields, Mapping) or not all(isinstance(v, str) for v in fields.values()):
        t.problem("fields", "expected a table of name = element or dotted path")
        fields = {}
    if "code" not in fields:
        t.problem("fields", 'needs "code" (where the answer says success or failure)')
    op = Operation(
        name=name,
        soap_action=soap_action or "",
        body=body,
        json=json_doc,
        url=t.str("url", ""),
        fields=dict(fields),
        ok_codes=frozenset(t.str_list("ok_codes", ["0"])),
    )
    t.check_unknown()
    return op


def parse_boss_orders_config(table: Mapping[str, Any], key: str) -> BossOrdersConfig:
    r = TableReader(table, key)
    d = BossOrdersConfig()
    protocol = r.str("protocol", d.protocol, choices=PROTOCOLS) or d.protocol
    products = r.raw("products", {})
    if not isinstance(products, Mapping) or not all(isinstance(v, str) for v in products.values()):
        r.problem("products", "expected a table of campaign id = product code")
        products = {}
    headers = r.raw("headers", {})
    if not isinstance(headers, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        r.problem("headers", "expected a table of header name = value")
        headers = {}
    wsdl = None
    wsdl_path = r.str("wsdl", "")
    if wsdl_path:
        try:
            wsdl = read_wsdl(Path(wsdl_path))
        except WsdlError as exc:
            r.problem("wsdl", str(exc))
    order = _operation(r, "order", protocol, wsdl)
    status = _operation(r, "status", protocol, wsdl)
    sms = r.table("result_sms")
    order_fields = tuple(order.fields) if order else ()
    known = (*REQUEST_FIELDS, *order_fields)
    result_sms = ResultSms(
        channel=sms.str("channel", "sms"),
        campaign_class=sms.str("campaign_class", "service"),
        placed=_template(sms, "placed", known),
        failed=_template(sms, "failed", known),
    )
    sms.check_unknown()
    config = BossOrdersConfig(
        url=r.str("url", "") or (wsdl.address if wsdl is not None else ""),
        protocol=protocol,
        username=r.str("username", ""),
        password=r.str("password", ""),
        headers=dict(headers),
        timeout=r.duration("timeout", d.timeout, min=0.01),
        attempts=r.int("attempts", d.attempts, min=1, max=20),
        backoff=r.duration("backoff", d.backoff, min=0.0),
        breaker_failures=r.int("breaker_failures", d.breaker_failures, min=1, max=1000),
        breaker_reset=r.duration("breaker_reset", d.breaker_reset, min=0.01),
        order_retry_max=r.duration("order_retry_max", d.order_retry_max, min=0.01),
        concurrency=r.int("concurrency", d.concurrency, min=1, max=256),
        status_cache_ttl=r.duration("status_cache_ttl", d.status_cache_ttl, min=0.0),
        max_answer_bytes=r.int("max_answer_bytes", d.max_answer_bytes, min=1024),
        products=dict(products),
        order=order,
        status=status,
        result_sms=result_sms,
    )
    if (config.url or order is not None) and not config.enabled:
        r.problem("url" if not config.url else "order", "url and [order] go together")
    r.finish()
    return config
