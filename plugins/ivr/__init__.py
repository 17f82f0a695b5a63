"""IVR callout channel plugin: ``[plugins.ivr]``, the ``ivr`` channel, call-centre files.

Registered through the entry point ``ivr = "plugins.ivr"``. The switch protocols live in
:mod:`adapters.ami` (Asterisk) and :mod:`adapters.esl` (FreeSWITCH); this package paces calls
over trunks, maps call results to delivery states and retries (:mod:`.channel`), and exports /
imports call-centre batch files (:mod:`.callout`). Admin commands: ``gatewayctl ivr`` (status),
``gatewayctl ivr-export BATCH`` and ``gatewayctl ivr-import BATCH``.
"""

from __future__ import annotations

from typing import Any

from gateway.contracts import AdminCommand, AdminReply, SectionSpec
from gateway.errors import AdminCommandError
from gateway.hookspecs import hookimpl
from plugins.ivr.callout import export_batch, import_results
from plugins.ivr.channel import IvrChannel
from plugins.ivr.config import IvrConfig, parse_ivr_config

NAME = "ivr"


def _channel(gateway: Any) -> IvrChannel | None:
    return next((c for c in gateway.channels.values() if isinstance(c, IvrChannel)), None)


@hookimpl
def gateway_config_sections() -> list[SectionSpec]:
    return [
        SectionSpec(
            name=NAME,
            parse=parse_ivr_config,
            optional=True,
            restart_keys=(
                "backend",
                "host",
                "port",
                "username",
                "secret",
                "auth",
                "channel",
                "trunk",
                "contact_hours",
                "timezone",
                "retry",
                "accept_keys",
                "dial",
                "context",
                "exten",
                "application",
                "application_data",
                "target",
                "ring_timeout",
                "retry_is_new_contact",
                "presence_check",
                "presence_unseen",
                "presence_defer_max",
                "reconnect_initial",
                "reconnect_max",
            ),
        )
    ]


@hookimpl
def gateway_channels(gateway: Any) -> list[IvrChannel]:
    config: IvrConfig = gateway.plugin_config(NAME)
    if config.host is None:
        return []
    return [IvrChannel(gateway, config)]


@hookimpl
def gateway_status(gateway: Any) -> dict[str, Any] | None:
    channel = _channel(gateway)
    return None if channel is None else channel.statistics()


@hookimpl
def gateway_admin_commands(gateway: Any) -> list[AdminCommand]:
    def config() -> IvrConfig:
        return gateway.plugin_config(NAME)

    async def status(argv: list[str]) -> AdminReply:
        channel = _channel(gateway)
        if channel is None:
            raise AdminCommandError("no IVR channel: set [plugins.ivr] host")
        snap = channel.statistics()
        return AdminReply(data=snap, text=", ".join(f"{k}={v}" for k, v in snap.items()))

    async def export(argv: list[str]) -> AdminReply:
        if len(argv) != 1:
            raise AdminCommandError("usage: ivr-export BATCH")
        data = await export_batch(gateway, config(), argv[0])
        return AdminReply(data=data, text=f"{data['records']} records in {data['file']}")

    async def import_(argv: list[str]) -> AdminReply:
        if len(argv) != 1:
            raise AdminCommandError("usage: ivr-import BATCH")
        data = await import_results(gateway, config(), argv[0])
        return AdminReply(
            data=data,
            text=f"delivered {data['delivered']}, undeliverable {data['undeliverable']},"
            f" accepted {data['accepted']}, returned {len(data['returned'])},"
            f" ignored {len(data['ignored'])}",
        )

    return [
        AdminCommand(name="ivr", help="IVR channel: calls, results, switch connection", handler=status),
        AdminCommand(name="ivr-export", help="write a call-centre batch file of queued contacts",
                     handler=export, usage="BATCH"),
        AdminCommand(name="ivr-import", help="read a call-centre result file back",
                     handler=import_, usage="BATCH"),
    ]  # fmt: skip
