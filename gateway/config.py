"""Loading and validating ``gateway.toml``.

The file has two core tables, ``[gateway]`` and ``[logging]``, parsed here, and one table per
component or plugin. Those are claimed through the ``gateway_config_sections`` hook: a
:class:`~gateway.contracts.SectionSpec` with ``top_level=True`` owns ``[<name>]`` (core
components: ``[contact]``, ``[outbox]``...), any other owns ``[plugins.<name>]``.

Every problem found is collected and raised together as one :class:`~gateway.errors.ConfigError`
whose problems name the file and the dotted key, so ``gatewayd --check-config`` shows every
mistake in one run. Unknown tables and keys are errors, with a "did you mean" when one is close.

Relative paths in the file (``state_dir``, ``control_socket``) are resolved against the
directory of the configuration file, so a config works the same from any working directory.
"""

from __future__ import annotations

import os
import re
import tomllib
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from gateway.config_reader import TableReader, did_you_mean
from gateway.errors import ConfigError, ConfigProblem, PluginError
from gateway.http.config import HttpConfig, parse_http  # the HTTP host parses its own table
from gateway.store import SYNCHRONOUS_MODES

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("auto", "json", "console")
CORE_TABLES = ("gateway", "logging", "http", "plugins")
#: ``sun_path`` of ``struct sockaddr_un`` on Linux: 108 bytes, the terminating NUL included.
AF_UNIX_PATH_MAX = 108


@attrs.frozen(kw_only=True)
class CoreConfig:
    """The ``[gateway]`` table."""

    state_dir: Path = Path("/var/lib/gateway")
    timezone: str = "Asia/Shanghai"
    control_socket: Path = Path("/run/gateway/control.sock")
    control_socket_mode: int = 0o660
    drain_deadline: float = 20.0
    restart_backoff_initial: float = 1.0
    restart_backoff_max: float = 60.0
    disabled_plugins: tuple[str, ...] = ()
    sqlite_synchronous: str = "full"

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


@attrs.frozen(kw_only=True)
class LoggingConfig:
    """The ``[logging]`` table."""

    level: str = "info"
    format: str = "auto"
    #: ``{plugin name: level}``, applied to log lines whose bound ``plugin`` field matches.
    plugin_levels: Mapping[str, str] = attrs.field(factory=dict)
    #: Debug only: log MSISDNs and IMSIs in clear text.
    clear_text_msisdn: bool = False


@attrs.frozen(kw_only=True)
class GatewayConfig:
    """A whole validated configuration file."""

    path: Path | None = None
    gateway: CoreConfig = attrs.field(factory=CoreConfig)
    logging: LoggingConfig = attrs.field(factory=LoggingConfig)
    http: HttpConfig = attrs.field(factory=HttpConfig)
    #: Parsed top-level component tables, by name (``sections["contact"]``).
    sections: Mapping[str, Any] = attrs.field(factory=dict)
    #: Parsed ``[plugins.<name>]`` tables, by name.
    plugins: Mapping[str, Any] = attrs.field(factory=dict)


# ------------------------------------------------------------------------------------------
# Reading the file
# ------------------------------------------------------------------------------------------

_TOML_POSITION = re.compile(r"^(?P<msg>.*?)\s*\(at line (?P<line>\d+), column (?P<col>\d+)\)$")


def read_toml(path: Path | str) -> dict[str, Any]:
    """Parse a TOML file; a syntax error becomes a ConfigError naming file, line and column."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            ConfigProblem("", f"cannot read: {exc.strerror or exc}", file=str(path))
        ) from exc
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(
            ConfigProblem(
                "",
                f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                "save the file as UTF-8 (GBK and other encodings are not accepted)",
                file=str(path),
            )
        ) from exc
    except RecursionError as exc:  # tomllib is recursive: arrays/tables nested thousands deep
        raise ConfigError(
            ConfigProblem("", "TOML nested too deeply to read", file=str(path))
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        m = _TOML_POSITION.match(str(exc))
        if m:
            where = f"{path}:{m['line']}:{m['col']}"
            message = f"TOML syntax error: {m['msg']}"
        else:
            where, message = str(path), f"TOML syntax error: {exc}"
        raise ConfigError(ConfigProblem("", message, file=where)) from exc


def format_problem(problem: ConfigProblem) -> str:
    """``file: dotted.key: message``; problems of the whole file read ``file: message``."""
    if problem.key:
        return str(problem)
    return f"{problem.file}: {problem.message}" if problem.file else problem.message


def _resolve(base: Path | None, value: str) -> Path:
    p = Path(value).expanduser()
    if not p.is_absolute() and base is not None:
        p = Path(os.path.normpath(base / p))
    return p


def parse_core(
    table: Mapping[str, Any], problems: list[ConfigProblem], base: Path | None
) -> CoreConfig:
    """Parse ``[gateway]``; problems are appended, defaults used where a value is bad."""
    d = CoreConfig()
    r = TableReader(table, "gateway", problems=problems)
    state_dir = r.str("state_dir", str(d.state_dir))
    timezone = r.timezone("timezone", d.timezone)
    control_socket = r.str("control_socket", str(d.control_socket))
    mode = r.int("control_socket_mode", d.control_socket_mode, min=0, max=0o777)
    drain = r.duration("drain_deadline", d.drain_deadline, min=0, max=3600)
    backoff = r.table("restart_backoff")
    initial = backoff.duration("initial", d.restart_backoff_initial, min=0.01, max=3600)
    maximum = backoff.duration("max", d.restart_backoff_max, min=0.01, max=86400)
    backoff.check_unknown()
    if initial is not None and maximum is not None and maximum < initial:
        backoff.problem("max", f"must be at least restart_backoff.initial ({initial}s)")
    disabled = r.str_list("disabled_plugins", ())
    sync = r.str("sqlite_synchronous", d.sqlite_synchronous, choices=SYNCHRONOUS_MODES[1:3])
    r.check_unknown()
    socket_path = _resolve(base, control_socket or str(d.control_socket))
    size = len(os.fsencode(socket_path))
    if size + 1 > AF_UNIX_PATH_MAX:
        r.problem(
            "control_socket",
            f"path too long for a Unix socket: {size} bytes, at most {AF_UNIX_PATH_MAX - 1} "
            f"({socket_path}); use a shorter path such as /run/gateway/control.sock",
        )
    return CoreConfig(
        state_dir=_resolve(base, state_dir or str(d.state_dir)),
        timezone=timezone,
        control_socket=socket_path,
        control_socket_mode=mode if mode is not None else d.control_socket_mode,
        drain_deadline=drain if drain is not None else d.drain_deadline,
        restart_backoff_initial=initial or d.restart_backoff_initial,
        restart_backoff_max=max(maximum or d.restart_backoff_max, initial or 0),
        disabled_plugins=tuple(disabled or ()),
        sqlite_synchronous=sync or d.sqlite_synchronous,
    )


def parse_logging(table: Mapping[str, Any], problems: list[ConfigProblem]) -> LoggingConfig:
    """Parse ``[logging]``."""
    d = LoggingConfig()
    r = TableReader(table, "logging", problems=problems)
    level = r.str("level", d.level, choices=LOG_LEVELS)
    fmt = r.str("format", d.format, choices=LOG_FORMATS)
    clear = r.bool("clear_text_msisdn", False)
    levels_reader = r.table("plugins")
    plugin_levels = {}
    for name in levels_reader.keys():
        value = levels_reader.str(name, choices=LOG_LEVELS)
        if value is not None:
            plugin_levels[name] = value
    r.check_unknown()
    return LoggingConfig(
        level=level or d.level,
        format=fmt or d.format,
        plugin_levels=plugin_levels,
        clear_text_msisdn=bool(clear),
    )


def peek_core(path: Path | str) -> CoreConfig:
    """Only the ``[gateway]`` table, for tools that need the socket path or disabled plugins.

    Raises ConfigError when the file cannot be read or that table is invalid.
    """
    path = Path(path)
    data = read_toml(path)
    problems: list[ConfigProblem] = []
    core = parse_core(data.get("gateway", {}), problems, path.resolve().parent)
    if problems:
        raise ConfigError([p.with_file(str(path)) for p in problems])
    return core


# ------------------------------------------------------------------------------------------
# The whole file
# ------------------------------------------------------------------------------------------


def _section_specs(plugin_manager: Any) -> list[tuple[str, Any]]:
    """``(plugin name, SectionSpec)`` for every spec returned by ``gateway_config_sections``."""
    from gateway.plugin_manager import call_each

    specs = []
    for plugin, result in call_each(plugin_manager, "gateway_config_sections"):
        for spec in result or ():
            specs.append((plugin, spec))
    return specs


def parse_config(
    data: Mapping[str, Any], plugin_manager: Any, *, path: Path | None = None
) -> GatewayConfig:
    """Validate already-parsed TOML ``data``; raises ConfigError with every problem found."""
    problems: list[ConfigProblem] = []
    base = path.resolve().parent if path is not None else None
    core = parse_core(data.get("gateway", {}), problems, base)
    logging_config = parse_logging(data.get("logging", {}), problems)
    http = parse_http(data.get("http", {}), problems, base)

    top_specs: dict[str, Any] = {}
    plugin_specs: dict[str, Any] = {}
    for plugin, spec in _section_specs(plugin_manager):
        owner = top_specs if spec.top_level else plugin_specs
        if spec.name in owner or (spec.top_level and spec.name in CORE_TABLES):
            raise PluginError(plugin, f"config section {spec.name!r} is already claimed")
        owner[spec.name] = spec

    sections: dict[str, Any] = {}
    for name, spec in top_specs.items():
        parsed = _parse_section(spec, data, name, name, problems)
        if parsed is not _MISSING:
            sections[name] = parsed

    raw_plugins = data.get("plugins", {})
    if not isinstance(raw_plugins, Mapping):
        problems.append(ConfigProblem("plugins", "must be a table of [plugins.<name>] tables"))
        raw_plugins = {}
    plugins: dict[str, Any] = {}
    for name, spec in plugin_specs.items():
        parsed = _parse_section(spec, raw_plugins, name, f"plugins.{name}", problems)
        if parsed is not _MISSING:
            plugins[name] = parsed
    for name in raw_plugins:
        if name not in plugin_specs and name not in core.disabled_plugins:
            hint = did_you_mean(name, list(plugin_specs))
            problems.append(
                ConfigProblem(f"plugins.{name}", f"no installed plugin claims this section{hint}")
            )

    known = set(CORE_TABLES) | set(top_specs)
    for name in data:
        if name not in known:
            problems.append(
                ConfigProblem(name, f"unknown table{did_you_mean(name, sorted(known))}")
            )

    if problems:
        file = str(path) if path is not None else "<config>"
        raise ConfigError([p.with_file(file) for p in problems])
    return GatewayConfig(
        path=path,
        gateway=core,
        logging=logging_config,
        http=http,
        sections=sections,
        plugins=plugins,
    )


_MISSING = object()


def _parse_section(
    spec: Any, container: Mapping[str, Any], name: str, key: str, problems: list[ConfigProblem]
) -> Any:
    if name not in container:
        if not spec.optional:
            problems.append(ConfigProblem(key, "this section is required"))
            return _MISSING
        table: Any = {}
    else:
        table = container[name]
    if not isinstance(table, Mapping):
        problems.append(ConfigProblem(key, f"must be a table, got {type(table).__name__}"))
        return _MISSING
    try:
        return spec.parse(table, key)
    except ConfigError as exc:
        problems.extend(exc.problems)
    except Exception as exc:  # a parser bug must still name where it happened
        problems.append(ConfigProblem(key, f"section parser failed: {type(exc).__name__}: {exc}"))
    return _MISSING


def check_named_files(config: GatewayConfig, plugin_manager: Any) -> list[ConfigProblem]:
    """Read and parse the files a valid configuration names (``gatewayd --check-config``).

    Start-up and reload do this themselves, refusing one bad campaign file and keeping the
    others; the check reports every problem at once, each naming its file. A section's parsed
    object takes part by offering ``check_files(base, hook) -> list[ConfigProblem]`` (``base``:
    the directory relative paths are resolved against).
    """
    base = config.path.resolve().parent if config.path is not None else None
    file = str(config.path) if config.path is not None else "<config>"
    problems: list[ConfigProblem] = []
    named = [*config.sections.items(), *((f"plugins.{k}", v) for k, v in config.plugins.items())]
    for key, section in named:
        check = getattr(section, "check_files", None)
        if check is None:
            continue
        try:
            found = check(base, getattr(plugin_manager, "hook", None))
        except Exception as exc:  # a checker bug must still name where it happened
            found = [ConfigProblem(key, f"file check failed: {type(exc).__name__}: {exc}")]
        problems.extend(p.with_file(file) for p in found)
    return problems


def load_config(path: Path | str, plugin_manager: Any) -> GatewayConfig:
    """Read and validate ``path``; raises ConfigError listing every problem (file + key)."""
    path = Path(path)
    return parse_config(read_toml(path), plugin_manager, path=path)
