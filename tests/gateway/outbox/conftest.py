"""Fixture ``open_stack``: the outbox with the real SQLite contact control (see outbox_stack)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import outbox_stack
import pytest


@pytest.fixture
def open_stack(tmp_path: Any) -> Callable[..., Any]:
    """``async with open_stack(table, **outbox_config) as s`` (see outbox_stack.open_stack)."""
    return functools.partial(outbox_stack.open_stack, tmp_path)
