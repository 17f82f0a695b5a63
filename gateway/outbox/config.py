"""The ``[outbox]`` table of gateway.toml."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from gateway.config_reader import TableReader


@attrs.frozen(kw_only=True)
class OutboxConfig:
    max_attempts: int = 5  # transient failures before a message is given up (rejected)
    retry_backoff: float = 10.0  # first retry delay, doubled per attempt ...
    retry_backoff_max: float = 600.0  # ... up to this
    expiry: float = 86400.0  # a message not submitted this long after its decision expires
    lease: float = 120.0  # a message taken by a channel and not sent by then goes back to the queue
    resend_unknown: bool = False  # resend messages whose submit answer was lost in a crash
    scheduler_interval: float = 1.0  # how often retries, leases, expiry and deferrals are checked
    retention: float = 30 * 86400.0  # finished entries older than this are purged (0: keep forever)


def parse_outbox_config(table: Mapping[str, Any], key: str = "outbox") -> OutboxConfig:
    d = OutboxConfig()
    r = TableReader(table, key)
    cfg = OutboxConfig(
        max_attempts=r.int("max_attempts", d.max_attempts, min=1, max=1000),
        retry_backoff=r.duration("retry_backoff", d.retry_backoff, min=0.001),
        retry_backoff_max=r.duration("retry_backoff_max", d.retry_backoff_max, min=0.001),
        expiry=r.duration("expiry", d.expiry, min=1),
        lease=r.duration("lease", d.lease, min=1),
        resend_unknown=r.bool("resend_unknown", d.resend_unknown),
        scheduler_interval=r.duration("scheduler_interval", d.scheduler_interval, min=0.01, max=60),
        retention=r.duration("retention", d.retention, min=0),
    )
    if r.ok and cfg.retry_backoff_max < cfg.retry_backoff:
        r.problem("retry_backoff_max", f"must be at least retry_backoff ({cfg.retry_backoff}s)")
    r.finish()
    return cfg
