"""Full-box panoptic prediction (semantic + instance models, clustering, two-lattice merge) on tiny boxes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cosmoseg.data import Box, Field
from cosmoseg.errors import ValidationError
from cosmoseg.protohalo.panoptic import (
    calibrate_threshold,
    instance_labels_for_crops,
    predict_panoptic,
    semantic_probabilities,
)

N, S_IN, S_OUT = 16, 12, 8
CLUSTER = {"n_dens": 8, "n_ngb": 8, "p_thresh": 4.2}


def _truth() -> torch.Tensor:
    """Blocky haloes crossing crop seams and the periodic boundary; every piece of a halo that shares a crop with
    another halo has more than n_dens voxels (smaller pieces are absorbed by the clustering: a known limit)."""
    labels = torch.zeros((N, N, N), dtype=torch.int64)
    labels[0:4, 0:4, 0:4] = 1
    labels[8:12, 8:12, 8:12] = 2
    labels[6:10, 1:3, 10:14] = 3  # split by lattice A at x = 8
    labels[13:16, 4:8, 0:3] = 4
    labels[0:2, 4:8, 0:3] = 4  # wraps around x
    labels[3:6, 12:15, 5:9] = 5
    return labels


def _fields(delta: torch.Tensor, seed: int = 0) -> Field:
    phi = torch.randn((N, N, N), generator=torch.Generator().manual_seed(seed))
    return Field(values=torch.stack([delta.float(), phi]), box=Box(length=32.0), channels=("delta", "phi"))


class OracleSemantic(nn.Module):
    """±20 logits from the truth hidden in δ (δ = true label)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = (S_IN - S_OUT) // 2
        inside = x[:, 0:1, m:-m, m:-m, m:-m] > 0.5
        return torch.where(inside, 20.0, -20.0)


class OracleInstance(nn.Module):
    """Each true halo → its own far-apart point of pseudo-space, plus small noise made from φ (shift-equivariant)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("centres", 10.0 * torch.randn(64, 3, generator=torch.Generator().manual_seed(7)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[1] == 5
        m = (S_IN - S_OUT) // 2
        lab = x[:, 0, m:-m, m:-m, m:-m].round().long()
        phi = x[:, 1, m:-m, m:-m, m:-m]
        # pseudo-random in [-1, 1]^3 per voxel (a hash of φ), peaked at the centre so each clump has one maximum
        u = torch.stack([torch.frac(torch.sin(phi * k) * 43758.5453) for k in (12.9898, 78.233, 37.719)], dim=1)
        noise = 0.05 * u**7
        return self.centres[lab].movedim(-1, 1) + noise


def _conv_net(c_in: int, c_out: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv3d(c_in, 4, 3), nn.Tanh(), nn.Conv3d(4, c_out, 3)).double()


def _same_partition(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to relabelling of the non-zero labels (0 stays 0)."""
    if not torch.equal(a > 0, b > 0):
        return False
    pairs = torch.unique(torch.stack([a[a > 0], b[b > 0]]), dim=1)
    return pairs.shape[1] == len(torch.unique(a[a > 0])) == len(torch.unique(b[b > 0]))


def test_oracles_recover_truth() -> None:
    truth = _truth()
    fields = _fields(truth)
    seg = predict_panoptic(
        fields, OracleSemantic(), OracleInstance(), size_in=S_IN, size_out=S_OUT, threshold=0.5, **CLUSTER
    )
    assert _same_partition(seg.labels, truth)
    assert seg.n_instances == 5
    sizes = torch.bincount(seg.labels.reshape(-1))[1:]
    assert torch.all(sizes[:-1] >= sizes[1:]) and sizes.min() > 0  # 1..K by decreasing size
    assert seg.probabilities is not None and torch.equal(seg.probabilities > 0.5, truth > 0)
    assert seg.meta["threshold"] == 0.5


def _rolled(fields: Field, shift: tuple[int, int, int]) -> Field:
    return Field(values=torch.roll(fields.values, shift, dims=(1, 2, 3)), box=fields.box, channels=fields.channels)


@pytest.mark.parametrize(("shift", "offset"), [((3, 3, 3), 3), ((8, 0, -8), 0), ((-5, 3, 11), 3)])
def test_oracles_periodic_equivariance(shift: tuple[int, int, int], offset: int) -> None:
    fields = _fields(_truth())
    kw = {"size_in": S_IN, "size_out": S_OUT, "threshold": 0.5, **CLUSTER}
    seg = predict_panoptic(fields, OracleSemantic(), OracleInstance(), **kw)
    rolled = predict_panoptic(_rolled(fields, shift), OracleSemantic(), OracleInstance(), offset=offset, **kw)
    assert _same_partition(rolled.labels, torch.roll(seg.labels, shift, dims=(0, 1, 2)))
    assert _same_partition(rolled.labels, torch.roll(_truth(), shift, dims=(0, 1, 2)))


@pytest.mark.parametrize(("shift", "offset"), [((5, 5, 5), 5), ((8, 0, 8), 0), ((-3, 5, 13), 5)])
def test_random_models_periodic_equivariance(shift: tuple[int, int, int], offset: int) -> None:
    """Any models: rolling the fields rolls the prediction exactly (up to relabelling) when the crop lattice moves
    with them, i.e. when ``shift - offset`` is a multiple of the lattice step on every axis."""
    fields = Field(
        values=torch.randn((2, N, N, N), generator=torch.Generator().manual_seed(3)),
        box=Box(length=32.0),
        channels=("delta", "phi"),
    )
    sem, ins = _conv_net(2, 1, 0), _conv_net(5, 3, 1)
    probs = semantic_probabilities(fields, sem, size_in=S_IN, size_out=S_OUT)
    threshold = calibrate_threshold([probs], 0.4)
    kw = {"size_in": S_IN, "size_out": S_OUT, "threshold": threshold, "batch_size": 1, **CLUSTER}
    seg = predict_panoptic(fields, sem, ins, **kw)
    assert seg.n_instances >= 1
    assert torch.equal(seg.labels > 0, probs > threshold)
    moved = predict_panoptic(_rolled(fields, shift), sem, ins, offset=offset, **kw)
    assert _same_partition(moved.labels, torch.roll(seg.labels, shift, dims=(0, 1, 2)))
    assert torch.allclose(moved.probabilities, torch.roll(seg.probabilities, shift, dims=(0, 1, 2)))


def test_oracles_recover_truth_keeping_only_the_crop_centres() -> None:
    """The paper's variant: only the central half of every output crop is used (lattice step size_out / 2)."""
    truth = _truth()
    kw = {"size_in": S_IN, "size_out": S_OUT, "threshold": 0.5, "keep": S_OUT // 2, **CLUSTER}
    seg = predict_panoptic(_fields(truth), OracleSemantic(), OracleInstance(), **kw)
    assert _same_partition(seg.labels, truth) and seg.meta["keep"] == S_OUT // 2


@pytest.mark.parametrize(("shift", "offset"), [((2, 2, 2), 2), ((4, 0, -4), 0)])
def test_random_models_periodic_equivariance_keeping_the_centres(shift: tuple[int, int, int], offset: int) -> None:
    fields = Field(
        values=torch.randn((2, N, N, N), generator=torch.Generator().manual_seed(4)),
        box=Box(length=32.0),
        channels=("delta", "phi"),
    )
    sem, ins = _conv_net(2, 1, 0), _conv_net(5, 3, 1)
    probs = semantic_probabilities(fields, sem, size_in=S_IN, size_out=S_OUT)
    kw = {"size_in": S_IN, "size_out": S_OUT, "threshold": calibrate_threshold([probs], 0.4), "keep": 4, **CLUSTER}
    seg = predict_panoptic(fields, sem, ins, **kw)
    # The semantic net is translation invariant: its map does not depend on which part of a crop is kept.
    torch.testing.assert_close(seg.probabilities, probs, rtol=1e-5, atol=1e-6)
    moved = predict_panoptic(_rolled(fields, shift), sem, ins, offset=offset, **kw)
    assert _same_partition(moved.labels, torch.roll(seg.labels, shift, dims=(0, 1, 2)))


@pytest.mark.parametrize(
    ("keep", "match"),
    [(3, "size_out - keep even"), (10, "<= size_out=8"), (6, "multiple of the crop lattice step keep=6")],
)
def test_bad_keep_is_a_clear_error(keep: int, match: str) -> None:
    kw = {"size_in": S_IN, "size_out": S_OUT, "threshold": 0.5, "keep": keep, **CLUSTER}
    with pytest.raises(ValidationError, match=match):
        predict_panoptic(_fields(_truth()), OracleSemantic(), OracleInstance(), **kw)


def test_instance_labels_for_crops() -> None:
    gen = torch.Generator().manual_seed(0)
    emb = 0.1 * torch.randn(3, 3, 4, 4, 4, generator=gen)
    emb[0, 0, :2] += 10.0  # crop 0: two far-apart clumps
    mask = torch.zeros(3, 4, 4, 4, dtype=torch.bool)
    mask[0] = True
    mask[0, 0, 0, 0] = False
    mask[1, 0, 0, :3] = True  # crop 1: 3 voxels < n_dens + 1 → one halo
    labels = instance_labels_for_crops(emb, mask, **CLUSTER)
    assert labels.shape == (3, 4, 4, 4) and labels.dtype == torch.int64
    assert torch.equal(labels[0] > 0, mask[0])
    assert _same_partition(
        labels[0][mask[0]][None], (1 + (torch.arange(4)[:, None, None] >= 2).expand(4, 4, 4))[mask[0]][None]
    )
    assert torch.equal(labels[1], mask[1].long())
    assert not labels[2].any()  # crop 2: no halo voxel
    with pytest.raises(ValidationError, match="mask shape"):
        instance_labels_for_crops(emb, mask[:, :2], **CLUSTER)


def test_calibrate_threshold_hits_target() -> None:
    probs = (torch.randperm(N**3, generator=torch.Generator().manual_seed(1)).double() / N**3).reshape(N, N, N)
    for target in (0.0, 0.1, 0.589, 1.0):
        t = calibrate_threshold([probs, probs[:4] + 0.5 / N**3], target)
        frac = (int((probs > t).sum()) + int((probs[:4] + 0.5 / N**3 > t).sum())) / (probs.numel() + probs[:4].numel())
        assert abs(frac - target) <= 0.5 / (probs.numel() + probs[:4].numel())
    with pytest.raises(ValidationError, match="target_fraction"):
        calibrate_threshold([probs], 1.5)
    with pytest.raises(ValidationError, match=r"\[0, 1\]"):
        calibrate_threshold([probs * 2], 0.5)


def test_bad_inputs() -> None:
    truth = _truth()
    kw = {"size_in": S_IN, "size_out": S_OUT, "threshold": 0.5, **CLUSTER}
    good = _fields(truth)
    no_phi = Field(values=good.values[:1], box=good.box, channels=("delta",))
    with pytest.raises(ValidationError, match="phi"):
        predict_panoptic(no_phi, OracleSemantic(), OracleInstance(), **kw)
    with pytest.raises(ValidationError, match="multiple"):
        predict_panoptic(good, OracleSemantic(), OracleInstance(), **{**kw, "size_in": 10, "size_out": 6})
    with pytest.raises(ValidationError, match=r"2 input channels \('delta', 'phi'\)"):
        predict_panoptic(good, _conv_net(3, 1, 0), _conv_net(5, 3, 0), **kw)
    with pytest.raises(ValidationError, match="q_x"):
        predict_panoptic(good, OracleSemantic(), _conv_net(2, 3, 0), **kw)
    with pytest.raises(ValidationError, match="returned shape"):
        predict_panoptic(good, _conv_net(2, 2, 0), OracleInstance(), **kw)
    with pytest.raises(ValidationError, match="threshold"):
        predict_panoptic(good, OracleSemantic(), OracleInstance(), **{**kw, "threshold": 2.0})
    nan = _fields(truth)
    nan.values[1, 3, 4, 5] = float("nan")  # frozen dataclass, but the tensor can still be changed in place
    with pytest.raises(ValidationError, match=r"NaN.*'phi' at voxel \(3, 4, 5\)"):
        predict_panoptic(nan, OracleSemantic(), OracleInstance(), **kw)


@pytest.mark.gpu
def test_cuda_with_amp_recovers_truth_like_the_cpu() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    truth = _truth()
    fields = _fields(truth)
    kwargs = {"size_in": S_IN, "size_out": S_OUT, "threshold": 0.5, "batch_size": 4, **CLUSTER}
    cpu = predict_panoptic(fields, OracleSemantic(), OracleInstance(), **kwargs)
    gpu = predict_panoptic(fields, OracleSemantic().cuda(), OracleInstance().cuda(), device="cuda", amp=True, **kwargs)
    assert _same_partition(cpu.labels, gpu.labels.cpu())
    assert _same_partition(truth, gpu.labels.cpu())


def test_remove_long_modes_keeps_exactly_the_modes_of_a_training_box() -> None:
    from cosmoseg.protohalo.panoptic import remove_long_modes

    gen = torch.Generator().manual_seed(4)
    small = torch.randn((2, 8, 8, 8), generator=gen, dtype=torch.float64)
    small -= small.mean(dim=(1, 2, 3), keepdim=True)
    x = torch.arange(16, dtype=torch.float64)
    # modes with |k| < 2 pi / 16 (Mpc/h)^-1 in a 32 Mpc/h box of 16^3: (1,0,0), (1,1,0), (1,1,1) and a mean
    wave = 2 * torch.pi / 16  # per voxel of 2 Mpc/h: the 32 Mpc/h box's fundamental
    long = 3.0 + torch.cos(wave * x)[:, None, None] + torch.sin(wave * (x[:, None] + x))[..., None]
    long = long + torch.cos(wave * (x[:, None, None] + x[:, None] - x))
    big = small.repeat(1, 2, 2, 2)
    big[1] += long
    fields = Field(values=big, box=Box(length=32.0), channels=("delta", "phi"))
    filtered, removed = remove_long_modes(fields, 16.0)
    torch.testing.assert_close(filtered.channel("phi"), small[1].repeat(2, 2, 2), rtol=0, atol=1e-12)
    assert torch.equal(filtered.channel("delta"), fields.channel("delta"))  # φ only, by default
    assert removed == {"phi": pytest.approx(float(long.std()), rel=1e-9)}
    both, _ = remove_long_modes(fields, 16.0, ("delta", "phi"))
    torch.testing.assert_close(both.values, small.repeat(1, 2, 2, 2), rtol=0, atol=1e-12)
    assert filtered.meta["long_modes_removed_below"] == pytest.approx(2 * torch.pi / 16)
    # a box no larger than the training boxes has no such mode: the same object comes back
    same = Field(values=small, box=Box(length=16.0), channels=("delta", "phi"))
    for training_length in (16.0, 20.0):
        kept, nothing = remove_long_modes(same, training_length)
        assert kept is same and nothing == {}
    with pytest.raises(ValidationError, match=r"lack channel\(s\) \['psi'\]"):
        remove_long_modes(fields, 16.0, ("psi",))
    with pytest.raises(ValidationError, match="training_length must be a positive"):
        remove_long_modes(fields, 0.0)
