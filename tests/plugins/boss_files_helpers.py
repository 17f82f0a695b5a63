"""Helpers for the boss_files tests: deliver a data file and its check file, open a gateway."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from gateway.testing import GatewayHandle, open_gateway, wait_until


def check_line(
    name: str, data: bytes, *, records: int | None = None, algorithm: str = "md5"
) -> bytes:
    count = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    digest = hashlib.new(algorithm, data).hexdigest()
    return f"{name}|{count if records is None else records}|{len(data)}|{digest}\n".encode()


def deliver(
    folder: Path,
    name: str,
    lines: list[str],
    *,
    encoding: str = "utf-8",
    records: int | None = None,
    checksum: str | None = None,
) -> bytes:
    """Write NAME and NAME.chk into ``folder`` (data first, check file last, like BOSS)."""
    data = "".join(line + "\n" for line in lines).encode(encoding)
    (folder / name).write_bytes(data)
    check = check_line(name, data, records=records)
    if checksum is not None:
        head, _, _ = check.decode().rstrip("\n").rpartition("|")
        check = f"{head}|{checksum}\n".encode()
    (folder / (name + ".chk")).write_bytes(check)
    return data


def running(handle: GatewayHandle) -> Any:
    """The plugin's running part, held by the plugin object the gateway's plugin manager made."""
    return handle.daemon.pm.get_plugin("boss_files").running


def feed(handle: GatewayHandle, name: str) -> Any:
    return next(f for f in running(handle).feeds if f.config.name == name)


@contextlib.asynccontextmanager
async def boss_gateway(
    directory: Path, feeds_toml: str, *, settle: str = "0s"
) -> AsyncIterator[GatewayHandle]:
    """A real gateway with ``[plugins.boss_files]`` (polling by hand: the interval is an hour)."""
    toml = f"""
[plugins.boss_files]
work_dir = "{directory / "work"}"
poll_interval = "1h"
settle_time = "{settle}"
{feeds_toml}
"""
    async with open_gateway(directory, toml) as handle:
        # The service's first poll (at start) is done before the test delivers files.
        await wait_until(lambda: all(f.counts["polls"] >= 1 for f in running(handle).feeds))
        yield handle
