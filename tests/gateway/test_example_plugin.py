"""The README's example plugin works: loaded through a real entry point, its hooks called."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gateway.control import dispatch
from gateway.daemon import Daemon
from gateway.model import (
    ContactDecision,
    ContactRequest,
    Delivery,
    DeliveryState,
    MoMessage,
    Outcome,
)
from gateway.plugin_manager import entry_points
from gateway.testing import wait_until

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def hello_dist(tmp_path, monkeypatch):
    """docs/example_plugin.py installed as distribution hello-gateway with entry point ``hello``."""
    site = tmp_path / "site"
    info = site / "hello_gateway-1.0.dist-info"
    info.mkdir(parents=True)
    shutil.copy(ROOT / "docs" / "example_plugin.py", site / "hello_gateway.py")
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hello-gateway\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[gateway.plugins]\nhello = hello_gateway\n")
    monkeypatch.syspath_prepend(str(site))
    yield site


def test_readme_example_matches_docs_file():
    """The plugin in the README is the tested docs/example_plugin.py, verbatim."""
    example = (ROOT / "docs" / "example_plugin.py").read_text()
    body = example.split('"""', 2)[2].strip()
    assert body in (ROOT / "README.md").read_text()


async def test_example_plugin_end_to_end(hello_dist, gateway_config, nursery, captured_logs):
    """Entry point found, section parsed, service ticks, command answers, observers count, status shows it."""
    assert "hello" in [ep.name for ep in entry_points()]
    config = gateway_config('\n[plugins.hello]\ngreeting = "ni hao"\ninterval = "0.1s"\n')
    daemon = Daemon.from_file(config)
    nursery.start_soon(daemon.run)
    await daemon.control_ready.wait()
    # poll, not a fixed sleep: a loaded CI may tick late
    await wait_until(lambda: len(captured_logs.events("hello.tick")) >= 3, within=20)
    reply = await dispatch(daemon, b'{"cmd": "hello", "argv": ["ann"]}')
    assert reply == {
        "ok": True,
        "data": {"greeting": "ni hao", "name": "ann"},
        "text": "ni hao, ann",
    }
    refused = await dispatch(daemon, b'{"cmd": "hello", "argv": ["a", "b"]}')
    assert refused == {"ok": False, "error": "usage: hello [NAME]"}
    request = ContactRequest(
        contact_id="c1", msisdn="8613812345678", campaign_id="k", channel="sms"
    )
    hook = daemon.gateway.hook
    hook.gateway_contact_recorded(
        decision=ContactDecision(request=request, outcome=Outcome.ALLOWED, decided_at=0.0)
    )
    hook.gateway_delivery_report(
        delivery=Delivery(contact_id="c1", channel="sms", state=DeliveryState.DELIVERED, at=1.0)
    )
    hook.gateway_mo_message(
        message=MoMessage(
            msisdn="8613812345678", destination="10086", text="Y", channel="sms", received_at=2.0
        )
    )
    status = (await dispatch(daemon, b'{"cmd": "status"}'))["data"]["plugins"]["hello"]
    assert status["state"] == "running"
    assert status["status"]["ticks"] >= 3
    assert (
        status["status"]["decisions"],
        status["status"]["deliveries"],
        status["status"]["replies"],
    ) == (1, 1, 1)
    ticks = captured_logs.events("hello.tick")
    assert ticks[0]["greeting"] == "ni hao" and ticks[0]["plugin"] == "hello"
    daemon.request_stop()
