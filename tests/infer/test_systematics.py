"""Observational systematics: redshift space, survey mask, errors, cuts, and their text form."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cosmoseg.data import Box, Cosmology, GalaxyCatalog
from cosmoseg.errors import ValidationError
from cosmoseg.infer.graphs import GraphSpec, galaxy_graph, random_subbox
from cosmoseg.infer.systematics import (
    Compose,
    PositionErrors,
    PropertyCut,
    RedshiftSpace,
    SurveyMask,
    VelocityErrors,
    parse_systematics,
)

L = 100.0


def _uniform(n: int = 2000, seed: int = 0, redshift: float = 0.0) -> GalaxyCatalog:
    gen = torch.Generator().manual_seed(seed)
    columns = {
        "pos": torch.rand((n, 3), generator=gen, dtype=torch.float64) * L,
        "vel": torch.randn((n, 3), generator=gen, dtype=torch.float64) * 300,
        "log_mstar": 9 + 2 * torch.rand(n, generator=gen, dtype=torch.float64),
        "color_gi": torch.rand(n, generator=gen, dtype=torch.float64),
    }
    return GalaxyCatalog(columns=columns, box=Box(length=L, redshift=redshift))


def _gen(seed: int = 1) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_redshift_space_by_hand() -> None:
    cosmo = Cosmology(omega_m=0.3)
    pos = torch.tensor([[10.0, 20.0, 30.0], [50.0, 50.0, L - 1.0]], dtype=torch.float64)
    vel = torch.tensor([[100.0, -200.0, 500.0], [0.0, 0.0, 300.0]], dtype=torch.float64)
    catalog = GalaxyCatalog(columns={"pos": pos, "vel": vel}, box=Box(length=L, redshift=1.0, cosmology=cosmo))
    out = RedshiftSpace()(catalog, _gen())
    # a = 1/2, E(a) = sqrt(0.3 * 8 + 0.7) = sqrt(3.1), a H(a) = 0.5 * 100 * 1.7607 = 88.034 km/s per Mpc/h
    a_h = 0.5 * 100.0 * math.sqrt(0.3 * 8 + 0.7)
    np.testing.assert_allclose(out["pos"][0].numpy(), [10.0, 20.0, 30.0 + 500.0 / a_h], rtol=1e-10)
    assert 500.0 / a_h == pytest.approx(5.6796, abs=1e-4)
    np.testing.assert_allclose(out["pos"][1].numpy(), [50.0, 50.0, 300.0 / a_h - 1.0], rtol=1e-10)  # wrapped
    assert "vel" not in out and "vel" not in out.units
    np.testing.assert_array_equal(out["v_los"].numpy(), [500.0, 300.0])
    assert out.units["v_los"] == "km/s" and out.meta["los_axis"] == 2
    along_x = RedshiftSpace(axis=0)(catalog, _gen())
    np.testing.assert_array_equal(along_x["v_los"].numpy(), [100.0, 0.0])
    np.testing.assert_allclose(along_x["pos"][0].numpy(), [10.0 + 100.0 / a_h, 20.0, 30.0], rtol=1e-10)
    with pytest.raises(ValidationError, match="already in redshift space"):
        RedshiftSpace()(out, _gen())
    with pytest.raises(ValidationError, match="axis"):
        RedshiftSpace(axis=3)


def test_redshift_space_then_los_graph() -> None:
    catalog = RedshiftSpace(axis=1)(_uniform(), _gen())
    data = galaxy_graph(catalog, GraphSpec(r_link=5.0, velocities="los", los_axis=1))
    assert data.x.shape == (len(catalog), 1) and data.edge_attr.shape[1] == 3
    np.testing.assert_allclose(data.x[:, 0].numpy(), catalog["v_los"].abs().numpy() / 100, rtol=1e-6)


def test_survey_mask_removes_the_requested_volume() -> None:
    catalog = _uniform(n=50_000)
    mask = SurveyMask(masked_fraction=0.2, n_holes=50)
    out = mask(catalog, _gen(3))
    removed = 1 - len(out) / len(catalog)
    measured = out.meta["masked_fraction"]
    # the galaxies removed follow the volume covered (Poisson noise ~0.002) ...
    assert abs(removed - measured) < 0.01
    # ... and the volume covered by 50 random holes scatters around the request by a few percent
    assert abs(measured - 0.2) < 0.08
    assert out.meta["volume_fraction"] == pytest.approx(1 - measured)
    # deterministic under the generator
    again = mask(catalog, _gen(3))
    assert torch.equal(again["pos"], out["pos"])
    other = mask(catalog, _gen(4))
    assert len(other) != len(out)
    # the graph's number density stays that of the unmasked box
    spec = GraphSpec(r_link=3.0, velocities="none")
    assert galaxy_graph(out, spec).u.item() == pytest.approx(galaxy_graph(catalog, spec).u.item(), abs=0.01)
    assert SurveyMask(masked_fraction=0.0)(catalog, _gen()).meta["masked_fraction"] == 0.0
    with pytest.raises(ValidationError, match="masked_fraction"):
        SurveyMask(masked_fraction=1.0)
    with pytest.raises(ValidationError, match="n_holes"):
        SurveyMask(n_holes=0)


def test_survey_mask_holes_are_periodic_spheres() -> None:
    catalog = _uniform(n=20_000)
    mask = SurveyMask(masked_fraction=0.1, n_holes=5)
    out = mask(catalog, _gen(9))
    centres = torch.rand((5, 3), generator=_gen(9), dtype=torch.float64).numpy() * L
    radius = mask.radius(L)
    assert radius == pytest.approx(L * (3 * -math.log(0.9) / (4 * math.pi * 5)) ** (1 / 3))

    def in_hole(pos: np.ndarray) -> np.ndarray:
        d = pos[:, None, :] - centres[None]
        d -= L * np.round(d / L)
        return (np.sqrt((d**2).sum(-1)) < radius).any(axis=1)

    assert not in_hole(out["pos"].numpy()).any()
    assert len(out) == int((~in_hole(catalog["pos"].numpy())).sum())


def test_position_and_velocity_errors() -> None:
    catalog = _uniform()
    moved = PositionErrors(0.5)(catalog, _gen())
    delta = moved["pos"] - catalog["pos"]
    delta -= L * torch.round(delta / L)
    assert bool((delta[:, :2] == 0).all())
    assert float(delta[:, 2].std()) == pytest.approx(0.5, rel=0.1)
    assert bool((moved["pos"] >= 0).all()) and bool((moved["pos"] < L).all())
    iso = PositionErrors(0.5, isotropic=True)(catalog, _gen())
    assert bool(((iso["pos"] - catalog["pos"]).abs() > 0).all())
    # along the catalog's line of sight by default
    rsd = RedshiftSpace(axis=0)(catalog, _gen())
    along = PositionErrors(0.5)(rsd, _gen())
    assert bool((along["pos"][:, 1:] == rsd["pos"][:, 1:]).all()) and not torch.equal(along["pos"], rsd["pos"])

    noisy = VelocityErrors(50.0)(rsd, _gen())
    assert float((noisy["v_los"] - rsd["v_los"]).std()) == pytest.approx(50.0, rel=0.1)
    assert torch.equal(noisy["pos"], rsd["pos"])
    noisy3d = VelocityErrors(50.0)(catalog, _gen())
    assert float((noisy3d["vel"] - catalog["vel"]).std()) == pytest.approx(50.0, rel=0.1)
    bare = GalaxyCatalog(columns={"pos": catalog["pos"]}, box=catalog.box)
    with pytest.raises(ValidationError, match="neither"):
        VelocityErrors(50.0)(bare, _gen())
    with pytest.raises(ValidationError, match="sigma"):
        PositionErrors(-1.0)


def test_cuts_select_exactly() -> None:
    catalog = _uniform()
    mass = catalog["log_mstar"]
    out = PropertyCut("log_mstar", minimum=9.5)(catalog, _gen())
    assert torch.equal(out["log_mstar"], mass[mass > 9.5])
    colour = catalog["color_gi"]
    both = PropertyCut("color_gi", minimum=0.2, maximum=0.8)(catalog, _gen())
    assert torch.equal(both["pos"], catalog["pos"][(colour > 0.2) & (colour < 0.8)])
    with pytest.raises(ValidationError, match="no column 'log_z'"):
        PropertyCut("log_z", maximum=0.0)(catalog, _gen())
    with pytest.raises(ValidationError, match="minimum, a maximum"):
        PropertyCut("log_mstar")
    with pytest.raises(ValidationError, match="smaller than maximum"):
        PropertyCut("log_mstar", minimum=10.0, maximum=9.0)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("rsd", "rsd"),
        (
            "rsd,mask:0.1,pos_err:0.5,vel_err:50,cut:log_mstar>9.5",
            "rsd,mask:0.1,pos_err:0.5,vel_err:50,cut:log_mstar>9.5",
        ),
        ("cut:color_gi<0.8", "cut:color_gi<0.8"),
        (
            " RSD:x , mask:0.25:20, pos_err:1:iso, cut: 9 < log_mstar < 11.5 ",
            "rsd:0,mask:0.25:20,pos_err:1:iso,cut:9<log_mstar<11.5",
        ),
        ("pos_err:0.5:y,vel_err:1e-3", "pos_err:0.5:1,vel_err:0.001"),
        ("", "none"),
        ("none", "none"),
    ],
)
def test_parse_describe_round_trip(text: str, canonical: str) -> None:
    effects = parse_systematics(text)
    assert effects.describe() == canonical
    assert parse_systematics(canonical) == effects


def test_parse_builds_the_transforms() -> None:
    effects = parse_systematics("rsd,mask:0.1,pos_err:0.5,vel_err:50,cut:log_mstar>9.5")
    assert effects.transforms == (
        RedshiftSpace(axis=2),
        SurveyMask(masked_fraction=0.1),
        PositionErrors(0.5),
        VelocityErrors(50.0),
        PropertyCut("log_mstar", minimum=9.5),
    )
    catalog = _uniform(n=5000)
    out = effects(catalog, _gen(2))
    assert "vel" not in out and "v_los" in out and bool((out["log_mstar"] > 9.5).all())
    assert out.meta["volume_fraction"] < 1
    # deterministic under the generator, and the same as the transforms one by one
    assert torch.equal(effects(catalog, _gen(2))["pos"], out["pos"])
    by_hand, gen = catalog, _gen(2)
    for transform in effects:
        by_hand = transform(by_hand, gen)
    assert torch.equal(by_hand["v_los"], out["v_los"])
    assert len(Compose()) == 0 and Compose()(catalog, _gen()) is catalog


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("rsd,blur:3", "unknown systematic 'blur'"),
        ("mask:1.5", "masked_fraction must be >= 0 and < 1"),
        ("mask:abc", "FRACTION must be a number"),
        ("mask", "takes 1 to 2"),
        ("mask:0.1:many", "N_HOLES"),
        ("vel_err:-5", "sigma must be >= 0"),
        ("pos_err:inf", "SIGMA must be finite"),
        ("rsd:w", "axis must be 0, 1, 2, x, y or z"),
        ("cut:log_mstar", "COLUMN>MIN"),
        ("cut:log_mstar>=9", "MIN must be a number"),
        ("cut:11<log_mstar<9", "smaller than maximum"),
    ],
)
def test_bad_specs_are_clear(text: str, match: str) -> None:
    with pytest.raises(ValidationError, match=match) as info:
        parse_systematics(text)
    message = str(info.value)
    assert "known" in message or "rsd[:AXIS]" in message
    assert "rsd, mask, pos_err, vel_err, cut" in message or "COLUMN>MIN" in message


def test_moving_systematics_refuse_a_sub_box() -> None:
    sub = random_subbox(_uniform(), 0.5, _gen())
    for transform in (RedshiftSpace(), SurveyMask(), PositionErrors(0.5)):
        with pytest.raises(ValidationError, match=r"before graphs\.random_subbox"):
            transform(sub, _gen())
    assert len(PropertyCut("log_mstar", minimum=10.0)(sub, _gen())) < len(sub)
    assert VelocityErrors(10.0)(sub, _gen()).meta["periodic"] is False
