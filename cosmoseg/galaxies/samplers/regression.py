"""Regression sampler: one MLP per galaxy property, with imbalance handling (Abramo et al.; de Santi et al. 2022).

Each galaxy property ``d`` gets its own MLP ``f_d(halo) ≈ E[y_d | halo]`` trained with a (weighted) mean squared
error on the standardised values. Because frequent targets dominate an MSE fit (the peaks of the distribution are
over-predicted and the tails under-predicted), the hyper-parameter ``imbalance`` selects one of

* ``"none"`` — plain MSE;
* ``"inverse_density"`` — per-row weights ∝ 1 / p̂(y_d), p̂ a histogram density of the target (``bins`` bins),
  clipped so that the largest weight is at most ``max_weight`` times the smallest and normalised to mean 1
  (:func:`inverse_density_weights`);
* ``"smogn"`` — a SMOGN-like oversampling (Branco et al. 2017), written here from scratch and vectorised
  (:func:`smogn_oversample`): rows whose target is rare (relevance φ(y) = 1 − p̂(y) / max p̂ ≥ ``rare_threshold``)
  get ``round(oversample · n_rare)`` synthetic rows, each interpolated at a uniform random fraction between a rare
  row and one of its ``k`` nearest rare neighbours (in the joint standardised (halo, target) space, only within
  the same contiguous rare region of the target histogram), plus Gaussian noise of std ``noise`` (standardised
  units) on every column. Common rows are kept (no under-sampling), so the training set grows from N to
  N + round(oversample · n_rare) rows.

A regression is a point estimate. To make it a sampler, the draws add the residual scatter: for each property
independently, ``y_d = f_d(halo) + σ_d ε_d`` with ``ε_d ~ N(0, 1)`` and ``σ_d`` the (unweighted) standard deviation
of the residuals ``y_d − f_d(halo)`` over the original (not augmented) training rows. The scatter is therefore
homoscedastic and the properties are drawn independently: the draws carry **no correlation** between galaxy
properties beyond what the means share through the halo — the limitation the paper points out, which the
joint samplers (``gauss``, flows, HiVAl) remove. There is no log density (``log_prob`` raises
`NotImplementedError`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from cosmoseg.errors import ArtifactError, ValidationError
from cosmoseg.galaxies.samplers.base import JointSampler, Progress, check_matrix, register_sampler
from cosmoseg.galaxies.samplers.gauss import MLP_DEFAULTS, check_hyper, make_mlp, train_mlp

__all__ = ["IMBALANCE_MODES", "RegressionSampler", "inverse_density_weights", "relevance", "smogn_oversample"]

IMBALANCE_MODES = ("none", "inverse_density", "smogn")


def _histogram(y: torch.Tensor, bins: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bin index ``(N,)`` of every value of ``y (N,)``, the density ``(bins,)`` and the counts ``(bins,)``."""
    y = y.double()
    lo, hi = float(y.min()), float(y.max())
    width = (hi - lo) / bins if hi > lo else 1.0
    idx = ((y - lo) / width).floor().long().clamp(0, bins - 1)
    counts = torch.bincount(idx, minlength=bins).double()
    return idx, counts / (len(y) * width), counts


def inverse_density_weights(y: torch.Tensor, bins: int = 32, max_weight: float = 10.0) -> torch.Tensor:
    """Per-row weights ``(N,)`` ∝ 1 / p̂(y) of a target ``y (N,)``, p̂ a ``bins``-bin histogram density.

    The weights are clipped so that the largest is at most ``max_weight`` times the smallest, then normalised to
    mean 1 (float32). A constant target gives all ones.
    """
    if bins < 1 or max_weight < 1:
        raise ValidationError(f"need bins >= 1 and max_weight >= 1, got {bins}, {max_weight}")
    idx, dens, _ = _histogram(y, bins)
    w = 1.0 / dens[idx]
    w = torch.clamp(w, max=float(w.min()) * max_weight)
    return (w / w.mean()).float()


def relevance(y: torch.Tensor, bins: int = 32) -> torch.Tensor:
    """Relevance φ(y) = 1 − p̂(y) / max p̂ in [0, 1) of every value of ``y (N,)``: high for rare targets."""
    idx, dens, _ = _histogram(y, bins)
    return (1.0 - dens[idx] / dens.max()).float()


def smogn_oversample(
    x: torch.Tensor,
    y: torch.Tensor,
    generator: torch.Generator,
    *,
    bins: int = 32,
    rare_threshold: float = 0.8,
    oversample: float = 1.0,
    k: int = 5,
    noise: float = 0.05,
    chunk: int = 4096,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SMOGN-like oversampling of the rare targets of ``y (N,)`` with features ``x (N, C)`` (standardised units).

    Rare rows: relevance φ(y) ≥ ``rare_threshold`` (see :func:`relevance`). Each rare row's ``k`` nearest rare
    neighbours (Euclidean in the joint ``(x, y)`` space, restricted to the same contiguous run of rare histogram
    bins, found with ``torch.cdist`` in chunks of ``chunk`` rows) are the interpolation partners; ``round(oversample
    · n_rare)`` synthetic rows pick a seed rare row (cycling through them in a random order) and a random partner,
    interpolate ``seed + λ (partner − seed)`` with ``λ ~ U(0, 1)``, and add ``N(0, noise²)`` to every column. A
    rare row alone in its run is its own partner (the synthetic row is a noisy copy).

    Returns ``x_new (N + S, C)``, ``y_new (N + S,)`` (the original rows first, then the S synthetic ones) and the
    boolean mask ``(N,)`` of the rare rows.
    """
    if not 0 <= rare_threshold <= 1 or oversample < 0 or k < 1 or noise < 0:
        raise ValidationError(
            f"bad SMOGN settings: rare_threshold={rare_threshold} (in [0, 1]), oversample={oversample} (>= 0), "
            f"k={k} (>= 1), noise={noise} (>= 0)"
        )
    idx, dens, _ = _histogram(y, bins)
    phi_bin = 1.0 - dens / dens.max()
    rare_bin = phi_bin >= rare_threshold
    rare = rare_bin[idx]
    n_rare = int(rare.sum())
    n_syn = round(oversample * n_rare)
    if n_rare == 0 or n_syn == 0:
        return x, y, rare
    # contiguous runs of rare bins: a new label starts at each rare bin whose left neighbour is not rare
    starts = rare_bin & ~torch.cat([torch.zeros(1, dtype=torch.bool), rare_bin[:-1]])
    run_of_bin = torch.cumsum(starts.long(), 0)
    rows = torch.nonzero(rare).squeeze(1)
    run = run_of_bin[idx[rows]]
    pts = torch.cat([x[rows], y[rows, None]], dim=1).float()
    kk = min(k, n_rare)
    neigh = torch.empty((n_rare, kk), dtype=torch.long)
    for s in range(0, n_rare, chunk):  # chunks of rows, vectorised within each chunk
        dist = torch.cdist(pts[s : s + chunk], pts)
        dist[run[s : s + chunk, None] != run[None, :]] = float("inf")
        dist[torch.arange(len(dist)), torch.arange(s, s + len(dist))] = float("inf")  # not itself
        d, j = torch.topk(dist, kk, dim=1, largest=False)
        own = torch.arange(s, s + len(dist))[:, None].expand_as(j)
        neigh[s : s + chunk] = torch.where(torch.isfinite(d), j, own)
    order = torch.randperm(n_rare, generator=generator)
    seed = order[torch.arange(n_syn) % n_rare]
    partner = neigh[seed, torch.randint(kk, (n_syn,), generator=generator)]
    lam = torch.rand((n_syn, 1), generator=generator)
    new = pts[seed] + lam * (pts[partner] - pts[seed])
    new = new + noise * torch.randn(new.shape, generator=generator)
    new = new.to(x.dtype)
    return torch.cat([x, new[:, :-1]]), torch.cat([y, new[:, -1]]), rare


@register_sampler
class RegressionSampler(JointSampler):
    """Independent per-property MLP regressions plus Gaussian residual scatter (see the module docstring).

    Hyper-parameters (defaults in :attr:`DEFAULTS`): ``hidden``, ``layers``, ``epochs``, ``batch_size``, ``lr``,
    ``weight_decay`` (as for ``gauss``); ``imbalance`` (``"none"``, ``"inverse_density"``, ``"smogn"``); ``bins``
    (histogram of the target density); ``max_weight`` (inverse-density clip ratio); ``rare_threshold``,
    ``oversample``, ``k``, ``noise`` (SMOGN).
    """

    method: ClassVar[str] = "regression"
    has_log_prob: ClassVar[bool] = False
    DEFAULTS: ClassVar[dict[str, Any]] = {
        **MLP_DEFAULTS,
        "imbalance": "none",
        "bins": 32,
        "max_weight": 10.0,
        "rare_threshold": 0.8,
        "oversample": 1.0,
        "k": 5,
        "noise": 0.05,
    }

    def __init__(self, condition_names: Sequence[str], target_names: Sequence[str], **hyper: Any) -> None:
        super().__init__(condition_names, target_names)
        self.hyper = check_hyper(self.method, self.DEFAULTS, hyper)
        if self.hyper["imbalance"] not in IMBALANCE_MODES:
            raise ValidationError(f"imbalance must be one of {list(IMBALANCE_MODES)}, got {self.hyper['imbalance']!r}")
        if self.hyper["rare_threshold"] > 1:
            raise ValidationError(f"rare_threshold must be in [0, 1], got {self.hyper['rare_threshold']}")
        self.nets: list[nn.Sequential] | None = None
        self.residual_std: torch.Tensor | None = None  # (D,) in standardised units

    def _build(self, generator: torch.Generator | None) -> nn.Sequential:
        return make_mlp(len(self.condition_names), 1, self.hyper["hidden"], self.hyper["layers"], generator)

    @staticmethod
    def _mse(out: torch.Tensor, yb: torch.Tensor, wb: torch.Tensor) -> torch.Tensor:
        return (wb * (out[:, 0] - yb) ** 2).mean()

    def _fit(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator, progress: Progress | None) -> None:
        h = self.hyper
        nets, stds = [], []
        for d in range(y.shape[1]):
            xd, yd, w = x, y[:, d], None
            if h["imbalance"] == "inverse_density":
                w = inverse_density_weights(yd, h["bins"], h["max_weight"])
            elif h["imbalance"] == "smogn":
                xd, yd, _ = smogn_oversample(
                    x,
                    yd,
                    generator,
                    bins=h["bins"],
                    rare_threshold=h["rare_threshold"],
                    oversample=h["oversample"],
                    k=h["k"],
                    noise=h["noise"],
                )
            net = self._build(generator)
            train_mlp(net, self._mse, xd, yd, w, h, generator, progress, step0=d * h["epochs"])
            with torch.no_grad():
                resid = y[:, d] - net(x)[:, 0]
            stds.append(resid.double().pow(2).mean().sqrt().float())
            nets.append(net)
        self.nets = nets
        self.residual_std = torch.stack(stds)

    def predict(self, halo_props: torch.Tensor) -> torch.Tensor:
        """The point estimate ``(M, D)`` (regression means) in the units of the galaxy properties."""
        self._require_fitted()
        assert self.x_scaler is not None and self.y_scaler is not None
        x = self.x_scaler.forward(check_matrix("halo_props", halo_props, self.condition_names).float())
        return self.y_scaler.inverse(self._means(x))

    def _means(self, x: torch.Tensor) -> torch.Tensor:
        assert self.nets is not None
        with torch.no_grad():
            return torch.cat([net(x) for net in self.nets], dim=1)

    def _sample(self, x: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
        assert self.residual_std is not None
        mu = self._means(x)
        eps = torch.randn((n, *mu.shape), generator=generator, dtype=mu.dtype)
        return mu + eps * self.residual_std.to(mu)

    def state_dict(self) -> dict[str, Any]:
        if self.nets is None or self.residual_std is None:
            raise ValidationError("the 'regression' sampler is not fitted")
        return {
            "nets": [{k: v.detach().clone() for k, v in net.state_dict().items()} for net in self.nets],
            "residual_std": self.residual_std.clone(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        states = list(state["nets"])
        if len(states) != len(self.target_names):
            raise ArtifactError(f"state holds {len(states)} networks for {len(self.target_names)} galaxy properties")
        nets = []
        for s in states:
            net = self._build(None)
            net.load_state_dict(dict(s))
            net.eval()
            nets.append(net)
        self.nets = nets
        self.residual_std = torch.as_tensor(state["residual_std"]).float()
