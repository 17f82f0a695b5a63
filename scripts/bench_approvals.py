#!/usr/bin/env python3
"""Benchmark of 4A sync and the approval workflow.

Variants, measured in one run on a temporary state directory:

- ``full_sync``: a 4A full file of N accounts (default 20,000, in 100 cities) read and
  applied (``accounts_per_s``).
- ``spml_push``: SPML modifyRequests parsed and applied one by one, each committed before the
  next, as pushes arrive (``pushes_per_s``).
- ``decisions``: approvals opened and signed through a two-level chain with two counter-signs
  each (``decisions_per_s``: each decision durable before the next).
- ``email_replies``: approval-shaped replies sent with smtplib over loopback to the aiosmtpd
  island (``serve_smtp``), each handed to Trio and answered (``replies_per_s``, one
  connection per reply, as mail servers deliver).

Prints one JSON object on the last line of stdout. ``--quick`` shrinks the sizes.
"""

from __future__ import annotations

import argparse
import json
import logging
import smtplib
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

import structlog
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.approval.book import ApprovalBook
from gateway.approval.model import Decision, Step, StepKind
from gateway.staff import spml
from gateway.staff.directory import StaffDirectory
from gateway.staff.model import Permission
from gateway.staff.sync import apply_spml, read_full_file
from gateway.store import SqliteWorker, open_sqlite
from plugins.email_approval.server import serve_smtp

ROLES = {"approver": frozenset({Permission.APPROVE_CAMPAIGN}), "marketing": frozenset()}


def write_full(path: Path, accounts: int) -> None:
    orgs = [{"id": "p", "name": "P", "level": "province"}]
    orgs += [{"id": f"c{i}", "name": f"C{i}", "level": "city", "parent": "p"} for i in range(100)]
    accs = [
        {
            "id": f"a{i}",
            "org": f"c{i % 100}" if i >= 4 else "p",
            "email": f"a{i}@corp.example",
            "mobile": f"1380013{i % 10000:04d}",
            "roles": ["approver" if i % 2 == 0 else "marketing"],
        }
        for i in range(accounts)
    ]
    path.write_text(json.dumps({"organisations": orgs, "accounts": accs}))


MODIFY = (
    '<modifyRequest xmlns="urn:oasis:names:tc:SPML:2:0" requestID="{n}"><psoID ID="a{i}"/>'
    '<modification modificationMode="replace"><data><attr name="mail"><value>x{n}@corp.example'
    "</value></attr></data></modification></modifyRequest>"
)


async def bench(args: argparse.Namespace) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench-approvals-"))
    staff = await StaffDirectory.open(SqliteWorker(open_sqlite(tmp / "staff.sqlite")), ROLES)
    write_full(tmp / "4a.json", args.accounts)
    t0 = time.perf_counter()
    orgs, accounts = await trio.to_thread.run_sync(read_full_file, tmp / "4a.json")
    await staff.apply_full(orgs, accounts, actor="bench")
    full_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    for n in range(args.pushes):
        body = MODIFY.format(n=n, i=n % args.accounts).encode()
        await apply_spml(staff, spml.parse_request(body), actor="bench")
    push_s = time.perf_counter() - t0

    book = await ApprovalBook.open(SqliteWorker(open_sqlite(tmp / "approvals.sqlite")), staff)
    # approvers of p: a0 and a2 (a1, a3 are marketing); of c0: a1000, a1002... (even ids)
    steps = (
        Step(kind=StepKind.APPROVE, org="c0", required=2),
        Step(kind=StepKind.APPROVE, org="p", required=2),
    )
    city = [a.id for a in staff.holders(Permission.APPROVE_CAMPAIGN, org="c0")][:2]
    decisions = 0
    t0 = time.perf_counter()
    for n in range(args.approvals):
        approval = await book.open_approval(
            campaign_id=f"camp{n}",
            kind="start",
            definition={"n": n},
            origin="bench",
            steps=steps,
            summary={"owner": "a1"},
        )
        for actor in (*city, "a0", "a2"):
            await book.decide(approval.id, actor, Decision.APPROVE)
            decisions += 1
    decide_s = time.perf_counter() - t0

    replies = 0

    async def receive(peer: str, mail_from: str, data: bytes) -> str:
        nonlocal replies
        replies += 1
        return "250 OK"

    message = EmailMessage()
    message["From"] = "a0@corp.example"
    message["Subject"] = "Re: approval"
    message.set_content("同意\n\n> Token: GWA1.abcdefgh.0123456789abcdef0123456789abcdef\n")
    raw = message.as_bytes()
    async with trio.open_nursery() as nursery:
        port = await nursery.start(
            lambda task_status: serve_smtp(
                receive,
                host="127.0.0.1",
                port=0,
                hard_limit=65536,
                tls=None,
                task_status=task_status,
            )
        )

        def send_all() -> None:
            for _ in range(args.replies):
                with smtplib.SMTP("127.0.0.1", port, local_hostname="bench") as smtp:
                    smtp.sendmail("a0@corp.example", ["approvals@gw.example"], raw)

        t0 = time.perf_counter()
        await trio.to_thread.run_sync(send_all)
        email_s = time.perf_counter() - t0
        nursery.cancel_scope.cancel()
    return {
        "quick": args.quick,
        "full_sync": {
            "accounts": args.accounts,
            "s": round(full_s, 3),
            "accounts_per_s": round(args.accounts / full_s),
        },
        "spml_push": {"pushes": args.pushes, "pushes_per_s": round(args.pushes / push_s)},
        "decisions": {"decisions": decisions, "decisions_per_s": round(decisions / decide_s)},
        "email_replies": {"replies": replies, "replies_per_s": round(replies / email_s, 1)},
    }


def main() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    args.accounts = 2000 if args.quick else 20000
    args.pushes = 200 if args.quick else 2000
    args.approvals = 50 if args.quick else 500
    args.replies = 50 if args.quick else 300
    print(json.dumps(trio.run(bench, args)))


if __name__ == "__main__":
    main()
