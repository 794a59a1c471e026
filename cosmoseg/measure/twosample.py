"""Two-sample metrics: are two samples (e.g. sampled and true galaxy properties) drawn from one distribution?

All functions take torch tensors (or anything ``torch.as_tensor`` takes) on any device and compute there;
sums are accumulated in float64. Shapes: a sample is ``(N,)`` (one dimension) or ``(N, D)`` (N points in D
dimensions); the two samples may have different sizes N and M but the same D.

- :func:`ks_2samp` — per-dimension Kolmogorov–Smirnov statistic and p-value;
- :func:`wasserstein_1d` — per-dimension exact 1-Wasserstein (earth mover's) distance;
- :func:`energy_distance` — the multivariate energy distance (Székely & Rizzo) with an optional permutation test;
- :func:`c2st` — a classifier two-sample test (Lopez-Paz & Oquab 2017), optionally conditioned on context
  features (halo properties) appended to both samples, split by halo when the samples share their contexts
  (``paired``, ``groups_a`` / ``groups_b``): held-out AUC with its standard error, balanced accuracy and a
  p-value;
- :func:`auc_score` — the area under the ROC curve of scores for two classes (Mann–Whitney), with the
  DeLong or Hanley–McNeil standard error;
- :func:`two_sample_tables` — all of them for two galaxy catalogs, column by column and jointly, as tables.

SciPy is used only for the distribution of the KS statistic (``scipy.stats.kstwo``), on D numbers.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Literal

import torch

from cosmoseg.data import GalaxyCatalog, Table

__all__ = [
    "AUCResult",
    "C2STResult",
    "EnergyDistanceResult",
    "KSResult",
    "auc_score",
    "average_ranks",
    "c2st",
    "energy_distance",
    "ks_2samp",
    "two_sample_tables",
    "wasserstein_1d",
]


def _as_2d(x: torch.Tensor, name: str) -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape (N,) or (N, D), got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    return x


def _pair(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    a2, b2 = _as_2d(a, "sample a"), _as_2d(b, "sample b")
    if a2.shape[1] != b2.shape[1]:
        raise ValueError(f"samples have different dimensions: {tuple(a2.shape)} and {tuple(b2.shape)}")
    if a2.device != b2.device:
        raise ValueError(f"samples are on different devices: {a2.device} and {b2.device}")
    return a2, b2


def _sorted_columns(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(D, N) and (D, M) sorted float64 columns of a and b, and (D, N+M) their sorted union."""
    sa = torch.sort(a.double().T.contiguous(), dim=1).values
    sb = torch.sort(b.double().T.contiguous(), dim=1).values
    both = torch.sort(torch.cat([sa, sb], dim=1), dim=1).values
    return sa, sb, both


# ---- Kolmogorov–Smirnov and Wasserstein -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class KSResult:
    """statistic: (D,) sup |F_a − F_b| per dimension; pvalue: (D,) two-sided p-values (float64, CPU)."""

    statistic: torch.Tensor
    pvalue: torch.Tensor


def ks_2samp(a: torch.Tensor, b: torch.Tensor) -> KSResult:
    """The two-sample Kolmogorov–Smirnov test in each dimension of ``a`` (N, D) and ``b`` (M, D).

    The statistic D = sup_x |F_a(x) − F_b(x)| of the empirical CDFs is exact (evaluated at every data point,
    on the device of the samples). The two-sided p-value is Smirnov's: P(D_{n_e} ≥ D) of the one-sample
    statistic with n_e = round(N M / (N + M)) (``scipy.stats.kstwo``), which is what
    ``scipy.stats.ks_2samp(method="asymp")`` returns; it is accurate for N, M ≳ 50 and conservative near
    p ~ 1. Returns (D,) float64 tensors (the statistic on the samples' device, the p-value on the CPU).
    """
    from scipy.stats import kstwo

    a2, b2 = _pair(a, b)
    sa, sb, both = _sorted_columns(a2, b2)
    n, m = sa.shape[1], sb.shape[1]
    fa = torch.searchsorted(sa, both, right=True).double() / n
    fb = torch.searchsorted(sb, both, right=True).double() / m
    statistic = (fa - fb).abs().amax(dim=1)
    big, small = max(n, m), min(n, m)
    n_eff = round(big * small / (big + small))
    pvalue = torch.as_tensor(kstwo.sf(statistic.cpu().numpy(), n_eff), dtype=torch.float64).clamp(0.0, 1.0)
    return KSResult(statistic=statistic, pvalue=pvalue)


def wasserstein_1d(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The exact 1-Wasserstein distance W1 = ∫ |F_a(x) − F_b(x)| dx in each dimension, (D,) float64.

    a: (N,) or (N, D); b: (M,) or (M, D), any sizes. Computed from the sorted union of the samples: between
    consecutive points both empirical CDFs are constant, so the integral is a finite sum. Same units as x.
    """
    a2, b2 = _pair(a, b)
    sa, sb, both = _sorted_columns(a2, b2)
    left = both[:, :-1].contiguous()
    fa = torch.searchsorted(sa, left, right=True).double() / sa.shape[1]
    fb = torch.searchsorted(sb, left, right=True).double() / sb.shape[1]
    return ((fa - fb).abs() * torch.diff(both, dim=1)).sum(dim=1)


# ---- energy distance ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EnergyDistanceResult:
    """distance: 2E|X−Y| − E|X−X'| − E|Y−Y'| (≥ 0, units of x); p_value: permutation p-value (NaN if none);
    n_permutations: how many permutations the p-value used."""

    distance: float
    p_value: float
    n_permutations: int


def _random_permutation(n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    gen_device = generator.device if generator is not None else torch.device("cpu")
    return torch.randperm(n, generator=generator, device=gen_device).to(device)


def energy_distance(
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    n_permutations: int = 0,
    generator: torch.Generator | None = None,
    chunk_elements: int = 2**24,
) -> EnergyDistanceResult:
    """The energy distance of two samples in D dimensions (Székely & Rizzo 2013), with a permutation test.

    a: (N,) or (N, D); b: (M,) or (M, D). With Euclidean distances |·|, the V-statistic

        E = 2/(N M) Σ_ij |a_i − b_j| − 1/N² Σ_ij |a_i − a_j| − 1/M² Σ_ij |b_i − b_j|,

    which is ≥ 0 and 0 only for identical empirical distributions. In one dimension √E equals
    ``scipy.stats.energy_distance``. The (N+M)² distances are made in row chunks of about ``chunk_elements``
    numbers (exact differences, not the matrix-product shortcut), so memory stays O(chunk) and time
    O((N+M)² D). With ``n_permutations`` > 0 the p-value (1 + #{E_perm ≥ E}) / (1 + n_permutations) comes
    from random relabellings of the pooled sample drawn with ``generator``; all permutations share the one
    pass over the distances (cost O((N+M)² n_permutations) multiply-adds, no extra distances).
    """
    a2, b2 = _pair(a, b)
    n, m = a2.shape[0], b2.shape[0]
    pooled = torch.cat([a2, b2]).double()
    total_n = n + m
    device = pooled.device
    labels = torch.zeros((total_n, 1 + n_permutations), dtype=torch.float64, device=device)
    labels[:n, 0] = 1.0
    for j in range(n_permutations):
        labels[_random_permutation(total_n, generator, device)[:n], 1 + j] = 1.0
    proj = torch.empty_like(labels)  # D @ labels, row chunk by row chunk
    total = torch.zeros((), dtype=torch.float64, device=device)
    rows = max(1, chunk_elements // total_n)
    for start in range(0, total_n, rows):
        dist = torch.cdist(pooled[start : start + rows], pooled, compute_mode="donot_use_mm_for_euclid_dist")
        proj[start : start + rows] = dist @ labels
        total = total + dist.sum()
    s_aa = (labels * proj).sum(dim=0)
    s_ab = proj.sum(dim=0) - s_aa
    s_bb = total - s_aa - 2 * s_ab
    stats = 2 * s_ab / (n * m) - s_aa / n**2 - s_bb / m**2
    observed = float(stats[0])
    p_value = float("nan")
    if n_permutations > 0:
        p_value = (1 + int((stats[1:] >= stats[0]).sum())) / (1 + n_permutations)
    return EnergyDistanceResult(distance=observed, p_value=p_value, n_permutations=n_permutations)


# ---- AUC ------------------------------------------------------------------------------------------------


def average_ranks(x: torch.Tensor) -> torch.Tensor:
    """Ranks 1..N of the values of x (N,), ties given their average rank (float64, on x's device)."""
    _, inverse, counts = torch.unique(x, sorted=True, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).double()
    return (ends - (counts.double() - 1) / 2)[inverse]


@dataclasses.dataclass(frozen=True)
class AUCResult:
    """auc: P(score of a positive > score of a negative) + ½ P(tie); auc_err: its standard error;
    p_value: one-sided Mann–Whitney p-value of auc > 0.5 (normal approximation, no tie correction)."""

    auc: float
    auc_err: float
    p_value: float


def _clustered_delong_variance(
    v10: torch.Tensor, v01: torch.Tensor, groups: torch.Tensor, labels: torch.Tensor, auc: float
) -> float:
    """Obuchowski's (1997) variance of the AUC from placement values summed per cluster (rows sharing a group)."""
    ids, inverse = torch.unique(groups, return_inverse=True)
    n_groups = ids.shape[0]
    if n_groups < 2:
        return 0.0
    pos, neg = inverse[labels], inverse[~labels]
    x = torch.zeros(n_groups, dtype=torch.float64, device=v10.device).index_add_(0, pos, v10)
    y = torch.zeros(n_groups, dtype=torch.float64, device=v10.device).index_add_(0, neg, v01)
    dx = x - torch.bincount(pos, minlength=n_groups).double() * auc
    dy = y - torch.bincount(neg, minlength=n_groups).double() * auc
    n1, n0 = v10.shape[0], v01.shape[0]
    scale = n_groups / (n_groups - 1)
    s10 = scale * float(dx.square().sum()) / n1
    s01 = scale * float(dy.square().sum()) / n0
    s11 = scale * float((dx * dy).sum())
    return s10 / n1 + s01 / n0 + 2 * s11 / (n1 * n0)


def auc_score(
    scores: torch.Tensor,
    labels: torch.Tensor,
    *,
    error: Literal["delong", "hanley-mcneil"] = "delong",
    groups: torch.Tensor | None = None,
) -> AUCResult:
    """The area under the ROC curve of ``scores`` (N,) for boolean ``labels`` (N,) (True = positive).

    AUC is the Mann–Whitney statistic from average ranks (ties count ½). ``error``: "delong" — DeLong,
    DeLong & Clarke-Pearson (1988) from the placement values, var = s²(V10)/n1 + s²(V01)/n0; or
    "hanley-mcneil" — Hanley & McNeil (1982), which assumes exponential score distributions
    (Q1 = A/(2−A), Q2 = 2A²/(1+A)). Both equal √((n1+n0+1)/(12 n1 n0)) at A = ½ with equal-variance scores.

    groups: optional (N,) integer cluster labels (e.g. the halo of each row, when a positive and a negative row
    share a halo). Rows of one cluster are not independent, so the DeLong error is then Obuchowski's (1997)
    clustered form: with X_i, Y_i the sums of the placement values of cluster i's positives and negatives,
    m_i, n_i their counts and I clusters, var = S10/n1 + S01/n0 + 2 S11/(n1 n0), S10 = I/(I−1) Σ(X_i − m_i A)²/n1,
    S01 = I/(I−1) Σ(Y_i − n_i A)²/n0, S11 = I/(I−1) Σ(X_i − m_i A)(Y_i − n_i A). (Pairs whose scores move
    together make it smaller than the unclustered error, which then overstates it.) "delong" only.
    """
    scores = torch.as_tensor(scores).double().reshape(-1)
    labels = torch.as_tensor(labels, device=scores.device).reshape(-1).bool()
    n1, n0 = int(labels.sum()), int((~labels).sum())
    if n1 == 0 or n0 == 0:
        raise ValueError(f"auc_score needs both classes; got {n1} positive and {n0} negative scores")
    if groups is not None:
        groups = torch.as_tensor(groups, device=scores.device).reshape(-1)
        if groups.shape[0] != scores.shape[0]:
            raise ValueError(f"groups must have one label per score: {scores.shape[0]} scores, {groups.shape[0]}")
        if error != "delong":
            raise ValueError(f"clustered (grouped) errors are DeLong's only, not {error!r}")
    ranks = average_ranks(scores)
    auc = float((ranks[labels].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))
    if error == "delong":
        v10 = (ranks[labels] - average_ranks(scores[labels])) / n0
        v01 = 1.0 - (ranks[~labels] - average_ranks(scores[~labels])) / n1
        if groups is not None:
            auc_err = math.sqrt(max(_clustered_delong_variance(v10, v01, groups, labels, auc), 0.0))
        else:
            s10 = float(v10.var()) if n1 > 1 else 0.0
            s01 = float(v01.var()) if n0 > 1 else 0.0
            auc_err = math.sqrt(max(s10 / n1 + s01 / n0, 0.0))
    elif error == "hanley-mcneil":
        q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
        var = (auc * (1 - auc) + (n1 - 1) * (q1 - auc**2) + (n0 - 1) * (q2 - auc**2)) / (n1 * n0)
        auc_err = math.sqrt(max(var, 0.0))
    else:
        raise ValueError(f"error must be 'delong' or 'hanley-mcneil', got {error!r}")
    null_sd = math.sqrt((n1 + n0 + 1) / (12 * n1 * n0))
    p_value = 0.5 * math.erfc((auc - 0.5) / null_sd / math.sqrt(2))
    return AUCResult(auc=auc, auc_err=auc_err, p_value=p_value)


# ---- classifier two-sample test -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class C2STResult:
    """The held-out result of a classifier two-sample test.

    auc, auc_err: ROC AUC of "sample a" scores on the test split and its standard error (0.5 = the samples
    are indistinguishable to the classifier). accuracy: balanced accuracy (mean of the per-sample hit rates;
    plain accuracy when the samples have equal sizes). p_value: one-sided Mann–Whitney p-value of AUC > ½.
    n_train, n_test: points used to train and to test (both samples together).
    """

    auc: float
    auc_err: float
    accuracy: float
    p_value: float
    n_train: int
    n_test: int


def _split(n: int, test_fraction: float, generator: torch.Generator | None, device: torch.device) -> tuple:
    perm = _random_permutation(n, generator, device)
    n_test = min(max(1, round(n * test_fraction)), n - 1)
    return perm[n_test:], perm[:n_test]


def _group_split(
    groups_a: torch.Tensor,
    groups_b: torch.Tensor,
    test_fraction: float,
    generator: torch.Generator | None,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train_a, test_a, train_b, test_b) row indices: a random ``test_fraction`` of the groups (labels shared by
    both samples) is held out, and every row of a held-out group, in either sample, is a test row."""
    n = groups_a.shape[0]
    ids, inverse = torch.unique(torch.cat([groups_a, groups_b]).to(device), return_inverse=True)
    n_groups = ids.shape[0]
    if n_groups < 2:
        raise ValueError(f"a group split needs at least 2 groups, got {n_groups}")
    perm = _random_permutation(n_groups, generator, device)
    n_test = min(max(1, round(n_groups * test_fraction)), n_groups - 1)
    held_out = torch.zeros(n_groups, dtype=torch.bool, device=device)
    held_out[perm[:n_test]] = True
    in_test_a, in_test_b = held_out[inverse[:n]], held_out[inverse[n:]]
    parts = (
        torch.nonzero(~in_test_a).reshape(-1),
        torch.nonzero(in_test_a).reshape(-1),
        torch.nonzero(~in_test_b).reshape(-1),
        torch.nonzero(in_test_b).reshape(-1),
    )
    empty = [
        name for name, part in zip(("train a", "test a", "train b", "test b"), parts, strict=True) if not len(part)
    ]
    if empty:
        raise ValueError(f"the group split left no rows in {', '.join(empty)}: give more groups")
    return parts


def _groups(groups: torch.Tensor, n: int, name: str, device: torch.device) -> torch.Tensor:
    groups = torch.as_tensor(groups, device=device).reshape(-1)
    if groups.shape[0] != n:
        raise ValueError(f"{name} must have one label per row: {n} rows, {groups.shape[0]} labels")
    if groups.is_floating_point() or groups.is_complex():
        raise ValueError(f"{name} must hold integer (or bool) group labels, got {groups.dtype}")
    return groups.long()


def _init_linear(n_in: int, n_out: int, generator: torch.Generator | None, device: torch.device) -> list:
    """PyTorch's default Linear init, U(±1/√n_in) for weight and bias, drawn from ``generator``."""
    bound = 1.0 / math.sqrt(n_in)
    gen_device = generator.device if generator is not None else torch.device("cpu")
    w = (torch.rand((n_out, n_in), generator=generator, device=gen_device) * 2 - 1) * bound
    b = (torch.rand((n_out,), generator=generator, device=gen_device) * 2 - 1) * bound
    return [w.to(device).requires_grad_(), b.to(device).requires_grad_()]


def _mlp_forward(params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    h = x
    for i in range(0, len(params) - 2, 2):
        h = torch.relu(h @ params[i].T + params[i + 1])
    return (h @ params[-2].T + params[-1]).squeeze(-1)


def _mlp_scores(
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor,
    *,
    hidden: int,
    layers: int,
    epochs: int,
    batch_size: int,
    lr: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Train a ReLU MLP with class-balanced logistic loss (Adam) and return the test logits."""
    device = x_train.device
    sizes = [x_train.shape[1]] + [hidden] * layers + [1]
    params = [p for i in range(len(sizes) - 1) for p in _init_linear(sizes[i], sizes[i + 1], generator, device)]
    optimiser = torch.optim.Adam(params, lr=lr)
    n1 = float(y_train.sum())
    n0 = float(y_train.numel()) - n1
    weights = torch.where(y_train > 0.5, y_train.numel() / (2 * n1), y_train.numel() / (2 * n0))
    # The layers are tiny: on the CPU, intra-op threads only add synchronisation (10-20x slower on busy
    # cores), so train on one thread and restore the setting afterwards.
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        _train(params, optimiser, x_train, y_train, weights, epochs=epochs, batch_size=batch_size, generator=generator)
    finally:
        torch.set_num_threads(threads)
    with torch.no_grad():
        return _mlp_forward(params, x_test)


def _train(
    params: list[torch.Tensor],
    optimiser: torch.optim.Optimizer,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    weights: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    generator: torch.Generator | None,
) -> None:
    n = x_train.shape[0]
    with torch.enable_grad():
        for _ in range(epochs):
            order = _random_permutation(n, generator, x_train.device)
            for start in range(0, n, batch_size):
                idx = order[start : start + batch_size]
                logits = _mlp_forward(params, x_train[idx])
                loss = torch.nn.functional.binary_cross_entropy_with_logits(
                    logits, y_train[idx], weight=weights[idx], reduction="mean"
                )
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()


def _knn_scores(
    x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, *, k: int, chunk_elements: int = 2**24
) -> torch.Tensor:
    """Class-balanced k-nearest-neighbour scores: p1 / (p1 + p0), p_c = (neighbours of class c) / n_c."""
    n1 = float(y_train.sum())
    n0 = float(y_train.numel()) - n1
    k = min(k, x_train.shape[0])
    out = torch.empty(x_test.shape[0], dtype=torch.float64, device=x_test.device)
    rows = max(1, chunk_elements // x_train.shape[0])
    for start in range(0, x_test.shape[0], rows):
        dist = torch.cdist(x_test[start : start + rows], x_train)
        idx = torch.topk(dist, k, dim=1, largest=False).indices
        ones = y_train[idx].double().sum(dim=1)
        p1, p0 = ones / n1, (k - ones) / n0
        out[start : start + rows] = p1 / (p1 + p0)
    return out


def c2st(
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    context_a: torch.Tensor | None = None,
    context_b: torch.Tensor | None = None,
    paired: bool | None = None,
    groups_a: torch.Tensor | None = None,
    groups_b: torch.Tensor | None = None,
    classifier: Literal["mlp", "knn"] = "mlp",
    test_fraction: float = 0.5,
    hidden: int = 64,
    layers: int = 2,
    epochs: int = 20,
    batch_size: int = 256,
    lr: float = 3e-3,
    k: int = 0,
    error: Literal["delong", "hanley-mcneil"] = "delong",
    generator: torch.Generator | None = None,
) -> C2STResult:
    """Classifier two-sample test (Lopez-Paz & Oquab 2017): can a classifier tell ``a`` from ``b``?

    a: (N,) or (N, D) and b: (M,) or (M, D), e.g. galaxy properties from a sampler and from the truth.
    context_a (N, C), context_b (M, C): optional conditioning features (e.g. the host-halo properties of each
    galaxy), appended to both samples. With context, the test compares the joint p(x, c), so for samples
    whose contexts come from one distribution it detects a wrong conditional p(x | c) even where the
    marginals p(x) agree.

    **The split.** A random ``test_fraction`` of the rows is held out for testing; features are standardised with
    the training mean and standard deviation. When the two samples share contexts (e.g. a sampler's galaxies and
    the true galaxies of the *same* haloes), the rows of one context must land on the same side of the split:
    otherwise a halo's context is learnt under one label in training and tested under the other, and a
    classifier that memorises contexts scores *below* 0.5 for two samples of one conditional distribution
    (truth against its own redraw: 0.488 instead of 0.5 on 9300 haloes, 0.43 on 1000 toy rows). So:

    * ``groups_a`` (N,), ``groups_b`` (M,): integer labels (e.g. the host halo's index); every row of a group, in
      either sample, goes to training or to testing together (a random ``test_fraction`` of the groups is held
      out). Use this when several rows share a halo (satellites) or the samples are in different orders.
    * ``paired`` = True: row i of ``a`` and row i of ``b`` belong together (N = M); one permutation splits both,
      the same as ``groups_a = groups_b = arange(N)``. ``paired`` = None (the default): paired when both contexts
      are given, N = M and ``context_a`` equals ``context_b`` row by row, else independent. ``paired`` = False:
      each sample is split by its own permutation (stratified: exactly ``test_fraction`` of each sample),
      which is only right when no context is shared between the samples.

    ``classifier``: "mlp" — a ReLU MLP (``layers`` hidden layers of ``hidden`` units) trained for ``epochs``
    epochs of Adam (``lr``, mini-batches of ``batch_size``) on the class-balanced logistic loss, initialised and
    shuffled with ``generator`` (deterministic for a given generator and device; on the CPU it trains on one
    thread, restored afterwards, since its layers are too small to gain from more); "knn" — class-balanced
    k-nearest-neighbour votes (``k`` = 0: √n_train).
    The held-out scores give the AUC (:func:`auc_score`, ``error`` = "delong" or "hanley-mcneil"; with a paired
    or group split the DeLong error is clustered by group, since the two rows of a halo in the test set are not
    independent), the balanced accuracy at the decision threshold, and a p-value. AUC ≈ 0.5 within its error:
    the classifier finds no difference; AUC → 1: the samples are fully separable.
    """
    a2, b2 = _pair(a, b)
    if (context_a is None) != (context_b is None):
        raise ValueError("give both context_a and context_b, or neither")
    if (groups_a is None) != (groups_b is None):
        raise ValueError("give both groups_a and groups_b, or neither")
    if groups_a is not None and paired is not None:
        raise ValueError("give groups_a / groups_b or paired, not both")
    n_a, n_b = a2.shape[0], b2.shape[0]
    same_context = False
    if context_a is not None and context_b is not None:
        ca, cb = _pair(context_a, context_b)
        if ca.shape[0] != n_a or cb.shape[0] != n_b:
            raise ValueError(
                f"contexts must have one row per point: a {tuple(a2.shape)} with context {tuple(ca.shape)}, "
                f"b {tuple(b2.shape)} with context {tuple(cb.shape)}"
            )
        same_context = ca.shape == cb.shape and bool(torch.equal(ca, cb.to(ca.dtype)))
        a2 = torch.cat([a2.double(), ca.to(a2.device).double()], dim=1)
        b2 = torch.cat([b2.double(), cb.to(b2.device).double()], dim=1)
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if min(n_a, n_b) < 2:
        raise ValueError(f"c2st needs at least 2 points per sample, got {n_a} and {n_b}")
    device = a2.device
    if paired and n_a != n_b:
        raise ValueError(f"paired samples need as many rows in a as in b, got {n_a} and {n_b}")
    if paired is None:
        paired = same_context
    if groups_a is not None and groups_b is not None:
        ga, gb = _groups(groups_a, n_a, "groups_a", device), _groups(groups_b, n_b, "groups_b", device)
        train_a, test_a, train_b, test_b = _group_split(ga, gb, test_fraction, generator, device)
    elif paired:
        train_a, test_a = _split(n_a, test_fraction, generator, device)
        train_b, test_b = train_a, test_a
    else:
        train_a, test_a = _split(n_a, test_fraction, generator, device)
        train_b, test_b = _split(n_b, test_fraction, generator, device)
    test_groups = None  # rows of one halo in the test set are one cluster of the AUC's error
    if groups_a is not None and groups_b is not None:
        test_groups = torch.cat([ga[test_a], gb[test_b]])
    elif paired:
        test_groups = torch.cat([test_a, test_b])
    x_train = torch.cat([a2[train_a], b2[train_b]]).double()
    x_test = torch.cat([a2[test_a], b2[test_b]]).double()
    y_train = torch.cat([torch.ones(len(train_a), device=device), torch.zeros(len(train_b), device=device)])
    y_test = torch.cat([torch.ones(len(test_a), device=device), torch.zeros(len(test_b), device=device)]).bool()
    mean = x_train.mean(dim=0)
    std = x_train.std(dim=0)
    std = torch.where(std > 0, std, torch.ones_like(std))
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std

    if classifier == "mlp":
        scores = _mlp_scores(
            x_train.float(),
            y_train.float(),
            x_test.float(),
            hidden=hidden,
            layers=layers,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            generator=generator,
        ).double()
        threshold = 0.0
    elif classifier == "knn":
        scores = _knn_scores(x_train, y_train, x_test, k=k or max(1, round(math.sqrt(x_train.shape[0]))))
        threshold = 0.5
    else:
        raise ValueError(f"classifier must be 'mlp' or 'knn', got {classifier!r}")
    result = auc_score(scores, y_test, error=error, groups=test_groups if error == "delong" else None)
    predicted = scores > threshold
    accuracy = 0.5 * (float(predicted[y_test].double().mean()) + float((~predicted[~y_test]).double().mean()))
    return C2STResult(
        auc=result.auc,
        auc_err=result.auc_err,
        accuracy=accuracy,
        p_value=result.p_value,
        n_train=int(x_train.shape[0]),
        n_test=int(x_test.shape[0]),
    )


def _catalog_matrix(catalog: GalaxyCatalog, names: Sequence[str], which: str) -> torch.Tensor:
    """(N, D) float64 matrix of the named columns (vector columns flattened)."""
    missing = [n for n in names if n not in catalog.columns]
    if missing:
        raise KeyError(f"the {which} catalog has no column(s) {missing}; it has {sorted(catalog.columns)}")
    return torch.cat([catalog[n].reshape(len(catalog), -1).double() for n in names], dim=1)


def two_sample_tables(
    sample: GalaxyCatalog,
    reference: GalaxyCatalog,
    *,
    columns: Sequence[str] = (),
    context_columns: Sequence[str] = (),
    classifier: Literal["mlp", "knn"] = "mlp",
    test_fraction: float = 0.5,
    epochs: int = 20,
    hidden: int = 64,
    layers: int = 2,
    lr: float = 3e-3,
    batch_size: int = 256,
    k: int = 0,
    auc_error: Literal["delong", "hanley-mcneil"] = "delong",
    energy_max_points: int = 4000,
    energy_permutations: int = 100,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[Table, Table]:
    """Two-sample tests of galaxy properties, a sampler's catalog against a reference; returns (per_column, summary).

    columns: the properties to compare (empty = every 1-D float column both catalogs have, but the context
    columns). per_column: one row per property (a vector column: per component; names in meta ``column_<i>``) with
    the KS statistic and p-value, the 1-Wasserstein distance, the means and standard deviations. summary: one row,
    the C2ST of all properties jointly (:func:`c2st`, conditioned on ``context_columns`` appended to both samples;
    classifier, test_fraction, epochs, hidden, layers, lr, batch_size, k and ``auc_error`` as its arguments) and
    the energy distance (:func:`energy_distance`) of the properties standardised by the reference's spread, on at
    most ``energy_max_points`` rows of each catalog (0 = all) with ``energy_permutations`` permutations for its
    p-value. Random draws come from ``generator``; device: where to compute (default: the sample's).
    """
    names = tuple(columns) or tuple(
        n
        for n, t in sample.columns.items()
        if t.ndim == 1 and t.is_floating_point() and n in reference.columns and n not in context_columns
    )
    if not names:
        shared = sorted(set(sample.columns) & set(reference.columns))
        raise ValueError(f"no columns to compare: the catalogs share no 1-D float column (shared: {shared})")
    device = next(iter(sample.columns.values())).device if device is None else torch.device(device)
    a = _catalog_matrix(sample, names, "sample").to(device)
    b = _catalog_matrix(reference, names, "reference").to(device)
    widths = [sample[n].reshape(len(sample), -1).shape[1] for n in names]
    labels = [n if w == 1 else f"{n}[{j}]" for n, w in zip(names, widths, strict=True) for j in range(w)]
    ks = ks_2samp(a, b)
    per_column = Table(
        columns={
            "column": torch.arange(len(labels)),
            "ks_statistic": ks.statistic.cpu(),
            "ks_pvalue": ks.pvalue.cpu(),
            "wasserstein": wasserstein_1d(a, b).cpu(),
            "mean_sample": a.mean(dim=0).cpu(),
            "mean_reference": b.mean(dim=0).cpu(),
            "std_sample": a.std(dim=0).cpu() if len(a) > 1 else torch.zeros(a.shape[1], dtype=torch.float64),
            "std_reference": b.std(dim=0).cpu() if len(b) > 1 else torch.zeros(b.shape[1], dtype=torch.float64),
        },
        meta={"kind": "two_sample"}
        | {f"column_{i}": label for i, label in enumerate(labels)}
        | {"n_sample": len(sample), "n_reference": len(reference)},
    )
    context = {}
    if context_columns:
        context = {
            "context_a": _catalog_matrix(sample, context_columns, "sample").to(device),
            "context_b": _catalog_matrix(reference, context_columns, "reference").to(device),
        }
    test = c2st(
        a,
        b,
        **context,
        classifier=classifier,
        test_fraction=test_fraction,
        hidden=hidden,
        layers=layers,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        k=k,
        error=auc_error,
        generator=generator,
    )
    ea, eb = a, b
    if energy_max_points:
        gen_device = generator.device if generator is not None else device
        if len(a) > energy_max_points:
            ea = a[torch.randperm(len(a), generator=generator, device=gen_device)[:energy_max_points].to(device)]
        if len(b) > energy_max_points:
            eb = b[torch.randperm(len(b), generator=generator, device=gen_device)[:energy_max_points].to(device)]
    # standardise with the reference's spread so that columns in different units weigh alike
    scale = b.std(dim=0) if len(b) > 1 else torch.ones(b.shape[1], dtype=torch.float64, device=device)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    energy = energy_distance(ea / scale, eb / scale, n_permutations=energy_permutations, generator=generator)
    row = {
        "auc": test.auc,
        "auc_err": test.auc_err,
        "accuracy": test.accuracy,
        "c2st_pvalue": test.p_value,
        "n_train": float(test.n_train),
        "n_test": float(test.n_test),
        "energy_distance": energy.distance,
    }
    if energy_permutations:
        row["energy_pvalue"] = energy.p_value
    summary = Table(
        columns={key: torch.tensor([value], dtype=torch.float64) for key, value in row.items()},
        meta={
            "kind": "c2st",
            "columns": ",".join(labels),
            "context_columns": ",".join(context_columns),
            "classifier": classifier,
            "energy_points_sample": len(ea),
            "energy_points_reference": len(eb),
            "label_0": "C2ST | " + ",".join(context_columns) if context_columns else "C2ST",
        },
    )
    return per_column, summary
