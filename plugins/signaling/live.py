"""Signal source: live capture on a network interface (``[plugins.signaling_live]``). Optional.

Entry point ``signaling_live = "plugins.signaling.live"``. Opens a Linux ``AF_PACKET`` raw
socket (packet(7)) on ``interface`` (a mirror/SPAN port or TAP facing the signaling links) and
feeds every frame to the same decoder as the pcap source. Needs the ``CAP_NET_RAW``
capability: run gatewayd as root (not advised) or grant it to the service
(``AmbientCapabilities=CAP_NET_RAW`` in the systemd unit). Without it the source fails at
start with an error naming the capability; the other sources are not affected.

The socket is non-blocking; the task waits with ``trio.lowlevel.wait_readable`` and then drains
up to ``max_batch`` frames, decodes them inline (a few microseconds each, so a batch stays in
the low milliseconds) and hands the events on. Timestamps are the receive time. Frames the
host itself sends (``PACKET_OUTGOING``) are ignored unless ``include_outgoing``; on ``lo``
every frame is seen both ways. ``linktype`` says what the interface delivers (1: Ethernet,
the usual; see :data:`adapters.sigtran.link.LINKS`).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping
from typing import Any

import attrs
import trio

from adapters.sigtran.decoder import Decoder
from adapters.sigtran.link import LINKS
from gateway.config_reader import TableReader
from gateway.contracts import SectionSpec
from gateway.hookspecs import hookimpl
from gateway.pipeline import ReadAhead, read_ahead
from plugins.signaling.config import CommonConfig, read_common
from plugins.signaling.events import CounterMirror, counters_fragment, to_events

NAME = "signaling_live"
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


@attrs.frozen(kw_only=True)
class LiveConfig:
    common: CommonConfig
    interface: str | None = None
    linktype: int = 1
    include_outgoing: bool = False
    max_batch: int = 512
    receive_buffer: int = 4 << 20


def parse_live_config(table: Mapping[str, Any], key: str) -> LiveConfig:
    r = TableReader(table, key)
    common = read_common(r, "live")
    linktype = r.int("linktype", 1)
    if linktype is not None and linktype not in LINKS:
        r.problem("linktype", f"unsupported; one of {', '.join(map(str, sorted(LINKS)))}")
    config = LiveConfig(
        common=common,
        interface=r.str("interface", None),
        linktype=linktype or 1,
        include_outgoing=r.bool("include_outgoing", False),
        max_batch=r.int("max_batch", 512, min=1, max=65536),
        receive_buffer=r.int("receive_buffer", 4 << 20, min=65536),
    )
    r.finish()
    return config


def open_packet_socket(interface: str, receive_buffer: int) -> socket.socket:
    """A non-blocking AF_PACKET raw socket bound to ``interface`` (needs CAP_NET_RAW)."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.bind((interface, 0))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class LiveSource:
    """The SignalSource; ``statistics()`` feeds ``gatewayctl status``."""

    def __init__(self, gateway: Any, config: LiveConfig) -> None:
        assert config.interface is not None
        self.config = config
        self.gateway = gateway
        self.name = f"signaling_live:{config.common.name}"
        self.decoder = Decoder(config.common.correlator())
        self.mirror = CounterMirror(gateway.metrics, config.common.name)
        self.events_sent = 0

    def statistics(self) -> dict[str, Any]:
        return {
            "interface": self.config.interface,
            "frames": self.decoder.frames,
            "events": self.events_sent,
            "open_connections": len(self.decoder.correlator.conns),
            **counters_fragment(self.decoder.errors, self.decoder.skipped),
        }

    async def run(self, sink: Any, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        cfg = self.config
        log = self.gateway.logger(plugin=NAME, interface=cfg.interface)
        try:
            sock = open_packet_socket(cfg.interface, cfg.receive_buffer)
        except PermissionError as exc:
            raise PermissionError(
                f"live capture on {cfg.interface!r} needs CAP_NET_RAW (AmbientCapabilities=CAP_NET_RAW "
                f"in the systemd unit) or remove [plugins.signaling_live]: {exc}"
            ) from None
        with sock:
            task_status.started()
            log.info("signaling.live_started")
            async with read_ahead(sink, cfg.common.read_ahead) as ahead:
                await self._capture(sock, ahead)

    async def _capture(self, sock: Any, ahead: ReadAhead) -> None:
        cfg = self.config
        feed, linktype = self.decoder.feed, cfg.linktype
        outgoing_ok, max_batch = cfg.include_outgoing, cfg.max_batch
        shard, size = cfg.common.shard, cfg.common.batch_size
        while True:
            await trio.lowlevel.wait_readable(sock)
            now = time.time()
            frames = self.decoder.frames
            for _ in range(max_batch):
                try:
                    frame, address = sock.recvfrom(65535)
                except (BlockingIOError, InterruptedError):
                    break
                if address[2] == PACKET_OUTGOING and not outgoing_ok:
                    continue
                feed(now, linktype, frame)
            self.decoder.correlator.expire_idle(now)
            events = to_events(self.decoder.drain(), self.name, shard)
            for start in range(0, len(events), size):
                await ahead.send(events[start : start + size])
            self.events_sent += len(events)
            self.mirror.add_events(len(events))
            self.mirror.add_frames(self.decoder.frames - frames)
            self.mirror.update("signaling.decode_errors", self.decoder.errors)
            self.mirror.update("signaling.skipped", self.decoder.skipped)
            await trio.lowlevel.checkpoint()


# -- hooks ----------------------------------------------------------------------------------------


@hookimpl
def gateway_config_sections():
    return [SectionSpec(name=NAME, parse=parse_live_config, optional=True)]


@hookimpl
def gateway_signal_sources(gateway):
    config: LiveConfig = gateway.plugin_config(NAME)
    if config.interface is None:
        return []
    return [LiveSource(gateway, config)]
