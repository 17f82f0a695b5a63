"""A Trio AMI client: login, actions by ActionID, asynchronous Originate, reconnect.

The thin transport over :mod:`adapters.ami.protocol`. :meth:`AmiClient.run` connects, logs in
(MD5 challenge or plain), reads messages and, when the connection drops, reconnects with
exponential backoff. :meth:`AmiClient.originate` places one call and returns how it ended.

No call is lost or doubled across a reconnect: every Originate carries ``ChannelId`` = our call
id. After a reconnect the client lists the live channels (``Action: Status``); a call still
up keeps being followed; a call whose Originate was never acknowledged and that Asterisk does
not know is sent again (it never reached Asterisk); an acknowledged call that ended while we
were away ends with result ``lost`` (it was placed once; its result is not known).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Mapping

import attrs
import trio

from adapters.ami.protocol import (
    AmiCalls,
    AmiError,
    AmiMessage,
    AmiParser,
    CallEnd,
    action,
    md5_key,
)


class AmiLoginError(AmiError):
    """Asterisk refused the login (wrong username or secret, or the user lacks permissions).

    Not retried: fix ``username``/``secret`` in the manager.conf user and the gateway config."""


class AmiConnectionLost(AmiError):
    """The connection closed while an action waited for its response."""


@attrs.define
class _Pending:
    fields: dict[str, str]
    done: trio.Event = attrs.field(factory=trio.Event)
    acked: bool = False
    end: CallEnd | None = None


@attrs.define(eq=False)
class AmiClient:
    host: str
    port: int
    username: str
    secret: str
    auth: str = "md5"  # or "plain"
    reconnect_initial: float = 0.5
    reconnect_max: float = 30.0
    clock: Callable[[], float] = time.time
    #: Counters: connects, reconnects, originates, resent (after a reconnect), lost.
    stats: dict[str, int] = attrs.field(
        factory=lambda: dict.fromkeys(("connects", "originates", "resent", "lost"), 0)
    )
    _stream: trio.SocketStream | None = None
    _send_lock: trio.Lock = attrs.field(factory=trio.Lock)
    _ids: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1))
    _waiting: dict[str, tuple[trio.Event, list[AmiMessage]]] = attrs.field(factory=dict)
    _connected: trio.Event = attrs.field(factory=trio.Event)
    _calls: AmiCalls = attrs.field(factory=AmiCalls)
    _pending: dict[str, _Pending] = attrs.field(factory=dict)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect, log in, follow events; reconnect with backoff when the connection drops.

        ``task_status.started()`` after the first successful login. A refused login raises
        :class:`AmiLoginError` (no retry); a refused TCP connect is retried with backoff."""
        delay = self.reconnect_initial
        started = False
        while True:
            try:
                stream = await trio.open_tcp_stream(self.host, self.port)
            except OSError:
                await trio.sleep(delay)
                delay = min(delay * 2, self.reconnect_max)
                continue
            refused: AmiLoginError | None = None
            try:
                async with stream, trio.open_nursery() as nursery:
                    try:
                        self._stream = stream
                        parser = AmiParser()
                        nursery.start_soon(self._read, stream, parser, nursery.cancel_scope)
                        await self._login()
                        self.stats["connects"] += 1
                        delay = self.reconnect_initial
                        await self._after_connect()
                        self._connected.set()
                        if not started:
                            started = True
                            task_status.started()
                    except AmiLoginError as exc:
                        refused = exc
                        nursery.cancel_scope.cancel()
                    except (OSError, trio.BrokenResourceError, AmiConnectionLost):
                        nursery.cancel_scope.cancel()
            except (OSError, trio.BrokenResourceError):
                pass
            finally:
                self._stream = None
                self._connected = trio.Event()
                for event, _messages in self._waiting.values():
                    event.set()  # their waiters see no response: connection lost
                self._waiting.clear()
            if refused is not None:
                raise refused
            await trio.sleep(delay)
            delay = min(delay * 2, self.reconnect_max)

    async def _read(
        self, stream: trio.SocketStream, parser: AmiParser, scope: trio.CancelScope
    ) -> None:
        try:
            while True:
                data = await stream.receive_some(65536)
                parser.receive_data(data)
                while (message := parser.next_message()) is not None:
                    self._dispatch(message)
                if not data:
                    break
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError, AmiError):
            pass
        scope.cancel()  # the connection is gone: run() reconnects

    def _dispatch(self, message: AmiMessage) -> None:
        action_id = message.action_id
        if action_id is not None and action_id in self._waiting:
            event, messages = self._waiting[action_id]
            messages.append(message)
            # A list action ends with an event named "...Complete"; others with the response.
            listing = (messages[0].get("EventList") or "").lower() == "start"
            name = message.event or ""
            if not listing or name.endswith("Complete"):
                event.set()
            if message.event is None:
                return
        end = self._calls.feed(message, self.clock())
        if end is not None:
            pending = self._pending.get(end.call_id)
            if pending is not None:
                pending.end = end
                pending.done.set()

    async def _send(self, data: bytes) -> None:
        stream = self._stream
        if stream is None:
            raise AmiConnectionLost("not connected")
        async with self._send_lock:
            await stream.send_all(data)

    async def _action(self, name: str, fields: Mapping[str, str] | None = None) -> list[AmiMessage]:
        """Send an action; its response (and, for a list, its events) by ActionID."""
        action_id = f"gw-{next(self._ids)}"
        event = trio.Event()
        messages: list[AmiMessage] = []
        self._waiting[action_id] = (event, messages)
        try:
            await self._send(action(name, action_id, fields))
            await event.wait()
        finally:
            self._waiting.pop(action_id, None)
        if not messages:
            raise AmiConnectionLost(f"connection lost waiting for the response to {name}")
        return messages

    async def _login(self) -> None:
        if self.auth == "md5":
            reply = (await self._action("Challenge", {"AuthType": "MD5"}))[0]
            challenge = reply.get("Challenge")
            if (reply.response or "").lower() != "success" or not challenge:
                raise AmiLoginError(f"challenge refused: {reply.get('Message')}")
            fields = {"Username": self.username, "AuthType": "MD5"}
            fields["Key"] = md5_key(challenge, self.secret)
        else:
            fields = {"Username": self.username, "Secret": self.secret}
        fields["Events"] = "call,dtmf,user,dialplan"
        reply = (await self._action("Login", fields))[0]
        if (reply.response or "").lower() != "success":
            raise AmiLoginError(f"login refused for {self.username!r}: {reply.get('Message')}")

    async def _after_connect(self) -> None:
        """Settle the calls that were in flight when the previous connection dropped."""
        if not self._pending:
            return
        live = {
            m.get("Uniqueid")
            for m in await self._action("Status")
            if m.event == "Status" and m.get("Uniqueid")
        }
        for call_id, pending in list(self._pending.items()):
            if call_id in live or pending.done.is_set():
                continue
            if not pending.acked:  # never reached Asterisk: send it again, same ChannelId
                self.stats["resent"] += 1
                await self._send_originate(call_id, pending)
            else:  # placed once, ended while we were away: its result is gone
                self.stats["lost"] += 1
                self._calls.forget(call_id)
                now = self.clock()
                pending.end = CallEnd(call_id=call_id, result="lost", started_at=now, ended_at=now)
                pending.done.set()

    async def _send_originate(self, call_id: str, pending: _Pending) -> None:
        try:
            reply = (await self._action("Originate", pending.fields))[0]
        except (AmiConnectionLost, OSError, trio.BrokenResourceError):
            return  # settled after the reconnect
        if (reply.response or "").lower() == "success":
            pending.acked = True
        else:
            self._calls.forget(call_id)
            now = self.clock()
            pending.end = CallEnd(
                call_id=call_id, result="failed", started_at=now, ended_at=now,
                cause=reply.get("Message"),
            )  # fmt: skip
            pending.done.set()

    async def originate(
        self,
        call_id: str,
        channel: str,
        *,
        context: str | None = None,
        exten: str = "s",
        priority: str = "1",
        application: str | None = None,
        data: str = "",
        variables: Mapping[str, str] | None = None,
        timeout: float = 30.0,  # noqa: ASYNC109 (the switch's ring timeout, sent with the call)
        caller_id: str | None = None,
    ) -> CallEnd:
        """Place one call (``Async: true``) into a dialplan ``context`` or an ``application``
        and wait until it ends. Waits for a connection first."""
        fields = {"Channel": channel, "ChannelId": call_id, "Async": "true"}
        fields["Timeout"] = str(math.ceil(timeout * 1000))
        if application is not None:
            fields.update(Application=application, Data=data)
        else:
            fields.update(Context=context or "default", Exten=exten, Priority=priority)
        if caller_id:
            fields["CallerID"] = caller_id
        if variables:
            fields["Variable"] = ",".join(f"{k}={v}" for k, v in variables.items())
        pending = _Pending(fields=fields)
        self._pending[call_id] = pending
        self._calls.start(call_id, self.clock())
        try:
            # Not connected: the reconnect sends it (run() settles every pending call first).
            if self._connected.is_set():
                self.stats["originates"] += 1
                await self._send_originate(call_id, pending)
            await pending.done.wait()
            assert pending.end is not None
            return pending.end
        finally:
            self._pending.pop(call_id, None)
            self._calls.forget(call_id)
