"""Batch callout by file, for an external call centre.

The targets of a telemarketing campaign are queued for the ``callcentre`` channel like any
contact: contact control decided each one (lists, caps, hours) and the outbox holds it. No
process delivers that queue; ``gatewayctl ivr-export BATCH`` takes what is queued, writes

- ``BATCH.csv``: ``contact_id,msisdn,campaign_id,prompt`` (UTF-8, a header line), and
- ``BATCH.chk``: the check file the call centre verifies before loading it, one header line
  then ``name,records,bytes,md5`` of the data file,

and reports each contact ``submitted`` (handed over: it counts as a contact). The call centre
returns ``BATCH.result.csv`` with ``contact_id,msisdn,result,key,duration`` (result:
``answered``, ``busy``, ``no_answer``, ``rejected``, ``unreachable``, ``failed`` or
``not_called``), optionally with its own ``BATCH.result.chk``. ``gatewayctl ivr-import BATCH``
checks it and reports each contact's final state: answered -> delivered (a key in
``accept_keys`` is an acceptance, as in an IVR call), the failures -> undeliverable, and
contacts marked ``not_called`` or missing from the result file are given back: their
reservation is refunded and their outbox entry ends ``expired``, so a later campaign may
contact them again.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import time
from pathlib import Path
from typing import Any

import trio

from gateway.errors import AdminCommandError
from gateway.model import Acceptance, Delivery, DeliveryState
from gateway.numbers import NumberError, normalise

EXPORT_COLUMNS = ("contact_id", "msisdn", "campaign_id", "prompt")
RESULT_COLUMNS = ("contact_id", "msisdn", "result", "key", "duration")
CHECK_HEADER = "name,records,bytes,md5"
FAILURES = {"busy", "no_answer", "rejected", "unreachable", "failed"}


def check_line(path: Path, data: bytes, records: int) -> str:
    return f"{path.name},{records},{len(data)},{hashlib.md5(data).hexdigest()}"


def _write_synced(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def verify_check_file(data_path: Path, check_path: Path, data: bytes, records: int) -> None:
    """Raise AdminCommandError when the check file does not describe ``data``."""
    lines = check_path.read_text(encoding="utf-8").splitlines()
    if len(lines) != 2 or lines[0].strip() != CHECK_HEADER:
        raise AdminCommandError(f"{check_path.name}: expected '{CHECK_HEADER}' and one line")
    expected = check_line(data_path, data, records)
    if lines[1].strip() != expected:
        raise AdminCommandError(
            f"{check_path.name} does not match {data_path.name}: says {lines[1].strip()!r},"
            f" the file is {expected!r}"
        )


async def export_batch(gateway: Any, config: Any, batch: str, *, limit: int = 100_000) -> dict:
    """Write ``BATCH.csv`` and ``BATCH.chk`` from the queued callcentre contacts."""
    directory: Path = config.callout_dir
    if directory is None:
        raise AdminCommandError("set [plugins.ivr] callout_dir to export call-centre files")
    if not batch.replace("-", "").replace("_", "").isalnum():
        raise AdminCommandError("a batch name is letters, digits, '-' and '_'")
    limiter = trio.CapacityLimiter(1)
    data_path, check_path = directory / f"{batch}.csv", directory / f"{batch}.chk"
    if data_path.exists():
        raise AdminCommandError(f"{data_path} exists: batch {batch} was exported already")
    async with gateway.outbox.open_queue(config.callout_channel) as queue:
        messages: list[Any] = []
        while len(messages) < limit:
            got = await queue.take(min(1000, limit - len(messages)), max_wait=0.2)
            if not got:
                break
            messages.extend(got)
        sending = await queue.mark_sending([m.contact_id for m in messages])
        messages = [m for m in messages if m.contact_id in sending]
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\r\n")
        writer.writerow(EXPORT_COLUMNS)
        for m in messages:
            writer.writerow(
                (m.contact_id, m.msisdn, m.campaign_id, m.request.content.get("text", ""))
            )
        data = text.getvalue().encode("utf-8")
        check = f"{CHECK_HEADER}\r\n{check_line(data_path, data, len(messages))}\r\n"
        await trio.to_thread.run_sync(_write_synced, data_path, data, limiter=limiter)
        await trio.to_thread.run_sync(
            _write_synced, check_path, check.encode("utf-8"), limiter=limiter
        )
        for m in messages:
            await gateway.report_delivery(
                Delivery(
                    contact_id=m.contact_id,
                    channel=config.callout_channel,
                    state=DeliveryState.SUBMITTED,
                    at=time.time(),
                    message_id=f"{batch}:{m.contact_id}",
                    msisdn=m.msisdn,
                )
            )
    return {"batch": batch, "file": str(data_path), "records": len(messages), "bytes": len(data)}


def _read_csv(data: bytes, columns: tuple[str, ...], name: str) -> list[dict[str, str]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AdminCommandError(f"{name}: not UTF-8 (byte {exc.start})") from exc
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in columns if c not in (reader.fieldnames or [])]
    if missing:
        raise AdminCommandError(f"{name}: missing columns {', '.join(missing)}")
    return list(reader)


async def import_results(gateway: Any, config: Any, batch: str) -> dict:
    """Read ``BATCH.result.csv`` back into the outbox and ledger; give back the uncalled."""
    directory: Path = config.callout_dir
    if directory is None:
        raise AdminCommandError("set [plugins.ivr] callout_dir to import call-centre files")
    limiter = trio.CapacityLimiter(1)
    export_path = directory / f"{batch}.csv"
    result_path = directory / f"{batch}.result.csv"
    for path in (export_path, result_path):
        if not path.exists():
            raise AdminCommandError(f"{path} not found")
    exported_data = await trio.to_thread.run_sync(export_path.read_bytes, limiter=limiter)
    result_data = await trio.to_thread.run_sync(result_path.read_bytes, limiter=limiter)
    exported = _read_csv(exported_data, EXPORT_COLUMNS, export_path.name)
    results = _read_csv(result_data, RESULT_COLUMNS, result_path.name)
    check_path = directory / f"{batch}.result.chk"
    if check_path.exists():
        verify_check_file(result_path, check_path, result_data, len(results))
    by_id = {row["contact_id"]: row for row in exported}
    channel = config.callout_channel
    summary: dict[str, Any] = {"delivered": 0, "undeliverable": 0, "accepted": 0, "ignored": []}
    returned: list[str] = []
    seen: set[str] = set()
    now = time.time()
    for line, row in enumerate(results, start=2):
        cid = row["contact_id"].strip()
        target = by_id.get(cid)
        if target is None or cid in seen:
            summary["ignored"].append(f"line {line}: contact {cid!r} not in batch or repeated")
            continue
        try:
            msisdn = normalise(row["msisdn"])
        except NumberError as exc:
            summary["ignored"].append(f"line {line}: {exc}")
            continue
        if msisdn != target["msisdn"]:
            summary["ignored"].append(f"line {line}: number differs from the exported one")
            continue
        seen.add(cid)
        result = row["result"].strip()
        message_id = f"{batch}:{cid}"
        if result == "answered":
            await _report(gateway, channel, cid, msisdn, DeliveryState.DELIVERED, message_id)
            summary["delivered"] += 1
            key = (row.get("key") or "").strip()
            if key and key in config.accept_keys:
                summary["accepted"] += 1
                await gateway.report_acceptance(
                    Acceptance(
                        contact_id=cid,
                        campaign_id=target["campaign_id"],
                        msisdn=msisdn,
                        channel=channel,
                        answer=key,
                        at=now,
                    )
                )
        elif result in FAILURES:
            await _report(
                gateway, channel, cid, msisdn, DeliveryState.UNDELIVERABLE, message_id,
                f"callcentre.{result}",
            )  # fmt: skip
            summary["undeliverable"] += 1
        elif result == "not_called":
            seen.discard(cid)  # given back below, with those missing from the file
        else:
            summary["ignored"].append(f"line {line}: unknown result {result!r}")
            seen.discard(cid)
    for cid, target in by_id.items():
        if cid in seen:
            continue
        returned.append(cid)
        if gateway.contact_control is not None:
            await gateway.contact_control.release(cid, "refund.callcentre_not_called")
        await _report(
            gateway, channel, cid, target["msisdn"], DeliveryState.EXPIRED, f"{batch}:{cid}",
            "callcentre.not_called",
        )  # fmt: skip
    summary["returned"] = returned
    return summary


async def _report(
    gateway: Any,
    channel: str,
    contact_id: str,
    msisdn: str,
    state: DeliveryState,
    message_id: str,
    error: str | None = None,
) -> None:
    await gateway.report_delivery(
        Delivery(
            contact_id=contact_id,
            channel=channel,
            state=state,
            at=time.time(),
            message_id=message_id,
            error=error,
            msisdn=msisdn,
        )
    )
