"""Run a checked pipeline: device, seeds, progress, atomic artifacts, manifest and resume."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from cosmoseg.data import (
    SCHEMA_VERSION,
    DataObject,
    Field,
    Particles,
    Segmentation,
    Table,
    load_artifact,
    save_artifact,
)
from cosmoseg.errors import ArtifactError, CosmosegError, PluginError, StageError
from cosmoseg.pipeline.config import PipelineConfig
from cosmoseg.pipeline.context import ProgressReporter, RunContext, SilentReporter, derive_seed
from cosmoseg.pipeline.device import resolve_device
from cosmoseg.pipeline.executor import ExecutorConfig, LazyExecutor
from cosmoseg.pipeline.files import files_signature
from cosmoseg.pipeline.folder import folder_files, move_aside_stale, now, work_files
from cosmoseg.pipeline.graph import Plan, PlannedStage, plan_pipeline
from cosmoseg.pipeline.lock import hold_run_folder, remove_leftovers
from cosmoseg.pipeline.manifest import check_manifest, file_sha256, package_versions, write_manifest
from cosmoseg.pipeline.params import input_path_fields, json_friendly, params_to_dict
from cosmoseg.pipeline.stage import Stage

if TYPE_CHECKING:
    from cosmoseg.plugins import Registry


@dataclasses.dataclass
class StageRecord:
    """What happened to one stage of a run."""

    id: str
    uses: str
    status: str  # "ran" or "skipped" (resumed)
    seed: int
    fingerprint: str
    params: dict[str, Any]
    inputs: dict[str, str]
    outputs: dict[str, str]  # output name -> data-model type
    file: str
    sha256: str
    seconds: float
    plugin: str
    input_files: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    """Input-path param -> {"path": absolute path, "signature": files_signature of it} (empty for most stages)."""
    sizes: dict[str, str] = dataclasses.field(default_factory=dict)
    """Output name -> its type and size ("GalaxyCatalog, 6194 rows"), for the run's summary."""


@dataclasses.dataclass
class RunResult:
    output_dir: Path
    device: torch.device
    records: list[StageRecord]
    plan: Plan

    @property
    def manifest_path(self) -> Path:
        return self.output_dir / "manifest.json"

    def load(self, stage_id: str, device: torch.device | str = "cpu") -> dict[str, DataObject]:
        """The outputs of one stage, read back from its artifact."""
        return load_artifact(self.output_dir / f"{stage_id}.h5", device=device)

    def record(self, stage_id: str) -> StageRecord:
        return next(r for r in self.records if r.id == stage_id)


def input_files(stage: PlannedStage) -> dict[str, dict[str, str]]:
    """The files behind the stage's input-path params: param -> {"path", "signature"} (see ``files_signature``)."""
    out = {}
    for name in input_path_fields(stage.cls.Params):
        path = str(getattr(stage.params, name))
        out[name] = {"path": path, "signature": files_signature(path)}
    return out


def stage_fingerprint(
    stage: PlannedStage, seed: int, upstream: dict[str, str], files: dict[str, dict[str, str]] | None = None
) -> str:
    """A hash of everything a stage's outputs depend on: its code version, params, seed, inputs and the files its
    input-path params name (``files``, from :func:`input_files`)."""
    payload = {
        "uses": stage.uses,
        "version": stage.cls.version,
        "params": params_to_dict(stage.params),
        "seed": seed,
        "schema": SCHEMA_VERSION,
        "inputs": {name: f"{upstream[src]}:{out}" for name, (src, out) in sorted(stage.inputs.items())},
    }
    if files:
        payload["files"] = {name: entry["signature"] for name, entry in sorted(files.items())}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def check_outputs(cls: type[Stage], outputs: Any, where: str) -> None:
    """The outputs must be a dict with exactly the declared names and types; ``where`` names the stage."""
    if not isinstance(outputs, dict):
        raise StageError(f"{where} returned {type(outputs).__name__}, not a dict")
    problems = []
    declared = cls.outputs
    for name in sorted(set(declared) - set(outputs)):
        problems.append(f"missing output {name!r} ({declared[name].__name__})")
    for name in sorted(set(outputs) - set(declared)):
        problems.append(f"undeclared output {name!r}")
    for name, expected in declared.items():
        if name in outputs and not isinstance(outputs[name], expected):
            problems.append(f"output {name!r} is a {type(outputs[name]).__name__}, not a {expected.__name__}")
    if problems:
        raise StageError(problems, context=f"{where} broke its contract")


class _OutputCache:
    """Outputs kept in memory while a later stage still needs them, else read back from disk (and checked against
    the type the consuming stage declares)."""

    def __init__(self, plan: Plan, output_dir: Path, device: torch.device) -> None:
        self.output_dir, self.device = output_dir, device
        self.pending = {s.id: len(plan.consumers(s.id)) for s in plan.stages}
        self.memory: dict[str, dict[str, DataObject]] = {}

    def put(self, stage_id: str, outputs: dict[str, DataObject] | None) -> None:
        if outputs is not None and self.pending[stage_id]:
            self.memory[stage_id] = outputs

    def get(self, stage_id: str, name: str, expected: type[DataObject], where: str) -> DataObject:
        path = self.output_dir / f"{stage_id}.h5"
        if stage_id not in self.memory:
            self.memory[stage_id] = load_artifact(path, device=self.device)
        objects = self.memory[stage_id]
        if name not in objects:
            raise ArtifactError(f"{path} has no object {name!r} (it holds {sorted(objects)})", context=where)
        obj = objects[name]
        if not isinstance(obj, expected):
            raise ArtifactError(
                f"{path}: {name!r} is a {type(obj).__name__}, but the stage declares a {expected.__name__}",
                context=where,
            )
        return obj.to(self.device)

    def consumed(self, stage: PlannedStage) -> None:
        for src in {src for src, _ in stage.inputs.values()}:
            self.pending[src] -= 1
            if self.pending[src] == 0:
                self.memory.pop(src, None)


def describe_size(obj: DataObject) -> str:
    """``"<type>, <size>"`` of a data-model object: rows of a table, particles, or the shape of a grid."""
    size = ""
    if isinstance(obj, Table | Particles):
        size = f", {len(obj)} {'rows' if isinstance(obj, Table) else 'particles'}"
    elif isinstance(obj, Field):
        size = f", {tuple(obj.values.shape)}"
    elif isinstance(obj, Segmentation):
        size = f", {tuple(obj.labels.shape)}"
    return f"{obj.type_name}{size}"


def _record_fields(old: dict[str, Any]) -> dict[str, Any]:
    """The StageRecord fields of a previous manifest's stage entry (newer keys such as work_files dropped)."""
    names = {f.name for f in dataclasses.fields(StageRecord)}
    return {k: v for k, v in old.items() if k in names}


def _notify(registry: Registry, hook: str, **kwargs: Any) -> None:
    """Call an observer hook; a failing observer is reported as a PluginError naming the hook and stage."""
    try:
        getattr(registry.manager.hook, hook)(**kwargs)
    except (Exception, SystemExit) as err:
        raise PluginError(
            f"a {hook} hook failed for stage {kwargs['stage_id']!r}: {type(err).__name__}: {err}"
        ) from err


def run_pipeline(
    config: PipelineConfig,
    *,
    registry: Registry,
    device: str | None = None,
    resume: bool = False,
    reporter: ProgressReporter | None = None,
    output_dir: str | Path | None = None,
    force: bool = False,
    executor: ExecutorConfig | None = None,
) -> RunResult:
    """Check the pipeline, then run its stages in order, writing ``<output>/<id>.h5`` and the manifest.

    registry: the stages and plugins to run with (``cosmoseg.plugins.registry_for_config(config)``; the pipeline layer
    does not load plugins itself, ``cosmoseg.run_pipeline`` does it for you). device: overrides ``[run] device``.
    resume: skip a stage whose fingerprint (params, seed, code version,
    inputs) matches the previous manifest and whose artifact is intact. Nothing is written unless the whole
    pipeline checks out; each artifact is written atomically, so a crash leaves earlier files intact.
    executor: overrides ``[run] executor/scheduler/workers``: where stages run the tasks they hand to
    ``ctx.map_tasks`` (a Dask cluster is started on the first such task and shut down at the end of the run).
    """
    reporter = reporter or SilentReporter()
    plan = plan_pipeline(config, registry, force=force)
    torch_device = resolve_device(device or config.run.device)
    out = Path(output_dir or config.run.output)
    with hold_run_folder(out) as taken_over:
        if taken_over:
            reporter.log(f"took over the lock of {out} from pid {taken_over.get('pid')}, which is no longer running")
        for path in remove_leftovers(out):
            reporter.log(f"removed {path.relative_to(out)}, left by a write that was interrupted")
        with LazyExecutor(executor or config.run.executor, log=reporter.log) as tasks:
            return _run_locked(config, registry, plan, torch_device, out, resume, reporter, tasks)


def _run_locked(
    config: PipelineConfig,
    registry: Registry,
    plan: Plan,
    torch_device: torch.device,
    out: Path,
    resume: bool,
    reporter: ProgressReporter,
    tasks: LazyExecutor,
) -> RunResult:
    """The run itself, with the folder's lock held (see :func:`run_pipeline`)."""
    started = now()
    previous_manifest, problem = check_manifest(out)
    if problem:
        reporter.log(f"{problem}: ignored, so no stage is reused")
    previous = previous_manifest.get("stages", {}) if resume else {}
    seeds = {stage.id: derive_seed(config.run.seed, stage.id) for stage in plan.stages}
    files = {stage.id: input_files(stage) for stage in plan.stages}
    fingerprints: dict[str, str] = {}
    for stage in plan.stages:
        fingerprints[stage.id] = stage_fingerprint(stage, seeds[stage.id], fingerprints, files[stage.id])
    reused = {
        stage.id
        for stage in plan.stages
        if (old := previous.get(stage.id, {})).get("fingerprint") == fingerprints[stage.id]
        and (out / f"{stage.id}.h5").is_file()
        and file_sha256(out / f"{stage.id}.h5") == old.get("sha256")
    }
    old_stages = previous_manifest.get("stages", {})
    known = {stage.id for stage in plan.stages} | set(old_stages)
    recomputed = {sid for sid, fp in fingerprints.items() if old_stages.get(sid, {}).get("fingerprint") == fp}
    stale = move_aside_stale(out, reused, known, previous_manifest, started, recomputed)
    if stale["files"]:
        reporter.log(f"moved {len(stale['files'])} file(s) of an earlier run to {stale['folder']}")
    manifest: dict[str, Any] = {
        "cosmoseg_version": package_versions()["cosmoseg"],
        "created": started,
        "status": "running",
        "config_source": config.source,
        "config": json_friendly(config.raw),
        "device": str(torch_device),
        "executor": tasks.config.describe(),
        "run_seed": config.run.seed,
        "packages": package_versions(),
        "plugins": [dataclasses.asdict(p) | {"label": p.label} for p in registry.plugins.values()],
        "planned": [stage.id for stage in plan.stages],
        "stages": {},
        "stale": stale,
        "other_files": [],
    }

    def save_manifest(status: str, error: str = "") -> None:
        manifest["status"] = status
        if error:
            manifest["error"] = error
        described = [r["file"] for r in manifest["stages"].values()]
        described += [f for r in manifest["stages"].values() for f in r.get("work_files", [])]
        manifest["other_files"] = folder_files(out, described)
        write_manifest(out, manifest)

    save_manifest("running")
    cache = _OutputCache(plan, out, torch_device)

    def run_stage(stage: PlannedStage) -> StageRecord:
        seed, fingerprint = seeds[stage.id], fingerprints[stage.id]
        path = out / f"{stage.id}.h5"
        where = f"stage {stage.id!r} ({stage.uses})"
        ctx = RunContext(
            device=torch_device, seed=seed, stage_id=stage.id, work_dir=out, reporter=reporter, map_tasks=tasks.map
        )
        if stage.id in reused:
            reporter.log(f"[{stage.id}] unchanged, skipped (--resume)")
            cache.put(stage.id, None)
            _notify(registry, "cosmoseg_stage_finished", ctx=ctx, stage_id=stage.id, outputs={}, seconds=0.0)
            return StageRecord(**{**_record_fields(previous[stage.id]), "status": "skipped", "seconds": 0.0})
        inputs: dict[str, DataObject | None] = {
            name: cache.get(src, out_name, stage.cls.inputs[name], where)
            for name, (src, out_name) in stage.inputs.items()
        }
        inputs.update({name: None for name in stage.cls.optional_inputs if name not in inputs})
        _notify(registry, "cosmoseg_stage_started", ctx=ctx, stage_id=stage.id)
        plugin = registry.stages[stage.uses].plugin.label
        start = time.perf_counter()
        try:
            outputs = stage.cls(stage.params, ctx).run(**inputs)
        except CosmosegError as err:
            raise type(err)(err.problems, context=where) from err
        except SystemExit as err:
            raise StageError(
                f"the stage (plugin {plugin}) called sys.exit({err.code!r}); a stage must return or raise",
                context=f"{where} stopped the run",
            ) from err
        except Exception as err:
            raise StageError(f"{type(err).__name__}: {err}", context=f"{where} failed") from err
        check_outputs(stage.cls, outputs, where)
        seconds = time.perf_counter() - start
        try:
            save_artifact(
                path,
                {name: obj.to("cpu") for name, obj in outputs.items()},
                attrs={"stage_id": stage.id, "uses": stage.uses, "fingerprint": fingerprint},
            )
        except OSError as err:
            raise ArtifactError(f"{path}: cannot write the artifact: {err.strerror or err}", context=where) from err
        cache.put(stage.id, outputs)
        reporter.log(f"[{stage.id}] done in {seconds:.2f} s -> {path}")
        _notify(registry, "cosmoseg_stage_finished", ctx=ctx, stage_id=stage.id, outputs=outputs, seconds=seconds)
        return StageRecord(
            id=stage.id,
            uses=stage.uses,
            status="ran",
            seed=seed,
            fingerprint=fingerprint,
            params=params_to_dict(stage.params),
            inputs={name: f"{src}.{o}" for name, (src, o) in stage.inputs.items()},
            outputs={name: type(obj).type_name for name, obj in outputs.items()},
            file=path.name,
            sha256=file_sha256(path),
            seconds=round(seconds, 4),
            plugin=plugin,
            input_files=files[stage.id],
            sizes={name: describe_size(obj) for name, obj in outputs.items()},
        )

    records: list[StageRecord] = []
    try:
        for stage in plan.stages:
            record = run_stage(stage)
            cache.consumed(stage)
            records.append(record)
            manifest["stages"][stage.id] = dataclasses.asdict(record) | {"work_files": work_files(out, stage.id)}
            save_manifest("running")
    except BaseException as err:
        save_manifest("failed", f"{type(err).__name__}: {err}")
        raise
    save_manifest("complete")
    return RunResult(output_dir=out, device=torch_device, records=records, plan=plan)
