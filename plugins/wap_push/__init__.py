"""WAP Push channel plugin: ``[plugins.wap_push]``, the ``wap_push`` channel, click tracking.

Registered through the entry point ``wap_push = "plugins.wap_push"``. The codecs live in
:mod:`adapters.wap` (SI/SL, WSP, WDP) and the SMPP client in :mod:`adapters.smpp`; the
channel (:mod:`.channel`) opens its own binds with ``[plugins.wap_push.smsc]``. With
``track_clicks``, the href in each push is a short link served on the core's HTTP host
(``[http] listen``) under the path of ``tracking_url`` (:mod:`.tracking`). With
``transport = "ppg"`` pushes go to a Push Proxy Gateway by PAP 2.0 (:mod:`.ppg`), whose result
notifications are served under the path of ``[plugins.wap_push.ppg] notify_url``.
"""

from __future__ import annotations

from typing import Any

from gateway.contracts import HttpResponse, HttpRoute, SectionSpec
from gateway.hookspecs import hookimpl
from plugins.wap_push.channel import WapPushChannel
from plugins.wap_push.config import RESTART_KEYS, WapPushConfig, parse_wap_push_config
from plugins.wap_push.tracking import LinkTracker

NAME = "wap_push"


def _channel(gateway: Any) -> WapPushChannel | None:
    return next((c for c in gateway.channels.values() if isinstance(c, WapPushChannel)), None)


@hookimpl
def gateway_config_sections():
    return [
        SectionSpec(
            name=NAME, parse=parse_wap_push_config, optional=True, restart_keys=RESTART_KEYS
        )
    ]


@hookimpl
def gateway_channels(gateway):
    config: WapPushConfig = gateway.plugin_config(NAME)
    if not config.enabled:
        return []
    tracker = LinkTracker(gateway, base_url=config.tracking_url) if config.track_clicks else None
    return [WapPushChannel(gateway, config, tracker=tracker)]


@hookimpl
def gateway_http_routes(gateway):
    config: WapPushConfig = gateway.plugin_config(NAME)
    if not config.enabled:
        return []
    routes = []
    if config.track_clicks:

        async def click(request):
            channel = _channel(gateway)
            if channel is None or channel.tracker is None:
                return HttpResponse(status=503, body=b"WAP Push channel not running\n")
            return await channel.tracker.handle(request)

        # Handsets follow the link: public.
        routes.append(
            HttpRoute(method="GET", path=config.tracking_path, handler=click, auth="none")
        )
    if config.transport == "ppg" and config.ppg is not None and config.ppg.notify_url:

        async def notification(request):
            channel = _channel(gateway)
            if channel is None or channel.ppg is None:
                return HttpResponse(status=503, body=b"WAP Push channel not running\n")
            return await channel.ppg.handle_notification(request)

        # The PPG proves itself with the key in notify_url's query, checked by the handler.
        routes.append(
            HttpRoute(method="POST", path=config.ppg.notify_path, handler=notification, auth="none")
        )
    return routes


@hookimpl
def gateway_status(gateway):
    channel = _channel(gateway)
    if channel is None:
        return None
    outbox = gateway.outbox
    return {
        "outbox_depth": outbox.depth(channel.name) if outbox is not None else None,
        **channel.statistics(),
    }
