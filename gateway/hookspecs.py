"""The plugin contract: every hook the core calls, in one place.

Plugins are registered through the entry-point group ``gateway.plugins`` (the built-ins too), so
a third-party channel is a peer of the built-in ones. Implement a hook with
``@gateway.hookimpl`` on a module-level function or a method of the registered object.

Hooks are synchronous. Work that needs I/O goes into the objects that registration hooks
return (a :class:`~gateway.contracts.Service`, a channel, a source); the core starts their
``run`` methods in its own nursery, supervises them and cancels them on shutdown.

Hot paths never call a hook per event: sources, matchers and channels are registered once.
Observer hooks (the last group) are called once per contact record, delivery report or MO
message; implementations must return quickly (queue the work to a service of your own).

Reference documentation for plugin authors: ``docs/hooks.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from gateway.app import Gateway
    from gateway.contracts import (
        AdminCommand,
        Channel,
        HttpRoute,
        Matcher,
        SectionSpec,
        Service,
        SignalSource,
    )
    from gateway.model import Acceptance, ContactDecision, Delivery, MoMessage

PROJECT = "gateway"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# ============================================================================================
# Configuration
# ============================================================================================


@hookspec
def gateway_config_sections() -> Iterable[SectionSpec]:
    """Claim ``[plugins.<name>]`` tables of gateway.toml.

    Called once per configuration load (start-up, ``--check-config``, SIGHUP), before any
    plugin starts. Return the :class:`~gateway.contracts.SectionSpec` objects this plugin
    owns; each ``parse`` turns its raw table into a frozen config object or raises
    :class:`~gateway.errors.ConfigError` naming the dotted key. A ``[plugins.X]`` table that
    no plugin claims is an error ("did you mean ...").

    The parsed object is available as ``gateway.plugin_config(name)``.
    """


# ============================================================================================
# Lifecycle
# ============================================================================================


@hookspec
def gateway_stores(gateway: Gateway) -> Iterable[AbstractAsyncContextManager[Any]]:
    """Return async context managers that open state stores and core components.

    Entered by the daemon after the configuration is loaded and before ``gateway_start``;
    exited (in reverse order) after every service has stopped, so a final flush happens
    last. The core's own components (contact control, outbox, campaigns, profiles, the
    pipeline) use this hook to set their attribute on ``gateway``.
    """


@hookspec
def gateway_start(gateway: Gateway) -> None:
    """The configuration is valid and the stores are open; the plugin may prepare itself.

    Called once at start-up, before any registration hook. Raising aborts start-up with an
    error naming the plugin. Keep it quick: long work belongs in a service.
    """


@hookspec
def gateway_reload(gateway: Gateway) -> None:
    """A new configuration was loaded by SIGHUP (or ``gatewayctl reload``) and is now in force.

    Called after ``gateway.config`` was replaced. Connections (SMSC binds) should be kept;
    settings that cannot change without a restart should be logged as such.
    """


# ============================================================================================
# Registration: called once at start-up; the returned objects are started by the core
# ============================================================================================


@hookspec
def gateway_services(gateway: Gateway) -> Iterable[Service]:
    """Return background services to run (pollers, listeners, schedulers)."""


@hookspec
def gateway_signal_sources(gateway: Gateway) -> Iterable[SignalSource]:
    """Return signal sources (pcap directory, live capture, XDR feed)."""


@hookspec
def gateway_matchers(gateway: Gateway) -> Iterable[Matcher]:
    """Return matchers that turn enriched events into contact requests."""


@hookspec
def gateway_channels(gateway: Gateway) -> Iterable[Channel]:
    """Return delivery channels; ``Channel.name`` must be unique across plugins."""


@hookspec
def gateway_http_routes(gateway: Gateway) -> Iterable[HttpRoute]:
    """Return HTTP routes served by the gateway's shared HTTP host."""


@hookspec
def gateway_admin_commands(gateway: Gateway) -> Iterable[AdminCommand]:
    """Return commands that ``gatewayctl`` can run; names must be unique across plugins."""


@hookspec
def gateway_condition_types() -> Mapping[str, Any]:
    """Return extra trigger-rule condition types: ``{type_name: factory}``.

    See :mod:`gateway.rules` for the factory signature. Called when campaign files are loaded.
    """


@hookspec
def gateway_event_readers() -> Mapping[str, Any]:
    """Return readers of recorded signaling: ``{format_name: read}``.

    ``read(path)`` returns an iterator of :class:`~gateway.model.SignalEvent` decoded from the
    file at ``path`` (blocking: the core calls it in a worker thread). Used by
    ``gatewayctl preview CAMPAIGN --capture FILE``, which asks for the ``"pcap"`` reader; the
    core itself only reads JSON-lines event files. Example: the signaling plugin returns
    ``{"pcap": read_pcap_events}``. Called when a preview starts.
    """


@hookspec
def gateway_status(gateway: Gateway) -> Mapping[str, Any] | None:
    """Return a JSON-serialisable fragment for ``gatewayctl status`` (queue depths, counters).

    Called on every status request; the fragments are merged under the plugin's name.
    """


# ============================================================================================
# Observers: called once per record; return quickly
# ============================================================================================


@hookspec
def gateway_contact_recorded(decision: ContactDecision) -> None:
    """A contact decision (allowed, suppressed, deferred or control) was recorded in the ledger."""


@hookspec
def gateway_contacts_recorded(decisions: Sequence[ContactDecision]) -> None:
    """``gateway_contact_recorded`` for the decisions of one commit, in order (for an
    observer on the real-time path: one call per batch instead of one per decision).
    Implement one of the two: a plugin implementing both sees each decision twice."""


@hookspec
def gateway_delivery_report(delivery: Delivery) -> None:
    """A channel reported a delivery state change (submitted, delivered, undeliverable...)."""


@hookspec
def gateway_delivery_reports(deliveries: Sequence[Delivery]) -> None:
    """``gateway_delivery_report`` for the reports of one commit, in order (one call per
    batch). Implement one of the two: a plugin implementing both sees each report twice."""


@hookspec
def gateway_mo_message(message: MoMessage) -> None:
    """A subscriber sent a message to the gateway (e.g. "Y" to order the offered product)."""


@hookspec
def gateway_offer_accepted(acceptance: Acceptance) -> None:
    """A subscriber accepted an offer (an SMS reply such as "Y", an IVR key, a WAP click).

    Called once per acceptance, after it was recorded in the contact ledger (event
    ``accepted``; a channel reports one through ``Gateway.report_acceptance``). The BOSS plugin places the order here; return quickly (queue the work).
    """
