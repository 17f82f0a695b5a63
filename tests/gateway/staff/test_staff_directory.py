"""4A sync: the full file, SPML pushes answered in kind, disable at once, the audit trail."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from gateway.staff import spml
from gateway.staff.directory import DirectoryError, StaffDirectory
from gateway.staff.model import Permission, PermissionDenied
from gateway.staff.sync import apply_spml, read_full_file
from gateway.store import SqliteWorker, open_sqlite
from tests.gateway.staff.staff_data import ACCOUNTS, ROLES, write_full_file

NS = {"s": spml.SPML_NS, "soap": spml.SOAP_NS}


async def open_directory(tmp_path) -> StaffDirectory:
    worker = SqliteWorker(open_sqlite(tmp_path / "staff.sqlite", synchronous="normal"))
    return await StaffDirectory.open(worker, ROLES)


async def full_sync(directory, tmp_path, accounts=None):
    orgs, accs = read_full_file(write_full_file(tmp_path / "4a.json", accounts))
    return await directory.apply_full(orgs, accs, actor="4a-full-file")


async def test_full_file_then_omitted_account_is_disabled(tmp_path):
    """A full file loads orgs and accounts; the next one omitting an account disables it."""
    directory = await open_directory(tmp_path)
    result = await full_sync(directory, tmp_path)
    assert result == {"organisations": 6, "accounts": len(ACCOUNTS), "disabled_missing": 0}
    assert directory.require("city2", Permission.APPROVE_CAMPAIGN).org == "gz-mkt"
    assert directory.unit_of("gz-mkt") == "gz"
    assert directory.accounts["author"].mobile == "8613800138000"
    result = await full_sync(directory, tmp_path, [a for a in ACCOUNTS if a["id"] != "city2"])
    assert result["disabled_missing"] == 1
    with pytest.raises(PermissionDenied, match="disabled in 4A"):
        directory.require("city2", Permission.APPROVE_CAMPAIGN)
    with pytest.raises(PermissionDenied, match=r"lacks the permission campaign\.approve"):
        directory.require("author", Permission.APPROVE_CAMPAIGN)


async def test_full_file_with_a_bad_record_is_refused_whole(tmp_path):
    """One unusable record (unknown level) refuses the whole file: nothing is disabled."""
    bad = tmp_path / "bad.json"
    write_full_file(bad, orgs=[{"id": "x", "level": "galaxy"}])
    with pytest.raises(DirectoryError, match="level must be one of"):
        read_full_file(bad)
    write_full_file(bad, accounts=[])
    with pytest.raises(DirectoryError, match="refusing to disable everyone"):
        read_full_file(bad)


ADD = b"""<?xml version="1.0"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>
<addRequest xmlns="urn:oasis:names:tc:SPML:2:0" requestID="r-1">
  <psoID ID="newbie"/>
  <data>
    <attr name="fullName"><value>New Bie</value></attr>
    <attr name="orgId"><value>gz-mkt</value></attr>
    <attr name="mail"><value>Newbie@Corp.example</value></attr>
    <attr name="mobile"><value>13900139000</value></attr>
    <attr name="role"><value>approver</value></attr>
  </data>
</addRequest></soap:Body></soap:Envelope>"""

DISABLE = b"""<modifyRequest xmlns="urn:oasis:names:tc:SPML:2:0" requestID="r-2">
  <psoID ID="newbie"/>
  <modification modificationMode="replace"><data>
    <attr name="status"><value>disabled</value></attr></data></modification>
</modifyRequest>"""


async def test_spml_add_modify_delete(tmp_path):
    """SPML add, modify (disable, roles) and delete change the directory at once."""
    directory = await open_directory(tmp_path)
    await full_sync(directory, tmp_path)
    await apply_spml(directory, spml.parse_request(ADD), actor="4a-push")
    newbie = directory.require("newbie", Permission.APPROVE_CAMPAIGN)
    assert (newbie.email, newbie.mobile, newbie.org) == (
        "newbie@corp.example",
        "8613900139000",
        "gz-mkt",
    )
    with pytest.raises(spml.SpmlError) as err:
        await apply_spml(directory, spml.parse_request(ADD), actor="4a-push")
    assert err.value.code == spml.ALREADY_EXISTS
    await apply_spml(directory, spml.parse_request(DISABLE), actor="4a-push")
    with pytest.raises(PermissionDenied, match="disabled"):
        directory.require("newbie", Permission.APPROVE_CAMPAIGN)
    add_role = DISABLE.replace(b'"replace"', b'"add"').replace(
        b'name="status"><value>disabled', b'name="roles"><value>admin'
    )
    await apply_spml(directory, spml.parse_request(add_role), actor="4a-push")
    assert directory.accounts["newbie"].roles == {"approver", "admin"}
    delete = (
        b'<deleteRequest xmlns="urn:oasis:names:tc:SPML:2:0"><psoID ID="city1"/></deleteRequest>'
    )
    await apply_spml(directory, spml.parse_request(delete), actor="4a-push")
    assert not directory.accounts["city1"].enabled
    missing = delete.replace(b"city1", b"nobody")
    with pytest.raises(spml.SpmlError) as err:
        await apply_spml(directory, spml.parse_request(missing), actor="4a-push")
    assert err.value.code == spml.NO_SUCH
    # durable: a reopened directory has the same accounts and the audit trail
    reopened = await open_directory(tmp_path)
    assert not reopened.accounts["city1"].enabled and reopened.accounts["newbie"].roles
    trail = await reopened.audit_trail(subject="newbie")
    assert [t["action"] for t in trail] == [
        "staff.account_add",
        "staff.account_modify",
        "staff.account_modify",
    ]
    assert all(t["actor"] == "4a-push" and t["at"] > 0 for t in trail)


def test_spml_responses_answer_in_kind():
    """A SOAP request gets a SOAP response; failures carry status, error and requestID."""
    request = spml.parse_request(ADD)
    assert request.soap and request.operation == "add" and request.request_id == "r-1"
    ok = ET.fromstring(spml.build_response("add", request_id="r-1", pso_id="newbie", soap=True))
    response = ok.find("soap:Body/s:addResponse", NS)
    assert response is not None and response.get("status") == "success"
    assert response.find("s:pso/s:psoID", NS).get("ID") == "newbie"
    bad = ET.fromstring(
        spml.build_response("modify", request_id="r-9", error=spml.NO_SUCH, message="x")
    )
    assert bad.tag == f"{{{spml.SPML_NS}}}modifyResponse"
    assert (bad.get("status"), bad.get("error"), bad.get("requestID")) == (
        "failure",
        "noSuchIdentifier",
        "r-9",
    )
    for body, code in [
        (b"<not xml", spml.MALFORMED),
        (b'<lookupRequest xmlns="urn:oasis:names:tc:SPML:2:0"/>', spml.UNSUPPORTED),
        (
            b'<modifyRequest xmlns="urn:oasis:names:tc:SPML:2:0"><psoID ID="a"/></modifyRequest>',
            spml.MALFORMED,
        ),
    ]:
        with pytest.raises(spml.SpmlError) as err:
            spml.parse_request(body)
        assert err.value.code == code
