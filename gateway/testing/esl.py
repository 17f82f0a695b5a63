"""A fake FreeSWITCH event socket (inbound mode) over TCP, for IVR channel tests.

It speaks the event socket as FreeSWITCH does: ``auth/request`` on connect, ``auth``,
``event plain ...``, ``bgapi originate {origination_uuid=...}DIAL TARGET`` with a
``Job-UUID`` header, ``api uuid_exists``, ``exit``; and sends ``text/event-plain`` events
``CHANNEL_ANSWER``, ``DTMF``, ``CHANNEL_HANGUP_COMPLETE`` (``Hangup-Cause``) and
``BACKGROUND_JOB`` (``+OK uuid`` or ``-ERR CAUSE``) for the calls a :class:`FakePbx` places.

Its framing is written here, independently of :mod:`adapters.esl`, so that the gateway's
codec is checked against a second implementation of the protocol.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import AsyncIterator
from urllib.parse import quote

import attrs
import trio

from gateway.testing.pbx import FakeCall, FakePbx


def _reply(*pairs: tuple[str, str], body: bytes = b"") -> bytes:
    head = "".join(f"{k}: {v}\n" for k, v in pairs)
    if body:
        head += f"Content-Length: {len(body)}\n"
    return head.encode() + b"\n" + body


def _event(name: str, call: FakeCall, extra: dict[str, str], body: str = "") -> bytes:
    fields = {"Event-Name": name, "Unique-ID": call.call_id, "Channel-Name": call.dial, **extra}
    if body:
        fields["Content-Length"] = str(len(body.encode()))
    text = "".join(f"{k}: {quote(v)}\n" for k, v in fields.items()) + "\n" + body
    return _reply(("Content-Type", "text/event-plain"), body=text.encode())


@attrs.define(eq=False)
class FakeEslServer:
    pbx: FakePbx = attrs.field(factory=FakePbx)
    password: str = "ClueCon"
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
        outgoing, pending = trio.open_memory_channel[bytes](10_000)
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
                await outgoing.send(_reply(("Content-Type", "auth/request")))
                buffer = b""
                done = False
                while not done:
                    data = await stream.receive_some(65536)
                    if not data:
                        break
                    buffer += data
                    while b"\n\n" in buffer and not done:
                        block, buffer = buffer.split(b"\n\n", 1)
                        lines = block.decode().split("\n")
                        line = lines[0].strip()
                        headers = dict(
                            (k.strip().lower(), v.strip())
                            for k, _, v in (h.partition(":") for h in lines[1:])
                        )
                        if line.startswith("auth "):
                            if line[5:] == self.password:
                                authed = True
                                self.logins += 1
                                await outgoing.send(
                                    _reply(
                                        ("Content-Type", "command/reply"),
                                        ("Reply-Text", "+OK accepted"),
                                    )
                                )
                            else:
                                self.login_failures += 1
                                await outgoing.send(
                                    _reply(
                                        ("Content-Type", "command/reply"),
                                        ("Reply-Text", "-ERR invalid"),
                                    )
                                )
                                done = True
                        elif not authed:
                            await outgoing.send(
                                _reply(
                                    ("Content-Type", "command/reply"),
                                    ("Reply-Text", "-ERR invalid"),
                                )
                            )
                        elif line.startswith("event plain"):
                            self.pbx.listeners.add(on_event)
                            await outgoing.send(
                                _reply(
                                    ("Content-Type", "command/reply"),
                                    ("Reply-Text", "+OK event listener enabled plain"),
                                )
                            )
                        elif line.startswith("bgapi originate "):
                            match = re.match(r"bgapi originate \{(.*?)(?<!\\)\}(\S+) (.+)$", line)
                            if match is None:
                                await outgoing.send(
                                    _reply(
                                        ("Content-Type", "command/reply"),
                                        ("Reply-Text", "-ERR bad originate"),
                                    )
                                )
                                continue
                            pairs = re.split(r"(?<!\\),", match.group(1))
                            variables = {
                                k: v.replace("\\,", ",").removeprefix("'").removesuffix("'")
                                for k, _, v in (p.partition("=") for p in pairs)
                            }
                            job = headers.get("job-uuid", variables.get("origination_uuid", ""))
                            await outgoing.send(
                                _reply(
                                    ("Content-Type", "command/reply"),
                                    ("Reply-Text", f"+OK Job-UUID: {job}"),
                                    ("Job-UUID", job),
                                )
                            )
                            self.pbx.originate(
                                variables.get("origination_uuid", job),
                                match.group(2),
                                variables,
                                job,
                            )
                        elif line.startswith("api uuid_exists "):
                            uid = line.split()[-1]
                            live = any(c.call_id == uid for c in self.pbx.live())
                            await outgoing.send(
                                _reply(
                                    ("Content-Type", "api/response"),
                                    body=b"true" if live else b"false",
                                )
                            )
                        elif line == "exit":
                            await outgoing.send(
                                _reply(("Content-Type", "command/reply"), ("Reply-Text", "+OK bye"))
                            )
                            done = True
                        else:
                            await outgoing.send(
                                _reply(
                                    ("Content-Type", "command/reply"),
                                    ("Reply-Text", "-ERR command not found"),
                                )
                            )
                await trio.sleep(0.01)  # let the writer flush the last reply
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
        if kind == "answer":
            return [
                _event("CHANNEL_ANSWER", call, {"Answer-State": "answered"}),
                _event("BACKGROUND_JOB", call, {"Job-UUID": call.tag}, f"+OK {call.call_id}\n"),
            ]
        if kind == "dtmf":
            return [_event("DTMF", call, {"DTMF-Digit": fields["digit"], "DTMF-Duration": "2000"})]
        out = [_event("CHANNEL_HANGUP_COMPLETE", call, {"Hangup-Cause": fields["name"]})]
        if fields["outcome"] != "answer":
            out.append(
                _event("BACKGROUND_JOB", call, {"Job-UUID": call.tag}, f"-ERR {fields['name']}\n")
            )
        return out


@contextlib.asynccontextmanager
async def open_fake_esl(
    pbx: FakePbx | None = None, **fields: str
) -> AsyncIterator[tuple[FakeEslServer, int]]:
    """A fake event-socket server on 127.0.0.1 port 0: ``(server, port)``; stopped on exit."""
    server = FakeEslServer(pbx=pbx or FakePbx(), **fields)  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve)
        try:
            yield server, port
        finally:
            nursery.cancel_scope.cancel()
