"""Instances from centre offsets: every halo voxel points at its halo's Lagrangian centre (Hough voting).

The paper's instance network (López-Cano et al. §2.3) maps voxels into an abstract pseudo-space, trained with the
discriminative loss; the clustering of its points then decides the haloes, crop by crop, and the crops are stitched
(appendices B, D). Here a network predicts instead, for every voxel, the offset from its cell to the centre of its
halo in the box's own periodic frame (Neven et al. 2019's spatial embedding, Kendall et al.'s and Panoptic-DeepLab's
centre regression): a direct regression target, the same in every crop, so

* training converges like a regression (:func:`cosmoseg.nn.centre_offset_loss` against :func:`centre_offsets`);
* the votes ``q + offset`` of a halo's voxels pile up at one point of the box whatever crop they were predicted in,
  so the full box is grouped once, with no stitching (:func:`group_by_centre`);
* a false-positive voxel of the semantic mask votes for *one* centre (the nearest halo's): it can join a halo, but
  it cannot bridge two.

Units: offsets and votes are in cells (a cell is ``L / n``), voxel ``(i, j, k)`` sits at ``(i, j, k) + 1/2``
(:mod:`cosmoseg.mesh.grid`), and the box is ``[0, n)³``, periodic.

**Grouping.** The votes of the mask voxels are painted on the n³ grid (cloud in cell) and smoothed with a Gaussian of
``smoothing`` cells. *Seeds* are the periodic local maxima (3³ neighbourhood) whose strength, the smoothed count
times ``(2π σ²)^{3/2}`` (≈ the number of votes in a tight clump), is at least ``min_votes``; going down in strength,
a seed closer than ``seed_separation`` cells to a stronger kept seed is dropped. Every vote joins its nearest kept
seed (periodic distance). With ``merge_radius`` = β > 0 the groups are then merged by size: going down from the
largest, a smaller group whose seed lies within β R of a larger group's seed joins it, R = (3N / 4π)^{1/3} the
Lagrangian radius (cells) of the larger group's N voxels. Protohaloes do not overlap in Lagrangian space, so two
true haloes' centres are about R apart or more, while a large halo whose far voxels voted poorly shows as several
seeds well inside its radius. With ``vote_radius`` = γ > 0 a vote farther than γ max(R, 1) from the periodic centroid of
its group's votes leaves it (its voxel becomes "no halo"): a voxel whose vote disagrees with its halo's centre is one
the network is unsure of, a boundary or first-infall voxel, and dropping it raises the halo's IoU more often than
not. With ``grow_threshold`` = t > 0 as well (:func:`instances_from_offsets`), the voxels outside the mask whose
semantic probability is above t join the group whose vote centroid is nearest to their vote, when it lies within
γ max(R, 1) of it: membership then asks the semantic net for less confidence where the offsets agree. Labels are
numbered 1..K by decreasing size (ties: the stronger seed first).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial import cKDTree

from cosmoseg.errors import ValidationError
from cosmoseg.mesh.assign import paint_cic
from cosmoseg.mesh.fourier import rfft_k_magnitude
from cosmoseg.mesh.periodic import group_centres, minimal_image, wrap
from cosmoseg.protohalo.catalog import labels_by_size

__all__ = ["DEFAULT_GROUPING", "centre_offsets", "group_by_centre", "instances_from_offsets", "voxel_votes"]

DEFAULT_GROUPING: dict[str, float] = {
    "smoothing": 1.0,
    "min_votes": 8.0,
    "seed_separation": 2.0,
    "merge_radius": 0.0,
    "vote_radius": 0.0,
    "grow_threshold": 0.0,
}
"""The grouping settings used when a checkpoint records none."""


def _cell_positions(n: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``(3, n, n, n)`` cell centres ``index + 1/2``, in cells."""
    ticks = torch.arange(n, dtype=dtype) + 0.5
    return torch.stack(torch.meshgrid(ticks, ticks, ticks, indexing="ij"))


def centre_offsets(labels: torch.Tensor) -> torch.Tensor:
    """``(3, n, n, n)`` float32 offset (cells) from every voxel to the periodic centre of its halo; 0 outside haloes.

    labels: ``(n, n, n)`` integer halo ids (0 = no halo). The centre of a halo is the periodic mean of its voxels'
    cell centres (:func:`cosmoseg.mesh.periodic.group_centres`); the offset is its minimal image, so a halo across
    the box boundary gets offsets that point across it.
    """
    labels = torch.as_tensor(labels)
    if labels.ndim != 3 or len(set(labels.shape)) != 1:
        raise ValidationError(f"labels must be a cubic (n, n, n) volume, got shape {tuple(labels.shape)}")
    n = labels.shape[0]
    flat = labels.reshape(-1).to(torch.int64)
    inside = torch.nonzero(flat > 0).reshape(-1)
    out = torch.zeros((3, n**3), dtype=torch.float32)
    if inside.numel() == 0:
        return out.reshape(3, n, n, n)
    _, group = torch.unique(flat[inside], return_inverse=True)
    q = _cell_positions(n).reshape(3, -1)[:, inside].T
    centres = group_centres(q, group, int(group.max()) + 1, float(n))
    out[:, inside] = minimal_image(centres[group] - q, float(n)).T.float()
    return out.reshape(3, n, n, n)


def voxel_votes(offsets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(N, 3)`` float64 votes (cells, wrapped into ``[0, n)``) of the ``N`` voxels where ``mask``: cell + offset.

    offsets: ``(3, n, n, n)`` cells; mask: ``(n, n, n)`` bool. Votes are in the C order of the mask's voxels.
    """
    if offsets.ndim != 4 or offsets.shape[0] != 3 or tuple(mask.shape) != tuple(offsets.shape[1:]):
        raise ValidationError(
            f"need offsets (3, n, n, n) and mask (n, n, n), got {tuple(offsets.shape)}, {tuple(mask.shape)}"
        )
    n = offsets.shape[-1]
    points = _cell_positions(n) + offsets.detach().cpu().to(torch.float64)
    return wrap(points[:, mask.cpu().bool()].T.contiguous(), float(n))


def _smoothed_counts(votes: torch.Tensor, n: int, smoothing: float) -> torch.Tensor:
    counts = paint_cic(votes, n, float(n))
    if smoothing <= 0:
        return counts
    k = rfft_k_magnitude(n, float(n), dtype=torch.float64)
    kernel = torch.exp(-0.5 * (k * smoothing) ** 2)
    return torch.fft.irfftn(torch.fft.rfftn(counts) * kernel, s=counts.shape)


def _seeds(density: torch.Tensor, strength_scale: float, min_votes: float, separation: float) -> np.ndarray:
    """Cell centres ``(K, 3)`` of the kept seeds, strongest first."""
    n = density.shape[-1]
    padded = F.pad(density[None, None], (1, 1, 1, 1, 1, 1), mode="circular")
    peak = F.max_pool3d(padded, kernel_size=3, stride=1)[0, 0]
    strength = density * strength_scale
    is_seed = (density >= peak) & (strength >= min_votes)
    index = torch.nonzero(is_seed)
    order = torch.argsort(-strength[is_seed], stable=True)
    candidates = (index[order].double() + 0.5).numpy()
    if len(candidates) == 0 or separation <= 0:
        return candidates
    tree = cKDTree(candidates, boxsize=float(n))
    kept = np.ones(len(candidates), dtype=bool)
    for i in range(len(candidates)):  # greedy suppression, strongest first
        if kept[i]:
            close = np.asarray(tree.query_ball_point(candidates[i], separation - 1e-9), dtype=np.int64)
            kept[close[close > i]] = False
    return candidates[kept]


def group_by_centre(
    votes: torch.Tensor,
    n: int,
    *,
    smoothing: float = DEFAULT_GROUPING["smoothing"],
    min_votes: float = DEFAULT_GROUPING["min_votes"],
    seed_separation: float = DEFAULT_GROUPING["seed_separation"],
    merge_radius: float = DEFAULT_GROUPING["merge_radius"],
    vote_radius: float = DEFAULT_GROUPING["vote_radius"],
) -> torch.Tensor:
    """``(N,)`` int64 group 1..K of each vote (see the module docstring); 0 for all when no seed reaches ``min_votes``.

    votes: ``(N, 3)`` positions in cells in a periodic box ``[0, n)³``; smoothing: Gaussian σ in cells (0: none);
    min_votes: the smallest seed strength (≈ votes); seed_separation: cells; merge_radius: β, a fraction of a group's
    Lagrangian radius (0: no merging); vote_radius: γ, the same kind of fraction beyond which a vote leaves its group
    (group 0; 0: keep all).
    """
    votes = torch.as_tensor(votes, dtype=torch.float64).cpu()
    if votes.ndim != 2 or votes.shape[1] != 3:
        raise ValidationError(f"votes must be (N, 3), got {tuple(votes.shape)}")
    if not bool(torch.isfinite(votes).all()):
        raise ValidationError("votes contain NaN or infinite values")
    settings = {
        "smoothing": smoothing,
        "min_votes": min_votes,
        "seed_separation": seed_separation,
        "merge_radius": merge_radius,
        "vote_radius": vote_radius,
    }
    for name, value in settings.items():
        if not (math.isfinite(value) and value >= 0):
            raise ValidationError(f"{name} must be a finite number >= 0, got {value!r}")
    if len(votes) == 0:
        return torch.zeros(0, dtype=torch.int64)
    votes = wrap(votes, float(n))
    density = _smoothed_counts(votes, n, smoothing)
    scale = (2 * math.pi * smoothing**2) ** 1.5 if smoothing > 0 else 1.0
    seeds = _seeds(density, scale, min_votes, seed_separation)
    if len(seeds) == 0:
        return torch.zeros(len(votes), dtype=torch.int64)
    _, nearest = cKDTree(seeds, boxsize=float(n)).query(votes.numpy(), k=1, workers=-1)
    groups = torch.as_tensor(nearest, dtype=torch.int64)
    if merge_radius > 0 and len(seeds) > 1:
        groups = _merge_inside_radius(groups, seeds, n, merge_radius)
    groups = groups + 1
    if vote_radius > 0:
        groups = _drop_far_votes(votes, groups, n, vote_radius)
    return labels_by_size(groups)  # ties: the stronger seed first


def _drop_far_votes(votes: torch.Tensor, groups: torch.Tensor, n: int, gamma: float) -> torch.Tensor:
    """Groups ``(N,)`` (1..K) with 0 for the votes farther than γ max(R, 1) cells from their group's vote centroid."""
    index = groups - 1
    k = int(index.max()) + 1
    centres = group_centres(votes, index, k, float(n))
    distance = minimal_image(votes - centres[index], float(n)).norm(dim=1)
    sizes = torch.bincount(index, minlength=k).to(torch.float64)
    radius = (3.0 * sizes / (4.0 * math.pi)) ** (1.0 / 3.0)
    return torch.where(distance <= gamma * radius.clamp(min=1.0)[index], groups, 0)


def _merge_inside_radius(groups: torch.Tensor, seeds: np.ndarray, n: int, beta: float) -> torch.Tensor:
    """Seed indices (N,) after merging every group into a larger one whose seed is within β R (module docstring)."""
    sizes = np.bincount(groups.numpy(), minlength=len(seeds))
    radius = beta * (3.0 * sizes / (4.0 * math.pi)) ** (1.0 / 3.0)
    tree = cKDTree(seeds, boxsize=float(n))
    owner = np.arange(len(seeds))
    for g in np.argsort(-sizes, kind="stable"):  # largest first: a group is absorbed by the largest that reaches it
        if owner[g] != g or sizes[g] == 0:
            continue
        for h in tree.query_ball_point(seeds[g], radius[g]):
            if h != g and owner[h] == h and sizes[h] <= sizes[g]:
                owner[h] = g
    return torch.as_tensor(owner, dtype=torch.int64)[groups]


def instances_from_offsets(
    offsets: torch.Tensor,
    mask: torch.Tensor,
    *,
    probabilities: torch.Tensor | None = None,
    smoothing: float = DEFAULT_GROUPING["smoothing"],
    min_votes: float = DEFAULT_GROUPING["min_votes"],
    seed_separation: float = DEFAULT_GROUPING["seed_separation"],
    merge_radius: float = DEFAULT_GROUPING["merge_radius"],
    vote_radius: float = DEFAULT_GROUPING["vote_radius"],
    grow_threshold: float = DEFAULT_GROUPING["grow_threshold"],
) -> torch.Tensor:
    """``(n, n, n)`` int64 halo labels 1..K (by decreasing size; 0 outside ``mask``) from offsets ``(3, n, n, n)``.

    The votes of the mask's voxels (:func:`voxel_votes`) grouped by :func:`group_by_centre` over the whole box. With
    ``grow_threshold`` > 0 (it needs ``vote_radius`` > 0 and the ``(n, n, n)`` semantic ``probabilities``), the
    voxels outside the mask with a probability above it may join a group (module docstring), so labels can then
    reach beyond ``mask``.
    """
    mask = torch.as_tensor(mask).cpu().bool()
    if grow_threshold > 0 and (probabilities is None or not vote_radius > 0):
        raise ValidationError(
            f"grow_threshold {grow_threshold} needs the semantic probabilities and a vote_radius > 0 "
            f"(got vote_radius {vote_radius}, probabilities {'given' if probabilities is not None else 'none'})"
        )
    if not (math.isfinite(grow_threshold) and 0 <= grow_threshold < 1):
        raise ValidationError(f"grow_threshold must be a probability in [0, 1), got {grow_threshold!r}")
    votes = voxel_votes(offsets, mask)
    labels = torch.zeros(mask.shape, dtype=torch.int64)
    labels[mask] = group_by_centre(
        votes,
        mask.shape[-1],
        smoothing=smoothing,
        min_votes=min_votes,
        seed_separation=seed_separation,
        merge_radius=merge_radius,
        vote_radius=vote_radius,
    )
    if grow_threshold > 0 and bool((labels > 0).any()):
        assert probabilities is not None
        candidates = (torch.as_tensor(probabilities).cpu() > grow_threshold) & (labels == 0)
        labels = _grow(labels, offsets, candidates, vote_radius)
    return labels


def _grow(labels: torch.Tensor, offsets: torch.Tensor, candidates: torch.Tensor, gamma: float) -> torch.Tensor:
    """``labels`` with every ``candidates`` voxel whose vote lies within γ max(R, 1) of the nearest group's vote
    centroid added to that group, then relabelled by size (``labels`` holds at least one group)."""
    n = labels.shape[-1]
    inside = labels > 0
    index = labels[inside] - 1
    k = int(index.max()) + 1
    centres = group_centres(voxel_votes(offsets, inside), index, k, float(n))
    radius = ((3.0 * torch.bincount(index, minlength=k).to(torch.float64) / (4.0 * math.pi)) ** (1.0 / 3.0)).clamp(
        min=1.0
    )
    distance, nearest = cKDTree(centres.numpy(), boxsize=float(n)).query(
        voxel_votes(offsets, candidates).numpy(), k=1, workers=-1
    )
    nearest = torch.as_tensor(nearest, dtype=torch.int64)
    joins = torch.as_tensor(distance) <= gamma * radius[nearest]
    out = labels.clone()
    out[candidates] = torch.where(joins, nearest + 1, 0)
    return labels_by_size(out).reshape(labels.shape)
