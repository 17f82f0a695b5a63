"""pytest fixtures for gateway plugins: ``pytest_plugins = ["gateway.testing.pytest_plugin"]``.

Needs pytest-trio (``trio_mode = true`` or ``@pytest.mark.trio``) for the async fixtures.

- ``smsc_simulator``: an :class:`~gateway.testing.SmscHandle` listening on loopback port 0.
- ``fake_clock``: a :class:`~gateway.testing.FakeClock` that follows Trio's clock (pair it
  with ``autojump_clock`` so that timers and wall time move together without sleeping).
- ``open_test_gateway``: ``async with open_test_gateway(extra_toml, plugins=...) as gw`` runs a
  real daemon in ``tmp_path`` (see :func:`~gateway.testing.open_gateway`).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.testing.clock import FakeClock
from gateway.testing.gateway import open_gateway
from gateway.testing.smsc import SmscHandle, open_smsc_simulator


@pytest.fixture
async def smsc_simulator() -> AsyncIterator[SmscHandle]:
    """The bundled SMSC simulator on 127.0.0.1, port 0, default credentials gateway/secret."""
    async with open_smsc_simulator() as handle:
        yield handle


@pytest.fixture
def fake_clock() -> FakeClock:
    """A wall clock that follows Trio's (mock) clock from a fixed epoch."""
    return FakeClock(follow_trio=True)


@pytest.fixture
def open_test_gateway(tmp_path: Path) -> Callable[..., Any]:
    """``open_test_gateway(extra_toml="", plugins=())``: a real daemon with state in tmp_path."""
    return functools.partial(open_gateway, tmp_path / "gateway")
