"""Do-not-disturb entrances: one number form, no empty wipe, no nan expiry, no file reads.

Against the real SQLite contact control (opened through the contact plugin's store hook).
"""

from __future__ import annotations

import io
import math

import attrs
import pytest

from gateway import ctl_dnd
from gateway.app import Gateway
from gateway.contact import plugin
from gateway.contact.config import parse_contact_config
from gateway.contact.lists import ListFileError, parse_list_lines
from gateway.errors import AdminCommandError
from gateway.model import ContactRequest


@attrs.frozen
class _Config:
    sections: dict


class _Hook:
    def gateway_contact_recorded(self, decision) -> None:
        pass


@pytest.fixture
async def opened(tmp_path):
    gw = Gateway(
        config=_Config(sections={"contact": parse_contact_config({})}),
        hook=_Hook(),
        state_dir=tmp_path,
    )
    (store,) = plugin.gateway_stores(gw)
    async with store as cc:
        commands = {c.name: c.handler for c in plugin.gateway_admin_commands(gw)}
        yield cc, commands


async def _upload(dnd, category: str, text: str, *options: str):
    """Run the gatewayctl upload sequence against the handler; the final reply."""
    upload = (await dnd(["import-begin", category, *options])).data["upload"]
    await dnd(["import-lines", upload, "0", text])
    return await dnd(["import-commit", upload])


def _request(msisdn: str) -> ContactRequest:
    return ContactRequest(contact_id=f"c-{msisdn}", msisdn=msisdn, campaign_id="k", channel="sms")


async def test_national_import_blocks_international_contact_and_check_in_any_form(opened):
    """A national-format list entry suppresses the same subscriber written internationally."""
    cc, commands = opened
    dnd = commands["dnd"]
    reply = await _upload(dnd, "blacklist", "13500000001,fraud\n")
    assert reply.data["entries"] == 1
    decision = await cc.decide(_request("8613500000001"))
    assert decision.reason == "dnd.blacklist"
    for form in ("13500000001", "+86 135 0000 0001", "0086-135-0000-0001", "013500000001"):
        entries = (await dnd(["check", form])).data
        assert [e["category"] for e in entries] == ["blacklist"], form
    why = await commands["why"](["135 0000 0001"])
    assert why.data["msisdn"] == "8613500000001" and "on the blacklist" in why.text


async def test_add_and_remove_normalise(opened):
    """dnd add in one form and remove in another act on one entry."""
    cc, commands = opened
    dnd = commands["dnd"]
    await dnd(["add", "greylist", "135-0000-0002"])
    assert cc.lists.entries_for("8613500000002")
    assert (await dnd(["remove", "greylist", "+8613500000002"])).data == {"removed": True}
    assert not cc.lists.entries_for("8613500000002")


@pytest.mark.parametrize(
    "word", ["\uff11\uff13\uff1500000003", "\u0661\u0663\u066500000003", "1350000000x"]
)
async def test_add_refuses_non_ascii_digits(opened, word):
    """dnd add refuses fullwidth and Arabic-Indic digits (and letters), list unchanged."""
    cc, commands = opened
    with pytest.raises(AdminCommandError, match="not a usable MSISDN"):
        await commands["dnd"](["add", "blacklist", word])
    assert cc.lists.sizes() == {}


async def test_empty_import_is_refused_without_the_flag(opened):
    """An import with no entries leaves the list alone unless --allow-empty is given."""
    cc, commands = opened
    dnd = commands["dnd"]
    await _upload(dnd, "blacklist", "8613500000004\n8613500000005\n")
    for text in ("", "# only a comment\n\n"):
        with pytest.raises(AdminCommandError, match=r"no entries.*--allow-empty"):
            await _upload(dnd, "blacklist", text)
        assert cc.lists.size("blacklist") == 2
    assert (await _upload(dnd, "blacklist", "", "--allow-empty")).data["entries"] == 0
    assert cc.lists.size("blacklist") == 0


async def test_nan_expiry_is_refused_with_its_line(opened):
    """A nan (or inf, or negative) expiry is refused naming the line; the list is unchanged."""
    cc, commands = opened
    dnd = commands["dnd"]
    await _upload(dnd, "blacklist", "8613500000006\n")
    for bad in ("nan", "inf", "-5", "tomorrow"):
        text = f"# header\n8613500000007,x,2000000000\n8613500000008,complaint,{bad}\n"
        with pytest.raises(AdminCommandError, match="line 3: the expiry"):
            await _upload(dnd, "blacklist", text)
    assert list(cc.lists.sizes().items()) == [("blacklist", 1)]
    assert cc.lists.entries_for("8613500000006")


async def test_bad_number_line_is_named_and_masked(opened):
    """A line that is not a number is refused with its number and no content beyond a mask."""
    _cc, commands = opened
    with pytest.raises(AdminCommandError) as info:
        await _upload(commands["dnd"], "blacklist", "13500000009\nroot:$6$secrethash:19000\n")
    message = str(info.value)
    assert "line 2" in message and "secrethash" not in message and "root" not in message
    with pytest.raises(AdminCommandError) as info:
        await _upload(commands["dnd"], "blacklist", "12345678901234567890\n")
    assert "123****90" in str(info.value) and "12345678901234567890" not in str(info.value)


async def test_daemon_never_opens_a_client_path(opened, tmp_path):
    """dnd import with a path sent to the daemon is refused without reading the file."""
    _cc, commands = opened
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$secret:19000:0:99999:7:::\n")
    with pytest.raises(AdminCommandError) as info:
        await commands["dnd"](["import", "blacklist", str(secret)])
    assert "secret" not in str(info.value).replace(str(secret), "")
    assert "gatewayctl" in str(info.value)


async def test_chunks_are_checked_in_order_and_line_numbers_continue(opened):
    """Line numbers count across chunks; a chunk out of order drops the upload."""
    cc, commands = opened
    dnd = commands["dnd"]
    upload = (await dnd(["import-begin", "greylist"])).data["upload"]
    await dnd(["import-lines", upload, "0", "8613500000010\n8613500000011\n"])
    with pytest.raises(AdminCommandError, match="line 4"):
        await dnd(["import-lines", upload, "1", "8613500000012\nbad\n"])
    with pytest.raises(AdminCommandError, match="no list import"):
        await dnd(["import-commit", upload])
    upload = (await dnd(["import-begin", "greylist"])).data["upload"]
    with pytest.raises(AdminCommandError, match="out of order"):
        await dnd(["import-lines", upload, "1", "8613500000012\n"])
    assert cc.lists.size("greylist") == 0


def test_parse_list_lines_normalises_and_keeps_finite_expiry():
    """parse_list_lines gives E.164 numbers, reasons and finite expiries."""
    out = list(parse_list_lines(["13500000001,a,1900000000.5", "+44 7700 900123", "# c", ""]))
    assert out == [("8613500000001", "a", 1900000000.5), ("447700900123", "", None)]
    with pytest.raises(ListFileError, match="line 1"):
        list(parse_list_lines(["13500000001,a,NaN"]))
    assert not any(isinstance(e, float) and math.isnan(e) for _m, _r, e in out)


def test_gatewayctl_client_streams_lines_in_chunks(monkeypatch):
    """The client sends whole lines in several chunks and refuses bad UTF-8 by line number."""
    monkeypatch.setattr(ctl_dnd, "CHUNK_BYTES", 20)
    sent: list[list[str]] = []

    def send(cmd, argv):
        sent.append(argv)
        if argv[0] == "import-begin":
            return {"ok": True, "data": {"upload": "u1"}}
        return {"ok": True, "data": {"entries": 3}, "text": "done"}

    data = b"13500000001\n13500000002,r\n13500000003\n# end"
    reply = ctl_dnd.run_import(send, ["blacklist", "-", "--allow-empty"], stdin=io.BytesIO(data))
    assert reply["data"]["entries"] == 3
    assert sent[0] == ["import-begin", "blacklist", "--allow-empty"]
    chunks = [a[3] for a in sent if a[0] == "import-lines"]
    assert len(chunks) > 1 and "".join(chunks) == data.decode() + "\n"
    assert all(c.endswith("\n") for c in chunks)
    sent.clear()
    with pytest.raises(ctl_dnd.ImportRefused, match="line 2: not UTF-8"):
        ctl_dnd.run_import(send, ["blacklist", "-"], stdin=io.BytesIO(b"135\n\xff\xfe\n"))
    assert sent[-1] == ["import-abort", "u1"]
