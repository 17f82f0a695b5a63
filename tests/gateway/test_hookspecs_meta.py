"""Meta-tests keeping the plugin contract honest: every hook is documented and tested."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from gateway import hookspecs

ROOT = Path(__file__).resolve().parents[2]
HOOKS = sorted(
    name
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
    if hasattr(fn, f"{hookspecs.PROJECT}_spec")
)


def test_hookspecs_found():
    """The hookspec module declares the documented groups of hooks."""
    assert {"gateway_config_sections", "gateway_services", "gateway_delivery_report"} <= set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented(hook):
    """docs/hooks.md has a section for the hook, with a code example, and the spec has a docstring."""
    text = (ROOT / "docs" / "hooks.md").read_text()
    match = re.search(rf"^### {hook}\n(.*?)(?=^### |\Z)", text, re.S | re.M)
    assert match, f"docs/hooks.md has no '### {hook}' section"
    assert "```python" in match.group(1) and "@hookimpl" in match.group(1)
    assert inspect.getdoc(getattr(hookspecs, hook))


class Recorder:
    """Implements every hook and records each call the core makes (with neutral answers)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    @hookspecs.hookimpl
    def gateway_config_sections(self):
        self.calls.append("gateway_config_sections")
        return []

    @hookspecs.hookimpl
    def gateway_stores(self, gateway):
        self.calls.append("gateway_stores")
        return []

    @hookspecs.hookimpl
    def gateway_start(self, gateway):
        self.calls.append("gateway_start")

    @hookspecs.hookimpl
    def gateway_reload(self, gateway):
        self.calls.append("gateway_reload")

    @hookspecs.hookimpl
    def gateway_services(self, gateway):
        self.calls.append("gateway_services")
        return []

    @hookspecs.hookimpl
    def gateway_signal_sources(self, gateway):
        self.calls.append("gateway_signal_sources")
        return []

    @hookspecs.hookimpl
    def gateway_matchers(self, gateway):
        self.calls.append("gateway_matchers")
        return []

    @hookspecs.hookimpl
    def gateway_channels(self, gateway):
        self.calls.append("gateway_channels")
        return []

    @hookspecs.hookimpl
    def gateway_http_routes(self, gateway):
        self.calls.append("gateway_http_routes")
        return []

    @hookspecs.hookimpl
    def gateway_admin_commands(self, gateway):
        self.calls.append("gateway_admin_commands")
        return []

    @hookspecs.hookimpl
    def gateway_condition_types(self):
        self.calls.append("gateway_condition_types")
        return {}

    @hookspecs.hookimpl
    def gateway_event_readers(self):
        self.calls.append("gateway_event_readers")
        return {}

    @hookspecs.hookimpl
    def gateway_status(self, gateway):
        self.calls.append("gateway_status")

    @hookspecs.hookimpl
    def gateway_contact_recorded(self, decision):
        self.calls.append("gateway_contact_recorded")

    @hookspecs.hookimpl
    def gateway_delivery_report(self, delivery):
        self.calls.append(f"gateway_delivery_report:{delivery.state.value}")

    @hookspecs.hookimpl
    def gateway_contacts_recorded(self, decisions):
        self.calls.append(f"gateway_contacts_recorded:{len(decisions)}")

    @hookspecs.hookimpl
    def gateway_delivery_reports(self, deliveries):
        states = ",".join(d.state.value for d in deliveries)
        self.calls.append(f"gateway_delivery_reports:{states}")

    @hookspecs.hookimpl
    def gateway_mo_message(self, message):
        self.calls.append(f"gateway_mo_message:{message.text}")

    @hookspecs.hookimpl
    def gateway_offer_accepted(self, acceptance):
        self.calls.append(f"gateway_offer_accepted:{acceptance.answer}")


def test_recorder_implements_every_hook():
    """The recorder below covers the whole contract, so the next test checks every hook."""
    implemented = {n for n in vars(Recorder) if n.startswith("gateway_")}
    assert implemented == set(HOOKS)


async def test_every_hook_is_called_by_a_running_daemon(tmp_path):
    """A daemon with the recorder, the SMS channel on the SMSC simulator and a campaign calls
    every hook of the contract on its real paths (start, status, reload, preview, a contact
    decided, submitted and delivered, an MO message)."""
    from gateway.model import ContactRequest
    from gateway.testing import open_gateway, open_smsc_simulator, wait_until

    campaigns = tmp_path / "campaigns"
    campaigns.mkdir()
    (campaigns / "welcome.toml").write_text(
        'id = "welcome"\nname = "welcome"\nchannels = ["sms"]\ninitial_state = "running"\n'
        '[content.sms]\ntext = "hi"\n[trigger]\nevents = ["power_on"]\n[reply]\n'
    )
    recorder = Recorder()
    async with open_smsc_simulator(receipt_delay=0.01) as smsc:
        config = f"""
            [campaigns]
            directory = "{campaigns}"

            [[plugins.sms_smpp.smsc]]
            name = "sim"
            host = "127.0.0.1"
            port = {smsc.port}
            system_id = "gateway"
            password = "secret"

            [http]
            listen = "127.0.0.1:0"
            [http.clients.crm]
            api_key = "boss-crm-test-key-0123456789"

            [plugins.boss_ws]
            enabled = true
            """
        async with open_gateway(tmp_path / "gw", config, plugins=(("recorder", recorder),)) as gw:
            await gw.command("status")
            assert gw.daemon.reload() is None
            reply = await gw.command(
                "preview", "welcome", "--capture", str(ROOT / "etc/demo/sample.pcap")
            )
            assert reply.data["events_read"] > 0
            decision = await gw.gateway.contact_control.decide(
                ContactRequest(
                    contact_id="m1",
                    msisdn="8613800000001",
                    campaign_id="welcome",
                    channel="sms",
                    content={"text": "hi"},
                )
            )
            assert await gw.gateway.outbox.enqueue(decision)
            await wait_until(lambda: "gateway_delivery_report:delivered" in recorder.calls)
            await smsc.simulator.send_mo("8613800000001", "10086", "Y")
            await wait_until(lambda: "gateway_mo_message:Y" in recorder.calls)
            await wait_until(lambda: "gateway_offer_accepted:Y" in recorder.calls)
    fired = {call.partition(":")[0] for call in recorder.calls}
    assert fired == set(HOOKS), f"never called: {sorted(set(HOOKS) - fired)}"
    assert recorder.calls.index("gateway_delivery_report:submitted") < recorder.calls.index(
        "gateway_delivery_report:delivered"
    )
    # the batch hooks see the same records as the singular ones
    assert "gateway_contacts_recorded:1" in recorder.calls
    assert recorder.calls.index("gateway_delivery_reports:submitted") < recorder.calls.index(
        "gateway_delivery_reports:delivered"
    )
