"""The objects that plugins hand to the core, and the core services plugins may use.

:mod:`gateway.hookspecs` says *when* the core asks for these; this module says *what they are*.
Registration hooks return these objects once, at start, so hot paths (every packet, every
decision) never pay a hook call.

Everything with a ``run(*, task_status)`` method is started by the core with
``await nursery.start(obj.run)`` inside a supervisor that logs a crash with its traceback and
restarts the task with backoff. A ``run`` calls ``task_status.started()`` once it is ready
(bound, listening, file opened) and returns only when cancelled or when its work is done.

One way to run a component loop: a store (``gateway_stores``) opens resources and closes them,
and starts no task; every loop (scheduler, sweeper, indexer, flush) is a :class:`Service` from
``gateway_services``, so that it is supervised, shown in ``gatewayctl status``, drained and
cancelled before the stores close. A store's exit therefore does its final flush inline.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, runtime_checkable

import attrs
import trio

from gateway.model import (
    ContactDecision,
    ContactRequest,
    Delivery,
    SignalEvent,
    Subscriber,
)

# --------------------------------------------------------------------------------------------
# Configuration sections
# --------------------------------------------------------------------------------------------

#: Parses one raw TOML table into the plugin's frozen config object. ``key`` is the dotted
#: path of the table (``plugins.sms_smpp``), to prefix the keys of any ConfigProblem raised.
SectionParser = Callable[[Mapping[str, Any], str], Any]


@attrs.frozen(kw_only=True)
class SectionSpec:
    """A plugin's claim on the ``[plugins.<name>]`` table of gateway.toml."""

    name: str
    parse: SectionParser
    #: Parse an empty table when the section is absent (plugin has usable defaults).
    optional: bool = True
    #: Core components (contact control, outbox...) own a top-level table ``[<name>]``
    #: instead of ``[plugins.<name>]``.
    top_level: bool = False
    #: Keys of this table that only take effect at the next start (storage, addresses,
    #: sizes fixed when the component opened). A reload that changes one keeps the running
    #: value in ``gateway.config``, lists the dotted key in the reply of ``gatewayctl reload``
    #: and logs ``config.restart_required``. Every other key must be applied by the
    #: plugin's ``gateway_reload``.
    restart_keys: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------------
# Long-running parts
# --------------------------------------------------------------------------------------------


@runtime_checkable
class Service(Protocol):
    """Any background task a plugin owns (a poller, a listener, a batch scheduler).

    Optional members, looked up with ``getattr`` (not part of the protocol check):

    - ``intake: bool``: True for services that bring new work in (a dispatch listener, a batch
      scheduler). On SIGTERM the core stops intake first (signal sources and intake services
      are cancelled), then lets the others drain.
    - ``async def drain(self) -> None``: see :data:`DRAIN_DOC`.
    """

    name: str

    async def run(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None: ...


#: The optional ``drain`` method of services and channels (and of ``gateway.pipeline``).
DRAIN_DOC = """\
``async def drain(self) -> None``: called once on shutdown, after intake stopped and while
``run`` is still running: finish in-flight work (wait for outstanding SMSC responses, flush a
batch) and return. The core awaits every ``drain`` within ``[gateway] drain_deadline``
(pipeline first, then services, then channels), then cancels every ``run``. A ``drain`` that
is still running at the deadline is cancelled; one that raises is logged and ignored.
"""


class EventSink(Protocol):
    """Where a signal source puts decoded events. ``send`` applies back-pressure."""

    async def send(self, events: Sequence[SignalEvent]) -> None: ...


@runtime_checkable
class SignalSource(Protocol):
    """Decodes signaling (pcap files, live capture, XDR) into events for the pipeline."""

    name: str

    async def run(
        self, sink: EventSink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None: ...


@runtime_checkable
class Matcher(Protocol):
    """Turns an enriched event into candidate contacts. Called on the hot path: keep it cheap.

    ``subscriber`` is None when the profile index does not know the IMSI/MSISDN.
    """

    name: str

    def match(
        self, event: SignalEvent, subscriber: Subscriber | None
    ) -> Iterable[ContactRequest]: ...


@runtime_checkable
class Channel(Protocol):
    """Delivers allowed contacts to subscribers over one medium (SMS, MMS, WAP Push, IVR).

    ``name`` is the channel name used in campaigns and contact-control caps (``sms``).
    The channel takes its messages from the durable outbox queue of that name and reports
    progress with ``Gateway.report_delivery``; it never decides whether to contact anyone.

    Optional: ``async def drain(self) -> None`` (wait for outstanding network responses on
    shutdown), see :data:`DRAIN_DOC`.

    Optional declarations (read with :func:`gateway.content.declaration_of`):
    ``carries: frozenset[ContentKind]`` (default text only) and ``requires: frozenset[str]``,
    what the handset must support for the pipeline to choose this channel (``{"mms"}``).
    Optional ``statistics() -> Mapping[str, Any]`` on any registered object (service, source,
    channel): shown under its plugin in ``gatewayctl status``. Guide: ``docs/channels.md``.
    """

    name: str

    async def run(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None: ...


# --------------------------------------------------------------------------------------------
# Core services, as plugins see them
# --------------------------------------------------------------------------------------------


class ContactControl(Protocol):
    """The one place that decides whether a subscriber may be contacted.

    A reservation is identified by the ``contact_id`` of the request that made it.
    """

    async def decide(self, request: ContactRequest) -> ContactDecision:
        """Check lists, quiet hours, caps and priority; on ALLOWED, reserve one contact."""
        ...

    async def check(self, request: ContactRequest) -> ContactDecision:
        """What ``decide`` would answer now, with no reservation and no ledger record (preview)."""
        ...

    async def decide_many(self, requests: Sequence[ContactRequest]) -> list[ContactDecision]:
        """Decide a batch in order (as if ``decide`` were called for each), faster."""
        ...

    async def decide_and_queue(
        self, requests: Sequence[ContactRequest], outbox: Outbox
    ) -> list[ContactDecision]:
        """``decide_many``, with the ALLOWED decisions queued in ``outbox`` and the DEFERRED
        ones held there, in the same transaction as the decisions' records (when both live in
        the state database): no "decided but not queued" gap. Returns once all is durable."""
        ...

    async def commit(self, contact_id: str) -> None:
        """The channel handed the contact to the network: the reservation becomes a contact."""
        ...

    async def release(self, contact_id: str, reason: str) -> bool:
        """Refund a reservation (send failed, expired, pre-empted). True only the first time."""
        ...

    async def reconcile(self, delivery: Delivery) -> None:
        """Apply a final delivery state (may refund an undelivered contact if configured)."""
        ...


class Outbox(Protocol):
    """The durable per-channel queue between contact control and the channels.

    A message is persisted before ``enqueue`` returns and survives kill -9. Entries are keyed
    by ``contact_id``: enqueueing the same contact twice is a no-op.
    """

    async def enqueue(self, decision: ContactDecision) -> bool:
        """Queue an ALLOWED decision for its channel. False if that contact_id was already queued."""
        ...

    async def enqueue_many(self, decisions: Sequence[ContactDecision]) -> int:
        """Queue several in one transaction; returns how many were new."""
        ...

    async def defer(self, request: ContactRequest, not_before: float) -> None:
        """Hold a DEFERRED request durably; at ``not_before`` it is decided again and queued if allowed."""
        ...

    async def cancel(self, contact_id: str, reason: str) -> bool:
        """Withdraw a queued, not yet submitted message (priority pre-emption). True if withdrawn."""
        ...

    async def record_delivery(self, delivery: Delivery) -> None:
        """Store a delivery state change reported by a channel (called by Gateway.report_delivery)."""
        ...

    def depth(self, channel: str) -> int:
        """Messages waiting (queued or deferred) for ``channel``."""
        ...

    async def delivery_counts(self, campaign_id: str) -> Mapping[str, int]:
        """``{state: n}`` over the campaign's outbox entries (queued, submitted, delivered...)."""
        ...

    def open_queue(self, channel: str) -> AbstractAsyncContextManager[Any]:
        """The consumer side of one channel's queue (every channel: SMS, MMS, WAP Push, IVR).

        ``async with outbox.open_queue("sms") as queue``: ``await queue.recover()`` once at
        start (this channel's messages caught by a crash), then ``await queue.take(n)`` leases
        due messages (:class:`gateway.outbox.OutboxMessage`); ``await queue.mark_sending(ids)``
        just before the network write (durable; only the ids returned may be sent);
        ``queue.retry(id, error)`` after a transient failure; ``queue.map_message_ids`` and
        ``queue.apply_receipt`` correlate the peer's ids with contacts. Results are reported
        with ``Gateway.report_delivery``. Leases not sent are given back on exit.
        """
        ...


# --------------------------------------------------------------------------------------------
# Admin commands (gatewayctl) and HTTP routes
# --------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class AdminReply:
    """What an admin command returns: ``data`` for ``--json``, ``text`` for people."""

    data: Any
    text: str | None = None


#: An admin command handler gets the words after the command name (``gatewayctl dnd add X``
#: -> ``["add", "X"]``) and returns a reply or raises AdminCommandError with a one-line reason.
AdminHandler = Callable[[list[str]], Awaitable[AdminReply]]


@attrs.frozen(kw_only=True)
class AdminCommand:
    name: str  # first word on the gatewayctl command line
    help: str  # one line, shown by ``gatewayctl help``
    handler: AdminHandler
    usage: str = ""  # e.g. "add|remove|check MSISDN [--category C]"


@attrs.frozen(kw_only=True)
class HttpRequest:
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    #: The authenticated client's name from the ``[http]`` credentials ("" on a route with
    #: ``auth="none"``).
    client: str = ""
    #: The remote address (IP) the request came from.
    peer: str = ""


@attrs.frozen(kw_only=True)
class HttpResponse:
    status: int = 200
    headers: Mapping[str, str] = attrs.field(factory=dict)
    body: bytes = b""


#: ``HttpRoute.auth`` values: who may call a route.
HTTP_AUTH_MODES = ("any", "key", "hmac", "none")


@attrs.frozen(kw_only=True)
class HttpRoute:
    method: str  # "POST"
    path: str  # exact path, e.g. "/boss/dispatch"
    handler: Callable[[HttpRequest], Awaitable[HttpResponse]]
    #: Who may call it: "any" (default) an ``[http.clients]`` client by API key or HMAC-signed
    #: request; "key" or "hmac" only that way; "none" anyone (a handset following a link, a
    #: peer that authenticates inside its own protocol). Authenticated unless said otherwise.
    auth: str = "any"
    #: For the OpenAPI document: one line, and JSON Schemas (plain dicts) of the bodies.
    summary: str = ""
    request_schema: Mapping[str, Any] | None = None
    response_schema: Mapping[str, Any] | None = None
    #: Media type of both bodies, and the status of a successful answer.
    content_type: str = "application/json"
    response_status: int = 200
