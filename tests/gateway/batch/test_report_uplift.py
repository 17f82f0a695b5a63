"""Campaign evaluation: conversion of the contacted group against the control group."""

from __future__ import annotations

import textwrap

import pytest

from gateway.model import CampaignState
from gateway.pipeline import in_control_group
from gateway.testing import open_gateway, open_smsc_simulator, wait_until


async def test_report_conversion_against_control_and_uplift(tmp_path):
    """A batch with a 30 % control group; conversions recorded for a known share of each
    group give the expected rates and uplift in the report."""
    numbers = [f"86139{i:08d}" for i in range(400)]
    (tmp_path / "targets.txt").write_text("\n".join(numbers) + "\n")
    (tmp_path / "campaigns").mkdir()
    (tmp_path / "campaigns" / "up.toml").write_text(
        textwrap.dedent(
            f"""\
            id = "up"
            name = "Uplift"
            kind = "batch"
            channels = ["sms"]
            initial_state = "running"
            control_group_percent = 30.0
            [target]
            list = "{tmp_path / "targets.txt"}"
            [content.sms]
            text = "offer"
            """
        )
    )
    control = [m for m in numbers if in_control_group("up", m, 30.0)]
    contacted = [m for m in numbers if m not in control]
    converted = contacted[:40] + control[:3]
    (tmp_path / "converted.txt").write_text("\n".join(converted) + "\n")
    async with open_smsc_simulator(receipt_delay=None) as smsc:
        config = textwrap.dedent(
            f"""
            [campaigns]
            directory = "{tmp_path / "campaigns"}"
            [plugins.sms_smpp]
            [[plugins.sms_smpp.smsc]]
            name = "sim"
            host = "{smsc.host}"
            port = {smsc.port}
            system_id = "gateway"
            password = "secret"
            registered_delivery = 0
            """
        )
        async with open_gateway(tmp_path, config) as gw:
            await wait_until(
                lambda: gw.gateway.campaigns.get("up").campaign.state is CampaignState.FINISHED,
                within=30,
            )
            await wait_until(lambda: len(smsc.simulator.submitted) == len(contacted), within=30)
            reply = await gw.command(
                "campaign", "convert", "up", "--file", str(tmp_path / "converted.txt")
            )
            assert reply.data["recorded"] == 43
            report = (await gw.command("campaign", "report", "up")).data
    ev = report["evaluation"]
    assert ev["contacted"] == len(contacted) and ev["control"] == len(control)
    assert ev["contacted_converted"] == 40 and ev["control_converted"] == 3
    rate_c, rate_k = 40 / len(contacted), 3 / len(control)
    assert ev["contacted_conversion"] == pytest.approx(rate_c, abs=1e-6)
    assert ev["control_conversion"] == pytest.approx(rate_k, abs=1e-6)
    assert ev["uplift_points"] == pytest.approx((rate_c - rate_k) * 100, abs=1e-3)
    assert ev["uplift_relative"] == pytest.approx((rate_c - rate_k) / rate_k, abs=1e-3)
