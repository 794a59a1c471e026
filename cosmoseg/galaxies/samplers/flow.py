"""Conditional spline-autoregressive normalizing flow for p(galaxy properties | halo properties).

:class:`FlowSampler` (method ``"flow"``) stacks ``layers`` masked piecewise rational-quadratic autoregressive
transforms (Durkan et al. 2019, "Neural Spline Flows") with a reversal of the feature order between consecutive
layers, over a standard normal base in the D standardised galaxy properties; every layer's MADE network also sees the
C standardised halo properties (``context_features = C``). The density is exact, so :meth:`log_prob` is available.

Backends (hyper ``backend``):

* ``"nflows"`` (default): ``nflows.transforms.autoregressive.MaskedPiecewiseRationalQuadraticAutoregressiveTransform``
  with linear tails outside ``[-tail_bound, tail_bound]`` and ``nflows.transforms.ReversePermutation`` — only these
  two transforms, a ``CompositeTransform`` and the ``StandardNormal`` base are used. nflows 0.14 is unmaintained and
  its LU / SVD / QR linear transforms call torch APIs that current torch removed (``torch.triangular_solve``,
  ``torch.solve`` ...), so they are deliberately not used.
* ``"zuko"``: ``zuko.flows.NSF`` with ``context = C`` (optional dependency, imported only when asked for; its spline
  bound is zuko's own, ``tail_bound`` is ignored).

Sampling is deterministic under a ``torch.Generator``: the base noise is drawn from the generator and pushed through
the inverse transform (nflows' own ``Flow.sample`` would use the global RNG); the inverse is
:class:`~cosmoseg.nn.flow_inverse.FastSplineInverse`, equal to nflows' and about 20x faster. The same
class also learns the reverse direction (galaxy → halo): pass the galaxy properties as ``condition_names`` and the
halo properties as ``target_names`` (``cosmoseg galaxies train --reverse``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from cosmoseg.errors import ValidationError
from cosmoseg.galaxies.samplers.base import JointSampler, Progress, rank_rows, register_sampler
from cosmoseg.nn.distributed import data_parallel, get_world_size, mean_over_ranks
from cosmoseg.nn.flow_inverse import FastSplineInverse
from cosmoseg.nn.flows import build_nflows_transform

__all__ = ["FlowSampler"]

DEFAULTS: dict[str, Any] = {
    "backend": "nflows",
    "layers": 4,
    "hidden_features": 32,
    "num_blocks": 1,
    "bins": 8,
    "tail_bound": 5.0,
    "epochs": 50,
    "batch_size": 512,
    "lr": 1e-3,
    "weight_decay": 0.0,
    "grad_clip": 5.0,
}
_CHUNK = 65536


@register_sampler
class FlowSampler(JointSampler):
    """Conditional neural spline flow (see the module docstring).

    Hyper-parameters (defaults in ``DEFAULTS``): ``backend`` ("nflows" | "zuko"), ``layers``, ``hidden_features``,
    ``num_blocks`` (residual blocks per MADE, nflows only), ``bins``, ``tail_bound`` (standardised units, nflows
    only), ``epochs``, ``batch_size``, ``lr``, ``weight_decay``, ``grad_clip`` (max gradient norm, 0 = off).
    """

    method = "flow"
    has_log_prob = True

    def __init__(self, condition_names: Any, target_names: Any, **hyper: Any) -> None:
        unknown = set(hyper) - set(DEFAULTS)
        if unknown:
            raise ValidationError(f"unknown flow hyper-parameter(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}")
        super().__init__(condition_names, target_names, **{**DEFAULTS, **hyper})
        if self.hyper["backend"] not in ("nflows", "zuko"):
            raise ValidationError(f"flow backend must be 'nflows' or 'zuko', got {self.hyper['backend']!r}")
        self.model: torch.nn.Module | None = None
        self._fast_inverse: FastSplineInverse | None = None  # built from the fitted weights on the first draw

    # ---- model ------------------------------------------------------------------------------------------
    def _build(self) -> torch.nn.Module:
        h, d, c = self.hyper, len(self.target_names), len(self.condition_names)
        if h["backend"] == "zuko":
            import zuko

            return zuko.flows.NSF(
                features=d,
                context=c,
                transforms=int(h["layers"]),
                bins=int(h["bins"]),
                hidden_features=[int(h["hidden_features"])] * 2,
            )
        return build_nflows_transform(
            d,
            c,
            layers=int(h["layers"]),
            hidden_features=int(h["hidden_features"]),
            num_blocks=int(h["num_blocks"]),
            bins=int(h["bins"]),
            tail_bound=float(h["tail_bound"]),
        )

    def _model_log_prob(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """log density (N,) of standardised y (N, D) given standardised x (N, C), in standardised units."""
        assert self.model is not None
        if self.hyper["backend"] == "zuko":
            return self.model(x).log_prob(y)
        noise, logdet = self.model(y, context=x)
        base = -0.5 * (noise**2).sum(1) - 0.5 * noise.shape[1] * math.log(2 * math.pi)
        return base + logdet

    def _model_inverse(self, noise: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        assert self.model is not None
        if self.hyper["backend"] == "zuko":
            return self.model(x).transform.inv(noise)
        if self._fast_inverse is None:
            self._fast_inverse = FastSplineInverse(self.model)
        return self._fast_inverse(noise, x)

    # ---- JointSampler -----------------------------------------------------------------------------------
    def _fit(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator, progress: Progress | None) -> None:
        h = self.hyper
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # network initialisation uses the global RNG: make it a function of `generator`
            self.model = self._build()
        opt = torch.optim.Adam(self.model.parameters(), lr=float(h["lr"]), weight_decay=float(h["weight_decay"]))
        n, bs = len(x), max(1, min(int(h["batch_size"]), len(x)))
        self.model.train()
        # under a process group the log density runs through DDP, each rank on its share of every mini-batch
        log_prob = data_parallel(_LogProb(self)) if get_world_size() > 1 else self._model_log_prob
        for epoch in range(int(h["epochs"])):
            order = torch.randperm(n, generator=generator)
            total = 0.0
            for start in range(0, n, bs):
                idx = order[start : start + bs]
                rows, factor = rank_rows(idx)
                loss = -log_prob(x[rows], y[rows]).mean()
                if factor != 1.0:
                    loss = loss * factor
                opt.zero_grad()
                loss.backward()
                if float(h["grad_clip"]) > 0:
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), float(h["grad_clip"]))
                opt.step()
                total += float(loss.detach()) * len(idx)
            total = mean_over_ranks(total)
            if progress is not None:
                progress(epoch, total / n)
        self.model.eval()
        self._fast_inverse = None

    def _sample(self, x: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
        m, d = len(x), len(self.target_names)
        noise = torch.randn((n * m, d), generator=generator)
        ctx = x.repeat(n, 1)  # row k*m + j is halo j of draw k
        if self.hyper["backend"] == "zuko":
            with torch.no_grad():
                out = [self._model_inverse(noise[s : s + _CHUNK], ctx[s : s + _CHUNK]) for s in range(0, n * m, _CHUNK)]
            return torch.cat(out).reshape(n, m, d)
        return self._model_inverse(noise, ctx).reshape(n, m, d)

    def _log_prob(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat(
                [self._model_log_prob(x[s : s + _CHUNK], y[s : s + _CHUNK]) for s in range(0, max(len(x), 1), _CHUNK)]
            )

    def state_dict(self) -> dict[str, Any]:
        if self.model is None:
            raise ValidationError("the flow sampler is not fitted")
        return {"model": {k: v.detach().clone() for k, v in self.model.state_dict().items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.model = self._build()
        self._fast_inverse = None
        self.model.load_state_dict(dict(state["model"]))
        self.model.eval()


class _LogProb(torch.nn.Module):
    """Adapter: ``(x (N, C), y (N, D)) -> (N,)`` standardised log density of a :class:`FlowSampler`, as a module
    whose ``forward`` DDP can wrap (its parameters are those of the sampler's flow)."""

    def __init__(self, sampler: FlowSampler) -> None:
        super().__init__()
        assert sampler.model is not None
        self.model = sampler.model
        self._sampler = [sampler]  # a list: not registered as a sub-module

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self._sampler[0]._model_log_prob(x, y)
