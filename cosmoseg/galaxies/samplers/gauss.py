"""NN Gaussian sampler: an MLP predicts a full multivariate normal p(galaxy | halo) (Abramo et al., "NNGauss").

For standardised halo properties ``x (N, C)`` the network returns the mean ``mu (N, D)`` and the lower-triangular
Cholesky factor ``L (N, D, D)`` of the covariance ``Sigma = L Lᵀ`` of the standardised galaxy properties. The
diagonal of ``L`` goes through ``softplus`` plus a small floor (``min_scale``), so ``Sigma`` is always positive
definite; the strictly lower entries are free. Training minimises the full Gaussian negative log-likelihood

    -log N(y | mu, L Lᵀ) = ½ |L⁻¹ (y - mu)|² + Σ_i log L_ii + (D/2) log 2π

with Adam on mini-batches drawn with the caller's generator (which also draws the initial weights), so a fit is
deterministic under the generator. Draws are ``mu + L ε`` with ``ε ~ N(0, I)``; unlike independent per-property
regressions the draws keep the correlations between galaxy properties (a single Gaussian per halo, though: a
multi-modal or strongly skewed p(galaxy | halo) is smoothed into its best Gaussian).

The MLP helpers :func:`make_mlp` / :func:`train_mlp` are shared with :mod:`.regression`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from cosmoseg.errors import ValidationError
from cosmoseg.galaxies.samplers.base import JointSampler, Progress, check_matrix, rank_rows, register_sampler
from cosmoseg.nn.distributed import data_parallel, mean_over_ranks

__all__ = ["GaussianSampler", "check_hyper", "make_mlp", "train_mlp"]

MLP_DEFAULTS: dict[str, Any] = {
    "hidden": 64,
    "layers": 2,
    "epochs": 200,
    "batch_size": 256,
    "lr": 1e-3,
    "weight_decay": 0.0,
}
"""Hyper-parameters of the MLP and its training shared by the NN samplers."""


def check_hyper(method: str, defaults: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """``defaults`` updated with ``given``; unknown names and bad values are one `ValidationError`."""
    problems = []
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        problems.append(f"unknown {method!r} hyper-parameter(s) {unknown}; known: {sorted(defaults)}")
    hyper = {**defaults, **{k: v for k, v in given.items() if k in defaults}}
    for name, value in hyper.items():
        default = defaults[name]
        if isinstance(default, (bool, str)):
            if not isinstance(value, type(default)):
                problems.append(f"hyper-parameter {name!r} must be a {type(default).__name__}, got {value!r}")
        elif isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "layers" else 1):
                problems.append(f"hyper-parameter {name!r} must be a positive integer, got {value!r}")
        elif isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                problems.append(f"hyper-parameter {name!r} must be a finite number >= 0, got {value!r}")
            else:
                hyper[name] = float(value)
    if problems:
        raise ValidationError(problems)
    return hyper


def make_mlp(
    n_in: int, n_out: int, hidden: int, layers: int, generator: torch.Generator | None = None
) -> nn.Sequential:
    """A ``Linear-SiLU`` stack ``(B, n_in) -> (B, n_out)`` with ``layers`` hidden layers of width ``hidden``.

    With ``generator`` the weights are drawn from it (uniform in ±1/√fan_in, PyTorch's default range), so the
    initialisation is reproducible without touching the global RNG; the last layer starts at 1/10 that range so the
    initial outputs are close to zero (mean 0, unit scale in standardised units).
    """
    widths = [n_in, *([hidden] * layers), n_out]
    mods: list[nn.Module] = []
    for i in range(len(widths) - 1):
        mods.append(nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            mods.append(nn.SiLU())
    net = nn.Sequential(*mods)
    if generator is not None:
        linears = [m for m in net if isinstance(m, nn.Linear)]
        with torch.no_grad():
            for j, lin in enumerate(linears):
                bound = 1.0 / math.sqrt(lin.in_features) * (0.1 if j == len(linears) - 1 else 1.0)
                for p in (lin.weight, lin.bias):
                    p.copy_((torch.rand(p.shape, generator=generator) * 2 - 1) * bound)
    return net


def train_mlp(
    net: nn.Module,
    loss_fn: Callable[[Any, torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    weights: torch.Tensor | None,
    hyper: Mapping[str, Any],
    generator: torch.Generator,
    progress: Progress | None = None,
    step0: int = 0,
) -> float:
    """Adam on shuffled mini-batches of ``x (N, C)``, ``y (N, D)``, per-row ``weights (N,)`` (or ``None``: all 1).

    ``loss_fn(net(x_b), y_b, w_b)`` returns a scalar, a mean over the rows. ``progress(step0 + epoch, mean epoch
    loss)`` after each epoch. Returns the last epoch's mean loss. Under a process group ``net`` runs data-parallel
    on each rank's share of every mini-batch (:func:`~cosmoseg.galaxies.samplers.base.rank_rows`); the epoch losses
    are the global ones.
    """
    opt = torch.optim.Adam(net.parameters(), lr=hyper["lr"], weight_decay=hyper["weight_decay"])
    n = len(x)
    w = torch.ones(n, dtype=x.dtype) if weights is None else weights.to(x.dtype)
    bs = min(int(hyper["batch_size"]), n)
    last = float("nan")
    net.train()
    network = data_parallel(net)
    for epoch in range(int(hyper["epochs"])):
        perm = torch.randperm(n, generator=generator)
        total, count = 0.0, 0
        for start in range(0, n, bs):
            idx = perm[start : start + bs]
            rows, factor = rank_rows(idx)
            loss = loss_fn(network(x[rows]), y[rows], w[rows])
            if factor != 1.0:
                loss = loss * factor
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        last = mean_over_ranks(total) / count
        if not math.isfinite(last):
            raise ValidationError(f"training diverged at epoch {epoch} (loss {last}); lower 'lr'")
        if progress is not None:
            progress(step0 + epoch, last)
    net.eval()
    return last


@register_sampler
class GaussianSampler(JointSampler):
    """p(galaxy | halo) = N(mu(halo), L(halo) L(halo)ᵀ) with ``mu``, ``L`` from one MLP (see the module docstring).

    Hyper-parameters (defaults in :attr:`DEFAULTS`): ``hidden`` (width), ``layers`` (hidden layers), ``epochs``,
    ``batch_size``, ``lr``, ``weight_decay`` (Adam), ``min_scale`` (floor added to the Cholesky diagonal, in
    standardised units).
    """

    method: ClassVar[str] = "gauss"
    has_log_prob: ClassVar[bool] = True
    DEFAULTS: ClassVar[dict[str, Any]] = {**MLP_DEFAULTS, "min_scale": 1e-3}

    def __init__(self, condition_names: Sequence[str], target_names: Sequence[str], **hyper: Any) -> None:
        super().__init__(condition_names, target_names)
        self.hyper = check_hyper(self.method, self.DEFAULTS, hyper)
        d = len(self.target_names)
        self._rows, self._cols = torch.tril_indices(d, d)
        self.net: nn.Sequential | None = None

    def _build(self, generator: torch.Generator | None) -> nn.Sequential:
        d = len(self.target_names)
        n_out = d + d * (d + 1) // 2
        return make_mlp(len(self.condition_names), n_out, self.hyper["hidden"], self.hyper["layers"], generator)

    def _params(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean ``(N, D)`` and Cholesky factor ``(N, D, D)`` for standardised ``x (N, C)``."""
        assert self.net is not None
        d = len(self.target_names)
        out = self.net(x)
        mu, raw = out[:, :d], out[:, d:]
        flat = raw.new_zeros((len(x), d * d)).index_copy(1, self._rows * d + self._cols, raw)
        tril = flat.view(len(x), d, d)
        diag = nn.functional.softplus(torch.diagonal(tril, dim1=-2, dim2=-1)) + self.hyper["min_scale"]
        scale = torch.tril(tril, diagonal=-1) + torch.diag_embed(diag)
        return mu, scale

    @staticmethod
    def _nll(mu: torch.Tensor, scale: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``(N,)`` Gaussian negative log-likelihood of ``y (N, D)`` under N(mu, scale scaleᵀ)."""
        diff = (y - mu).unsqueeze(-1)
        white = torch.linalg.solve_triangular(scale, diff, upper=False).squeeze(-1)
        log_det = torch.log(torch.diagonal(scale, dim1=-2, dim2=-1)).sum(-1)
        return 0.5 * (white**2).sum(-1) + log_det + 0.5 * y.shape[-1] * math.log(2 * math.pi)

    def _fit(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator, progress: Progress | None) -> None:
        self.net = self._build(generator)

        def loss_fn(params: tuple[torch.Tensor, torch.Tensor], yb: torch.Tensor, wb: torch.Tensor) -> torch.Tensor:
            return (self._nll(params[0], params[1], yb) * wb).mean()

        # train_mlp sees one module returning (mu, L); its parameters are those of self.net.
        train_mlp(_ParamsModule(self), loss_fn, x, y, None, self.hyper, generator, progress)

    def _sample(self, x: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
        with torch.no_grad():
            mu, scale = self._params(x)
            eps = torch.randn((n, *mu.shape), generator=generator, dtype=mu.dtype)
            return mu + (scale @ eps.unsqueeze(-1)).squeeze(-1)

    def _log_prob(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            mu, scale = self._params(x)
            return -self._nll(mu, scale, y)

    def mean_and_cov(self, halo_props: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted mean ``(M, D)`` and covariance ``(M, D, D)`` in the units of the galaxy properties."""
        self._require_fitted()
        assert self.x_scaler is not None and self.y_scaler is not None
        x = check_matrix("halo_props", halo_props, self.condition_names)
        with torch.no_grad():
            mu, scale = self._params(self.x_scaler.forward(x.float()))
        s = self.y_scaler.std.to(mu)
        cov = (scale @ scale.transpose(-1, -2)) * s[:, None] * s[None, :]
        return self.y_scaler.inverse(mu), cov

    def state_dict(self) -> dict[str, Any]:
        if self.net is None:
            raise ValidationError("the 'gauss' sampler is not fitted")
        return {"net": {k: v.detach().clone() for k, v in self.net.state_dict().items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        net = self._build(None)
        net.load_state_dict(dict(state["net"]))
        net.eval()
        self.net = net


class _ParamsModule(nn.Module):
    """Adapter: ``x -> (mu, L)`` of a :class:`GaussianSampler`, exposing its network's parameters to Adam."""

    def __init__(self, sampler: GaussianSampler) -> None:
        super().__init__()
        assert sampler.net is not None
        self.net = sampler.net
        self._sampler = [sampler]  # a list: not registered as a sub-module

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        return self._sampler[0]._params(x)
