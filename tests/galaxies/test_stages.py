"""The galaxies stages: the sampler stage shape (fit here or load a file), its checks, and a pipeline."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest
import torch

from cosmoseg.data import HaloCatalog
from cosmoseg.errors import ValidationError
from cosmoseg.galaxies._examples import toy_halos
from cosmoseg.galaxies.model import paint_galaxies
from cosmoseg.galaxies.samplers.base import load_sampler
from cosmoseg.galaxies.stages import GaussStage, RegressionStage
from cosmoseg.pipeline.context import RunContext
from cosmoseg.pipeline.params import parse_params

HYPER = {"epochs": 3, "hidden": 16}


def _stage(cls: type, work_dir: Path | None = None, **params: object) -> object:
    parsed, problems = parse_params(cls.Params, {"conditions": ["log_mass", "concentration"], **params}, cls.name)
    assert not problems, problems
    return cls(parsed, RunContext(device=torch.device("cpu"), seed=5, stage_id="t", work_dir=work_dir))


@pytest.fixture(scope="module")
def data() -> tuple:
    halos = toy_halos(torch.Generator().manual_seed(0))
    return halos, paint_galaxies(halos, seed=1, satellites=False)


def test_fit_here_save_and_reuse(data: tuple, tmp_path: Path) -> None:
    halos, truth = data
    path = tmp_path / "t" / "gauss.pt"  # in the stage's folder of the run folder
    stage = _stage(GaussStage, tmp_path, hyper=HYPER, save_model="gauss.pt")
    out = stage.run(halos, train_halos=halos, train_galaxies=truth)
    galaxies = out["galaxies"]
    assert len(galaxies) == len(halos) and bool(galaxies["is_central"].all())
    assert torch.equal(galaxies["pos"], halos["pos"]) and torch.equal(galaxies["host"], torch.arange(len(halos)))
    assert {"log_mstar", "log_ssfr", "color_gi", "log_radius", "log_z"} <= set(galaxies.columns)
    assert load_sampler(path).condition_names == ["log_mass", "concentration"]
    again = _stage(GaussStage, model=str(path)).run(halos)["galaxies"]
    assert torch.equal(again["log_mstar"], galaxies["log_mstar"])  # same stage seed, same sampler: same draws


def test_min_mass_and_clear_errors(data: tuple, tmp_path: Path) -> None:
    halos, truth = data
    cut = float(halos["mass"].median())
    out = _stage(GaussStage, hyper=HYPER, min_mass=cut).run(halos, train_halos=halos, train_galaxies=truth)
    assert len(out["galaxies"]) == int((halos["mass"] >= cut).sum())
    with pytest.raises(ValidationError, match="give a fitted gauss sampler file"):
        _stage(GaussStage).run(halos)
    path = tmp_path / "t" / "g.pt"
    _stage(GaussStage, tmp_path, hyper=HYPER, save_model="g.pt").run(halos, train_halos=halos, train_galaxies=truth)
    with pytest.raises(ValidationError, match="holds a 'gauss' sampler"):
        _stage(RegressionStage, model=str(path)).run(halos)
    with pytest.raises(ValidationError, match=r"lacks the propert\(ies\) \['log_vmax'\]"):
        _stage(GaussStage, hyper=HYPER, conditions=["log_mass", "log_vmax"]).run(
            _drop(halos, "vmax"),
            train_halos=_drop(halos, "vmax"),
            train_galaxies=truth,
        )


def _drop(halos: HaloCatalog, column: str) -> HaloCatalog:
    return HaloCatalog(columns={k: v for k, v in halos.columns.items() if k != column}, box=halos.box)


def test_the_shipped_flow_is_documented_and_used_by_default(data: tuple) -> None:
    from cosmoseg.galaxies.sampler_stage import DEFAULT_MODELS_DIR
    from cosmoseg.galaxies.stages import FlowStage

    path = DEFAULT_MODELS_DIR / "flow.pt"
    assert path.stat().st_size < 5 * 2**20
    sampler = load_sampler(path)  # weights_only=True inside
    assert sampler.method == "flow" and sampler.card["metrics"]["c2st_auc"] <= 0.55
    assert "configs/suites/galaxies.toml" in (DEFAULT_MODELS_DIR / "MODEL_CARD.md").read_text()
    halos, _ = data
    parsed, _ = parse_params(FlowStage.Params, {}, FlowStage.name)
    out = FlowStage(parsed, RunContext(device=torch.device("cpu"), seed=5, stage_id="t")).run(halos)["galaxies"]
    assert len(out) == len(halos) and bool(torch.isfinite(out["log_mstar"]).all())


def test_each_param_is_declared_once_with_its_bounds() -> None:
    """galaxies.model's variant is a choice of the variants; galaxies.hod's params are HODParams' own fields (same
    names, defaults, bounds and docs) and four more; bounds and choices are reported by name before anything runs."""
    from cosmoseg.galaxies.hod import HODParams
    from cosmoseg.galaxies.model import VARIANTS, VariantName
    from cosmoseg.galaxies.stages import GalaxyModelStage, HODStage, HODStageParams, PopulationStage

    assert set(typing.get_args(VariantName)) == set(VARIANTS)
    _, problems = parse_params(GalaxyModelStage.Params, {"variant": "nope", "seed": -2}, "m")
    assert problems == [
        "m: param 'variant' must be one of ['fiducial', 'moster13'], got 'nope'",
        "m: param 'seed' must be >= -1, got -2",
    ]
    assert HODStage.Params is HODStageParams
    hod, stage = dataclasses.fields(HODParams), dataclasses.fields(HODStageParams)
    assert [(f.name, f.default, dict(f.metadata)) for f in stage[: len(hod)]] == [
        (f.name, f.default, dict(f.metadata)) for f in hod
    ]
    assert [f.name for f in stage[len(hod) :]] == ["secondary", "velocities", "seed", "chunk_rows"]
    assert HODStageParams().hod() == HODParams()
    _, problems = parse_params(HODStageParams, {"sigma_log_m": 0.0, "a_sat": 2.0, "secondary": "concentration"}, "h")
    assert problems == ["h: param 'sigma_log_m' must be > 0, got 0.0", "h: param 'a_sat' must be <= 1, got 2.0"]
    _, problems = parse_params(HODStageParams, {"a_cen": 0.5}, "h")  # a rule across fields
    assert problems == [
        "h: params 'a_cen'/'a_sat' (assembly bias) need a 'secondary' halo property, e.g. 'concentration'"
    ]
    for cls in (GaussStage, PopulationStage):
        _, problems = parse_params(cls.Params, {"min_mass": -1.0}, "s")
        assert problems == ["s: param 'min_mass' must be >= 0, got -1.0"]
