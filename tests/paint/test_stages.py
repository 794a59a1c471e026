"""The plugin face of cosmoseg.paint (cosmoseg.paint.stages): the params of paint.fields and paint.dm2gal, and the
stages as thin wrappers of paint_fields and paint_with_model that draw from the run's generators."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from cosmoseg.paint.fields import HALO_ASSIGNMENTS
from cosmoseg.paint.painting import paint_with_model
from cosmoseg.paint.stages import Dm2GalParams, Dm2GalStage, FieldsStage
from cosmoseg.pipeline.context import RunContext, SilentReporter
from cosmoseg.pipeline.params import parse_params
from cosmoseg.testing import assert_stage_contract
from cosmoseg.testing.compare import assert_data_equal

from .helpers import successor_file, toy_fields

VOXEL = 2.0


def test_fields_stage_runs_on_the_toys() -> None:
    out = assert_stage_contract(FieldsStage)
    fields = out["fields"]
    assert fields.channels == ("log_dm", "log_halo", "log_mstar") and fields.n == 4  # the 4^3 particle grid


def test_fields_params_name_each_problem() -> None:
    assert FieldsStage.Params(n=7).problems() and not FieldsStage.Params(n=16).problems()
    assert not FieldsStage.Params(n=0).problems()  # 0: the particle grid
    _, problems = parse_params(FieldsStage.Params, {"n": -2, "halo_assignment": "tsc"}, FieldsStage.name)
    assert problems == [
        "paint.fields: param 'n' must be >= 0, got -2",
        "paint.fields: param 'halo_assignment' must be one of ['ngp', 'cic'], got 'tsc'",
    ]
    _, problems = parse_params(FieldsStage.Params, {"n": 7, "mass_column": ""}, FieldsStage.name)
    assert problems == [
        "paint.fields: param 'n' must be an even integer >= 2, or 0 for the particle grid, got 7",
        "paint.fields: param 'mass_column' must name a halo column, e.g. 'mass'",
    ]
    (choices,) = {f.type for f in dataclasses.fields(FieldsStage.Params) if f.name == "halo_assignment"}
    assert all(repr(choice) in str(choices) for choice in HALO_ASSIGNMENTS)  # the choices paint_fields knows


def test_dm2gal_params_are_bounded() -> None:
    _, problems = parse_params(Dm2GalStage.Params, {"tile": 0}, Dm2GalStage.name)
    assert problems == ["paint.dm2gal: param 'tile' must be >= 1, got 0"]


def _stage(model: Path, seed: int = 5, **params: object) -> tuple[dict, list[str]]:
    reporter = SilentReporter()
    ctx = RunContext(device=torch.device("cpu"), seed=seed, stage_id="painted", reporter=reporter)
    outputs = Dm2GalStage(Dm2GalParams(model=str(model), tile=8, **params), ctx).run(fields=toy_fields())
    return outputs, reporter.messages


def test_dm2gal_stage_paints_with_the_library_and_the_runs_seed(tmp_path: Path) -> None:
    """The stage's draw is the library's with a CPU generator seeded by the stage's seed: the numbers of a plain
    torch.Generator().manual_seed(seed), as before the stage used the run context's generators."""
    model = successor_file(tmp_path / "fcn.pt", VOXEL)
    seed = 3991564703436933869  # a 63-bit stage seed, as the runner derives them
    out, messages = _stage(model, seed)
    lines: list[str] = []
    direct = paint_with_model(toy_fields(), str(model), tile=8, generator=torch.Generator().manual_seed(seed),
                              where="paint.dm2gal", log=lines.append)  # fmt: skip
    assert_data_equal(out, {f.name: getattr(direct, f.name) for f in dataclasses.fields(direct)}, name="outputs")
    assert messages == [f"[painted] {line}" for line in lines]
    other, _ = _stage(model, seed + 1)
    assert not torch.equal(other["painted"].values, out["painted"].values)
    means, _ = _stage(model, seed, sample=False)
    assert torch.equal(means["painted"].values, paint_with_model(toy_fields(), str(model), tile=8).painted.values)
    empty, _ = _stage(model, seed, catalog=False)
    assert len(empty["galaxies"]) == 0 and torch.equal(empty["painted"].values, out["painted"].values)
