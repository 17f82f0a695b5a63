"""A Trio client for the FreeSWITCH event socket: auth, api/bgapi, events, reconnect.

The thin transport over :mod:`adapters.esl.protocol`. :meth:`EslClient.run` connects,
authenticates, subscribes to the call events and, when the connection drops, reconnects with
exponential backoff. :meth:`EslClient.originate` places one call (``bgapi originate`` with
``origination_uuid`` = our call id) and returns how it ended.

Across a reconnect no call is lost or doubled: each call still pending is checked with
``api uuid_exists``; a live one keeps being followed; one whose ``bgapi`` was never
acknowledged and that FreeSWITCH does not know is sent again; an acknowledged one that ended
while we were away ends with result ``lost``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import attrs
import trio

from adapters.esl.protocol import (
    CallEnd,
    EslCalls,
    EslError,
    EslMessage,
    EslParser,
    command,
    originate_command,
)

EVENTS = "CHANNEL_ANSWER CHANNEL_HANGUP_COMPLETE DTMF BACKGROUND_JOB"


class EslLoginError(EslError):
    """FreeSWITCH refused the event-socket password (event_socket.conf.xml ``password``).

    Not retried: fix ``password`` in the gateway config."""


class EslConnectionLost(EslError):
    """The connection closed while a command waited for its reply."""


@attrs.define
class _Pending:
    line: str
    done: trio.Event = attrs.field(factory=trio.Event)
    acked: bool = False
    end: CallEnd | None = None


@attrs.define(eq=False)
class EslClient:
    host: str
    port: int
    password: str
    reconnect_initial: float = 0.5
    reconnect_max: float = 30.0
    clock: Callable[[], float] = time.time
    stats: dict[str, int] = attrs.field(
        factory=lambda: dict.fromkeys(("connects", "originates", "resent", "lost"), 0)
    )
    _stream: trio.SocketStream | None = None
    _send_lock: trio.Lock = attrs.field(factory=trio.Lock)
    #: Replies come in command order (the event socket has no correlation id for them).
    _replies: list[tuple[trio.Event, list[EslMessage]]] = attrs.field(factory=list)
    _auth: trio.Event = attrs.field(factory=trio.Event)
    _connected: trio.Event = attrs.field(factory=trio.Event)
    _calls: EslCalls = attrs.field(factory=EslCalls)
    _pending: dict[str, _Pending] = attrs.field(factory=dict)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect, authenticate, subscribe, follow events; reconnect with backoff.

        ``task_status.started()`` after the first successful auth; a refused password raises
        :class:`EslLoginError`."""
        delay = self.reconnect_initial
        started = False
        while True:
            try:
                stream = await trio.open_tcp_stream(self.host, self.port)
            except OSError:
                await trio.sleep(delay)
                delay = min(delay * 2, self.reconnect_max)
                continue
            refused: EslLoginError | None = None
            try:
                async with stream, trio.open_nursery() as nursery:
                    try:
                        self._stream = stream
                        self._auth = trio.Event()
                        nursery.start_soon(self._read, stream, nursery.cancel_scope)
                        await self._auth.wait()
                        reply = await self._command(command(f"auth {self.password}"))
                        if not (reply.get("Reply-Text") or "").startswith("+OK"):
                            raise EslLoginError(
                                f"event-socket auth refused: {reply.get('Reply-Text')}"
                            )
                        await self._command(command(f"event plain {EVENTS}"))
                        self.stats["connects"] += 1
                        delay = self.reconnect_initial
                        await self._after_connect()
                        self._connected.set()
                        if not started:
                            started = True
                            task_status.started()
                    except EslLoginError as exc:
                        refused = exc
                        nursery.cancel_scope.cancel()
                    except (OSError, trio.BrokenResourceError, EslConnectionLost):
                        nursery.cancel_scope.cancel()
            except (OSError, trio.BrokenResourceError):
                pass
            finally:
                self._stream = None
                self._connected = trio.Event()
                for event, _messages in self._replies:
                    event.set()
                self._replies.clear()
            if refused is not None:
                raise refused
            await trio.sleep(delay)
            delay = min(delay * 2, self.reconnect_max)

    async def _read(self, stream: trio.SocketStream, scope: trio.CancelScope) -> None:
        parser = EslParser()
        try:
            while True:
                data = await stream.receive_some(65536)
                parser.receive_data(data)
                while (message := parser.next_message()) is not None:
                    self._dispatch(message)
                if not data:
                    break
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError, EslError):
            pass
        scope.cancel()

    def _dispatch(self, message: EslMessage) -> None:
        kind = message.content_type
        if kind == "auth/request":
            self._auth.set()
        elif kind in ("command/reply", "api/response"):
            if self._replies:
                event, messages = self._replies.pop(0)
                messages.append(message)
                event.set()
        elif kind == "text/event-plain":
            esl_event = message.event()
            if esl_event is None:
                return
            end = self._calls.feed(esl_event, self.clock())
            if end is not None:
                pending = self._pending.get(end.call_id)
                if pending is not None:
                    pending.end = end
                    pending.done.set()

    async def _command(self, data: bytes) -> EslMessage:
        stream = self._stream
        if stream is None:
            raise EslConnectionLost("not connected")
        event = trio.Event()
        messages: list[EslMessage] = []
        async with self._send_lock:  # the reply order is the send order
            self._replies.append((event, messages))
            await stream.send_all(data)
        await event.wait()
        if not messages:
            raise EslConnectionLost("connection lost waiting for a reply")
        return messages[0]

    async def api(self, line: str) -> str:
        """A blocking ``api`` command; its response body as text."""
        reply = await self._command(command(f"api {line}"))
        return reply.body.decode("utf-8", "replace").strip()

    async def _after_connect(self) -> None:
        for call_id, pending in list(self._pending.items()):
            if pending.done.is_set():
                continue
            if (await self.api(f"uuid_exists {call_id}")) == "true":
                continue
            if not pending.acked:
                self.stats["resent"] += 1
                await self._send_originate(call_id, pending)
            else:
                self.stats["lost"] += 1
                self._calls.forget(call_id)
                now = self.clock()
                pending.end = CallEnd(call_id=call_id, result="lost", started_at=now, ended_at=now)
                pending.done.set()

    async def _send_originate(self, call_id: str, pending: _Pending) -> None:
        try:
            reply = await self._command(command(f"bgapi {pending.line}", {"Job-UUID": call_id}))
        except (EslConnectionLost, OSError, trio.BrokenResourceError):
            return
        if (reply.get("Reply-Text") or "").startswith("+OK"):
            pending.acked = True
        else:
            self._calls.forget(call_id)
            now = self.clock()
            pending.end = CallEnd(
                call_id=call_id, result="failed", started_at=now, ended_at=now,
                cause=reply.get("Reply-Text"),
            )  # fmt: skip
            pending.done.set()

    async def originate(
        self,
        call_id: str,
        dial: str,
        target: str = "&park()",
        *,
        variables: Mapping[str, str] | None = None,
        timeout: float = 30.0,  # noqa: ASYNC109 (the switch's ring timeout, sent with the call)
    ) -> CallEnd:
        """Place one call to ``dial`` (``sofia/gateway/trunk/8613...``) into ``target``
        (``&park()``, or ``offer XML ivr`` for extension ``offer`` of dialplan context
        ``ivr``) and wait until it ends."""
        pending = _Pending(
            line=originate_command(call_id, dial, target, variables, timeout=timeout)
        )
        self._pending[call_id] = pending
        self._calls.start(call_id, self.clock())
        try:
            if self._connected.is_set():
                self.stats["originates"] += 1
                await self._send_originate(call_id, pending)
            await pending.done.wait()
            assert pending.end is not None
            return pending.end
        finally:
            self._pending.pop(call_id, None)
            self._calls.forget(call_id)
