"""A fake Asterisk Manager Interface server over TCP, for IVR channel tests.

It speaks AMI as Asterisk 16+ does (banner, ``Challenge``/``Login`` with MD5 or plain secret,
``Originate`` with ``Async`` and ``ChannelId``, ``Status`` as an event list, ``Ping``,
``Logoff``) and sends the call events ``Newstate``, ``OriginateResponse``, ``DTMFBegin``/
``DTMFEnd`` and ``Hangup`` with a Q.850 ``Cause`` for the calls a :class:`FakePbx` places.

Its framing is written here, independently of :mod:`adapters.ami`, so that the gateway's
codec is checked against a second implementation of the protocol.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import secrets
from collections.abc import AsyncIterator

import attrs
import trio

from gateway.testing.pbx import FakeCall, FakePbx

BANNER = b"Asterisk Call Manager/5.0.1\r\n"
REASONS = {"busy": "5", "no_answer": "3", "reject": "1", "unreachable": "8", "fail": "0"}


def _message(*pairs: tuple[str, str]) -> bytes:
    return b"".join(f"{k}: {v}\r\n".encode() for k, v in pairs) + b"\r\n"


@attrs.define(eq=False)
class FakeAmiServer:
    pbx: FakePbx = attrs.field(factory=FakePbx)
    username: str = "gateway"
    secret: str = "secret"
    logins: int = 0
    login_failures: int = 0

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        async with trio.open_nursery() as nursery:
            self.pbx.nursery = nursery
            listeners = await nursery.start(
                functools.partial(trio.serve_tcp, self._session, port, host=host)
            )
            task_status.started(listeners[0].socket.getsockname()[1])

    async def _session(self, stream: trio.SocketStream) -> None:
        self.pbx.sessions.add(stream)
        outgoing: trio.MemorySendChannel[bytes]
        outgoing, pending = trio.open_memory_channel[bytes](10_000)
        challenge = ""
        authed = False

        def on_event(kind: str, call: FakeCall, fields: dict[str, str]) -> None:
            with contextlib.suppress(trio.WouldBlock, trio.ClosedResourceError):
                for data in self._events(kind, call, fields):
                    outgoing.send_nowait(data)

        async def writer() -> None:
            async for data in pending:
                await stream.send_all(data)

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(writer)
                await outgoing.send(BANNER)
                buffer = b""
                while True:
                    data = await stream.receive_some(65536)
                    if not data:
                        break
                    buffer += data
                    while b"\r\n\r\n" in buffer:
                        block, buffer = buffer.split(b"\r\n\r\n", 1)
                        fields: dict[str, str] = {}
                        for line in block.decode().split("\r\n"):
                            key, _, value = line.partition(":")
                            fields.setdefault(key.strip().lower(), value.strip())
                        name = fields.get("action", "").lower()
                        aid = ("ActionID", fields.get("actionid", ""))
                        if name == "challenge":
                            challenge = secrets.token_hex(8)
                            await outgoing.send(
                                _message(("Response", "Success"), aid, ("Challenge", challenge))
                            )
                        elif name == "login":
                            if fields.get("authtype", "").lower() == "md5":
                                key = hashlib.md5((challenge + self.secret).encode()).hexdigest()
                                ok = bool(challenge) and fields.get("key") == key
                            else:
                                ok = fields.get("secret") == self.secret
                            ok = ok and fields.get("username") == self.username
                            if ok:
                                authed = True
                                self.logins += 1
                                self.pbx.listeners.add(on_event)
                                await outgoing.send(
                                    _message(
                                        ("Response", "Success"),
                                        aid,
                                        ("Message", "Authentication accepted"),
                                    )
                                )
                            else:
                                self.login_failures += 1
                                await outgoing.send(
                                    _message(
                                        ("Response", "Error"),
                                        aid,
                                        ("Message", "Authentication failed"),
                                    )
                                )
                        elif not authed:
                            await outgoing.send(
                                _message(
                                    ("Response", "Error"), aid, ("Message", "Permission denied")
                                )
                            )
                        elif name == "originate":
                            variables = dict(
                                v.split("=", 1)
                                for v in fields.get("variable", "").split(",")
                                if "=" in v
                            )
                            call_id = fields.get("channelid", "")
                            await outgoing.send(
                                _message(
                                    ("Response", "Success"),
                                    aid,
                                    ("Message", "Originate successfully queued"),
                                )
                            )
                            self.pbx.originate(
                                call_id, fields.get("channel", ""), variables, aid[1]
                            )
                        elif name == "status":
                            out = [
                                _message(
                                    ("Response", "Success"),
                                    aid,
                                    ("EventList", "start"),
                                    ("Message", "Channel status will follow"),
                                )
                            ]
                            for call in self.pbx.live():
                                out.append(
                                    _message(
                                        ("Event", "Status"),
                                        aid,
                                        ("Channel", call.dial),
                                        ("Uniqueid", call.call_id),
                                    )
                                )
                            out.append(
                                _message(
                                    ("Event", "StatusComplete"), aid, ("EventList", "Complete")
                                )
                            )
                            await outgoing.send(b"".join(out))
                        elif name == "ping":
                            await outgoing.send(
                                _message(("Response", "Success"), aid, ("Ping", "Pong"))
                            )
                        elif name == "logoff":
                            await outgoing.send(_message(("Response", "Goodbye"), aid))
                            break
                        else:
                            await outgoing.send(
                                _message(
                                    ("Response", "Error"),
                                    aid,
                                    ("Message", "Invalid/unknown command"),
                                )
                            )
                    else:
                        continue
                    break
                nursery.cancel_scope.cancel()
        except* (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client went away, or drop_connections closed it
        finally:
            self.pbx.listeners.discard(on_event)
            self.pbx.sessions.discard(stream)
            with contextlib.suppress(Exception):
                await stream.aclose()

    @staticmethod
    def _events(kind: str, call: FakeCall, fields: dict[str, str]) -> list[bytes]:
        uid = ("Uniqueid", call.call_id)
        chan = ("Channel", call.dial)
        if kind == "answer":
            return [
                _message(("Event", "Newstate"), chan, uid, ("ChannelState", "6"), ("ChannelStateDesc", "Up")),
                _message(("Event", "OriginateResponse"), ("ActionID", call.tag), ("Response", "Success"),
                         chan, uid, ("Reason", "4")),
            ]  # fmt: skip
        if kind == "dtmf":
            digit = ("Digit", fields["digit"])
            return [
                _message(("Event", "DTMFBegin"), chan, uid, digit, ("Direction", "Received")),
                _message(("Event", "DTMFEnd"), chan, uid, digit, ("DurationMs", "120"), ("Direction", "Received")),
            ]  # fmt: skip
        out = [
            _message(
                ("Event", "Hangup"),
                chan,
                uid,
                ("Cause", fields["q850"]),
                ("Cause-txt", fields["name"]),
            )
        ]
        if fields["outcome"] != "answer":
            out.append(
                _message(("Event", "OriginateResponse"), ("ActionID", call.tag), ("Response", "Failure"),
                         chan, uid, ("Reason", REASONS[fields["outcome"]]))
            )  # fmt: skip
        return out


@contextlib.asynccontextmanager
async def open_fake_ami(
    pbx: FakePbx | None = None, **fields: str
) -> AsyncIterator[tuple[FakeAmiServer, int]]:
    """A fake AMI server on 127.0.0.1 port 0: ``(server, port)``; stopped on exit."""
    server = FakeAmiServer(pbx=pbx or FakePbx(), **fields)  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve)
        try:
            yield server, port
        finally:
            nursery.cancel_scope.cancel()
