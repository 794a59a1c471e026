"""Check a pipeline's stage graph before anything runs, and order it."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import networkx as nx

from cosmoseg.errors import ConfigError, did_you_mean
from cosmoseg.pipeline.config import PipelineConfig
from cosmoseg.pipeline.files import resolve_input_path
from cosmoseg.pipeline.params import InputPath, input_path_fields, parse_params
from cosmoseg.pipeline.stage import Stage

if TYPE_CHECKING:
    from cosmoseg.plugins import Registry


@dataclasses.dataclass(frozen=True)
class PlannedStage:
    """A checked stage: its class, parsed params and resolved inputs (name -> (stage id, output name))."""

    id: str
    uses: str
    cls: type[Stage]
    params: Any
    inputs: dict[str, tuple[str, str]]


@dataclasses.dataclass(frozen=True)
class Plan:
    """The stages in the order they run, and the graph (nodes: stage ids; edges: data flow)."""

    stages: tuple[PlannedStage, ...]
    graph: nx.DiGraph

    def consumers(self, stage_id: str) -> list[str]:
        return list(self.graph.successors(stage_id))


def _resolve_paths(params: Any, config: PipelineConfig, where: str, problems: list[str]) -> Any:
    """``params`` with every input-path field made absolute (see :mod:`cosmoseg.pipeline.files`)."""
    changes = {}
    for name in input_path_fields(type(params)):
        resolved, found = resolve_input_path(
            getattr(params, name), base_dir=config.base_dir, files=config.run.files, where=f"{where}: param {name!r}"
        )
        problems.extend(found)
        changes[name] = InputPath(resolved)
    return dataclasses.replace(params, **changes) if changes else params


def machine_memory() -> int:
    """Bytes of memory this process may use: the physical memory, or a smaller cgroup limit (containers)."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def memory_problems(stages: Iterable[PlannedStage], available: int) -> list[str]:
    """A line for every stage whose memory estimate exceeds ``available`` bytes."""
    problems = []
    for stage in stages:
        need = stage.cls.memory_estimate(stage.params)
        if need is not None and need > available:
            problems.append(
                f"stage {stage.id!r} ({stage.uses}) needs about {need / 2**30:,.1f} GiB of memory with these params, "
                f"more than the {available / 2**30:,.1f} GiB this machine has; use smaller grids, or pass --force to "
                "try anyway"
            )
    return problems


def plan_pipeline(config: PipelineConfig, registry: Registry, *, force: bool = False) -> Plan:
    """Resolve every stage and input, or raise one ConfigError listing every problem.

    Checked: every ``uses`` is registered, params are valid, every declared input is given (unless
    optional), every input names ``<stage id>.<output>`` of an existing stage with a matching type,
    no undeclared inputs, no cycles, and (unless ``force``) no stage needs more memory than the machine has.
    """
    problems: list[str] = []
    by_id = {s.id: s for s in config.stages}
    classes: dict[str, type[Stage]] = {}
    for stage in config.stages:
        if stage.uses in registry.stages:
            classes[stage.id] = registry.stages[stage.uses].obj
        elif stage.uses:
            problems.append(
                f"stage {stage.id!r}: uses unknown stage {stage.uses!r}{did_you_mean(stage.uses, registry.stages)}"
            )

    graph = nx.DiGraph()
    planned: dict[str, PlannedStage] = {}
    for order, stage in enumerate(config.stages):
        graph.add_node(stage.id, order=order)
        cls = classes.get(stage.id)
        if cls is None:
            continue
        where = f"stage {stage.id!r} ({cls.name})"
        params, param_problems = parse_params(cls.Params, stage.params, where)
        problems.extend(param_problems)
        if params is not None:
            params = _resolve_paths(params, config, where, problems)
        inputs: dict[str, tuple[str, str]] = {}
        for name in sorted(set(stage.inputs) - set(cls.inputs)):
            declared = ", ".join(cls.inputs) or "none"
            problems.append(f"stage {stage.id!r}: {cls.name} has no input {name!r} (its inputs: {declared})")
        for name, expected in cls.inputs.items():
            ref = stage.inputs.get(name)
            if ref is None:
                if name not in cls.optional_inputs:
                    problems.append(
                        f"stage {stage.id!r}: missing input {name!r} ({expected.__name__}); "
                        f'give it as inputs = {{ {name} = "<stage id>.<output>" }}'
                    )
                continue
            src_id, dot, out_name = ref.partition(".")
            if not dot or not src_id or not out_name:
                problems.append(
                    f"stage {stage.id!r}: input {name!r} = {ref!r} is not of the form '<stage id>.<output>'"
                )
                continue
            if src_id not in by_id:
                problems.append(
                    f"stage {stage.id!r}: input {name!r} refers to unknown stage id {src_id!r}"
                    + did_you_mean(src_id, by_id)
                )
                continue
            src_cls = classes.get(src_id)
            if src_cls is None:
                continue  # its unknown 'uses' is already reported
            if out_name not in src_cls.outputs:
                outs = ", ".join(src_cls.outputs)
                problems.append(
                    f"stage {stage.id!r}: input {name!r} refers to {ref!r}, but {src_id!r} ({src_cls.name}) "
                    f"has no output {out_name!r} (its outputs: {outs})"
                )
                continue
            produced = src_cls.outputs[out_name]
            if not issubclass(produced, expected):
                problems.append(
                    f"stage {stage.id!r}: input {name!r} expects a {expected.__name__}, "
                    f"but {ref!r} is a {produced.__name__}"
                )
                continue
            inputs[name] = (src_id, out_name)
            graph.add_edge(src_id, stage.id)
        if params is not None:
            planned[stage.id] = PlannedStage(stage.id, stage.uses, cls, params, inputs)

    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        cycle = None
    if cycle:
        path = " -> ".join([edge[0] for edge in cycle] + [cycle[0][0]])
        problems.append(f"the stages form a cycle: {path}")
    if not problems and not force:
        problems.extend(memory_problems(planned.values(), machine_memory()))
    if problems:
        raise ConfigError(problems, context=config.source)
    order = nx.lexicographical_topological_sort(graph, key=lambda node: graph.nodes[node]["order"])
    return Plan(stages=tuple(planned[sid] for sid in order), graph=graph)
