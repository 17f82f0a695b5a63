"""In-memory stand-ins for contact control and the outbox, for campaign/pipeline unit tests.

The end-to-end tests use the real SQLite contact control; these keep rule tests fast and let a
test script the outcome per MSISDN (``suppress={"8613...": "dnd.blacklist"}``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gateway.model import ContactDecision, ContactRequest, Delivery, Outcome


class FakeContactControl:
    def __init__(
        self, *, suppress: Mapping[str, str] | None = None, defer: Sequence[str] = ()
    ) -> None:
        self.suppress = dict(suppress or {})
        self.defer = set(defer)
        self.decided: list[ContactRequest] = []
        self.checked: list[ContactRequest] = []
        self.fail = False

    def _answer(self, request: ContactRequest) -> ContactDecision:
        if request.msisdn in self.suppress:
            return ContactDecision(
                request=request,
                outcome=Outcome.SUPPRESSED,
                decided_at=0.0,
                reason=self.suppress[request.msisdn],
            )
        if request.msisdn in self.defer:
            return ContactDecision(
                request=request,
                outcome=Outcome.DEFERRED,
                decided_at=0.0,
                reason="quiet_hours.sms",
                not_before=100.0,
            )
        if request.control_group:
            return ContactDecision(request=request, outcome=Outcome.CONTROL, decided_at=0.0)
        return ContactDecision(request=request, outcome=Outcome.ALLOWED, decided_at=0.0)

    async def decide(self, request: ContactRequest) -> ContactDecision:
        return (await self.decide_many([request]))[0]

    async def decide_many(self, requests: Sequence[ContactRequest]) -> list[ContactDecision]:
        if self.fail:
            raise RuntimeError("backend down")
        self.decided.extend(requests)
        return [self._answer(r) for r in requests]

    async def check(self, request: ContactRequest) -> ContactDecision:
        self.checked.append(request)
        return self._answer(request)

    async def commit(self, contact_id: str) -> None:
        pass

    async def release(self, contact_id: str, reason: str) -> bool:
        return True

    async def reconcile(self, delivery: Delivery) -> None:
        pass


class FakeOutbox:
    def __init__(self) -> None:
        self.queued: dict[str, ContactDecision] = {}
        self.deferred: list[tuple[ContactRequest, float]] = []

    async def enqueue(self, decision: ContactDecision) -> bool:
        return await self.enqueue_many([decision]) == 1

    async def enqueue_many(self, decisions: Sequence[ContactDecision]) -> int:
        new = 0
        for d in decisions:
            if d.request.contact_id not in self.queued:
                self.queued[d.request.contact_id] = d
                new += 1
        return new

    async def defer(self, request: ContactRequest, not_before: float) -> None:
        self.deferred.append((request, not_before))

    async def delivery_counts(self, campaign_id: str) -> dict[str, int]:
        queued = sum(1 for d in self.queued.values() if d.request.campaign_id == campaign_id)
        return {"queued": queued, "submitted": 0, "delivered": 0}

    def depth(self, channel: str) -> int:
        return sum(1 for d in self.queued.values() if d.request.channel == channel)


# -- building a pipeline from campaign text, for rule and pipeline tests ---------------------

PROFILES_CSV = """msisdn,imsi,brand,plan,arpu_band,age_band,region,home_cell,products,terminal,capabilities,tags
8613800000001,460001234567801,gotone,G58,3,25-34,beijing,4110-11,mms10,n73,mms|wap,traveller
8613800000002,460001234567802,mzone,M18,1,18-24,beijing,4111-12,,v3,wap,student
8613800000003,460001234567803,easyown,E8,0,45-54,hebei,4301-13,12593,n1110,,
8613800000004,460001234567804,gotone,G88,5,35-44,guangdong,5101-14,12593|mms10,n95,mms|wap,vip
"""

AREAS = {
    "airport": {"cells": ["4101-1001", "4101-1002"]},
    "station": {"lacs": [4102]},
}

HEADER = """
id = "{id}"
name = "test campaign {id}"
channels = ["sms"]
initial_state = "running"
[content.sms]
text = "Hi {{brand|friend}} {{msisdn}}"
"""


def campaign_toml(body: str, *, id: str = "c1", header: str = HEADER) -> str:
    return header.format(id=id) + body


async def make_pipeline(
    tmp_path,
    tomls: dict[str, str],
    *,
    profiles: str = PROFILES_CSV,
    control=None,
    plugin_types=None,
    timezone="UTC",
):
    """A Pipeline over a campaigns dir built from ``{filename: toml}``, with fakes behind it."""
    from gateway.app import Gateway
    from gateway.campaigns.store import CampaignStore
    from gateway.pipeline import Pipeline
    from gateway.profiles import ProfileHolder
    from gateway.rules.areas import parse_areas
    from gateway.store import SqliteWorker, open_sqlite

    directory = tmp_path / "campaigns"
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in tomls.items():
        (directory / name).write_text(text, encoding="utf-8")
    (tmp_path / "profiles.csv").write_text(profiles, encoding="utf-8")
    holder = ProfileHolder()
    assert await holder.load(tmp_path / "profiles.csv"), holder.last_error
    gw = Gateway(config=None, hook=None, state_dir=tmp_path)
    gw.contact_control = control or FakeContactControl()
    gw.outbox = FakeOutbox()
    worker = SqliteWorker(open_sqlite(tmp_path / "state.sqlite", synchronous="normal"))
    store = await CampaignStore.open(
        worker, areas=parse_areas({"areas": AREAS}), plugin_types=plugin_types
    )
    await store.sync_dir(directory)
    gw.campaigns, gw.profiles = store, holder
    pipeline = Pipeline(gw, profiles=holder, campaigns=store, timezone=timezone)
    gw.pipeline = pipeline
    return pipeline
