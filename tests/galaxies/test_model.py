"""The semi-empirical galaxy model: published relations, scatter, quenching, satellites, validation."""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest
import torch
from scipy.optimize import brentq

from cosmoseg.data import Box, Catalog, Cosmology, HaloCatalog
from cosmoseg.errors import ValidationError
from cosmoseg.galaxies import relations
from cosmoseg.galaxies.model import (
    G_NEWTON,
    VARIANTS,
    GalaxyModelParams,
    gaussianized_rank,
    paint_galaxies,
    quenched_fraction,
)

H = 0.7
BOX = Box(length=200.0, cosmology=Cosmology(h=H, power_backend="eisenstein-hu"))
CENTRALS_ONLY = dataclasses.replace(VARIANTS["fiducial"], sat_log_mcut=17.0)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Element-wise work on ~1e4 rows: intra-op threads only contend for the shared cores (40x slower under load)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def halos(mass: torch.Tensor, **extra: torch.Tensor) -> HaloCatalog:
    """N haloes of ``mass`` (N,) Msun/h spread over the box, with zero velocities unless given."""
    n = mass.shape[0]
    g = torch.Generator().manual_seed(123)
    columns = {
        "pos": torch.rand(n, 3, generator=g, dtype=torch.float64) * BOX.length,
        "vel": torch.zeros(n, 3, dtype=torch.float64),
        "mass": mass.to(torch.float64),
    }
    return HaloCatalog(columns=columns | extra, box=BOX)


def test_published_smhm_values() -> None:
    # hand-computed from Behroozi+13 eq. 3 (z = 0) and Moster+13 eq. 2 (z = 0), masses in Msun
    log_m = torch.tensor([11.514, 12.0, 13.0], dtype=torch.float64)
    behroozi = relations.behroozi13_log_mstar(log_m)
    assert torch.allclose(behroozi, torch.tensor([9.737, 10.42808, 10.95369], dtype=torch.float64), atol=2e-4)
    moster = relations.moster13_log_mstar(torch.tensor([11.59, 12.0], dtype=torch.float64))
    assert torch.allclose(moster, torch.tensor([11.59 + math.log10(0.0351), 10.53499], dtype=torch.float64), atol=2e-4)


def test_central_median_matches_smhm_and_scatter_is_the_parameter() -> None:
    expected = {11.514: 9.737, 12.0: 10.42808, 13.0: 10.95369}  # log M_h [Msun] -> log M* [Msun]
    n = 3000
    log_mh = torch.tensor(list(expected), dtype=torch.float64).repeat_interleave(n)
    cat = halos(10.0**log_mh * H)  # Msun -> Msun/h
    for scatter in (0.2, 0.1):
        gal = paint_galaxies(cat, variant=dataclasses.replace(CENTRALS_ONLY, scatter_dex=scatter), seed=3)
        assert len(gal) == len(cat) and bool(gal["is_central"].all())
        log_ms = gal["log_mstar"].double().reshape(3, n)
        for row, value in zip(log_ms, expected.values(), strict=True):
            assert abs(float(row.median()) - (value + math.log10(H))) < 0.015  # Msun -> Msun/h
            assert abs(float(row.std()) - scatter) < 0.01


def test_scatter_is_tied_to_assembly_with_the_given_correlation() -> None:
    n = 6000
    g = torch.Generator().manual_seed(5)
    conc = 4.0 + 6.0 * torch.rand(n, generator=g, dtype=torch.float64)
    cat = halos(torch.full((n,), 1e12, dtype=torch.float64), concentration=conc)
    gal = paint_galaxies(cat, variant=CENTRALS_ONLY, seed=0)
    resid = gal["log_mstar"].double() - gal["log_mstar"].double().mean()
    # normal scores of the concentration ranks (all haloes in one mass bin)
    scores = math.sqrt(2) * torch.erfinv(2 * (conc.argsort().argsort().double() + 0.5) / n - 1)
    corr = float(torch.corrcoef(torch.stack([resid, scores]))[0, 1])
    assert abs(corr - CENTRALS_ONLY.assembly_corr) < 0.04
    # z_form takes precedence over the concentration: anti-ordering it flips the sign
    gal = paint_galaxies(cat.with_columns(z_form=-conc), variant=CENTRALS_ONLY, seed=0)
    resid = gal["log_mstar"].double() - gal["log_mstar"].double().mean()
    assert float(torch.corrcoef(torch.stack([resid, scores]))[0, 1]) < -0.5


def test_gaussianized_rank_is_standard_normal_within_mass_bins() -> None:
    g = torch.Generator().manual_seed(0)
    values = torch.rand(4000, generator=g, dtype=torch.float64)
    log_mass = torch.where(torch.arange(4000) < 2000, 11.0, 13.0).double()
    a = gaussianized_rank(values + log_mass, log_mass, 0.2, g)  # the mass trend is removed by the binning
    for sel in (log_mass == 11.0, log_mass == 13.0):
        assert abs(float(a[sel].mean())) < 1e-9 and abs(float(a[sel].std()) - 1.0) < 0.01
    assert float(torch.corrcoef(torch.stack([a, values]))[0, 1]) > 0.95


def test_variants_differ() -> None:
    cat = halos(10.0 ** torch.linspace(11.0, 14.0, 3000, dtype=torch.float64))
    fid = paint_galaxies(cat, variant="fiducial", seed=1)
    mos = paint_galaxies(cat, variant="moster13", seed=1)
    assert fid.meta["galaxy_model"] == "fiducial" and mos.meta["galaxy_model"] == "moster13"
    cen_f, cen_m = fid["is_central"], mos["is_central"]
    assert float((fid["log_mstar"][cen_f] - mos["log_mstar"][cen_m]).abs().mean()) > 0.1
    assert VARIANTS["fiducial"].quench_on != VARIANTS["moster13"].quench_on
    assert int((fid["is_quenched"][cen_f] != mos["is_quenched"][cen_m]).sum()) > 300


@pytest.mark.parametrize("variant", ["fiducial", "moster13"])
def test_quenched_fraction_rises_with_mass_and_satellites_quench_more(variant: str) -> None:
    cat = halos(10.0 ** torch.linspace(11.0, 14.5, 8000, dtype=torch.float64))
    gal = paint_galaxies(cat, variant=variant, seed=2)
    cen = gal["is_central"]
    fractions = [float(chunk.float().mean()) for chunk in gal["is_quenched"][cen].chunk(4)]
    assert all(b > a for a, b in itertools.pairwise(fractions)), fractions
    assert fractions[0] < 0.3 and fractions[-1] > 0.8
    params = VARIANTS[variant]
    x = torch.tensor([10.0, 12.0], dtype=torch.float64)
    zero = torch.zeros_like(x)
    sat = quenched_fraction(x, zero, None, params, satellite=True)
    assert bool((sat > quenched_fraction(x, zero, None, params)).all())
    assert bool((quenched_fraction(x, zero + 1, None, params) > quenched_fraction(x, zero, None, params)).all())
    # quenched galaxies: low sSFR and red; star-forming: on the main sequence and blue (around M* ~ 10^10 Msun/h)
    q = gal["is_quenched"]
    assert abs(float(gal["log_ssfr"][q].mean()) + 12.0) < 0.05
    window = (gal["log_mstar"] > 9.5) & (gal["log_mstar"] < 10.5)
    assert -10.6 < float(gal["log_ssfr"][window & ~q].mean()) < -9.8
    assert 1.0 < float(gal["color_gi"][window & q].mean()) < 1.2
    assert 0.6 < float(gal["color_gi"][window & ~q].mean()) < 0.85


def test_environment_raises_quenching_in_the_fiducial_model() -> None:
    n = 6000
    env = torch.linspace(-1.0, 1.0, n, dtype=torch.float64)
    cat = halos(torch.full((n,), 10**11.8, dtype=torch.float64), log_env_density_r2=env)
    gal = paint_galaxies(cat, variant=CENTRALS_ONLY, seed=4)
    low, high = gal["is_quenched"].float().chunk(2)
    assert float(high.mean()) > float(low.mean()) + 0.05


def test_satellite_counts_follow_the_power_law() -> None:
    params = VARIANTS["fiducial"]
    log_m = 13.5
    n = 4000
    cat = halos(torch.cat([torch.full((n,), 10.0**log_m), torch.full((100,), 10.0 ** (params.sat_log_mcut - 0.1))]))
    gal = paint_galaxies(cat, seed=6)
    counts = torch.bincount(gal["host"][~gal["is_central"]], minlength=len(cat)).double()
    expected = (10.0 ** (log_m - params.sat_log_m1)) ** params.sat_alpha
    assert abs(float(counts[:n].mean()) / expected - 1.0) < 0.03
    assert abs(float(counts[:n].var()) / expected - 1.0) < 0.1  # Poisson
    assert int(counts[n:].sum()) == 0  # below the cut
    sat = ~gal["is_central"]
    log_msub_max = math.log10(params.sat_mu_max) + log_m
    assert float(gal["log_mstar"][sat].max()) < float(relations.behroozi13_log_mstar(torch.tensor(log_msub_max))) + 1.5


def test_satellites_follow_nfw_and_move_with_the_host() -> None:
    n, c, r200, mass = 2000, 5.0, 1.0, 1e14
    v_host = torch.tensor([300.0, -200.0, 50.0], dtype=torch.float64)
    cat = HaloCatalog(
        columns={
            "pos": torch.full((n, 3), 0.5, dtype=torch.float64),  # near a corner: satellites wrap around
            "vel": v_host.expand(n, 3).clone(),
            "mass": torch.full((n,), mass, dtype=torch.float64),
            "concentration": torch.full((n,), c, dtype=torch.float64),
            "r200": torch.full((n,), r200, dtype=torch.float64),
        },
        box=BOX,
    )
    gal = paint_galaxies(cat, seed=7)
    sat = ~gal["is_central"]
    pos = gal["pos"][sat].double()
    assert bool((pos >= 0).all() and (pos < BOX.length).all())
    d = pos - 0.5
    d = d - BOX.length * torch.round(d / BOX.length)
    x = d.norm(dim=1) / r200
    assert float(x.max()) <= 1.0 + 1e-5
    mu = relations.nfw_mu
    x_median = brentq(lambda t: float(mu(torch.tensor(c * t))) - float(mu(torch.tensor(c))) / 2, 1e-6, 1.0)
    assert abs(float(x.median()) / x_median - 1.0) < 0.03
    dv = gal["vel"][sat].double() - v_host
    sigma = math.sqrt(G_NEWTON * mass / (2 * r200))
    assert float(dv.mean(0).abs().max()) < 4 * sigma / math.sqrt(dv.shape[0])
    assert abs(float(dv.std()) / sigma - 1.0) < 0.03


def test_output_columns_and_determinism() -> None:
    cat = halos(10.0 ** torch.linspace(11.0, 14.0, 500, dtype=torch.float64)).to("cpu")
    a = paint_galaxies(cat, seed=11)
    b = paint_galaxies(cat, seed=11)
    c = paint_galaxies(cat, seed=12)
    names = {"pos", "vel", "log_mstar", "log_ssfr", "color_gi", "log_radius", "log_z"}
    assert set(a.columns) == names | {"is_central", "is_quenched", "host"}
    assert a["host"].dtype == torch.int64 and a["is_central"].dtype == torch.bool
    assert torch.equal(a["host"][: len(cat)], torch.arange(len(cat)))
    assert a.box == cat.box and a.meta["seed"] == 11 and a.units["log_mstar"] == "log10 Msun/h"
    for name in a.columns:
        assert torch.equal(a[name], b[name])
    assert len(a) != len(c) or not torch.equal(a["log_mstar"], c["log_mstar"])
    # sizes ~ 0.015 R_200 for centrals (kpc/h), metallicities around solar
    cen = a["is_central"]
    r200 = relations.r200c_mpc_h(cat["mass"], BOX.cosmology, 0.0)
    offset = a["log_radius"][cen].double() - torch.log10(0.015 * 1000 * r200)
    assert abs(float(offset.median())) < 0.1
    assert -0.6 < float(a["log_z"].mean()) < 0.4
    cut = paint_galaxies(cat, seed=11, min_log_mstar=10.0)
    assert float(cut["log_mstar"].min()) >= 10.0 and len(cut) < len(a)


def test_missing_columns_are_named_at_once() -> None:
    cat = Catalog(columns={"pos": torch.zeros(3, 3)}, box=BOX)
    with pytest.raises(ValidationError) as info:
        paint_galaxies(cat)  # type: ignore[arg-type]
    assert "'vel'" in str(info.value) and "'mass'" in str(info.value)
    with pytest.raises(ValidationError, match="unknown galaxy model variant"):
        paint_galaxies(halos(torch.ones(3) * 1e12), variant="nope")


def test_nans_are_rejected() -> None:
    cat = halos(torch.ones(4, dtype=torch.float64) * 1e12, spin=torch.full((4,), 0.03, dtype=torch.float64))
    spin = cat["spin"].clone()
    spin[2] = float("nan")
    object.__setattr__(cat, "columns", {**cat.columns, "spin": spin})  # bypass the catalog's own check
    with pytest.raises(ValidationError, match="'spin' holds 1 NaN"):
        paint_galaxies(cat)


def test_params_are_validated_all_at_once() -> None:
    with pytest.raises(ValidationError) as info:
        GalaxyModelParams(smhm="nope", scatter_dex=-1.0, assembly_corr=2.0)  # type: ignore[arg-type]
    text = str(info.value)
    assert "smhm" in text and "scatter_dex" in text and "assembly_corr" in text
