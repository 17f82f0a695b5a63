"""Campaign store: lifecycle with audit trail, file reloads, schedule activation, counters."""

from __future__ import annotations

import time

import pytest
import trio

from gateway.campaigns import CampaignStore, LifecycleError
from gateway.model import CampaignState
from gateway.rules.areas import parse_areas
from gateway.store import SqliteWorker, open_sqlite
from tests.fakes.campaign_fakes import AREAS

BODY = """id = "{id}"
name = "{name}"
channels = ["sms"]
{extra}
[content.sms]
text = "hello"
[trigger]
events = ["power_on"]
"""


def write(directory, id="c1", name="first", extra=""):
    directory.mkdir(exist_ok=True)
    (directory / f"{id}.toml").write_text(BODY.format(id=id, name=name, extra=extra))


async def open_store(tmp_path) -> CampaignStore:
    worker = SqliteWorker(open_sqlite(tmp_path / "state.sqlite", synchronous="normal"))
    return await CampaignStore.open(worker, areas=parse_areas({"areas": AREAS}))


async def test_lifecycle_and_audit_trail(tmp_path):
    """pending_approval -> approved -> running -> paused -> running -> cancelled, each audited."""
    write(tmp_path / "c")
    store = await open_store(tmp_path)
    await store.sync_dir(tmp_path / "c")
    assert store.get("c1").campaign.state is CampaignState.PENDING_APPROVAL
    assert len(store.rule_index) == 0
    await store.transition("c1", "approve", actor="li.wei")
    assert store.get("c1").campaign.state is CampaignState.APPROVED
    await store.activate_due(time.time())  # no schedule start: runs at once
    assert store.get("c1").campaign.state is CampaignState.RUNNING
    assert len(store.rule_index) == 1
    await store.transition("c1", "pause", actor="ops")
    assert len(store.rule_index) == 0
    with pytest.raises(LifecycleError, match="cannot approve a campaign that is paused"):
        await store.transition("c1", "approve", actor="ops")
    await store.transition("c1", "resume", actor="ops")
    await store.transition("c1", "cancel", actor="boss", note="budget")
    audit = await store.audit("c1")
    assert [(a["actor"], a["action"], a["to"]) for a in audit] == [
        (f"file:{tmp_path / 'c' / 'c1.toml'}", "created", "pending_approval"),
        ("li.wei", "approve", "approved"),
        ("scheduler", "start", "running"),
        ("ops", "pause", "paused"),
        ("ops", "resume", "running"),
        ("boss", "cancel", "cancelled"),
    ]
    assert audit[-1]["note"] == "budget" and all(a["at"] > 0 for a in audit)


async def test_reload_updates_definition_keeps_state_and_survives_restart(tmp_path):
    """A changed file updates the definition but not the lifecycle state; all of it persists."""
    write(tmp_path / "c", extra='initial_state = "running"')
    store = await open_store(tmp_path)
    assert (await store.sync_dir(tmp_path / "c"))["created"] == 1
    await store.transition("c1", "pause", actor="ops")
    write(tmp_path / "c", name="renamed", extra='initial_state = "running"')
    result = await store.sync_dir(tmp_path / "c")
    assert result["updated"] == 1
    assert store.get("c1").campaign.name == "renamed"
    assert store.get("c1").campaign.state is CampaignState.PAUSED
    assert (await store.sync_dir(tmp_path / "c"))["unchanged"] == 1
    store.count("c1", "matched", 3)
    await store.flush_counts()
    again = await open_store(tmp_path)
    assert again.get("c1").campaign.name == "renamed"
    assert again.get("c1").campaign.state is CampaignState.PAUSED
    assert again.counts["c1"]["matched"] == 3


async def test_bad_file_on_reload_keeps_previous_definition(tmp_path):
    """A file broken by an edit is reported; the campaign keeps its last good definition."""
    write(tmp_path / "c", extra='initial_state = "running"')
    store = await open_store(tmp_path)
    await store.sync_dir(tmp_path / "c")
    (tmp_path / "c" / "c1.toml").write_text('id = "c1"\nname = 5\n')
    result = await store.sync_dir(tmp_path / "c")
    assert result["invalid"] == 1
    assert any("c1.toml: name: must be a string" in str(p) for p in store.problems)
    assert store.get("c1").campaign.name == "first"
    assert len(store.rule_index) == 1


async def test_schedule_starts_and_finishes(tmp_path):
    """Approved campaigns start at schedule.start; running ones finish after schedule.end."""
    extra = 'initial_state = "approved"\n[schedule]\nstart = 2030-01-01T00:00:00+08:00\nend = 2030-02-01T00:00:00+08:00'
    write(tmp_path / "c", extra=extra)
    store = await open_store(tmp_path)
    await store.sync_dir(tmp_path / "c")
    assert store.get("c1").campaign.state is CampaignState.APPROVED
    start = store.get("c1").schedule.start
    assert await store.activate_due(start + 1) == 1
    assert store.get("c1").campaign.state is CampaignState.RUNNING
    assert await store.activate_due(store.get("c1").schedule.end + 1) == 1
    assert store.get("c1").campaign.state is CampaignState.FINISHED


async def test_stored_campaign_that_no_longer_parses_keeps_its_state(tmp_path):
    """A stored campaign whose area vanished is skipped at start and keeps its state when fixed."""
    extra = '[trigger]\nevents = ["power_on"]\nareas = ["airport"]\n'
    directory = tmp_path / "c"
    directory.mkdir()
    (directory / "c1.toml").write_text(
        BODY.format(id="c1", name="n", extra="").replace(
            '[trigger]\nevents = ["power_on"]\n', extra
        )
    )
    store = await open_store(tmp_path)
    await store.sync_dir(directory)
    await store.transition("c1", "approve", actor="ops")
    worker = SqliteWorker(open_sqlite(tmp_path / "state.sqlite", synchronous="normal"))
    again = await CampaignStore.open(worker, areas={})  # the airport area is gone
    assert again.get("c1") is None
    (directory / "c1.toml").write_text(BODY.format(id="c1", name="n", extra=""))
    await again.sync_dir(directory)
    # approved (not reset to pending_approval), so the scheduler started it
    assert again.get("c1").campaign.state is CampaignState.RUNNING
    assert [a["action"] for a in await again.audit("c1")][-2:] == ["created", "start"]


def test_send_window_up_to_24_00_is_not_empty():
    """A send window "00:00-24:00" is the whole day and "20:00-24:00" the evening (24:00 = midnight)."""
    from gateway.campaigns.loader import parse_campaign

    def windows(text: str):
        table = {
            "id": "w",
            "name": "w",
            "channels": ["sms"],
            "schedule": {"send_windows": [text]},
            "content": {"sms": {"text": "t"}},
            "trigger": {"events": ["power_on"]},
        }
        return parse_campaign(table, origin="w.toml", areas={}).schedule

    whole, evening = windows("00:00-24:00"), windows("20:00-24:00")
    assert whole.in_window(0) and whole.in_window(12 * 3600) and whole.in_window(86399)
    assert evening.in_window(23 * 3600) and not evening.in_window(12 * 3600)


async def test_campaign_files_are_read_off_the_event_loop(tmp_path, monkeypatch):
    """A reload reads campaign files (and their target lists) in a worker thread, not on Trio's."""
    import threading

    from gateway.campaigns import store as store_module

    threads = []
    real = store_module.load_campaign_dir

    def spy(*args, **kwargs):
        threads.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(store_module, "load_campaign_dir", spy)
    write(tmp_path / "c")
    store = await open_store(tmp_path)
    result = await store.sync_dir(tmp_path / "c")
    assert result["created"] == 1
    assert threads and threading.get_ident() not in threads


async def test_concurrent_transitions_are_checked_one_after_the_other(tmp_path):
    """A batch's "finish" and an operator's "cancel" at the same moment: one applies, the other
    is refused against the state the first left; memory, database and audit agree (both used
    to pass the check while the other was written: "finished" after a 200 "cancelled")."""
    write(tmp_path / "c")
    store = await open_store(tmp_path)
    await store.sync_dir(tmp_path / "c")
    await store.transition("c1", "approve", actor="li.wei")
    await store.activate_due(time.time())
    assert store.get("c1").campaign.state is CampaignState.RUNNING
    outcomes: dict[str, str] = {}

    async def act(action: str, actor: str) -> None:
        try:
            outcomes[action] = (await store.transition("c1", action, actor=actor)).campaign.state
        except LifecycleError as exc:
            outcomes[action] = f"refused: {exc}"

    async with trio.open_nursery() as nursery:
        nursery.start_soon(act, "finish", "batch")
        nursery.start_soon(act, "cancel", "ops")
    applied = [a for a, o in outcomes.items() if isinstance(o, CampaignState)]
    assert len(applied) == 1, outcomes  # whichever ran first
    (other,) = {"finish", "cancel"} - set(applied)
    final = outcomes[applied[0]]
    assert outcomes[other].startswith(f"refused: cannot {other} a campaign that is {final.value}")
    audit = await store.audit("c1")
    assert [(a["action"], a["from"]) for a in audit if a["action"] in outcomes] == [
        (applied[0], "running")
    ]
    reopened = await open_store(tmp_path)
    assert reopened.get("c1").campaign.state is final is store.get("c1").campaign.state
