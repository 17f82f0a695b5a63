"""The call and enrichment condition types refuse bad values, naming the dotted key."""

from __future__ import annotations

import pytest

from gateway.campaigns.loader import load_campaign_file
from gateway.errors import ConfigError
from tests.fakes.campaign_fakes import campaign_toml


def problems(tmp_path, condition: str, events: str = '["call_end"]') -> list[str]:
    path = tmp_path / "bad.toml"
    body = f"[trigger]\nevents = {events}\n[[trigger.conditions]]\n{condition}\n"
    path.write_text(campaign_toml(body), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_campaign_file(path, areas={})
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (
            'type = "outcome"\nvalues = ["refused"]',
            "trigger.conditions[0].values: expected a list of answered, rejected, no_answer, busy, "
            "unallocated_number, network_failure; got ['refused']",
        ),
        ('type = "outcome"\nvalues = []', "trigger.conditions[0].values: expected a list of"),
        (
            'type = "direction"\nvalues = ["in"]',
            "trigger.conditions[0].values: expected a list of mo, mt",
        ),
        ('type = "direction"', "trigger.conditions[0].values: is required"),
        (
            'type = "visitor"\nscope = "country"',
            "trigger.conditions[0].scope: must be one of province, city; got 'country'",
        ),
        ('type = "long_distance"\nscope = "town"', "trigger.conditions[0].scope: must be one of"),
        ('type = "visitor"\nfrom = "hebei"', "trigger.conditions[0].from: unknown key"),
        ('type = "peer_region"', "trigger.conditions[0]: needs provinces or cities"),
        ('type = "home_region"\nprovinces = "hebei"', "trigger.conditions[0].provinces:"),
        ('type = "talk_time"', "trigger.conditions[0]: talk_time needs at_least or at_most"),
        (
            'type = "talk_time"\nat_least = "10m"\nat_most = "1m"',
            "trigger.conditions[0].at_most: must not be smaller than at_least",
        ),
        ('type = "capability"', "trigger.conditions[0].name: is required"),
        ('type = "service_code"', "trigger.conditions[0]: service_code needs codes"),
    ],
)
def test_bad_condition_values(tmp_path, condition, expected):
    """Each mistake is reported with the file and the dotted key of the condition."""
    found = problems(tmp_path, condition)
    assert any(expected in p and "bad.toml" in p for p in found), found


def test_new_event_kinds_are_accepted(tmp_path):
    """mt_sms, ussd and ss_change are event kinds of the language."""
    path = tmp_path / "ok.toml"
    path.write_text(campaign_toml('[trigger]\nevents = ["mt_sms", "ussd", "ss_change"]\n'))
    assert load_campaign_file(path, areas={}).trigger.kinds == {"mt_sms", "ussd", "ss_change"}
