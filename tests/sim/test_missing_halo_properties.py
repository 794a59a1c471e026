"""FoF halo properties that can lack a value carry a ``<name>_resolved`` mask and the fill value 0 (never NaN)."""

from __future__ import annotations

import pytest
import torch

from cosmoseg import Cosmology, HaloCatalog
from cosmoseg.data.table import MISSING_FILL, resolved_column
from cosmoseg.sim import find_halos, initial_conditions, run_pm
from cosmoseg.sim.halo_properties import MAY_BE_MISSING


@pytest.fixture(scope="module")
def halos() -> HaloCatalog:
    """FoF haloes of a small particle-mesh run: 32^3 particles in 32 Mpc/h, 10 steps (haloes of 20-2000 particles)."""
    ics = initial_conditions(Cosmology(power_backend="eisenstein-hu"), n=32, length=32.0, seed=3)
    catalog, _ = find_halos(run_pm(ics.particles, steps=10)[-1])
    return catalog


def test_every_column_that_can_be_missing_has_its_mask(halos: HaloCatalog) -> None:
    assert set(MAY_BE_MISSING) == {"m200", "r200", "spin", "concentration"}
    for name in MAY_BE_MISSING:
        mask = halos[resolved_column(name)]
        assert mask.dtype == torch.bool and mask.shape == (len(halos),), name
        assert bool((halos[name][~mask] == MISSING_FILL).all()), name
        assert bool((halos[name][mask] > 0).all()), name
        assert torch.equal(halos.resolved(name), mask)
        assert halos.units[resolved_column(name)] == ""


def test_the_masks_say_what_the_docs_say(halos: HaloCatalog) -> None:
    n200 = halos["n200"]
    assert torch.equal(halos["m200_resolved"], n200 > 0) and torch.equal(halos["r200_resolved"], n200 > 0)
    assert torch.equal(halos["spin_resolved"], n200 >= 2)
    assert not bool(halos["concentration_resolved"][n200 < 100].any())
    # a small PM run has haloes with and without each value, so the tests here check something
    assert int((n200 == 0).sum()) > 0 and int((n200 >= 2).sum()) > 0
    assert 0 < int(halos["concentration_resolved"].sum()) < len(halos)


def test_no_column_is_nan_and_every_other_column_has_a_value(halos: HaloCatalog) -> None:
    masked = set(MAY_BE_MISSING)
    for name, values in halos.columns.items():
        if values.is_floating_point():
            assert bool(torch.isfinite(values).all()), name
    for name in ("mass", "vmax", "vel_disp"):
        assert name not in masked and bool((halos[name] > 0).all()), name
