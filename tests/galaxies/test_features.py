"""Halo / galaxy property matrices and the pairing of centrals with their hosts."""

from __future__ import annotations

import pytest
import torch

from cosmoseg.data import Box, GalaxyCatalog, HaloCatalog
from cosmoseg.errors import ValidationError
from cosmoseg.galaxies.features import central_pairs, property_matrix

BOX = Box(length=50.0)


def _halos() -> HaloCatalog:
    mass = torch.tensor([1e12, 1e13, 1e14], dtype=torch.float64)
    return HaloCatalog(
        columns={
            "pos": torch.zeros(3, 3),
            "mass": mass,
            "spin": torch.tensor([0.03, 0.05, 0.0]),
            "x3": torch.ones(3, 3),
        },
        box=BOX,
    )


def test_columns_and_logarithms() -> None:
    m = property_matrix(_halos(), ["log_mass", "spin"])
    torch.testing.assert_close(m, torch.tensor([[12.0, 0.03], [13.0, 0.05], [14.0, 0.0]]))
    assert m.dtype == torch.float32


def test_every_problem_is_named_at_once() -> None:
    with pytest.raises(ValidationError) as err:
        property_matrix(_halos(), ["log_vmax", "log_spin", "x3", "concentration"], role="halo catalog")
    text = str(err.value)
    assert "['log_vmax', 'concentration']" in text
    assert "log_spin: column 'spin' of the halo catalog has 1 value(s) <= 0" in text
    assert "x3" in text and "per-row scalar" in text


def test_centrals_are_paired_with_their_hosts() -> None:
    galaxies = GalaxyCatalog(
        columns={
            "pos": torch.zeros(4, 3),
            "host": torch.tensor([2, 0, 2, 1]),
            "is_central": torch.tensor([True, True, False, True]),
        },
        box=BOX,
    )
    halo_rows, galaxy_rows = central_pairs(_halos(), galaxies)
    assert halo_rows.tolist() == [2, 0, 1] and galaxy_rows.tolist() == [0, 1, 3]
    bad = GalaxyCatalog(
        columns={"pos": torch.zeros(1, 3), "host": torch.tensor([5]), "is_central": torch.tensor([True])}, box=BOX
    )
    with pytest.raises(ValidationError, match=r"outside 0\.\.2"):
        central_pairs(_halos(), bad)
    with pytest.raises(ValidationError, match=r"(?s)'host'.*'is_central'"):
        central_pairs(_halos(), GalaxyCatalog(columns={"pos": torch.zeros(1, 3)}, box=BOX))
