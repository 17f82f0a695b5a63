"""gateway.toml loading: core tables, plugin sections through the hook, errors with file and key."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import hookimpl
from gateway.config import format_problem, load_config, parse_config, peek_core
from gateway.config_reader import TableReader
from gateway.contracts import SectionSpec
from gateway.errors import ConfigError, PluginError
from gateway.plugin_manager import make_plugin_manager


@attrs.frozen
class SmscConfig:
    host: str
    port: int


def parse_smsc(table: Mapping[str, Any], key: str) -> SmscConfig:
    r = TableReader(table, key)
    cfg = SmscConfig(host=r.str("host"), port=r.int("port", 2775, min=1, max=65535))
    r.finish()
    return cfg


class SectionsPlugin:
    @hookimpl
    def gateway_config_sections(self):
        return [
            SectionSpec(name="smsc", parse=parse_smsc, optional=False),
            SectionSpec(name="widgets", parse=lambda t, k: dict(t), top_level=True),
        ]


def pm_with(*plugins: object):
    return make_plugin_manager(
        extra=[(f"p{i}", p) for i, p in enumerate(plugins)], load_entry_points=False
    )


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return path


def problems(exc: pytest.ExceptionInfo[ConfigError]) -> list[str]:
    return [str(p) for p in exc.value.problems]


def test_defaults_and_relative_paths(tmp_path):
    """An empty file is valid; relative paths resolve against the config file's directory."""
    cfg = load_config(write(tmp_path, '[gateway]\nstate_dir = "var/state"\n'), pm_with())
    assert cfg.gateway.state_dir == tmp_path / "var" / "state"
    assert cfg.gateway.control_socket == Path("/run/gateway/control.sock")
    assert cfg.gateway.control_socket_mode == 0o660
    assert cfg.gateway.drain_deadline == 20.0
    assert cfg.gateway.tz.key == "Asia/Shanghai"
    assert cfg.logging.level == "info" and cfg.logging.clear_text_msisdn is False
    assert cfg.http.listen == ""


def test_full_core_tables(tmp_path):
    """Every core option is read with its type (durations, octal mode, levels per plugin)."""
    text = """
    [gateway]
    timezone = "Europe/Paris"
    control_socket_mode = 0o600
    drain_deadline = "2m"
    disabled_plugins = []
    sqlite_synchronous = "normal"
    [gateway.restart_backoff]
    initial = "500ms"
    max = "1m"
    [logging]
    level = "warning"
    format = "json"
    clear_text_msisdn = true
    [logging.plugins]
    sms_smpp = "debug"
    [http]
    listen = "127.0.0.1:0"
    """
    cfg = load_config(write(tmp_path, text.replace("\n    ", "\n")), pm_with())
    g = cfg.gateway
    assert (g.timezone, g.control_socket_mode, g.drain_deadline) == ("Europe/Paris", 0o600, 120.0)
    assert (g.restart_backoff_initial, g.restart_backoff_max, g.sqlite_synchronous) == (
        0.5,
        60.0,
        "normal",
    )
    assert cfg.logging.plugin_levels == {"sms_smpp": "debug"} and cfg.logging.format == "json"
    assert cfg.http.listen == "127.0.0.1:0"


def test_errors_name_file_and_dotted_key(tmp_path):
    """Each problem names the file and the dotted key; all problems are reported together."""
    path = write(
        tmp_path,
        '[gateway]\ndrain_deadline = "soon"\n[logging]\nlevel = "loud"\n[plugins.smsc]\nport = 99999\n',
    )
    with pytest.raises(ConfigError) as exc:
        load_config(path, pm_with(SectionsPlugin()))
    found = problems(exc)
    assert (
        f'{path}: gateway.drain_deadline: expected a duration such as 30, "30s", "5m", "2h" or "7d", got \'soon\''
        in found
    )
    assert any(p.startswith(f"{path}: logging.level: must be one of") for p in found)
    assert f"{path}: plugins.smsc.host: is required" in found
    assert f"{path}: plugins.smsc.port: must be at most 65535, got 99999" in found
    assert len(found) == 4


def test_unknown_key_is_refused_with_did_you_mean(tmp_path):
    """A misspelt key is an error suggesting the right one, in core and plugin tables alike."""
    path = write(tmp_path, '[gateway]\ntimezon = "UTC"\n[plugins.smsc]\nhost = "a"\nprot = 1\n')
    with pytest.raises(ConfigError) as exc:
        load_config(path, pm_with(SectionsPlugin()))
    assert problems(exc) == [
        f"{path}: gateway.timezon: unknown key (did you mean 'timezone'?)",
        f"{path}: plugins.smsc.prot: unknown key (did you mean 'port'?)",
    ]


def test_unknown_tables_and_unclaimed_plugin_sections(tmp_path):
    """Unknown top-level tables and [plugins.X] tables no plugin claims are errors with hints."""
    path = write(
        tmp_path, '[logginng]\n[widgetz]\n[plugins.smcs]\nhost = "x"\n[plugins.smsc]\nhost = "x"\n'
    )
    with pytest.raises(ConfigError) as exc:
        load_config(path, pm_with(SectionsPlugin()))
    assert sorted(problems(exc)) == sorted(
        [
            f"{path}: logginng: unknown table (did you mean 'logging'?)",
            f"{path}: widgetz: unknown table (did you mean 'widgets'?)",
            f"{path}: plugins.smcs: no installed plugin claims this section (did you mean 'smsc'?)",
        ]
    )


def test_sections_are_parsed_by_their_specs(tmp_path):
    """Top-level specs land in config.sections, plugin specs in config.plugins."""
    path = write(tmp_path, '[widgets]\nx = 1\n[plugins.smsc]\nhost = "smsc.local"\n')
    cfg = load_config(path, pm_with(SectionsPlugin()))
    assert cfg.sections["widgets"] == {"x": 1}
    assert cfg.plugins == {"smsc": SmscConfig(host="smsc.local", port=2775)}


def test_required_section_missing(tmp_path):
    """A SectionSpec with optional=False makes its table mandatory."""
    path = write(tmp_path, "")
    with pytest.raises(ConfigError) as exc:
        load_config(path, pm_with(SectionsPlugin()))
    assert problems(exc) == [f"{path}: plugins.smsc: this section is required"]


def test_toml_syntax_error_names_line_and_column(tmp_path):
    """A TOML syntax error names file:line:column."""
    path = write(tmp_path, '[gateway]\nstate_dir = "/x"\ntimezone = \n')
    with pytest.raises(ConfigError) as exc:
        load_config(path, pm_with())
    (problem,) = problems(exc)
    assert problem.startswith(f"{path}:3:") and "TOML syntax error" in problem


def test_missing_file(tmp_path):
    """A missing file is a ConfigError naming it."""
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path / "nope.toml", pm_with())
    assert "nope.toml" in str(exc.value) and "cannot read" in str(exc.value)


def test_parser_bug_is_reported_at_its_section(tmp_path):
    """A section parser raising something other than ConfigError still names the section."""

    class Buggy:
        @hookimpl
        def gateway_config_sections(self):
            return [SectionSpec(name="buggy", parse=lambda t, k: 1 / 0)]

    path = write(tmp_path, "")
    with pytest.raises(ConfigError) as exc:
        load_config(path, pm_with(Buggy()))
    assert problems(exc) == [
        f"{path}: plugins.buggy: section parser failed: ZeroDivisionError: division by zero"
    ]


def test_two_plugins_claiming_one_section_is_a_plugin_error(tmp_path):
    """Claiming a section name twice names the second plugin."""
    with pytest.raises(PluginError) as exc:
        load_config(write(tmp_path, ""), pm_with(SectionsPlugin(), SectionsPlugin()))
    assert exc.value.plugin == "p1"


def test_bad_values_in_core_tables(tmp_path):
    """Timezone, backoff order, socket mode and http listen are validated."""
    text = (
        '[gateway]\ntimezone = "Asia/Nowhere"\ncontrol_socket_mode = 0o1777\n'
        '[gateway.restart_backoff]\ninitial = "10s"\nmax = "1s"\n[http]\nlisten = "8080"\n'
    )
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_config(path, pm_with())
    keys = [p.key for p in exc.value.problems]
    assert keys == [
        "gateway.timezone",
        "gateway.control_socket_mode",
        "gateway.restart_backoff.max",
        "http.listen",
    ]


def test_disabled_plugin_section_is_ignored(tmp_path):
    """The [plugins.X] table of a disabled plugin is not an error."""
    path = write(tmp_path, '[gateway]\ndisabled_plugins = ["old"]\n[plugins.old]\nanything = 1\n')
    cfg = load_config(path, pm_with())
    assert cfg.gateway.disabled_plugins == ("old",) and cfg.plugins == {}


def test_peek_core_reads_only_the_gateway_table(tmp_path):
    """peek_core (used by gatewayctl --config) needs no plugins."""
    path = write(tmp_path, '[gateway]\ncontrol_socket = "/tmp/x.sock"\n[plugins.whatever]\n')
    assert peek_core(path).control_socket == Path("/tmp/x.sock")


def test_shipped_config_files_are_valid():
    """etc/gateway.toml and the demo config pass validation with the installed plugins."""
    root = Path(__file__).resolve().parents[2]
    for path in (root / "etc" / "gateway.toml", root / "etc" / "demo" / "gateway.toml"):
        core = peek_core(path)
        load_config(path, make_plugin_manager(core.disabled_plugins))


_scalars = st.one_of(
    st.booleans(), st.integers(-(2**40), 2**40), st.text(max_size=12), st.floats(allow_nan=False)
)
_keys = st.sampled_from(
    [
        "gateway",
        "logging",
        "http",
        "plugins",
        "contact",
        "outbox",
        "campaigns",
        "level",
        "state_dir",
        "timezone",
        "drain_deadline",
        "listen",
        "restart_backoff",
        "initial",
        "x",
        "smsc",
    ]
)
_tables = st.recursive(
    st.dictionaries(_keys, _scalars, max_size=4),
    lambda children: st.dictionaries(
        _keys, st.one_of(_scalars, children, st.lists(children, max_size=2)), max_size=4
    ),
    max_leaves=12,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=_tables)
def test_any_document_is_accepted_or_refused_with_problems(data):
    """Whatever the TOML holds, validation returns a config or raises ConfigError naming keys; never crashes."""
    pm = make_plugin_manager(load_entry_points=False)
    try:
        parse_config(data, pm, path=Path("/etc/gateway/gateway.toml"))
    except ConfigError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.file == "/etc/gateway/gateway.toml"
            assert "section parser failed" not in problem.message, str(problem)


def test_problem_formatting_for_whole_file_problems(tmp_path):
    """A problem of the whole file reads 'file:line:col: message' with no empty key."""
    path = write(tmp_path, "[gateway\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path, pm_with())
    text = format_problem(exc.value.problems[0])
    assert (
        text.startswith(f"{path}:1:") and "(top level)" not in text and "TOML syntax error" in text
    )


def test_nan_durations_and_numbers_are_refused(tmp_path):
    """TOML nan is refused for durations and numbers (trio would raise on it later, at shutdown or restart)."""
    path = write(
        tmp_path,
        "[gateway]\ndrain_deadline = nan\n[gateway.restart_backoff]\ninitial = nan\n"
        "[http]\nidle_timeout = nan\n",
    )
    with pytest.raises(ConfigError) as exc:
        load_config(path, pm_with())
    found = problems(exc)
    for key in ("gateway.drain_deadline", "gateway.restart_backoff.initial", "http.idle_timeout"):
        assert any(f"{path}: {key}: " in p for p in found), (key, found)
    r = TableReader({"x": float("nan")}, "t")
    assert r.float("x", 1.0) == 1.0 and not r.ok


def test_deeply_nested_toml_is_a_config_error(tmp_path):
    """A file nesting arrays thousands deep is a ConfigError naming it, not a RecursionError."""
    path = write(tmp_path, "a = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path, pm_with())
    assert str(path) in str(exc.value) and "nested too deeply" in str(exc.value)
