"""The centre-offset instance formulation: targets, periodic centres, grouping of votes, and the data samples."""

from __future__ import annotations

import pytest
import torch

from cosmoseg.data import Box, Field, Segmentation
from cosmoseg.errors import ValidationError
from cosmoseg.mesh.periodic import group_centres, minimal_image, wrap
from cosmoseg.mesh.symmetry import apply_symmetry, cube_symmetries, transform_positions
from cosmoseg.protohalo.centres import centre_offsets, group_by_centre, instances_from_offsets, voxel_votes
from cosmoseg.protohalo.data import ProtohaloCrops

SYMS = cube_symmetries()


def _blobs(n: int = 16) -> torch.Tensor:
    """Three cubic haloes: 3³ at (2..4)³, 2³ at (8..9)³ and a 4³ one across the corner of the box, (13, 14, 15, 0)³."""
    labels = torch.zeros((n, n, n), dtype=torch.int64)
    labels[2:5, 2:5, 2:5] = 1
    labels[8:10, 8:10, 8:10] = 2
    wrapped = torch.tensor([13, 14, 15, 0])
    labels[wrapped[:, None, None], wrapped[None, :, None], wrapped[None, None, :]] = 3
    return labels


def test_periodic_helpers() -> None:
    assert torch.allclose(minimal_image(torch.tensor([0.6, -0.6, 0.2, 1.4]), 1.0), torch.tensor([-0.4, 0.4, 0.2, 0.4]))
    assert torch.equal(wrap(torch.tensor([-0.5, 10.0, 3.0]), 10.0), torch.tensor([9.5, 0.0, 3.0]))
    # a group across the boundary: points at 9.5 and 0.5 (box 10) have their centre at 0 (or 10 -> wrapped to 0)
    x = torch.tensor([[9.5, 5.0, 5.0], [0.5, 5.0, 5.0], [3.0, 3.0, 3.0], [4.0, 3.0, 3.0]], dtype=torch.float64)
    centres = group_centres(x, torch.tensor([0, 0, 1, 1]), 3, 10.0)
    assert torch.allclose(
        centres, torch.tensor([[0.0, 5.0, 5.0], [3.5, 3.0, 3.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    )


def test_centre_offsets_by_hand_and_across_the_boundary() -> None:
    labels = torch.zeros((8, 8, 8), dtype=torch.int64)
    labels[2, 2, 2] = labels[4, 2, 2] = 1  # centre (3.5, 2.5, 2.5): offsets ±1 along x
    labels[7, 5, 5] = labels[0, 5, 5] = 2  # across the boundary: centre at x = 0 (= 8), offsets ±0.5
    off = centre_offsets(labels)
    assert off.shape == (3, 8, 8, 8) and off.dtype == torch.float32
    assert off[:, 2, 2, 2].tolist() == [1.0, 0.0, 0.0] and off[:, 4, 2, 2].tolist() == [-1.0, 0.0, 0.0]
    assert off[:, 7, 5, 5].tolist() == [0.5, 0.0, 0.0] and off[:, 0, 5, 5].tolist() == [-0.5, 0.0, 0.0]
    assert float(off[:, labels == 0].abs().max()) == 0.0
    # the votes of a halo meet at its centre, wrapped into the box
    votes = voxel_votes(off, labels == 2)
    assert torch.allclose(votes, torch.tensor([[0.0, 5.5, 5.5], [0.0, 5.5, 5.5]], dtype=torch.float64))


@pytest.mark.parametrize("k", [5, 17, 40])
def test_centre_offsets_move_as_vectors_with_the_box(k: int) -> None:
    labels = _blobs()
    perm, flips = SYMS[k]
    moved = centre_offsets(apply_symmetry(labels, perm, flips).contiguous())
    assert torch.allclose(moved, transform_positions(centre_offsets(labels), perm, flips), atol=1e-6)


def test_grouping_true_offsets_recovers_the_haloes_across_the_boundary() -> None:
    labels = _blobs()
    pred = instances_from_offsets(centre_offsets(labels), labels > 0, min_votes=1.0)
    # one predicted halo per true halo, the boundary one included, labelled by decreasing size (64, 27, 8 voxels)
    for true_id, pred_id in ((3, 1), (1, 2), (2, 3)):
        assert bool((pred[labels == true_id] == pred_id).all())
    assert bool((pred[labels == 0] == 0).all())
    # a seed needs min_votes: the 8-voxel halo is dropped at 20 and its voxels join the nearest seed
    pred = instances_from_offsets(centre_offsets(labels), labels > 0, min_votes=20.0)
    assert int(pred.max()) == 2


def test_group_by_centre_joins_noisy_votes_and_seeds_by_separation() -> None:
    gen = torch.Generator().manual_seed(0)
    # two clumps of 40 votes, one straddling the boundary (box 20 cells), with 0.3-cell noise
    a = torch.tensor([0.2, 10.0, 10.0]) + 0.3 * torch.randn(40, 3, generator=gen)
    b = torch.tensor([10.0, 4.0, 15.0]) + 0.3 * torch.randn(40, 3, generator=gen)
    votes = torch.cat([a, b])
    groups = group_by_centre(votes, 20, smoothing=1.0, min_votes=5.0, seed_separation=2.0)
    assert set(groups[:40].tolist()) == {groups[0].item()} and set(groups[40:].tolist()) == {groups[40].item()}
    assert groups[0] != groups[40]
    # with the seeds forced further apart than the clumps, everything is one halo
    assert set(group_by_centre(votes, 20, min_votes=5.0, seed_separation=15.0).tolist()) == {1}
    assert group_by_centre(votes, 20, min_votes=1e6).tolist() == [0] * 80
    with pytest.raises(ValidationError, match="votes must be"):
        group_by_centre(torch.zeros(4, 2), 8)
    with pytest.raises(ValidationError, match="smoothing"):
        group_by_centre(votes, 20, smoothing=-1.0)


def test_crops_carry_offsets_moved_with_the_symmetry() -> None:
    labels = _blobs()
    box = Box(length=32.0)
    fields = Field(values=torch.randn(2, 16, 16, 16), box=box, channels=("delta", "phi"))
    data = ProtohaloCrops([(fields, Segmentation(labels=labels, box=box))], size_in=10, size_out=8, mode="offsets")
    corner = torch.tensor([12, 13, 14])
    plain = data.crop(0, corner, 0)
    assert plain["inputs"].shape == (2, 10, 10, 10) and plain["offsets"].shape == (3, 8, 8, 8)
    full = centre_offsets(labels)
    index = [(torch.arange(8) + c) % 16 for c in corner.tolist()]
    expected = full[:, index[0][:, None, None], index[1][None, :, None], index[2][None, None, :]]
    assert torch.equal(plain["offsets"], expected)  # the whole box's centres, not the crop's
    for k in (9, 33):
        perm, flips = SYMS[k]
        sample = data.crop(0, corner, k)
        assert torch.equal(sample["offsets"], transform_positions(plain["offsets"], perm, flips))
        assert torch.equal(sample["labels"], apply_symmetry(plain["labels"], perm, flips))
    assert "offsets" not in ProtohaloCrops([(fields, Segmentation(labels=labels, box=box))], 10, 8)[0]


def test_merge_radius_joins_a_split_halo_but_keeps_neighbours_apart() -> None:
    gen = torch.Generator().manual_seed(1)
    # one halo whose votes fell into two clumps 3 cells apart, of 200 and 100 votes (the larger group's Lagrangian
    # radius R = (3·200/4π)^(1/3) = 3.63 cells), and a true neighbour of 40 voxels 6 cells from the larger clump
    big_a = torch.tensor([10.5, 10.5, 10.5]) + 0.2 * torch.randn(200, 3, generator=gen)  # clumps at cell centres,
    big_b = torch.tensor([13.5, 10.5, 10.5]) + 0.2 * torch.randn(100, 3, generator=gen)  # where the seeds will be
    small = torch.tensor([10.5, 16.5, 10.5]) + 0.2 * torch.randn(40, 3, generator=gen)
    votes = torch.cat([big_a, big_b, small])
    grouping = {"smoothing": 0.5, "min_votes": 5.0, "seed_separation": 2.0}
    split = group_by_centre(votes, 32, **grouping)
    assert len(set(split.tolist())) == 3
    merged = group_by_centre(votes, 32, **grouping, merge_radius=0.9)
    assert set(merged[:300].tolist()) == {1} and set(merged[300:].tolist()) == {2}  # 3 < 0.9 R = 3.27 < 6
    # by hand: with β R below the 3 cells between the clumps nothing merges
    assert len(set(group_by_centre(votes, 32, **grouping, merge_radius=0.7).tolist())) == 3  # 0.7 R = 2.54 < 3
    with pytest.raises(ValidationError, match="merge_radius"):
        group_by_centre(votes, 32, merge_radius=-1.0)


def test_vote_radius_drops_far_votes_across_the_periodic_boundary() -> None:
    gen = torch.Generator().manual_seed(2)
    # a clump of 100 votes straddling the box's corner and two stray votes 5 cells either side of it along x: the
    # strays' nearest seed is the clump's, the centroid stays at the corner (they cancel) and R = (3·102/4π)^(1/3)
    # = 2.90 cells, so γ = 1 drops them (5 > 2.90) and γ = 2 keeps them (5 < 5.80)
    clump = 0.2 * torch.randn(100, 3, generator=gen, dtype=torch.float64)
    strays = torch.tensor([[5.0, 0.0, 0.0], [-5.0, 0.0, 0.0]], dtype=torch.float64)
    votes = torch.remainder(torch.cat([clump, strays]), 32.0)
    grouping = {"smoothing": 0.5, "min_votes": 5.0, "seed_separation": 2.0}
    assert set(group_by_centre(votes, 32, **grouping).tolist()) == {1}
    cut = group_by_centre(votes, 32, **grouping, vote_radius=1.0)
    assert set(cut[:100].tolist()) == {1} and cut[100:].tolist() == [0, 0]
    assert set(group_by_centre(votes, 32, **grouping, vote_radius=2.0).tolist()) == {1}
    with pytest.raises(ValidationError, match="vote_radius"):
        group_by_centre(votes, 32, vote_radius=float("nan"))


def test_grow_threshold_adds_the_voxels_that_vote_for_a_halo_across_the_boundary() -> None:
    n = 16
    q = torch.stack(torch.meshgrid(*[torch.arange(n) + 0.5] * 3, indexing="ij"))
    r = (q - 0.0 + n / 2).remainder(n).sub(n / 2).norm(dim=0)  # periodic distance to the box's corner
    ball = r <= 3.0  # one halo of 123 voxels around the corner, split across all eight octants
    offsets = centre_offsets(ball.long())  # exact votes: every voxel of the ball points at its centre
    inner = r <= 2.0
    probabilities = torch.where(inner, 0.9, torch.where(ball, 0.6, 0.1)).double()
    stray = (8, 8, 8)  # a confident-looking voxel whose vote (its own cell) is far from the halo
    probabilities[stray] = 0.6
    grouping = {"smoothing": 0.5, "min_votes": 5.0, "seed_separation": 2.0}
    core = instances_from_offsets(offsets, inner, **grouping)
    assert torch.equal(core > 0, inner) and int(core.max()) == 1
    grown = instances_from_offsets(
        offsets, inner, probabilities=probabilities, vote_radius=1.0, grow_threshold=0.5, **grouping
    )
    assert torch.equal(grown > 0, ball) and int(grown.max()) == 1  # the shell joins, the stray voxel does not
    with pytest.raises(ValidationError, match="needs the semantic probabilities and a vote_radius"):
        instances_from_offsets(offsets, inner, vote_radius=1.0, grow_threshold=0.5)
    with pytest.raises(ValidationError, match="needs the semantic probabilities and a vote_radius"):
        instances_from_offsets(offsets, inner, probabilities=probabilities, grow_threshold=0.5)
