"""hello_gateway: a complete minimal gateway plugin (the one shown in the README).

It owns ``[plugins.hello]``, runs a service that logs a greeting periodically, adds the
``gatewayctl hello [NAME]`` command, shows a fragment in ``gatewayctl status`` and counts the
delivery reports and replies it observes. Install it with an entry point::

    [project.entry-points."gateway.plugins"]
    hello = "hello_gateway"
"""

from __future__ import annotations

import attrs
import structlog
import trio

from gateway import hookimpl
from gateway.config_reader import TableReader
from gateway.contracts import AdminCommand, AdminReply, SectionSpec
from gateway.errors import AdminCommandError

NAME = "hello"


@attrs.frozen(kw_only=True)
class HelloConfig:
    greeting: str = "hello"
    interval: float = 60.0  # seconds between two log lines


def parse_config(table, key):
    r = TableReader(table, key)
    config = HelloConfig(
        greeting=r.str("greeting", "hello"), interval=r.duration("interval", 60.0, min=0.1)
    )
    r.finish()  # refuses unknown keys, raises every problem with its dotted key
    return config


@attrs.define
class State:
    config: HelloConfig = attrs.field(factory=HelloConfig)
    ticks: int = 0
    deliveries: int = 0
    replies: int = 0
    decisions: int = 0


STATE = State()


class HelloService:
    name = "hello-ticker"

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED):
        log = structlog.get_logger().bind(plugin=NAME)
        task_status.started()
        while True:
            STATE.ticks += 1
            log.info("hello.tick", greeting=STATE.config.greeting, ticks=STATE.ticks)
            await trio.sleep(STATE.config.interval)


@hookimpl
def gateway_config_sections():
    return [SectionSpec(name=NAME, parse=parse_config)]


@hookimpl
def gateway_start(gateway):
    STATE.config = gateway.plugin_config(NAME)


@hookimpl
def gateway_reload(gateway):
    STATE.config = gateway.plugin_config(NAME)


@hookimpl
def gateway_services(gateway):
    return [HelloService()]


@hookimpl
def gateway_admin_commands(gateway):
    async def hello(argv):
        if len(argv) > 1:
            raise AdminCommandError("usage: hello [NAME]")
        name = argv[0] if argv else "world"
        return AdminReply(
            data={"greeting": STATE.config.greeting, "name": name},
            text=f"{STATE.config.greeting}, {name}",
        )

    return [AdminCommand(name="hello", help="say hello", handler=hello, usage="[NAME]")]


@hookimpl
def gateway_status(gateway):
    return {
        "ticks": STATE.ticks,
        "decisions": STATE.decisions,
        "deliveries": STATE.deliveries,
        "replies": STATE.replies,
    }


@hookimpl
def gateway_contact_recorded(decision):
    STATE.decisions += 1


@hookimpl
def gateway_delivery_report(delivery):
    STATE.deliveries += 1  # observers are called per record: return quickly


@hookimpl
def gateway_mo_message(message):
    STATE.replies += 1
