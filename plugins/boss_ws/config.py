"""``[plugins.boss_ws]``: the BOSS/CRM webservices on the core's HTTP host.

::

    [plugins.boss_ws]
    enabled = true
    path_prefix = "/boss"             # routes: /boss/campaigns, /boss/touchpoint, ...
    auth = "any"                      # how callers authenticate ([http.clients]): any | key | hmac
    initial_state = "pending_approval"  # dispatched campaigns wait for approval (or "draft")
    max_inline_targets = 10000        # larger lists come as a file reference
    fetch_roots = ["/srv/boss/drop"]  # file references must be under one of these
    touchpoint_channel = "crm"        # the channel contact control sees for counter offers
    record_touchpoints = false        # true: each offer shown is a recorded contact
    max_offers = 5

    [plugins.boss_ws.crm]             # outbound dispatch to the CRM contact pool (optional)
    url = "http://crm.example.com/pool/dispatch"
    drop_dir = "/srv/crm/inbox"       # where the target list file is written
    timeout = "10s"
    attempts = 3
    backoff = "1s"
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from gateway.config_reader import TableReader

INITIAL = ("draft", "pending_approval")


@attrs.frozen(kw_only=True)
class CrmConfig:
    url: str
    drop_dir: Path
    timeout: float = 10.0
    attempts: int = 3
    backoff: float = 1.0


@attrs.frozen(kw_only=True)
class BossWsConfig:
    enabled: bool = False
    path_prefix: str = "/boss"
    auth: str = "any"
    initial_state: str = "pending_approval"
    max_inline_targets: int = 10_000
    fetch_roots: tuple[Path, ...] = ()
    touchpoint_channel: str = "crm"
    record_touchpoints: bool = False
    max_offers: int = 5
    crm: CrmConfig | None = None


RESTART_KEYS = ("enabled", "path_prefix", "auth", "crm")


def parse_boss_ws_config(table: Mapping[str, Any], key: str) -> BossWsConfig:
    r = TableReader(table, key)
    d = BossWsConfig()
    prefix = r.str("path_prefix", d.path_prefix)
    if prefix is not None and (not prefix.startswith("/") or prefix.endswith("/")):
        r.problem("path_prefix", f'expected "/name" without a trailing slash, got {prefix!r}')
    roots = tuple(Path(p) for p in r.str_list("fetch_roots", ()) or ())
    for i, root in enumerate(roots):
        if not root.is_absolute():
            r.problem(f"fetch_roots[{i}]", f"must be an absolute directory, got {str(root)!r}")
    crm = None
    if r.has("crm"):
        c = r.table("crm")
        crm = CrmConfig(
            url=c.str("url"),
            drop_dir=Path(c.str("drop_dir") or "."),
            timeout=c.duration("timeout", 10.0, min=0.01),
            attempts=c.int("attempts", 3, min=1, max=20),
            backoff=c.duration("backoff", 1.0, min=0.0),
        )
        c.check_unknown()
    # Webservices are always authenticated by the HTTP host ([http.clients]): "any" (API key or
    # HMAC-signed request), "key" or "hmac"; never "none".
    auth = r.str("auth", d.auth, choices=("any", "key", "hmac"))
    config = BossWsConfig(
        enabled=r.bool("enabled", d.enabled),
        path_prefix=prefix or d.path_prefix,
        auth=auth,
        initial_state=r.str("initial_state", d.initial_state, choices=INITIAL),
        max_inline_targets=r.int("max_inline_targets", d.max_inline_targets, min=1),
        fetch_roots=roots,
        touchpoint_channel=r.str("touchpoint_channel", d.touchpoint_channel),
        record_touchpoints=r.bool("record_touchpoints", d.record_touchpoints),
        max_offers=r.int("max_offers", d.max_offers, min=1, max=100),
        crm=crm,
    )
    r.finish()
    return config
