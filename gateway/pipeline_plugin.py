"""The pipeline as a core component of its own (see ``gateway.default_plugins``).

The pipeline (:class:`gateway.pipeline.Pipeline`) joins the other components: it reads the
profiles and the compiled rules that the campaigns component loads, and hands requests to
contact control and the outbox. It is built here, after those stores are open (default plugins
open their stores in registration order, and this one is registered last), and set as
``gateway.pipeline``: the :class:`~gateway.contracts.EventSink` the daemon gives every signal
source. The daemon drains it first on shutdown.

Hooks: ``gateway_stores`` (build and install the pipeline; remove it on close) and
``gateway_status`` (the size of the per-subscriber matching state).

Settings: ``[campaigns] state_capacity``, ``state_ttl`` and ``timezone`` (the rule windows
are campaign settings; the pipeline only keeps their state).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from gateway.campaigns.config import CampaignsConfig, campaign_timezone
from gateway.errors import GatewayError
from gateway.hookspecs import hookimpl
from gateway.pipeline import Pipeline
from gateway.rules.conditions import MatcherState

if TYPE_CHECKING:
    from gateway.app import Gateway


@contextlib.asynccontextmanager
async def open_pipeline(gateway: Gateway) -> AsyncIterator[Pipeline]:
    """Build the pipeline over the open campaigns store and profiles; set ``gateway.pipeline``."""
    if gateway.campaigns is None or gateway.profiles is None:
        raise GatewayError(
            "the pipeline needs the campaigns store and the profiles "
            "(core component gateway.campaigns.plugin) to be open first"
        )
    config = gateway.config.sections.get("campaigns") or CampaignsConfig()
    pipeline = Pipeline(
        gateway,
        profiles=gateway.profiles,
        campaigns=gateway.campaigns,
        timezone=campaign_timezone(gateway.config),
        state=MatcherState(capacity=config.state_capacity, ttl=config.state_ttl),
    )
    gateway.pipeline = pipeline
    try:
        yield pipeline
    finally:
        gateway.pipeline = None


@hookimpl
def gateway_stores(gateway: Gateway) -> Iterable[AbstractAsyncContextManager[Any]]:
    return [open_pipeline(gateway)]


@hookimpl
def gateway_status(gateway: Gateway) -> Mapping[str, Any] | None:
    pipeline = gateway.pipeline
    if not isinstance(pipeline, Pipeline):
        return None
    return {"matching_state": pipeline.state.statistics()}
