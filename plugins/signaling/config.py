"""Configuration shared by the signaling sources: sharding, home network, correlation limits.

Each source has its own section (``[plugins.signaling_pcap]``, ``[plugins.signaling_live]``,
``[plugins.signaling_xdr]``), read strictly with :class:`gateway.config_reader.TableReader`;
the keys below are common to them.
"""

from __future__ import annotations

import re
import zlib

import attrs

from adapters.sigtran.correlate import Correlator
from gateway.config_reader import TableReader
from gateway.shard import parse_shard


@attrs.frozen(kw_only=True)
class Shard:
    """This node's share of subscribers: ``index`` of ``count`` (1-based), by a stable IMSI hash.

    CRC-32 of the IMSI digits, modulo ``count``: identical on every node and every restart
    (Python's ``hash`` is salted per process). Events without an IMSI (a TMSI never resolved)
    go to shard 1 only, so that exactly one node sees them.
    """

    index: int = 1
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        index, count = parse_shard(text)
        return cls(index=index, count=count)

    @property
    def everything(self) -> bool:
        return self.count == 1

    def keeps(self, imsi: str | None) -> bool:
        if self.count == 1:
            return True
        if imsi is None:
            return self.index == 1
        return zlib.crc32(imsi.encode()) % self.count == self.index - 1


@attrs.frozen(kw_only=True)
class CommonConfig:
    """Keys every signaling source accepts."""

    name: str
    shard: Shard = Shard()
    home_plmns: tuple[str, ...] = ()
    batch_size: int = 256
    #: batches decided and not yet durable at once (gateway.pipeline.read_ahead)
    read_ahead: int = 2
    max_connections: int = 100_000
    max_tmsis: int = 1_000_000
    tmsi_ttl: float = 86_400.0
    max_subscribers: int = 1_000_000
    connection_idle: float = 3600.0

    def correlator(self) -> Correlator:
        return Correlator(
            home_plmns=self.home_plmns,
            max_connections=self.max_connections,
            max_tmsis=self.max_tmsis,
            tmsi_ttl=self.tmsi_ttl,
            max_subscribers=self.max_subscribers,
            connection_idle=self.connection_idle,
        )


def read_common(r: TableReader, default_name: str) -> CommonConfig:
    """Read the common keys from ``r`` (problems are collected by the reader)."""
    name = r.str("name", default_name)
    if name is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        r.problem("name", "must be letters, digits, '_', '.', '-' (it names the progress file)")
    shard = Shard()
    shard_text = r.str("shard", "1/1")
    if shard_text is not None:
        try:
            shard = Shard.parse(shard_text)
        except ValueError as exc:
            r.problem("shard", str(exc))
    plmns = r.str_list("home_plmns", ()) or ()
    for plmn in plmns:
        if not re.fullmatch(r"\d{5,6}", plmn):
            r.problem("home_plmns", f"each must be MCC+MNC digits (5 or 6), got {plmn!r}")
    return CommonConfig(
        name=name or default_name,
        shard=shard,
        home_plmns=tuple(plmns),
        batch_size=r.int("batch_size", 256, min=1, max=100_000),
        read_ahead=r.int("read_ahead", 2, min=1, max=64),
        max_connections=r.int("max_connections", 100_000, min=16),
        max_tmsis=r.int("max_tmsis", 1_000_000, min=16),
        tmsi_ttl=r.duration("tmsi_ttl", "24h", min=1),
        max_subscribers=r.int("max_subscribers", 1_000_000, min=16),
        connection_idle=r.duration("connection_idle", "1h", min=1),
    )
