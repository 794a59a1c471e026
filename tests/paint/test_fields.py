"""The dm2gal fields (cosmoseg.paint.fields): transform, mass assignment, checks."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from cosmoseg.data import Field, GalaxyCatalog, HaloCatalog, Particles
from cosmoseg.errors import ValidationError
from cosmoseg.paint.fields import (
    LOG_UNIT,
    check_same_grid,
    default_grid,
    dm_mass_field,
    from_log_mass,
    paint_fields,
    stellar_mass_field,
    subhalo_mass_field,
    to_log_mass,
    voxel_size,
)
from cosmoseg.testing import toy_box

L = 40.0
N = 8  # voxels of 5 Mpc/h


def _particles(pos: torch.Tensor, length: float = L, mass: float = 2e10) -> Particles:
    return Particles(pos=pos, vel=torch.zeros_like(pos), ids=torch.arange(pos.shape[0]), mass=mass, box=toy_box(length))


def _random_particles(n_part: int = 200, seed: int = 0, length: float = L) -> Particles:
    pos = torch.rand((n_part, 3), generator=torch.Generator().manual_seed(seed)) * length
    return _particles(pos, length)


def _halos(pos: torch.Tensor, mass: torch.Tensor, length: float = L) -> HaloCatalog:
    return HaloCatalog(columns={"pos": pos, "mass": mass}, box=toy_box(length))


def _galaxies(pos: torch.Tensor, log_mstar: torch.Tensor, length: float = L) -> GalaxyCatalog:
    return GalaxyCatalog(columns={"pos": pos, "log_mstar": log_mstar}, box=toy_box(length))


def _random_halos(n: int = 10, seed: int = 1, length: float = L) -> HaloCatalog:
    gen = torch.Generator().manual_seed(seed)
    return _halos(torch.rand((n, 3), generator=gen) * length, 10 ** (11 + 3 * torch.rand(n, generator=gen)), length)


def _centre(i: int, j: int, k: int) -> torch.Tensor:
    return (torch.tensor([[i, j, k]], dtype=torch.float32) + 0.5) * (L / N)


# --- the transform ------------------------------------------------------------------------------------------------


def test_log_mass_round_trip_and_clamp() -> None:
    m = torch.tensor([0.0, 1e-6, 1.0, 9.0, 1e8, 1e12], dtype=torch.float64)
    y = to_log_mass(m)
    assert torch.allclose(y, torch.log10(1 + m), rtol=1e-12, atol=1e-15)
    assert torch.equal(to_log_mass(m.clone(), inplace=True), y)
    assert y[0] == 0 and y[3] == pytest.approx(1.0)
    assert torch.allclose(from_log_mass(y), m, rtol=1e-12, atol=1e-15)
    assert torch.equal(from_log_mass(torch.tensor([-0.3, -5.0, 0.0])), torch.zeros(3))
    assert LOG_UNIT == "log10(1 + Msun/h)"


# --- the fields ---------------------------------------------------------------------------------------------------


def test_dm_field_conserves_mass_and_a_centred_particle_stays_in_its_voxel() -> None:
    parts = _random_particles()
    grid = dm_mass_field(parts, N)
    assert grid.shape == (N, N, N)
    assert float(grid.double().sum()) == pytest.approx(len(parts) * parts.mass, rel=1e-6)
    one = dm_mass_field(_particles(_centre(2, 5, 7)), N)
    assert one[2, 5, 7] == pytest.approx(2e10) and float(one.sum()) == pytest.approx(2e10)


def test_dm_field_wraps_periodically() -> None:
    """A particle on the corner of the box shares its mass among the 8 corner voxels, across the faces."""
    grid = dm_mass_field(_particles(torch.zeros((1, 3))), N)
    corners = grid[[0, -1]][:, [0, -1]][:, :, [0, -1]]
    assert torch.allclose(corners, torch.full((2, 2, 2), 2e10 / 8))
    assert float(grid.sum()) == pytest.approx(2e10)


def test_subhalo_field_conserves_halo_mass_and_checks_the_box() -> None:
    halos = _random_halos()
    grid = subhalo_mass_field(halos, toy_box(L), N)
    assert grid.shape == (N, N, N) and grid.dtype == torch.float32
    assert float(grid.double().sum()) == pytest.approx(float(halos["mass"].sum()), rel=1e-6)
    single = subhalo_mass_field(_halos(_centre(1, 1, 6), torch.tensor([3e12])), L, N)
    assert single[1, 1, 6] == pytest.approx(3e12, rel=1e-6) and int((single > 0).sum()) == 1
    # NGP (default): a halo near a voxel corner stays whole in the voxel holding its centre; CIC spreads it over 2³
    corner = torch.tensor([[10.1, 24.9, 39.9]])
    ngp = subhalo_mass_field(_halos(corner, torch.tensor([1e12])), L, N)
    cic = subhalo_mass_field(_halos(corner, torch.tensor([1e12])), L, N, assignment="cic")
    assert int((ngp > 0).sum()) == 1 and ngp[2, 4, 7] == pytest.approx(1e12, rel=1e-6)
    assert int((cic > 0).sum()) == 8 and float(cic.double().sum()) == pytest.approx(1e12, rel=1e-6)
    assert paint_fields(_random_particles(), halos, n=N, halo_assignment="cic").meta["assignment_log_halo"] == "cic"
    with pytest.raises(ValidationError, match="halo assignment must be one of"):
        subhalo_mass_field(halos, L, N, assignment="tsc")
    with pytest.raises(ValidationError, match=r"haloes live in a box of 40 Mpc/h but the grid in one of 80"):
        subhalo_mass_field(halos, 80.0, N)
    with pytest.raises(ValidationError, match="no column 'm200'"):
        subhalo_mass_field(halos, L, N, mass_column="m200")


def test_stellar_field_puts_each_galaxy_in_its_ngp_voxel() -> None:
    # near a voxel corner: CIC would spread it, NGP keeps it whole in the voxel that contains it
    pos = torch.tensor([[10.1, 24.9, 39.99], [10.2, 24.8, 39.9], [0.0, 0.0, 0.0]])
    log_mstar = torch.tensor([10.0, 9.0, 8.5])
    grid = stellar_mass_field(_galaxies(pos, log_mstar), N)
    assert int((grid > 0).sum()) == 2
    assert grid[2, 4, 7] == pytest.approx(1.1e10, rel=1e-6)  # the first two share a voxel: masses add
    assert grid[0, 0, 0] == pytest.approx(10**8.5, rel=1e-6)
    # periodic: a galaxy at x = L (wrapped to 0 by the catalog) lands in voxel 0
    wrapped = stellar_mass_field(_galaxies(torch.tensor([[L, 2.5, 7.5]]), torch.tensor([9.0])), N)
    assert wrapped[0, 0, 1] == pytest.approx(1e9, rel=1e-6)


def test_paint_fields_channels_units_meta_and_totals() -> None:
    parts, halos = _random_particles(), _random_halos()
    gals = _galaxies(_centre(3, 3, 3), torch.tensor([10.5]))
    field = paint_fields(parts, halos, gals, n=N)
    assert field.channels == ("log_dm", "log_halo", "log_mstar") and field.units == (LOG_UNIT,) * 3
    assert field.values.shape == (3, N, N, N) and field.box == parts.box
    assert field.meta["n"] == N and field.meta["voxel_size"] == pytest.approx(L / N) == voxel_size(field)
    masses = from_log_mass(field.values.double()).sum(dim=(1, 2, 3))
    assert masses[0] == pytest.approx(len(parts) * parts.mass, rel=1e-5)
    assert masses[1] == pytest.approx(float(halos["mass"].sum()), rel=1e-5)
    assert masses[2] == pytest.approx(10**10.5, rel=1e-5)
    two = paint_fields(parts, halos, n=N)
    assert two.channels == ("log_dm", "log_halo") and torch.equal(two.values, field.values[:2])


# --- bad inputs ---------------------------------------------------------------------------------------------------


def test_different_boxes_are_named() -> None:
    parts = _random_particles()
    with pytest.raises(ValidationError, match=r"haloes live in a box of 50 Mpc/h but the particles in one of 40"):
        paint_fields(parts, _random_halos(length=50.0), n=N)
    with pytest.raises(ValidationError, match=r"galaxies live in a box of 60 Mpc/h"):
        paint_fields(parts, _random_halos(), _galaxies(torch.ones((1, 3)), torch.tensor([9.0]), length=60.0), n=N)


def test_nan_inputs_name_the_column() -> None:
    parts, halos = _random_particles(), _random_halos()
    parts.pos[3, 1] = float("nan")  # tensors are mutable after validation: checked again here
    halos["mass"][0] = float("nan")
    with pytest.raises(ValidationError) as err:
        paint_fields(parts, halos, n=N)
    text = str(err.value)
    assert "particles 'pos'" in text and "haloes column 'mass'" in text and "paint_fields" in text
    gals = _galaxies(torch.ones((2, 3)), torch.tensor([9.0, 10.0]))
    gals["log_mstar"][1] = float("inf")
    with pytest.raises(ValidationError, match="galaxies column 'log_mstar'"):
        stellar_mass_field(gals, N)


@pytest.mark.parametrize("n", [7, 0, 1, -2])
def test_odd_or_tiny_grids_are_refused(n: int) -> None:
    with pytest.raises(ValidationError, match="even integer >= 2"):
        paint_fields(_random_particles(), _random_halos(), n=n)


def test_check_same_grid_names_both() -> None:
    box = toy_box(L)
    a = Field.scalar(torch.zeros(N, N, N), box=box, name="a")
    check_same_grid(a, Field.scalar(torch.ones(N, N, N), box=box, name="b"), "test")
    with pytest.raises(ValidationError, match=r"test: .*a is 8\^3 voxels over 40 Mpc/h.*b is 4\^3 voxels"):
        check_same_grid(a, Field.scalar(torch.zeros(4, 4, 4), box=box, name="b"), "test")
    other = Field.scalar(torch.zeros(N, N, N), box=dataclasses.replace(box, length=80.0), name="b")
    with pytest.raises(ValidationError, match="over 80 Mpc/h"):
        check_same_grid(a, other, "test")


def test_the_default_grid_is_the_particle_grid() -> None:
    assert default_grid(_random_particles(n_part=27)) == 4  # no n_grid: the cube root of the count, made even
