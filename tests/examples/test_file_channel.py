"""The example channel of docs/channels.md, installed through its real entry point, delivers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from gateway import hookimpl
from gateway.model import ContactRequest, Outcome
from gateway.plugin_manager import entry_points
from gateway.testing import open_gateway, wait_until

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "file_channel"


@pytest.fixture
def file_channel_dist(tmp_path, monkeypatch):
    """examples/file_channel as an installed distribution: its module and a dist-info whose
    entry points are read from the example's own pyproject.toml (what pip would write)."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    site = tmp_path / "site"
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir(parents=True)
    (site / "gateway_file_channel.py").write_bytes(
        (EXAMPLE / "gateway_file_channel.py").read_bytes()
    )
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    groups = project["entry-points"]
    (info / "entry_points.txt").write_text(
        "".join(
            f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items())
            for group, eps in groups.items()
        )
    )
    monkeypatch.syspath_prepend(str(site))
    return site


def request(contact_id: str, msisdn: str, **content: str) -> ContactRequest:
    return ContactRequest(
        contact_id=contact_id,
        msisdn=msisdn,
        campaign_id="spring",
        channel="file",
        content=content,
        created_at=time.time(),
    )


async def test_example_channel_delivers_end_to_end(file_channel_dist, tmp_path):
    """Entry point -> real SQLite contact control -> outbox -> file line -> submitted, delivered."""
    assert "file_channel" in [ep.name for ep in entry_points()]
    out = tmp_path / "delivered.jsonl"
    config = f"""
        [plugins.file_channel]
        path = "{out}"

        [contact.caps.file_daily]
        scope = "channel"
        channel = "file"
        window = "day"
        limit = 1
        """
    async with open_gateway(tmp_path / "gw", config) as gw:
        assert "file" in gw.gateway.channels  # registered by the entry-point plugin
        reports = []
        gw.daemon.pm.register(Recorder(reports), name="recorder")
        control, outbox = gw.gateway.contact_control, gw.gateway.outbox
        first = await control.decide(
            request("c1", "8613800000001", text="春季优惠", href="http://x/1")
        )
        second = await control.decide(request("c2", "8613800000001", text="again"))
        assert first.outcome is Outcome.ALLOWED
        assert second.outcome is Outcome.SUPPRESSED  # the cap of one per day: never queued
        assert await outbox.enqueue(first)
        await wait_until(lambda: [r for r in reports if r == ("c1", "delivered")])
        assert [r for r in reports if r[0] == "c1"] == [("c1", "submitted"), ("c1", "delivered")]
        lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        assert lines == [
            {
                "contact_id": "c1",
                "msisdn": "8613800000001",
                "campaign_id": "spring",
                "text": "春季优惠",
                "href": "http://x/1",
                "resent": 0,
            }
        ]
        assert (await outbox.show("c1"))["state"] == "delivered"
        status = (await gw.command("status")).data["plugins"]["file_channel"]
        assert status["state"] == "running"
        assert status["status"] == {"written": 1, "rejected": 0, "retried": 0}


async def test_example_channel_rejects_content_it_does_not_carry(file_channel_dist, tmp_path):
    """A picture attachment on a text-only channel is reported rejected, never written."""
    out = tmp_path / "delivered.jsonl"
    async with open_gateway(tmp_path / "gw", f'[plugins.file_channel]\npath = "{out}"\n') as gw:
        reports = []
        gw.daemon.pm.register(Recorder(reports), name="recorder")
        decision = await gw.gateway.contact_control.decide(
            request("c9", "8613800000002", text="see", **{"attachment.pic": "offer.jpg"})
        )
        assert await gw.gateway.outbox.enqueue(decision)
        await wait_until(lambda: ("c9", "rejected") in reports)
        shown = await gw.gateway.outbox.show("c9")
        assert shown["state"] == "rejected" and "attachments" in shown["error"]
        assert not out.exists()


class Recorder:
    """Observes delivery reports as any plugin would (the gateway_delivery_report hook)."""

    def __init__(self, reports: list) -> None:
        self.reports = reports

    @hookimpl
    def gateway_delivery_report(self, delivery):
        self.reports.append((delivery.contact_id, delivery.state.value))


def test_example_plugin_tests_itself_with_gateway_testing(file_channel_dist, tmp_path):
    """The example's own test suite, copied out as another repository, passes with gateway.testing."""
    repo = tmp_path / "other-repo"
    shutil.copytree(EXAMPLE / "tests", repo / "tests")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(file_channel_dist), str(ROOT)]),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "2 passed" in result.stdout


def test_channel_guide_names_the_queue_methods_that_exist():
    """docs/channels.md documents exactly the public OutboxQueue methods, and its links resolve."""
    import re

    from gateway.outbox.outbox import OutboxQueue

    guide = (ROOT / "docs" / "channels.md").read_text()
    documented = set(re.findall(r"queue\.([a-z_]+)\(", guide))
    public = {
        n for n in vars(OutboxQueue) if not n.startswith("_") and callable(getattr(OutboxQueue, n))
    }
    assert documented == public
    for target in re.findall(r"\]\(([^)#]+)\)", guide):
        assert (ROOT / "docs" / target).resolve().exists(), target


async def test_example_channel_retries_then_gives_up_on_a_failing_write(
    file_channel_dist, tmp_path
):
    """A write that keeps failing is retried with backoff, then reported rejected once."""
    out = tmp_path / "missing-dir" / "delivered.jsonl"  # open() fails: no such directory
    config = f"""
        [plugins.file_channel]
        path = "{out}"

        [outbox]
        max_attempts = 3
        retry_backoff = "0.05s"
        retry_backoff_max = "0.1s"
        scheduler_interval = "0.05s"
        """
    async with open_gateway(tmp_path / "gw", config) as gw:
        reports = []
        gw.daemon.pm.register(Recorder(reports), name="recorder")
        decision = await gw.gateway.contact_control.decide(request("r1", "8613800000003", text="x"))
        assert await gw.gateway.outbox.enqueue(decision)
        await wait_until(lambda: ("r1", "rejected") in reports)
        shown = await gw.gateway.outbox.show("r1")
        assert shown["state"] == "rejected" and shown["attempts"] == 3
        assert "No such file or directory" in shown["error"]
        status = (await gw.command("status")).data["plugins"]["file_channel"]["status"]
        assert status == {"written": 0, "rejected": 0, "retried": 3}
        assert reports == [("r1", "rejected")]
