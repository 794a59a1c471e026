"""Binned tables with empty bins follow the data model's convention: the fill value 0 with a count of 0 beside it."""

from __future__ import annotations

import math

import torch

from cosmoseg import Segmentation
from cosmoseg.data.table import MISSING_FILL
from cosmoseg.measure.mass_function import halo_mass_function
from cosmoseg.measure.segmentation import MISSING_COUNTS, QUANTILES, per_mass_rates
from cosmoseg.measure.stages import SegmentationScoresParams, SegmentationScoresStage
from cosmoseg.pipeline.context import RunContext
from cosmoseg.testing import toy_segmentation

EDGES = (10.0, 11.0, 12.0, 13.0, 14.0, 15.0)
"""log10 Msun/h: with haloes of a few 10^11-10^12 Msun/h, most of these bins are empty."""


def _pair() -> tuple[Segmentation, Segmentation]:
    truth = toy_segmentation(torch.Generator().manual_seed(3), n=8, n_haloes=3)
    shifted = torch.roll(truth.labels, shifts=1, dims=0)
    return truth, Segmentation(labels=shifted, probabilities=(shifted > 0).double(), box=truth.box)


def test_every_per_mass_column_that_can_be_missing_has_its_count() -> None:
    assert set(MISSING_COUNTS) == {"TPR", "FNR", "FDR", "instance_recall", "instance_precision"} | {
        f"q{round(100 * q):02d}" for q in QUANTILES
    }
    truth, prediction = _pair()
    rates = per_mass_rates(truth.labels, prediction.labels, 1e11, torch.tensor(EDGES))
    for name, count in MISSING_COUNTS.items():
        empty = rates[count] == 0
        assert bool(empty.any()) and bool((~empty).any()), name
        assert bool(torch.isnan(rates[name][empty]).all()), name  # the library's "no value"
        assert bool(torch.isfinite(rates[name][~empty]).all()), name


def test_the_stage_table_holds_the_fill_value_where_the_count_is_zero() -> None:
    truth, prediction = _pair()
    params = SegmentationScoresParams(particle_mass=1e11, mass_edges=EDGES)
    ctx = RunContext(device=torch.device("cpu"), seed=0, stage_id="scores")
    per_mass = SegmentationScoresStage(params, ctx).run(truth=truth, prediction=prediction)["per_mass"]
    for name, count in MISSING_COUNTS.items():
        empty = per_mass[count] == 0
        assert bool((per_mass[name][empty] == MISSING_FILL).all()), name
        assert bool(torch.isfinite(per_mass[name]).all()), name
        if name.startswith("q"):
            assert bool((per_mass[name][~empty] > 10.0).all()), name  # log10 masses of real haloes


def test_an_empty_mass_function_bin_is_a_counted_zero() -> None:
    masses = torch.tensor([2e12, 3e12, 5e12, 4e14], dtype=torch.float64)
    table = halo_mass_function(masses, 1e6, n_bins=4)
    empty = table["counts"] == 0
    assert bool(empty.any())
    assert bool((table["dndlnm"][empty] == 0).all()) and bool((table["dndlnm_err"][empty] == 0).all())
    assert not any(math.isnan(float(v)) for v in table["dndlnm"])
