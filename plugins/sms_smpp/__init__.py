"""SMS channel plugin over SMPP 3.4: ``[plugins.sms_smpp]``, the ``sms`` channel, ``gatewayctl smpp``.

Registered through the entry point ``sms_smpp = "plugins.sms_smpp"``. The protocol lives in
:mod:`adapters.smpp`; this package wires it to the outbox and the gateway (see :mod:`.channel`).
"""

from __future__ import annotations

from typing import Any

from gateway.contracts import AdminCommand, AdminReply, SectionSpec
from gateway.errors import AdminCommandError
from gateway.hookspecs import hookimpl
from plugins.sms_smpp.channel import SmsChannel
from plugins.sms_smpp.config import SmsConfig, parse_sms_config

NAME = "sms_smpp"


def _channel(gateway: Any) -> SmsChannel | None:
    """This plugin's channel, as the core registered it (None when no SMSC is configured)."""
    return next((c for c in gateway.channels.values() if isinstance(c, SmsChannel)), None)


@hookimpl
def gateway_config_sections():
    return [SectionSpec(name=NAME, parse=parse_sms_config, optional=True)]


@hookimpl
def gateway_channels(gateway):
    config: SmsConfig = gateway.plugin_config(NAME)
    if not config.smsc:
        return []
    return [SmsChannel(gateway, config)]


def _render(snap: dict[str, Any]) -> str:
    lines = [
        f"channel {snap['channel']}: outbox depth {snap['outbox_depth']}, "
        + ", ".join(f"{k}={v}" for k, v in snap["stats"].items() if v)
    ]
    for name, s in snap["smsc"].items():
        lines.append(
            f"smsc {name} {s['host']} rate={s['rate'] or 'uncapped'}/s queued={s['queued_segments']}"
            + (f" paused {s['paused_s']}s" if s["paused_s"] else "")
            + (f" throttled to {s['rate_now']}/s" if s["rate_now"] != s["rate"] else "")
        )
        for b in s["binds"]:
            lines.append(
                f"  {b['name']:<12} {b['mode']:<12} {b['state']:<10} window {b['window_used']}/{b['window']} settling {b['window_settling']}"
                f" submitted={b['submitted']} reconnects={b['reconnects']}"
                + (f" last_error={b['last_error']}" if b["last_error"] else "")
            )
    return "\n".join(lines)


@hookimpl
def gateway_reload(gateway):
    channel = _channel(gateway)
    if channel is not None:
        channel.reload(gateway.plugin_config(NAME))


@hookimpl
def gateway_admin_commands(gateway):
    async def handler(argv: list[str]) -> AdminReply:
        channel = _channel(gateway)
        if channel is None:
            raise AdminCommandError("the SMS channel is not configured ([[plugins.sms_smpp.smsc]])")
        snap = channel.snapshot()
        return AdminReply(data=snap, text=_render(snap))

    return [
        AdminCommand(
            name="smpp",
            help="SMSC binds and their state, rates, window usage, outbox depth",
            handler=handler,
        )
    ]


@hookimpl
def gateway_status(gateway):
    channel = _channel(gateway)
    if channel is None:
        return None
    snap = channel.snapshot()
    return {
        "outbox_depth": snap["outbox_depth"],
        "binds_bound": sum(
            b["state"] == "bound" for s in snap["smsc"].values() for b in s["binds"]
        ),
        "binds": sum(len(s["binds"]) for s in snap["smsc"].values()),
        **{
            k: v for k, v in snap["stats"].items() if k in ("submitted", "failed", "receipts", "mo")
        },
    }
