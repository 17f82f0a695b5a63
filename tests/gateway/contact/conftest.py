"""Shared fixtures for contact-control tests: a settable clock and backend openers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from contact_helpers import FakeClock, local_ts

from gateway.contact.config import parse_contact_config
from gateway.contact.sqlite_backend import open_sqlite_contact_control


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(local_ts(2026, 11, 23, 10, 0))  # a Monday, 10:00 in Shanghai


@pytest.fixture
def open_sqlite(tmp_path: Any, clock: FakeClock) -> Callable[..., Any]:
    """``async with open_sqlite(table) as cc`` -- a SQLite-backed control on the fake clock."""

    @asynccontextmanager
    async def opener(table: dict[str, Any] | None = None, **kw: Any) -> AsyncIterator[Any]:
        config = parse_contact_config(table or {})
        async with open_sqlite_contact_control(
            config, tmp_path / "gateway.sqlite", clock=clock, **kw
        ) as cc:
            yield cc

    return opener
