"""Finding and registering plugins.

The core's own components (:data:`gateway.default_plugins.DEFAULT_PLUGINS`) are registered
first, then every entry point of the group ``gateway.plugins`` (built-in plugins and third-party
ones alike), minus the names listed in ``[gateway] disabled_plugins``. Registration ends with
``check_pending()``, so a hook implementation without a spec (a typo in a hook name) stops
start-up instead of being silently ignored.

Hooks are called through :func:`call_each` when the core needs to know *which* plugin returned
what (registration hooks) or must name the plugin that failed; plain ``pm.hook.<name>()`` is
used for observers.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
from collections.abc import Callable, Iterable
from typing import Any

import pluggy

from gateway import hookspecs
from gateway.config_reader import did_you_mean
from gateway.default_plugins import DEFAULT_PLUGINS
from gateway.errors import PluginError

ENTRY_POINT_GROUP = "gateway.plugins"


def entry_points() -> list[importlib.metadata.EntryPoint]:
    """The installed ``gateway.plugins`` entry points, by name (first one wins on duplicates)."""
    seen: dict[str, importlib.metadata.EntryPoint] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        seen.setdefault(ep.name, ep)
    return [seen[name] for name in sorted(seen)]


def make_plugin_manager(
    disabled: Iterable[str] = (),
    *,
    extra: Iterable[tuple[str, object]] = (),
    load_entry_points: bool = True,
) -> pluggy.PluginManager:
    """A PluginManager with the default plugins, the entry-point plugins and ``extra``.

    ``extra`` (name, plugin object) pairs are registered after the others (tests, embedding).
    Raises PluginError naming the plugin when one cannot be imported or registered, or when
    ``disabled`` names a plugin that is not installed.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for entry in DEFAULT_PLUGINS:
        path, _, factory = entry.partition(":")
        try:
            module = importlib.import_module(path)
            # "module:Class": a fresh instance per plugin manager holds the component's state.
            plugin = getattr(module, factory)() if factory else module
        except Exception as exc:
            raise PluginError(
                path, f"cannot import core component: {type(exc).__name__}: {exc}"
            ) from exc
        _register(pm, plugin, path)
    disabled = set(disabled)
    if load_entry_points:
        eps = entry_points()
        names = [ep.name for ep in eps]
        for name in sorted(disabled):
            if name not in names:
                hint = did_you_mean(name, names)
                raise PluginError(
                    name, f"listed in gateway.disabled_plugins but not installed{hint}"
                )
        for ep in eps:
            if ep.name in disabled:
                continue
            try:
                plugin = ep.load()
                # "module:Class": a fresh instance per plugin manager holds the plugin's state
                # (two gateways in one process never share it; no registry keyed by gateway).
                if inspect.isclass(plugin):
                    plugin = plugin()
            except Exception as exc:
                raise PluginError(
                    ep.name, f"cannot load entry point {ep.value!r}: {type(exc).__name__}: {exc}"
                ) from exc
            _register(pm, plugin, ep.name)
    for name, plugin in extra:
        _register(pm, plugin, name)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(_plugin_name(pm, exc.plugin), str(exc)) from exc
    return pm


def _register(pm: pluggy.PluginManager, plugin: object, name: str) -> None:
    try:
        pm.register(plugin, name=name)
    except (pluggy.PluginValidationError, ValueError) as exc:
        raise PluginError(name, f"cannot register: {exc}") from exc


def _plugin_name(pm: pluggy.PluginManager, plugin: object) -> str:
    return pm.get_name(plugin) or repr(plugin)


def plugin_names(pm: pluggy.PluginManager) -> list[str]:
    """Registered plugin names in registration order."""
    return [name for name, _ in pm.list_name_plugin()]


def call_each(
    pm: pluggy.PluginManager,
    hook_name: str,
    *,
    on_error: Callable[[str, Exception], None] | None = None,
    **kwargs: Any,
) -> list[tuple[str, Any]]:
    """Call every implementation of ``hook_name`` in registration order.

    Returns ``(plugin name, result)`` for each implementation that returned non-None.
    An exception raised by an implementation becomes a PluginError naming its plugin, or,
    with ``on_error``, is passed to it with the plugin name and the other plugins still run.
    Hook wrappers are not called (registration hooks have none).
    """
    caller = getattr(pm.hook, hook_name)
    results = []
    for impl in caller.get_hookimpls():
        if impl.hookwrapper or getattr(impl, "wrapper", False):
            continue
        args = {name: kwargs[name] for name in impl.argnames}
        try:
            result = impl.function(**args)
        except Exception as exc:
            if on_error is not None:
                on_error(impl.plugin_name, exc)
                continue
            raise PluginError(
                impl.plugin_name, f"hook {hook_name} failed: {type(exc).__name__}: {exc}"
            ) from exc
        if result is not None:
            results.append((impl.plugin_name, result))
    return results
