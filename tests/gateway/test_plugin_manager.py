"""Plugin discovery through entry points: order, disabling, and errors that name the plugin."""

from __future__ import annotations

from pathlib import Path

import pluggy
import pytest

from gateway import hookimpl, hookspecs
from gateway.default_plugins import DEFAULT_PLUGINS
from gateway.errors import PluginError
from gateway.plugin_manager import call_each, make_plugin_manager, plugin_names


def install(site: Path, name: str, module: str, source: str) -> None:
    """Write ``module`` and a dist-info declaring entry point ``name`` into ``site``."""
    (site / f"{module}.py").write_text(source)
    info = site / f"{module}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[gateway.plugins]\n{name} = {module}\n")


GOOD = """
from gateway import hookimpl, hookspecs

@hookimpl
def gateway_status(gateway):
    return {"from": __name__}
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    path = tmp_path / "site"
    path.mkdir()
    monkeypatch.syspath_prepend(str(path))
    return path


def test_default_plugins_first_then_entry_points(site):
    """Core components are registered before entry-point plugins, which are found via importlib.metadata."""
    install(site, "pm_good", "pm_good_mod", GOOD)
    pm = make_plugin_manager()
    names = plugin_names(pm)
    assert names[: len(DEFAULT_PLUGINS)] == [p.partition(":")[0] for p in DEFAULT_PLUGINS]
    assert "pm_good" in names[len(DEFAULT_PLUGINS) :]
    assert pm.get_plugin("pm_good").__name__ == "pm_good_mod"


def test_disabled_plugin_is_not_even_imported(site):
    """A disabled plugin is skipped before import (a broken one cannot break start-up)."""
    install(site, "pm_broken", "pm_broken_mod", "raise ImportError('needs libfoo')\n")
    pm = make_plugin_manager(["pm_broken"])
    assert "pm_broken" not in plugin_names(pm)


def test_import_error_names_the_plugin(site):
    """An entry point that fails to import is a PluginError naming it."""
    install(site, "pm_broken", "pm_broken_mod", "raise ImportError('needs libfoo')\n")
    with pytest.raises(PluginError) as exc:
        make_plugin_manager()
    assert exc.value.plugin == "pm_broken" and "needs libfoo" in str(exc.value)


def test_misspelt_hook_is_refused_by_check_pending(site):
    """An implementation without a matching hookspec stops loading, naming the plugin."""
    install(
        site,
        "pm_typo",
        "pm_typo_mod",
        "from gateway import hookimpl\n\n@hookimpl\ndef gateway_servics(gateway):\n    return []\n",
    )
    with pytest.raises(PluginError) as exc:
        make_plugin_manager()
    assert exc.value.plugin == "pm_typo" and "gateway_servics" in str(exc.value)


def test_disabling_an_unknown_plugin_suggests_the_name(site):
    """disabled_plugins naming no installed plugin is an error with a did-you-mean."""
    install(site, "pm_good", "pm_good_mod", GOOD)
    with pytest.raises(PluginError, match=r"not installed \(did you mean 'pm_good'\?\)"):
        make_plugin_manager(["pm_goood"])


def test_call_each_names_the_failing_plugin_or_collects():
    """call_each raises PluginError naming the plugin, or reports to on_error and goes on."""

    class Bad:
        @hookimpl
        def gateway_status(self, gateway):
            raise RuntimeError("boom")

    class Good:
        @hookimpl
        def gateway_status(self, gateway):
            return {"ok": 1}

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(Bad(), name="bad")
    pm.register(Good(), name="good")
    with pytest.raises(
        PluginError, match="plugin 'bad': hook gateway_status failed: RuntimeError: boom"
    ):
        call_each(pm, "gateway_status", gateway=None)
    errors = []
    results = call_each(pm, "gateway_status", gateway=None, on_error=lambda p, e: errors.append(p))
    assert ("good", {"ok": 1}) in results and errors == ["bad"]


def test_a_default_plugin_object_is_made_per_plugin_manager():
    """module:Class entries give each plugin manager (each daemon) its own plugin object."""
    first, second = (
        make_plugin_manager(load_entry_points=False),
        make_plugin_manager(load_entry_points=False),
    )
    one = first.get_plugin("gateway.campaigns.plugin")
    two = second.get_plugin("gateway.campaigns.plugin")
    assert type(one).__name__ == "CampaignsPlugin" and one is not two


def test_an_entry_point_naming_a_class_gets_an_instance_per_plugin_manager():
    """``name = "module:Class"`` entry points are instantiated once per plugin manager, so two
    gateways in one process never share a plugin's state (boss_files is such a plugin)."""
    from gateway.plugin_manager import make_plugin_manager
    from plugins.boss_files import BossFilesPlugin

    first, second = make_plugin_manager(), make_plugin_manager()
    a, b = first.get_plugin("boss_files"), second.get_plugin("boss_files")
    assert isinstance(a, BossFilesPlugin) and isinstance(b, BossFilesPlugin)
    assert a is not b
