"""The presence tracker: last event per subscriber, bounded, power-on listeners."""

from __future__ import annotations

import pytest

from gateway.errors import ConfigError
from gateway.model import EventKind
from gateway.presence import PresenceTracker, parse_presence_config


def test_last_event_decides_absence():
    """power_off is absent; a later event clears it; unseen past the limit is absent too."""
    t = PresenceTracker()
    assert t.absent("86138", 100.0, 50.0) is None  # not known: never "off"
    t.observe("86138", EventKind.POWER_OFF, 10.0)
    assert t.absent("86138", 11.0, None) == "power_off"
    t.observe("86138", EventKind.LOCATION_UPDATE, 20.0)
    assert t.absent("86138", 21.0, None) is None
    assert t.absent("86138", 100.0, 50.0) == "unseen"


def test_an_older_event_does_not_overwrite_a_newer_one():
    """Events arriving out of order keep the newest state."""
    t = PresenceTracker()
    t.observe("1", EventKind.POWER_ON, 20.0)
    t.observe("1", EventKind.POWER_OFF, 10.0)
    assert t.last("1") == (EventKind.POWER_ON, 20.0)


def test_bounded_least_recently_seen_forgotten():
    """Past capacity the subscriber seen longest ago is forgotten and counted."""
    t = PresenceTracker(capacity=2)
    t.observe("a", EventKind.POWER_ON, 1.0)
    t.observe("b", EventKind.POWER_ON, 2.0)
    t.observe("a", EventKind.CELL_CHANGE, 3.0)
    t.observe("c", EventKind.POWER_ON, 4.0)
    assert t.last("b") is None and t.last("a") is not None and t.evicted == 1
    assert t.statistics()["subscribers"] == 2


def test_power_on_listeners():
    """Listeners hear every power_on (and nothing else) until removed."""
    t = PresenceTracker()
    heard: list[tuple[str, float]] = []
    t.add_listener(lambda s, at: heard.append((s, at)))
    t.observe("a", EventKind.POWER_OFF, 1.0)
    t.observe("a", EventKind.POWER_ON, 2.0)
    assert heard == [("a", 2.0)]


def test_config():
    """[presence] capacity is checked; unknown keys are refused."""
    assert parse_presence_config({"capacity": 10}).capacity == 10
    with pytest.raises(ConfigError, match=r"presence\.capasity"):
        parse_presence_config({"capasity": 10})


async def test_the_daemon_pipeline_feeds_presence(tmp_path):
    """A real daemon: events sent to the pipeline reach gateway.presence, keyed by MSISDN."""
    from gateway.model import SignalEvent
    from gateway.testing import open_gateway

    async with open_gateway(tmp_path / "gw") as gw:
        assert gw.gateway.presence is not None
        await gw.gateway.pipeline.send(
            [SignalEvent(kind=EventKind.POWER_OFF, timestamp=5.0, msisdn="8613800000009")]
        )
        assert gw.gateway.presence.last("8613800000009") == (EventKind.POWER_OFF, 5.0)
        status = await gw.command("status")
        assert "gateway.presence" in str(status.data) or "subscribers" in str(status.data)
