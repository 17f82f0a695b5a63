"""A plugin for the SMS kill -9 test, installed through a real ``gateway.plugins`` entry point.

At start it runs a service that decides ``SMPP_CAMPAIGN_SIZE`` contacts (one per subscriber)
through the real contact control, in batches, and enqueues the ALLOWED ones in the outbox.
Both steps are idempotent by contact_id, so after kill -9 and restart it simply does it again.
"""

from __future__ import annotations

import os
import time

import structlog
import trio

from gateway import hookimpl
from gateway.model import ContactRequest, Outcome

CAMPAIGN = "kill9"


class CampaignLoader:
    name = "smpp-campaign-loader"

    def __init__(self, gateway) -> None:
        self.gateway = gateway

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        size = int(os.environ.get("SMPP_CAMPAIGN_SIZE", "20000"))
        task_status.started()
        gw = self.gateway
        new = 0
        for start in range(0, size, 1000):
            requests = [
                ContactRequest(
                    contact_id=f"k{i:06d}",
                    msisdn=f"86138{i:08d}",
                    campaign_id=CAMPAIGN,
                    channel="sms",
                    realtime=False,
                    content={"text": f"offer k{i:06d}"},
                    created_at=time.time(),
                    trigger="batch",
                )
                for i in range(start, min(start + 1000, size))
            ]
            decisions = await gw.contact_control.decide_many(requests)
            new += await gw.outbox.enqueue_many(
                [d for d in decisions if d.outcome is Outcome.ALLOWED]
            )
        structlog.get_logger().info("kill9.campaign_loaded", size=size, new=new)
        await trio.sleep_forever()


@hookimpl
def gateway_services(gateway):
    return [CampaignLoader(gateway)]
