"""The plugin registry: a fresh pluggy PluginManager per run, and what its plugins registered.

Plugins load in this order: the built-in ones (``DEFAULT_PLUGINS``), then the entry points of the group
``cosmoseg`` (unless ``COSMOSEG_DISABLE_PLUGIN_AUTOLOAD`` is set), then local plugin files or modules named
by a pipeline. A block list (the pipeline's ``block_plugins`` or ``COSMOSEG_BLOCK_PLUGINS``, comma-separated)
skips plugins by name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pluggy

from cosmoseg import hookspecs
from cosmoseg.errors import PluginError, did_you_mean
from cosmoseg.pipeline.stage import Stage, stage_problems

if TYPE_CHECKING:
    from cosmoseg.pipeline.config import PipelineConfig
    from cosmoseg.pipeline.runner import RunResult

DEFAULT_PLUGINS: tuple[str, ...] = (
    "cosmoseg.io.stages",
    "cosmoseg.sim.stages",
    "cosmoseg.measure.stages",
    "cosmoseg.protohalo.stages",
    "cosmoseg.galaxies.stages",
    "cosmoseg.paint.stages",
    "cosmoseg.infer.stages",
)
"""Modules of the built-in plugins; they go through the same registry as third-party ones."""

ENTRY_POINT_GROUP = "cosmoseg"
AUTOLOAD_ENV = "COSMOSEG_DISABLE_PLUGIN_AUTOLOAD"
BLOCK_ENV = "COSMOSEG_BLOCK_PLUGINS"


@dataclasses.dataclass(frozen=True)
class PluginInfo:
    """Where a plugin comes from.

    name: the plugin's name in the registry (module path, entry-point name or file stem).
    origin: "built-in", "entry point" or "local".
    distribution: the installed package that ships it ("cosmoseg" for built-ins; "" for local files).
    version: that package's version ("" for local files).
    source: the module path or file the plugin was loaded from.
    """

    name: str
    origin: str
    distribution: str
    version: str
    source: str

    @property
    def label(self) -> str:
        """A short readable origin: ``cosmoseg 0.1.0 (built-in)``."""
        if self.origin == "local":
            return f"{self.source} (local)"
        return f"{self.distribution} {self.version} ({self.origin})"


@dataclasses.dataclass(frozen=True)
class Registered:
    """A stage class or reader together with the plugin that registered it."""

    obj: Any
    plugin: PluginInfo


@dataclasses.dataclass
class Registry:
    """What the plugins of one run registered."""

    manager: pluggy.PluginManager
    plugins: dict[str, PluginInfo]
    stages: dict[str, Registered]
    readers: dict[str, Registered]

    def stage(self, name: str) -> type[Stage]:
        """The stage class registered under ``name``, or a PluginError that suggests close names."""
        if name not in self.stages:
            raise PluginError(f"no stage named {name!r}{did_you_mean(name, self.stages)}")
        return self.stages[name].obj

    def reader(self, name: str) -> Callable[..., Any]:
        if name not in self.readers:
            raise PluginError(f"no reader named {name!r}{did_you_mean(name, self.readers)}")
        return self.readers[name].obj


def _distribution_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _load_local(spec: str, base_dir: Path) -> tuple[ModuleType, PluginInfo]:
    """Import a local plugin: a ``.py`` file (relative to ``base_dir``) or an importable module path."""
    if spec.endswith(".py") or os.sep in spec or "/" in spec:
        path = (base_dir / spec).resolve()
        if not path.is_file():
            raise PluginError(f"local plugin file {spec!r} not found (looked at {path})")
        digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
        module_name = f"cosmoseg_local_plugin_{path.stem}_{digest}"
        module_spec = importlib.util.spec_from_file_location(module_name, path)
        if module_spec is None or module_spec.loader is None:
            raise PluginError(f"local plugin file {path} cannot be imported")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module
        try:
            module_spec.loader.exec_module(module)
        except (Exception, SystemExit) as err:
            del sys.modules[module_name]
            raise PluginError(f"local plugin file {path} failed to import: {_describe(err)}") from err
        return module, PluginInfo(path.stem, "local", "", "", str(path))
    try:
        module = importlib.import_module(spec)
    except ImportError as err:
        raise PluginError(f"local plugin module {spec!r} cannot be imported: {err}") from err
    except (Exception, SystemExit) as err:
        raise PluginError(f"local plugin module {spec!r} failed to import: {_describe(err)}") from err
    return module, PluginInfo(spec, "local", "", "", spec)


def _entry_point_plugins(blocked: set[str]) -> Iterable[tuple[Any, PluginInfo]]:
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist is not None else ""
        if ep.name in blocked or dist in blocked:
            continue
        try:
            plugin = ep.load()
        except (Exception, SystemExit) as err:
            raise PluginError(
                f"entry point {ep.name!r} of {dist or 'an unknown package'} failed to load: {_describe(err)}"
            ) from err
        yield plugin, PluginInfo(ep.name, "entry point", dist, _distribution_version(dist) if dist else "", ep.value)


def build_registry(
    local_plugins: Iterable[str] = (),
    *,
    blocked: Iterable[str] = (),
    autoload: bool | None = None,
    base_dir: str | os.PathLike[str] = ".",
) -> Registry:
    """A fresh plugin manager with every plugin loaded and every stage and reader collected.

    local_plugins: ``.py`` files (relative to ``base_dir``) or module paths, loaded after the others.
    blocked: plugin names (module path, entry-point name or distribution name) to skip.
    autoload: load entry points; default: unless ``COSMOSEG_DISABLE_PLUGIN_AUTOLOAD`` is set (non-empty).
    """
    blocked_set = set(blocked) | {b.strip() for b in os.environ.get(BLOCK_ENV, "").split(",") if b.strip()}
    if autoload is None:
        autoload = not os.environ.get(AUTOLOAD_ENV)
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    plugins: dict[str, PluginInfo] = {}

    def add(plugin: Any, info: PluginInfo) -> None:
        if info.name in blocked_set:
            return
        if manager.is_registered(plugin):
            return
        if info.name in plugins:
            raise PluginError(f"two plugins are named {info.name!r}: {plugins[info.name].label} and {info.label}")
        manager.register(plugin, name=info.name)
        plugins[info.name] = info

    version = _distribution_version("cosmoseg")
    for module_path in DEFAULT_PLUGINS:
        add(importlib.import_module(module_path), PluginInfo(module_path, "built-in", "cosmoseg", version, module_path))
    if autoload:
        for plugin, info in _entry_point_plugins(blocked_set):
            add(plugin, info)
    base = Path(base_dir)
    for spec in local_plugins:
        add(*_load_local(spec, base))

    stages = _collect(manager, plugins, "cosmoseg_register_stages", _check_stage, "stage")
    readers = _collect(manager, plugins, "cosmoseg_register_readers", None, "reader")
    return Registry(manager=manager, plugins=plugins, stages=stages, readers=readers)


def _check_stage(obj: Any, info: PluginInfo) -> None:
    problems = stage_problems(obj)
    if problems:
        raise PluginError(problems, context=f"plugin {info.name!r} ({info.label}) registered a bad stage")


def _collect(
    manager: pluggy.PluginManager,
    plugins: dict[str, PluginInfo],
    hook_name: str,
    check: Callable[[Any, PluginInfo], None] | None,
    what: str,
) -> dict[str, Registered]:
    """Call one registration hook plugin by plugin, so each registered thing knows its plugin."""
    found: dict[str, Registered] = {}
    for impl in getattr(manager.hook, hook_name).get_hookimpls():
        info = plugins[impl.plugin_name]

        def register(*args: Any, _info: PluginInfo = info) -> None:
            if what == "stage":
                (obj,) = args
                if check:
                    check(obj, _info)
                key = obj.name
            else:
                key, obj = args
                if not callable(obj):
                    raise PluginError(f"plugin {_info.name!r} registered reader {key!r} that is not callable")
            if key in found and found[key].obj is not obj:
                other = found[key].plugin
                raise PluginError(
                    f"{what} {key!r} is registered twice: by {other.name!r} from {other.label} "
                    f"and by {_info.name!r} from {_info.label}"
                )
            found[key] = Registered(obj, _info)

        try:
            impl.function(**{arg: register for arg in impl.argnames})
        except PluginError:
            raise
        except (Exception, SystemExit) as err:
            raise PluginError(f"plugin {info.name!r} ({info.label}) failed in {hook_name}: {_describe(err)}") from err
    return dict(sorted(found.items()))


def _describe(err: BaseException) -> str:
    """An exception in one phrase; ``sys.exit(n)`` is named as such (a plugin must raise, not exit)."""
    if isinstance(err, SystemExit):
        return f"it called sys.exit({err.code!r}); a plugin must raise an exception, not exit"
    return repr(err)


def registry_for_config(config: PipelineConfig) -> Registry:
    """The registry a pipeline runs with: the installed plugins, its ``[run] plugins`` (relative to its file) and
    its ``block_plugins``."""
    return build_registry(config.run.plugins, blocked=config.run.block_plugins, base_dir=config.base_dir)


def run_pipeline(config: PipelineConfig, *, registry: Registry | None = None, **options: Any) -> RunResult:
    """:func:`cosmoseg.pipeline.run_pipeline` with the registry of the config's plugins when none is given (the
    ``cosmoseg.run_pipeline`` of the public API). ``options``: device, resume, reporter, output_dir, force."""
    from cosmoseg.pipeline.runner import run_pipeline as run_with

    return run_with(config, registry=registry or registry_for_config(config), **options)
