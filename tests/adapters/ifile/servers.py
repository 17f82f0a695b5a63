"""Real FTP and SFTP servers on loopback for the interface-file tests.

FTP is pyftpdlib; SFTP is asyncssh's server (password login, chrooted to a directory),
each in its own thread, started and stopped by a context manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

USER, PASSWORD = "boss", "s3cret-pw"


@attrs.frozen
class Server:
    host: str
    port: int
    root: Path
    #: SFTP: a known_hosts file naming the server's host key.
    known_hosts: Path | None = None


@contextlib.contextmanager
def ftp_server(root: Path) -> Iterator[Server]:
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.servers import FTPServer

    logging.getLogger("pyftpdlib").setLevel(logging.WARNING)
    authorizer = DummyAuthorizer()
    authorizer.add_user(USER, PASSWORD, str(root), perm="elradfmwMT")
    handler = type("Handler", (FTPHandler,), {"authorizer": authorizer, "banner": "test"})
    server = FTPServer(("127.0.0.1", 0), handler)
    port = server.socket.getsockname()[1]
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"timeout": 0.05, "blocking": True}, daemon=True
    )
    thread.start()
    try:
        yield Server("127.0.0.1", port, root)
    finally:
        server.close_all()
        thread.join(5)


@contextlib.contextmanager
def sftp_server(root: Path) -> Iterator[Server]:
    import asyncssh

    class Auth(asyncssh.SSHServer):
        def begin_auth(self, username: str) -> bool:
            return True

        def password_auth_supported(self) -> bool:
            return True

        def validate_password(self, username: str, password: str) -> bool:
            return username == USER and password == PASSWORD

    class Chrooted(asyncssh.SFTPServer):
        def __init__(self, chan: Any) -> None:
            super().__init__(chan, chroot=str(root).encode())

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    key = asyncssh.generate_private_key("ssh-ed25519")

    async def start() -> Any:
        return await asyncssh.listen(
            "127.0.0.1",
            0,
            server_host_keys=[key],
            server_factory=Auth,
            sftp_factory=Chrooted,
            allow_scp=False,
        )

    listener = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    port = listener.get_port()
    known_hosts = root.parent / f"known_hosts-{port}"
    known_hosts.write_bytes(f"[127.0.0.1]:{port} ".encode() + key.export_public_key())
    try:
        yield Server("127.0.0.1", port, root, known_hosts)
    finally:

        async def stop() -> None:
            listener.close()
            await listener.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
