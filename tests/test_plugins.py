from __future__ import annotations

import types

import pluggy
import pytest

from qcrd_bench.components import Task
from qcrd_bench.errors import PluginError
from qcrd_bench.hookspecs import hookimpl
from qcrd_bench.plugins import Registry, build_plugin_manager, load_catalog


class EchoTask(Task):
    name = "echo"
    description = "a test task"


def plugin_module(name: str, **hooks) -> types.ModuleType:
    module = types.ModuleType(name)
    for hook_name, fn in hooks.items():
        setattr(module, hook_name, hookimpl(fn))
    return module


def test_builtins_register_every_kind(catalog):
    assert {"svamp"} <= set(catalog.tasks.names())
    assert {"finetune", "dss"} <= set(catalog.methods.names())
    for kind in ("teachers", "filters", "negatives", "discriminators", "losses", "students"):
        assert catalog.registries[kind].names(), kind
    # Every method's slots name registered components.
    from qcrd_bench.config import SLOTS

    for name in catalog.methods.names():
        for slot, component in catalog.methods.get(name).slots().items():
            assert component in catalog.registries[SLOTS[slot]], (name, slot, component)


def test_external_plugin_registers_through_the_same_hooks():
    pm = build_plugin_manager(entry_points=False)
    pm.register(plugin_module("my_plugin", register_tasks=lambda register: register(EchoTask())), name="my_plugin")
    catalog = load_catalog(pm=pm)
    assert catalog.tasks.get("echo").description == "a test task"
    assert catalog.tasks.owners["echo"] == "my_plugin"
    assert any(p["name"] == "my_plugin" for p in catalog.plugin_info())


def test_duplicate_name_names_both_plugins():
    pm = build_plugin_manager(entry_points=False)
    pm.register(plugin_module("a", register_tasks=lambda register: register(EchoTask())), name="plugin_a")
    pm.register(plugin_module("b", register_tasks=lambda register: register(EchoTask())), name="plugin_b")
    with pytest.raises(PluginError, match="duplicate task name 'echo'.*plugin_[ab].*plugin_[ab]"):
        load_catalog(pm=pm)


def test_duplicate_of_a_builtin_is_an_error():
    class FakeSvamp(EchoTask):
        name = "svamp"

    pm = build_plugin_manager(entry_points=False)
    pm.register(plugin_module("x", register_tasks=lambda register: register(FakeSvamp())), name="shadow")
    with pytest.raises(PluginError, match="'qcrd_plugins.tasks'.*'shadow'"):
        load_catalog(pm=pm)


def test_unknown_name_suggests_and_lists():
    registry = Registry("methods")
    registry.add(types.SimpleNamespace(name="dss"), "p")
    registry.add(types.SimpleNamespace(name="finetune"), "p")
    with pytest.raises(PluginError, match=r"unknown method 'dsss'; did you mean 'dss'\? available: dss, finetune"):
        registry.get("dsss")
    with pytest.raises(PluginError, match=r"unknown method 'zzz'; available: dss, finetune"):
        registry.get("zzz")


def test_misspelled_hook_fails_loudly(tmp_path):
    (tmp_path / "bad_plugin.py").write_text(
        "from qcrd_bench.hookspecs import hookimpl\n\n@hookimpl\ndef register_taskz(register):\n    pass\n")
    with pytest.raises(PluginError, match="register_taskz"):
        load_catalog(plugins_dir=tmp_path, entry_points=False)


def test_plugins_dir_loads_unpackaged_files(tmp_path):
    (tmp_path / "my_loss.py").write_text(
        "from qcrd_bench.components import Loss\nfrom qcrd_bench.hookspecs import hookimpl\n\n"
        "class Zero(Loss):\n    name = 'zero'\n\n@hookimpl\ndef register_losses(register):\n    register(Zero())\n")
    catalog = load_catalog(plugins_dir=tmp_path, entry_points=False)
    assert catalog.losses.owners["zero"] == "file:my_loss.py"


def test_broken_plugin_file_is_reported(tmp_path):
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom')\n")
    with pytest.raises(PluginError, match="broken.py: RuntimeError: boom"):
        load_catalog(plugins_dir=tmp_path, entry_points=False)


def test_missing_plugins_dir(tmp_path):
    with pytest.raises(PluginError, match="not a directory"):
        load_catalog(plugins_dir=tmp_path / "nope")


def test_each_catalog_is_fresh():
    first, second = load_catalog(entry_points=False), load_catalog(entry_points=False)
    assert first.pm is not second.pm and first.tasks is not second.tasks


def test_every_hook_is_documented():
    from qcrd_bench import hookspecs

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in dir(pm.hook):
        if not name.startswith("_"):
            assert (getattr(hookspecs, name).__doc__ or "").strip(), name
