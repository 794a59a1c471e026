"""dm2gal training (cosmoseg.paint.training): the successor and the per-voxel network on tiny boxes, checkpoint
selection by the validation P(k), the mass weights, and painting a box with a trained network."""

from __future__ import annotations

import math

import pytest
import torch

from cosmoseg.errors import ValidationError
from cosmoseg.paint.data import PaintBox
from cosmoseg.paint.evaluation import power_ratio_score
from cosmoseg.paint.fields import from_log_mass, to_log_mass
from cosmoseg.paint.network import Dm2Gal, Dm2GalFCN
from cosmoseg.paint.tiling import predict_voxels
from cosmoseg.paint.training import (
    TrainConfig,
    _weight_volumes,
    paint_with_fcn,
    paint_with_oracle,
    train_dm2gal,
    train_fcn,
)

from .helpers import FCN_TINY, LENGTH, TINY, synthetic_box


def test_oracle_painting_equals_one_crop_per_voxel() -> None:
    net = Dm2Gal(input_size=29, **TINY).eval()
    box = synthetic_box(2)
    painted = paint_with_oracle(net, box, 1e8)
    voxels = torch.nonzero(box.target > 0)
    direct = from_log_mass(predict_voxels(net, box.inputs, voxels, batch=16))
    torch.testing.assert_close(painted[voxels[:, 0], voxels[:, 1], voxels[:, 2]], direct, rtol=1e-4, atol=1e-3)
    assert float(painted[box.target == 0].abs().max()) == 0.0


def test_fcn_training_learns_and_selects_by_power() -> None:
    train, validation = [synthetic_box(3), synthetic_box(4)], synthetic_box(5)
    model = Dm2GalFCN(**FCN_TINY)
    config = TrainConfig(steps=60, batch=2, tile=8, lr=1e-2, eval_every=20)
    seen: list[tuple[int, float, float | None]] = []
    result = train_fcn(model, train, validation, config, torch.Generator().manual_seed(0), lambda *a: seen.append(a))
    assert [s for s, *_ in seen] == [20, 40, 60] and len(result.history) == 3
    scores = [score for *_, score in result.history]
    assert result.best_score == min(scores) and result.best_step == result.history[scores.index(min(scores))][0]
    assert seen[-1][1] < seen[0][1]  # the loss went down
    assert not model.training  # left in eval mode with the selected weights
    # the total stellar mass is calibrated on the training boxes (one factor: the P(k) of δ does not change)
    painted = sum(float(paint_with_fcn(model, box)[0].double().sum()) for box in train)
    assert painted == pytest.approx(sum(float(from_log_mass(b.target.double()).sum()) for b in train), rel=1e-4)
    assert float(model.log_mass_offset) != 0.0
    torch.testing.assert_close(model.state_dict()["head.bias"], result.best_state["head.bias"])


def test_selection_averages_the_validation_boxes() -> None:
    train, validation = [synthetic_box(3)], [synthetic_box(5), synthetic_box(11)]
    model = Dm2GalFCN(**FCN_TINY)
    config = TrainConfig(steps=2, batch=1, tile=8, eval_every=2, select_on_draws=False)
    result = train_fcn(model, train, validation, config, torch.Generator().manual_seed(0))
    model.log_mass_offset.zero_()  # the calibration after training scales all masses: P(k) of δ does not see it
    expected = [power_ratio_score(paint_with_fcn(model, box)[0], from_log_mass(box.target), LENGTH)[0]
                for box in validation]  # fmt: skip
    assert result.best_score == pytest.approx(sum(expected) / 2, rel=1e-5)
    # on draws: the mean over the boxes and over `selection_draws` draws of seeds 0, 1, ...
    model = Dm2GalFCN(**FCN_TINY)
    config = TrainConfig(steps=2, batch=1, tile=8, eval_every=2, selection_draws=3)
    result = train_fcn(model, train, validation, config, torch.Generator().manual_seed(0))
    model.log_mass_offset.zero_()
    drawn = [power_ratio_score(paint_with_fcn(model, box, generator=torch.Generator().manual_seed(seed))[0],
                               from_log_mass(box.target), LENGTH)[0]
             for box in validation for seed in range(3)]  # fmt: skip
    assert len(set(drawn)) == 6 and result.best_score == pytest.approx(sum(drawn) / 6, rel=1e-5)
    with pytest.raises(ValidationError, match="no validation box"):
        train_fcn(model, train, [], config, torch.Generator())


def test_dm2gal_training_runs_on_weighted_samples() -> None:
    train, validation = [synthetic_box(6)], synthetic_box(7)
    net = Dm2Gal(input_size=29, **TINY)
    config = TrainConfig(steps=6, batch=4, eval_every=3)
    result = train_dm2gal(net, train, validation, config, torch.Generator().manual_seed(0))
    assert len(result.history) == 2 and math.isfinite(result.best_score)
    with pytest.raises(ValidationError, match="no training voxel"):
        train_dm2gal(net, train, validation, TrainConfig(steps=1, threshold=1e30), torch.Generator())


def test_boxes_of_other_voxel_sizes_are_refused() -> None:
    other = synthetic_box(8)
    other = PaintBox(other.name, 2 * LENGTH, other.inputs, other.target, None, None)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="different voxel sizes"):
        train_fcn(Dm2GalFCN(**FCN_TINY), [synthetic_box(9)], other, TrainConfig(steps=1),
                  torch.Generator())  # fmt: skip


def test_host_mass_weights_by_hand() -> None:
    """host_mass: each occupied voxel weighs the inverse count of its bin of the heaviest halo within its periodic
    3³ (0.25 dex bins), normalised to a mean of 1; empty voxels weigh 0. Three galaxies next to a 10^12 halo and one
    next to a 10^14.1 halo across the periodic edge: weights 1/3 and 1 before normalising, 2/3 and 2 after."""
    n = 8
    dm = torch.full((n, n, n), 1e12)
    halo, mstar = torch.zeros(n, n, n), torch.zeros(n, n, n)
    halo[2, 2, 2], halo[0, 0, 0] = 1e12, 10**14.1
    for voxel in [(2, 2, 2), (3, 2, 2), (2, 1, 3), (7, 7, 1)]:
        mstar[voxel] = 1e10
    box = PaintBox("box_0000.h5", LENGTH, torch.stack([to_log_mass(dm), to_log_mass(halo)]), to_log_mass(mstar),
                   None, None)  # type: ignore[arg-type]  # fmt: skip
    (volume,) = _weight_volumes([box], TrainConfig(mass_weighting="host_mass", max_weight=0))
    expected = torch.zeros(n, n, n)
    expected[2, 2, 2] = expected[3, 2, 2] = expected[2, 1, 3] = 2 / 3
    expected[7, 7, 1] = 2.0
    torch.testing.assert_close(volume, expected)
    (capped,) = _weight_volumes([box], TrainConfig(mass_weighting="host_mass", max_weight=1.5))
    assert float(capped.max()) / float(capped[2, 2, 2]) == pytest.approx(1.5 / (2 / 3))
