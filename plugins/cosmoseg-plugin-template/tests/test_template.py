"""Tests of the template plugin: the library against an analytic result, the stage against the contract."""

import math

import torch
from cosmoseg_plugin_template.smoothing import gaussian_smooth
from cosmoseg_plugin_template.stages import SmoothStage

from cosmoseg.testing import assert_stage_contract, toy_field


def test_a_single_plane_wave_is_damped_by_the_gaussian_window() -> None:
    n, length, radius = 16, 100.0, 6.0
    x = (torch.arange(n, dtype=torch.float64) * length / n).view(n, 1, 1).expand(n, n, n)
    k = 2 * math.pi * 3 / length
    wave = torch.cos(k * x)
    smoothed = gaussian_smooth(wave, length, radius)
    assert torch.allclose(smoothed, wave * math.exp(-0.5 * (k * radius) ** 2), atol=1e-12)


def test_smoothing_keeps_the_mean_and_zero_radius_is_identity() -> None:
    field = toy_field(n=8).values[0].double()
    assert torch.allclose(gaussian_smooth(field, 50.0, 0.0), field, atol=1e-12)
    assert abs(float(gaussian_smooth(field, 50.0, 10.0).mean() - field.mean())) < 1e-12


def test_the_stage_honours_the_cosmoseg_contract() -> None:
    outputs = assert_stage_contract(SmoothStage)
    assert outputs["field"].meta["smoothing_radius"] == 8.0
