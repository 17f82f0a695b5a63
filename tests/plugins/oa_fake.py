"""A fake OA to-do webservice: an HTTP/1.1 server (h11, not our own HTTP code) that records
each JSON request it receives, and a client that posts signed decisions back."""

from __future__ import annotations

import json

import attrs
import h11
import trio


@attrs.define
class FakeOa:
    requests: list[dict] = attrs.Factory(list)
    headers: list[dict] = attrs.Factory(list)
    bodies: list[bytes] = attrs.Factory(list)
    status: int = 200
    port: int = 0
    changed: trio.Event = attrs.Factory(trio.Event)

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._connection, listeners)

    async def _connection(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        body = b""
        head = None
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                if not data:
                    return
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                head, body = event, b""
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                self.requests.append(json.loads(body))
                self.bodies.append(body)
                self.headers.append({k.decode(): v.decode() for k, v in head.headers})
                self.changed.set()
                self.changed = trio.Event()
                reply = json.dumps({"ok": self.status < 300}).encode()
                await stream.send_all(
                    conn.send(
                        h11.Response(
                            status_code=self.status,
                            headers=[
                                ("content-type", "application/json"),
                                ("content-length", str(len(reply))),
                            ],
                        )
                    )
                )
                await stream.send_all(conn.send(h11.Data(data=reply)))
                await stream.send_all(conn.send(h11.EndOfMessage()))
                if conn.our_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
            elif isinstance(event, h11.ConnectionClosed):
                return

    def actions(self) -> list[tuple[str, str]]:
        return [(r["action"], r["todo_id"]) for r in self.requests]
