"""BOSS/CRM webservices on the core's HTTP host: ``[plugins.boss_ws]``.

Registered through the entry point ``boss_ws = "plugins.boss_ws"``. Routes (under
``path_prefix``, JSON in and out):

- ``POST /campaigns`` (dispatch and work orders), ``POST /campaigns/pause|resume|cancel``,
  ``GET /campaigns/status?id=`` (:mod:`.dispatch`);
- ``POST /touchpoint`` and ``POST /feedback`` for the CRM counter (:mod:`.touchpoint`);
- ``POST /crm/dispatch`` and ``GET /crm/dispatch?id=``: outbound dispatch to the CRM's
  contact pool (:mod:`.crm`).

Authentication is the HTTP host's: every route declares ``auth = [plugins.boss_ws] auth``
("any": an ``[http.clients]`` client by API key or HMAC-signed request, the default; "key" or
"hmac" only that way). The BOSS and CRM systems are configured as HTTP clients.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from gateway.contracts import HttpRequest, HttpResponse, HttpRoute, SectionSpec
from gateway.hookspecs import hookimpl
from plugins.boss_ws import crm, dispatch, touchpoint
from plugins.boss_ws.config import RESTART_KEYS, BossWsConfig, parse_boss_ws_config
from plugins.boss_ws.service import BadRequest, BossWebservices, reply

NAME = "boss_ws"
Handler = Callable[[BossWebservices, HttpRequest], Awaitable[HttpResponse]]


class _Running:
    service: BossWebservices | None = None


RUNNING = _Running()


@hookimpl
def gateway_config_sections():
    return [
        SectionSpec(name=NAME, parse=parse_boss_ws_config, optional=True, restart_keys=RESTART_KEYS)
    ]


@hookimpl
def gateway_services(gateway: Any):
    config: BossWsConfig = gateway.plugin_config(NAME)
    if not config.enabled:
        RUNNING.service = None
        return []
    RUNNING.service = BossWebservices(gateway=gateway, config=config)
    return [RUNNING.service]


def _serve(
    ws: BossWebservices, handler: Handler
) -> Callable[[HttpRequest], Awaitable[HttpResponse]]:
    async def serve(request: HttpRequest) -> HttpResponse:
        if not ws.ready.is_set() or ws.store is None or ws.gateway.campaigns is None:
            return reply(503, {"error": "the webservices are starting or stopping"})
        try:
            return await handler(ws, request)
        except BadRequest as exc:
            ws.count("bad_requests")
            structlog.get_logger().info("boss_ws.bad_request", path=request.path, reason=str(exc))
            return reply(400, {"error": str(exc)})

    return serve


def routes_of(ws: BossWebservices) -> list[HttpRoute]:
    p = ws.config.path_prefix
    table: list[tuple[str, str, Handler]] = [
        ("POST", f"{p}/campaigns", dispatch.dispatch),
        ("GET", f"{p}/campaigns/status", dispatch.status),
        *(("POST", f"{p}/campaigns/{action}", _lifecycle(action)) for action in dispatch.ACTIONS),
        ("POST", f"{p}/touchpoint", touchpoint.touchpoint),
        ("POST", f"{p}/feedback", touchpoint.feedback),
        ("POST", f"{p}/crm/dispatch", crm.request_dispatch),
        ("GET", f"{p}/crm/dispatch", crm.dispatch_status),
    ]
    return [
        HttpRoute(method=method, path=path, handler=_serve(ws, handler), auth=ws.config.auth)
        for method, path, handler in table
    ]


def _lifecycle(action: str) -> Handler:
    async def handle(ws: BossWebservices, request: HttpRequest) -> HttpResponse:
        return await dispatch.lifecycle(ws, action, request)

    return handle


@hookimpl
def gateway_http_routes(gateway: Any):
    ws = RUNNING.service
    if ws is None or ws.gateway is not gateway:
        return []
    return routes_of(ws)


@hookimpl
def gateway_reload(gateway: Any):
    """Apply the keys that are not restart keys (limits, touchpoint settings, fetch roots)."""
    ws = RUNNING.service
    if ws is None or ws.gateway is not gateway:
        return
    ws.reconfigure(gateway.plugin_config(NAME))


@hookimpl
def gateway_status(gateway: Any):
    ws = RUNNING.service
    if ws is None or ws.gateway is not gateway:
        return None
    return ws.statistics()
