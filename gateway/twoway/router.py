"""The two-way SMS component: allocates sub-codes, remembers offers, routes and acts on replies.

MO messages arrive through the ``gateway_mo_message`` observer (synchronous: it only queues
them) and are handled one at a time by :meth:`TwoWay.run`, so an opt-out is in the lists
before the next reply or decision that follows it is handled.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
import structlog
import trio

from gateway.campaigns.keywords import fold
from gateway.campaigns.model import (
    DEFAULT_ACCEPT,
    DEFAULT_DECLINE,
    DEFAULT_OPT_OUT,
    CampaignDef,
    ReplyPolicy,
)
from gateway.model import (
    Acceptance,
    CampaignState,
    ContactDecision,
    ContactRequest,
    MoMessage,
    Outcome,
)
from gateway.numbers import NumberError, active_plan
from gateway.twoway.config import TwowayConfig
from gateway.twoway.store import TwowayStore

if TYPE_CHECKING:
    from gateway.app import Gateway

_ENDED = (CampaignState.FINISHED, CampaignState.CANCELLED)
DEFAULT_POLICY = ReplyPolicy(
    accept=frozenset(fold(w) for w in DEFAULT_ACCEPT),
    decline=frozenset(fold(w) for w in DEFAULT_DECLINE),
    opt_out=frozenset(fold(w) for w in DEFAULT_OPT_OUT),
)
#: The ledger event of each kind of answer.
EVENTS = {"accept": "accepted", "decline": "declined", "opt_out": "opted_out"}


@attrs.frozen(kw_only=True)
class Offer:
    contact_id: str
    campaign_id: str
    channel: str
    offered_at: float
    expires_at: float


def classify(policy: ReplyPolicy, text: str) -> str | None:
    """``accept``, ``decline``, ``opt_out`` or None for a reply's text."""
    word = fold(text)
    if word in policy.opt_out:
        return "opt_out"
    if word in policy.accept:
        return "accept"
    if word in policy.decline:
        return "decline"
    return None


@attrs.define(eq=False)
class TwoWay:
    """One gateway's two-way SMS state (also the ``Service`` that handles replies)."""

    gateway: Gateway
    config_of: Callable[[], TwowayConfig]
    clock: Callable[[], float] = time.time
    name: str = "twoway"
    store: TwowayStore | None = None
    #: sub-code -> campaign id, and back
    codes: dict[str, str] = attrs.field(factory=dict)
    code_of: dict[str, str] = attrs.field(factory=dict)
    ended: dict[str, float] = attrs.field(factory=dict)  # campaign id -> when it ended
    offers: dict[str, dict[str, Offer]] = attrs.field(factory=dict)  # msisdn -> campaign -> offer
    stats: dict[str, int] = attrs.field(
        factory=lambda: dict.fromkeys(
            (
                "received",
                "accepted",
                "declined",
                "opted_out",
                "unknown",
                "no_open_offer",
                "bad_number",
                "by_sub_code",
                "by_latest_offer",
                "dropped",
                "offers",
            ),
            0,
        )
    )
    _send: Any = None
    _receive: Any = None
    handled: trio.Event = attrs.field(factory=trio.Event)  # set after each reply, for tests

    def __attrs_post_init__(self) -> None:
        self._send, self._receive = trio.open_memory_channel[MoMessage](10_000)

    # -- state ------------------------------------------------------------------------------

    async def open(self, store: TwowayStore) -> None:
        self.store = store
        codes, offers = await store.open(self.clock())
        for sub_code, cid, _allocated, ended_at in codes:
            self.codes[sub_code], self.code_of[cid] = cid, sub_code
            if ended_at is not None:
                self.ended[cid] = ended_at
        for msisdn, cid, contact_id, channel, offered_at, expires_at in offers:
            self.offers.setdefault(msisdn, {})[cid] = Offer(
                contact_id=contact_id,
                campaign_id=cid,
                channel=channel,
                offered_at=offered_at,
                expires_at=expires_at,
            )
        self._publish()

    def validity(self, cdef: CampaignDef | None) -> float:
        if cdef is not None and cdef.reply is not None and cdef.reply.validity is not None:
            return cdef.reply.validity
        return self.config_of().offer_validity

    def address(self, campaign_id: str) -> str | None:
        """The reply address of a campaign's offers (service code + sub-code), or None."""
        code = self.code_of.get(campaign_id)
        service = self.config_of().service_code
        return service + code if code is not None and service else None

    def _publish(self) -> None:
        store = self.gateway.campaigns
        if store is not None:
            store.reply_addresses = {
                cid: addr for cid in self.code_of if (addr := self.address(cid)) is not None
            }

    async def sync_codes(self) -> None:
        """Allocate a sub-code to each live campaign with ``[reply]``; release ended ones'."""
        campaigns, store = self.gateway.campaigns, self.store
        config = self.config_of()
        if campaigns is None or store is None or not config.service_code:
            return
        now = self.clock()
        log = structlog.get_logger()
        changed = False
        live = {
            c.id: c
            for c in campaigns.list()
            if c.reply is not None and c.campaign.state not in _ENDED
        }
        for cid in list(self.code_of):
            if cid in live:
                if cid in self.ended:  # resumed or re-approved
                    del self.ended[cid]
                    await store.reopen(cid)
                continue
            if cid not in self.ended:
                self.ended[cid] = now
                await store.end(cid, now)
            elif now - self.ended[cid] >= self.validity(campaigns.get(cid)):
                code = self.code_of.pop(cid)
                del self.codes[code], self.ended[cid]
                await store.release(cid)
                log.info("twoway.sub_code_released", campaign=cid, sub_code=code)
                changed = True
        limit = 10**config.sub_code_digits
        for cid in live:
            if cid in self.code_of:
                continue
            width = config.sub_code_digits
            free = (f"{n:0{width}d}" for n in range(1, limit))
            new = next((c for c in free if c not in self.codes), None)
            if new is None:
                log.error(
                    "twoway.sub_codes_exhausted",
                    campaign=cid,
                    hint="raise [twoway] sub_code_digits",
                )
                continue
            await store.allocate(new, cid, now)
            self.codes[new], self.code_of[cid] = cid, new
            log.info("twoway.sub_code_allocated", campaign=cid, sub_code=new)
            changed = True
        if changed:
            self._publish()

    def record_offer(self, decision: ContactDecision) -> None:
        """An allowed contact of a campaign with ``[reply]``, in the campaign's own class, is an
        open offer (no await). A message of another class under the campaign's id (the order
        result SMS of boss_orders, an opt-out confirmation: service class) answers the
        subscriber and opens no offer, or a repeated "Y" would accept it."""
        if decision.outcome is not Outcome.ALLOWED or decision.reason == "duplicate":
            return
        campaigns = self.gateway.campaigns
        r = decision.request
        cdef = campaigns.get(r.campaign_id) if campaigns is not None else None
        if cdef is None or cdef.reply is None or self.store is None:
            return
        if r.campaign_class != cdef.campaign.campaign_class:
            return
        at = decision.decided_at
        offer = Offer(
            contact_id=r.contact_id,
            campaign_id=r.campaign_id,
            channel=r.channel,
            offered_at=at,
            expires_at=at + self.validity(cdef),
        )
        self.offers.setdefault(r.msisdn, {})[r.campaign_id] = offer
        self.store.offer((r.msisdn, r.campaign_id, r.contact_id, r.channel, at, offer.expires_at))
        self.stats["offers"] += 1

    def latest_offer(self, msisdn: str, now: float) -> Offer | None:
        open_ = [o for o in self.offers.get(msisdn, {}).values() if o.expires_at > now]
        return max(open_, key=lambda o: o.offered_at) if open_ else None

    # -- replies ----------------------------------------------------------------------------

    def receive(self, message: MoMessage) -> None:
        """From the ``gateway_mo_message`` observer: queue the reply (no await)."""
        try:
            self._send.send_nowait(message)
        except trio.WouldBlock:
            self.stats["dropped"] += 1
            structlog.get_logger().error("twoway.reply_dropped", msisdn=message.msisdn)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._serve_codes)
            async for message in self._receive:
                try:
                    await self.handle(message)
                except Exception as exc:  # one bad reply must not stop the others
                    structlog.get_logger().error(
                        "twoway.reply_failed", msisdn=message.msisdn, error=repr(exc)
                    )
                self.handled.set()
                self.handled = trio.Event()

    async def _serve_codes(self) -> None:
        while True:
            try:
                await self.sync_codes()
            except Exception as exc:
                structlog.get_logger().error("twoway.sub_codes_failed", error=repr(exc))
            await trio.sleep(1.0)

    async def handle(self, message: MoMessage) -> str:
        """Route and act on one reply; the kind of answer (or ``unknown``...)."""
        log = structlog.get_logger()
        self.stats["received"] += 1
        try:
            msisdn = active_plan().normalise(message.msisdn)
        except NumberError as exc:
            self.stats["bad_number"] += 1
            log.warning("twoway.bad_number", msisdn=message.msisdn, error=str(exc))
            return "bad_number"
        now = self.clock()
        config = self.config_of()
        campaigns = self.gateway.campaigns
        dest = message.destination.strip().lstrip("+")
        cid: str | None = None
        via = "latest_offer"
        service = config.service_code
        if service and dest.startswith(service) and len(dest) > len(service):
            # the sub-code follows the service code; digits after it (some networks let the
            # handset extend the address further) are ignored
            start = len(service)
            cid = self.codes.get(dest[start : start + config.sub_code_digits])
            if cid is not None:
                via = "sub_code"
        offer: Offer | None
        if cid is not None:
            offer = self.offers.get(msisdn, {}).get(cid)
            if offer is not None and offer.expires_at <= now:
                offer = None
        else:
            offer = self.latest_offer(msisdn, now)
            cid = offer.campaign_id if offer is not None else None
        cdef = campaigns.get(cid) if campaigns is not None and cid is not None else None
        policy = cdef.reply if cdef is not None and cdef.reply is not None else DEFAULT_POLICY
        kind = classify(policy, message.text)
        if kind is None:
            self.stats["unknown"] += 1
            log.info(
                "twoway.unknown_reply",
                msisdn=msisdn,
                campaign=cid,
                routed_by=via if cid else None,
                text_chars=len(message.text),
            )
            return "unknown"
        if kind != "opt_out" and offer is None:
            self.stats["no_open_offer"] += 1
            log.info("twoway.no_open_offer", msisdn=msisdn, answer=kind, campaign=cid)
            return "no_open_offer"
        self.stats["by_sub_code" if via == "sub_code" else "by_latest_offer"] += 1
        if kind == "opt_out":
            await self._opt_out(msisdn, message, cdef, policy, now)
        await self._record(kind, msisdn, message, offer, cdef, via, now)
        if offer is not None and self.store is not None:
            self.offers.get(msisdn, {}).pop(offer.campaign_id, None)
            await self.store.close_offer(msisdn, offer.campaign_id, kind)
        self.stats[EVENTS[kind]] += 1
        log.info(f"twoway.{EVENTS[kind]}", msisdn=msisdn, campaign=cid, routed_by=via)
        if kind == "accept" and offer is not None:
            self.gateway.hook.gateway_offer_accepted(
                acceptance=Acceptance(
                    contact_id=offer.contact_id,
                    campaign_id=offer.campaign_id,
                    msisdn=msisdn,
                    channel=message.channel,
                    answer=message.text,
                    at=now,
                )
            )
        return EVENTS[kind]

    async def _record(
        self,
        kind: str,
        msisdn: str,
        message: MoMessage,
        offer: Offer | None,
        cdef: CampaignDef | None,
        via: str,
        now: float,
    ) -> None:
        ledger = self.gateway.ledger
        if ledger is None:
            return
        campaign = cdef.campaign if cdef is not None else None
        row = (
            now,
            EVENTS[kind],
            offer.contact_id if offer is not None else f"mo-{msisdn}-{now:.3f}",
            msisdn,
            campaign.id if campaign is not None else None,
            message.channel,
            campaign.campaign_class if campaign is not None else None,
            campaign.priority if campaign is not None else None,
            f"reply.{via}",
            None,
            json.dumps({"answer": message.text[:160], "destination": message.destination}),
            None,
            None,
        )
        await ledger.durable(ledger.extend([row]))

    async def _opt_out(
        self,
        msisdn: str,
        message: MoMessage,
        cdef: CampaignDef | None,
        policy: ReplyPolicy,
        now: float,
    ) -> None:
        """Confirm by SMS (decided before the entry exists, so the list does not refuse it),
        then add the subscriber to the opt-out list: effective for the very next decision."""
        config = self.config_of()
        control = self.gateway.contact_control
        lists = getattr(control, "lists", None)
        if control is None or lists is None:
            raise RuntimeError("contact control is not open: the opt-out cannot be applied")
        scope = policy.opt_out_scope or config.opt_out_scope
        if scope == "class" and cdef is not None:
            category, list_scope = "opt_out_class", cdef.campaign.campaign_class
        else:
            category, list_scope = "global_opt_out", ""
        if config.confirmation and self.gateway.outbox is not None:
            request = ContactRequest(
                contact_id=f"optout-{msisdn}-{int(now * 1000)}",
                msisdn=msisdn,
                campaign_id="twoway.opt_out",
                channel=config.confirmation_channel,
                campaign_class="service",
                priority=1000,
                realtime=True,
                content={"text": config.confirmation, "source_addr": message.destination},
                created_at=now,
                trigger="mo",
            )
            try:
                await control.decide_and_queue([request], self.gateway.outbox)
            except Exception as exc:  # the opt-out itself must still happen
                structlog.get_logger().error(
                    "twoway.confirmation_failed", msisdn=msisdn, error=repr(exc)
                )
        await lists.add(
            category,
            msisdn,
            scope=list_scope,
            source="sms_reply",
            reason=fold(message.text),
        )

    def status(self) -> dict[str, Any]:
        return {
            "stats": dict(self.stats),
            "sub_codes": {cid: self.address(cid) for cid in self.code_of},
            "open_offers": sum(len(v) for v in self.offers.values()),
        }
