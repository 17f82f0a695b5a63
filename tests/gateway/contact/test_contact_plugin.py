"""The core component's hooks, called directly with a Gateway object."""

from __future__ import annotations

import attrs
import pluggy
import pytest

from gateway.app import Gateway
from gateway.contact import plugin
from gateway.contact.config import parse_contact_config
from gateway.errors import AdminCommandError
from gateway.hookspecs import PROJECT
from gateway.model import Outcome


@attrs.frozen
class _Core:
    timezone: str = "Europe/Berlin"


@attrs.frozen
class _Config:
    sections: dict
    gateway: _Core = _Core()


class _Hook:
    def __init__(self) -> None:
        self.recorded = []

    def gateway_contact_recorded(self, decision) -> None:
        self.recorded.append(decision)


class _Outbox:
    def __init__(self) -> None:
        self.cancelled = []

    async def cancel(self, contact_id: str, reason: str) -> bool:
        self.cancelled.append((contact_id, reason))
        return True


def _gateway(tmp_path, table) -> Gateway:
    return Gateway(
        config=_Config(sections={"contact": parse_contact_config(table)}),
        hook=_Hook(),
        state_dir=tmp_path,
    )


def test_section_spec_is_top_level() -> None:
    """[contact] is claimed as a top-level, optional section."""
    (spec,) = plugin.gateway_config_sections()
    assert spec.name == "contact" and spec.top_level and spec.optional
    assert spec.parse({}, "contact").backend == "sqlite"


def test_registered_as_default_plugin() -> None:
    """The module is in DEFAULT_PLUGINS and its hooks match the specs."""
    from gateway import hookspecs
    from gateway.default_plugins import DEFAULT_PLUGINS

    assert "gateway.contact.plugin" in DEFAULT_PLUGINS
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(plugin)
    pm.check_pending()


async def test_store_sets_gateway_and_commands_work(tmp_path) -> None:
    """gateway_stores opens the backend on state_dir; dnd, why, contacts and status answer."""
    gw = _gateway(tmp_path, {"caps": {"d": {"scope": "channel", "window": "day", "limit": 1}}})
    gw.outbox = _Outbox()
    (store,) = plugin.gateway_stores(gw)
    async with store as cc:
        assert gw.contact_control is cc and gw.ledger is cc.ledger
        assert cc.config.timezone == "Europe/Berlin"  # inherited from [gateway]
        assert (tmp_path / "gateway.sqlite").exists()
        commands = {c.name: c for c in plugin.gateway_admin_commands(gw)}
        reply = await commands["dnd"].handler(
            ["add", "blacklist", "+8613900000001", "--reason", "fraud"]
        )
        assert reply.data == {"added": True}
        assert (await commands["dnd"].handler(["check", "8613900000001"])).data[0][
            "reason"
        ] == "fraud"
        from gateway.model import ContactRequest

        r = ContactRequest(contact_id="c1", msisdn="8613900000001", campaign_id="k", channel="sms")
        assert (await cc.decide(r)).reason == "dnd.blacklist"
        assert gw.hook.recorded[-1].outcome is Outcome.SUPPRESSED
        why = await commands["why"].handler(["8613900000001"])
        assert "on the blacklist" in why.text and "Now on lists: blacklist" in why.text
        low = ContactRequest(
            contact_id="lo", msisdn="8613900000002", campaign_id="k", channel="sms", priority=1
        )
        hi = ContactRequest(
            contact_id="hi", msisdn="8613900000002", campaign_id="x", channel="sms", priority=5
        )
        await cc.decide(low)
        assert (await cc.decide(hi)).allowed and gw.outbox.cancelled == [("lo", "preempted")]
        contacts = await commands["contacts"].handler(["8613900000002"])
        assert [c["contact_id"] for c in contacts.data["live"]] == ["hi"]
        begun = await commands["dnd"].handler(["import-begin", "greylist"])
        upload = begun.data["upload"]
        text = "# boss export\n8613900000003,complaint\n+8613900000004\n"
        await commands["dnd"].handler(["import-lines", upload, "0", text])
        assert (await commands["dnd"].handler(["import-commit", upload])).data["entries"] == 2
        sizes = (await commands["dnd"].handler(["list-categories"])).data
        assert {d["category"]: d["entries"] for d in sizes}["greylist"] == 2
        with pytest.raises(AdminCommandError):
            await commands["dnd"].handler(["add", "blacklist", "not-a-number"])
        with pytest.raises(AdminCommandError):
            await commands["dnd"].handler(["add", "galaxy", "861"])
        status = plugin.gateway_status(gw)
        assert status["decisions"]["allowed"] == 2 and status["reservations_open"] == 1
    assert gw.contact_control is None


async def test_reload_applies_new_caps_and_keeps_storage(tmp_path) -> None:
    """gateway_reload swaps caps in place; a backend change is kept until restart."""
    from gateway.model import ContactRequest

    gw = _gateway(tmp_path, {"caps": {"d": {"scope": "channel", "window": "day", "limit": 1}}})
    (store,) = plugin.gateway_stores(gw)
    async with store as cc:

        def r(cid: str) -> ContactRequest:
            return ContactRequest(
                contact_id=cid, msisdn="8613900000005", campaign_id=cid, channel="sms"
            )

        assert (await cc.decide(r("a"))).allowed
        assert (await cc.decide(r("b"))).reason == "cap.channel.day"
        gw.config = _Config(
            sections={
                "contact": parse_contact_config(
                    {
                        "backend": "redis",
                        "caps": {"d": {"scope": "channel", "window": "day", "limit": 2}},
                    }
                )
            }
        )
        plugin.gateway_reload(gw)
        assert (await cc.decide(r("c"))).allowed
        assert cc.config.backend == "sqlite" and cc.config.caps[0].limit == 2
