"""What a dm2gal model file records of its training runs (particle mass, cosmology) and the fields it refuses or
warns about: another particle resolution is refused, another cosmology is a warning."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cosmoseg.cli import build_app
from cosmoseg.data import Box, Cosmology, Field, Particles, save_artifact
from cosmoseg.errors import ValidationError
from cosmoseg.galaxies.sampler_stage import toy_halos
from cosmoseg.paint.fields import LOG_UNIT
from cosmoseg.paint.models import DEFAULT_MODEL, check_voxel, load_paint_model, save_paint_model
from cosmoseg.paint.network import Dm2GalFCN
from cosmoseg.paint.stages import Dm2GalParams, Dm2GalStage
from cosmoseg.pipeline.context import RunContext, SilentReporter

N, VOXEL = 16, 2.0
FCN_TINY = {"local": 4, "local_layers": 1, "context": 2, "context_layers": 2, "pool": 2, "hidden": 8}
TRAINED = Cosmology()
TRAINED_MASS = TRAINED.particle_mass(N, N * VOXEL)  # one particle per voxel, as the training runs


def _model_file(tmp_path: Path, *, record: bool = True) -> Path:
    torch.manual_seed(0)
    model = Dm2GalFCN(**FCN_TINY).eval()
    extra = {"particle_mass": TRAINED_MASS, "cosmology": TRAINED} if record else {}
    return save_paint_model(tmp_path / "fcn.pt", model, voxel=VOXEL, threshold=1e8, step=1, card={}, **extra)


def _fields(*, particle_mass: float | None = TRAINED_MASS, cosmology: Cosmology = TRAINED) -> Field:
    g = torch.Generator().manual_seed(3)
    dm = 11.0 + torch.rand((N, N, N), generator=g)
    halo = torch.where(torch.rand((N, N, N), generator=g) < 0.05, 12.5, 0.0)
    meta = {"assignment_log_halo": "ngp"} | ({} if particle_mass is None else {"particle_mass": particle_mass})
    return Field(values=torch.stack([dm, halo]), box=Box(length=N * VOXEL, cosmology=cosmology),
                 channels=("log_dm", "log_halo"), units=(LOG_UNIT,) * 2, meta=meta)  # fmt: skip


def _run(model: Path, fields: Field) -> list[str]:
    reporter = SilentReporter()
    ctx = RunContext(device=torch.device("cpu"), seed=5, stage_id="painted", reporter=reporter)
    Dm2GalStage(Dm2GalParams(model=str(model), tile=8), ctx).run(fields=fields)
    return reporter.messages


def test_another_particle_resolution_is_refused(tmp_path: Path) -> None:
    """A run of 8 times fewer particles (twice the spacing) painted on a grid of the model's voxel size."""
    model = _model_file(tmp_path)
    with pytest.raises(ValidationError, match=r"particles .* 4 Mpc/h apart, but the model was trained on .* 2 Mpc/h "
                       r"apart \(8 times the mass at equal Omega_m\)"):  # fmt: skip
        _run(model, _fields(particle_mass=8 * TRAINED_MASS))
    assert not [m for m in _run(model, _fields()) if "warning" in m]


def test_another_cosmology_is_a_warning(tmp_path: Path) -> None:
    model = _model_file(tmp_path)
    (line,) = [m for m in _run(model, _fields(cosmology=Cosmology(sigma_8=0.7))) if "warning" in m]
    assert "sigma_8 0.7 (trained 0.8102)" in line and "extrapolates" in line and "omega_m" not in line
    # another Omega_m at the same particle spacing: a heavier particle, not another resolution
    heavy = Cosmology(omega_m=0.35)
    (line,) = [m for m in _run(model, _fields(particle_mass=heavy.particle_mass(N, N * VOXEL), cosmology=heavy))
               if "warning" in m]  # fmt: skip
    assert "omega_m 0.35 (trained 0.3111)" in line


def test_what_cannot_be_checked_is_said_without_a_warning(tmp_path: Path) -> None:
    messages = _run(_model_file(tmp_path, record=False), _fields(particle_mass=None, cosmology=Cosmology(sigma_8=0.7)))
    assert any("does not record its training particle_mass and cosmology: not checked" in m for m in messages)
    assert any("the fields do not record the particle mass of their run" in m for m in messages)
    assert not [m for m in messages if "warning" in m]


def test_domain_notes_and_the_voxel_message_say_what_to_do() -> None:
    from cosmoseg.paint.models import domain_notes, particle_spacing

    assert particle_spacing(TRAINED.particle_mass(128, 100.0), TRAINED) == pytest.approx(0.78125)
    meta = {"voxel": 0.78125, "particle_mass": TRAINED.particle_mass(128, 100.0), "cosmology": {"omega_m": 0.3111}}
    with pytest.raises(ValidationError, match=r"\(box / 0.78125\)\^3 particles"):
        domain_notes(meta, particle_mass=TRAINED.particle_mass(64, 100.0), cosmology=TRAINED, where="here")
    with pytest.raises(ValidationError, match=r"on the particle grid of runs whose particles are 0.78125 Mpc/h apart"):
        check_voxel(100.0 / 64, meta, "here")


def test_the_shipped_model_records_its_suite() -> None:
    suite = tomllib.loads((Path(__file__).parents[2] / "configs/suites/paint.toml").read_text())
    _, meta = load_paint_model(DEFAULT_MODEL)
    planck = Cosmology(**suite.get("cosmology", {}))
    assert meta["particle_mass"] == pytest.approx(planck.particle_mass(suite["grid"]["n"], suite["grid"]["box"]))
    keys = ("omega_m", "omega_b", "h", "n_s", "sigma_8", "w0", "wa")
    assert meta["cosmology"] == {k: getattr(planck, k) for k in keys}


def test_the_train_command_records_the_particle_mass_and_cosmology(tmp_path: Path) -> None:
    n_grid, cosmology = 8, Cosmology(sigma_8=0.75)
    for i in range(3):
        g = torch.Generator().manual_seed(100 + i)
        halos = toy_halos(g, n=60)
        box = Box(length=halos.box.length, cosmology=cosmology)
        halos = type(halos)(columns=halos.columns, box=box)
        cell = box.length / n_grid
        axis = (torch.arange(n_grid, dtype=torch.float64) + 0.5) * cell
        grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)
        particles = Particles(pos=grid.float(), vel=torch.zeros_like(grid).float(), ids=torch.arange(n_grid**3),
                              mass=3e13, box=box, n_grid=n_grid)  # fmt: skip
        save_artifact(tmp_path / "suite" / f"box_{i:04d}.h5", {"particles": particles, "halos": halos})
    arch = [f"--arch={a}" for a in ("local=2", "local_layers=1", "context=2", "context_layers=1", "pool=2", "hidden=4")]
    out = tmp_path / "fcn.pt"
    args = ["paint", "train", str(tmp_path / "suite"), *arch, "--steps", "2", "--tile", "4", "--eval-every", "2"]
    result = CliRunner().invoke(build_app(), [*args, "--batch", "1", "--selection-draws", "1", "--output", str(out)])
    assert result.exit_code == 0, result.output
    _, meta = load_paint_model(out)
    assert meta["particle_mass"] == 3e13 and meta["cosmology"]["sigma_8"] == 0.75
