"""The values that flow through the gateway.

Signal source -> :class:`SignalEvent` -> enrich with :class:`Subscriber` -> matcher ->
:class:`ContactRequest` -> contact control -> :class:`ContactDecision` -> outbox -> channel ->
:class:`Delivery` (and :class:`MoMessage` for replies).

All values are frozen attrs classes: change them with :func:`attrs.evolve`. Timestamps are
float seconds since the Unix epoch (UTC); local-time reasoning (quiet hours, calendar windows)
happens in the contact-control core with the operator's timezone. MSISDNs are stored in
international form without "+" (``8613812345678``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import attrs

# --------------------------------------------------------------------------------------------
# Subscribers and signaling events
# --------------------------------------------------------------------------------------------


class EventKind(enum.StrEnum):
    """What a subscriber did, as seen on the network."""

    POWER_ON = "power_on"  # IMSI attach (location updating of type IMSI attach)
    POWER_OFF = "power_off"  # IMSI detach indication
    LOCATION_UPDATE = "location_update"  # normal location updating (moved to a new area)
    PERIODIC_UPDATE = "periodic_update"  # periodic location updating (still here)
    CELL_CHANGE = "cell_change"  # seen in a new cell (CM service, paging response, ...)
    HANDOVER = "handover"  # handover performed during a call; lac/ci are the new cell
    CALL_START = "call_start"  # CC Setup, with direction (and for MT the calling number)
    CALL_END = "call_end"  # the call's one end: outcome, cause, talk time (duration)
    MO_SMS = "mo_sms"  # subscriber sent an SMS (RP-DATA MS->network), peer = destination
    MT_SMS = "mt_sms"  # subscriber received an SMS (RP-DATA network->MS), peer = originator
    USSD = "ussd"  # USSD request (TS 24.090), service_code = the string dialled ("*139#")
    SS_CHANGE = "ss_change"  # supplementary service changed (call forwarding, barring...)
    HANDSET_CHANGE = "handset_change"  # IMEI differs from the last one seen for this IMSI
    ROAMING_IN = "roaming_in"  # IMSI's MCC/MNC is not the home network's


class CallDirection(enum.StrEnum):
    """Who set up the call (``SignalEvent.direction``)."""

    MO = "mo"  # mobile originated: the subscriber called (peer = called number)
    MT = "mt"  # mobile terminated: the subscriber was called (peer = calling number)


class CallOutcome(enum.StrEnum):
    """How a call ended (``SignalEvent.outcome`` of CALL_END), from CC and BSSMAP causes.

    The mapping from TS 24.008 10.5.4.11 cause values is in ``adapters/sigtran/outcome.py``.
    """

    ANSWERED = "answered"  # connected; duration is the talk time
    REJECTED = "rejected"  # the subscriber declined an incoming call (cause 21, or 17 at MT)
    NO_ANSWER = "no_answer"  # alerted and not answered (cause 18, 19, or 16/31 before Connect)
    BUSY = "busy"  # user busy (cause 17 on an MO call)
    UNALLOCATED_NUMBER = "unallocated_number"  # cause 1 (and 22 number changed, 28 invalid)
    NETWORK_FAILURE = "network_failure"  # resource, network or radio failure (cause >= 34)


class SsOperation(enum.StrEnum):
    """The supplementary service operation of an SS_CHANGE (TS 24.080 4.5, TS 29.002)."""

    REGISTER = "register"  # registerSS (e.g. set a forwarding number)
    ERASE = "erase"  # eraseSS
    ACTIVATE = "activate"  # activateSS
    DEACTIVATE = "deactivate"  # deactivateSS


@attrs.frozen(kw_only=True, slots=True)
class SignalEvent:
    """One subscriber behaviour event decoded from signaling or an XDR record.

    Only ``kind`` and ``timestamp`` are always present; a source fills what it knows.
    ``timestamp`` is the capture time of the packet (or record), not the processing time.
    """

    kind: EventKind
    timestamp: float
    imsi: str | None = None
    tmsi: int | None = None
    msisdn: str | None = None
    imei: str | None = None
    previous_imei: str | None = None  # for HANDSET_CHANGE
    mcc: str | None = None  # of the location area (LAI), as decimal digits
    mnc: str | None = None
    lac: int | None = None  # location area code
    ci: int | None = None  # cell identity
    peer: str | None = None  # the other party: called (MO) / calling (MT) number, SMS address
    cause: int | None = None  # CC release cause value (TS 24.008 10.5.4.11)
    duration: float | None = None  # seconds, for CALL_END when the start was seen
    direction: str | None = None  # CallDirection, for CALL_START and CALL_END
    outcome: str | None = None  # CallOutcome, for CALL_END
    service_code: str | None = None  # USSD string ("*139#"); SS_CHANGE: the SS code name
    ss_operation: str | None = None  # SsOperation, for SS_CHANGE
    source: str = ""  # name of the signal source that produced it


@attrs.frozen(kw_only=True, slots=True)
class Subscriber:
    """A subscriber as the matcher sees it: keys plus a read-only view of profile attributes.

    The profile index stores subscribers column-wise; this is the per-lookup view it hands out.
    """

    msisdn: str
    imsi: str | None = None
    attributes: Mapping[str, Any] = attrs.field(factory=dict)


# --------------------------------------------------------------------------------------------
# Campaigns
# --------------------------------------------------------------------------------------------


class CampaignKind(enum.StrEnum):
    REALTIME = "realtime"  # triggered by signaling events
    BATCH = "batch"  # a target list, paced
    PERIODIC = "periodic"  # birthdays, expiry reminders


class CampaignState(enum.StrEnum):
    DRAFT = "draft"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"
    CANCELLED = "cancelled"


@attrs.frozen(kw_only=True, slots=True)
class Campaign:
    """The parts of a campaign that every component needs. The campaign store holds the rest."""

    id: str
    name: str
    campaign_class: str = "marketing"  # marketing | care | service | ... (exemptions key on it)
    priority: int = 0  # higher wins arbitration
    kind: CampaignKind = CampaignKind.REALTIME
    state: CampaignState = CampaignState.DRAFT
    channels: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------------
# Contacts: request, decision, delivery, replies
# --------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True, slots=True)
class ContactRequest:
    """A candidate contact, produced by a matcher or a batch scheduler, before any decision.

    ``contact_id`` is the idempotency key of the whole contact life (decision, reservation,
    outbox entry, delivery); a retried request with the same id is the same contact.
    ``content`` is channel-specific (SMS: ``{"text": ...}``; WAP Push: ``{"url": ..., "title": ...}``).
    ``control_group`` marks a subscriber held out for evaluation: contact control runs every
    check, and where it would allow, records the outcome ``control`` and reserves nothing.
    """

    contact_id: str
    msisdn: str
    campaign_id: str
    channel: str
    campaign_class: str = "marketing"
    priority: int = 0
    realtime: bool = True
    defer_if_quiet: bool = False  # realtime only; batch contacts are always deferred
    content: Mapping[str, Any] = attrs.field(factory=dict)
    created_at: float = 0.0
    trigger: str | None = None  # event kind (or "batch") that produced it, for the ledger
    control_group: bool = False


class Outcome(enum.StrEnum):
    ALLOWED = "allowed"  # reserved: counts as a contact until released
    SUPPRESSED = "suppressed"  # refused, with the rule in ``reason``
    DEFERRED = "deferred"  # quiet hours: present again at ``not_before``
    CONTROL = "control"  # would be allowed, but held out as control group; nothing reserved


_NO_DETAIL: Mapping[str, Any] = {}


@attrs.frozen(kw_only=True, slots=True)
class ContactDecision:
    """Contact control's answer to one :class:`ContactRequest`.

    ``reason`` is a stable dotted code (``dnd.blacklist``, ``quiet_hours.sms``,
    ``cap.channel.day``, ``cap.campaign``, ``cooldown.telemarketing``, ``preempted``);
    ``detail`` carries the numbers behind it (count, limit, window) for ``gatewayctl why``.
    """

    request: ContactRequest
    outcome: Outcome
    decided_at: float
    reason: str | None = None
    rule: str | None = None  # the configured rule's name, where one applies
    # read-only: the default is one shared empty mapping (a fresh dict per decision was a
    # tenth of a batch's decision time)
    detail: Mapping[str, Any] = _NO_DETAIL
    not_before: float | None = None  # for DEFERRED
    reservation_expires_at: float | None = None  # for ALLOWED

    @property
    def allowed(self) -> bool:
        return self.outcome is Outcome.ALLOWED


class DeliveryState(enum.StrEnum):
    QUEUED = "queued"  # in the outbox, not yet handed to the network
    SUBMITTED = "submitted"  # accepted by the network peer (SMSC, MMSC, ...)
    DELIVERED = "delivered"
    UNDELIVERABLE = "undeliverable"
    EXPIRED = "expired"
    REJECTED = "rejected"
    UNKNOWN = "unknown"  # e.g. in flight when the gateway crashed

    @property
    def final(self) -> bool:
        return self not in (DeliveryState.QUEUED, DeliveryState.SUBMITTED)


@attrs.frozen(kw_only=True, slots=True)
class Delivery:
    """A change in the delivery state of one contact, reported by a channel."""

    contact_id: str
    channel: str
    state: DeliveryState
    at: float
    message_id: str | None = None  # the network peer's id (SMSC message_id, MM7 MessageID)
    error: str | None = None  # peer's error code or text, for undeliverable/rejected
    msisdn: str | None = None


@attrs.frozen(kw_only=True, slots=True)
class MoMessage:
    """A message from a subscriber to the gateway (mobile originated), e.g. a "Y" reply."""

    msisdn: str
    destination: str
    text: str
    channel: str
    received_at: float
    message_id: str | None = None


@attrs.frozen(kw_only=True, slots=True)
class Acceptance:
    """A subscriber accepted an offer: an SMS reply "Y", an IVR key press, a WAP click, a CRM
    counter.

    ``contact_id`` is the offer's contact (the one the subscriber answered: the idempotency key
    of whatever the acceptance sets off, such as the product order); ``channel`` is where the
    answer came from (``sms``, ``ivr``, ``crm``); ``answer`` the reply's text or the key
    pressed, as received; ``at`` epoch seconds. Fired as ``gateway_offer_accepted``.
    """

    contact_id: str
    campaign_id: str
    msisdn: str
    channel: str
    answer: str
    at: float
