"""Pipeline configuration: a TOML file with a ``[run]`` table and ``[[stage]]`` entries."""

from __future__ import annotations

import copy
import dataclasses
import os
import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cosmoseg.errors import ConfigError
from cosmoseg.pipeline.executor import ExecutorConfig
from cosmoseg.pipeline.files import FILE_NAME

STAGE_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
MAX_STAGE_ID = 100
"""Longest stage id: it names files (``<id>.h5``, ``<id>/``), and file systems cap names at 255 bytes."""
RUN_KEYS = {"seed", "device", "output", "plugins", "block_plugins", "name", "files", "executor", "scheduler", "workers"}
STAGE_KEYS = {"id", "uses", "params", "inputs"}


@dataclasses.dataclass(frozen=True)
class StageConfig:
    """One ``[[stage]]`` entry: ``id`` (also the artifact's file name), ``uses`` (a registered stage name),
    ``params`` (the stage's parameters) and ``inputs`` (input name -> ``"<stage id>.<output name>"``)."""

    id: str
    uses: str
    params: dict[str, Any]
    inputs: dict[str, str]


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """The ``[run]`` table.

    seed: the run's seed; each stage gets its own seed derived from it and the stage id.
    device: "auto" (CUDA when present, else CPU), "cpu", "cuda", "cuda:N" or "mps".
    output: folder of the artifacts and the manifest (relative to the working directory).
    plugins: local plugin files (relative to the config file) or module paths to load.
    block_plugins: plugin names not to load.
    files: the pipeline's input files by name (``snapshot = "data/snap_099"``); a stage's path param ``"$snapshot"``
        refers to one. Relative paths are relative to the config file; ``--set run.files.<name>=PATH`` on the
        command line is relative to the working directory.
    executor: "local" (this process) or "dask": where stages that spread their work (chunks, boxes) run their
        tasks; "dask" needs ``scheduler`` (a running scheduler's address, "tcp://host:8786") or ``workers`` (the
        size of a local cluster started for the run). See :mod:`cosmoseg.pipeline.executor` and docs/scale.md.
    """

    seed: int = 0
    device: str = "auto"
    output: str = "runs/pipeline"
    plugins: tuple[str, ...] = ()
    block_plugins: tuple[str, ...] = ()
    name: str = ""
    files: dict[str, str] = dataclasses.field(default_factory=dict)
    executor: ExecutorConfig = dataclasses.field(default_factory=ExecutorConfig)


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    run: RunConfig
    stages: tuple[StageConfig, ...]
    raw: dict[str, Any]
    source: str = "<config>"
    base_dir: Path = Path(".")

    def stage(self, stage_id: str) -> StageConfig:
        for stage in self.stages:
            if stage.id == stage_id:
                return stage
        raise KeyError(stage_id)


def parse_value(text: str) -> Any:
    """A ``--set`` value: TOML syntax when it parses (``3``, ``0.5``, ``true``, ``[1, 2]``), else the text."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(raw: dict[str, Any], overrides: Iterable[str], source: str) -> dict[str, Any]:
    """Apply ``--set key=value`` overrides to a raw config.

    Keys: ``run.<key>``; ``<stage id>.<param>`` or ``<stage id>.params.<param>``;
    ``<stage id>.inputs.<name>``; ``<stage id>.uses``.
    """
    raw = copy.deepcopy(raw)
    problems = []
    stages = {s.get("id"): s for s in raw.get("stage", []) if isinstance(s, dict)}
    for item in overrides:
        key, sep, text = item.partition("=")
        parts = key.strip().split(".")
        if not sep or len(parts) < 2 or not all(parts):
            problems.append(f"--set {item!r}: expected key=value with a dotted key such as run.seed or ics.n")
            continue
        value = parse_value(text.strip())
        head, rest = parts[0], parts[1:]
        if head == "run" and rest[0] == "files" and len(rest) == 2:
            # a path typed on the command line is relative to where the user is, not to the pipeline file
            path = str(value)
            files = raw.setdefault("run", {}).setdefault("files", {})
            if isinstance(files, dict):
                files[rest[1]] = os.path.abspath(os.path.expanduser(path)) if path else ""
            else:
                problems.append(f"--set {item!r}: [run] files must be a table, got {files!r}")
        elif head == "run":
            raw.setdefault("run", {})[".".join(rest)] = value
        elif head in stages:
            stage = stages[head]
            if rest == ["uses"]:
                stage["uses"] = value
            elif rest[0] in ("params", "inputs") and len(rest) == 2:
                stage.setdefault(rest[0], {})[rest[1]] = value
            elif len(rest) == 1:
                stage.setdefault("params", {})[rest[0]] = value
            else:
                problems.append(f"--set {item!r}: cannot set {'.'.join(rest)!r} of stage {head!r}")
        else:
            problems.append(f"--set {item!r}: {head!r} is neither 'run' nor a stage id ({', '.join(stages)})")
    if problems:
        raise ConfigError(problems, context=source)
    return raw


def parse_config(raw: dict[str, Any], *, source: str = "<config>", base_dir: Path = Path(".")) -> PipelineConfig:
    """Check the shape of a raw config (types, unknown keys, ids) and build a PipelineConfig."""
    problems: list[str] = []
    for key in sorted(set(raw) - {"run", "stage"}):
        problems.append(f"unknown top-level key {key!r} (expected [run] and [[stage]])")
    run_raw = raw.get("run", {})
    if not isinstance(run_raw, dict):
        problems.append("[run] must be a table")
        run_raw = {}
    for key in sorted(set(run_raw) - RUN_KEYS):
        problems.append(f"[run]: unknown key {key!r} (known: {', '.join(sorted(RUN_KEYS))})")
    seed = run_raw.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        problems.append(f"[run]: seed must be an integer >= 0, got {seed!r}")
    for key in ("device", "output", "name"):
        if key in run_raw and not isinstance(run_raw[key], str):
            problems.append(f"[run]: {key} must be a string, got {run_raw[key]!r}")
    for key in ("plugins", "block_plugins"):
        value = run_raw.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            problems.append(f"[run]: {key} must be a list of strings, got {value!r}")
    files = run_raw.get("files", {})
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        problems.append(f'[run]: files must be a table of name = "path" strings, got {files!r}')
        files = {}
    for key in files:
        if not FILE_NAME.match(key):
            problems.append(f"[run]: files: {key!r} is not a name of letters, digits, '_' or '-'")
    executor = ExecutorConfig(
        kind=run_raw.get("executor", "local"),
        scheduler=run_raw.get("scheduler", ""),
        workers=run_raw.get("workers", 0),
    )
    problems += [f"[run]: {problem}" for problem in executor.problems()]
    default_output = f"runs/{Path(source).stem}" if source != "<config>" else "runs/pipeline"

    stages_raw = raw.get("stage", [])
    if not isinstance(stages_raw, list) or not stages_raw:
        problems.append("the pipeline has no [[stage]] entries")
        stages_raw = []
    stages: list[StageConfig] = []
    seen: set[str] = set()
    for index, entry in enumerate(stages_raw, start=1):
        if not isinstance(entry, dict):
            problems.append(f"[[stage]] #{index} must be a table")
            continue
        sid = entry.get("id")
        where = f"stage {sid!r}" if isinstance(sid, str) else f"[[stage]] #{index}"
        for key in sorted(set(entry) - STAGE_KEYS):
            problems.append(f"{where}: unknown key {key!r} (known: {', '.join(sorted(STAGE_KEYS))})")
        if not isinstance(sid, str) or not STAGE_ID.match(sid):
            problems.append(f"{where}: id must be a name of letters, digits, '_' or '-', got {sid!r}")
            continue
        if len(sid) > MAX_STAGE_ID:
            problems.append(
                f"stage {sid[:20]}...: the id has {len(sid)} characters; at most {MAX_STAGE_ID} (it names files)"
            )
            continue
        if sid in seen:
            problems.append(f"{where}: the id {sid!r} is used twice")
        seen.add(sid)
        uses = entry.get("uses")
        if not isinstance(uses, str) or not uses:
            problems.append(f"{where}: 'uses' must name a registered stage, got {uses!r}")
            uses = ""
        params = entry.get("params", {})
        if not isinstance(params, dict):
            problems.append(f"{where}: params must be a table, got {params!r}")
            params = {}
        inputs = entry.get("inputs", {})
        if not isinstance(inputs, dict) or not all(isinstance(v, str) for v in inputs.values()):
            problems.append(f'{where}: inputs must be a table of "<stage id>.<output>" strings, got {inputs!r}')
            inputs = {}
        stages.append(StageConfig(id=sid, uses=uses, params=dict(params), inputs=dict(inputs)))
    if problems:
        raise ConfigError(problems, context=source)
    run = RunConfig(
        seed=seed,
        device=run_raw.get("device", "auto"),
        output=run_raw.get("output", default_output),
        plugins=tuple(run_raw.get("plugins", [])),
        block_plugins=tuple(run_raw.get("block_plugins", [])),
        name=run_raw.get("name", Path(source).stem),
        files=dict(files),
        executor=executor,
    )
    return PipelineConfig(run=run, stages=tuple(stages), raw=raw, source=source, base_dir=base_dir)


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> PipelineConfig:
    """Read and shape-check a pipeline TOML file, applying ``--set`` overrides first."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such pipeline file")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from err
    raw = apply_overrides(raw, overrides, str(path))
    return parse_config(raw, source=str(path), base_dir=path.resolve().parent)
