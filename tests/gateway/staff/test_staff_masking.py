"""'outbox show' and 'profiles show' mask the subscriber's number when [staff] is configured,
unless --clear by an account holding msisdn.read_clear (audited)."""

from __future__ import annotations

import time

import pytest

from gateway.errors import AdminCommandError
from gateway.model import ContactDecision, ContactRequest, Outcome
from gateway.staff.acting import masked
from gateway.testing.gateway import open_gateway
from tests.gateway.staff.staff_data import ACCOUNTS, STAFF_TOML, account, write_full_file

E164 = "8613800000001"
IMSI = "460001234567890"


def test_masked_reaches_every_msisdn_field() -> None:
    """Nested dicts and lists: every msisdn field masked, nothing else touched."""
    data = {"msisdn": E164, "rows": [{"msisdn": E164, "n": 1}], "to": "x", "k": (E164,)}
    assert masked(data) == {
        "msisdn": "861****01",
        "rows": [{"msisdn": "861****01", "n": 1}],
        "to": "x",
        "k": [E164],
    }


async def test_outbox_and_profiles_show_masked_unless_clear(tmp_path) -> None:
    """Masked by default; --clear refused without msisdn.read_clear; clear with it."""
    full = write_full_file(tmp_path / "4a.json", [*ACCOUNTS, account("keeper", "gd", "privacy")])
    (tmp_path / "profiles.csv").write_text(f"msisdn,imsi,brand\n{E164},{IMSI},gotone\n")
    staff = STAFF_TOML.format(full_file=full).replace(
        "[staff.roles]\n", '[staff.roles]\nprivacy = ["msisdn.read_clear"]\n'
    )
    extra = staff + f'[profiles]\nfile = "{tmp_path / "profiles.csv"}"\n'
    async with open_gateway(tmp_path, extra) as gw:
        request = ContactRequest(
            contact_id="k1", msisdn=E164, campaign_id="c1", channel="sms", content={"text": "t"}
        )
        await gw.gateway.outbox.enqueue(
            ContactDecision(request=request, outcome=Outcome.ALLOWED, decided_at=time.time())
        )
        for command, key in (("outbox", "k1"), ("profiles", IMSI)):
            shown = await gw.command(command, "show", key, "--as", "helper")
            assert shown.data["msisdn"] == "861****01" and E164 not in (shown.text or "")
            with pytest.raises(AdminCommandError, match=r"lacks the permission msisdn\.read_clear"):
                await gw.command(command, "show", key, "--clear", "--as", "helper")
            clear = await gw.command(command, "show", key, "--clear", "--as", "keeper")
            assert clear.data["msisdn"] == E164
        trail = await gw.gateway.staff.audit_trail(actor="keeper")
        assert {r["action"] for r in trail} == {"outbox.show", "profiles.show"}
