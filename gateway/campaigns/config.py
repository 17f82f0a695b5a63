"""The ``[campaigns]`` and ``[profiles]`` sections of gateway.toml (strict, every key documented
in etc/gateway.toml). Relative paths are resolved against the directory of gateway.toml."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from gateway.campaigns.loader import check_campaign_files
from gateway.config_reader import TableReader
from gateway.errors import ConfigProblem
from gateway.profiles.loader import ProfileFileError, load_profiles


@attrs.frozen(kw_only=True)
class CampaignsConfig:
    directory: str = ""  # campaign TOML files; "" = no file campaigns
    areas_file: str = ""  # named areas; "" = none
    timezone: str = ""  # "" = [gateway] timezone
    state_capacity: int = 1_000_000  # entries per kind of per-subscriber matching state
    state_ttl: float = 8 * 86400.0  # forget matching state not updated for this long
    tick: float = 30.0  # seconds between schedule checks / counter flushes

    def check_files(self, base: Path | None, hook: Any) -> list[ConfigProblem]:
        """The areas file and every campaign file, read and parsed (``--check-config``)."""
        types: dict[str, Any] = {}
        if hook is not None and hasattr(hook, "gateway_condition_types"):
            for result in hook.gateway_condition_types():
                types.update(result or {})
        return check_campaign_files(
            _resolve_from(base, self.directory),
            _resolve_from(base, self.areas_file),
            plugin_types=types,
        )


@attrs.frozen(kw_only=True)
class ProfilesConfig:
    file: str = ""  # BOSS profile file; "" = no profiles (every subscriber unknown)
    delimiter: str = ","
    reload_on_sighup: bool = True  # re-read the file on SIGHUP when it changed

    def check_files(self, base: Path | None, hook: Any) -> list[ConfigProblem]:
        """The profile file, read and validated whole (``--check-config``)."""
        path = _resolve_from(base, self.file)
        if path is None:
            return []
        try:
            load_profiles(path, delimiter=self.delimiter)
        except ProfileFileError as exc:
            return [ConfigProblem("profiles.file", str(exc))]
        return []


def parse_campaigns_config(table: Mapping[str, Any], key: str = "campaigns") -> CampaignsConfig:
    r = TableReader(table, key)
    d = CampaignsConfig()
    config = CampaignsConfig(
        directory=r.str("directory", d.directory),
        areas_file=r.str("areas_file", d.areas_file),
        timezone=r.timezone("timezone", d.timezone, allow_empty=True),
        state_capacity=r.int("state_capacity", d.state_capacity, min=1000),
        state_ttl=r.duration("state_ttl", d.state_ttl, min=60),
        tick=r.duration("tick", d.tick, min=1),
    )
    r.finish()
    return config


def parse_profiles_config(table: Mapping[str, Any], key: str = "profiles") -> ProfilesConfig:
    r = TableReader(table, key)
    d = ProfilesConfig()
    delimiter = r.str("delimiter", d.delimiter)
    if delimiter is not None and (len(delimiter) != 1 or delimiter in "\r\n\"'"):
        r.problem("delimiter", f"must be one character such as ',' or '|', got {delimiter!r}")
    config = ProfilesConfig(
        file=r.str("file", d.file),
        delimiter=delimiter or d.delimiter,
        reload_on_sighup=r.bool("reload_on_sighup", d.reload_on_sighup),
    )
    r.finish()
    return config


def _resolve_from(base: Path | None, value: str) -> Path | None:
    if not value:
        return None
    path = Path(value)
    return base / path if base is not None and not path.is_absolute() else path


def resolve(gateway: Any, value: str) -> Path | None:
    """``value`` as a path relative to gateway.toml's directory; None when empty."""
    if not value:
        return None
    path = Path(value)
    base = getattr(getattr(gateway, "config", None), "path", None)
    if not path.is_absolute() and base is not None:
        path = Path(base).resolve().parent / path
    return path


def campaign_timezone(config: Any) -> str:
    """The timezone of schedules and rule windows: ``[campaigns]``, else ``[gateway]``."""
    campaigns = config.sections.get("campaigns") or CampaignsConfig()
    return campaigns.timezone or getattr(config.gateway, "timezone", None) or "Asia/Shanghai"
