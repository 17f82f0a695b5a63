"""Child process for the crash test: decides and commits contacts until killed.

Prints ``A <id>`` after an ALLOWED decision returned and ``C <id>`` after its commit
returned; the parent kills it with SIGKILL at a random point.
"""

import sys

import trio

from gateway.contact.config import parse_contact_config
from gateway.contact.sqlite_backend import open_sqlite_contact_control
from gateway.model import ContactRequest


async def main(path: str, reservation_timeout: str) -> None:
    config = parse_contact_config(
        {
            "reservation_timeout": reservation_timeout,
            "synchronous": "normal",
            "caps": {"d": {"scope": "channel", "window": "day", "limit": 3}},
        }
    )
    async with open_sqlite_contact_control(config, path) as cc:
        i = 0
        while True:
            batch = [
                ContactRequest(
                    contact_id=f"{sys.argv[3]}-{i}-{j}",
                    msisdn=str(8613800000000 + (i * 7 + j) % 500),
                    campaign_id=f"c{j % 5}",
                    channel=("sms", "ivr")[j % 2],
                )
                for j in range(20)
            ]
            decisions = await cc.decide_many(batch)
            allowed = [d.request.contact_id for d in decisions if d.allowed]
            if allowed:  # an empty batch printed a blank line: an "allowed" contact ""
                print("\n".join(f"A {c}" for c in allowed), flush=True)
            for n, cid in enumerate(allowed):
                if n % 3:  # leave some reservations uncommitted: they must expire
                    await cc.commit(cid)
                    print(f"C {cid}", flush=True)
            i += 1


trio.run(main, sys.argv[1], sys.argv[2])
