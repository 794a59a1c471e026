"""dm2gal weighted sampling: inverse-count weights over all samples, a sampler that reaches every sample."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from cosmoseg.errors import ValidationError
from cosmoseg.paint.sampling import WeightedSampler, mass_bin_index, mass_bin_weights

N = 100_000
LOG_LO, LOG_HI = 8.0, 11.5


def steep_masses(n: int = N, slope: float = 0.6, seed: int = 0) -> torch.Tensor:
    """(n,) M* [Msun/h] with dn/dlog M ∝ M^-slope in [1e8, 10^11.5], sorted ascending: the rare massive ones last."""
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(n, generator=g, dtype=torch.float64)
    a, b = 10.0 ** (-slope * LOG_LO), 10.0 ** (-slope * LOG_HI)
    log_m = -torch.log10(a + u * (b - a)) / slope
    return torch.sort(10.0**log_m).values


def test_bin_index_edges_and_out_of_range() -> None:
    m = torch.tensor([0.0, 1.0, 1e8, 10**8.0349, 10**8.0351, 10**11.49, 10**11.5, 1e13])
    idx = mass_bin_index(m)
    assert idx.tolist() == [0, 0, 0, 0, 1, 99, 99, 99]
    assert mass_bin_index(torch.tensor([1e9, 1e10]), n_bins=2, lo=1e8, hi=1e12).tolist() == [0, 1]


def test_weights_are_inverse_counts_over_all_samples() -> None:
    m = steep_masses()
    w = mass_bin_weights(m)
    idx = mass_bin_index(m)
    counts = torch.bincount(idx, minlength=100)
    assert w.shape == (N,) and w.dtype == torch.float64 and bool((w > 0).all())
    assert torch.allclose(w, 1.0 / counts[idx].double())
    per_bin = torch.zeros(100, dtype=torch.float64).index_add_(0, idx, w)
    assert torch.allclose(per_bin[counts > 0], torch.ones(int((counts > 0).sum()), dtype=torch.float64))
    assert counts[0] > 30 * counts[-1] > 0  # steep enough to matter; every bin occupied


def test_weighted_sampler_draws_every_sample_and_flattens_mass_histogram() -> None:
    m = steep_masses()
    sampler = WeightedSampler.from_masses(m, seed=3)
    p = sampler.probabilities
    assert bool((p > 0).all()) and math.isclose(float(p.sum()), 1.0, rel_tol=1e-12)

    drawn = torch.tensor(list(sampler))
    assert drawn.shape == (N,) and int(drawn.min()) >= 0 and int(drawn.max()) < N
    # the published sampler never got past index 40 000; here the last 10% (the most massive) are drawn, and
    # a 10% index slice gets its share (about 1/10 of the draws land in the rarest top bins' part of the array)
    assert int((drawn >= 9 * N // 10).sum()) > 0
    assert int((drawn >= 40_000).sum()) > 0.5 * N
    # every index is reachable: across a few epochs, a large share of all indices turns up, the last ones too
    seen = torch.zeros(N, dtype=torch.bool)
    for epoch in range(5):
        seen[sampler.draw(epoch)] = True
    assert bool(seen[-1000:].all())

    hist = torch.bincount(mass_bin_index(m[drawn]), minlength=100).double()
    expected = torch.full_like(hist, N / 100)
    chi2 = float(((hist - expected) ** 2 / expected).sum())
    assert stats.chi2.sf(chi2, df=99) > 1e-3
    raw = torch.bincount(mass_bin_index(m), minlength=100).double()
    assert raw.max() / raw.min() > 30 and hist.max() / hist.min() < 1.5


def test_sampler_is_deterministic_and_epochs_differ() -> None:
    w = mass_bin_weights(steep_masses(2000))
    a = WeightedSampler(w, 500, seed=11)
    b = WeightedSampler(w, 500, seed=11)
    first_a, first_b = list(a), list(b)
    assert first_a == first_b and len(first_a) == len(a) == 500
    second_a = list(a)
    assert second_a != first_a  # the internal counter moved to epoch 1
    b.set_epoch(1)
    assert list(b) == second_a
    b.set_epoch(0)
    assert list(b) == first_a
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert list(WeightedSampler(w, generator=g1)) == list(WeightedSampler(w, generator=g2))
    assert list(WeightedSampler(w, 500, seed=12)) != first_a


def test_zero_weights_are_never_drawn() -> None:
    w = torch.tensor([0.0, 1.0, 0.0, 3.0, 0.0])
    idx = WeightedSampler(w, 4000, seed=0).draw()
    assert set(idx.tolist()) == {1, 3}
    assert 0.70 < float((idx == 3).double().mean()) < 0.80


@pytest.mark.parametrize(
    ("mstar", "kwargs", "needle"),
    [
        (torch.zeros(0), {}, "non-empty"),
        (torch.ones(3, 2), {}, "non-empty 1D"),
        (torch.tensor([1e9, float("nan")]), {}, "non-finite"),
        (torch.tensor([1e9, -1.0]), {}, "negative"),
        (torch.tensor([1, 2]), {}, "floating point"),
        (torch.ones(3), {"n_bins": 0}, "n_bins"),
        (torch.ones(3), {"lo": 1e11, "hi": 1e9}, "lo must be below hi"),
        (torch.ones(3), {"lo": 0.0}, "lo must be"),
    ],
)
def test_bad_masses_and_bins_raise(mstar: torch.Tensor, kwargs: dict, needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        mass_bin_weights(mstar, **kwargs)


def test_bad_sampler_inputs_raise_all_at_once() -> None:
    with pytest.raises(ValidationError) as info:
        WeightedSampler(torch.tensor([1.0, float("nan"), -1.0]), 0, seed=1, generator=torch.Generator())
    text = str(info.value)
    for needle in ("non-finite", "negative", "num_samples", "not both"):
        assert needle in text
    with pytest.raises(ValidationError, match="all zero"):
        WeightedSampler(torch.zeros(4))
    with pytest.raises(ValidationError, match="non-empty"):
        WeightedSampler(torch.zeros(0))
    with pytest.raises(ValidationError, match="epoch"):
        WeightedSampler(torch.ones(4)).set_epoch(-1)
