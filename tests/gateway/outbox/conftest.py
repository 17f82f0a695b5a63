"""Fixture ``open_stack``: the outbox with the real SQLite contact control (see outbox_stack)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from outbox_stack import RecordingHook, Stack, cfg

from gateway.app import Gateway
from gateway.contact.config import parse_contact_config
from gateway.contact.sqlite_backend import open_sqlite_contact_control
from gateway.outbox import open_outbox


@pytest.fixture
def open_stack(tmp_path: Any) -> Callable[..., Any]:
    @asynccontextmanager
    async def opener(
        table: dict[str, Any] | None = None,
        *,
        db: Any = None,
        clock: Callable[[], float] = time.time,
        run_scheduler: bool = True,
        **outbox_kw: Any,
    ) -> AsyncIterator[Stack]:
        path = db or tmp_path / "gateway.sqlite"
        hook = RecordingHook()
        gw = Gateway(config=None, hook=hook, state_dir=tmp_path)

        async def preempt(contact_id: str) -> bool:
            return gw.outbox is not None and bool(await gw.outbox.cancel(contact_id, "preempted"))

        config = parse_contact_config(table or {})
        async with open_sqlite_contact_control(config, path, clock=clock, preemptor=preempt) as cc:
            gw.contact_control, gw.ledger = cc, cc.ledger
            async with open_outbox(
                path,
                cfg(**outbox_kw),
                gateway=gw,
                clock=clock,
                run_scheduler=run_scheduler,
                writer=cc.ledger.writer,
                ledger=cc.ledger,
            ) as ob:
                gw.outbox = ob
                yield Stack(gateway=gw, control=cc, outbox=ob, hook=hook)
                gw.outbox = None

    return opener
