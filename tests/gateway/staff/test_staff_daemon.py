"""The staff component in a running gateway: SPML pushes over real HTTP answered in SPML, the
full file re-read on demand, role config errors, and 'gatewayctl staff' acting as an account."""

from __future__ import annotations

import socket
import xml.etree.ElementTree as ET

import httpx
import pytest

from gateway.errors import AdminCommandError, ConfigError
from gateway.staff import spml
from gateway.staff.plugin import parse_staff_config
from gateway.testing.gateway import open_gateway
from tests.gateway.staff.staff_data import ACCOUNTS, STAFF_TOML, write_full_file

NS = {"s": spml.SPML_NS, "soap": spml.SOAP_NS}

DISABLE_CITY1 = b"""<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>
<modifyRequest xmlns="urn:oasis:names:tc:SPML:2:0" requestID="42"><psoID ID="city1"/>
<modification modificationMode="replace"><data><attr name="enabled"><value>false</value></attr>
</data></modification></modifyRequest></soap:Body></soap:Envelope>"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_spml_push_over_http_and_full_sync(tmp_path):
    """A SOAP modifyRequest disables an account at once and is answered in SOAP; a failure is
    answered with status=failure; a new full file is applied by 'staff sync'."""
    full = write_full_file(tmp_path / "4a.json")
    port = free_port()
    extra = STAFF_TOML.format(full_file=full) + (
        f'[http]\nlisten = "127.0.0.1:{port}"\n'
        '[http.clients.foura]\napi_key = "4a-platform-key-0123456789"\n'
    )
    async with open_gateway(tmp_path, extra) as gw:
        staff = gw.gateway.staff
        assert staff.accounts["city1"].enabled
        async with httpx.AsyncClient() as anonymous:  # the 4A platform is an HTTP client of ours
            refused = await anonymous.post(
                f"http://127.0.0.1:{port}/4a/spml", content=DISABLE_CITY1
            )
        assert refused.status_code == 401 and staff.accounts["city1"].enabled
        async with httpx.AsyncClient(headers={"X-Api-Key": "4a-platform-key-0123456789"}) as client:
            response = await client.post(f"http://127.0.0.1:{port}/4a/spml", content=DISABLE_CITY1)
            missing = await client.post(
                f"http://127.0.0.1:{port}/4a/spml",
                content=DISABLE_CITY1.replace(b"city1", b"ghost"),
            )
            garbage = await client.post(f"http://127.0.0.1:{port}/4a/spml", content=b"<oops")
        assert response.status_code == 200
        answer = ET.fromstring(response.content).find("soap:Body/s:modifyResponse", NS)
        assert (answer.get("status"), answer.get("requestID")) == ("success", "42")
        assert not staff.accounts["city1"].enabled
        failed = ET.fromstring(missing.content).find("soap:Body/s:modifyResponse", NS)
        assert (failed.get("status"), failed.get("error")) == ("failure", "noSuchIdentifier")
        assert garbage.status_code == 400
        assert ET.fromstring(garbage.content).get("error") == "malformedRequest"
        with pytest.raises(AdminCommandError, match=r"lacks the permission staff\.read"):
            await gw.command("staff", "list", "--as", "city2")
        listing = await gw.command("staff", "list", "--as", "admin")
        assert {a["id"]: a["enabled"] for a in listing.data["accounts"]}["city1"] is False
        write_full_file(full, [a for a in ACCOUNTS if a["id"] != "city2"])
        result = await gw.command("staff", "sync", "--as", "admin")
        assert result.data["disabled_missing"] == 1 and not staff.accounts["city2"].enabled
        trail = await staff.audit_trail(subject="city1")
        assert trail[-1]["actor"] == "4a-push" and trail[-1]["action"] == "staff.account_modify"
        denied = await staff.audit_trail(actor="city2")
        assert denied[-1]["outcome"] == "denied"


def test_role_config_names_unknown_permissions():
    """A role with an unknown permission is a config error naming the key and the choices."""
    with pytest.raises(ConfigError, match=r"staff\.roles\.x: unknown permission 'fly'"):
        parse_staff_config({"roles": {"x": ["fly"]}})
    with pytest.raises(ConfigError, match="push_path: must start with /"):
        parse_staff_config({"push_path": "4a"})
