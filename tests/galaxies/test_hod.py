"""The Zheng et al. (2007) HOD: occupations, NFW satellites, assembly bias, counter-based randomness, errors, and its
calibration to a catalog (cosmoseg.galaxies.hod_fit)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.optimize import brentq

from cosmoseg.data import Box, HaloCatalog, Particles
from cosmoseg.errors import ValidationError
from cosmoseg.galaxies.hod import (
    HODParams,
    mean_occupation,
    nfw_enclosed_fraction,
    populate,
    prepare_hod,
    r200_from_mass,
)
from cosmoseg.galaxies.hod_fit import CentralOccupationFit, fit_central_occupation

LENGTH = 200.0
BOX = Box(length=LENGTH)


def make_halos(masses: torch.Tensor, seed: int = 0, **extra: torch.Tensor) -> HaloCatalog:
    g = torch.Generator().manual_seed(seed)
    n = masses.shape[0]
    columns = {
        "pos": torch.rand(n, 3, generator=g, dtype=torch.float64) * LENGTH,
        "vel": torch.randn(n, 3, generator=g, dtype=torch.float64) * 300.0,
        "mass": masses.double(),
        **extra,
    }
    return HaloCatalog(columns=columns, box=BOX)


def mass_ladder(n_per: int) -> torch.Tensor:
    """n_per identical haloes at each of a few masses across the central step and the satellite regime."""
    levels = torch.tensor([12.3, 12.79, 13.2, 13.9, 14.5], dtype=torch.float64)
    return (10.0**levels).repeat_interleave(n_per)


def occupation_counts(galaxies, n_halos: int) -> tuple[np.ndarray, np.ndarray]:
    host = galaxies["host"].numpy()
    central = galaxies["is_central"].numpy()
    return np.bincount(host[central], minlength=n_halos), np.bincount(host[~central], minlength=n_halos)


def test_mean_occupations_match_the_formula() -> None:
    n_per = 4000
    masses = mass_ladder(n_per)
    params = HODParams()
    galaxies = populate(prepare_hod(make_halos(masses)), params, seed=3)
    n_cen, n_sat = occupation_counts(galaxies, masses.numel())
    expect_cen, expect_sat = (t.numpy().reshape(-1, n_per)[:, 0] for t in mean_occupation(masses, params))
    got_cen, got_sat = n_cen.reshape(-1, n_per).mean(1), n_sat.reshape(-1, n_per).mean(1)
    assert set(np.unique(n_cen)) <= {0, 1}
    err_cen = np.sqrt(expect_cen * (1 - expect_cen) / n_per) + 1e-12
    err_sat = np.sqrt(expect_sat / n_per) + 1e-12
    assert np.all(np.abs(got_cen - expect_cen) < 4 * err_cen), (got_cen, expect_cen)
    assert np.all(np.abs(got_sat - expect_sat) < 4 * err_sat), (got_sat, expect_sat)
    # Poisson satellites: variance equals the mean in the most massive bin
    top = n_sat.reshape(-1, n_per)[-1]
    assert abs(top.var() / top.mean() - 1) < 0.1
    # the analytic formula itself, at M_min and below M_0
    c, s = mean_occupation(torch.tensor([10**12.79, 10**11.5], dtype=torch.float64), params)
    assert c[0].item() == pytest.approx(0.5) and s[1].item() == 0.0
    expected = ((10**12.79 - 10**11.92) / 10**13.94) ** 1.15
    assert s[0].item() == pytest.approx(expected, rel=1e-9)


def test_modulated_satellites() -> None:
    masses = torch.tensor([10**12.5, 10**14.0], dtype=torch.float64)
    plain = HODParams()
    c, s = mean_occupation(masses, plain)
    _, s_mod = mean_occupation(masses, plain.clone(modulate_satellites=True))
    assert torch.allclose(s_mod, s * c)


def test_number_densities_follow_the_catalog() -> None:
    g = torch.Generator().manual_seed(1)
    masses = 10.0 ** (11.5 + 3.5 * torch.rand(60_000, generator=g, dtype=torch.float64))
    params = HODParams(log_m_min=12.0, sigma_log_m=0.3, log_m0=11.5, log_m1=13.2, alpha=1.0)
    galaxies = populate(prepare_hod(make_halos(masses)), params, 5)
    expect_cen, expect_sat = (float(t.sum()) for t in mean_occupation(masses, params))
    got_cen = int(galaxies["is_central"].sum())
    got_sat = len(galaxies) - got_cen
    assert abs(got_cen - expect_cen) < 4 * math.sqrt(expect_cen)
    assert abs(got_sat - expect_sat) < 4 * math.sqrt(expect_sat)
    density = len(galaxies) / BOX.volume
    assert density == pytest.approx((expect_cen + expect_sat) / BOX.volume, rel=0.05)


def test_satellites_follow_nfw_within_r200() -> None:
    n = 2000
    masses = torch.full((n,), 1e15, dtype=torch.float64)
    conc = torch.full((n,), 6.0, dtype=torch.float64)
    halos = make_halos(masses, concentration=conc)
    galaxies = populate(prepare_hod(halos), HODParams(), seed=11)
    sat = ~galaxies["is_central"]
    host = galaxies["host"][sat]
    d = galaxies["pos"][sat] - halos["pos"][host]
    d = d - LENGTH * torch.round(d / LENGTH)
    r200 = r200_from_mass(1e15, BOX)
    s = (d.norm(dim=1) / float(r200)).numpy()
    assert s.size > 20_000 and s.max() <= 1 + 1e-9
    median = brentq(lambda x: float(nfw_enclosed_fraction(x, 6.0)) - 0.5, 1e-6, 1.0)
    assert np.median(s) == pytest.approx(median, abs=0.01)
    # the enclosed fraction at a few radii (a KS-like check)
    for x in (0.1, 0.3, 0.7):
        assert np.mean(s < x) == pytest.approx(float(nfw_enclosed_fraction(x, 6.0)), abs=0.015)
    # isotropy: mean direction near zero; centrals sit on their haloes
    assert float((d / d.norm(dim=1, keepdim=True)).mean(0).abs().max()) < 0.02
    cen = galaxies["is_central"]
    assert torch.allclose(galaxies["pos"][cen], halos["pos"][galaxies["host"][cen]])


def test_velocity_bias() -> None:
    n = 3000
    masses = torch.full((n,), 1e14, dtype=torch.float64)
    halos = make_halos(masses, vel_disp=torch.full((n,), 600.0 * math.sqrt(3), dtype=torch.float64))
    prepared = prepare_hod(halos)
    params = HODParams(log_m_min=12.0, alpha_c=0.5, alpha_s=0.8)
    galaxies = populate(prepared, params, seed=2)
    dv = galaxies["vel"] - halos["vel"][galaxies["host"]]
    cen = galaxies["is_central"]
    assert float(dv[cen].std()) == pytest.approx(0.5 * 600.0, rel=0.05)
    assert float(dv[~cen].std()) == pytest.approx(0.8 * 600.0, rel=0.05)
    still = populate(prepared, params.clone(alpha_c=0.0), seed=2)
    assert torch.equal(still["vel"][still["is_central"]], halos["vel"][still["host"][still["is_central"]]])


def test_satellites_on_member_particles() -> None:
    masses = torch.tensor([1e15, 1e15, 1e15], dtype=torch.float64)
    halos = make_halos(masses)
    g = torch.Generator().manual_seed(3)
    n_p = 600
    labels = torch.full((n_p,), -1, dtype=torch.int64)
    labels[:200], labels[200:400] = 0, 2  # halo 1 has no members: its satellites fall back to NFW
    particles = Particles(
        pos=torch.rand(n_p, 3, generator=g, dtype=torch.float64) * LENGTH,
        vel=torch.randn(n_p, 3, generator=g, dtype=torch.float64) * 500.0,
        ids=torch.randperm(n_p, generator=g),
        mass=1e10,
        box=BOX,
    )
    prepared = prepare_hod(halos, particles=particles, particle_halo=labels)
    params = HODParams(alpha_s=1.0)
    galaxies = populate(prepared, params, seed=8)
    sat = ~galaxies["is_central"]
    host, pos, vel = galaxies["host"][sat], galaxies["pos"][sat], galaxies["vel"][sat]
    assert sorted(set(host.tolist())) == [0, 1, 2]
    for h in (0, 2):
        members = particles.pos[labels == h]
        on = pos[host == h]
        # every satellite sits on one of its host's member particles, and takes that particle's velocity
        nearest = (on[:, None, :] - members[None, :, :]).norm(dim=-1).min(1)
        assert float(nearest.values.max()) < 1e-9
        assert torch.allclose(vel[host == h], particles.vel[labels == h][nearest.indices])
    # storage order of the particles does not matter (members are ordered by particle id)
    perm = torch.randperm(n_p, generator=g)
    shuffled = Particles(pos=particles.pos[perm], vel=particles.vel[perm], ids=particles.ids[perm], mass=1e10, box=BOX)
    again = populate(prepare_hod(halos, particles=shuffled, particle_halo=labels[perm]), params, seed=8)
    assert torch.equal(again["pos"], galaxies["pos"])
    with pytest.raises(ValidationError, match="particle_halo"):
        prepare_hod(halos, particles=particles, particle_halo=labels + 5)


def test_assembly_bias_conserves_the_mean_and_splits_by_concentration() -> None:
    n = 40_000
    g = torch.Generator().manual_seed(7)
    masses = torch.full((n,), 10**12.79, dtype=torch.float64)
    masses[n // 2 :] = 1e14
    conc = 5.0 + 5.0 * torch.rand(n, generator=g, dtype=torch.float64)
    prepared = prepare_hod(make_halos(masses, concentration=conc), secondary="concentration")
    params = HODParams(a_cen=0.6, a_sat=-0.5)
    n_cen, n_sat = occupation_counts(populate(prepared, params, seed=4), n)
    c_bar, s_bar = (t.numpy() for t in mean_occupation(masses, params))
    upper = prepared.ab_sign == 1
    assert upper.sum() == n // 2 and (prepared.ab_sign == -1).sum() == n // 2
    low_mass = np.arange(n) < n // 2
    # centrals at the mass where <N_cen> = 1/2: upper half 0.5 + 0.6 * 0.5, lower 0.5 - 0.3
    for half, expect in ((upper & low_mass, 0.8), (~upper & low_mass, 0.2)):
        assert n_cen[half].mean() == pytest.approx(expect, abs=4 * math.sqrt(0.25 / half.sum()))
    assert n_cen[low_mass].mean() == pytest.approx(0.5, abs=4 * math.sqrt(0.25 / low_mass.sum()))
    # satellites in the 1e14 haloes: upper (more concentrated) get 0.5 <N_sat>, lower 1.5 <N_sat>
    sbar = s_bar[~low_mass][0]
    for half, expect in ((upper & ~low_mass, 0.5 * sbar), (~upper & ~low_mass, 1.5 * sbar)):
        assert n_sat[half].mean() == pytest.approx(expect, abs=4 * math.sqrt(expect / half.sum()))
    assert n_sat[~low_mass].mean() == pytest.approx(sbar, abs=4 * math.sqrt(sbar / (n // 2)))
    assert c_bar[0] == pytest.approx(0.5)
    # ranks are taken at fixed mass: the split sits at each mass bin's median concentration
    for part in (low_mass, ~low_mass):
        median = np.median(conc.numpy()[part])
        assert np.all(conc.numpy()[part & upper] > median) and np.all(conc.numpy()[part & ~upper] < median)


def test_chunks_give_the_same_galaxies() -> None:
    g = torch.Generator().manual_seed(2)
    n = 5000
    masses = 10.0 ** (12.0 + 3.0 * torch.rand(n, generator=g, dtype=torch.float64))
    halos = make_halos(masses, id=torch.arange(n, dtype=torch.int64) + 10_000)
    params = HODParams(log_m_min=12.3, alpha_c=0.3)
    whole = populate(prepare_hod(halos), params, seed=9)
    cut = 1777
    parts = []
    for start, stop in ((0, cut), (cut, n)):
        part = populate(prepare_hod(halos.select(torch.arange(start, stop))), params, seed=9)
        parts.append(part.with_columns(host=part["host"] + start))
    for name in ("pos", "vel", "is_central", "host"):
        assert torch.equal(whole[name], torch.cat([p[name] for p in parts])), name


def test_determinism_and_cheap_repopulation() -> None:
    masses = mass_ladder(200)
    prepared = prepare_hod(make_halos(masses))
    a, b = populate(prepared, HODParams(), 1), populate(prepared, HODParams(), 1)
    for name in a.columns:
        assert torch.equal(a[name], b[name])
    c = populate(prepared, HODParams(), 2)
    assert len(c) != len(a) or not torch.equal(a["pos"], c["pos"])
    richer = populate(prepared, HODParams(log_m1=13.0), 1)
    assert len(richer) > len(a)
    assert a.meta["seed"] == 1 and a.meta["hod_alpha"] == pytest.approx(1.15)
    assert a["pos"].min() >= 0 and a["pos"].max() < LENGTH
    assert a["host"].dtype == torch.int64 and a["is_central"].dtype == torch.bool


def test_missing_columns_are_named_at_once() -> None:
    masses = torch.full((4,), 1e13, dtype=torch.float64)
    halos = HaloCatalog(columns={"pos": torch.rand(4, 3, dtype=torch.float64) * LENGTH, "mass": masses}, box=BOX)
    with pytest.raises(ValidationError) as info:
        prepare_hod(halos, secondary="concentration")
    assert "vel" in str(info.value) and "concentration" in str(info.value)
    prepared = prepare_hod(halos, velocities=False)
    assert "vel" not in populate(prepared, HODParams(), 0).columns
    with pytest.raises(ValidationError, match="secondary"):
        populate(prepared, HODParams(a_cen=0.5), 0)


def test_nans_and_bad_params_are_rejected() -> None:
    bad = torch.full((3,), 5.0, dtype=torch.float64)
    bad[1] = float("nan")
    with pytest.raises(ValidationError, match="concentration"):
        prepare_hod(make_halos(torch.full((3,), 1e13), concentration=bad))
    with pytest.raises(ValidationError) as info:
        HODParams(sigma_log_m=0.0, alpha=-1.0, a_cen=2.0)
    message = str(info.value)
    assert "sigma_log_m" in message and "alpha" in message and "a_cen" in message
    with pytest.raises(ValidationError, match="log_m1"):
        HODParams(log_m1=float("nan"))
    with pytest.raises(ValidationError, match="seed"):
        populate(prepare_hod(make_halos(torch.full((3,), 1e13))), HODParams(), -1)


def test_matches_halotools_zheng07() -> None:
    models = pytest.importorskip("halotools.empirical_models")
    model = models.PrebuiltHodModelFactory("zheng07", threshold=-21)
    params = HODParams(log_m_min=12.5, sigma_log_m=0.3, log_m0=12.0, log_m1=13.5, alpha=0.9)
    model.param_dict.update(
        logMmin=params.log_m_min, sigma_logM=params.sigma_log_m, logM0=params.log_m0, logM1=params.log_m1,
        alpha=params.alpha,
    )  # fmt: skip
    masses = np.logspace(11, 15.5, 200)
    ours_cen, ours_sat = (t.numpy() for t in mean_occupation(torch.from_numpy(masses), params))
    np.testing.assert_allclose(model.mean_occupation_centrals(prim_haloprop=masses), ours_cen, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(model.mean_occupation_satellites(prim_haloprop=masses), ours_sat, rtol=1e-10)


def test_number_densities_match_halotools_populate_mock() -> None:
    """Centrals and satellites per volume of one realisation each agree with halotools' on the same catalog."""
    pytest.importorskip("halotools.empirical_models")
    from halotools.empirical_models import PrebuiltHodModelFactory
    from halotools.sim_manager import UserSuppliedHaloCatalog

    n = 40_000
    rng = np.random.default_rng(5)
    masses = torch.from_numpy(10.0 ** rng.uniform(11.5, 15.0, n))
    halos = make_halos(masses, seed=5, r200=torch.from_numpy(r200_from_mass(masses.numpy(), BOX)))
    params = HODParams()
    ours = populate(prepare_hod(halos), params, seed=2)
    pos, vel, ids = halos["pos"].numpy(), halos["vel"].numpy(), np.arange(n, dtype=np.int64)
    catalog = UserSuppliedHaloCatalog(
        redshift=0.0, Lbox=LENGTH, particle_mass=1e9,
        halo_x=pos[:, 0], halo_y=pos[:, 1], halo_z=pos[:, 2], halo_vx=vel[:, 0], halo_vy=vel[:, 1], halo_vz=vel[:, 2],
        halo_id=ids, halo_hostid=ids, halo_upid=np.full(n, -1, dtype=np.int64), halo_mvir=masses.numpy(),
        halo_rvir=halos["r200"].numpy(), halo_nfw_conc=np.full(n, 8.0),
    )  # fmt: skip
    model = PrebuiltHodModelFactory("zheng07", threshold=-21)
    model.param_dict.update(
        logMmin=params.log_m_min, sigma_logM=params.sigma_log_m, logM0=params.log_m0, logM1=params.log_m1,
        alpha=params.alpha,
    )  # fmt: skip
    model.populate_mock(catalog, seed=2)
    theirs = model.mock.galaxy_table
    their_cen = int(np.sum(theirs["gal_type"] == "centrals"))
    their_sat = len(theirs) - their_cen
    our_cen = int(ours["is_central"].sum())
    our_sat = len(ours) - our_cen
    expect_cen, expect_sat = (float(t.sum()) for t in mean_occupation(masses, params))
    for got, want in ((our_cen, their_cen), (our_sat, their_sat)):
        # two independent realisations of the same mean: their difference has variance <= 2 * mean (Poisson)
        assert abs(got - want) < 5 * math.sqrt(2 * max(want, 1)), (got, want)
    assert abs(our_cen - expect_cen) < 5 * math.sqrt(expect_cen)
    assert abs(our_sat - expect_sat) < 5 * math.sqrt(expect_sat)


def test_calibration_recovers_the_parameters_of_a_populated_catalog() -> None:
    """fit_zheng07 on a catalog populated with known parameters gives them back; the stage uses the fit."""
    from cosmoseg.galaxies.hod_fit import fit_zheng07
    from cosmoseg.galaxies.stages import HODStage
    from cosmoseg.pipeline.context import RunContext

    rng = np.random.default_rng(3)
    masses = torch.from_numpy(10.0 ** rng.uniform(11.5, 15.0, 60_000))
    halos = make_halos(masses, seed=3, r200=torch.from_numpy(r200_from_mass(masses.numpy(), BOX)))
    truth = HODParams(log_m_min=12.4, sigma_log_m=0.3, log_m0=12.2, log_m1=13.4, alpha=1.05)
    galaxies = populate(prepare_hod(halos), truth, seed=1)
    fitted = fit_zheng07(halos, galaxies)
    assert fitted.log_m_min == pytest.approx(12.4, abs=0.03) and fitted.sigma_log_m == pytest.approx(0.3, abs=0.04)
    assert fitted.log_m1 == pytest.approx(13.4, abs=0.1) and fitted.alpha == pytest.approx(1.05, abs=0.1)
    stage = HODStage(HODStage.Params(velocities=False), RunContext(device=torch.device("cpu"), seed=0))
    out = stage.run(halos=halos, calibration_halos=halos, calibration_galaxies=galaxies)["galaxies"]
    assert abs(len(out) - len(galaxies)) < 5 * math.sqrt(len(galaxies))
    with pytest.raises(ValidationError, match="both calibration"):
        stage.run(halos=halos, calibration_halos=halos)


@pytest.mark.parametrize("fit_amplitude", [False, True])
def test_hod_fit_recovers_known_occupation(fit_amplitude: bool) -> None:
    gen = torch.Generator().manual_seed(5)
    log_mass = 11.0 + 3.5 * torch.rand(40000, generator=gen, dtype=torch.float64)
    true = CentralOccupationFit(log_m_min=12.3, sigma_log_m=0.35, amplitude=0.8 if fit_amplitude else 1.0)
    selected = true.draw(10.0**log_mass, torch.Generator().manual_seed(6))
    fit = fit_central_occupation(log_mass.numpy(), selected.numpy(), fit_amplitude=fit_amplitude)
    assert abs(fit.log_m_min - 12.3) < 0.05 and abs(fit.sigma_log_m - 0.35) < 0.05, fit
    assert abs(fit.amplitude - true.amplitude) < 0.02 and fit.rms < 0.05
    assert fit.params.log_m_min == fit.log_m_min  # a Zheng07 HODParams with satellites out of reach
    assert float(fit.mean(torch.tensor([1e20]))) == pytest.approx(true.amplitude, abs=0.02)
