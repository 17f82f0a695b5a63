"""Helpers for the signaling plugin tests: a Gateway with parsed sections and a collecting sink."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import SimpleNamespace

import trio

from gateway.app import Gateway

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "adapters" / "sigtran"))
from sigtran_helpers import make_capture

__all__ = ["ListSink", "make_capture", "make_gateway", "old", "wait_for"]


def make_gateway(state_dir: Path, **sections) -> Gateway:
    return Gateway(config=SimpleNamespace(plugins=sections), hook=None, state_dir=state_dir)


class ListSink:
    """An EventSink that keeps every batch; ``on_send`` runs after each batch is stored."""

    def __init__(self, on_send=None):
        self.batches: list[list] = []
        self.on_send = on_send

    @property
    def events(self):
        return [e for b in self.batches for e in b]

    async def send(self, events):
        await trio.lowlevel.checkpoint()
        self.batches.append(list(events))
        if self.on_send is not None:
            self.on_send(self)


def old(path: Path, age: float = 3600) -> Path:
    """Backdate a file's modification time, as if the probe finished it long ago."""
    t = os.stat(path).st_mtime - age
    os.utime(path, (t, t))
    return path


async def wait_for(predicate, limit_s: float = 20.0) -> None:
    """Poll ``predicate`` (state of a source running in threads: no event to wait on)."""
    with trio.fail_after(limit_s):
        while not predicate():  # noqa: ASYNC110
            await trio.sleep(0.01)


async def wait_polls(source, n: int = 3) -> None:
    """Wait until the source has looked at its spool ``n`` more times (instead of a fixed sleep:
    "nothing happened" is proved over polls that really ran, however slow the machine)."""
    spool = source.spool
    calls = [0]
    original = spool.next_file

    def counting(*args, **kwargs):
        calls[0] += 1
        return original(*args, **kwargs)

    spool.next_file = counting
    try:
        await wait_for(lambda: calls[0] >= n)
    finally:
        del spool.next_file  # back to the class's method
