"""A plugin for the double-kill test, installed through a real ``gateway.plugins`` entry point.

At start it asks the real contact control about the contacts named in ``CAPPED_LOADER_IDS``
(comma-separated contact ids, one subscriber, in order) and queues the allowed ones: the
pipeline's call, ``decide_and_queue``. It logs each outcome as ``capped_loader.decided``.
"""

from __future__ import annotations

import os

import structlog
import trio

from gateway import hookimpl
from gateway.model import ContactRequest

MSISDN = "8613800000001"


class CappedLoader:
    name = "capped-loader"

    def __init__(self, gateway) -> None:
        self.gateway = gateway

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        ids = [i for i in os.environ.get("CAPPED_LOADER_IDS", "").split(",") if i]
        gw = self.gateway
        for contact_id in ids:
            request = ContactRequest(
                contact_id=contact_id,
                msisdn=MSISDN,
                campaign_id="capped",
                channel="sms",
                content={"text": f"offer {contact_id}"},
            )
            queue = getattr(gw.contact_control, "decide_and_queue", None)
            if queue is not None:
                (decision,) = await queue([request], gw.outbox)
            else:  # a core without the one-transaction call (to run this test on old code)
                decision = await gw.contact_control.decide(request)
                if decision.outcome == "allowed":
                    await gw.outbox.enqueue(decision)
            structlog.get_logger().info(
                "capped_loader.decided", contact_id=contact_id, outcome=str(decision.outcome)
            )
        await trio.sleep_forever()


@hookimpl
def gateway_services(gateway):
    return [CappedLoader(gateway)]
