"""Mass-bin targets, the excursion-set baseline and the mass-bin scores, by hand."""

from __future__ import annotations

import math

import pytest
import torch

from cosmoseg.protohalo.mass_bins import (
    excursion_set_classes,
    mass_bin_classes,
    mass_bin_edges,
    mass_bin_scores,
    top_hat_window,
)


def _three_haloes() -> torch.Tensor:
    labels = torch.zeros(8, 8, 8, dtype=torch.int64)
    labels.view(-1)[:2] = 1  # 2 voxels
    labels.view(-1)[10:20] = 2  # 10 voxels
    labels.view(-1)[100:200] = 3  # 100 voxels
    return labels


def test_edges_and_classes_by_hand() -> None:
    assert torch.allclose(mass_bin_edges(1e12, 1e15, 3), torch.tensor([12.0, 13.0, 14.0, 15.0], dtype=torch.float64))
    labels = _three_haloes()
    # particle mass 1e11: haloes of 2e11 (log 11.30), 1e12 (12.0) and 1e13 (13.0) Msun/h
    classes = mass_bin_classes(labels, 1e11, [11.5, 12.5, 13.5])
    assert classes.dtype == torch.int64 and classes.shape == labels.shape
    assert torch.all(classes[labels == 1] == 0)  # below the lowest edge: not resolved
    assert torch.all(classes[labels == 2] == 1) and torch.all(classes[labels == 3] == 2)
    assert torch.all(classes[labels == 0] == 0)
    capped = mass_bin_classes(labels, 1e11, [11.5, 12.5, 12.9])
    assert torch.all(capped[labels == 3] == 2)  # above the top edge: the top bin
    with pytest.raises(ValueError, match="increasing"):
        mass_bin_classes(labels, 1e11, [12.0, 11.0])
    with pytest.raises(ValueError, match="min_mass < max_mass"):
        mass_bin_edges(1e13, 1e12)


def test_top_hat_window_by_hand() -> None:
    x = torch.tensor([0.0, 1e-4, math.pi, 4.4934094579], dtype=torch.float64)
    w = top_hat_window(x)
    assert w[0].item() == 1.0 and w[1].item() == pytest.approx(1.0 - 1e-8 / 10.0)
    assert w[2].item() == pytest.approx(3.0 / math.pi**2)  # 3 (0 + π) / π³
    assert w[3].item() == pytest.approx(0.0, abs=1e-9)  # the first zero, tan x = x


def test_excursion_set_by_hand() -> None:
    n, length, particle_mass = 16, 64.0, 1e12
    mean_density = particle_mass / (length / n) ** 3
    edges = torch.tensor([12.0, 13.0, 14.0], dtype=torch.float64)
    assert torch.all(excursion_set_classes(torch.full((n, n, n), 2.0), length, particle_mass, edges) == 2)
    assert torch.all(excursion_set_classes(torch.full((n, n, n), 1.0), length, particle_mass, edges) == 0)
    # a plane wave A cos(k x): δ_R(x = 0) = A W(kR); A between δ_c / W(kR_1) and δ_c / W(kR_2) gives class 1 there
    k = 2 * math.pi / length
    radii = [(3 * 10**e / (4 * math.pi * mean_density)) ** (1 / 3) for e in (12.0, 13.0)]
    windows = [3 * (math.sin(k * r) - k * r * math.cos(k * r)) / (k * r) ** 3 for r in radii]
    amplitude = 1.686 / math.sqrt(windows[0] * windows[1])  # the geometric mean of the two thresholds
    x = torch.arange(n, dtype=torch.float64) * (length / n)
    delta = amplitude * torch.cos(k * x)[:, None, None].expand(n, n, n)
    classes = excursion_set_classes(delta, length, particle_mass, edges)
    assert torch.all(classes[0] == 1)
    assert torch.all(classes[n // 2] == 0)  # the trough
    with pytest.raises(ValueError, match="cubic"):
        excursion_set_classes(torch.zeros(4, 4, 5), length, particle_mass, edges)


def test_scores_by_hand() -> None:
    labels = _three_haloes()
    edges = [11.5, 12.5, 13.5]
    truth = mass_bin_classes(labels, 1e11, edges)
    predicted = truth.clone()
    predicted.view(-1)[100:150] = 1  # half of halo 3 (class 2) predicted in class 1
    predicted.view(-1)[300:305] = 2  # 5 background voxels predicted in class 2
    probabilities = torch.nn.functional.one_hot(truth, 3).permute(3, 0, 1, 2).double()  # a perfect ranking
    tables = mass_bin_scores(predicted, truth, labels, 1e11, edges, probabilities=probabilities)
    classes, confusion, objects = tables["classes"], tables["confusion"], tables["objects"]
    assert classes["n_true"].tolist() == [512 - 110, 10, 100]
    assert classes["n_pred"].tolist() == [512 - 110 - 5, 60, 55]
    assert confusion["pred_1"].tolist() == [0, 10, 50] and confusion["pred_2"].tolist() == [5, 0, 50]
    assert classes["mass_ratio"].tolist() == pytest.approx([397 / 402, 6.0, 0.55])
    assert classes["precision"].tolist() == pytest.approx([1.0, 10 / 60, 50 / 55])
    assert classes["recall"].tolist() == pytest.approx([397 / 402, 1.0, 0.5])
    assert classes["mass_true"].tolist() == pytest.approx([402e11, 10e11, 100e11])
    assert classes["auc"].tolist() == pytest.approx([1.0, 1.0, 1.0])
    # per object: halo 2 all in class 1 (centre 12.0); halo 3 half in class 1, half in class 2: (12 + 13) / 2
    assert objects["log_mass_true"].tolist() == pytest.approx([12.0, 13.0])
    assert objects["log_mass_pred"].tolist() == pytest.approx([12.0, 12.5])
    assert objects["n_predicted"].tolist() == [10, 100]
    with pytest.raises(ValueError, match=r"classes 0\.\.2"):
        mass_bin_scores(predicted + 5, truth, labels, 1e11, edges)
    with pytest.raises(ValueError, match="one map per class"):
        mass_bin_scores(predicted, truth, labels, 1e11, edges, probabilities=probabilities[:2])


def test_full_box_probabilities_tile_the_box_with_an_oracle_net() -> None:
    from cosmoseg.errors import ValidationError
    from cosmoseg.protohalo.panoptic import mass_bin_probabilities

    # logits_k = −(x₀ − k)² on the central crop: the argmax is the class written in channel 0
    def oracle(x: torch.Tensor) -> torch.Tensor:
        centre = x[:, :1, 2:-2, 2:-2, 2:-2]
        return torch.cat([-((centre - k) ** 2) for k in range(3)], dim=1)

    truth = torch.randint(0, 3, (8, 8, 8), generator=torch.Generator().manual_seed(1))
    values = torch.stack([truth.float(), torch.zeros(8, 8, 8)])
    probabilities = mass_bin_probabilities(values, oracle, size_in=8, size_out=4, offset=1)
    assert probabilities.shape == (3, 8, 8, 8)
    assert torch.allclose(probabilities.sum(0), torch.ones(8, 8, 8))
    assert torch.equal(probabilities.argmax(0), truth)
    with pytest.raises(ValidationError, match=r"\(C, n, n, n\)"):
        mass_bin_probabilities(truth.float(), oracle, size_in=8, size_out=4)
    # the oracle is equivariant: averaging over the 48 cube symmetries changes nothing
    averaged = mass_bin_probabilities(values, oracle, size_in=8, size_out=4, offset=1, symmetries=48)
    assert torch.allclose(averaged, probabilities, atol=1e-6)
    with pytest.raises(ValidationError, match=r"symmetries must be 1\.\.48"):
        mass_bin_probabilities(values, oracle, size_in=8, size_out=4, symmetries=49)


def test_symmetry_averaging_of_a_net_that_looks_one_way_is_the_mean_of_its_images() -> None:
    from cosmoseg.protohalo.panoptic import mass_bin_probabilities

    # logits (0, v at the next voxel along +x): not equivariant. Of the first 8 symmetries (the 8 flips, no
    # permutation) 4 flip x, where the net looks at the voxel at -x instead; the y and z flips change nothing. So the
    # class-1 probability is the mean of sigmoid(v(x + 1)) and sigmoid(v(x - 1)), periodic.
    def net(x: torch.Tensor) -> torch.Tensor:
        ahead = x[:, :1, 3:-1, 2:-2, 2:-2]
        return torch.cat([torch.zeros_like(ahead), ahead], dim=1)

    v = torch.randn((8, 8, 8), generator=torch.Generator().manual_seed(2))
    p1 = mass_bin_probabilities(v[None], net, size_in=8, size_out=4, symmetries=8)[1]
    expected = 0.5 * (torch.sigmoid(v.roll(-1, 0)) + torch.sigmoid(v.roll(1, 0)))
    assert torch.allclose(p1, expected, atol=1e-6)
    assert torch.allclose(mass_bin_probabilities(v[None], net, size_in=8, size_out=4)[1], torch.sigmoid(v.roll(-1, 0)))
