"""MMS channel plugin over MM7 (3GPP TS 23.140): ``[plugins.mms_mm7]``, the ``mms`` channel.

Registered through the entry point ``mms_mm7 = "plugins.mms_mm7"``. The protocol lives in
:mod:`adapters.mm7`; :mod:`.channel` submits the outbox's messages to the MMSC,
:mod:`.inbound` serves the MMSC's delivery reports, read replies and MO MMS on the core's HTTP
host (``[http] listen`` must be set for them), :mod:`.compose` builds the MM from the
campaign's content within the MMSC profile's limits.
"""

from __future__ import annotations

from typing import Any

import structlog

from gateway.contracts import HttpRoute, SectionSpec
from gateway.hookspecs import hookimpl
from plugins.mms_mm7.channel import MmsChannel
from plugins.mms_mm7.compose import HAVE_PILLOW
from plugins.mms_mm7.config import MmsConfig, parse_mms_config
from plugins.mms_mm7.inbound import make_handler

NAME = "mms_mm7"


def _channel(gateway: Any) -> MmsChannel | None:
    """This plugin's channel, as the core registered it (None when no MMSC is configured)."""
    return next((c for c in gateway.channels.values() if isinstance(c, MmsChannel)), None)


@hookimpl
def gateway_config_sections():
    return [SectionSpec(name=NAME, parse=parse_mms_config, optional=True)]


@hookimpl
def gateway_channels(gateway):
    config: MmsConfig = gateway.plugin_config(NAME)
    if not config.url and not config.embedded_mmsc:
        return []
    log = structlog.get_logger().bind(plugin=NAME)
    if not config.inbound_username and not config.embedded_mmsc:
        log.warning(
            "mms.inbound_unauthenticated",
            hint="set inbound_username and inbound_password so that only the MMSC can report",
        )
    if not HAVE_PILLOW:
        log.info("mms.no_pillow", hint="pictures over the MMSC limits are refused, not scaled")
    return [MmsChannel(gateway, config)]


@hookimpl
def gateway_http_routes(gateway):
    config: MmsConfig = gateway.plugin_config(NAME)
    if not (config.url or config.embedded_mmsc) or not config.inbound_path:
        return []
    # The handler checks the MMSC's HTTP Basic credentials (inbound_username) itself.
    return [
        HttpRoute(
            method="POST",
            path=config.inbound_path,
            handler=make_handler(lambda: _channel(gateway)),
            auth="none",
        )
    ]


@hookimpl
def gateway_reload(gateway):
    channel = _channel(gateway)
    if channel is not None:
        channel.reload(gateway.plugin_config(NAME))


@hookimpl
def gateway_status(gateway):
    channel = _channel(gateway)
    if channel is None:
        return None
    return {
        "mmsc": channel.config.url,
        "running": channel.queue is not None,
        **channel.statistics(),
    }
