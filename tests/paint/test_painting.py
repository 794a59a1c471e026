"""Painting a box with a successor model file (cosmoseg.paint.painting): the outputs, the truth comparison, the
fields it refuses (voxel size, particle resolution, halo assignment, channels, a per-voxel model) and what it says
(another cosmology, haloes beyond the training range, what cannot be checked)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cosmoseg.data import Cosmology, Field
from cosmoseg.errors import ValidationError
from cosmoseg.paint.fields import LOG_UNIT
from cosmoseg.paint.painting import Painting, paint_with_model

from .helpers import N, per_voxel_file, successor_file, toy_fields

VOXEL = 2.0
TRAINED = Cosmology()
TRAINED_MASS = TRAINED.particle_mass(N, N * VOXEL)  # one particle per voxel, as the training runs


def _paint(model: Path, fields: Field, **options: object) -> tuple[Painting, list[str]]:
    lines: list[str] = []
    painting = paint_with_model(fields, str(model), log=lines.append, **{"tile": 8, **options})
    return painting, lines


def _recording(tmp_path: Path, *, record: bool = True) -> Path:
    """A successor whose file records (or not) its training particle mass and cosmology."""
    extra = {"particle_mass": TRAINED_MASS, "cosmology": TRAINED} if record else {}
    return successor_file(tmp_path / "fcn.pt", VOXEL, bright=False, **extra)


def test_outputs_and_the_truth_comparison(tmp_path: Path) -> None:
    model = successor_file(tmp_path / "fcn.pt", VOXEL)
    draw = torch.Generator().manual_seed(5)
    out, lines = _paint(model, toy_fields(), generator=draw)
    painted, galaxies = out.painted, out.galaxies
    assert painted.values.shape == (1, N, N, N) and painted.channels == ("log_mstar",)
    assert painted.meta["model"] == str(model) and painted.meta["threshold"] == 1e8
    assert len(galaxies) == int((painted.values[0] > 0).sum())  # one galaxy per occupied voxel
    assert len(out.power) == len(out.power_truth) > 0
    assert any(line.startswith("vs the truth: mean |ln P/P_truth|") for line in lines)
    no_truth, lines = _paint(model, toy_fields(truth=False), generator=torch.Generator().manual_seed(5))
    assert len(no_truth.power_truth) == 0 and torch.equal(no_truth.painted.values, painted.values)
    assert not any(line.startswith("vs the truth") for line in lines)
    means = _paint(model, toy_fields())[0].painted.values  # no generator: the conditional means
    assert torch.equal(means > 0, painted.values > 0) and not torch.equal(means, painted.values)
    empty = _paint(model, toy_fields(), generator=torch.Generator().manual_seed(5), catalog=False)[0]
    assert len(empty.galaxies) == 0 and torch.equal(empty.painted.values, painted.values)


def test_refused_inputs_name_the_problem(tmp_path: Path) -> None:
    model = successor_file(tmp_path / "fcn.pt", VOXEL)
    with pytest.raises(ValidationError, match=r"voxels of 1 Mpc/h but the model was trained on voxels of 2 Mpc/h"):
        _paint(model, toy_fields(voxel=1.0))
    with pytest.raises(ValidationError, match=r"painted by 'cic' but the model was trained on 'ngp'"):
        _paint(model, toy_fields(assignment="cic"))
    fields = toy_fields()
    with pytest.raises(ValidationError, match=r"paint.dm2gal: fields lack channel\(s\) \['log_halo'\]"):
        _paint(model, Field(values=fields.values[:1], box=fields.box, channels=("log_dm",), units=(LOG_UNIT,)))
    with pytest.raises(ValidationError, match="needs the true galaxy positions"):
        _paint(per_voxel_file(tmp_path / "dm2gal.pt", VOXEL), toy_fields())
    with pytest.raises(ValueError, match=r"cells of 2 voxels"):
        _paint(model, toy_fields(), tile=3)


def test_haloes_beyond_the_training_range_are_named(tmp_path: Path) -> None:
    """The toy fields' haloes are 10^12.5: a model trained up to 10^12.0 says it extrapolates, naming both masses
    and the number of voxels; one trained up to 10^13 (or whose file does not say) stays quiet."""
    fields = toy_fields()
    quiet = _paint(successor_file(tmp_path / "a.pt", VOXEL, max_log_halo=13.0), fields)[1]
    loud = _paint(successor_file(tmp_path / "b.pt", VOXEL, max_log_halo=12.0), fields)[1]
    unknown = _paint(successor_file(tmp_path / "c.pt", VOXEL), fields)[1]
    count = int((fields.values[1] > 0).sum())
    (warning,) = [m for m in loud if "warning" in m]
    assert f"{count} halo voxel(s) up to 10^12.50 Msun/h" in warning and "(10^12.00)" in warning
    assert not [m for m in quiet + unknown if "warning" in m]
    assert "hinge features' last slope" in warning  # the default successor goes on straight past its range


def test_another_particle_resolution_is_refused(tmp_path: Path) -> None:
    """A run of 8 times fewer particles (twice the spacing) painted on a grid of the model's voxel size."""
    model = _recording(tmp_path)
    with pytest.raises(ValidationError, match=r"particles .* 4 Mpc/h apart, but the model was trained on .* 2 Mpc/h "
                       r"apart \(8 times the mass at equal Omega_m\)"):  # fmt: skip
        _paint(model, toy_fields(truth=False, particle_mass=8 * TRAINED_MASS))
    assert not [m for m in _paint(model, toy_fields(truth=False, particle_mass=TRAINED_MASS))[1] if "warning" in m]


def test_another_cosmology_is_a_warning(tmp_path: Path) -> None:
    model = _recording(tmp_path)
    fields = toy_fields(truth=False, particle_mass=TRAINED_MASS, cosmology=Cosmology(sigma_8=0.7))
    (line,) = [m for m in _paint(model, fields)[1] if "warning" in m]
    assert "sigma_8 0.7 (trained 0.8102)" in line and "extrapolates" in line and "omega_m" not in line
    # another Omega_m at the same particle spacing: a heavier particle, not another resolution
    heavy = Cosmology(omega_m=0.35)
    fields = toy_fields(truth=False, particle_mass=heavy.particle_mass(N, N * VOXEL), cosmology=heavy)
    (line,) = [m for m in _paint(model, fields)[1] if "warning" in m]
    assert "omega_m 0.35 (trained 0.3111)" in line


def test_what_cannot_be_checked_is_said_without_a_warning(tmp_path: Path) -> None:
    fields = toy_fields(truth=False, cosmology=Cosmology(sigma_8=0.7))
    messages = _paint(_recording(tmp_path, record=False), fields)[1]
    assert any("does not record its training particle_mass and cosmology: not checked" in m for m in messages)
    assert any("the fields do not record the particle mass of their run" in m for m in messages)
    assert not [m for m in messages if "warning" in m]
