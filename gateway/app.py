"""The :class:`Gateway` object: what plugins see of the running core.

The daemon builds one at start-up (config, then stores, then plugins) and passes it to every
hook. Components built by the core (contact control, outbox, profiles, campaigns) are
attributes here; a plugin reaches them only through this object, never by import of another
plugin.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

import attrs
import pluggy
import structlog

from gateway.acceptance import report_acceptance
from gateway.contracts import Channel, ContactControl, EventSink, Matcher, Outbox
from gateway.metrics import Metrics
from gateway.model import Acceptance, ContactDecision, Delivery, MoMessage

if TYPE_CHECKING:
    # Concrete core components (not plugin contracts); imported for the checker only, so
    # that the object every module receives does not import the components it carries.
    from gateway.approval.book import ApprovalBook
    from gateway.campaigns.store import CampaignStore
    from gateway.config import GatewayConfig
    from gateway.contact.ledger import Ledger
    from gateway.enrich.holder import Enrichment
    from gateway.presence import PresenceTracker
    from gateway.profiles.holder import ProfileHolder
    from gateway.staff.directory import StaffDirectory
    from gateway.store import StateWriter


@runtime_checkable
class StagingOutbox(Protocol):
    """The outbox on the state database's one writer (``gateway.outbox.Outbox``)."""

    writer: StateWriter

    def stage_deliveries(self, deliveries: Sequence[Delivery]) -> list[Any]: ...

    async def staged_result(self, handle: Any) -> Any: ...

    async def record_delivery(self, delivery: Delivery) -> Any: ...

    def settled_early(self, delivery: Delivery, result: Any) -> Delivery | None: ...


@runtime_checkable
class StagingControl(Protocol):
    """Contact control whose ledger may share that writer (``SqliteContactControl``)."""

    ledger: Any

    def stage_delivery(self, delivery: Delivery) -> bool: ...

    def apply_recorded(self, delivery: Delivery) -> None: ...


@attrs.define(eq=False)
class Gateway:
    """The running core, as handed to plugin hooks.

    ``contact_control``, ``outbox``, ``profiles``, ``campaigns`` and ``ledger`` are set by the
    daemon after the stores are open and before ``gateway_start`` is called.
    """

    config: GatewayConfig
    #: The pluggy hook relay, for the observer hooks (``hook.gateway_delivery_report(...)``).
    hook: pluggy.HookRelay
    state_dir: Path
    metrics: Metrics = attrs.field(factory=Metrics)
    contact_control: ContactControl | None = None
    outbox: Outbox | None = None
    profiles: ProfileHolder | None = None
    campaigns: CampaignStore | None = None
    ledger: Ledger | None = None
    #: The 4A staff directory and the approval workflow (set by their components).
    staff: StaffDirectory | None = None
    approvals: ApprovalBook | None = None
    #: Number-segment and TAC tables (set by the enrichment component before the pipeline opens).
    enrichment: Enrichment | None = None
    #: The EventSink given to signal sources (``gateway.pipeline.Pipeline``, set by the
    #: pipeline component); None means events are counted and dropped.
    pipeline: EventSink | None = None
    #: Set by the daemon from the registration hooks, before any object is started; the
    #: pipeline reads ``matchers`` and the outbox reads ``channels`` (name -> Channel).
    matchers: list[Matcher] = attrs.field(factory=list)
    channels: dict[str, Channel] = attrs.field(factory=dict)
    #: Last signaling event per subscriber ("is the phone on?"), set by gateway.presence.
    presence: PresenceTracker | None = None
    started_at: float = attrs.field(factory=time.time)
    #: (outbox, contact control, whether they stage on one writer): the Protocol checks
    #: of :meth:`report_deliveries` cost ~10 us per call, for an answer fixed at start
    _staging: tuple[Any, Any, bool] | None = attrs.field(default=None, init=False, repr=False)

    def plugin_config(self, name: str) -> Any:
        """The parsed ``[plugins.<name>]`` section (see ``gateway_config_sections``)."""
        return self.config.plugins[name]

    def logger(self, **context: Any) -> Any:
        """A structlog logger with bound context (``plugin=``, ``channel=``...)."""
        return structlog.get_logger().bind(**context)

    async def report_delivery(
        self, delivery: Delivery, *, settled: list[Delivery] | None = None
    ) -> None:
        """A channel reports progress of one contact.

        The core updates the outbox entry, commits or reconciles the contact-control
        reservation, and calls the ``gateway_delivery_report`` observers. When the outbox and
        the contact ledger share the state database's writer, the entry's state and the
        ledger row are one transaction (one group commit).

        A submit answer reported through ``OutboxQueue.report_submitted`` may find receipts
        that overtook it: the final state they give is reconciled and reported too, and
        appended to ``settled``.
        """
        error = (await self.report_deliveries([delivery], settled=settled))[0]
        if error is not None:
            raise error

    async def report_deliveries(
        self, deliveries: Sequence[Delivery], *, settled: list[Delivery] | None = None
    ) -> list[Exception | None]:
        """:meth:`report_delivery` for many at once: on the shared writer they are staged
        together (one group commit for all, no task each). Returns, per delivery, the error
        that stopped it or None; one failing does not stop the others."""
        errors: list[Exception | None] = [None] * len(deliveries)
        if not self._stages_together(self.outbox, self.contact_control):
            for i, delivery in enumerate(deliveries):
                try:
                    await self._report_alone(delivery, settled)
                except Exception as exc:
                    errors[i] = exc
            return errors
        outbox = cast(StagingOutbox, self.outbox)
        control = cast(StagingControl, self.contact_control)
        # no checkpoint until the first await: one batch for all
        handles = outbox.stage_deliveries(deliveries)
        staged = [
            (handle, control.stage_delivery(d))
            for handle, d in zip(handles, deliveries, strict=True)
        ]
        reported: list[Delivery] = []
        try:
            for i, (delivery, (handle, in_ledger)) in enumerate(
                zip(deliveries, staged, strict=True)
            ):
                try:
                    early = outbox.settled_early(delivery, await outbox.staged_result(handle))
                    if not in_ledger:  # a remote backend (Redis): its own round trip
                        await self._reconcile(delivery)
                        if early is not None:
                            await self._reconcile(early)
                    elif early is not None:  # its ledger row was written with the receipts
                        control.apply_recorded(early)
                except Exception as exc:
                    errors[i] = exc
                    continue
                reported.append(delivery)
                if early is not None:
                    reported.append(early)
                    if settled is not None:
                        settled.append(early)
        finally:  # what is durable is observed, even if this is cancelled half-way
            self.observe_deliveries(reported)
        return errors

    def observe_deliveries(self, deliveries: Sequence[Delivery]) -> None:
        """Call the delivery observers (``gateway_delivery_reports`` once, and
        ``gateway_delivery_report`` per delivery where a plugin implements it). An observer
        that raises is logged: the reports are durable whatever it does."""
        if deliveries:
            _observe(self.hook, "gateway_delivery_reports", "deliveries", deliveries)
            _observe(self.hook, "gateway_delivery_report", "delivery", deliveries, each=True)

    def observe_decisions(self, decisions: Sequence[ContactDecision]) -> None:
        """Call the recorded-decision observers (``gateway_contacts_recorded`` once, and
        ``gateway_contact_recorded`` per decision where a plugin implements it)."""
        if decisions:
            _observe(self.hook, "gateway_contacts_recorded", "decisions", decisions)
            _observe(self.hook, "gateway_contact_recorded", "decision", decisions, each=True)

    def _stages_together(self, outbox: Any, control: Any) -> bool:
        """The outbox and contact control stage on the state database's one writer."""
        known = self._staging
        if known is not None and known[0] is outbox and known[1] is control:
            return known[2]
        together = (
            isinstance(outbox, StagingOutbox)
            and isinstance(control, StagingControl)
            and getattr(control.ledger, "writer", None) is outbox.writer
        )
        self._staging = (outbox, control, together)
        return together

    async def _report_alone(self, delivery: Delivery, settled: list[Delivery] | None) -> None:
        outbox = self.outbox
        early: Delivery | None = None
        if isinstance(outbox, StagingOutbox):
            early = outbox.settled_early(delivery, await outbox.record_delivery(delivery))
        elif outbox is not None:
            await outbox.record_delivery(delivery)
        await self._reconcile(delivery)
        if early is not None:
            await self._reconcile(early)
        self._reported(delivery, early, settled)

    def _reported(
        self, delivery: Delivery, early: Delivery | None, settled: list[Delivery] | None
    ) -> None:
        if early is None:
            self.observe_deliveries([delivery])
            return
        self.observe_deliveries([delivery, early])
        if settled is not None:
            settled.append(early)

    async def _reconcile(self, delivery: Delivery) -> None:
        if self.contact_control is not None:
            if delivery.state.value == "submitted":
                await self.contact_control.commit(delivery.contact_id)
            elif delivery.state.final:
                await self.contact_control.reconcile(delivery)

    def report_mo(self, message: MoMessage) -> None:
        """A channel received a message from a subscriber; offered to observers."""
        self.hook.gateway_mo_message(message=message)

    async def report_acceptance(self, acceptance: Acceptance) -> None:
        """A subscriber accepted an offer (a key press, a "Y" reply): recorded in the contact
        ledger, then offered to the ``gateway_offer_accepted`` observers."""
        await report_acceptance(self, acceptance)


def _observe(hook: Any, name: str, arg: str, records: Sequence[Any], *, each: bool = False) -> None:
    """Call observer hook ``name`` with ``records`` (``each``: once per record), skipping a
    hook no plugin implements (a pluggy call costs about a microsecond, per record)."""
    caller = getattr(hook, name, None)
    if caller is None:
        return
    implemented = getattr(caller, "get_hookimpls", None)
    if implemented is not None and not implemented():
        return
    for value in records if each else (records,):
        try:
            caller(**{arg: value})
        except Exception as exc:  # an observer's bug must not undo or fail a durable record
            structlog.get_logger().error("gateway.observer_failed", hook=name, error=repr(exc))
