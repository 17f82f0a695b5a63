"""Strict reading of TOML tables into typed values, with errors that name the key.

Every section parser (core or plugin) reads its table through a :class:`TableReader`:

.. code-block:: python

    def parse(table, key):
        r = TableReader(table, key)
        host = r.str("host")
        port = r.int("port", 2775, min=1, max=65535)
        r.finish()  # unknown keys and every problem found so far -> one ConfigError
        return SmscConfig(host=host, port=port)

A reader collects problems instead of stopping at the first, so an operator sees every
mistake in one ``gatewayd --check-config`` run. After a problem the getter returns the default
(or None), so parsing can go on; ``finish`` raises before the result is used.
"""

from __future__ import annotations

import difflib
import math
import re
import zoneinfo
from collections.abc import Mapping, Sequence
from typing import Any

from gateway.errors import ConfigError, ConfigProblem

REQUIRED: Any = object()

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_SECONDS = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
    None: 1.0,
}


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    """`` (did you mean 'port'?)`` when a choice is close to ``word``, else ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string such as ``"30s"``, ``"5m"``, ``"2h"``, ``"7d"``."""
    if isinstance(value, bool):
        raise ValueError('expected a duration such as 30, "30s", "5m", "2h" or "7d"')
    if isinstance(value, int | float):
        if value != value:  # NaN (TOML allows nan): every comparison with it is False
            raise ValueError("must be a number of seconds, not nan")
        if math.isinf(value):
            raise ValueError(f"must be a finite number of seconds, got {value}")
        if value < 0:
            raise ValueError("must not be negative")
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            seconds = float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
            if math.isinf(seconds):  # hundreds of digits overflow a float
                raise ValueError(f"must be a finite number of seconds, got {value!r}")
            return seconds
    raise ValueError(f'expected a duration such as 30, "30s", "5m", "2h" or "7d", got {value!r}')


class TableReader:
    """Reads one TOML table; see the module docstring. ``key`` is its dotted path."""

    def __init__(
        self,
        table: Mapping[str, Any],
        key: str = "",
        *,
        problems: list[ConfigProblem] | None = None,
    ) -> None:
        self._problems: list[ConfigProblem] = [] if problems is None else problems
        self.key = key
        if not isinstance(table, Mapping):
            self._problem("", f"must be a table, got {type(table).__name__}")
            table = {}
        self._table = table
        self._seen: set[str] = set()

    # -- problems ---------------------------------------------------------------------------

    def _path(self, name: str) -> str:
        if not name:
            return self.key
        return f"{self.key}.{name}" if self.key else name

    def _problem(self, name: str, message: str) -> None:
        self._problems.append(ConfigProblem(self._path(name), message))

    def problem(self, name: str, message: str) -> None:
        """Record a problem found by the caller's own validation (cross-field checks)."""
        self._problem(name, message)

    @property
    def ok(self) -> bool:
        return not self._problems

    def finish(self) -> None:
        """Refuse unknown keys, then raise every problem collected (by this reader tree)."""
        for name in self._table:
            if name not in self._seen:
                hint = did_you_mean(name, [k for k in self._seen])
                self._problem(name, f"unknown key{hint}")
        if self._problems:
            raise ConfigError(self._problems)

    def check_unknown(self) -> None:
        """Record unknown keys as problems without raising (for sub-tables)."""
        for name in self._table:
            if name not in self._seen:
                self._problem(name, f"unknown key{did_you_mean(name, list(self._seen))}")
        self._seen.update(self._table)

    # -- getters ----------------------------------------------------------------------------

    def has(self, name: str) -> bool:
        return name in self._table

    def keys(self) -> list[str]:
        return list(self._table)

    def _get(self, name: str, default: Any) -> tuple[bool, Any]:
        self._seen.add(name)
        if name in self._table:
            return True, self._table[name]
        if default is REQUIRED:
            self._problem(name, "is required")
        return False, None if default is REQUIRED else default

    def raw(self, name: str, default: Any = REQUIRED) -> Any:
        return self._get(name, default)[1]

    def str(
        self, name: str, default: Any = REQUIRED, *, choices: Sequence[str] | None = None
    ) -> Any:
        present, value = self._get(name, default)
        if not present:
            return value
        if not isinstance(value, str):
            self._problem(name, f"must be a string, got {type(value).__name__}")
            return None if default is REQUIRED else default
        if choices is not None and value not in choices:
            self._problem(
                name,
                f"must be one of {', '.join(choices)}; got {value!r}{did_you_mean(value, choices)}",
            )
            return None if default is REQUIRED else default
        return value

    def bool(self, name: str, default: Any = REQUIRED) -> Any:
        present, value = self._get(name, default)
        if present and not isinstance(value, bool):
            self._problem(name, f"must be true or false, got {value!r}")
            return None if default is REQUIRED else default
        return value

    def int(
        self, name: str, default: Any = REQUIRED, *, min: int | None = None, max: int | None = None
    ) -> Any:
        present, value = self._get(name, default)
        if not present:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            self._problem(name, f"must be an integer, got {value!r}")
            return None if default is REQUIRED else default
        return self._bounded(name, value, default, min, max)

    def float(
        self,
        name: str,
        default: Any = REQUIRED,
        *,
        min: float | None = None,
        max: float | None = None,
    ) -> Any:
        present, value = self._get(name, default)
        if not present:
            return value
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            self._problem(name, f"must be a number, got {value!r}")
            return None if default is REQUIRED else default
        if math.isinf(value):  # TOML inf, or a literal such as 1e999
            self._problem(name, f"must be a finite number, got {value!r}")
            return None if default is REQUIRED else default
        return self._bounded(name, float(value), default, min, max)

    def duration(
        self,
        name: str,
        default: Any = REQUIRED,
        *,
        min: float | None = None,
        max: float | None = None,
    ) -> Any:
        """Seconds, from ``30``, ``"30s"``, ``"5m"``, ``"2h"``, ``"7d"``."""
        present, value = self._get(name, default)
        if not present:
            return value if not isinstance(value, str) else parse_duration(value)
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self._problem(name, str(exc))
            return None if default is REQUIRED else default
        return self._bounded(name, seconds, default, min, max)

    def timezone(self, name: str, default: Any = REQUIRED, *, allow_empty: bool = False) -> Any:
        """An IANA time zone name (``"Asia/Shanghai"``), checked against the zone database."""
        value = self.str(name, default)
        if value is None or (allow_empty and value == ""):
            return value
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            self._problem(
                name, f"unknown time zone {value!r} (use an IANA name such as 'Asia/Shanghai')"
            )
            return None if default is REQUIRED else default
        return value

    def _bounded(self, name: str, value: Any, default: Any, lo: Any, hi: Any) -> Any:
        if lo is not None and value < lo:
            self._problem(name, f"must be at least {lo}, got {value}")
            return None if default is REQUIRED else default
        if hi is not None and value > hi:
            self._problem(name, f"must be at most {hi}, got {value}")
            return None if default is REQUIRED else default
        return value

    def str_list(self, name: str, default: Any = REQUIRED) -> Any:
        present, value = self._get(name, default)
        if not present:
            return tuple(value) if isinstance(value, list | tuple) else value
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self._problem(name, "must be a list of strings")
            return None if default is REQUIRED else tuple(default)
        return tuple(value)

    def table(self, name: str, *, required: bool = False) -> TableReader:
        """A reader for a sub-table (an empty one when absent and not required)."""
        present, value = self._get(name, REQUIRED if required else {})
        if not present:
            value = {}
        return TableReader(value, self._path(name), problems=self._problems)

    def tables(self, name: str, *, required: bool = False) -> list[TableReader]:
        """Readers for an array of tables (``[[plugins.sms_smpp.smsc]]``)."""
        present, value = self._get(name, REQUIRED if required else [])
        if not present:
            return []
        if not isinstance(value, list):
            self._problem(name, "must be an array of tables")
            return []
        return [
            TableReader(item, f"{self._path(name)}[{i}]", problems=self._problems)
            for i, item in enumerate(value)
        ]

    def subtables(self, name: str) -> dict[str, TableReader]:
        """Readers for a table of named tables (``[contact.caps.sms_daily]`` ...)."""
        present, value = self._get(name, {})
        if not present:
            return {}
        if not isinstance(value, Mapping):
            self._problem(name, "must be a table")
            return {}
        return {
            k: TableReader(v, f"{self._path(name)}.{k}", problems=self._problems)
            for k, v in value.items()
        }
