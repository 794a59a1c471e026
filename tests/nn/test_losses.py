"""Balanced cross-entropy (eq. 3) and the Weinberger loss (eqs. 4–7) against hand-computed values."""

from __future__ import annotations

import itertools

import pytest
import torch

from cosmoseg.nn import (
    background_push_loss,
    balanced_cross_entropy,
    centre_offset_loss,
    discriminative_loss,
    small_halo_weights,
)


def _reference(embedding, labels, dp=0.5, dd=1.5, cp=1.0, cd=1.0, cr=0.001):
    """Straightforward loop version of eqs. (4)–(7), one crop at a time."""
    pulls, pushes, regs = [], [], []
    for x, lab in zip(embedding, labels, strict=True):
        x = x.reshape(x.shape[0], -1).T
        lab = lab.reshape(-1)
        ids = [int(i) for i in torch.unique(lab) if i > 0]
        mus = [x[lab == i].mean(0) for i in ids]
        pull = [
            ((x[lab == i] - mu).norm(dim=1) - dp).clamp(min=0).pow(2).mean() for i, mu in zip(ids, mus, strict=True)
        ]
        pulls.append(sum(pull) / len(ids) if ids else 0.0)
        pairs = [(2 * dd - (a - b).norm()).clamp(min=0) ** 2 for a, b in itertools.permutations(mus, 2)]
        pushes.append(sum(pairs) / len(pairs) if pairs else 0.0)
        regs.append(sum(mu.norm() for mu in mus) / len(ids) if ids else 0.0)
    pull, push, reg = (float(sum(t)) / len(t) for t in (pulls, pushes, regs))
    return cp * pull + cd * push + cr * reg, pull, push, reg


# 1-D pseudo-space: instance 1 at {0, 2} (μ = 1, each member 1 away), instance 2 at {3, 3} (μ = 3),
# a background voxel at 100 (ignored).
EMB = torch.tensor([[[0.0, 2.0, 3.0, 3.0, 100.0]]])
LAB = torch.tensor([[1, 1, 2, 2, 0]])


def test_discriminative_hand_computed():
    total, pull, push, reg = discriminative_loss(EMB, LAB)
    # pull: instance 1 -> (1 - 0.5)^2 = 0.25 per member, instance 2 -> 0; mean over instances 0.125
    assert pull.item() == pytest.approx(0.125)
    # push: |1 - 3| = 2 < 2·1.5 = 3 -> (3 - 2)^2 = 1 for both ordered pairs
    assert push.item() == pytest.approx(1.0)
    # reg: (|1| + |3|) / 2
    assert reg.item() == pytest.approx(2.0)
    assert total.item() == pytest.approx(0.125 + 1.0 + 0.001 * 2.0)


def test_discriminative_coefficients_and_margins():
    total, pull, push, reg = discriminative_loss(
        EMB, LAB, delta_pull=0.25, delta_push=0.5, c_pull=2.0, c_push=3.0, c_reg=0.5
    )
    assert pull.item() == pytest.approx(0.75**2 / 2)
    assert push.item() == pytest.approx(0.0)  # |μ_A − μ_B| = 2 > 2·0.5
    assert reg.item() == pytest.approx(2.0)
    assert total.item() == pytest.approx(2.0 * 0.75**2 / 2 + 0.5 * 2.0)


def test_discriminative_batch_average_and_single_instance():
    emb = torch.cat([EMB, torch.tensor([[[1.0, 1.0, 7.0, 7.0, 7.0]]])])
    lab = torch.cat([LAB, torch.tensor([[5, 5, 0, 0, 0]])])
    _, pull, push, reg = discriminative_loss(emb, lab)
    # second crop: one instance at μ = 1 -> pull 0, push 0, reg 1
    assert pull.item() == pytest.approx(0.125 / 2)
    assert push.item() == pytest.approx(0.5)
    assert reg.item() == pytest.approx(1.5)


def test_discriminative_no_instance_is_zero_with_finite_gradient():
    emb = torch.randn(1, 3, 4, 4, 4, requires_grad=True)
    total, pull, push, reg = discriminative_loss(emb, torch.zeros(1, 4, 4, 4, dtype=torch.long))
    assert total.item() == pull.item() == push.item() == reg.item() == 0.0
    total.backward()
    assert torch.all(emb.grad == 0)


def test_discriminative_matches_loop_reference_3d():
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(2, 3, 4, 4, 4, generator=g)
    lab = torch.randint(0, 5, (2, 4, 4, 4), generator=g)
    got = discriminative_loss(emb, lab)
    want = _reference(emb, lab)
    for a, b in zip(got, want, strict=True):
        assert a.item() == pytest.approx(b, rel=1e-5, abs=1e-7)


def test_discriminative_permutation_invariant():
    g = torch.Generator().manual_seed(1)
    emb = torch.randn(2, 3, 4, 4, 4, generator=g)
    lab = torch.randint(0, 5, (2, 4, 4, 4), generator=g)
    perm = torch.tensor([0, 17, 3, 9, 2])  # background stays 0; ids need not be contiguous
    for a, b in zip(discriminative_loss(emb, lab), discriminative_loss(emb, perm[lab]), strict=True):
        assert a.item() == pytest.approx(b.item(), rel=1e-6)


def test_discriminative_gradients_finite_with_degenerate_instances():
    # single-voxel instances (x == μ) and two instances with the same centre: norms at zero
    emb = torch.tensor([[[0.5, 1.0, 1.0, 1.0, 2.0]]], requires_grad=True)
    lab = torch.tensor([[1, 2, 3, 3, 0]])
    total, *_ = discriminative_loss(emb, lab)
    total.backward()
    assert torch.isfinite(total) and torch.isfinite(emb.grad).all()
    assert emb.grad[0, 0, 4] == 0  # background gets no gradient


def test_discriminative_bad_input():
    with pytest.raises(ValueError, match="do not match"):
        discriminative_loss(torch.zeros(1, 3, 4, 4, 4), torch.zeros(1, 4, 4, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        discriminative_loss(torch.zeros(1, 3, 4, 4, 4), torch.zeros(1, 4, 4, 4))


def test_balanced_cross_entropy_direct_formula():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 1, 4, 4, 4, generator=g, dtype=torch.float64)
    target = (torch.rand(2, 1, 4, 4, 4, generator=g) > 0.4).double()
    beta = 0.5815
    p = torch.sigmoid(logits)
    want = (-beta * target * torch.log(p) - (1 - beta) * (1 - target) * torch.log(1 - p)).mean()
    assert balanced_cross_entropy(logits, target, beta).item() == pytest.approx(want.item(), rel=1e-12)


def test_balanced_cross_entropy_hand_values_and_stability():
    # z = 0: −log σ(0) = log 2 for both classes, weighted by β (positive) and 1 − β (negative)
    got = balanced_cross_entropy(torch.zeros(2), torch.tensor([1.0, 0.0]), 0.75)
    assert got.item() == pytest.approx((0.75 + 0.25) * torch.log(torch.tensor(2.0)).item() / 2)
    logits = torch.tensor([-200.0, 200.0], requires_grad=True)
    loss = balanced_cross_entropy(logits, torch.tensor([1.0, 0.0]), 0.5)
    loss.backward()
    assert loss.item() == pytest.approx(100.0)  # (0.5·200 + 0.5·200) / 2
    assert torch.isfinite(logits.grad).all()


def test_weighted_balanced_cross_entropy_by_hand():
    # z = 0: each voxel's loss is β log 2 (positive) or (1 − β) log 2 (negative), times its weight
    got = balanced_cross_entropy(torch.zeros(3), torch.tensor([1.0, 0.0, 1.0]), 0.6, torch.tensor([2.0, 1.0, 0.5]))
    assert got.item() == pytest.approx((0.6 * 2 + 0.4 * 1 + 0.6 * 0.5) * torch.log(torch.tensor(2.0)).item() / 3)
    plain = balanced_cross_entropy(torch.ones(4), torch.tensor([1.0, 0.0, 1.0, 0.0]), 0.6)
    assert balanced_cross_entropy(torch.ones(4), torch.tensor([1.0, 0.0, 1.0, 0.0]), 0.6, torch.ones(4)) == plain
    with pytest.raises(ValueError, match="weight"):
        balanced_cross_entropy(torch.zeros(3), torch.zeros(3), 0.5, torch.ones(4))


def test_small_halo_weights_by_hand():
    # crop 0: halo 1 has 2 voxels, halo 2 has 8; crop 1: halo 1 has 4 voxels (sizes count per crop)
    labels = torch.zeros(2, 4, 4, dtype=torch.int64)
    labels[0, 0, :2] = 1
    labels[0, 2:, :] = 2
    labels[1, 1, :] = 1
    w = small_halo_weights(labels, boost=3.0, reference=4.0)
    assert w.shape == labels.shape and w.dtype == torch.float32
    assert torch.all(w[0][labels[0] == 1] == 4.0)  # 1 + 3 min(1, 4/2): capped at 1 + boost
    assert torch.all(w[0][labels[0] == 2] == 2.5)  # 1 + 3 (4/8)
    assert torch.all(w[1][labels[1] == 1] == 4.0)  # 1 + 3 (4/4)
    assert torch.all(w[labels == 0] == 1.0)
    assert torch.equal(small_halo_weights(labels, boost=0.0, reference=4.0), torch.ones(2, 4, 4))
    assert torch.equal(
        small_halo_weights(torch.zeros(1, 3, 3, dtype=torch.int64), boost=2.0, reference=4.0), torch.ones(1, 3, 3)
    )
    with pytest.raises(ValueError, match="integer"):
        small_halo_weights(labels.float(), boost=1.0, reference=4.0)
    with pytest.raises(ValueError, match="boost"):
        small_halo_weights(labels, boost=-1.0, reference=4.0)


def test_balanced_cross_entropy_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        balanced_cross_entropy(torch.zeros(3), torch.zeros(4), 0.5)
    with pytest.raises(ValueError, match="beta"):
        balanced_cross_entropy(torch.zeros(3), torch.zeros(3), 1.5)


def test_background_push_by_hand() -> None:
    # one crop, D = 1, four voxels: two of halo 1 at 0, background at 0.5 and 3; margin 1.5
    emb = torch.tensor([0.0, 0.0, 0.5, 3.0]).reshape(1, 1, 4)
    labels = torch.tensor([[1, 1, 0, 0]])
    assert float(background_push_loss(emb, labels, margin=1.5)) == pytest.approx((1.0**2 + 0.0) / 2)
    # two haloes, centres 0 and 2: background 0.5 -> (1.0², 0) / 2; background 3 -> (0, 0.5²) / 2
    emb = torch.tensor([0.0, 2.0, 0.5, 3.0]).reshape(1, 1, 4)
    labels = torch.tensor([[1, 2, 0, 0]])
    assert float(background_push_loss(emb, labels, margin=1.5)) == pytest.approx((0.5 + 0.125) / 2)
    # a crop with no halo, or no background, contributes 0 (and keeps the graph)
    emb = torch.tensor([0.0, 1.0, 2.0, 3.0], requires_grad=True).reshape(2, 1, 2)
    loss = background_push_loss(emb, torch.tensor([[0, 0], [1, 1]]))
    loss.backward()
    assert float(loss.detach()) == 0.0
    with pytest.raises(ValueError, match="do not match"):
        background_push_loss(torch.zeros(1, 3, 4), torch.zeros(1, 5, dtype=torch.int64))


def test_background_push_pulls_bridging_voxels_away_under_gradient_descent() -> None:
    # a background voxel halfway between two haloes (the bridge of a false positive) moves off the line between them
    emb = torch.tensor([[0.0, 0.0], [3.0, 0.0], [1.5, 0.1]], requires_grad=True)
    labels = torch.tensor([[1, 2, 0]])
    optimizer = torch.optim.SGD([emb], lr=0.1)
    for _ in range(200):
        optimizer.zero_grad()
        background_push_loss(emb.T[None], labels, margin=1.5).backward()
        emb.grad[:2] = 0.0  # hold the haloes still
        optimizer.step()
    distances = torch.linalg.vector_norm(emb[2] - emb[:2], dim=1)
    assert bool((distances >= 1.5 - 1e-3).all())


def test_centre_offset_loss_by_hand() -> None:
    # crop 0: halo 1 at two voxels (errors 2 along x -> Huber 1.5, and 0), halo 2 at one voxel (error 0.5 -> 0.125);
    # crop 1 has no halo and contributes 0 to the mean over the 2 crops
    offsets = torch.zeros(2, 3, 2, 2, 2)
    target = torch.zeros(2, 3, 2, 2, 2)
    labels = torch.zeros(2, 2, 2, 2, dtype=torch.int64)
    labels[0, 0, 0, 0] = labels[0, 1, 1, 1] = 1
    labels[0, 0, 1, 0] = 2
    target[0, 0, 0, 0, 0] = 2.0
    target[0, 1, 0, 1, 0] = 0.5
    target[1] = 5.0  # background: ignored
    by_halo = ((1.5 + 0.0) / 2 + 0.125) / 2 / 2
    by_voxel = (1.5 + 0.0 + 0.125) / 3 / 2
    assert float(centre_offset_loss(offsets, target, labels)) == pytest.approx(by_halo)
    assert float(centre_offset_loss(offsets, target, labels, weighting="voxel")) == pytest.approx(by_voxel)
    # δ scales the linear branch: |e| = 2 with δ = 4 is quadratic, e²/2 = 2
    assert float(centre_offset_loss(offsets, target, labels, weighting="voxel", huber_delta=4.0)) == pytest.approx(
        (2.0 + 0.0 + 0.125) / 3 / 2
    )


def test_centre_offset_loss_gradient_and_errors() -> None:
    offsets = torch.zeros(1, 3, 2, 2, 2, requires_grad=True)
    labels = torch.zeros(1, 2, 2, 2, dtype=torch.int64)
    loss = centre_offset_loss(offsets, torch.ones(1, 3, 2, 2, 2), labels)
    loss.backward()
    assert float(loss.detach()) == 0.0 and offsets.grad is not None
    with pytest.raises(ValueError, match="weighting"):
        centre_offset_loss(offsets, offsets, labels, weighting="mass")
    with pytest.raises(ValueError, match="do not match"):
        centre_offset_loss(offsets, offsets, labels[:, :1])
    with pytest.raises(ValueError, match="integer"):
        centre_offset_loss(offsets, offsets, labels.float())
