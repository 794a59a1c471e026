"""Training dm2gal (the per-voxel network) and its fully-convolutional successor, with model selection by P(k).

Boxes are split whole: training boxes give the crops, validation boxes pick the checkpoint — the one whose
painted stellar-mass field has the P(k) closest to the truth's (mean |ln P/P_truth| for k ≤ k_Ny / 4,
:func:`cosmoseg.paint.evaluation.power_ratio_score`, averaged over the validation boxes), not the lowest loss, as
the paper selects; a test box is left for :mod:`cosmoseg.paint.evaluation`. Periodic boxes split by box cannot
leak validation voxels into the training crops.

* **Successor** (:class:`~cosmoseg.paint.network.Dm2GalFCN`): random periodic crops of ``tile``³ outputs (plus the
  32-voxel context) with one of the 48 cube symmetries; loss = binary cross-entropy of the occupancy head (a voxel
  is occupied when its M* ≥ ``threshold``; positives up-weighted by the empty/occupied ratio of the training boxes)
  + ``mass_weight`` × the negative log-likelihood of the mass mixture at the occupied voxels, weighted by
  ``mass_weighting``: ``none`` (the default); ``host_mass``, by the inverse count of the bin of the largest halo
  mass in the voxel's 3³ neighbourhood — an input, so the fitted p(M* | fields) is not tilted while the few voxels
  of the heaviest haloes, which carry the mass-weighted P(k), weigh as much as the many of light ones; or
  ``inverse_count``, by the inverse count of the voxel's own M* bin among 100 log bins (the dense analogue of
  dm2gal's weighted sampling: weights on the target tilt the fitted distribution towards rare masses).
* **dm2gal** (:class:`~cosmoseg.paint.network.Dm2Gal`): the paper's set-up — samples are the voxels with
  M* ≥ ``threshold``, drawn by :class:`~cosmoseg.paint.sampling.WeightedSampler` with inverse-count weights over
  all of them, 65³ crops with a random cube symmetry, MSE on log10(1 + M*). It is validated at the true occupied
  voxels of the validation box (it cannot place galaxies: the oracle the successor removes).

Under ``torchrun`` (a process group, `cosmoseg.nn.distributed.init_from_env`) both train data-parallel: the model
is wrapped in ``DistributedDataParallel``, every rank draws the same global batch of ``batch`` crops from the same
generator and keeps its consecutive share (`cosmoseg.nn.distributed.rank_share`), and each rank's loss is weighted so
that the gradients DDP averages are those of the whole batch (the occupied-voxel mass term is normalised by the
occupied voxels of the global batch); validation runs on every rank (the same weights, the same scores), so the
selected weights are those of one process, to float rounding, but for the batch norms, which normalise with
the statistics of each rank's share (PyTorch's SyncBatchNorm needs GPUs; dm2gal then needs >= 2 crops per rank).
The caller writes the model on rank 0.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from cosmoseg.errors import ValidationError
from cosmoseg.mesh.symmetry import apply_symmetry, cube_symmetries
from cosmoseg.nn.distributed import all_reduce_sum, data_parallel, get_world_size, mean_over_ranks, rank_share
from cosmoseg.paint.data import PaintBox, periodic_crop, random_crop
from cosmoseg.paint.evaluation import power_ratio_score
from cosmoseg.paint.fields import from_log_mass, to_log_mass
from cosmoseg.paint.network import Dm2Gal, Dm2GalFCN, dilated_equivalent
from cosmoseg.paint.sampling import WeightedSampler, mass_bin_weights
from cosmoseg.paint.tiling import predict_tiled

__all__ = [
    "TrainConfig",
    "TrainResult",
    "calibrate_total_mass",
    "paint_draws_with_fcn",
    "paint_with_fcn",
    "paint_with_oracle",
    "train_dm2gal",
    "train_fcn",
]

MASS_WEIGHTINGS = ("host_mass", "inverse_count", "none")
HOST_BINS, HOST_LO, HOST_HI = 20, 1e11, 1e16
"""The ``host_mass`` weighting's bins: 0.25 dex in the largest halo mass (Msun/h) within a voxel's 3³."""

Progress = Callable[[int, float, float | None], None]
"""progress(step, mean training loss since the last call, validation score or None)."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """steps: optimiser steps; batch: crops per step; tile: output side of a successor crop (voxels);
    lr, weight_decay: Adam; threshold: M* (Msun/h) above which a voxel hosts a galaxy; pos_weight: weight of the
    occupied voxels in the occupancy loss (0 = the empty / occupied ratio of the training boxes); the model's
    probabilities are calibrated by ln(pos_weight) (see ``Dm2GalFCN.occupied``); mass_weight: weight of the
    log-mass loss against the occupancy loss; eval_every: steps between validations (and at the end);
    n_bins, bin_lo, bin_hi: the inverse-count mass bins (Msun/h); max_weight: cap on a voxel's mass-loss weight,
    in units of the mean (dense crops hold every voxel at once, so uncapped inverse counts of near-empty bins make
    the loss a few voxels'; 0 = no cap); mass_weighting: the successor's mass-loss weights, "none", "host_mass"
    (inverse counts of the largest halo mass in the voxel's 3³) or "inverse_count" (of its own M*: the paper's);
    augment: random cube symmetries; cosine: decay the learning rate along a cosine to lr / 100 at the last step
    (else constant); select_on_draws: the successor's validation painting draws its
    masses (as ``paint.dm2gal`` paints by default) instead of taking the conditional means, scoring the mean of
    ``selection_draws`` fixed-seed draws (the masses of the few heaviest haloes, which one draw leaves to chance,
    carry the mass-weighted P(k))."""

    steps: int = 2000
    batch: int = 4
    tile: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.0
    threshold: float = 1e8
    pos_weight: float = 20.0
    mass_weight: float = 1.0
    eval_every: int = 200
    n_bins: int = 100
    bin_lo: float = 1e8
    bin_hi: float = 10**11.5
    max_weight: float = 10.0
    mass_weighting: str = "none"
    augment: bool = True
    cosine: bool = True
    select_on_draws: bool = True
    selection_draws: int = 4

    def __post_init__(self) -> None:
        names = ("steps", "batch", "tile", "eval_every", "n_bins", "selection_draws")
        bad = [name for name in names if getattr(self, name) < 1]
        weighting_ok = self.mass_weighting in MASS_WEIGHTINGS
        if bad or not self.lr > 0 or not self.threshold > 0 or not 0 < self.bin_lo < self.bin_hi or not weighting_ok:
            raise ValidationError(
                f"bad training settings: {bad or ''} must be >= 1; lr, threshold > 0; 0 < bin_lo < bin_hi; "
                f"mass_weighting one of {MASS_WEIGHTINGS} (got {self.mass_weighting!r})",
                context="paint.TrainConfig",
            )


@dataclasses.dataclass
class TrainResult:
    """best_state: the selected weights; best_step, best_score: when and how well (mean |ln P/P_truth|);
    history: (step, loss, score or NaN) rows."""

    best_state: dict[str, torch.Tensor]
    best_step: int
    best_score: float
    history: list[tuple[int, float, float]]


def _as_boxes(validation: PaintBox | Sequence[PaintBox]) -> list[PaintBox]:
    boxes = [validation] if isinstance(validation, PaintBox) else list(validation)
    if not boxes:
        raise ValidationError("no validation box: one is needed to select the checkpoint", context="paint training")
    return boxes


def _check_boxes(train: Sequence[PaintBox], validation: Sequence[PaintBox]) -> None:
    if not train:
        raise ValidationError("no training box", context="paint training")
    voxels = {round(b.voxel, 9) for b in (*train, *validation)}
    if len(voxels) > 1:
        raise ValidationError(
            f"boxes have different voxel sizes {sorted(voxels)} Mpc/h: a model learns one voxel size",
            context="paint training",
        )


def paint_with_fcn(
    model: Dm2GalFCN, box: PaintBox, *, tile: int = 64, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The successor's painted field M* (n, n, n) Msun/h for a whole box, and its raw output (3, n, n, n):
    occupancy logits, mean and ln σ of log10(1 + M*). ``generator``: draw the masses from the predicted scatter
    (else each occupied voxel gets its conditional mean mass; see ``Dm2GalFCN.paint``)."""
    out = predict_tiled(model, box.inputs, tile=tile)
    return from_log_mass(model.paint(out, generator)), out


def paint_draws_with_fcn(model: Dm2GalFCN, box: PaintBox, draws: int, *, tile: int = 64) -> list[torch.Tensor]:
    """``draws`` paintings M* (n, n, n) Msun/h of ``box`` from one prediction: the same occupied voxels, masses drawn
    with generators seeded 0, 1, ..., ``draws − 1`` (the one of seed s equals ``paint_with_fcn`` with that seed)."""
    out = predict_tiled(model, box.inputs, tile=tile)
    occupied = model.occupied(out[model.OCCUPANCY])
    seeds = (torch.Generator().manual_seed(seed) for seed in range(draws))
    return [from_log_mass(model.paint(out, seed, occupied=occupied)) for seed in seeds]


def paint_with_oracle(net: Dm2Gal, box: PaintBox, threshold: float, *, tile: int = 32) -> torch.Tensor:
    """dm2gal's painted field: its prediction at the voxels where the truth has M* ≥ ``threshold``, 0 elsewhere.

    Computed with the network's exact fully-convolutional equivalent (:func:`~cosmoseg.paint.network.
    dilated_equivalent`, the same numbers to float rounding as one crop per voxel, tested) over the whole box: a
    per-voxel pass over every occupied voxel would take hours on a CPU (``benchmarks/bench_paint.py`` times it).
    """
    occupied = box.target >= to_log_mass(torch.tensor(threshold))
    values = predict_tiled(dilated_equivalent(net), box.inputs, tile=tile)[0]
    return torch.where(occupied, from_log_mass(values), torch.zeros_like(values))


def _host_log_mass(box: PaintBox) -> torch.Tensor:
    """(n, n, n) the largest log10(1 + M_halo) of the halo field within each voxel's periodic 3³ neighbourhood."""
    halo = box.inputs[1][None, None]
    return F.max_pool3d(F.pad(halo, (1,) * 6, mode="circular"), 3, stride=1)[0, 0]


def _weight_volumes(boxes: Sequence[PaintBox], config: TrainConfig) -> list[torch.Tensor]:
    """Per training box, an (n, n, n) volume of loss weights: at each occupied voxel the inverse count of its bin
    over all occupied voxels of all training boxes (normalised to a mean of 1, capped at ``max_weight``), 0
    elsewhere. Bins: ``host_mass``, of the largest halo mass in the voxel's 3³ (:data:`HOST_BINS`); otherwise
    (``inverse_count``, ``none``) of its own M* (``n_bins`` from ``bin_lo`` to ``bin_hi``)."""
    log_threshold = float(to_log_mass(torch.tensor(config.threshold)))
    masks = [b.target >= log_threshold for b in boxes]
    if sum(int(m.sum()) for m in masks) == 0:
        raise ValidationError(f"no training voxel has M* >= {config.threshold:g} Msun/h", context="paint training")
    if config.mass_weighting == "host_mass":
        hosts = [_host_log_mass(b)[m] for b, m in zip(boxes, masks, strict=True)]
        masses = from_log_mass(torch.cat(hosts).double())
        weights = mass_bin_weights(masses, n_bins=HOST_BINS, lo=HOST_LO, hi=HOST_HI).float()
    else:
        masses = torch.cat([from_log_mass(b.target[m]) for b, m in zip(boxes, masks, strict=True)])
        weights = mass_bin_weights(masses, n_bins=config.n_bins, lo=config.bin_lo, hi=config.bin_hi).float()
    weights = weights / weights.mean()
    if config.max_weight > 0:
        weights = weights.clamp_max(config.max_weight)
        weights = weights / weights.mean()
    volumes, start = [], 0
    for box, mask in zip(boxes, masks, strict=True):
        volume = torch.zeros_like(box.target)
        count = int(mask.sum())
        volume[mask] = weights[start : start + count]
        volumes.append(volume)
        start += count
    return volumes


def _optimise(
    model: torch.nn.Module,
    config: TrainConfig,
    step_loss: Callable[[torch.nn.Module], torch.Tensor],
    paint: Callable[[PaintBox], list[torch.Tensor]],
    validation: Sequence[PaintBox],
    progress: Progress | None,
) -> TrainResult:
    """Adam on ``step_loss(network)`` (one mini-batch through ``network``, the model in train mode: the model
    itself, or its ``DistributedDataParallel`` wrapper under a process group, whose losses are this rank's shares:
    the mean over the ranks is the loss of the global batch) for ``config.steps`` steps; every
    ``eval_every`` steps (and at the end) each validation box is painted by ``paint(box)`` (model in eval mode; one
    or more paintings) and scored by P(k), the mean over its paintings and the boxes; the best-scoring weights are
    loaded back and returned with the history."""
    truths = [from_log_mass(box.target) for box in validation]
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)

    # cosine decay to lr / 100 when asked: the validation score of a constant rate jumps between checkpoints
    def rate(i: int) -> float:
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(i / config.steps, 1.0))) if config.cosine else 1.0

    schedule = torch.optim.lr_scheduler.LambdaLR(opt, rate)
    network = data_parallel(model)
    best: TrainResult | None = None
    history: list[tuple[int, float, float]] = []
    running, count = 0.0, 0
    for step in range(1, config.steps + 1):
        model.train()
        loss = step_loss(network)
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
        running, count = running + mean_over_ranks(float(loss.detach())), count + 1
        if step % config.eval_every == 0 or step == config.steps:
            model.eval()
            scores = []
            for box, truth in zip(validation, truths, strict=True):
                for painted in paint(box):
                    empty = float(painted.sum()) <= 0
                    scores.append(math.inf if empty else power_ratio_score(painted, truth, box.length)[0])
            score = sum(scores) / len(scores)
            history.append((step, running / count, score))
            if progress is not None:
                progress(step, running / count, score)
            running, count = 0.0, 0
            if best is None or score < best.best_score:
                best = TrainResult(copy.deepcopy(model.state_dict()), step, score, history)
    assert best is not None
    best.history = history
    model.load_state_dict(best.best_state)
    model.eval()
    return best


def train_fcn(
    model: Dm2GalFCN,
    train: Sequence[PaintBox],
    validation: PaintBox | Sequence[PaintBox],
    config: TrainConfig,
    generator: torch.Generator,
    progress: Progress | None = None,
    *,
    resume_state: dict[str, torch.Tensor] | None = None,
) -> TrainResult:
    """Train the successor on random crops of ``train``; keep the weights whose validation P(k) is closest (the
    mean score over the ``validation`` boxes).

    resume_state: weights to start from (fine-tuning); otherwise the mass head starts at the mean log mass."""
    validation = _as_boxes(validation)
    _check_boxes(train, validation)
    log_threshold = float(to_log_mass(torch.tensor(config.threshold)))
    occupied = sum(float((b.target >= log_threshold).sum()) for b in train)
    total = sum(b.target.numel() for b in train)
    if occupied == 0:
        raise ValidationError(f"no training voxel has M* >= {config.threshold:g} Msun/h", context="paint training")
    pos_weight = torch.tensor(config.pos_weight or (total - occupied) / occupied)
    with torch.no_grad():
        model.logit_threshold.fill_(float(pos_weight.log()))
    weights = _weight_volumes(train, config)
    if resume_state is not None:
        model.load_state_dict(resume_state)
    else:  # spread the mixture's means over the occupied training voxels' log masses, σ a third of their spread
        log_masses = torch.cat([b.target[b.target >= log_threshold] for b in train])
        k = model.components
        levels = torch.quantile(log_masses, torch.linspace(0.9, 0.1, k) if k > 1 else torch.tensor([0.5]))
        with torch.no_grad():
            model.head.bias[1 + k : 1 + 2 * k] = levels
            model.head.bias[1 + 2 * k :] = math.log(max(float(log_masses.std()) / 3, 1e-3))

    world_size = get_world_size()

    def step_loss(network: torch.nn.Module) -> torch.Tensor:
        picks = torch.randint(0, len(train), (config.batch,), generator=generator).tolist()
        crops = [
            random_crop(
                train[b],
                config.tile,
                model.halo,
                generator,
                augment=config.augment,
                extras=[weights[b]],
                align=model.stride,
            )
            for b in picks
        ]
        if world_size > 1:  # every rank draws the whole batch (the same generator stream) and keeps its share
            return _shared_fcn_loss(network, model, crops, log_threshold, pos_weight, config)
        inputs, target, weight = (torch.stack([crop[i] for crop in crops]) for i in range(3))
        out = network(inputs)
        is_occupied = target >= log_threshold
        loss = F.binary_cross_entropy_with_logits(out[:, model.OCCUPANCY], is_occupied.float(), pos_weight=pos_weight)
        if bool(is_occupied.any()):
            mass_loss = model.mass_nll(out.movedim(1, -1)[is_occupied], target[is_occupied])
            if config.mass_weighting != "none":
                mass_loss = weight[is_occupied] * mass_loss
            loss = loss + config.mass_weight * mass_loss.mean()
        return loss

    def paint(box: PaintBox) -> list[torch.Tensor]:  # realisations, as shipped; the same draws at every validation
        if not config.select_on_draws:
            return [paint_with_fcn(model, box)[0]]
        return paint_draws_with_fcn(model, box, config.selection_draws)

    result = _optimise(model, config, step_loss, paint, validation, progress)
    calibrate_total_mass(model, train)
    return result


def _shared_fcn_loss(
    network: torch.nn.Module,
    model: Dm2GalFCN,
    crops: Sequence[Sequence[torch.Tensor]],
    log_threshold: float,
    pos_weight: torch.Tensor,
    config: TrainConfig,
) -> torch.Tensor:
    """The successor's loss on this rank's share of a global batch of ``crops`` ((inputs (2, s, s, s), target
    log10(1 + M*) (t, t, t), weight (t, t, t)) each), under a process group of N ranks: the occupancy BCE mean of the
    share × N·b_r/B, plus ``mass_weight`` × N × the share's summed mass NLL / the occupied voxels of the whole batch.
    Averaged over the ranks (as DDP averages the gradients) this is the loss of one process over the whole batch."""
    share, count = rank_share(len(crops))
    world_size = get_world_size()
    inputs, target, weight = (torch.stack([crop[i] for crop in crops[share]]) for i in range(3))
    out = network(inputs)
    is_occupied = (target >= log_threshold) & (count > 0)
    bce = F.binary_cross_entropy_with_logits(out[:, model.OCCUPANCY], is_occupied.float(), pos_weight=pos_weight)
    loss = bce * (world_size * count / len(crops))
    occupied = float(all_reduce_sum(is_occupied.sum().reshape(1).to(out.device, torch.float64)))
    if occupied > 0:
        mass_loss = model.mass_nll(out.movedim(1, -1)[is_occupied], target[is_occupied])
        if config.mass_weighting != "none":
            mass_loss = weight[is_occupied] * mass_loss
        loss = loss + config.mass_weight * mass_loss.sum() * (world_size / occupied)
    return loss


def calibrate_total_mass(model: Dm2GalFCN, boxes: Sequence[PaintBox], *, tile: int = 64) -> float:
    """Set ``model.log_mass_offset`` so that the conditional-mean painting of ``boxes`` (the training boxes) holds
    their true total stellar mass; returns the offset (dex).

    A mixture fitted in the log is not held to the mean of the linear masses, which the total and the amplitude of
    the mass-weighted field depend on; one factor for all voxels leaves the P(k) of δ (and hence the checkpoint
    selection) unchanged."""
    with torch.no_grad():
        model.log_mass_offset.zero_()
        painted = sum(float(paint_with_fcn(model, box, tile=tile)[0].double().sum()) for box in boxes)
        truth = sum(float(from_log_mass(box.target.double()).sum()) for box in boxes)
        if painted <= 0:
            raise ValidationError("the model paints no stellar mass on the training boxes", context="paint training")
        model.log_mass_offset.fill_(math.log10(truth / painted))
    return float(model.log_mass_offset)


def _voxel_crops(
    boxes: Sequence[PaintBox],
    samples: torch.Tensor,
    size: int,
    generator: torch.Generator,
    augment: bool,
    keep: slice = slice(None),
) -> torch.Tensor:
    """(B', 2, size, size, size) periodic crops centred on ``samples[keep]`` of samples (B, 4) = (box, i, j, k),
    randomly rotated. The symmetries of all B samples are drawn from ``generator`` (a rank keeping its share of a
    global batch consumes the stream as one process does)."""
    half = size // 2
    symmetries = cube_symmetries()
    drawn = [
        symmetries[int(torch.randint(0, len(symmetries), (1,), generator=generator))] if augment else None
        for _ in range(len(samples))
    ]
    crops = []
    for (b, i, j, k), symmetry in zip(samples[keep].tolist(), drawn[keep], strict=True):
        crop = periodic_crop(boxes[b].inputs, (i - half, j - half, k - half), size)
        if symmetry is not None:  # the centre voxel of an odd crop is fixed by every cube symmetry
            perm, flips = symmetry
            crop = torch.stack([apply_symmetry(c, perm, flips) for c in crop])
        crops.append(crop)
    return torch.stack(crops)


def train_dm2gal(
    net: Dm2Gal,
    train: Sequence[PaintBox],
    validation: PaintBox | Sequence[PaintBox],
    config: TrainConfig,
    generator: torch.Generator,
    progress: Progress | None = None,
) -> TrainResult:
    """Train the per-voxel network on the occupied voxels of ``train`` (weighted sampling); select by P(k)."""
    validation = _as_boxes(validation)
    _check_boxes(train, validation)
    log_threshold = float(to_log_mass(torch.tensor(config.threshold)))
    samples, targets = [], []
    for b, box in enumerate(train):
        voxels = torch.nonzero(box.target >= log_threshold)
        samples.append(torch.cat([torch.full((len(voxels), 1), b), voxels], 1))
        targets.append(box.target[voxels[:, 0], voxels[:, 1], voxels[:, 2]])
    all_samples, all_targets = torch.cat(samples), torch.cat(targets)
    if len(all_samples) == 0:
        raise ValidationError(f"no training voxel has M* >= {config.threshold:g} Msun/h", context="paint training")
    with torch.no_grad():  # start at the mean log mass of the samples
        net.fc2.bias.fill_(float(all_targets.mean()))
    weights = mass_bin_weights(from_log_mass(all_targets), n_bins=config.n_bins, lo=config.bin_lo, hi=config.bin_hi)
    sampler = WeightedSampler(weights, num_samples=config.steps * config.batch, generator=generator)
    order = torch.tensor(list(iter(sampler)), dtype=torch.long).view(config.steps, config.batch)
    step = iter(order)
    world_size = get_world_size()

    def step_loss(network: torch.nn.Module) -> torch.Tensor:
        rows = next(step)
        if world_size == 1:
            inputs = _voxel_crops(train, all_samples[rows], net.input_size, generator, config.augment)
            return F.mse_loss(network(inputs), all_targets[rows])
        share, count = rank_share(len(rows))  # this rank's share of the global batch, its mean weighted N·b_r/B
        inputs = _voxel_crops(train, all_samples[rows], net.input_size, generator, config.augment, share)
        loss = F.mse_loss(network(inputs), all_targets[rows[share]])
        return loss * (world_size * count / len(rows))

    return _optimise(
        net, config, step_loss, lambda box: [paint_with_oracle(net, box, config.threshold)], validation, progress
    )
