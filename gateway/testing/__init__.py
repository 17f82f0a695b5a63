"""Test helpers for gateway plugins, in this repository and in others.

A plugin in another repository installs the gateway into its test environment and writes, in
its ``conftest.py``::

    pytest_plugins = ["gateway.testing.pytest_plugin"]

which gives the fixtures ``smsc_simulator``, ``fake_clock`` and ``open_test_gateway`` (see
:mod:`gateway.testing.pytest_plugin`). The same helpers are importable directly:

- :func:`open_gateway`: a real gateway daemon in the current Trio run, with the real SQLite
  contact control and outbox in a temporary state directory, the plugins you pass registered
  beside the built-ins; yields a :class:`GatewayHandle` (``.gateway``, ``.command(...)``).
- :func:`open_smsc_simulator`: the bundled SMSC simulator (real SMPP 3.4) listening on
  loopback port 0 in a nursery; yields an :class:`SmscHandle` (``.port``, ``.texts()``).
- :func:`open_fake_mmsc`: a fake MMSC speaking MM7 over real HTTP on loopback (scripted
  answers, recorded SubmitReq, and delivery reports, read replies and MO MMS towards you).
- :func:`open_fake_boss`, :func:`open_fake_crm`: a fake BOSS (product order and subscriber
  status, SOAP 1.1 or JSON) and a fake CRM contact pool over real HTTP on loopback.
- :class:`FakeClock`: a wall clock (``time.time`` stand-in) that moves only when told, or
  follows Trio's clock so that ``autojump_clock`` drives it too.
- :func:`wait_until`: poll a condition with a deadline instead of sleeping a fixed time.
- :func:`reserved_port`: a port for a peer that is down now and comes up later (connections
  refused until then; no other test is given the port meanwhile).
- :func:`gateway.testing.resp.encode_reply`: RESP2 replies as bytes, for a fake Redis peer
  (moved out of the production codec, which only parses replies).

This package is test support, not part of the running core: it is the one place under
``gateway/`` that imports an adapter (the bundled SMSC simulator of ``adapters.smpp``).
"""

from gateway.testing.boss import FakeBoss, FakeCrm, open_fake_boss, open_fake_crm
from gateway.testing.clock import FakeClock
from gateway.testing.gateway import GatewayHandle, open_gateway, wait_until, write_gateway_config
from gateway.testing.mmsc import FakeMmsc, MmscAnswer, open_fake_mmsc
from gateway.testing.ports import reserved_port
from gateway.testing.smsc import SmscHandle, open_smsc_simulator

__all__ = [
    "FakeBoss",
    "FakeClock",
    "FakeCrm",
    "FakeMmsc",
    "GatewayHandle",
    "MmscAnswer",
    "SmscHandle",
    "open_fake_boss",
    "open_fake_crm",
    "open_fake_mmsc",
    "open_gateway",
    "open_smsc_simulator",
    "reserved_port",
    "wait_until",
    "write_gateway_config",
]
