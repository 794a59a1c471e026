"""The graph network: invariance to node order, the moment-network loss, and a flow head calibrated on a toy
problem whose posterior is known."""

from __future__ import annotations

import pytest
import torch

from cosmoseg.infer.models import CosmoGNN, moment_loss

torch_geometric = pytest.importorskip("torch_geometric")
from torch_geometric.data import Batch, Data  # noqa: E402


def _random_graph(generator: torch.Generator, n: int = 30, node: int = 3, edge: int = 4) -> Data:
    edge_index = torch.randint(0, n, (2, 120), generator=generator)
    edge_index = edge_index[:, edge_index[0] != edge_index[1]]
    return Data(
        x=torch.randn((n, node), generator=generator),
        edge_index=edge_index,
        edge_attr=torch.randn((edge_index.shape[1], edge), generator=generator),
        u=torch.randn((1, 1), generator=generator),
    )


def _permuted(graph: Data, generator: torch.Generator) -> Data:
    """The same graph with its nodes renumbered and its edges reordered."""
    n = graph.x.shape[0]
    perm = torch.randperm(n, generator=generator)  # new node k is old node perm[k]
    new_id = torch.empty_like(perm)
    new_id[perm] = torch.arange(n)
    edge_order = torch.randperm(graph.edge_index.shape[1], generator=generator)
    return Data(
        x=graph.x[perm],
        edge_index=new_id[graph.edge_index[:, edge_order]],
        edge_attr=graph.edge_attr[edge_order],
        u=graph.u,
    )


@pytest.mark.parametrize("head", ["moments", "flow"])
def test_the_output_does_not_depend_on_the_order_of_nodes_and_edges(head: str) -> None:
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = CosmoGNN(3, 4, 1, [0.1, 0.6], [0.5, 1.0], hidden=16, head=head).eval()
    graphs = [_random_graph(generator) for _ in range(3)]
    shuffled = [_permuted(g, generator) for g in graphs]
    with torch.no_grad():
        a = model(Batch.from_data_list(graphs))
        b = model(Batch.from_data_list(shuffled))
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    if head == "moments":
        with torch.no_grad():
            mean, std = model.moments(Batch.from_data_list(graphs))
        assert mean.shape == (3, 2) and bool((std > 0).all())


def test_moment_loss_is_least_at_the_sample_mean_and_variance() -> None:
    """For a constant prediction and θ symmetric about its mean, the loss is least at μ = mean(θ) and
    σ² = mean((θ - μ)²) (hand-derived: d/dμ Σ(θ-μ)² = 0, d/dμ Σ((θ-μ)² - σ²)² = -4 Σ((θ-μ)² - σ²)(θ-μ) = 0 by the
    symmetry, d/dσ² Σ((θ-μ)² - σ²)² = 0)."""
    theta = torch.tensor([[0.1], [0.3], [0.5], [0.7], [0.35], [0.45]], dtype=torch.float64)  # symmetric
    mu = theta.mean()
    sigma = ((theta - mu) ** 2).mean().sqrt()
    best = moment_loss(torch.full_like(theta, float(mu)), torch.full_like(theta, float(sigma)), theta)
    for d_mu, d_sigma in [(0.02, 0.0), (-0.02, 0.0), (0.0, 0.02), (0.0, -0.02)]:
        mean = torch.full_like(theta, float(mu) + d_mu)
        std = torch.full_like(theta, float(sigma) + d_sigma)
        assert float(moment_loss(mean, std, theta)) > float(best)


def test_the_flow_head_is_calibrated_on_a_toy_with_a_known_posterior() -> None:
    """The head alone, given an embedding that holds θ plus Gaussian noise: the posterior is N(u, noise²) (the flat
    prior [-1, 1] much wider than the noise, truths kept 0.4 from its edges)."""
    noise, hidden = 0.08, 16
    generator = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    model = CosmoGNN(1, 1, 1, [-1.0, -1.0], [1.0, 1.0], hidden=hidden, layers=1, head="flow", flow_layers=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)  # only the head gets gradients

    def embed(theta: torch.Tensor) -> torch.Tensor:
        u = theta + noise * torch.randn(theta.shape, generator=generator)
        return torch.cat([u, torch.zeros((theta.shape[0], hidden - 2))], dim=1)

    for _ in range(400):
        theta = torch.rand((256, 2), generator=generator) * 1.6 - 0.8
        loss = model.head_loss(embed(theta), theta)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    theta = torch.rand((400, 2), generator=generator) * 1.2 - 0.6
    with torch.no_grad():
        samples = model.sample_given(embed(theta), 400, generator)
    std = samples.std(dim=1)
    assert abs(float(std.median()) / noise - 1) < 0.2
    # 68% central intervals of the samples hold the truth about 68% of the time (400 x 2 trials: σ ≈ 1.6%)
    lo, hi = samples.quantile(0.16, dim=1), samples.quantile(0.84, dim=1)
    covered = float(((theta > lo) & (theta < hi)).float().mean())
    assert abs(covered - 0.68) < 0.06


def test_bad_priors_and_heads_are_refused() -> None:
    with pytest.raises(ValueError, match="below"):
        CosmoGNN(1, 1, 1, [0.5], [0.1])
    with pytest.raises(ValueError, match="head"):
        CosmoGNN(1, 1, 1, [0.1], [0.5], head="gaussian")  # type: ignore[arg-type]
