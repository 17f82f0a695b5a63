"""gateway_file_channel: a complete, small delivery channel (the example of docs/channels.md).

It owns ``[plugins.file_channel]`` and registers the channel ``file`` (or ``channel = ...``),
which delivers each contact as one JSON line appended to ``path``, flushed and fsynced, and
reports it back: ``submitted`` once the line is on disk, then ``delivered`` through the
receipt path (``map_message_ids`` / ``apply_receipt``) that a network channel uses when its
peer confirms. A file has no later receipt: the write is the delivery, so the receipt is
applied at once; an SMSC or MMSC sends it minutes later, to the same two calls.

Install it with its entry point (``pip install examples/file_channel``)::

    [project.entry-points."gateway.plugins"]
    file_channel = "gateway_file_channel"
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import attrs
import structlog
import trio

from gateway import hookimpl
from gateway.config_reader import TableReader
from gateway.content import Content, ContentError, ContentKind, declaration_of
from gateway.contracts import SectionSpec
from gateway.model import Delivery, DeliveryState

NAME = "file_channel"


@attrs.frozen(kw_only=True)
class FileChannelConfig:
    path: Path | None = None  # no path: the channel is not registered
    channel: str = "file"
    batch: int = 100  # messages taken from the outbox per write


def parse_config(table, key):
    r = TableReader(table, key)
    path = r.str("path", None)
    config = FileChannelConfig(
        path=None if path is None else Path(path),
        channel=r.str("channel", "file"),
        batch=r.int("batch", 100, min=1, max=10_000),
    )
    r.finish()  # refuses unknown keys, raises every problem with its dotted key
    return config


@attrs.define(eq=False)
class FileChannel:
    """The channel object: the core starts ``run`` and reads the declarations below."""

    gateway: object
    config: FileChannelConfig
    name: str = attrs.field(init=False)
    #: What content this channel can deliver, and what the handset must support (nothing).
    carries = frozenset({ContentKind.TEXT, ContentKind.HREF})
    requires = frozenset()
    _limiter: trio.CapacityLimiter = attrs.field(factory=lambda: trio.CapacityLimiter(1))
    _counts: dict[str, int] = attrs.field(
        factory=lambda: {"written": 0, "rejected": 0, "retried": 0}
    )

    def __attrs_post_init__(self):
        self.name = self.config.channel

    def statistics(self):
        """Shown under the plugin in ``gatewayctl status``."""
        return dict(self._counts)

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED):
        async with self.gateway.outbox.open_queue(self.name) as queue:
            await queue.recover()  # messages of this channel caught in flight by a crash
            task_status.started()
            while True:
                messages = await queue.take(self.config.batch)  # leased, waits for work
                await self._deliver(queue, messages)

    async def _deliver(self, queue, messages):
        lines = {}
        for message in messages:
            try:
                content = Content.from_fields(message.request.content)
                refusals = declaration_of(self).refusals(content)
            except ContentError as exc:
                refusals = [str(exc)]
            if refusals:  # final: retrying cannot fix the content
                self._counts["rejected"] += 1
                await self._report(message, DeliveryState.REJECTED, error="; ".join(refusals))
                continue
            lines[message.contact_id] = json.dumps(
                {
                    "contact_id": message.contact_id,
                    "msisdn": message.msisdn,
                    "campaign_id": message.campaign_id,
                    "text": content.text,
                    "href": content.href,
                    "resent": message.resent,  # > 0: may have been written once before a crash
                },
                ensure_ascii=False,
            )
        if not lines:
            return
        # Durable "about to send"; only the ids returned may go out (others were cancelled).
        sending = await queue.mark_sending(list(lines))
        batch = [cid for cid in lines if cid in sending]
        try:
            await trio.to_thread.run_sync(
                self._append, [lines[cid] for cid in batch], limiter=self._limiter
            )
        except OSError as exc:  # disk full, permissions: transient, try again later
            for message in messages:
                if message.contact_id in batch:
                    state = await queue.retry(message.contact_id, str(exc))
                    self._counts["retried"] += 1
                    if state in ("rejected", "expired"):  # attempts used up: report it
                        await self._report(message, DeliveryState(state), error=str(exc))
            return
        for message in messages:
            if message.contact_id not in batch:
                continue
            self._counts["written"] += 1
            message_id = f"{self.name}-{message.contact_id}"
            await queue.map_message_ids(message.contact_id, [message_id])
            await self._report(message, DeliveryState.SUBMITTED, message_id=message_id)
            receipt = await queue.apply_receipt(message_id, "delivered")
            if receipt is not None and receipt[1] is not None:
                await self._report(message, DeliveryState(receipt[1]), message_id=message_id)

    def _append(self, lines):
        """Blocking: runs in a worker thread. fsync, so a line is on disk once reported."""
        with open(self.config.path, "a", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in lines))
            f.flush()
            os.fsync(f.fileno())

    async def _report(self, message, state, *, message_id=None, error=None):
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
        structlog.get_logger().info(
            "file_channel.reported",
            plugin=NAME,
            channel=self.name,
            contact_id=message.contact_id,
            msisdn=message.msisdn,  # masked by the gateway's log processor
            state=state.value,
        )


@hookimpl
def gateway_config_sections():
    return [SectionSpec(name=NAME, parse=parse_config)]


@hookimpl
def gateway_channels(gateway):
    config = gateway.plugin_config(NAME)
    if config.path is None:
        return []
    return [FileChannel(gateway, config)]
