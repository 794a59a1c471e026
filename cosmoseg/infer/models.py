"""Graph networks from a galaxy graph to the posterior of cosmological parameters.

:class:`CosmoGNN` is a stack of torch-geometric ``MetaLayer`` blocks (an edge model, then a node model that
aggregates the updated edges into each node by sum, max and mean), after CosmoGraphNet (Villanueva-Domingo &
Villaescusa-Navarro 2022) and de Santi et al. (2023); the nodes are pooled by sum, max and mean, joined with the global
feature ``u`` (log N), and an MLP gives an embedding ``h`` of the graph. Two heads read ``h``:

* ``"moments"``: the posterior mean and standard deviation of each parameter, trained with the moment-network loss of
  Jeffrey & Wandelt (2020) that the papers use, L = Σ_p log Σ_b (θ - μ)² + log Σ_b ((θ - μ)² - σ²)²;
* ``"flow"``: a conditional location-scale (an MLP of ``h``) followed by a conditional spline-autoregressive normalizing
  flow (:func:`cosmoseg.nn.flows.build_nflows_transform`) over the parameters given ``h``, trained by maximum
  likelihood, so full posteriors (samples) follow and coverage, TARP and SBC apply.

Parameters are standardised inside the model to the prior box: θ_s = (θ - centre) / half-width, so the heads see
values in [-1, 1]; every output is in the parameters' own units.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import nn

__all__ = ["CosmoGNN", "moment_loss"]

Head = Literal["moments", "flow"]


def _mlp(n_in: int, hidden: int, n_out: int, *, layers: int = 2) -> nn.Sequential:
    parts: list[nn.Module] = []
    width = n_in
    for _ in range(layers - 1):
        parts += [nn.Linear(width, hidden), nn.SiLU()]
        width = hidden
    parts.append(nn.Linear(width, n_out))
    return nn.Sequential(*parts)


class _EdgeModel(nn.Module):
    """e'_ij = e_ij + MLP([x_i, x_j, e_ij, u]) (a residual update once the widths agree)."""

    def __init__(self, node: int, edge: int, glob: int, hidden: int) -> None:
        super().__init__()
        self.mlp = _mlp(2 * node + edge + glob, hidden, hidden)
        self.residual = edge == hidden

    def forward(
        self, src: torch.Tensor, dst: torch.Tensor, edge_attr: torch.Tensor, u: torch.Tensor, batch: torch.Tensor
    ) -> torch.Tensor:
        out = self.mlp(torch.cat([dst, src, edge_attr, u[batch]], dim=1))
        return out + edge_attr if self.residual else out


class _NodeModel(nn.Module):
    """x'_i = x_i + MLP([x_i, Σ_j e'_ij, max_j e'_ij, mean_j e'_ij, u])."""

    def __init__(self, node: int, glob: int, hidden: int) -> None:
        super().__init__()
        self.mlp = _mlp(node + 3 * hidden + glob, hidden, hidden)
        self.residual = node == hidden

    def forward(
        self, x: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor, u: torch.Tensor, batch: torch.Tensor
    ) -> torch.Tensor:
        from torch_geometric.utils import scatter

        target, n = edge_index[1], x.shape[0]
        pooled = [scatter(edge_attr, target, dim=0, dim_size=n, reduce=r) for r in ("sum", "max", "mean")]
        out = self.mlp(torch.cat([x, *pooled, u[batch]], dim=1))
        return out + x if self.residual else out


class CosmoGNN(nn.Module):
    """Galaxy graph -> posterior of P parameters.

    node_features, edge_features, global_features: widths of ``x``, ``edge_attr`` and ``u`` of the graphs.
    prior_low, prior_high: (P,) the prior box of the parameters (their units), used to standardise them.
    hidden: width of every hidden layer; layers: message-passing blocks; head: "moments" or "flow".
    flow_layers, flow_bins: of the flow head.
    """

    def __init__(
        self,
        node_features: int,
        edge_features: int,
        global_features: int,
        prior_low: list[float],
        prior_high: list[float],
        *,
        hidden: int = 64,
        layers: int = 2,
        head: Head = "moments",
        flow_layers: int = 3,
        flow_bins: int = 8,
    ) -> None:
        super().__init__()
        from torch_geometric.nn import MetaLayer

        if len(prior_low) != len(prior_high) or not prior_low:
            raise ValueError(
                f"prior_low and prior_high must be two lists of the same length, got {prior_low}, {prior_high}"
            )
        if any(not lo < hi for lo, hi in zip(prior_low, prior_high, strict=True)):
            raise ValueError(f"every prior_low must be below its prior_high, got {prior_low}, {prior_high}")
        if head not in ("moments", "flow"):
            raise ValueError(f"head must be 'moments' or 'flow', got {head!r}")
        self.head_kind: Head = head
        self.n_params = len(prior_low)
        low, high = torch.tensor(prior_low, dtype=torch.float32), torch.tensor(prior_high, dtype=torch.float32)
        self.register_buffer("centre", (low + high) / 2)
        self.register_buffer("half_width", (high - low) / 2)
        blocks = []
        node, edge = node_features, edge_features
        for _ in range(layers):
            blocks.append(
                MetaLayer(_EdgeModel(node, edge, global_features, hidden), _NodeModel(node, global_features, hidden))
            )
            node = edge = hidden
        self.blocks = nn.ModuleList(blocks)
        self.embed = _mlp(3 * node + global_features, hidden, hidden, layers=3)
        if head == "moments":
            self.head = _mlp(hidden, hidden, 2 * self.n_params)
        else:
            from cosmoseg.nn.flows import build_nflows_transform

            # a conditional location and log-scale first, so the splines only model the posterior's shape
            self.location_scale = _mlp(hidden, hidden, 2 * self.n_params)
            self.head = build_nflows_transform(
                self.n_params, hidden, layers=flow_layers, hidden_features=hidden, bins=flow_bins, tail_bound=4.0
            )

    # ---- the graph embedding -----------------------------------------------------------------------------------
    def embedding(self, data: Any) -> torch.Tensor:
        """(G, hidden): one row per graph of the batch ``data`` (a torch-geometric ``Batch`` or ``Data``)."""
        from torch_geometric.nn import global_add_pool, global_max_pool, global_mean_pool

        x, edge_index, edge_attr, u = data.x, data.edge_index, data.edge_attr, data.u
        batch = data.batch if getattr(data, "batch", None) is not None else x.new_zeros(x.shape[0], dtype=torch.long)
        for block in self.blocks:
            x, edge_attr, u = block(x, edge_index, edge_attr, u, batch)
        size = u.shape[0]
        pooled = [pool(x, batch, size) for pool in (global_add_pool, global_max_pool, global_mean_pool)]
        # the sum grows with the number of galaxies: its log keeps the scale of a 10^5-galaxy catalog trainable
        pooled[0] = torch.sign(pooled[0]) * torch.log1p(pooled[0].abs())
        return self.embed(torch.cat([*pooled, u], dim=1))

    def standardise(self, theta: torch.Tensor) -> torch.Tensor:
        return (theta - self.centre) / self.half_width

    def unstandardise(self, theta_s: torch.Tensor) -> torch.Tensor:
        return theta_s * self.half_width + self.centre

    # ---- heads ------------------------------------------------------------------------------------------------
    def moments(self, data: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and standard deviation, each (G, P) in the parameters' units ("moments" head)."""
        if self.head_kind != "moments":
            raise ValueError("moments() needs the 'moments' head; this model has a flow: use sample()")
        mean_s, std_s = self._standardised_moments(self.embedding(data))
        return self.unstandardise(mean_s), std_s * self.half_width

    def _standardised_moments(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The moments head's mean and σ (G, P) of the standardised parameters given embeddings ``h``."""
        out = self.head(h)
        return out[:, : self.n_params], nn.functional.softplus(out[:, self.n_params :]) + 1e-4

    def forward(self, data: Any) -> torch.Tensor:
        """The graph embedding (G, hidden); :meth:`head_loss` turns it into the training loss."""
        return self.embedding(data)

    def head_loss(self, h: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """The training loss of a batch of embeddings ``h`` (G, hidden) with true parameters ``theta`` (G, P): the
        moment-network loss, or the flow's mean negative log posterior density (of the standardised parameters)."""
        theta_s = self.standardise(theta)
        if self.head_kind == "moments":
            return moment_loss(*self._standardised_moments(h), theta_s)
        return -self._flow_log_prob(theta_s, h).mean()

    def _location_scale(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.location_scale(h)
        return out[:, : self.n_params], out[:, self.n_params :].clamp(-8.0, 4.0)

    def _flow_log_prob(self, theta_s: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        location, log_scale = self._location_scale(h)
        residual = (theta_s - location) * torch.exp(-log_scale)
        noise, logabsdet = self.head(residual, context=h)
        base = -0.5 * (noise**2).sum(dim=1) - 0.5 * self.n_params * math.log(2 * math.pi)
        return base + logabsdet - log_scale.sum(dim=1)

    def log_prob(self, data: Any, theta: torch.Tensor) -> torch.Tensor:
        """(G,) log posterior density of ``theta`` (G, P) in the parameters' units ("flow" head)."""
        if self.head_kind != "flow":
            raise ValueError("log_prob() needs the 'flow' head")
        jacobian = torch.log(self.half_width).sum()
        return self._flow_log_prob(self.standardise(theta), self.embedding(data)) - jacobian

    def sample(self, data: Any, n_samples: int, generator: torch.Generator) -> torch.Tensor:
        """(G, S, P) posterior samples in the parameters' units ("flow" head)."""
        if self.head_kind != "flow":
            raise ValueError("sample() needs the 'flow' head; this model gives moments()")
        return self.sample_given(self.embedding(data), n_samples, generator)

    def sample_given(self, h: torch.Tensor, n_samples: int, generator: torch.Generator) -> torch.Tensor:
        """(G, S, P) samples of the flow head given graph embeddings ``h`` (G, hidden)."""
        from cosmoseg.nn.flows import nflows_inverse

        g = h.shape[0]
        noise = torch.randn((g * n_samples, self.n_params), generator=generator, device=h.device, dtype=h.dtype)
        context = h.repeat_interleave(n_samples, dim=0)
        location, log_scale = self._location_scale(context)
        theta_s = nflows_inverse(self.head, noise, context) * torch.exp(log_scale) + location
        return self.unstandardise(theta_s).reshape(g, n_samples, self.n_params)


def moment_loss(mean: torch.Tensor, std: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """The moment-network loss (Jeffrey & Wandelt 2020) of a batch: mean, std, theta (B, P).

    Σ_p [log Σ_b (θ - μ)² + log Σ_b ((θ - μ)² - σ²)²]: the first term makes μ the posterior mean, the second makes
    σ² the posterior variance; the logs balance the parameters' scales.
    """
    squared = (theta - mean) ** 2
    return (torch.log(squared.sum(dim=0)) + torch.log(((squared - std**2) ** 2).sum(dim=0))).sum()
