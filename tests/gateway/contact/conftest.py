"""Shared fixtures for contact-control tests: a settable clock and backend openers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from contact_helpers import FakeClock, local_ts

from gateway.contact.config import parse_contact_config
from gateway.contact.sqlite_backend import open_sqlite_contact_control

_prefixes = iter(range(10**9))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(local_ts(2026, 11, 23, 10, 0))  # a Monday, 10:00 in Shanghai


@pytest.fixture
def open_sqlite(tmp_path: Any, clock: FakeClock) -> Callable[..., Any]:
    """``async with open_sqlite(table) as cc`` -- a SQLite-backed control on the fake clock."""

    @asynccontextmanager
    async def opener(
        table: dict[str, Any] | None = None, *, fresh: bool = False, **kw: Any
    ) -> AsyncIterator[Any]:
        config = parse_contact_config(table or {})
        name = f"fresh-{next(_prefixes)}.sqlite" if fresh else "gateway.sqlite"
        async with open_sqlite_contact_control(config, tmp_path / name, clock=clock, **kw) as cc:
            yield cc

    return opener


from tests.fakes.redis_server import redis_server  # noqa: E402, F401


@pytest.fixture
def open_redis_cc(tmp_path: Any, clock: FakeClock, redis_server: Any) -> Callable[..., Any]:  # noqa: F811
    """``async with open_redis_cc(table) as cc`` -- a Redis-backed control, fresh key prefix."""
    from gateway.contact.redis_backend import open_redis_contact_control

    @asynccontextmanager
    async def opener(
        table: dict[str, Any] | None = None,
        *,
        prefix: str | None = None,
        fresh: bool = True,
        **kw: Any,
    ) -> AsyncIterator[Any]:
        table = dict(
            table or {},
            redis=f"{redis_server.host}:{redis_server.port}",
            redis_prefix=prefix or f"t{next(_prefixes)}",
            backend="redis",
        )
        config = parse_contact_config(table)
        path = tmp_path / f"ledger-{next(_prefixes)}.sqlite"
        async with open_redis_contact_control(config, path, clock=clock, **kw) as cc:
            yield cc

    return opener


@pytest.fixture(params=["sqlite", "redis"])
def open_backend(request: Any) -> Callable[..., Any]:
    """Each backend in turn (tests using it run twice)."""
    return request.getfixturevalue("open_sqlite" if request.param == "sqlite" else "open_redis_cc")
