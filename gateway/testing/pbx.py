"""A scripted telephone switch behind the fake AMI and event-socket servers.

:class:`FakePbx` places the calls that :mod:`gateway.testing.ami` and
:mod:`gateway.testing.esl` receive, as tasks in the server's nursery, so a call goes on when
the client's connection drops (as on a real switch). What each number does is scripted with
:class:`CallScript` (answer and press keys, busy, no answer, reject, unreachable, fail); the
switch records every call it placed, how many were up at once, and when each was originated,
for tests and the IVR benchmark.

Timers are ``trio.sleep``: under ``autojump_clock`` a ring of 20 s takes no real time.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import attrs
import trio

#: Q.850 cause value and FreeSWITCH cause name of each scripted outcome.
CAUSES = {
    "answer": (16, "NORMAL_CLEARING"),
    "busy": (17, "USER_BUSY"),
    "no_answer": (19, "NO_ANSWER"),
    "reject": (21, "CALL_REJECTED"),
    "unreachable": (20, "SUBSCRIBER_ABSENT"),
    "fail": (38, "NETWORK_OUT_OF_ORDER"),
}


@attrs.frozen(kw_only=True)
class CallScript:
    """What the called number does: ``outcome`` after ``ring`` seconds; when it answers, it
    presses ``digits`` (one every ``digit_delay`` s) and hangs up after ``talk`` s."""

    outcome: str = "answer"
    ring: float = 1.0
    digits: str = ""
    digit_delay: float = 1.0
    talk: float = 3.0

    def __attrs_post_init__(self) -> None:
        if self.outcome not in CAUSES:
            raise ValueError(f"unknown outcome {self.outcome!r}; one of {sorted(CAUSES)}")


@attrs.define(eq=False)
class FakeCall:
    call_id: str
    number: str
    dial: str
    variables: dict[str, str]
    tag: str  # the AMI ActionID of the Originate (copied into OriginateResponse)
    originated_at: float
    answered_at: float | None = None
    ended_at: float | None = None
    outcome: str | None = None


#: A session's sink for switch events: (kind, call, fields).
Listener = Callable[[str, FakeCall, dict[str, str]], None]


@attrs.define(eq=False)
class FakePbx:
    """The switch shared by the fake servers' sessions."""

    scripts: dict[str, CallScript] = attrs.field(factory=dict)
    default: CallScript = attrs.field(factory=CallScript)
    calls: dict[str, FakeCall] = attrs.field(factory=dict)
    duplicates: int = 0  # originates of a call id already placed
    active: int = 0
    max_active: int = 0
    originate_times: list[float] = attrs.field(factory=list)
    listeners: set[Listener] = attrs.field(factory=set)
    sessions: set[trio.abc.Stream] = attrs.field(factory=set)
    nursery: trio.Nursery | None = None
    hold_answered: bool = False  # True: answered calls stay up until released (benchmark)
    _release: trio.Event = attrs.field(factory=trio.Event)

    def script(self, number: str, **fields: object) -> None:
        """Script what ``number`` does (see :class:`CallScript`)."""
        self.scripts[number] = CallScript(**fields)  # type: ignore[arg-type]

    def live(self) -> list[FakeCall]:
        return [c for c in self.calls.values() if c.ended_at is None]

    def placed(self, number: str) -> list[FakeCall]:
        return [c for c in self.calls.values() if c.number == number]

    def release_all(self) -> None:
        """End every held call (``hold_answered``)."""
        self._release.set()

    def originate(self, call_id: str, dial: str, variables: dict[str, str], tag: str = "") -> bool:
        """Place a call; False (and counted) when this call id was placed before."""
        if call_id in self.calls:
            self.duplicates += 1
            return False
        digits = max(re.findall(r"\d+", dial), key=len, default="")
        call = FakeCall(
            call_id=call_id,
            number=digits,
            dial=dial,
            variables=variables,
            tag=tag,
            originated_at=trio.current_time(),
        )
        self.calls[call_id] = call
        self.originate_times.append(call.originated_at)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        assert self.nursery is not None, "the switch runs inside a fake server"
        self.nursery.start_soon(self._run, call)
        return True

    def _emit(self, kind: str, call: FakeCall, **fields: str) -> None:
        for listener in list(self.listeners):
            listener(kind, call, fields)

    async def _run(self, call: FakeCall) -> None:
        script = self.scripts.get(call.number, self.default)
        try:
            await trio.sleep(script.ring)
            if script.outcome != "answer":
                call.outcome = script.outcome
                return
            call.answered_at = trio.current_time()
            self._emit("answer", call)
            for digit in script.digits:
                await trio.sleep(script.digit_delay)
                self._emit("dtmf", call, digit=digit)
            if self.hold_answered:
                await self._release.wait()
            else:
                await trio.sleep(script.talk)
            call.outcome = "answer"
        finally:
            call.ended_at = trio.current_time()
            self.active -= 1
            q850, name = CAUSES[call.outcome or "fail"]
            self._emit("hangup", call, outcome=call.outcome or "fail", q850=str(q850), name=name)

    async def drop_connections(self) -> None:
        """Close every client connection now (the calls go on)."""
        for stream in list(self.sessions):
            with trio.move_on_after(1):
                await stream.aclose()
        self.sessions.clear()
