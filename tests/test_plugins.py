"""The plugin registry: load order, origins, autoload switch, block list, clashes and bad stages."""

from __future__ import annotations

from pathlib import Path

import pytest

from cosmoseg.errors import PluginError
from cosmoseg.plugins import DEFAULT_PLUGINS, build_registry

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_built_in_stages_come_from_the_built_in_plugins() -> None:
    registry = build_registry(autoload=False)
    assert list(registry.plugins)[: len(DEFAULT_PLUGINS)] == list(DEFAULT_PLUGINS)
    entry = registry.stages["sim.gaussian_field"]
    assert entry.plugin.origin == "built-in" and entry.plugin.distribution == "cosmoseg"
    assert entry.plugin.label.startswith("cosmoseg ") and entry.plugin.label.endswith("(built-in)")
    assert "npy-cube" in registry.readers


def test_local_plugin_files_load_after_the_others(tmp_path: Path) -> None:
    registry = build_registry(["fixtures/toy_plugin.py"], autoload=False, base_dir=FIXTURES.parent)
    assert list(registry.plugins)[-1] == "toy_plugin"
    assert registry.stages["toy.scale"].plugin.origin == "local"
    assert registry.stages["toy.scale"].plugin.label.endswith("toy_plugin.py (local)")


def test_a_missing_local_plugin_is_a_clear_error() -> None:
    with pytest.raises(PluginError, match=r"local plugin file 'nope\.py' not found"):
        build_registry(["nope.py"], autoload=False)


def test_two_stages_with_one_name_is_an_error_naming_both() -> None:
    with pytest.raises(PluginError) as info:
        build_registry([str(FIXTURES / "clash_plugin.py")], autoload=False)
    text = str(info.value)
    assert "stage 'sim.gaussian_field' is registered twice" in text
    assert "'cosmoseg.sim.stages' from cosmoseg" in text and "'clash_plugin' from" in text


def test_block_list_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = build_registry(blocked=["cosmoseg.measure.stages"], autoload=False)
    assert "measure.power_spectrum" not in registry.stages and "sim.gaussian_field" in registry.stages
    blocked = (
        "cosmoseg.sim.stages, cosmoseg.io.stages, cosmoseg.protohalo.stages, cosmoseg.galaxies.stages, "
        "cosmoseg.paint.stages, cosmoseg.infer.stages"
    )
    monkeypatch.setenv("COSMOSEG_BLOCK_PLUGINS", blocked)
    registry = build_registry(autoload=False)
    assert registry.stages and all(name.startswith("measure.") for name in registry.stages)
    assert not registry.readers


def test_autoload_can_be_disabled_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSMOSEG_DISABLE_PLUGIN_AUTOLOAD", "1")
    registry = build_registry()
    assert all(info.origin != "entry point" for info in registry.plugins.values())


def test_a_malformed_stage_is_refused_with_its_plugin_named(tmp_path: Path) -> None:
    plugin = tmp_path / "bad_plugin.py"
    plugin.write_text(
        "from cosmoseg import Stage, Field, hookimpl\n"
        "class Bad(Stage):\n    name = 'NoDots'\n    outputs = {'x': int}\n"
        "@hookimpl\ndef cosmoseg_register_stages(register):\n    register(Bad)\n"
    )
    with pytest.raises(PluginError) as info:
        build_registry([str(plugin)], autoload=False)
    text = str(info.value)
    assert "plugin 'bad_plugin'" in text and "name 'NoDots'" in text and "not a data-model class" in text


def test_unknown_stage_lookup_suggests() -> None:
    registry = build_registry(autoload=False)
    with pytest.raises(PluginError, match=r"did you mean 'measure\.power_spectrum'"):
        registry.stage("measure.powerspectrum")


HELLO_PLUGIN = """
from cosmoseg import Field, Stage, hookimpl


class Hello(Stage):
    "Says hello."

    name = "hello.world"
    outputs = {"field": Field}


def read_hello(path):
    return path


@hookimpl
def cosmoseg_register_stages(register):
    register(Hello)


@hookimpl
def cosmoseg_register_readers(register):
    register("hello", read_hello)
"""


def test_a_module_plugin_registers_stages_and_readers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "hello_plugin.py").write_text(HELLO_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = build_registry(["hello_plugin"], autoload=False)
    assert registry.stage("hello.world").summary() == "Says hello."
    assert registry.reader("hello")("x") == "x"
    assert registry.readers["hello"].plugin.name == "hello_plugin"
    with pytest.raises(PluginError, match=r"no reader named 'helo' \(did you mean 'hello'\?\)"):
        registry.reader("helo")
