"""The campaigns component with the real SQLite contact control: preview (events file and the
gateway_event_readers hook), campaign report, admin lifecycle commands, SIGHUP reload through
the gateway_reload hook."""

from __future__ import annotations

import contextlib
import types

import pluggy
import pytest
import trio

from gateway import hookspecs
from gateway.app import Gateway
from gateway.campaigns.config import CampaignsConfig, ProfilesConfig
from gateway.campaigns.plugin import CampaignsPlugin
from gateway.campaigns.preview import event_line
from gateway.contact.plugin import open_contact_control
from gateway.errors import AdminCommandError
from gateway.model import EventKind as K
from gateway.model import SignalEvent
from gateway.pipeline_plugin import open_pipeline
from tests.fakes.campaign_fakes import PROFILES_CSV, FakeOutbox, campaign_toml

IMSI = [f"46000123456780{i}" for i in range(1, 5)]
T0 = 1_772_000_000.0
AREAS = '[areas.airport]\ncells = ["4101-1001"]\n'
AIRPORT = '[policy]\nonce_per = "1d"\n[trigger]\nevents = ["cell_change", "periodic_update"]\nareas = ["airport"]\n[[trigger.conditions]]\ntype = "dwell"\nat_least = "30m"\n'


class CaptureReader:
    """A stand-in for the signaling plugin: reads "pcap" files through the hook."""

    def __init__(self, events):
        self.events = events
        self.paths = []

    @hookspecs.hookimpl
    def gateway_event_readers(self):
        def read(path):
            self.paths.append(path)
            return iter(self.events)

        return {"pcap": read}


@contextlib.asynccontextmanager
async def running_gateway(tmp_path, *, extra_plugins=()):
    """The campaigns component and real contact control opened as the daemon does."""
    (tmp_path / "campaigns").mkdir(exist_ok=True)
    (tmp_path / "areas.toml").write_text(AREAS)
    (tmp_path / "profiles.csv").write_text(PROFILES_CSV)
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    campaigns_plugin = CampaignsPlugin()
    pm.register(campaigns_plugin, name="campaigns")
    for plugin in extra_plugins:
        pm.register(plugin)
    config = types.SimpleNamespace(
        path=tmp_path / "gateway.toml",
        gateway=types.SimpleNamespace(timezone="UTC", sqlite_synchronous="normal"),
        sections={
            "campaigns": CampaignsConfig(directory="campaigns", areas_file="areas.toml", tick=3600),
            "profiles": ProfilesConfig(file="profiles.csv"),
        },
    )
    gw = Gateway(config=config, hook=pm.hook, state_dir=tmp_path / "state")
    gw.outbox = FakeOutbox()
    [opener] = campaigns_plugin.gateway_stores(gw)
    async with open_contact_control(gw), opener, open_pipeline(gw):
        commands = {c.name: c.handler for c in campaigns_plugin.gateway_admin_commands(gw)}
        yield gw, pm, commands


def airport_events():
    """Subscriber 1 dwells 40 min, 2 dwells 40 min (blacklisted), 3 passes 10 min, 4 is elsewhere."""
    events = []
    for imsi in IMSI[:3]:
        events.append(SignalEvent(kind=K.CELL_CHANGE, timestamp=T0, imsi=imsi, lac=4101, ci=1001))
    for minute in (10, 20, 30, 40):
        for imsi in IMSI[:2]:
            events.append(
                SignalEvent(
                    kind=K.PERIODIC_UPDATE, timestamp=T0 + minute * 60, imsi=imsi, lac=4101, ci=1001
                )
            )
    events.append(SignalEvent(kind=K.CELL_CHANGE, timestamp=T0 + 600, imsi=IMSI[2], lac=4200, ci=1))
    events.append(SignalEvent(kind=K.CELL_CHANGE, timestamp=T0 + 600, imsi=IMSI[3], lac=4200, ci=1))
    return events


async def test_preview_events_file_reports_reach_without_sending(tmp_path):
    """Preview figures on a known recording; nothing is sent, reserved or learned."""
    async with running_gateway(tmp_path) as (gw, _, commands):
        (tmp_path / "campaigns" / "a.toml").write_text(
            campaign_toml(AIRPORT, id="airport", header=DRAFT)
        )
        await gw.campaigns.sync_dir(tmp_path / "campaigns")
        await gw.contact_control.lists.add("blacklist", "8613800000002")
        events_file = tmp_path / "events.jsonl"
        lines = [event_line(e) for e in airport_events()]
        events_file.write_text(
            "\n".join([*lines, "not json", '{"kind": "nope", "timestamp": 1}']) + "\n"
        )
        reply = await commands["preview"](["airport", "--events", str(events_file)])
        data = reply.data
        assert data["events_read"] == 13 and data["events_bad"] == 2
        assert data["events_matched"] == 4  # 1 and 2 at 30 and 40 minutes
        assert data["contact_requests"] == 2  # the 40-minute matches are repeats (once per day)
        assert data["distinct_subscribers"] == 2
        assert data["would_allow"] == 1
        assert data["suppressed_by_reason"] == {"dnd.blacklist": 1}
        assert not gw.outbox.queued
        assert gw.profiles.index.view(0).get("last_cell") is None  # the live index is untouched
        assert await gw.ledger.query(campaign_id="airport") == []  # check() records nothing


async def test_preview_capture_uses_the_event_reader_hook(tmp_path):
    """--capture FILE is decoded by the gateway_event_readers 'pcap' reader of a plugin."""
    reader = CaptureReader(airport_events())
    async with running_gateway(tmp_path, extra_plugins=[reader]) as (gw, _, commands):
        (tmp_path / "campaigns" / "a.toml").write_text(
            campaign_toml(AIRPORT, id="airport", header=DRAFT)
        )
        await gw.campaigns.sync_dir(tmp_path / "campaigns")
        reply = await commands["preview"](["airport", "--capture", "/captures/airport.pcap"])
        assert reader.paths == ["/captures/airport.pcap"]
        assert reply.data["events_read"] == 13 and reply.data["would_allow"] == 2


async def test_preview_capture_without_reader_is_a_clear_error(tmp_path):
    """Without a signaling plugin, --capture explains what is missing."""
    async with running_gateway(tmp_path) as (gw, _, commands):
        (tmp_path / "campaigns" / "a.toml").write_text(
            campaign_toml(AIRPORT, id="airport", header=DRAFT)
        )
        await gw.campaigns.sync_dir(tmp_path / "campaigns")
        with pytest.raises(AdminCommandError, match="no capture reader"):
            await commands["preview"](["airport", "--capture", "/x.pcap"])
        with pytest.raises(AdminCommandError, match="no campaign 'nope'"):
            await commands["preview"](["nope", "--events", "/x"])


DRAFT = 'id = "{id}"\nname = "airport offer"\nchannels = ["sms"]\ncontrol_group_percent = 0.0\n[content.sms]\ntext = "offer for {{brand}}"\n'


async def test_admin_lifecycle_and_campaign_report(tmp_path):
    """approve/start via commands, events through the pipeline, then the report's figures."""
    async with running_gateway(tmp_path) as (gw, _, commands):
        (tmp_path / "campaigns" / "a.toml").write_text(
            campaign_toml(AIRPORT, id="airport", header=DRAFT)
        )
        await gw.campaigns.sync_dir(tmp_path / "campaigns")
        listed = await commands["campaigns"](["list"])
        assert listed.data["campaigns"][0]["state"] == "pending_approval"
        with pytest.raises(
            AdminCommandError, match="cannot pause a campaign that is pending_approval"
        ):
            await commands["campaigns"](["pause", "airport"])
        await commands["campaigns"](["approve", "airport", "--by", "zhang.san"])
        await gw.campaigns.activate_due(T0)
        await gw.contact_control.lists.add("blacklist", "8613800000002")
        await gw.pipeline.send(airport_events())
        report = (await commands["campaign"](["report", "airport"])).data
        assert report["matched"] == 2 and report["allowed"] == 1
        assert report["suppressed_by_reason"] == {"dnd.blacklist": 1}
        assert report["control_group"] == 0 and report["outbox_states"] == {
            "queued": 1,
            "submitted": 0,
            "delivered": 0,
        }
        shown = (await commands["campaigns"](["show", "airport"])).data
        assert [a["actor"] for a in shown["audit"]][1:] == ["zhang.san", "scheduler"]


async def test_sighup_reload_through_the_gateway_reload_hook(tmp_path):
    """gateway_reload wakes the campaigns service, which loads new and changed campaign files."""
    async with running_gateway(tmp_path) as (gw, pm, _):
        running = 'id = "{id}"\nname = "n"\nchannels = ["sms"]\ninitial_state = "running"\n[content.sms]\ntext = "t"\n'
        (tmp_path / "campaigns" / "a.toml").write_text(
            campaign_toml('[trigger]\nevents = ["power_on"]\n', id="a", header=running)
        )
        [service] = pm.get_plugin("campaigns").gateway_services(gw)
        async with trio.open_nursery() as nursery:
            await nursery.start(service.run)
            assert gw.campaigns.get("a") is None
            done = service.reloaded
            pm.hook.gateway_reload(gateway=gw)
            with trio.fail_after(10):
                await done.wait()
            assert gw.campaigns.get("a").campaign.state.value == "running"
            requests = gw.pipeline.match_batch(
                [SignalEvent(kind=K.POWER_ON, timestamp=T0, imsi=IMSI[0])]
            )
            assert [r.campaign_id for r in requests] == ["a"]
            nursery.cancel_scope.cancel()


async def test_once_per_period_holds_after_state_expiry_with_real_contact_control(tmp_path):
    """After the in-memory trigger state is gone, a repeat in the same period is a duplicate."""
    from gateway.rules.conditions import MatcherState

    async with running_gateway(tmp_path) as (gw, _, _commands):
        running = 'id = "{id}"\nname = "n"\nchannels = ["sms"]\ninitial_state = "running"\n[policy]\nonce_per = "1d"\n[content.sms]\ntext = "t"\n'
        (tmp_path / "campaigns" / "a.toml").write_text(
            campaign_toml('[trigger]\nevents = ["power_on", "call_end"]\n', id="a", header=running)
        )
        await gw.campaigns.sync_dir(tmp_path / "campaigns")
        day = 86400.0
        start = T0 - T0 % day
        await gw.pipeline.send([SignalEvent(kind=K.POWER_ON, timestamp=start + 100, imsi=IMSI[0])])
        gw.pipeline.state = MatcherState()  # as if the state had expired or the gateway restarted
        await gw.pipeline.send([SignalEvent(kind=K.CALL_END, timestamp=start + 5000, imsi=IMSI[0])])
        assert len(gw.outbox.queued) == 1
        assert gw.campaigns.counts["a"]["duplicate"] == 1
        await gw.pipeline.send(
            [SignalEvent(kind=K.POWER_ON, timestamp=start + 2 * day, imsi=IMSI[0])]
        )
        assert len(gw.outbox.queued) == 2  # a day after the last trigger: a new contact


async def test_profiles_command_status_show_and_reload(tmp_path):
    """profiles status / show (by MSISDN or IMSI, learned attributes included) / reload."""
    async with running_gateway(tmp_path) as (gw, _, commands):
        status = (await commands["profiles"](["status"])).data
        assert status["subscribers"] == 4 and status["last_error"] is None
        gw.pipeline.match_batch(
            [SignalEvent(kind=K.CELL_CHANGE, timestamp=T0, imsi=IMSI[0], lac=4101, ci=7)]
        )
        shown = (await commands["profiles"](["show", "8613800000001"])).data
        assert shown["brand"] == "gotone" and shown["last_cell"] == "4101-7"
        assert (await commands["profiles"](["show", IMSI[1]])).data["msisdn"] == "8613800000002"
        with pytest.raises(AdminCommandError, match="no profile"):
            await commands["profiles"](["show", "123"])
        (tmp_path / "profiles.csv").write_text("msisdn,brand\n8613800000001,mzone\n")
        result = (await commands["profiles"](["reload"])).data
        assert result["profiles_ok"] and result["subscribers"] == 1
        assert (await commands["profiles"](["show", "8613800000001"])).data["last_cell"] == "4101-7"


async def test_preview_ignores_schedule_dates_but_keeps_send_windows(tmp_path):
    """A campaign scheduled for later previews over an older recording; send windows still count."""
    future = 'id = "{id}"\nname = "n"\nchannels = ["sms"]\n[schedule]\nstart = 2030-01-01T00:00:00+08:00\nsend_windows = ["{window}"]\n[content.sms]\ntext = "t"\n'
    body = '[trigger]\nevents = ["power_on"]\n'
    events = tmp_path / "events.jsonl"
    events.write_text(
        event_line(SignalEvent(kind=K.POWER_ON, timestamp=T0, imsi=IMSI[0])) + "\n"
    )  # 06:13 UTC
    async with running_gateway(tmp_path) as (gw, _, commands):
        for cid, window in (("inside", "06:00-07:00"), ("outside", "08:00-09:00")):
            header = future.replace("{window}", window)
            (tmp_path / "campaigns" / f"{cid}.toml").write_text(
                campaign_toml(body, id=cid, header=header)
            )
        await gw.campaigns.sync_dir(tmp_path / "campaigns")
        inside = (await commands["preview"](["inside", "--events", str(events)])).data
        outside = (await commands["preview"](["outside", "--events", str(events)])).data
    assert inside["would_allow"] == 1
    assert outside["would_allow"] == 0 and outside["not_requested"] == {"outside_schedule": 1}
