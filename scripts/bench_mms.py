#!/usr/bin/env python3
"""Benchmark of the MMS channel: SubmitReq/s through the channel to the fake MMSC.

Usage: bench_mms.py [--messages N] [--quick]

The fake MMSC (``python -m gateway.testing.mmsc``) runs in its own process, so the gateway and
the MMSC each have a core. Each MM is the example campaign's: a SMIL, a text and the 1.8 KB
picture of etc/campaigns/spring_offer.png (about 3 KB as sent). Variants, measured in the same
run:

- ``concurrency_1``, ``concurrency_8``: a real gateway daemon (SQLite contact control and
  outbox in a temporary directory) with the mms channel at that many SubmitReq in flight; N
  contacts decided, then enqueued at once; SubmitReq/s from the enqueue until every contact is
  reported ``submitted`` (compose, mark_sending, HTTP POST with Basic auth, SubmitRsp decoded,
  message id mapped, report recorded). Default N = 2,000 (--quick: 200).
- ``concurrency_8_sync_normal``: the same with ``[gateway] sqlite_synchronous = "normal"``
  (commits not fsynced one by one): how much of the time is the state database's fsyncs.
- ``codec``: encoding one SubmitReq with its MM (``encode_request``) and decoding it back
  (``decode_request``), per second, in this process: the codec's share of the cost.

``speedup_vs_concurrency_1`` compares concurrency 8 to 1. ``submit_req_per_cpu_s`` divides by
this process's CPU time (event loop and the state writer's thread): the gateway's cost per
SubmitReq, robust to other processes sharing the machine. The last line of stdout is one JSON
object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.mm7 import (  # noqa: E402
    Address,
    Image,
    SubmitReq,
    build_content,
    decode_request,
    encode_request,
)
from gateway import hookimpl  # noqa: E402
from gateway.daemon import Daemon  # noqa: E402
from gateway.model import ContactRequest  # noqa: E402
from gateway.testing import wait_until, write_gateway_config  # noqa: E402

PICTURE = ROOT / "etc" / "campaigns" / "spring_offer.png"


class Submitted:
    def __init__(self) -> None:
        self.count = 0

    @hookimpl
    def gateway_delivery_report(self, delivery):
        if delivery.state.value == "submitted":
            self.count += 1


@contextlib.asynccontextmanager
async def open_bench_gateway(directory: Path, extra_toml: str, synchronous: str, plugins: tuple):
    """gateway.testing.open_gateway, with ``[gateway] sqlite_synchronous`` set."""
    sockets = Path(tempfile.mkdtemp(prefix="gw-", dir="/tmp"))
    try:
        directory.mkdir(parents=True, exist_ok=True)
        path = write_gateway_config(directory, extra_toml, control_socket=sockets / "c.sock")
        text = path.read_text(encoding="utf-8")
        path.write_text(
            text.replace("[gateway]\n", f'[gateway]\nsqlite_synchronous = "{synchronous}"\n', 1),
            encoding="utf-8",
        )
        daemon = Daemon.from_file(path, extra_plugins=plugins)
        async with trio.open_nursery() as nursery:
            await nursery.start(daemon.run)
            try:
                yield daemon.gateway
            finally:
                daemon.request_stop("benchmark finished")
    finally:
        shutil.rmtree(sockets, ignore_errors=True)


async def through_channel(
    port: int, messages: int, concurrency: int, synchronous: str = "full"
) -> dict:
    directory = Path(tempfile.mkdtemp(prefix="bench-mms-"))
    try:
        shutil.copy(PICTURE, directory / PICTURE.name)
        config = f"""
[plugins.mms_mm7]
url = "http://127.0.0.1:{port}/mm7"
username = "vasp"
password = "secret"
vasp_id = "bench"
vas_id = "bench"
sender = "10658000"
concurrency = {concurrency}
batch = 64
media_dir = "{directory}"
"""
        counter = Submitted()
        async with open_bench_gateway(
            directory / "gw", config, synchronous, (("bench", counter),)
        ) as gateway:
            await wait_until(lambda: gateway.channels["mms"].queue is not None)
            now = time.time()
            requests = [
                ContactRequest(
                    contact_id=f"b{i:07d}",
                    msisdn=f"86138{i:08d}",
                    campaign_id="bench",
                    channel="mms",
                    content={
                        "subject": "Spring offer",
                        "text": "Your plan: 1 GB of spring data for 10 yuan. Reply Y to order.",
                        "attachment.picture": f"image/png {PICTURE.name}",
                    },
                    created_at=now,
                )
                for i in range(messages)
            ]
            decisions = await gateway.contact_control.decide_many(requests)
            started, cpu = time.perf_counter(), time.process_time()
            await gateway.outbox.enqueue_many(decisions)
            await wait_until(lambda: counter.count >= messages, within=600, interval=0.005)
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu
            stats = gateway.channels["mms"].statistics()
        return {
            "messages": messages,
            "concurrency": concurrency,
            "sqlite_synchronous": synchronous,
            "seconds": round(elapsed, 3),
            "submit_req_per_s": round(messages / elapsed, 1),
            "submit_req_per_cpu_s": round(messages / cpu, 1),
            "retried": stats["retried"],
        }
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def codec(rounds: int) -> dict:
    content = build_content(
        "Your plan: 1 GB of spring data for 10 yuan. Reply Y to order.",
        [Image(name="picture.png", media_type="image/png", data=PICTURE.read_bytes())],
    )
    submit = SubmitReq(
        transaction_id="t",
        vasp_id="bench",
        vas_id="bench",
        recipients=(Address(value="8613800000001"),),
        content_id=content.content_id or "",
        subject="Spring offer",
    )
    started = time.perf_counter()
    for _ in range(rounds):
        content_type, body = encode_request(submit, content)
    encode_s = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(rounds):
        decode_request(content_type, body)
    decode_s = time.perf_counter() - started
    return {
        "body_bytes": len(body),
        "encode_per_s": round(rounds / encode_s, 1),
        "decode_per_s": round(rounds / decode_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="200 messages instead of 2,000")
    args = parser.parse_args()
    messages = args.messages or (200 if args.quick else 2000)
    mmsc = subprocess.Popen(
        [sys.executable, "-m", "gateway.testing.mmsc", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = mmsc.stdout.readline() if mmsc.stdout else ""
        port = int(line.split()[1])
        result = {"size": "quick" if args.quick else "default", "messages": messages}
        for concurrency in (1, 8):
            result[f"concurrency_{concurrency}"] = trio.run(
                through_channel, port, messages, concurrency
            )
        result["concurrency_8_sync_normal"] = trio.run(through_channel, port, messages, 8, "normal")
        result["speedup_vs_concurrency_1"] = round(
            result["concurrency_8"]["submit_req_per_s"]
            / result["concurrency_1"]["submit_req_per_s"],
            2,
        )
        result["codec"] = codec(200 if args.quick else 2000)
    finally:
        mmsc.terminate()
        mmsc.wait()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
