"""Two-way SMS as a core component (see ``gateway.default_plugins``): the ``[twoway]``
section, its tables in the state database, the reply service, and two observers (allowed
contacts become offers; MO messages are queued for routing)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import structlog

from gateway.contracts import SectionSpec
from gateway.hookspecs import hookimpl
from gateway.model import ContactDecision, MoMessage
from gateway.twoway.config import TwowayConfig, parse_twoway_config
from gateway.twoway.router import TwoWay
from gateway.twoway.store import TwowayStore

if TYPE_CHECKING:
    from gateway.app import Gateway


class TwowayPlugin:
    """The hooks of the two-way component; one instance (and component) per plugin manager."""

    def __init__(self) -> None:
        self.component: TwoWay | None = None

    def component_of(self, gateway: Gateway) -> TwoWay:
        if self.component is None or self.component.gateway is not gateway:

            def config() -> TwowayConfig:
                found: TwowayConfig | None = gateway.config.sections.get("twoway")
                return found or TwowayConfig()

            self.component = TwoWay(gateway=gateway, config_of=config)
        return self.component

    @hookimpl
    def gateway_config_sections(self) -> Iterable[SectionSpec]:
        return [SectionSpec(name="twoway", parse=parse_twoway_config, top_level=True)]

    @hookimpl
    def gateway_stores(self, gateway: Gateway) -> Iterable[AbstractAsyncContextManager[None]]:
        component = self.component_of(gateway)

        @contextlib.asynccontextmanager
        async def opened() -> AsyncIterator[None]:
            writer = getattr(gateway.ledger, "writer", None)
            if writer is None:
                structlog.get_logger().warning("twoway.disabled", reason="no contact ledger")
            else:
                await component.open(TwowayStore(writer))
                # before any service starts: a batch's first messages carry their reply address
                await component.sync_codes()
            try:
                yield
            finally:
                component.store = None

        return [opened()]

    @hookimpl
    def gateway_services(self, gateway: Gateway) -> Iterable[TwoWay]:
        component = self.component_of(gateway)
        return [component] if component.store is not None else []

    @hookimpl
    def gateway_contacts_recorded(self, decisions: Sequence[ContactDecision]) -> None:
        if self.component is not None:
            for decision in decisions:
                self.component.record_offer(decision)

    @hookimpl
    def gateway_mo_message(self, message: MoMessage) -> None:
        if self.component is not None and self.component.store is not None:
            self.component.receive(message)

    @hookimpl
    def gateway_status(self, gateway: Gateway) -> Mapping[str, Any] | None:
        component = self.component_of(gateway)
        return component.status() if component.store is not None else None
