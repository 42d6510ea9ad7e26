"""Building the plugin manager and the registries of named components.

``load_catalog()`` returns a fresh :class:`Catalog` each call (no global state), so
every test gets its own.  Built-in plugins, entry-point plugins (group
``qcrd_bench``) and plugin files from ``--plugins-dir`` all register through the
same hooks.  Set ``QCRD_BENCH_TRACE_HOOKS=1`` to trace every hook call to stderr.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pluggy

from . import __version__, hookspecs
from .errors import PluginError

ENTRY_POINT_GROUP = "qcrd_bench"

# slot/kind -> the hook that fills its registry
KINDS = {
    "tasks": "register_tasks",
    "methods": "register_methods",
    "teachers": "register_teachers",
    "filters": "register_positive_filters",
    "negatives": "register_negative_generators",
    "discriminators": "register_discriminators",
    "losses": "register_losses",
    "students": "register_students",
}

BUILTIN_MODULES = (
    "qcrd_plugins.tasks",
    "qcrd_plugins.teachers",
    "qcrd_plugins.mcckd",
    "qcrd_plugins.llm_teachers",
    "qcrd_plugins.hf_teacher",
    "qcrd_plugins.published",
    "qcrd_plugins.synthetic_teacher",
    "qcrd_plugins.filters",
    "qcrd_plugins.negatives",
    "qcrd_plugins.discriminators",
    "qcrd_plugins.losses",
    "qcrd_plugins.methods",
    "qcrd_plugins.students",
)


def did_you_mean(name: str, available: Iterable[str]) -> str:
    """``did you mean 'x'? available: a, b, c`` (the suggestion only when one is close)."""
    available = sorted(available)
    close = difflib.get_close_matches(name, available, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"{hint}available: {', '.join(available) or '(none)'}"


@dataclass
class Registry:
    """Components of one kind by name, remembering which plugin registered each."""

    kind: str
    items: dict[str, Any] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)

    def add(self, component: Any, plugin: str) -> None:
        name = getattr(component, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin {plugin!r} registered a {self.kind[:-1]} without a name: {component!r}")
        if name in self.items:
            raise PluginError(
                f"duplicate {self.kind[:-1]} name {name!r}: registered by plugin {self.owners[name]!r} "
                f"and by plugin {plugin!r}"
            )
        self.items[name] = component
        self.owners[name] = plugin

    def get(self, name: str) -> Any:
        if name not in self.items:
            raise PluginError(f"unknown {self.kind[:-1]} {name!r}; {did_you_mean(name, self.items)}")
        return self.items[name]

    def __contains__(self, name: str) -> bool:
        return name in self.items

    def names(self) -> list[str]:
        return sorted(self.items)


@dataclass
class Catalog:
    """The plugin manager and one registry per kind of component."""

    pm: pluggy.PluginManager
    registries: dict[str, Registry]

    def __getattr__(self, kind: str) -> Registry:
        try:
            return self.__dict__["registries"][kind]
        except KeyError:
            raise AttributeError(kind) from None

    def plugin_info(self) -> list[dict[str, Any]]:
        """Name, version and implemented hooks of every loaded plugin."""
        dists = {id(plugin): dist for plugin, dist in self.pm.list_plugin_distinfo()}
        info = []
        for name, plugin in sorted(self.pm.list_name_plugin(), key=lambda np: str(np[0])):
            dist = dists.get(id(plugin))
            if dist is not None:
                version = dist.version
            elif name.startswith("qcrd_plugins."):
                version = __version__
            else:
                version = getattr(plugin, "__version__", None)
            hooks = sorted(caller.name for caller in self.pm.get_hookcallers(plugin) or [])
            info.append({"name": name, "version": version, "hooks": hooks})
        return info


def build_plugin_manager(plugins_dir: str | os.PathLike | None = None, entry_points: bool = True) -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for module_name in BUILTIN_MODULES:
        pm.register(importlib.import_module(module_name), name=module_name)
    if entry_points:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    if plugins_dir is not None:
        for path in sorted(Path(plugins_dir).glob("*.py")):
            pm.register(_import_file(path), name=f"file:{path.name}")
    # A misspelled hook implementation fails loudly instead of being ignored.
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin validation failed: {exc}") from None
    if os.environ.get("QCRD_BENCH_TRACE_HOOKS"):
        pm.trace.root.setwriter(sys.stderr.write)
        pm.enable_tracing()
    return pm


def _import_file(path: Path):
    directory = Path(path).parent
    if not directory.is_dir():
        raise PluginError(f"--plugins-dir {directory}: not a directory")
    spec = importlib.util.spec_from_file_location(f"qcrd_bench_local_plugin_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # a broken user file must not look like our bug
        raise PluginError(f"plugin file {path}: {type(exc).__name__}: {exc}") from exc
    return module


def load_catalog(plugins_dir: str | os.PathLike | None = None, entry_points: bool = True,
                 pm: pluggy.PluginManager | None = None) -> Catalog:
    """Build a plugin manager (unless given) and fill the registries from its hooks."""
    if plugins_dir is not None and not Path(plugins_dir).is_dir():
        raise PluginError(f"--plugins-dir {plugins_dir}: not a directory")
    pm = pm or build_plugin_manager(plugins_dir, entry_points)
    registries = {}
    for kind, hook_name in KINDS.items():
        registry = Registry(kind)
        # Call each implementation ourselves so a registration knows its plugin.
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            impl.function(register=lambda component, _p=impl.plugin_name: registry.add(component, _p))
        registries[kind] = registry
    return Catalog(pm, registries)
