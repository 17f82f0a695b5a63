"""The IVR channel over TCP against the fake AMI and event-socket servers, on the real SQLite
contact control and outbox, with Trio's MockClock driving call timers, retries and hours."""

from __future__ import annotations

import itertools

import pytest
import trio
import trio.testing

from adapters.ami.client import AmiLoginError
from adapters.esl.client import EslLoginError
from gateway.errors import ConfigError
from gateway.model import EventKind
from gateway.testing import FakeClock
from plugins.ivr.config import parse_ivr_config
from tests.plugins.ivr_harness import (
    HEARTBEAT,
    local_epoch,
    local_time,
    running_ivr,
    slow_autojump_clock,
)

BACKENDS = pytest.mark.parametrize("backend", ["ami", "esl"])
#: How late a call may be placed (never early): while SQLite's thread works past the autojump
#: threshold, the mock clock jumps to the next timer (at most HEARTBEAT away), several times.
LATE = 15 * HEARTBEAT
A, B, C = "8613800000001", "8613800000002", "8613800000003"


@pytest.fixture
def ivr_clock() -> trio.testing.MockClock:
    """Trio's clock for these tests (pytest-trio uses a Clock fixture as the run's clock)."""
    return slow_autojump_clock()


def clock_at(at: str = "10:00", day: str = "2026-03-02") -> FakeClock:
    return FakeClock(epoch=local_epoch(day, at), follow_trio=True)


@BACKENDS
async def test_key_press_is_an_acceptance_through_the_hook(backend, tmp_path, ivr_clock):
    """Answered, key 1 pressed: submitted then delivered, the acceptance hook fired once, the
    ledger has allowed, committed and accepted."""
    clock = clock_at()
    async with running_ivr(tmp_path, backend, clock=clock) as h:
        h.pbx.script(A, ring=2, digits="31", digit_delay=1, talk=4)
        await h.send(A)
        await h.wait_final("offer-" + A)
        assert h.observed.states("offer-" + A) == ["submitted", "delivered"]
        (acc,) = h.observed.acceptances
        assert (acc.contact_id, acc.campaign_id, acc.msisdn, acc.channel, acc.answer) == (
            "offer-" + A, "offer", A, "ivr", "1",
        )  # fmt: skip
        events = await h.ledger_events("offer-" + A)
        assert events[:2] == ["allowed", "committed"] and "accepted" in events
        (call,) = h.pbx.calls.values()
        assert call.variables.get("GW_PROMPT") == "press 1" or backend == "ami"
        assert h.channel.stats["answered"] == 1 and h.channel.stats["accepted"] == 1


@BACKENDS
async def test_answered_without_the_key_is_delivered_without_acceptance(
    backend, tmp_path, ivr_clock
):
    """A key that is not an accept key: delivered, no acceptance."""
    async with running_ivr(tmp_path, backend, clock=clock_at()) as h:
        h.pbx.script(A, digits="9")
        await h.send(A)
        await h.wait_final("offer-" + A)
        assert h.observed.final() == {"offer-" + A: "delivered"}
        assert h.observed.acceptances == []


@BACKENDS
async def test_login_failure_places_no_call_and_keeps_the_contacts(backend, tmp_path, ivr_clock):
    """A refused login: the channel does not start, no call is placed, the contact stays queued."""
    async with running_ivr(tmp_path, backend, clock=clock_at(), ivr={"secret": "wrong"},
                           start=False) as h:  # fmt: skip
        await h.send(A)
        refused = []
        try:
            await h.channel.run()
        except* (AmiLoginError, EslLoginError) as group:
            refused.extend(group.exceptions)
        assert len(refused) == 1 and "refused" in str(refused[0])
        assert h.pbx.calls == {} and h.server.login_failures == 1
        assert (await h.gateway.outbox.show("offer-" + A))["state"] == "queued"


def originated_local(h, number: str) -> list[str]:
    """Local (Shanghai) times at which the switch placed calls to ``number``."""
    return [local_time(h.clock.epoch + c.originated_at) for c in h.pbx.placed(number)]


@BACKENDS
async def test_busy_is_retried_after_n_minutes_up_to_k_times(backend, tmp_path, ivr_clock):
    """Busy: called again 10 minutes later, twice, then undeliverable; one contact in the ledger."""
    retry = {"busy": {"after": "10m", "max": 2}}
    async with running_ivr(tmp_path, backend, clock=clock_at(), ivr={"retry": retry}) as h:
        h.pbx.script(A, outcome="busy", ring=2)
        await h.send(A)
        await h.wait_final("offer-" + A)
        starts = [c.originated_at for c in h.pbx.placed(A)]
        assert len(starts) == 3
        for a, b in itertools.pairwise(starts):  # ring 2 s + 10 min, never earlier
            assert 602 - 1e-6 <= b - a <= 602 + LATE  # float times: 601.99999995 is 602
        assert h.observed.states("offer-" + A) == ["submitted", "undeliverable"]
        assert h.observed.deliveries[-1].error.startswith("ivr.busy")
        assert (await h.ledger_events("offer-" + A)).count("committed") == 1
        assert h.channel.stats["retries_scheduled"] == 2 and h.pbx.duplicates == 0


@BACKENDS
async def test_no_answer_is_retried_the_next_day_inside_contact_hours(backend, tmp_path, ivr_clock):
    """No answer at 19:00: called again at 09:00 the next day (the hours open), then given up."""
    async with running_ivr(tmp_path, backend, clock=clock_at("19:00")) as h:
        h.pbx.script(B, outcome="no_answer", ring=30)
        await h.send(B)
        await h.wait_final("offer-" + B)
        first, second = (h.clock.epoch + c.originated_at for c in h.pbx.placed(B))
        assert (
            local_epoch("2026-03-02", "19:00") <= first <= local_epoch("2026-03-02", "19:00") + LATE
        )
        opens = local_epoch("2026-03-03", "09:00")
        assert opens <= second <= opens + LATE
        assert h.observed.final() == {"offer-" + B: "undeliverable"}


@BACKENDS
@pytest.mark.parametrize(
    "outcome,result", [("reject", "rejected"), ("unreachable", "unreachable"), ("fail", "failed")]
)
async def test_failure_results_without_retry_are_undeliverable(
    backend, outcome, result, tmp_path, ivr_clock
):
    """Rejected, unreachable and failed calls (no retry configured) end undeliverable at once."""
    async with running_ivr(tmp_path, backend, clock=clock_at()) as h:
        h.pbx.script(C, outcome=outcome)
        await h.send(C)
        await h.wait_final("offer-" + C)
        assert len(h.pbx.placed(C)) == 1
        assert h.observed.states("offer-" + C) == ["submitted", "undeliverable"]
        assert h.observed.deliveries[-1].error.startswith(f"ivr.{result}")
        assert h.channel.stats[result] == 1


@BACKENDS
async def test_a_retry_is_a_new_contact_when_configured(backend, tmp_path, ivr_clock):
    """retry_is_new_contact: the busy contact ends undeliverable and '~r1' is decided again by
    contact control (a second contact in the ledger) and called after the delay."""
    ivr = {"retry": {"busy": {"after": "1m", "max": 1}}, "retry_is_new_contact": True}
    async with running_ivr(tmp_path, backend, clock=clock_at(), ivr=ivr, scheduler=True) as h:
        h.pbx.script(A, outcome="busy")
        await h.send(A)
        await h.wait_final("offer-" + A, "offer-" + A + "~r1")
        assert h.observed.final() == {
            "offer-" + A: "undeliverable",
            "offer-" + A + "~r1": "undeliverable",
        }
        assert "committed" in await h.ledger_events("offer-" + A + "~r1")
        starts = [c.originated_at for c in h.pbx.placed(A)]
        assert len(starts) == 2 and starts[1] - starts[0] >= 60


@BACKENDS
async def test_pacing_never_exceeds_concurrency_or_calls_per_second(backend, tmp_path, ivr_clock):
    """30 calls over two trunks: never more up than each trunk's limit (or 5 in all), and
    originates on a trunk at least 1/calls_per_second apart."""
    trunks = [
        {"name": "t1", "concurrent": 3, "calls_per_second": 4},
        {"name": "t2", "concurrent": 2, "calls_per_second": 2},
    ]
    dial = "PJSIP/{number}@{trunk}" if backend == "ami" else "sofia/gateway/{trunk}/{number}"
    async with running_ivr(
        tmp_path, backend, clock=clock_at(), ivr={"trunk": trunks, "dial": dial}
    ) as h:
        numbers = [f"86138000001{i:02d}" for i in range(30)]
        h.pbx.default = type(h.pbx.default)(ring=1, talk=3)
        await h.send(*numbers)
        await h.wait_final(*(f"offer-{n}" for n in numbers))
        assert h.pbx.max_active <= 5 and h.channel.max_active <= 5
        for name, limit, cps in (("t1", 3, 4), ("t2", 2, 2)):
            calls = sorted(
                (c for c in h.pbx.calls.values() if name in c.dial), key=lambda c: c.originated_at
            )
            assert calls, name
            up = 0
            events = sorted(
                [(c.originated_at, 1) for c in calls] + [(c.ended_at, -1) for c in calls]
            )
            for _t, step in events:
                up += step
                assert up <= limit, name
            gaps = [b.originated_at - a.originated_at for a, b in itertools.pairwise(calls)]
            assert min(gaps) >= 1 / cps - 1e-6, (name, min(gaps))
        assert set(h.observed.final().values()) == {"delivered"} and h.pbx.duplicates == 0


@BACKENDS
async def test_reconnect_mid_campaign_loses_and_doubles_no_call(backend, tmp_path, ivr_clock):
    """The switch drops every connection twice while calls are up: each contact is called
    exactly once and every result is reported."""
    async with running_ivr(
        tmp_path,
        backend,
        clock=clock_at(),
        ivr={"trunk": [{"name": "t", "concurrent": 4, "calls_per_second": 2}]},
    ) as h:
        numbers = [f"86138000002{i:02d}" for i in range(10)]
        h.pbx.default = type(h.pbx.default)(ring=2, digits="1", digit_delay=3, talk=6)
        await h.send(*numbers)

        async def drops() -> None:
            for _ in range(2):
                await trio.sleep(4)
                await h.pbx.drop_connections()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(drops)
            await h.wait_final(*(f"offer-{n}" for n in numbers))
        assert h.pbx.duplicates == 0 and sorted(c.number for c in h.pbx.calls.values()) == numbers
        assert set(h.observed.final().values()) == {"delivered"}
        assert len(h.observed.acceptances) == 10
        assert h.server.logins >= 3  # first login and one after each drop


@BACKENDS
async def test_contact_hours_are_respected(backend, tmp_path, ivr_clock):
    """Queued at 07:30: the first call waits for 09:00; a busy retry due after 20:00 waits for
    the next morning."""
    ivr = {"retry": {"busy": {"after": "12h", "max": 1}}}
    async with running_ivr(tmp_path, backend, clock=clock_at("07:30"), ivr=ivr) as h:
        h.pbx.script(A, outcome="busy")
        await h.send(A)
        await h.wait_final("offer-" + A)
        first, second = (h.clock.epoch + c.originated_at for c in h.pbx.placed(A))
        for at, day in ((first, "2026-03-02"), (second, "2026-03-03")):
            assert local_epoch(day, "09:00") <= at <= local_epoch(day, "09:00") + LATE


@BACKENDS
async def test_power_off_subscriber_deferred_then_called_after_power_on(
    backend, tmp_path, ivr_clock
):
    """Last event power_off: not called, reservation refunded, deferred; called at once after
    the next power_on (as '~p1', decided again by contact control)."""
    async with running_ivr(tmp_path, backend, clock=clock_at(), scheduler=True) as h:
        h.signal(A, EventKind.POWER_OFF)
        h.signal(B, EventKind.POWER_ON)
        await h.send(A, B)
        await h.wait_final("offer-" + B)
        await trio.sleep(600)
        assert h.pbx.placed(A) == [] and h.channel.stats["deferred_presence"] == 1
        assert "refunded" in await h.ledger_events("offer-" + A)
        assert (await h.gateway.outbox.show("offer-" + A))["state"] == "cancelled"
        powered_on = h.clock()
        h.signal(A, EventKind.POWER_ON)
        await h.wait_final("offer-" + A + "~p1")
        (call,) = h.pbx.placed(A)
        assert h.clock.epoch + call.originated_at - powered_on < LATE
        assert h.observed.final()["offer-" + A + "~p1"] == "delivered"


@BACKENDS
async def test_unseen_subscriber_called_when_the_window_ends(backend, tmp_path, ivr_clock):
    """Not seen for longer than presence_unseen: deferred, and called when presence_defer_max
    ends even without a power_on."""
    ivr = {"presence_unseen": "1d", "presence_defer_max": "10m"}
    async with running_ivr(tmp_path, backend, clock=clock_at(), ivr=ivr, scheduler=True) as h:
        h.signal(A, EventKind.LOCATION_UPDATE, at=h.clock() - 3 * 86400)
        await h.send(A)
        await h.wait_final("offer-" + A + "~p1")
        (call,) = h.pbx.placed(A)
        at = h.clock.epoch + call.originated_at
        assert local_epoch("2026-03-02", "10:10") <= at <= local_epoch("2026-03-02", "10:10") + LATE


def test_config_errors_name_the_key():
    """A bad [plugins.ivr] table is refused with the dotted key."""
    with pytest.raises(ConfigError, match=r"plugins\.ivr\.contact_hours"):
        parse_ivr_config({"host": "x", "contact_hours": "20:00-09:00"})
    with pytest.raises(ConfigError, match=r"plugins\.ivr\.retry\.rejected"):
        parse_ivr_config({"host": "x", "retry": {"rejected": {"max": 1}}})
    with pytest.raises(ConfigError, match=r"plugins\.ivr\.trunk\[0\]\.concurent"):
        parse_ivr_config({"host": "x", "trunk": [{"name": "a", "concurent": 3}]})


async def test_callcentre_export_and_import_round_trip(tmp_path, ivr_clock):
    """Queued callcentre contacts exported with a check file (name, records, bytes, MD5); the
    result file brings back delivered (with an acceptance), undeliverable, and gives back the
    contacts never called (refunded, expired); a result check file that lies is refused."""
    import csv
    import hashlib

    from gateway.errors import AdminCommandError
    from plugins.ivr.callout import export_batch, import_results

    out = tmp_path / "cc"
    out.mkdir()
    async with running_ivr(
        tmp_path / "s", "ami", clock=clock_at(), ivr={"callout_dir": str(out)}
    ) as h:
        numbers = [A, B, C, "8613800000004"]
        for n in numbers:
            await h.send(n, campaign="tm", channel="callcentre")
        config = h.channel.config
        summary = await export_batch(h.gateway, config, "b1")
        assert summary["records"] == 4
        data = (out / "b1.csv").read_bytes()
        check = (out / "b1.chk").read_text().splitlines()
        assert check == [
            "name,records,bytes,md5",
            f"b1.csv,4,{len(data)},{hashlib.md5(data).hexdigest()}",
        ]
        rows = list(csv.DictReader(data.decode().splitlines()))
        assert [r["msisdn"] for r in rows] == numbers and rows[0]["prompt"] == "press 1"
        assert {h.observed.states(f"tm-{n}")[0] for n in numbers} == {"submitted"}
        with pytest.raises(AdminCommandError, match="exported already"):
            await export_batch(h.gateway, config, "b1")

        result = out / "b1.result.csv"
        result.write_text(
            "contact_id,msisdn,result,key,duration\r\n"
            f"tm-{A},+86 138 0000 0001,answered,1,35\r\n"
            f"tm-{B},{B},busy,,0\r\n"
            f"tm-{C},{C},not_called,,\r\n"
        )
        (out / "b1.result.chk").write_text("name,records,bytes,md5\nb1.result.csv,3,1,x\n")
        with pytest.raises(AdminCommandError, match="does not match"):
            await import_results(h.gateway, config, "b1")
        (out / "b1.result.chk").unlink()
        summary = await import_results(h.gateway, config, "b1")
        assert (summary["delivered"], summary["undeliverable"], summary["accepted"]) == (1, 1, 1)
        assert sorted(summary["returned"]) == [f"tm-{C}", "tm-8613800000004"]
        final = h.observed.final()
        assert final[f"tm-{A}"] == "delivered" and final[f"tm-{B}"] == "undeliverable"
        assert final[f"tm-{C}"] == "expired" == final["tm-8613800000004"]
        (acc,) = h.observed.acceptances
        assert (acc.contact_id, acc.channel, acc.answer) == (f"tm-{A}", "callcentre", "1")
        assert "refunded" in await h.ledger_events(f"tm-{C}")
        assert h.pbx.calls == {}  # a call-centre batch places no call through the switch
