"""Moving interface files: a local directory, an FTP server, an SFTP server.

The thin I/O layer beside the sans-IO formats. Each place is a :class:`Directory` with the
same five async operations (``list``, ``fetch``, ``read``, ``put``, ``delete``); ``put``
uploads under a temporary name and renames, so a reader on the other side never sees half a
file.

- **FTP** uses the standard library's :mod:`ftplib` in worker threads
  (``trio.to_thread.run_sync`` with a :class:`trio.CapacityLimiter`): it is complete, well
  tested, and file feeds need a handful of operations per poll, so a thread per operation
  costs nothing that matters. One connection per operation keeps no session state to repair
  after a server restart.
- **SFTP** uses asyncssh (well kept, complete SFTP v3, and it also provides the test server,
  so the tests meet a real peer). asyncssh is asyncio-only: each operation runs
  ``asyncio.run`` in a worker thread started by the calling Trio task (the same limiter), so
  the asyncio loop lives exactly as long as the operation and belongs to that task. paramiko
  in threads was the alternative; it would need a separate SFTP server for the tests.

Blocking calls have timeouts (``timeout``), so a cancelled Trio task waits at most that long
for its thread. Errors are :class:`TransferError` with the place and the operation.
"""

from __future__ import annotations

import asyncio
import ftplib
import os
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path, PurePosixPath
from typing import Any, Protocol, TypeVar

import attrs
import trio

T = TypeVar("T")
PART = ".part"  # suffix of a file being uploaded or downloaded


class TransferError(OSError):
    """Raised when a file operation on a directory (local or remote) fails."""


class Directory(Protocol):
    """A place interface files come from or go to."""

    label: str

    async def list(self) -> dict[str, int]:
        """Regular files here: ``{name: size}`` (uploads in progress, ``*.part``, excluded)."""
        ...

    async def fetch(self, name: str, dest: Path) -> None:
        """Copy ``name`` to the local path ``dest`` (written as ``dest.part``, then renamed)."""
        ...

    async def read(self, name: str, limit: int) -> bytes:
        """The bytes of a small file (a check file), at most ``limit``."""
        ...

    async def put(self, src: Path, name: str) -> None:
        """Upload the local file ``src`` as ``name`` (temporary name, then rename)."""
        ...

    async def delete(self, name: str) -> None: ...


def _safe(name: str) -> str:
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise TransferError(f"refused file name {name!r}")
    return name


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path``: temporary file, fsync, rename, fsync of the directory."""
    tmp = path.with_name(path.name + PART)
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


@attrs.define
class LocalDirectory:
    path: Path
    limiter: trio.CapacityLimiter = attrs.field(factory=lambda: trio.CapacityLimiter(2))

    @property
    def label(self) -> str:
        return str(self.path)

    async def _run(self, fn: Callable[[], T], what: str) -> T:
        try:
            return await trio.to_thread.run_sync(fn, limiter=self.limiter)
        except OSError as exc:
            raise TransferError(f"{self.label}: {what}: {exc.strerror or exc}") from exc

    async def list(self) -> dict[str, int]:
        def scan() -> dict[str, int]:
            out = {}
            with os.scandir(self.path) as entries:
                for entry in entries:
                    if entry.is_file(follow_symlinks=False) and not entry.name.endswith(PART):
                        out[entry.name] = entry.stat().st_size
            return out

        return await self._run(scan, "list")

    async def fetch(self, name: str, dest: Path) -> None:
        src = self.path / _safe(name)

        def copy() -> None:
            tmp = dest.with_name(dest.name + PART)
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)

        await self._run(copy, f"fetch {name}")

    async def read(self, name: str, limit: int) -> bytes:
        def read() -> bytes:
            with open(self.path / _safe(name), "rb") as handle:
                return handle.read(limit + 1)

        return await self._run(read, f"read {name}")

    async def put(self, src: Path, name: str) -> None:
        dest = self.path / _safe(name)

        def copy() -> None:
            tmp = dest.with_name(dest.name + PART)
            shutil.copyfile(src, tmp)
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, dest)
            fsync_dir(dest.parent)

        await self._run(copy, f"put {name}")

    async def delete(self, name: str) -> None:
        await self._run(lambda: (self.path / _safe(name)).unlink(missing_ok=True), f"delete {name}")


@attrs.define
class FtpDirectory:
    host: str
    port: int = 21
    user: str = "anonymous"
    password: str = attrs.field(default="", repr=False)
    directory: str = "/"
    timeout: float = 30.0
    limiter: trio.CapacityLimiter = attrs.field(factory=lambda: trio.CapacityLimiter(2))

    @property
    def label(self) -> str:
        return f"ftp://{self.user}@{self.host}:{self.port}{self.directory}"

    async def _session(self, fn: Callable[[ftplib.FTP], T], what: str) -> T:
        def work() -> T:
            with ftplib.FTP(timeout=self.timeout) as ftp:
                ftp.connect(self.host, self.port)
                ftp.login(self.user, self.password)
                ftp.cwd(self.directory)
                return fn(ftp)

        try:
            return await trio.to_thread.run_sync(work, limiter=self.limiter)
        except (OSError, EOFError, ftplib.Error) as exc:
            raise TransferError(f"{self.label}: {what}: {exc}") from exc

    async def list(self) -> dict[str, int]:
        def scan(ftp: ftplib.FTP) -> dict[str, int]:
            out = {}
            for name, facts in ftp.mlsd(facts=["type", "size"]):
                if facts.get("type") == "file" and not name.endswith(PART):
                    out[name] = int(facts.get("size", "0"))
            return out

        return await self._session(scan, "list")

    async def fetch(self, name: str, dest: Path) -> None:
        _safe(name)

        def get(ftp: ftplib.FTP) -> None:
            tmp = dest.with_name(dest.name + PART)
            with open(tmp, "wb") as handle:
                ftp.retrbinary(f"RETR {name}", handle.write)
            os.replace(tmp, dest)

        await self._session(get, f"fetch {name}")

    async def read(self, name: str, limit: int) -> bytes:
        _safe(name)

        def get(ftp: ftplib.FTP) -> bytes:
            parts: list[bytes] = []
            ftp.retrbinary(f"RETR {name}", parts.append)
            return b"".join(parts)[: limit + 1]

        return await self._session(get, f"read {name}")

    async def put(self, src: Path, name: str) -> None:
        _safe(name)

        def store(ftp: ftplib.FTP) -> None:
            with open(src, "rb") as handle:
                ftp.storbinary(f"STOR {name}{PART}", handle)
            try:
                ftp.delete(name)
            except ftplib.error_perm:
                pass  # not there yet
            ftp.rename(name + PART, name)

        await self._session(store, f"put {name}")

    async def delete(self, name: str) -> None:
        _safe(name)
        await self._session(lambda ftp: ftp.delete(name), f"delete {name}")


@attrs.define
class SftpDirectory:
    host: str
    port: int = 22
    user: str = ""
    password: str | None = attrs.field(default=None, repr=False)
    client_keys: tuple[str, ...] = ()
    #: A known_hosts file; None disables host key checking (configured explicitly).
    known_hosts: str | None = None
    directory: str = "."
    timeout: float = 30.0
    limiter: trio.CapacityLimiter = attrs.field(factory=lambda: trio.CapacityLimiter(2))

    @property
    def label(self) -> str:
        return f"sftp://{self.user}@{self.host}:{self.port}/{self.directory.lstrip('/')}"

    def _path(self, name: str) -> str:
        return str(PurePosixPath(self.directory) / _safe(name))

    async def _session(self, fn: Callable[[Any], Awaitable[T]], what: str) -> T:
        import asyncssh

        async def work() -> T:
            options: dict[str, Any] = {
                "username": self.user,
                "known_hosts": self.known_hosts,
                "connect_timeout": self.timeout,
            }
            if self.password is not None:
                options["password"] = self.password
            options["client_keys"] = list(self.client_keys) or None
            async with asyncssh.connect(self.host, self.port, **options) as conn:
                async with conn.start_sftp_client() as sftp:
                    return await asyncio.wait_for(fn(sftp), self.timeout * 10)

        try:
            return await trio.to_thread.run_sync(asyncio.run, work(), limiter=self.limiter)
        except (OSError, asyncssh.Error, TimeoutError) as exc:
            raise TransferError(f"{self.label}: {what}: {exc}") from exc

    async def list(self) -> dict[str, int]:
        async def scan(sftp: Any) -> dict[str, int]:
            out = {}
            for entry in await sftp.readdir(self.directory):
                name = entry.filename
                if entry.attrs.type == 1 and not name.endswith(PART):  # FILEXFER_TYPE_REGULAR
                    out[name] = int(entry.attrs.size or 0)
            return out

        return await self._session(scan, "list")

    async def fetch(self, name: str, dest: Path) -> None:
        path = self._path(name)

        async def get(sftp: Any) -> None:
            tmp = dest.with_name(dest.name + PART)
            await sftp.get(path, str(tmp))
            os.replace(tmp, dest)

        await self._session(get, f"fetch {name}")

    async def read(self, name: str, limit: int) -> bytes:
        path = self._path(name)

        async def get(sftp: Any) -> bytes:
            async with sftp.open(path, "rb") as handle:
                data: bytes = await handle.read(limit + 1)
                return data

        return await self._session(get, f"read {name}")

    async def put(self, src: Path, name: str) -> None:
        path = self._path(name)

        async def store(sftp: Any) -> None:
            await sftp.put(str(src), path + PART)
            if await sftp.exists(path):
                await sftp.remove(path)
            await sftp.rename(path + PART, path)

        await self._session(store, f"put {name}")

    async def delete(self, name: str) -> None:
        path = self._path(name)

        async def remove(sftp: Any) -> None:
            await sftp.remove(path)

        await self._session(remove, f"delete {name}")
