"""Judging a painted field (cosmoseg.paint.evaluation): the P(k) score, occupancy, B(k) and PDF numbers, and the
P(k) table of one field."""

from __future__ import annotations

import pytest
import torch

from cosmoseg.data import Table
from cosmoseg.errors import ValidationError
from cosmoseg.measure.power import power_spectrum
from cosmoseg.paint.evaluation import (
    bispectrum_deviations,
    density_contrast,
    occupancy_scores,
    pdf_distance,
    power_ratio_score,
    score_painting,
    stellar_power_table,
)
from cosmoseg.paint.fields import from_log_mass

from .helpers import LENGTH, synthetic_box


def test_power_score_and_occupancy() -> None:
    box = synthetic_box(10)
    truth = from_log_mass(box.target)
    assert power_ratio_score(truth, truth, LENGTH)[0] == pytest.approx(0.0, abs=1e-12)
    assert power_ratio_score(3.0 * truth, truth, LENGTH)[0] == pytest.approx(0.0, abs=1e-6)  # δ is scale-free
    moved = torch.roll(truth, 3, dims=0)  # same P(k): a periodic shift
    assert power_ratio_score(moved, truth, LENGTH)[0] == pytest.approx(0.0, abs=1e-6)
    noisy = truth + 1e9 * torch.rand(truth.shape, generator=torch.Generator().manual_seed(0))
    assert power_ratio_score(noisy, truth, LENGTH)[0] > 0.05
    pred = torch.zeros(4, 4, 4, dtype=torch.bool)
    true = torch.zeros(4, 4, 4, dtype=torch.bool)
    pred[0, 0, :3] = True
    true[0, 0, 1:] = True  # 2 hits of 3 predicted, of 3 true
    assert occupancy_scores(pred, true) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    scores = score_painting(2.0 * truth, truth, LENGTH)
    assert scores.total_mass_ratio == pytest.approx(2.0) and scores.precision == 1.0 and scores.recall == 1.0
    with pytest.raises(ValidationError, match="non-finite"):
        score_painting(truth * float("nan"), truth, LENGTH)


def test_bispectrum_deviations_and_pdf_distance_by_hand() -> None:
    bis = Table(columns={"k1": torch.tensor([1.0, 1.0, 2.0, 2.0]), "k2": torch.tensor([2.0, 2.0, 3.0, 3.0]),
                         "ratio_m": torch.tensor([1.1, 0.8, 1.0, 1.5])})  # fmt: skip
    assert bispectrum_deviations(bis, "m") == [pytest.approx(0.15), pytest.approx(0.25)]
    pdf = Table(columns={"count_truth": torch.tensor([1.0, 1.0, 2.0]), "count_m": torch.tensor([2.0, 0.0, 2.0]),
                         "count_empty": torch.zeros(3)})  # fmt: skip
    assert pdf_distance(pdf, "m") == pytest.approx(0.25)  # CDFs (0.25, 0.5, 1) and (0.5, 0.5, 1)
    assert pdf_distance(pdf, "empty") == 1.0


def test_the_power_table_of_one_field_is_that_of_its_contrast() -> None:
    mstar = from_log_mass(synthetic_box(12).target).double()
    table = stellar_power_table(mstar, LENGTH)
    spectrum = power_spectrum(density_contrast(mstar), LENGTH)
    assert list(table.columns) == ["k", "n_modes", "power"] and table.meta["quantity"].startswith("stellar-mass")
    assert torch.equal(table["power"], spectrum.power) and torch.equal(table["k"], spectrum.k)
    torch.testing.assert_close(stellar_power_table(3.0 * mstar, LENGTH)["power"], table["power"])  # δ is scale-free
    empty = stellar_power_table(None, LENGTH)
    assert len(empty) == 0 and list(empty.columns) == ["k", "n_modes", "power"]
