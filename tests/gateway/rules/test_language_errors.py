"""The rule language refuses bad campaigns with errors naming the file and the dotted key."""

from __future__ import annotations

import pytest

from gateway.campaigns.loader import load_campaign_dir, load_campaign_file
from gateway.errors import ConfigError
from gateway.rules.areas import load_areas, parse_areas
from tests.fakes.campaign_fakes import AREAS, campaign_toml

AREA_MAP = parse_areas({"areas": AREAS})


def problems(tmp_path, body: str, **kw) -> list[str]:
    path = tmp_path / "bad.toml"
    path.write_text(campaign_toml(body) if "id =" not in body else body, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_campaign_file(path, areas=AREA_MAP, **kw)
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            '[trigger]\nevents = ["power_onn"]\n',
            "trigger.events[0]: unknown event kind 'power_onn' (did you mean 'power_on'?)",
        ),
        ("[trigger]\nevents = []\n", "trigger.events: needs at least one event kind"),
        (
            '[trigger]\nevents = ["power_on"]\nareas = ["airprot"]\n',
            "trigger.areas[0]: unknown area 'airprot' (did you mean 'airport'?)",
        ),
        (
            '[trigger]\nevents = ["power_on"]\ncells = ["4101/1"]\n',
            'trigger.cells[0]: expected a cell as "LAC-CI"',
        ),
        ('[trigger]\nevents = ["power_on"]\nlacs = [70000]\n', "trigger.lacs[0]: must be 1-65535"),
        ('[trigger]\nevents = ["power_on"]\nwhere = 1\n', "trigger.where: unknown key"),
        (
            '[trigger]\nevents = ["power_on"]\n[[trigger.conditions]]\ntype = "dwel"\n',
            "trigger.conditions[0].type: unknown condition type 'dwel' (did you mean 'dwell'?)",
        ),
        (
            '[trigger]\nevents = ["power_on"]\n[[trigger.conditions]]\ntype = "dwell"\nat_least = "30m"\n',
            "trigger.conditions[0].type: dwell needs a location",
        ),
        (
            '[trigger]\nevents = ["power_on"]\nareas = ["airport"]\n[[trigger.conditions]]\ntype = "dwell"\nat_least = "half an hour"\n',
            "trigger.conditions[0].at_least: expected a duration",
        ),
        (
            '[trigger]\nevents = ["power_on"]\n[[trigger.conditions]]\ntype = "time_of_day"\nbetween = "8-21"\n',
            'trigger.conditions[0].between: expected "HH:MM-HH:MM"',
        ),
        (
            '[trigger]\nevents = ["power_on"]\n[[trigger.conditions]]\ntype = "time_of_day"\nbetween = "24:30-08:00"\n',
            'trigger.conditions[0].between: expected "HH:MM-HH:MM"',
        ),
        (
            '[trigger]\nevents = ["power_on"]\n[[trigger.conditions]]\ntype = "day_of_week"\ndays = ["funday"]\n',
            "trigger.conditions[0].days: expected day names",
        ),
        (
            '[trigger]\nevents = ["power_on"]\n[[trigger.conditions]]\ntype = "profile"\nattribute = "brnad"\nequals = "x"\n',
            "trigger.conditions[0].attribute: must be one of",
        ),
        (
            '[trigger]\nevents = ["power_on"]\n[[trigger.conditions]]\ntype = "profile"\nattribute = "brand"\n',
            "trigger.conditions[0]: needs exactly one of equals, in, not_in, range",
        ),
        (
            '[trigger]\nevents = ["power_on"]\n[[trigger.conditions]]\ntype = "profile"\nattribute = "arpu_band"\nrange = [5, 1]\n',
            "trigger.conditions[0].range: expected [low, high]",
        ),
        (
            '[trigger]\nevents = ["power_on"]\n[[trigger.conditions]]\ntype = "count"\nat_least = 0\nwithin = "1h"\n',
            "trigger.conditions[0].at_least: must be at least 1",
        ),
        (
            '[trigger]\nevents = ["power_on"]\n[[trigger.conditions]]\ntype = "cause"\nvalues = [300]\n',
            "trigger.conditions[0].values: expected a list of release cause values",
        ),
        (
            '[trigger]\nevents = ["power_on"]\n[[trigger.conditions]]\ntype = "sequence"\nafter = "power_of"\n',
            "trigger.conditions[0].after: must be one of",
        ),
        (
            '[trigger]\nevents = ["power_on"]\n[[trigger.conditions]]\ntype = "peer"\nnumbers = ["1"]\nextra = 1\n',
            "trigger.conditions[0].extra: unknown key",
        ),
        (
            '[trigger]\nevents = ["power_on"]\n[[trigger.conditions]]\ntype = "in_target_list"\n',
            "in_target_list needs the campaign's target.list file",
        ),
        ("", "trigger: a realtime campaign needs a [trigger] table"),
        (
            'id = "x"\nname = "n"\nchannels = ["sms"]\nprority = 3\n[content.sms]\ntext = "t"\n[trigger]\nevents = ["power_on"]\n',
            "bad.toml: prority: unknown key (did you mean 'priority'?)",
        ),
        (
            '[schedule]\nstart = 2026-01-01T00:00:00\n[trigger]\nevents = ["power_on"]\n',
            "schedule.start: needs a UTC offset",
        ),
        (
            '[policy]\nonce_per = "often"\n[trigger]\nevents = ["power_on"]\n',
            "policy.once_per: expected a duration",
        ),
        (
            '[target]\nlist = "missing.txt"\n[trigger]\nevents = ["power_on"]\n',
            "target.list: cannot use",
        ),
    ],
)
def test_error_names_file_and_key(tmp_path, body, expected):
    """Each mistake is reported as 'file: dotted.key: reason'."""
    found = problems(tmp_path, body)
    assert any(expected in p for p in found), found
    assert all(p.startswith(str(tmp_path / "bad.toml") + ": ") for p in found)


def test_template_errors(tmp_path):
    """Templates refuse unknown fields and stray braces at load time."""
    body = 'id = "x"\nname = "n"\nchannels = ["sms"]\n[content.sms]\ntext = "Hi {nmae}"\nurl = "a { b"\n[trigger]\nevents = ["power_on"]\n'
    found = problems(tmp_path, body)
    assert any("content.sms.text: unknown field {nmae}" in p for p in found), found
    assert any("content.sms.url: unmatched '{'" in p for p in found), found


def test_channel_without_content_and_every_problem_reported(tmp_path):
    """All problems of a file come in one report (not just the first)."""
    body = 'id = "x"\nname = "n"\nchannels = ["sms", "mms"]\npriority = "high"\n[content.sms]\ntext = "t"\n[trigger]\nevents = ["nope"]\n'
    found = problems(tmp_path, body)
    assert any(
        "content.mms: channel 'mms' is listed in channels but has no content" in p for p in found
    )
    assert any("priority: must be an integer" in p for p in found)
    assert any("trigger.events[0]" in p for p in found)


def test_plugin_condition_error_is_reported_with_key(tmp_path):
    """A plugin factory's ValueError becomes a problem naming the condition's key."""

    def picky(table):
        raise ValueError("needs a threshold")

    found = problems(
        tmp_path,
        '[trigger]\nevents = ["power_on"]\n[[trigger.conditions]]\ntype = "picky"\n',
        plugin_types={"picky": picky},
    )
    assert any(
        "trigger.conditions[0]: condition type 'picky': needs a threshold" in p for p in found
    ), found


def test_bad_file_skipped_others_load_and_duplicate_ids(tmp_path):
    """In a directory, a bad file is skipped with its problems; duplicate ids are refused."""
    (tmp_path / "a.toml").write_text(campaign_toml('[trigger]\nevents = ["power_on"]\n', id="a"))
    (tmp_path / "b.toml").write_text("id = [")
    (tmp_path / "c.toml").write_text(campaign_toml('[trigger]\nevents = ["power_on"]\n', id="a"))
    defs, found = load_campaign_dir(tmp_path, areas=AREA_MAP)
    assert [d.id for d in defs] == ["a"]
    messages = [str(p) for p in found]
    assert any("b.toml" in m and "TOML syntax error" in m for m in messages)  # the one loader
    assert any("c.toml: id: campaign id 'a' is also used by" in m for m in messages)


def test_areas_file_errors(tmp_path):
    """The areas file names its own key: areas.NAME.cells[i]."""
    path = tmp_path / "areas.toml"
    path.write_text('[areas.airport]\ncells = ["x"]\n[areas.empty]\n')
    with pytest.raises(ConfigError) as info:
        load_areas(path)
    text = str(info.value)
    assert f"{path}: areas.airport.cells[0]: expected a cell" in text
    assert "areas.empty: an area needs at least one of cells or lacs" in text


def test_shipped_example_campaigns_load(tmp_path):
    """etc/campaigns and etc/areas.toml are valid (they are the documentation's examples)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    defs, found = load_campaign_dir(
        root / "etc" / "campaigns", areas=load_areas(root / "etc" / "areas.toml")
    )
    assert not found, [str(p) for p in found]
    assert {
        "airport-12593",
        "handset-mms",
        "service-call-followup",
        "power-on-care",
        "roaming-welcome",
    } <= {d.id for d in defs}
