"""Meta-tests keeping the plugin contract honest: every hook is documented and tested."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from gateway import hookspecs

ROOT = Path(__file__).resolve().parents[2]
HOOKS = sorted(
    name
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
    if hasattr(fn, f"{hookspecs.PROJECT}_spec")
)


def test_hookspecs_found():
    """The hookspec module declares the documented groups of hooks."""
    assert {"gateway_config_sections", "gateway_services", "gateway_delivery_report"} <= set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented(hook):
    """docs/hooks.md has a section for the hook, with a code example, and the spec has a docstring."""
    text = (ROOT / "docs" / "hooks.md").read_text()
    match = re.search(rf"^### {hook}\n(.*?)(?=^### |\Z)", text, re.S | re.M)
    assert match, f"docs/hooks.md has no '### {hook}' section"
    assert "```python" in match.group(1) and "@hookimpl" in match.group(1)
    assert inspect.getdoc(getattr(hookspecs, hook))


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_used_in_a_test(hook):
    """Some test module (other than this one) names the hook."""
    here = Path(__file__).resolve()
    for path in (ROOT / "tests").rglob("test_*.py"):
        if path.resolve() != here and hook in path.read_text(errors="replace"):
            return
    pytest.fail(f"no test mentions {hook}")
