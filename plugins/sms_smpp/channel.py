"""The SMS channel: outbox queue -> routing -> SMSC accounts and their binds; receipts and MO back.

Flow of one message: the feeder takes due messages from the ``sms`` outbox queue (leased),
routes each by destination prefix to an SMSC account, encodes it into segments and hands it to
the account. A bind marks the message ``sending`` in the outbox (durable) right before writing
its submit_sm; the answer goes to the reporter, which stores the SMSC message ids (for receipts,
across binds and restarts) and reports ``submitted`` (or a failure) through
``gateway.report_delivery``. A receipt is matched through the stored ids and reported when
every part of the message has a final state; with ``receipt_timeout``, a message whose receipt
does not come is asked about with query_sm (``query_sm = true``) and otherwise reported
``unknown`` (a receipt arriving later still settles it). Other deliver_sm are MO messages,
reassembled when long, logged (numbers masked) and offered to plugins with
``gateway.report_mo`` (hook ``gateway_mo_message``).
"""

from __future__ import annotations

import collections
import math
import random
import ssl
import time
from typing import Any

import attrs
import structlog
import trio

from adapters.smpp import protocol as p
from adapters.smpp.messages import Reassembler, encode_binary, encode_text
from adapters.smpp.simulator import SimulatorConfig, SmscSimulator
from adapters.smpp.transport import BindSettings, BindState, SmscAccount, SubmitJob, run_bind
from gateway.config_reader import parse_duration
from gateway.model import Delivery, DeliveryState
from plugins.sms_smpp.config import SmscConfig, SmsConfig, relative_validity
from plugins.sms_smpp.inbound import InboundMixin


class NoRoute(Exception):
    pass


def _ssl_context(c: SmscConfig) -> ssl.SSLContext | None:
    if not c.tls:
        return None
    ctx = ssl.create_default_context(cafile=c.tls_ca_file or None)
    if not c.tls_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def bind_settings(c: SmscConfig, host: str | None = None, port: int | None = None) -> BindSettings:
    return BindSettings(
        host=host or c.host,
        port=port if port is not None else c.port,
        system_id=c.system_id,
        password=c.password,
        system_type=c.system_type,
        window=c.window,
        request_timeout=c.request_timeout,
        enquire_link_interval=c.enquire_link_interval,
        reconnect_min=c.reconnect_min,
        reconnect_max=c.reconnect_max,
        bind_rate=c.bind_rate,
        throttle_delay=c.throttle_delay,
        queue_full_retries=c.queue_full_retries,
        queue_full_delay=c.queue_full_delay,
        ssl_context=_ssl_context(c),
    )


@attrs.define(eq=False)
class SmsChannel(InboundMixin):
    """The ``sms`` channel registered through ``gateway_channels``."""

    gateway: Any
    config: SmsConfig
    name: str = "sms"
    accounts: dict[str, SmscAccount] = attrs.field(factory=dict)
    simulator: SmscSimulator | None = None
    stats: dict[str, int] = attrs.field(
        factory=lambda: dict.fromkeys(
            (
                "submitted",
                "failed",
                "retried",
                "receipts",
                "receipts_unmatched",
                "mo",
                "mo_parts",
                "mo_unreadable",
                "no_route",
                "bad_content",
                "garbage",
                "receipts_early",
                "resent_segments",
                "receipt_timeouts",
                "receipts_queried",
                "receipts_after_unknown",
            ),
            0,
        )
    )
    _queue: Any = None
    _results_send: Any = None
    _reference: int = attrs.field(factory=lambda: random.randrange(65536))
    _mo: Reassembler = attrs.field(init=False)
    _draining: bool = False
    _bind_account: dict[str, str] = attrs.field(factory=dict)
    # messages whose receipt is awaited (receipt_timeout > 0): contact_id -> _Awaited, and a
    # heap of (deadline, contact_id); in memory, bounded (see _watch)
    _awaited: dict = attrs.field(factory=dict)
    _deadlines: list = attrs.field(factory=list)
    _unknown: collections.OrderedDict = attrs.field(factory=collections.OrderedDict)
    _watch_wakeup: Any = None
    _reports_pending: int = 0  # results handed over and not yet recorded (see drain)

    def __attrs_post_init__(self) -> None:
        self.name = self.config.channel
        self._mo = Reassembler(timeout=self.config.mo_reassembly_timeout)

    # -- lifecycle -----------------------------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        log = structlog.get_logger().bind(plugin="sms_smpp", channel=self.name)
        outbox = self.gateway.outbox
        if outbox is None:
            raise RuntimeError("the sms channel needs the outbox (gateway.outbox is not set)")
        self.accounts, self._bind_account, self._draining = {}, {}, False  # (re)start afresh
        self._awaited, self._deadlines = {}, []
        self._watch_wakeup = trio.Event()
        async with outbox.open_queue(self.name) as queue, trio.open_nursery() as nursery:
            self._queue = queue
            await queue.recover()
            host = port = None
            if self.config.embedded_simulator:
                self.simulator = SmscSimulator(
                    SimulatorConfig(
                        credentials={c.system_id: c.password for c in self.config.smsc},
                        receipt_delay=self.config.simulator_receipt_delay,
                    )
                )
                port = await nursery.start(
                    self.simulator.serve, "127.0.0.1", self.config.simulator_port
                )
                host = "127.0.0.1"
                log.warning(
                    "smpp.embedded_simulator",
                    port=port,
                    hint="demo mode: messages go to a simulator",
                )
            send, receive = trio.open_memory_channel(math.inf)
            self._results_send = send
            nursery.start_soon(self._reporter, receive)
            for c in self.config.smsc:
                account = SmscAccount(
                    c.name,
                    bind_settings(c, host, port),
                    self,
                    rate=c.rate,
                    max_pending=max(2 * c.window * c.binds, int(2 * c.rate), 64),
                    config=c,
                )
                self.accounts[c.name] = account
                modes = (
                    ["transmitter", "receiver"]
                    if c.bind_mode == "transmitter_receiver"
                    else [c.bind_mode]
                )
                for i in range(c.binds):
                    for mode in modes:
                        state = BindState(f"{c.name}/{i}{'' if len(modes) == 1 else mode[0]}", mode)
                        account.binds.append(state)
                        self._bind_account[state.name] = self._receipts_account(c)
                        await nursery.start(run_bind, account, state)
            nursery.start_soon(self._watch_receipts)
            nursery.start_soon(self._feeder, queue)
            log.info("sms.channel_started", smscs=[c.name for c in self.config.smsc])
            task_status.started()

    def _receipts_account(self, c: SmscConfig) -> str:
        """The account whose messages a bind's receipts are about: a receiver entry's
        transmitter (same host and system_id), else the entry itself."""
        if c.bind_mode != "receiver":
            return c.name
        for other in self.config.smsc:
            if other.bind_mode != "receiver" and (other.host, other.system_id) == (
                c.host,
                c.system_id,
            ):
                return other.name
        return c.name

    async def drain(self) -> None:
        """Stop taking new messages; wait until every message handed to a bind is answered
        and its result recorded (the daemon bounds this with its drain deadline)."""
        self._draining = True

        def busy() -> bool:
            for a in self.accounts.values():
                up = any(b.state == "bound" for b in a.binds)
                if (a.queued and up) or any(b.outstanding or b.unsettled for b in a.binds):
                    return True
            return (
                self._reports_pending > 0
            )  # what an unreachable SMSC holds stays leased and goes back on exit

        while busy():  # noqa: ASYNC110 - polls bind counters
            await trio.sleep(0.05)

    # -- outbound --------------------------------------------------------------------------------

    def route(self, msisdn: str) -> SmscAccount:
        best, best_len, default = None, -1, None
        for account in self.accounts.values():
            c = account.config
            if c.bind_mode == "receiver":
                continue
            if not c.routes:
                default = account
            for prefix in c.routes:
                if msisdn.startswith(prefix) and len(prefix) > best_len:
                    best, best_len = account, len(prefix)
        if best is None:
            best = default
        if best is None:
            raise NoRoute(msisdn)
        return best

    def build_job(self, message: Any, account: SmscAccount) -> SubmitJob:
        c: SmscConfig = account.config
        content = message.request.content
        self._reference = (self._reference + 1) & 0xFFFF
        if "payload" in content:
            segments = encode_binary(
                bytes(content["payload"]),
                bytes(content.get("udh", b"")),
                reference=self._reference,
                sixteen_bit=c.long_message == "udh16",
            )
        else:
            text = content.get("text")
            if not isinstance(text, str) or not text:
                raise ValueError("content has neither text nor payload")
            segments = encode_text(
                text,
                coding=c.data_coding,
                long_mode=c.long_message,
                reference=self._reference,
                gsm_packed=c.gsm_packed,
            )
        # A campaign may override the SMSC's message settings through these content keys.
        validity = parse_duration(content.get("validity", c.validity))
        priority_flag = int(content.get("priority_flag", c.priority))
        if not 0 <= priority_flag <= 3:
            raise ValueError(f"priority_flag must be 0-3, got {priority_flag}")
        common = dict(
            service_type=str(content.get("service_type", c.service_type)),
            source_addr=str(content.get("source_addr", c.source_addr)),
            source_addr_ton=c.source_addr_ton,
            source_addr_npi=c.source_addr_npi,
            destination_addr=message.msisdn,
            dest_addr_ton=c.dest_addr_ton,
            dest_addr_npi=c.dest_addr_npi,
            registered_delivery=int(content.get("registered_delivery", c.registered_delivery)),
            priority_flag=priority_flag,
            validity_period=relative_validity(validity) if validity else "",
        )
        fields = [{**common, **seg.pdu_fields()} for seg in segments]
        job = SubmitJob(key=message.contact_id, segments=fields, context=message)
        job.context_account = account.name
        return job

    async def _feeder(self, queue: Any) -> None:
        log = structlog.get_logger().bind(plugin="sms_smpp", channel=self.name)
        while not self._draining:
            room = sum(max(a.max_pending - a.queued, 0) for a in self.accounts.values())
            if room <= 0:
                await trio.sleep(0.005)
                continue
            limit = min(room, self.config.prefetch or 512)
            messages = await queue.take(limit, max_wait=1.0)
            for message in messages:
                try:
                    account = self.route(message.msisdn)
                    job = self.build_job(message, account)
                except NoRoute:
                    self.stats["no_route"] += 1
                    log.warning(
                        "sms.no_route", msisdn=message.msisdn, contact_id=message.contact_id
                    )
                    await self._reject(message, "no route to an SMSC")
                    continue
                except Exception as exc:  # whatever the content does, it fails alone
                    self.stats["bad_content"] += 1
                    log.warning("sms.bad_content", contact_id=message.contact_id, error=str(exc))
                    await self._reject(message, f"bad content: {exc}")
                    continue
                await account.submit(job)

    async def _reject(self, message: Any, error: str) -> None:
        """Report a message the feeder cannot send; a failing report (contact control down)
        is logged, and must not stop the feeder (a restart would strand what is in flight)."""
        try:
            await self._final(message, DeliveryState.REJECTED, error)
        except Exception as exc:
            structlog.get_logger().error(
                "sms.report_failed", contact_id=message.contact_id, error=repr(exc)
            )

    async def _final(
        self, message: Any, state: DeliveryState, error: str | None, message_id: str | None = None
    ) -> None:
        await self.gateway.report_delivery(
            Delivery(
                contact_id=message.contact_id,
                channel=self.name,
                state=state,
                at=time.time(),
                message_id=message_id,
                error=error,
                msisdn=message.msisdn,
            )
        )

    # -- SmppHandler (called by the binds) ---------------------------------------------------------------

    async def before_send(self, jobs: list[SubmitJob]) -> None:
        marked = await self._queue.mark_sending([j.key for j in jobs])
        for job in jobs:
            if job.key in marked:
                # once: a stale job of a message whose lease expired and that was taken
                # again can meet its successor in the same batch
                marked.discard(job.key)
            else:
                job.done = True  # cancelled (pre-empted), lease lost, or a twin: do not send

    def on_result(self, job: SubmitJob) -> None:
        self._reports_pending += 1
        # The window slot is freed only once this answer is recorded (the reporter's batch is
        # durable): what may have reached the SMSC unrecorded, and so be resent after a crash
        # with resend_unknown, stays within the window. Freeing it on arrival let a kill -9
        # resend more than the window (the randomized crash test found 14 for a window of 10).
        self._results_send.send_nowait(job)

    async def _reporter(self, receive: Any) -> None:
        """Record results as they come: the answers available together are staged together
        (one group commit, one task for all); failures one task each (retries, finals)."""
        async with receive, trio.open_nursery() as nursery:
            async for job in receive:
                # let the bind finish the answers of the bytes it is reading: they then share
                # this batch (one task, one staging) instead of one each
                await trio.lowlevel.checkpoint()
                accepted, failed = [], []
                while True:
                    (accepted if job.status is None else failed).append(job)
                    try:
                        job = receive.receive_nowait()
                    except trio.WouldBlock:
                        break
                if accepted:
                    nursery.start_soon(self._report_accepted, accepted)
                for job in failed:
                    nursery.start_soon(self._report_job, job)

    async def _report_accepted(self, jobs: list[SubmitJob]) -> None:
        """Record submit answers: per message its entry, ids, early receipts and commit."""
        items = []
        try:
            for job in jobs:
                self.stats["resent_segments"] += job.resent
                self.stats["submitted"] += 1
                ids = [m or "" for m in job.message_ids]
                # message ids are unique per SMSC only: the map keys them by account
                account = job.context_account
                keys = [f"{account}/{self._submit_id(account, m)}" for m in ids]
                # watched before the ids are mapped: a receipt matched from then on ends the watch
                self._await_receipt(job, ids)
                message = job.context
                delivery = Delivery(
                    contact_id=message.contact_id,
                    channel=self.name,
                    state=DeliveryState.SUBMITTED,
                    at=time.time(),
                    message_id=ids[0],
                    msisdn=message.msisdn,
                )
                items.append((delivery, keys))
            try:
                settled, errors = await self._queue.report_submitted_many(items)
            except BaseException:
                for job in jobs:
                    self._awaited.pop(job.key, None)
                raise
            for delivery in settled:  # receipts that came first settled it
                self._awaited.pop(delivery.contact_id, None)
            for (delivery, _keys), error in zip(items, errors, strict=True):
                if error is not None:
                    self._awaited.pop(delivery.contact_id, None)
                    structlog.get_logger().error(
                        "sms.report_failed", contact_id=delivery.contact_id, error=repr(error)
                    )
        except Exception as exc:  # one bad batch must not stop the reporter
            structlog.get_logger().error("sms.report_failed", jobs=len(jobs), error=repr(exc))
        finally:
            for job in jobs:
                job.settle()
            self._reports_pending -= len(jobs)

    async def _report_job(self, job: SubmitJob) -> None:
        """Record a failed submit: a retry, or its final state."""
        message = job.context
        self.stats["resent_segments"] += job.resent
        try:
            error = p.status_name(job.status)
            if job.status == p.ESME_RMSGQFUL:
                # the destination's queue stayed full through queue_full_retries: final
                error += f" after {job.queue_full - 1} retries"
                final = DeliveryState.REJECTED
            elif job.status in p.TRANSIENT_STATUSES:
                state = await self._queue.retry(job.key, error)
                if state == "retry":
                    self.stats["retried"] += 1
                    return
                final = DeliveryState.EXPIRED if state == "expired" else DeliveryState.REJECTED
            else:
                final = DeliveryState.REJECTED
            self.stats["failed"] += 1
            await self._final(message, final, error)
        except Exception as exc:  # one bad report must not stop the others
            structlog.get_logger().error("sms.report_failed", contact_id=job.key, error=repr(exc))
        finally:
            job.settle()
            self._reports_pending -= 1

    def on_event(self, event: str, **fields: Any) -> None:
        log = structlog.get_logger().bind(plugin="sms_smpp", channel=self.name)
        if event == "smpp.garbage":
            self.stats["garbage"] += 1
        metrics = getattr(self.gateway, "metrics", None)
        if metrics is not None:
            metrics.counter("smpp_events", event=event, smsc=str(fields.get("smsc", ""))).inc()
        if event in ("smpp.bind_ok", "smpp.unbound", "smpp.requeued"):
            log.info(event, **fields)
        elif event in ("smpp.submit_retry",):
            log.debug(event, **fields)
        else:
            log.warning(event, **fields)

    # -- admin --------------------------------------------------------------------------------

    def reload(self, new: SmsConfig) -> list[str]:
        """Apply a reloaded config without dropping binds; returns the keys that need a restart.

        Rates, routes and message settings (source address, data coding, validity...) apply
        at once; connection settings (host, credentials, binds, window, TLS, timers) and added
        or removed SMSCs are logged as needing a restart.
        """
        log = structlog.get_logger().bind(plugin="sms_smpp", channel=self.name)
        restart: list[str] = []
        live = (
            "name",
            "rate",
            "routes",
            "source_addr",
            "source_addr_ton",
            "source_addr_npi",
            "dest_addr_ton",
            "dest_addr_npi",
            "registered_delivery",
            "validity",
            "priority",
            "service_type",
            "data_coding",
            "gsm_packed",
            "long_message",
            "receipt_id",
            "receipt_timeout",
            "query_sm",
        )
        new_by_name = {c.name: c for c in new.smsc}
        for name in set(new_by_name) ^ set(self.accounts):
            restart.append(f"smsc[{name}]")
        for name, account in self.accounts.items():
            c = new_by_name.get(name)
            if c is None:
                continue
            old = account.config
            restart += [
                f"smsc[{name}].{k}"
                for k in attrs.fields_dict(SmscConfig)
                if k not in live and getattr(old, k) != getattr(c, k)
            ]
            if c.rate != old.rate:
                account.set_rate(c.rate)
            account.config = c
        if new.channel != self.config.channel:
            restart.append("channel")
        self.config = attrs.evolve(new, channel=self.config.channel, smsc=self.config.smsc)
        if restart:
            log.warning("sms.reload_needs_restart", keys=sorted(restart))
        log.info("sms.reloaded", smscs=sorted(self.accounts))
        return restart

    def snapshot(self) -> dict[str, Any]:
        smscs = {}
        for name, a in self.accounts.items():
            c = a.config
            smscs[name] = {
                "host": f"{a.settings.host}:{a.settings.port}",
                "rate": c.rate,
                "bind_rate": c.bind_rate,
                "queued_segments": a.queued,
                "throttled_answers": a.throttled_answers,
                "queue_full_answers": a.queue_full_answers,
                # below `rate` while the SMSC's throttling holds the account back (AIMD)
                "rate_now": round(a.effective_rate, 2),
                "paused_s": max(0.0, round(a.paused_until - trio.current_time(), 3)),
                "binds": [
                    {
                        "name": b.name,
                        "mode": b.mode,
                        "state": b.state,
                        "window_used": b.outstanding,
                        # answered, the answer not yet durable: still holding its window slot
                        "window_settling": b.unsettled,
                        "window": c.window,
                        "submitted": b.submitted,
                        "reconnects": b.reconnects,
                        "last_error": b.last_error,
                    }
                    for b in a.binds
                ],
            }
        outbox = self.gateway.outbox
        return {
            "channel": self.name,
            "outbox_depth": outbox.depth(self.name) if outbox else None,
            "stats": dict(self.stats),
            "awaiting_receipts": len(self._awaited),  # watched for receipt_timeout
            "smsc": smscs,
        }
