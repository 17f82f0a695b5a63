"""A campaign file that cannot be read as UTF-8 TOML is refused alone, named in the log."""

from __future__ import annotations

import signal

from gateway.campaigns.loader import load_campaign_dir

CAMPAIGN = """id = "{id}"
name = "{name}"
channels = ["sms"]
initial_state = "running"
[content.sms]
text = "欢迎回来"
[trigger]
events = ["power_on"]
"""


def write_campaigns(directory):
    directory.mkdir()
    (directory / "a.toml").write_text(CAMPAIGN.format(id="a", name="good"), encoding="utf-8")
    (directory / "b_gbk.toml").write_bytes(CAMPAIGN.format(id="b", name="机场漫游").encode("gbk"))
    (directory / "c.toml").write_text(CAMPAIGN.format(id="c", name="good too"), encoding="utf-8")


def test_gbk_file_is_a_problem_naming_the_file(tmp_path):
    """load_campaign_dir refuses a GBK file with a problem naming it; the others load."""
    write_campaigns(tmp_path / "campaigns")
    defs, problems = load_campaign_dir(tmp_path / "campaigns", areas={})
    assert sorted(d.id for d in defs) == ["a", "c"]
    assert len(problems) == 1
    assert problems[0].file == str(tmp_path / "campaigns" / "b_gbk.toml")
    assert "UTF-8" in problems[0].message


def test_gbk_campaign_file_does_not_stop_start_or_reload(short_tmp, gateway_config, gatewayd):
    """gatewayd starts with a GBK campaign file beside good ones, logs it by name, and reloads."""
    campaigns = short_tmp / "campaigns"
    write_campaigns(campaigns)
    config = gateway_config(f'\n[campaigns]\ndirectory = "{campaigns}"\n')
    proc = gatewayd(config)
    status = proc.wait_ready()
    assert sorted(status["plugins"]["gateway.campaigns.plugin"]["status"]["running"]) == ["a", "c"]
    invalid = proc.wait_for_event("campaigns.file_invalid")
    assert str(campaigns / "b_gbk.toml") in invalid[0]["problem"]
    assert "UTF-8" in invalid[0]["problem"]

    proc.signal(signal.SIGHUP)
    proc.wait_for_event("campaigns.loaded", count=2)
    assert len(proc.events("campaigns.file_invalid")) == 2
    assert proc.request("status")["ok"]
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
