"""Whole-box mass-bin classification: inputs as trained, calibrated classes, Grad-CAM over the crop lattice."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cosmoseg.data import Box, Field
from cosmoseg.errors import ValidationError
from cosmoseg.nn.vnet import SegmentationModel
from cosmoseg.protohalo.classify import class_names, mass_bin_grad_cam, mass_bin_inputs, predicted_classes
from cosmoseg.protohalo.data import linear_channels
from cosmoseg.protohalo.mass_bins import calibrate_class_bias

META = {"channels": ["delta", "phi", "shear"], "box_length": 50.0, "grid_n": 64, "size_in": 40, "size_out": 32}


def _fields(n: int = 32, length: float = 25.0, seed: int = 0) -> Field:
    values = torch.randn((2, n, n, n), generator=torch.Generator().manual_seed(seed))
    return Field(values=values, box=Box(length=length), channels=("delta", "phi"))


def test_the_inputs_are_the_channels_the_model_was_trained_on() -> None:
    fields = _fields()
    values, notes = mass_bin_inputs(fields, META)
    assert torch.equal(values, linear_channels(fields, ("delta", "phi", "shear")))
    # the same log lines as the panoptic pair's: a box smaller than the training boxes lacks their longest modes
    assert notes == [
        "box of 25 Mpc/h is smaller than the training boxes (50 Mpc/h): it lacks their longest modes, and the models "
        "extrapolate"
    ]


def test_a_model_trained_on_other_channels_or_another_grid_is_a_clear_error() -> None:
    with pytest.raises(ValidationError, match=r"trained on channels \(delta, phi, shear\), not \(delta, phi\)"):
        mass_bin_inputs(_fields(), META, channels=("delta", "phi"))
    with pytest.raises(ValidationError, match="each must be one of"):
        mass_bin_inputs(_fields(), META, channels=("delta", "tide"))
    with pytest.raises(ValidationError) as info:
        mass_bin_inputs(_fields(n=48, length=25.0), META)
    text = str(info.value)
    assert "cell size L/n = 25/48 = 0.5208 Mpc/h, but the model was trained at 50/64 = 0.7812" in text
    assert "box side n = 48 is not a multiple of the crop lattice step size_out = 32" in text


def test_class_names_give_each_bin_its_log_mass_range() -> None:
    assert class_names([12.0, 12.5, 13.25]) == ("none", "12.00-12.50", "12.50-13.25")


def test_calibrated_biases_make_the_argmax_predict_the_true_counts() -> None:
    # three classes; the probabilities favour class 0 everywhere, the truth has 60% / 30% / 10% of the voxels
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn((3, 20, 20, 20), generator=gen) + torch.tensor([2.0, 0.0, 0.0])[:, None, None, None]
    probabilities = torch.softmax(logits, 0)
    truth = torch.zeros((20, 20, 20), dtype=torch.int64)
    truth.view(-1)[4800:7200] = 1
    truth.view(-1)[7200:] = 2
    assert int((probabilities.argmax(0) == 0).sum()) > 6800  # plain argmax: 85% class 0, against 60% true
    bias = calibrate_class_bias([probabilities], [truth])
    # classes 1 and 2 start from the same ~7.5%: class 1 (to 30%) needs the larger push, class 2 (to 10%) a small one
    assert bias[0] == 0 and bias[1] > 1.0 and 0 < bias[2] < bias[1]
    counts = torch.bincount(predicted_classes(probabilities, bias.tolist()).view(-1), minlength=3)
    assert counts.tolist() == pytest.approx([4800, 2400, 800], abs=16)  # to 2% of the rarest class
    # the biases are a shift of the log-probabilities: the plain argmax is the zero bias
    assert torch.equal(predicted_classes(probabilities, [0.0, 0.0, 0.0]), probabilities.argmax(0))
    with pytest.raises(ValueError, match="class_log_bias has 2 entries for 3 classes"):
        predicted_classes(probabilities, [0.0, 1.0])


class _DeltaFeature(nn.Module):
    """A backbone whose one feature is the input δ (for a Grad-CAM computed by hand)."""

    out_channels = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :1]


def test_whole_box_grad_cam_is_the_hand_map_in_every_crop() -> None:
    # logits (0, δ): class 1 where δ > 0. Its score in a crop is Σ δ over the crop's class-1 voxels, so the channel
    # weight is the fraction f of class-1 voxels in the crop and the map is ReLU(f δ), crop by crop.
    head = nn.Conv3d(1, 2, 1)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([0.0, 1.0]).reshape(2, 1, 1, 1, 1))
        head.bias.zero_()
    model = SegmentationModel(_DeltaFeature(), head, crop=0)
    delta = torch.randn((1, 8, 8, 8), generator=torch.Generator().manual_seed(4))
    cam = mass_bin_grad_cam(delta, model, 1, size_in=4, size_out=4, batch_size=3)
    expected = torch.zeros(8, 8, 8)
    for i in (0, 4):
        for j in (0, 4):
            for k in (0, 4):
                block = delta[0, i : i + 4, j : j + 4, k : k + 4]
                expected[i : i + 4, j : j + 4, k : k + 4] = torch.relu((block > 0).double().mean() * block)
    assert torch.allclose(cam, expected, atol=1e-6)
    assert bool((cam[delta[0] <= 0] == 0).all())
    # a given class map (the calibrated classes a stage reports) makes the score instead of the plain argmax: with
    # class 1 where δ > 0.5 the weight is that region's fraction f' of the crop (1 where a crop has none of it)
    classes = (delta[0] > 0.5).long()
    cam = mass_bin_grad_cam(delta, model, 1, size_in=4, size_out=4, batch_size=3, classes=classes)
    for i in (0, 4):
        for j in (0, 4):
            for k in (0, 4):
                block = delta[0, i : i + 4, j : j + 4, k : k + 4]
                fraction = (block > 0.5).double().mean() if bool((block > 0.5).any()) else 1.0
                expected[i : i + 4, j : j + 4, k : k + 4] = torch.relu(fraction * block)
    assert torch.allclose(cam, expected, atol=1e-6)
    with pytest.raises(ValidationError, match="classes has shape"):
        mass_bin_grad_cam(delta, model, 1, size_in=4, size_out=4, classes=classes[:4])


def test_calibration_converges_on_blocky_probabilities_with_many_ties() -> None:
    # a transformer's probabilities can be nearly constant over patches: 64 blocks of 4^3 voxels, each with one
    # random probability vector. Whole blocks switch class at once, so the plain fixed point can jump back and
    # forth; the calibration must still bring the counts nearer the truth than the plain argmax.
    gen = torch.Generator().manual_seed(5)
    blocks = torch.softmax(torch.randn((4, 4, 4, 4), generator=gen) + torch.tensor([3.0, 0, 0, 0]), dim=0)
    probabilities = blocks.repeat_interleave(4, 1).repeat_interleave(4, 2).repeat_interleave(4, 3)
    truth = torch.randint(0, 4, (16, 16, 16), generator=gen)
    true_counts = torch.bincount(truth.view(-1), minlength=4).double()

    def error(classes: torch.Tensor) -> float:
        return float(((torch.bincount(classes.view(-1), minlength=4) - true_counts).abs() / true_counts).max())

    bias = calibrate_class_bias([probabilities], [truth])
    assert bool(torch.isfinite(bias).all()) and float(bias.abs().max()) < 10
    assert error(predicted_classes(probabilities, bias.tolist())) < 0.5 * error(probabilities.argmax(0))
