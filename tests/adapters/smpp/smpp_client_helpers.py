"""A recording SmppHandler and helpers to run binds against the simulator (adapter-level tests)."""

from __future__ import annotations

import contextlib

import attrs
import trio

from adapters.smpp.messages import encode_text
from adapters.smpp.simulator import SimulatorConfig, SmscSimulator
from adapters.smpp.transport import BindSettings, BindState, SmscAccount, SubmitJob, run_bind


@attrs.define
class RecordingHandler:
    results: list = attrs.field(factory=list)
    events: list = attrs.field(factory=list)
    delivered: list = attrs.field(factory=list)
    before: list = attrs.field(factory=list)

    async def before_send(self, jobs):
        self.before.extend(j.key for j in jobs)

    def on_result(self, job):
        self.results.append(job)
        job.settle()

    async def on_deliver(self, event, bind):
        self.delivered.append(event)
        return 0

    def on_event(self, event, **fields):
        self.events.append((event, fields))

    def names(self):
        return [e for e, _ in self.events]


def job(i: int, text: str | None = None) -> SubmitJob:
    fields = dict(source_addr="10086", destination_addr=f"8613800{i:06d}", registered_delivery=0)
    return SubmitJob(
        key=str(i), segments=[{**fields, **encode_text(text or f"m{i}")[0].pdu_fields()}]
    )


async def wait_for(predicate, limit: float = 10.0) -> None:
    with trio.fail_after(limit):
        while not predicate():  # noqa: ASYNC110
            await trio.sleep(0.005)


@contextlib.asynccontextmanager
async def simulator_and_account(
    sim_config: SimulatorConfig | None = None,
    *,
    binds: int = 1,
    rate: float = 0.0,
    modes=("transceiver",),
    ssl_server=None,
    **settings,
):
    sim = SmscSimulator(sim_config or SimulatorConfig(receipt_delay=None), ssl_context=ssl_server)
    handler = RecordingHandler()
    async with trio.open_nursery() as nursery:
        port = await nursery.start(sim.serve)
        defaults = dict(
            host="127.0.0.1",
            port=port,
            system_id="gateway",
            password="secret",
            reconnect_min=0.02,
            reconnect_max=0.1,
        )
        defaults.update(settings)
        account = SmscAccount(
            "acct", BindSettings(**defaults), handler, rate=rate, max_pending=100_000
        )
        scope = trio.CancelScope()

        async def binds_task(task_status=trio.TASK_STATUS_IGNORED):
            with scope:
                async with trio.open_nursery() as inner:
                    for i in range(binds):
                        for mode in modes:
                            state = BindState(f"b{i}{mode[0]}", mode)
                            account.binds.append(state)
                            await inner.start(run_bind, account, state)
                    task_status.started()

        await nursery.start(binds_task)
        yield sim, account, handler, scope
        nursery.cancel_scope.cancel()
