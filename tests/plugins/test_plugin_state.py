"""Plugins keep their state in the objects they register, not in module-level registries:
two gateways in one process each see only their own sources and channels."""

from __future__ import annotations

import gc
import shutil
import weakref
from pathlib import Path

import trio

from gateway.control import status_data
from gateway.testing import open_gateway, open_smsc_simulator, wait_until

DEMO = Path(__file__).resolve().parents[2] / "etc/demo/sample.pcap"


def pcap_table(spool: Path) -> str:
    return f"""
        [plugins.signaling_pcap]
        directory = "{spool}"
        settle = 0
        poll_interval = "20ms"
        home_plmns = ["46000"]
        """


def smsc_table(port: int) -> str:
    return f"""
        [[plugins.sms_smpp.smsc]]
        name = "smsc-{port}"
        host = "127.0.0.1"
        port = {port}
        system_id = "gateway"
        password = "secret"
        reconnect_min = "0.05s"
        reconnect_max = "0.2s"
        """


async def test_two_gateways_in_one_process_see_only_their_own_sources(tmp_path):
    """Each daemon's status shows the counters of its own pcap source and SMSC binds."""
    spool_a, spool_b = tmp_path / "spool-a", tmp_path / "spool-b"
    spool_a.mkdir()
    spool_b.mkdir()
    shutil.copy(DEMO, spool_a / "sample.pcap")
    (spool_b / "junk.pcap").write_bytes(b"not a capture" * 8)
    async with (
        open_smsc_simulator() as smsc_a,
        open_smsc_simulator() as smsc_b,
        open_gateway(tmp_path / "a", pcap_table(spool_a) + smsc_table(smsc_a.port)) as a,
        open_gateway(tmp_path / "b", pcap_table(spool_b) + smsc_table(smsc_b.port)) as b,
    ):

        def status(gw):
            return status_data(gw.daemon)["plugins"]  # what gatewayctl status shows

        await wait_until(lambda: (spool_a / "done" / "sample.pcap").exists())
        await wait_until(lambda: (spool_b / "done" / "junk.pcap").exists())
        await wait_until(
            lambda: all(status(g)["sms_smpp"]["status"]["binds_bound"] == 1 for g in (a, b))
        )
        pcap_a = status(a)["signaling_pcap"]["status"]
        pcap_b = status(b)["signaling_pcap"]["status"]
        assert pcap_a["frames"] > 1000 and pcap_a["errors"] == {}
        assert pcap_b["frames"] == 0 and pcap_b["errors"] == {"pcap.bad_magic": 1}
        smpp_a = (await a.command("smpp")).data["smsc"]
        smpp_b = (await b.command("smpp")).data["smsc"]
        assert list(smpp_a) == [f"smsc-{smsc_a.port}"]
        assert list(smpp_b) == [f"smsc-{smsc_b.port}"]


async def test_a_stopped_gateway_and_its_plugin_objects_are_freed(tmp_path):
    """Nothing at module level keeps a stopped gateway's sources or channels alive."""
    spool = tmp_path / "spool"
    spool.mkdir()
    async with open_smsc_simulator() as smsc:
        async with open_gateway(tmp_path / "gw", pcap_table(spool) + smsc_table(smsc.port)) as gw:
            refs = [weakref.ref(obj) for _, obj in gw.daemon.registered.sources]
            refs += [weakref.ref(obj) for _, obj in gw.daemon.registered.channels]
            gateway = gw.gateway
            del gw
        # gateway.campaigns.plugin keeps each Gateway alive (its WeakKeyDictionary's values
        # point back at their key): drop the core's own reference to the channels, so that
        # only a plugin's registry could still hold them.
        gateway.channels.clear()
        del gateway
        await trio.lowlevel.checkpoint()
        assert len(refs) == 2
        gc.collect()
        assert [r() for r in refs] == [None, None]
