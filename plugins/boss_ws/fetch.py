"""Fetching a large target list named by reference in a work order.

A work order may carry ``"targets_file": {"url": "...", "sha256": "..."}`` instead of the
numbers. The plugin keeps the reference and fetches the file through a :class:`TargetFetcher`
chosen by the URL's scheme into its own directory, checks the digest, and only then stores
the campaign. ``file`` (a local path under ``fetch_roots``) is built in; FTP and SFTP are the
interface-file transport's job: a fetcher for ``ftp``/``sftp`` implements the same protocol
and is added to :data:`FETCHERS`-like mapping the plugin is built with.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import trio


class FetchError(Exception):
    """The referenced file cannot be fetched (scheme, place, missing, digest)."""


class TargetFetcher(Protocol):
    async def fetch(self, url: str, destination: Path) -> None:
        """Copy the file at ``url`` to ``destination`` (complete, or raise FetchError)."""
        ...


class LocalFileFetcher:
    """``file:///path`` or ``/path``, allowed only under one of ``roots``."""

    def __init__(self, roots: Sequence[Path]) -> None:
        self.roots = [Path(os.path.realpath(r)) for r in roots]
        self._limiter = trio.CapacityLimiter(2)

    async def fetch(self, url: str, destination: Path) -> None:
        parts = urlsplit(url)
        path = Path(unquote(parts.path if parts.scheme == "file" else url))
        real = Path(os.path.realpath(path))
        if not any(real.is_relative_to(root) for root in self.roots):
            raise FetchError(f"{path} is not under a configured fetch root")

        def copy() -> None:
            tmp = destination.with_suffix(".part")
            try:
                shutil.copyfile(real, tmp)
                os.replace(tmp, destination)
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                raise FetchError(f"cannot copy {path}: {exc.strerror or exc}") from None

        await trio.to_thread.run_sync(copy, limiter=self._limiter)


async def sha256_of(path: Path) -> str:
    def digest() -> str:
        h = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()

    return await trio.to_thread.run_sync(digest)
