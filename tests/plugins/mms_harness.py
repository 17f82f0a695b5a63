"""Test harness for the MMS channel: a real gateway daemon (real SQLite contact control and
outbox, the core's HTTP host on a loopback port) with the mms_mm7 plugin pointed at the fake
MMSC of gateway.testing, and a recorder of delivery reports and MO messages."""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs

from gateway import hookimpl
from gateway.http import HttpHost
from gateway.model import ContactRequest, Outcome
from gateway.testing import open_gateway, wait_until
from gateway.testing.mmsc import FakeMmsc

INBOUND = ("mmsc", "inbound-secret")


@attrs.define
class Recorder:
    """Observes delivery reports and MO messages as any plugin would."""

    deliveries: list = attrs.field(factory=list)
    mo: list = attrs.field(factory=list)

    @hookimpl
    def gateway_delivery_report(self, delivery):
        self.deliveries.append(delivery)

    @hookimpl
    def gateway_mo_message(self, message):
        self.mo.append(message)

    def states(self, contact_id: str) -> list[str]:
        return [d.state.value for d in self.deliveries if d.contact_id == contact_id]


@attrs.frozen
class MmsGateway:
    handle: Any
    recorder: Recorder
    mmsc: FakeMmsc
    inbound_url: str

    @property
    def gateway(self) -> Any:
        return self.handle.gateway

    @property
    def channel(self) -> Any:
        return self.gateway.channels["mms"]

    async def send(self, contact_id: str, msisdn: str = "8613800000001", **content: str) -> None:
        """Decide with the real contact control and queue the allowed contact."""
        request = ContactRequest(
            contact_id=contact_id,
            msisdn=msisdn,
            campaign_id="spring",
            channel="mms",
            content=content or {"text": "hello"},
            created_at=time.time(),
        )
        decision = await self.gateway.contact_control.decide(request)
        assert decision.outcome is Outcome.ALLOWED, decision
        assert await self.gateway.outbox.enqueue(decision)

    async def wait_state(self, contact_id: str, state: str) -> None:
        await wait_until(lambda: state in self.recorder.states(contact_id), within=20)

    async def outbox_state(self, contact_id: str) -> str:
        return (await self.gateway.outbox.show(contact_id))["state"]


def mms_toml(mmsc: FakeMmsc, media: Path, extra: str = "") -> str:
    return f"""
[http]
listen = "127.0.0.1:0"

[outbox]
retry_backoff = "0.05s"
retry_backoff_max = "0.1s"
scheduler_interval = "0.05s"
max_attempts = 3

[plugins.mms_mm7]
url = "{mmsc.url}"
username = "{mmsc.username}"
password = "{mmsc.password}"
vasp_id = "vasp-gw"
vas_id = "offers"
service_code = "MKT001"
sender = "10658000"
timeout = "0.5s"
expiry = "1d"
media_dir = "{media}"
inbound_username = "{INBOUND[0]}"
inbound_password = "{INBOUND[1]}"
{extra}
"""


@contextlib.asynccontextmanager
async def open_mms_gateway(
    directory: Path, mmsc: FakeMmsc, extra: str = "", *, toml: str | None = None
) -> AsyncIterator[MmsGateway]:
    media = directory / "media"
    media.mkdir(parents=True, exist_ok=True)
    async with open_gateway(directory / "gw", toml or mms_toml(mmsc, media, extra)) as handle:
        recorder = Recorder()
        handle.daemon.pm.register(recorder, name="recorder")
        host = next(t.obj for t in handle.daemon.supervisor.tasks if isinstance(t.obj, HttpHost))
        await wait_until(lambda: host.port)
        await wait_until(lambda: handle.gateway.channels["mms"].queue is not None)
        yield MmsGateway(
            handle=handle,
            recorder=recorder,
            mmsc=mmsc,
            inbound_url=f"http://127.0.0.1:{host.port}/mm7",
        )


def png(width: int, height: int, *, noise: bool = False) -> bytes:
    """A PNG picture made with Pillow (noise: hard to compress, so large in bytes)."""
    from PIL import Image

    if noise:
        import random

        rng = random.Random(width * height)
        picture = Image.frombytes(
            "RGB", (width, height), bytes(rng.getrandbits(8) for _ in range(width * height * 3))
        )
    else:
        picture = Image.new("RGB", (width, height), (200, 30, 30))
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()
