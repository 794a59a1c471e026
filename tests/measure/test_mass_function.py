"""Halo and stellar mass functions: hand-computed bins, a sampled power law, and colossus theory curves."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch

from cosmoseg import Cosmology
from cosmoseg.measure.mass_function import (
    colossus_parameters,
    halo_mass_function,
    stellar_mass_function,
    theory_in_bins,
    theory_mass_function,
)

EH = Cosmology(power_backend="eisenstein-hu")


def test_hand_computed_bins_and_poisson_errors() -> None:
    masses = torch.tensor([1e12, 2e12, 3e12, 5e12, 1e13, 2e13], dtype=torch.float64)
    table = halo_mass_function(masses, 1000.0, edges=[1e12, 3e12, 1e13])
    assert table["counts"].tolist() == [2.0, 3.0]  # 3e12 opens the second bin; 1e13 closes it; 2e13 is out
    assert table.meta["n_outside"] == 1 and table.meta["n_total"] == 6
    assert torch.allclose(
        table["dndlnm"], torch.tensor([2 / (1000 * math.log(3)), 3 / (1000 * math.log(10 / 3))], dtype=torch.float64)
    )
    assert torch.allclose(table["dndlnm_err"], table["dndlnm"] / table["counts"].sqrt())
    assert table["m_low"].tolist() == [1e12, 3e12] and table["m_high"].tolist() == [3e12, 1e13]
    assert float(table["m_mid"][0]) == pytest.approx(math.sqrt(3e24))
    assert table.units["dndlnm"] == "(Mpc/h)^-3"


def test_the_integral_over_the_bins_is_the_number_density() -> None:
    masses = 10 ** (11 + 3 * torch.rand(500, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    table = halo_mass_function(masses, 125.0**3, n_bins=13)
    dlnm = torch.log(table["m_high"] / table["m_low"])
    assert float((table["dndlnm"] * dlnm).sum()) == pytest.approx(500 / 125.0**3, rel=1e-12)
    cut = halo_mass_function(masses, 125.0**3, n_bins=4, m_min=1e12, m_max=1e13)
    inside = int(((masses >= 1e12) & (masses <= 1e13)).sum())
    assert float(cut["counts"].sum()) == inside and cut.meta["n_outside"] == 500 - inside


def test_a_poisson_sampled_power_law_is_recovered_within_its_errors() -> None:
    # dn/dlnM = A (M/M1)^-alpha on [M1, M2]: N ~ Poisson(V ∫ dn), masses by inverse CDF in ln M
    amplitude, alpha, m1, m2, volume = 2e-3, 0.9, 1e11, 1e15, 200.0**3
    gen = torch.Generator().manual_seed(7)
    x_max = math.log(m2 / m1)
    expected_n = volume * amplitude * (1 - math.exp(-alpha * x_max)) / alpha
    n = int(torch.poisson(torch.tensor(expected_n, dtype=torch.float64), generator=gen))
    u = torch.rand(n, generator=gen, dtype=torch.float64)
    x = -torch.log1p(-u * (1 - math.exp(-alpha * x_max))) / alpha
    table = halo_mass_function(m1 * torch.exp(x), volume, n_bins=12, m_min=m1, m_max=m2)
    lo, hi = torch.log(table["m_low"] / m1), torch.log(table["m_high"] / m1)
    truth = amplitude * (torch.exp(-alpha * lo) - torch.exp(-alpha * hi)) / alpha / (hi - lo)  # bin average
    sigma = torch.sqrt(truth * volume * (hi - lo)) / (volume * (hi - lo))  # Poisson error of the expectation
    pulls = (table["dndlnm"] - truth) / sigma
    assert float(pulls.abs().max()) < 4
    assert float((pulls**2).mean()) < 2.5


def test_stellar_mass_function_by_hand() -> None:
    log_m = torch.tensor([9.0, 9.2, 9.6, 10.0, 10.4, 11.5])
    table = stellar_mass_function(log_m, 100.0, edges=[9.0, 9.5, 10.5])
    assert table["counts"].tolist() == [2.0, 3.0] and table.meta["n_outside"] == 1
    assert torch.allclose(table["dndlogm"], torch.tensor([2 / (100 * 0.5), 3 / (100 * 1.0)], dtype=torch.float64))
    assert torch.allclose(table["log_mstar_mid"], torch.tensor([9.25, 10.0], dtype=torch.float64))
    auto = stellar_mass_function(log_m, 100.0, n_bins=5)
    assert float((auto["dndlogm"] * (auto["log_mstar_high"] - auto["log_mstar_low"])).sum()) == pytest.approx(0.06)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="positive"):
        halo_mass_function(torch.tensor([1e12, -1.0]), 1.0)
    with pytest.raises(ValueError, match="volume"):
        halo_mass_function(torch.tensor([1e12]), 0.0)
    with pytest.raises(ValueError, match="1-d"):
        halo_mass_function(torch.ones((2, 2)), 1.0)
    with pytest.raises(ValueError, match="increasing"):
        halo_mass_function(torch.tensor([1e12]), 1.0, edges=[1e13, 1e12])
    with pytest.raises(ValueError, match="no objects"):
        halo_mass_function(torch.tensor([]), 1.0)
    with pytest.raises(ValueError, match="finite"):
        stellar_mass_function(torch.tensor([9.0, math.inf]), 1.0)
    assert halo_mass_function(torch.tensor([]), 1.0, m_min=1e12, m_max=1e13, n_bins=2)["counts"].tolist() == [0, 0]


def test_theory_equals_a_direct_colossus_call_and_leaves_colossus_as_it_was() -> None:
    colossus_cosmology = pytest.importorskip("colossus.cosmology.cosmology")
    from colossus.lss import mass_function

    before = colossus_cosmology.setCosmology("planck18")
    ours = {model: theory_mass_function(EH, torch.logspace(11, 15, 9), 0.5, model=model) for model in ("tinker08",)}
    ours["sheth99"] = theory_mass_function(EH, torch.logspace(11, 15, 9), 0.5, model="sheth99")
    ours["despali16"] = theory_mass_function(EH, torch.logspace(11, 15, 9), 0.5, model="despali16", mdef="200c")
    assert colossus_cosmology.getCurrent() is before

    colossus_cosmology.setCosmology("direct", colossus_parameters(EH))
    m = np.logspace(11, 15, 9)
    for model, mdef in (("tinker08", "200m"), ("sheth99", "fof"), ("despali16", "200c")):
        direct = mass_function.massFunction(m, 0.5, mdef=mdef, model=model, q_out="dndlnM")
        # equal up to colossus's interpolation tables, which each colossus Cosmology object builds anew (1e-6)
        assert np.allclose(ours[model].numpy(), direct, rtol=1e-5, atol=0), model
    colossus_cosmology.setCurrent(before)


def test_theory_bin_averages_and_errors() -> None:
    pytest.importorskip("colossus")
    m = torch.tensor([1e13], dtype=torch.float64)
    narrow = theory_in_bins(EH, m, m * 1.001)
    assert float(narrow[0]) == pytest.approx(float(theory_mass_function(EH, m * 1.0005)[0]), rel=1e-5)
    wide = theory_in_bins(EH, m, m * 10)
    fine = theory_mass_function(EH, torch.logspace(13, 14, 2001, dtype=torch.float64))
    assert float(wide[0]) == pytest.approx(float(fine.mean()), rel=1e-3)
    with pytest.raises(ValueError, match="model"):
        theory_mass_function(EH, m, model="press74")
    with pytest.raises(ValueError, match="power"):
        theory_mass_function(EH, m, power="camb")


def test_a_clear_error_without_colossus(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in sys.modules if n == "colossus" or n.startswith("colossus.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "colossus", None)
    with pytest.raises(ImportError, match="pip install colossus"):
        theory_mass_function(EH, torch.tensor([1e12]))


def test_the_mass_function_stage_adds_theory_columns() -> None:
    pytest.importorskip("colossus")
    from cosmoseg.measure.stages import MassFunctionParams, MassFunctionStage
    from cosmoseg.pipeline.context import RunContext
    from cosmoseg.testing import toy_halo_catalog

    halos = toy_halo_catalog(torch.Generator().manual_seed(1), n=40)
    ctx = RunContext(device=torch.device("cpu"), seed=0, stage_id="hmf")
    params = MassFunctionParams(n_bins=4, m_min=1e12, m_max=1e14, theory=("tinker08", "sheth99"))
    table = MassFunctionStage(params, ctx).run(halos=halos)["mass_function"]
    assert float(table["counts"].sum()) == 40 and table.meta["box"] == halos.box.length
    expected = theory_in_bins(halos.box.cosmology, table["m_low"], table["m_high"], model="tinker08")
    assert torch.allclose(table["dndlnm_tinker08"], expected, rtol=1e-12)
    assert "dndlnm_sheth99" in table and table.units["dndlnm_sheth99"] == "(Mpc/h)^-3"


def test_the_stage_offers_the_theory_models_of_the_library() -> None:
    from typing import get_args, get_type_hints

    from cosmoseg.measure.mass_function import THEORY_MODELS
    from cosmoseg.measure.stages import MassFunctionParams

    (model,) = get_args(get_type_hints(MassFunctionParams)["theory"])[:1]
    assert get_args(model) == tuple(THEORY_MODELS)
