"""FlowSampler (conditional spline flow) and HiValSampler (HiVAl classes + classifier) on synthetic data.

Truth: x ~ U[11, 14]; y1 = 0.8 (x - 12) + 10 + N(0, 0.2); y2 = -0.5 y1 + 1 + N(0, 0.1). Given x:
E[y1] = 0.8 (x - 12) + 10, sd(y1) = 0.2, E[y2] = -0.5 E[y1] + 1, sd(y2) = sqrt(0.02), corr = -1 / sqrt(2).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from cosmoseg.galaxies.samplers import load_sampler
from cosmoseg.galaxies.samplers.flow import FlowSampler
from cosmoseg.galaxies.samplers.hival import HiValSampler, hival_partition, min_class_size
from cosmoseg.nn.flows import build_nflows_transform

SD1, SD2, CORR = 0.2, math.sqrt(0.02), -1 / math.sqrt(2)
FLOW_HYPER = {"layers": 2, "hidden_features": 32, "bins": 8, "epochs": 60, "batch_size": 256, "lr": 3e-3}
HIVAL_HYPER = {"n_classes": 60, "epochs": 40, "batch_size": 256, "lr": 3e-3, "hidden_features": 32}


def synthetic(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = 11 + 3 * torch.rand((n, 1), generator=g)
    y1 = 0.8 * (x - 12) + 10 + SD1 * torch.randn((n, 1), generator=g)
    y2 = -0.5 * y1 + 1 + 0.1 * torch.randn((n, 1), generator=g)
    return x, torch.cat([y1, y2], 1)


def true_log_prob(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    m1 = 0.8 * (x[:, 0] - 12) + 10
    m2 = -0.5 * y[:, 0] + 1
    normal = torch.distributions.Normal
    return normal(m1, SD1).log_prob(y[:, 0]) + normal(m2, 0.1).log_prob(y[:, 1])


def check_conditionals(sampler, mean_tol: float, sd_rtol: float, corr_tol: float) -> None:
    xs = torch.tensor([[11.5], [12.5], [13.5]])
    draws = sampler.sample(xs, n=3000, generator=torch.Generator().manual_seed(3))  # (n, 3, 2)
    assert draws.shape == (3000, 3, 2)
    for j, x in enumerate(xs[:, 0].tolist()):
        y = draws[:, j].double()
        m1 = 0.8 * (x - 12) + 10
        assert abs(float(y[:, 0].mean()) - m1) < mean_tol
        assert abs(float(y[:, 1].mean()) - (-0.5 * m1 + 1)) < mean_tol
        assert abs(float(y[:, 0].std()) / SD1 - 1) < sd_rtol
        assert abs(float(y[:, 1].std()) / SD2 - 1) < sd_rtol
        corr = float(torch.corrcoef(y.T)[0, 1])
        assert abs(corr - CORR) < corr_tol


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny networks: one intra-op thread is much faster than two contended ones on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    return synthetic(4000, seed=1)


@pytest.fixture(scope="module")
def flow(data) -> FlowSampler:
    x, y = data
    return FlowSampler(["mass"], ["y1", "y2"], **FLOW_HYPER).fit(x, y, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def hival(data) -> HiValSampler:
    x, y = data
    return HiValSampler(["mass"], ["y1", "y2"], **HIVAL_HYPER).fit(x, y, generator=torch.Generator().manual_seed(0))


# ---- nflows transforms ------------------------------------------------------------------------------------------
def test_nflows_spline_transform_inverse_and_logdet() -> None:
    """The exact transforms the flow uses: inverse(forward(y)) == y and log-det == log|det| of a FD Jacobian."""
    torch.manual_seed(0)
    d, c = 3, 2
    t = build_nflows_transform(d, c, layers=3, hidden_features=16, bins=6, tail_bound=3.0).double().eval()
    y = 2.0 * torch.randn(64, d, dtype=torch.float64)  # some points beyond the tail bound (linear tails)
    ctx = torch.randn(64, c, dtype=torch.float64)
    with torch.no_grad():
        z, logdet = t(y, context=ctx)
        back, inv_logdet = t.inverse(z, context=ctx)
    assert torch.allclose(back, y, atol=1e-8)
    assert torch.allclose(inv_logdet, -logdet, atol=1e-8)
    eps = 1e-6
    for row in range(4):
        yi, ci = y[row : row + 1], ctx[row : row + 1]
        jac = torch.zeros(d, d, dtype=torch.float64)
        for k in range(d):
            step = torch.zeros_like(yi)
            step[0, k] = eps
            with torch.no_grad():
                jac[:, k] = ((t(yi + step, context=ci)[0] - t(yi - step, context=ci)[0]) / (2 * eps))[0]
        assert abs(float(torch.linalg.slogdet(jac)[1]) - float(logdet[row])) < 1e-5


# ---- flow ---------------------------------------------------------------------------------------------------------
def test_flow_recovers_conditional_distribution(flow) -> None:
    check_conditionals(flow, mean_tol=0.06, sd_rtol=0.2, corr_tol=0.12)


def test_flow_log_prob_close_to_truth(flow) -> None:
    x, y = synthetic(3000, seed=9)
    model, truth = flow.log_prob(x, y), true_log_prob(x, y)
    assert model.shape == (3000,)
    assert torch.isfinite(model).all()
    assert abs(float(model.mean()) - float(truth.mean())) < 0.12


def test_flow_save_load_round_trip(flow, tmp_path: Path) -> None:
    path = flow.save(tmp_path / "flow.pt", card={"data": "synthetic"})
    again = load_sampler(path, condition_names=["mass"], target_names=["y1", "y2"])
    assert isinstance(again, FlowSampler)
    xs = torch.tensor([[11.2], [13.1]])
    a = flow.sample(xs, n=5, generator=torch.Generator().manual_seed(11))
    b = again.sample(xs, n=5, generator=torch.Generator().manual_seed(11))
    assert torch.equal(a, b)
    x, y = synthetic(50, seed=2)
    assert torch.equal(flow.log_prob(x, y), again.log_prob(x, y))


def test_flow_fit_and_sample_are_deterministic(data) -> None:
    x, y = data[0][:300], data[1][:300]
    hyper = {**FLOW_HYPER, "epochs": 2}
    a = FlowSampler(["mass"], ["y1", "y2"], **hyper).fit(x, y, generator=torch.Generator().manual_seed(5))
    b = FlowSampler(["mass"], ["y1", "y2"], **hyper).fit(x, y, generator=torch.Generator().manual_seed(5))
    xs = x[:4]
    assert torch.equal(
        a.sample(xs, n=3, generator=torch.Generator().manual_seed(1)),
        b.sample(xs, n=3, generator=torch.Generator().manual_seed(1)),
    )


def test_flow_reverse_direction_galaxy_to_halo(data) -> None:
    """Same class, roles swapped: p(x | y1, y2). Given y1 = 10 (mid-range), x ~ 12 with sd ~ 0.2 / 0.8 = 0.25."""
    x, y = data
    rev = FlowSampler(["y1", "y2"], ["mass"], **FLOW_HYPER).fit(y, x, generator=torch.Generator().manual_seed(0))
    cond = torch.tensor([[10.0, -4.0]])
    draws = rev.sample(cond, n=3000, generator=torch.Generator().manual_seed(4))
    assert draws.shape == (3000, 1, 1)
    assert abs(float(draws.mean()) - 12.0) < 0.08
    assert abs(float(draws.std()) / 0.25 - 1) < 0.3
    assert rev.log_prob(cond, torch.tensor([[12.0]])).shape == (1,)


def test_flow_zuko_backend(data) -> None:
    pytest.importorskip("zuko")
    x, y = data[0][:500], data[1][:500]
    s = FlowSampler(["mass"], ["y1", "y2"], backend="zuko", layers=2, hidden_features=16, epochs=2)
    s.fit(x, y)
    a = s.sample(x[:3], n=2, generator=torch.Generator().manual_seed(1))
    b = s.sample(x[:3], n=2, generator=torch.Generator().manual_seed(1))
    assert a.shape == (2, 3, 2) and torch.equal(a, b)
    assert torch.isfinite(s.log_prob(x[:10], y[:10])).all()


# ---- HiVAl --------------------------------------------------------------------------------------------------------
def test_hival_partition_covers_data_and_merges_hull() -> None:
    from scipy.spatial import ConvexHull

    y = np.random.default_rng(0).normal(size=(3000, 2))
    y[:5] *= 6  # a few far outliers on the hull
    labels = hival_partition(y, 50, k_neighbors=10)
    assert labels.shape == (3000,)
    counts = np.bincount(labels)
    assert len(counts) == 50 and counts.sum() == 3000  # each point in exactly one of exactly n_classes classes
    floor = min_class_size(3000, 50)
    assert floor >= 2 and counts.min() >= floor
    hull = ConvexHull(y).vertices
    assert counts[labels[hull]].min() >= floor  # hull points are not left as single-galaxy classes


def test_hival_partition_with_seeds_in_five_dimensions() -> None:
    y = np.random.default_rng(1).normal(size=(5000, 5))
    labels = hival_partition(y, 40, k_neighbors=8, max_seeds=1000, seed=3)
    counts = np.bincount(labels)
    assert len(counts) == 40 and counts.min() >= min_class_size(1000, 40)


def test_hival_state_partitions_training_rows(hival, data) -> None:
    counts = torch.bincount(hival.labels)
    assert len(counts) == HIVAL_HYPER["n_classes"] and int(counts.sum()) == len(data[0])
    assert torch.equal(hival.offsets[1:] - hival.offsets[:-1], counts)
    assert int(counts.min()) >= max(2, min_class_size(len(data[0]), HIVAL_HYPER["n_classes"]))


def test_hival_recovers_conditional_distribution(hival) -> None:
    check_conditionals(hival, mean_tol=0.08, sd_rtol=0.35, corr_tol=0.25)


def test_hival_samples_are_not_training_copies(hival, data) -> None:
    draws = hival.sample(torch.tensor([[12.0]]), n=200, generator=torch.Generator().manual_seed(2))[:, 0]
    dist = torch.cdist(draws.double(), data[1].double(), compute_mode="donot_use_mm_for_euclid_dist").min(1).values
    assert float(dist.min()) > 0


def test_hival_save_load_round_trip(hival, tmp_path: Path) -> None:
    path = hival.save(tmp_path / "hival.pt")
    again = load_sampler(path, condition_names=["mass"], target_names=["y1", "y2"])
    assert isinstance(again, HiValSampler)
    xs = torch.tensor([[11.2], [13.1]])
    a = hival.sample(xs, n=7, generator=torch.Generator().manual_seed(11))
    b = again.sample(xs, n=7, generator=torch.Generator().manual_seed(11))
    assert torch.equal(a, b)
    with pytest.raises(NotImplementedError):
        again.log_prob(xs, torch.zeros(2, 2))


@pytest.mark.parametrize(
    ("features", "context", "layers", "hidden", "blocks", "bins", "chunk"),
    [(3, 2, 3, 16, 1, 5, 1000), (5, 5, 2, 24, 2, 8, 128), (1, 2, 2, 8, 2, 4, 4096), (2, 1, 1, 4, 0, 3, 77)],
)
def test_fast_inverse_equals_nflows_inverse(features, context, layers, hidden, blocks, bins, chunk) -> None:
    """The sampler's inverse (degree-ordered MADE, one spline per coordinate, threaded chunks) is nflows' inverse."""
    from cosmoseg.nn.flow_inverse import FastSplineInverse
    from cosmoseg.nn.flows import build_nflows_transform

    torch.manual_seed(features + blocks)
    transform = build_nflows_transform(
        features, context, layers=layers, hidden_features=hidden, num_blocks=blocks, bins=bins, tail_bound=3.0
    )
    for p in transform.parameters():  # away from the identity initialisation
        p.data.add_(0.3 * torch.randn_like(p))
    # float64: the algorithm, not float32 rounding (steep spline bins make float32 inverses ill-conditioned)
    transform = transform.double()
    z = 1.5 * torch.randn(2000, features, dtype=torch.float64)  # some beyond the tail bound
    ctx = torch.randn(2000, context, dtype=torch.float64)
    with torch.no_grad():
        expected, _ = transform.inverse(z, context=ctx)
    got = FastSplineInverse(transform)(z, ctx, chunk=chunk)
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)


def test_spline_inverse_rows_inverts_nflows_spline() -> None:
    """rq_spline_inverse_rows undoes nflows' forward spline, inside the bound and on the linear tails."""
    from nflows.transforms.splines import unconstrained_rational_quadratic_spline

    from cosmoseg.nn.flow_inverse import rq_spline_inverse_rows

    g = torch.Generator().manual_seed(4)
    m, k = 5000, 6
    w, h = (3 * torch.randn(m, k, generator=g, dtype=torch.float64) for _ in range(2))
    d = torch.randn(m, k - 1, generator=g, dtype=torch.float64)
    x = torch.linspace(-2.5, 2.5, m, dtype=torch.float64)
    z, _ = unconstrained_rational_quadratic_spline(
        x, w, h, d, inverse=False, tails="linear", tail_bound=2.0, min_bin_width=1e-3, min_bin_height=1e-3,
        min_derivative=1e-3,
    )  # fmt: skip
    back = rq_spline_inverse_rows(
        z, w.T.contiguous(), h.T.contiguous(), d.T.contiguous(), tail_bound=2.0, min_bin_width=1e-3,
        min_bin_height=1e-3, min_derivative=1e-3,
    )  # fmt: skip
    torch.testing.assert_close(back, x, rtol=0, atol=1e-9)
    outside = x.abs() > 2.0
    assert outside.any() and torch.equal(back[outside], z[outside])
