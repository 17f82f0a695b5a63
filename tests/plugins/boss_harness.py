"""Configuration snippets shared by the BOSS/CRM plugin tests."""

from __future__ import annotations

SOAP_ORDER = """
[plugins.boss_orders]
url = "http://127.0.0.1:{port}/services/OrderService"
protocol = "soap"
timeout = "2s"
attempts = 2
backoff = "0.05s"
breaker_failures = 3
breaker_reset = "0.3s"
order_retry_max = "0.3s"

[plugins.boss_orders.products]
spring = "DATA1G10"

[plugins.boss_orders.order]
soap_action = "urn:example:boss:order#PlaceOrder"
body = '<b:PlaceOrder xmlns:b="urn:example:boss:order"><b:orderId>{{contact_id}}</b:orderId><b:msisdn>{{msisdn}}</b:msisdn><b:productCode>{{product}}</b:productCode></b:PlaceOrder>'
fields = {{ code = "resultCode", message = "resultDesc", order_no = "orderNo" }}

[plugins.boss_orders.status]
soap_action = "urn:example:boss:order#QuerySubscriber"
body = '<b:QuerySubscriber xmlns:b="urn:example:boss:order"><b:msisdn>{{msisdn}}</b:msisdn></b:QuerySubscriber>'
fields = {{ code = "resultCode", status = "status", brand = "brand", arrears = "arrears" }}

[plugins.boss_orders.result_sms]
placed = "Order {{order_no}}: {{product}} is yours."
failed = "Sorry, {{product}} could not be ordered: {{message}}"
"""

JSON_ORDER = """
[plugins.boss_orders]
url = "http://127.0.0.1:{port}/api"
protocol = "json"
timeout = "2s"
attempts = 2
backoff = "0.05s"
order_retry_max = "0.3s"

[plugins.boss_orders.products]
spring = "DATA1G10"

[plugins.boss_orders.order]
url = "http://127.0.0.1:{port}/api/order"
json = {{ orderId = "{{contact_id}}", msisdn = "{{msisdn}}", product = "{{product}}" }}
fields = {{ code = "result.resultCode", message = "result.resultDesc", order_no = "result.orderNo" }}

[plugins.boss_orders.result_sms]
placed = "Order {{order_no}}: {{product}} is yours."
failed = "Sorry, {{product}} could not be ordered: {{message}}"
"""

SMSC = """
[[plugins.sms_smpp.smsc]]
name = "sim"
host = "127.0.0.1"
port = {port}
system_id = "gateway"
password = "secret"
"""

#: one marketing SMS a day per subscriber; service messages are not under this cap
CAPS = """
[contact.caps.marketing_sms_daily]
scope = "channel"
channel = "sms"
campaign_class = "marketing"
window = "day"
limit = 1
"""
