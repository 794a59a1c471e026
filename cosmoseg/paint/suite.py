"""Suites for dm2gal: the train / validation / test split of a suite's boxes and the truth galaxies of each box.

The truth comes from a *registered stage* (by default ``galaxies.model``) looked up in the plugin registry, so
this package does not import the galaxy package, and a user's own galaxy model (any stage ``halos -> galaxies``)
can stand in for it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from cosmoseg.data import GalaxyCatalog, HaloCatalog
from cosmoseg.errors import ValidationError
from cosmoseg.paint.data import PaintBox, TruthMaker, load_suite_box
from cosmoseg.pipeline.stage import Stage
from cosmoseg.sim.suites import find_boxes, split_suite

__all__ = [
    "REDRAW_SEED_OFFSET",
    "Split",
    "load_split",
    "redraw_truth",
    "registered_stage",
    "registry_truth",
    "run_stage",
]


def registered_stage(stage_name: str, params: Mapping[str, Any], where: str) -> tuple[type[Stage], Any]:
    """The stage class ``stage_name`` from the plugin registry and its parsed ``params`` (all problems at once)."""
    from cosmoseg.pipeline.params import parse_params
    from cosmoseg.plugins import build_registry

    cls = build_registry().stage(stage_name)
    parsed, problems = parse_params(cls.Params, dict(params), where=f"{stage_name} params")
    if problems:
        raise ValidationError(problems, context=f"{where} ({stage_name})")
    return cls, parsed


def run_stage(cls: type[Stage], params: Any, seed: int, stage_id: str, **inputs: Any) -> dict[str, Any]:
    """Run a stage once on the CPU with its own seed, outside a pipeline."""
    from cosmoseg.pipeline.context import RunContext

    return cls(params, RunContext(device=torch.device("cpu"), seed=seed, stage_id=stage_id)).run(**inputs)


def registry_truth(stage_name: str, params: Mapping[str, Any], seed: int) -> TruthMaker:
    """truth(halos, box_index) running the registered stage ``stage_name`` (halos -> galaxies) with ``params``;
    its seed is ``seed`` + the box index."""
    cls, parsed = registered_stage(stage_name, params, "paint truth")
    if cls.inputs.get("halos") is not HaloCatalog or cls.outputs.get("galaxies") is not GalaxyCatalog:
        raise ValidationError(
            f"stage {stage_name!r} must take 'halos' (HaloCatalog) and give 'galaxies' (GalaxyCatalog); it takes "
            f"{sorted(cls.inputs)} and gives {sorted(cls.outputs)}",
            context="paint truth",
        )

    def make(halos: HaloCatalog, index: int) -> GalaxyCatalog:
        return run_stage(cls, parsed, seed + index, "truth", halos=halos)["galaxies"]

    return make


REDRAW_SEED_OFFSET = 1_000_003
"""Seed step between the truth and its redraws (:func:`redraw_truth`): larger than any suite's box count, so a
redraw of box i never takes the seed of another box's truth."""


def redraw_truth(stage_name: str, params: Mapping[str, Any], seed: int, draw: int = 0) -> TruthMaker:
    """Another realisation of the truth of :func:`registry_truth` (same stage and params, same haloes), with seed
    ``seed + (draw + 1) * REDRAW_SEED_OFFSET`` + the box index.

    It is the ideal painter: it knows the truth's exact conditional distribution of galaxies given the haloes, so
    its scores against the truth are the floor that the truth's own randomness sets for any painter of one
    realisation (the P(k) deviation, the total-mass ratio, the occupancy precision / recall of a box).
    """
    if draw < 0:
        raise ValidationError(f"a redraw index must be >= 0, got {draw}", context="paint truth")
    return registry_truth(stage_name, params, seed + (draw + 1) * REDRAW_SEED_OFFSET)


@dataclasses.dataclass
class Split:
    """The boxes of a suite, loaded as fields, by role."""

    train: list[PaintBox]
    validation: list[PaintBox]
    test: list[PaintBox]

    def names(self, role: str) -> list[str]:
        return [b.name for b in getattr(self, role)]

    def seeds(self, *roles: str) -> dict[str, int]:
        """Box name -> simulation seed of the boxes of ``roles`` (all three when none is given) that record one."""
        boxes = [b for role in roles or ("train", "validation", "test") for b in getattr(self, role)]
        return {b.name: b.seed for b in boxes if b.seed is not None}


def load_split(
    suite_dir: Path,
    truth: TruthMaker,
    *,
    grid: int,
    n_validation: int,
    n_test: int,
    seed: int,
    halo_assignment: str = "ngp",
) -> Split:
    """Load every box of the suite on a ``grid``³ mesh (0 = the particle grid; haloes by ``halo_assignment``) and
    split them whole, by the split every trainer makes (:func:`cosmoseg.sim.suites.split_suite`)."""
    paths = find_boxes(suite_dir)
    split = split_suite(len(paths), n_validation, n_test, seed=seed)

    def load(role: str) -> list[PaintBox]:
        return [load_suite_box(path, truth, grid, halo_assignment) for path in split.pick(paths, role)]

    return Split(load("train"), load("validation"), load("test"))
