"""The transfer layer against a real FTP server (pyftpdlib) and SFTP server (asyncssh) on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.ifile.transfer import (
    Directory,
    FtpDirectory,
    LocalDirectory,
    SftpDirectory,
    TransferError,
)
from tests.adapters.ifile.servers import PASSWORD, USER, ftp_server, sftp_server


@pytest.fixture(params=["local", "ftp", "sftp"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Directory, Path]]:
    root = tmp_path / "server"
    (root / "in").mkdir(parents=True)
    if request.param == "local":
        yield LocalDirectory(root / "in"), root / "in"
    elif request.param == "ftp":
        with ftp_server(root) as server:
            yield (
                FtpDirectory(server.host, server.port, USER, PASSWORD, "/in", timeout=5),
                root / "in",
            )
    else:
        with sftp_server(root) as server:
            yield (
                SftpDirectory(server.host, server.port, USER, PASSWORD, directory="/in", timeout=5),
                root / "in",
            )


async def test_list_fetch_put_delete(place: tuple[Directory, Path], tmp_path: Path) -> None:
    """Files are listed with sizes, fetched byte-exact, uploaded under their final name only when complete, and deleted."""
    directory, root = place
    payload = "13800138000|张三\n".encode("gb18030") * 1000
    (root / "A.txt").write_bytes(payload)
    (root / "A.chk").write_bytes(b"A.txt|1000|1|x\n")
    (root / "B.txt.part").write_bytes(b"half")
    assert await directory.list() == {"A.txt": len(payload), "A.chk": 15}
    dest = tmp_path / "got.txt"
    await directory.fetch("A.txt", dest)
    assert dest.read_bytes() == payload
    assert await directory.read("A.chk", 4096) == b"A.txt|1000|1|x\n"
    out = tmp_path / "report.txt"
    out.write_bytes(b"report\n")
    await directory.put(out, "R.txt")
    await directory.put(out, "R.txt")  # replaces an earlier upload
    assert (root / "R.txt").read_bytes() == b"report\n"
    assert not (root / "R.txt.part").exists()
    await directory.delete("A.txt")
    assert "A.txt" not in await directory.list()


async def test_path_names_are_refused(place: tuple[Directory, Path], tmp_path: Path) -> None:
    """A name with a directory part never leaves the configured directory."""
    directory, _ = place
    with pytest.raises(TransferError):
        await directory.fetch("../secret", tmp_path / "x")


async def test_wrong_password_is_a_transfer_error(tmp_path: Path) -> None:
    """A refused login is a TransferError naming the place, never the password."""
    (tmp_path / "in").mkdir()
    with ftp_server(tmp_path) as server:
        directory = FtpDirectory(server.host, server.port, USER, "wrong", "/in", timeout=5)
        with pytest.raises(TransferError) as info:
            await directory.list()
        assert "ftp://boss@127.0.0.1" in str(info.value) and "wrong" not in str(info.value)
    with sftp_server(tmp_path) as server:
        sftp = SftpDirectory(server.host, server.port, USER, "wrong", directory="/in", timeout=5)
        with pytest.raises(TransferError):
            await sftp.list()
