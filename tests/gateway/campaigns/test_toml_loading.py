"""Campaign and areas files are read by the one TOML loader of the configuration."""

from __future__ import annotations

import pytest

from gateway.campaigns.loader import load_campaign_dir
from gateway.errors import ConfigError
from gateway.rules.areas import load_areas


def test_deeply_nested_campaign_file_is_a_problem_not_a_crash(tmp_path):
    """A campaign file nested thousands deep is skipped with a problem (it raised RecursionError)."""
    (tmp_path / "deep.toml").write_text("x = " + "[" * 20_000 + "]" * 20_000 + "\n")
    defs, problems = load_campaign_dir(tmp_path, areas={})
    assert defs == []
    assert [p.message for p in problems] == ["TOML nested too deeply to read"]


def test_syntax_errors_name_file_line_and_column(tmp_path):
    """Campaign and areas files report a syntax error as file:line:column, like gateway.toml."""
    (tmp_path / "bad.toml").write_text('id = "a"\nname = = 1\n')
    _, problems = load_campaign_dir(tmp_path, areas={})
    assert [p.file for p in problems] == [f"{tmp_path / 'bad.toml'}:2:8"]
    with pytest.raises(ConfigError) as info:
        load_areas(tmp_path / "bad.toml")
    assert info.value.problems[0].file == f"{tmp_path / 'bad.toml'}:2:8"
