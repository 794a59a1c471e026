"""Two-sample metrics against SciPy, hand-computed values and distributions with known answers."""

import math

import pytest
import torch

from cosmoseg.measure.twosample import auc_score, average_ranks, c2st, energy_distance, ks_2samp, wasserstein_1d


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(("n", "m"), [(50, 50), (137, 61), (400, 1000)])
def test_ks_and_wasserstein_equal_scipy(n: int, m: int) -> None:
    stats = pytest.importorskip("scipy.stats")
    g = gen(n + m)
    a = torch.randn((n, 3), generator=g, dtype=torch.float64)
    b = 1.1 * torch.randn((m, 3), generator=g, dtype=torch.float64) + 0.1
    b[:, 2] = torch.round(b[:, 2] * 2) / 2  # ties within and across the samples
    a[:, 2] = torch.round(a[:, 2] * 2) / 2
    ks, w1 = ks_2samp(a, b), wasserstein_1d(a, b)
    for d in range(3):
        x, y = a[:, d].numpy(), b[:, d].numpy()
        ref = stats.ks_2samp(x, y, method="asymp")
        assert float(ks.statistic[d]) == pytest.approx(ref.statistic, abs=1e-10)
        assert float(ks.pvalue[d]) == pytest.approx(ref.pvalue, abs=1e-10)
        assert float(w1[d]) == pytest.approx(stats.wasserstein_distance(x, y), abs=1e-10)


def test_wasserstein_of_a_shift_and_ks_of_disjoint_samples() -> None:
    a = torch.randn(500, generator=gen(1), dtype=torch.float64)
    assert float(wasserstein_1d(a, a + 0.7)[0]) == pytest.approx(0.7, abs=1e-12)
    ks = ks_2samp(torch.arange(10.0), torch.arange(10.0) + 100)
    assert float(ks.statistic[0]) == 1.0 and float(ks.pvalue[0]) < 1e-4


def test_energy_distance_by_hand() -> None:
    # a = {0, 1}, b = {2}: 2 E|X-Y| = 2 * 1.5, E|X-X'| = 2/4, E|Y-Y'| = 0  ->  2.5
    assert energy_distance(torch.tensor([0.0, 1.0]), torch.tensor([2.0])).distance == pytest.approx(2.5)
    # 2-D: a = {(0,0), (3,4)}, b = {(0,0)}: 2 * 2.5 - 10/4 - 0 = 2.5
    a = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    assert energy_distance(a, torch.zeros((1, 2))).distance == pytest.approx(2.5)
    assert energy_distance(a, a).distance == pytest.approx(0.0, abs=1e-12)


def test_energy_distance_equals_scipy_squared_in_1d_and_chunking_changes_nothing() -> None:
    stats = pytest.importorskip("scipy.stats")
    g = gen(2)
    a = torch.randn(300, generator=g, dtype=torch.float64)
    b = 0.8 * torch.randn(170, generator=g, dtype=torch.float64) + 0.3
    ours = energy_distance(a, b).distance
    assert math.sqrt(ours) == pytest.approx(stats.energy_distance(a.numpy(), b.numpy()), rel=1e-10)
    assert energy_distance(a, b, chunk_elements=1000).distance == pytest.approx(ours, rel=1e-12)


def test_energy_permutation_test() -> None:
    g = gen(3)
    a = torch.randn((200, 2), generator=g, dtype=torch.float64)
    same = torch.randn((150, 2), generator=g, dtype=torch.float64)
    assert energy_distance(a, same + 0.5, n_permutations=99, generator=gen(0)).p_value == pytest.approx(0.01)
    result = energy_distance(a, same, n_permutations=99, generator=gen(0))
    assert result.p_value > 0.05 and result.n_permutations == 99


def test_average_ranks_and_auc_by_hand() -> None:
    assert average_ranks(torch.tensor([3.0, 1.0, 3.0, 2.0])).tolist() == [3.5, 1.0, 3.5, 2.0]
    # positives {0.35, 0.8} vs negatives {0.1, 0.4}: 3 of 4 pairs ordered -> 0.75
    result = auc_score(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1]))
    assert result.auc == pytest.approx(0.75)
    # positives {1, 1} vs negatives {1, 0}: each positive ties one negative (½) and beats the other (1)
    tied = auc_score(torch.tensor([1.0, 1.0, 0.0, 1.0]), torch.tensor([1, 0, 0, 1]))
    assert tied.auc == pytest.approx((0.5 + 1.0 + 0.5 + 1.0) / 4)


def test_delong_error_equals_the_pairwise_formula() -> None:
    g = gen(4)
    pos = torch.randn(30, generator=g, dtype=torch.float64) + 0.5
    neg = torch.round(torch.randn(40, generator=g, dtype=torch.float64) * 4) / 4
    scores, labels = torch.cat([pos, neg]), torch.cat([torch.ones(30), torch.zeros(40)]).bool()
    psi = (pos[:, None] > neg[None]).double() + 0.5 * (pos[:, None] == neg[None]).double()
    v10, v01 = psi.mean(dim=1), psi.mean(dim=0)
    expected = math.sqrt(float(v10.var()) / 30 + float(v01.var()) / 40)
    result = auc_score(scores, labels)
    assert result.auc == pytest.approx(float(psi.mean()), abs=1e-12)
    assert result.auc_err == pytest.approx(expected, rel=1e-10)


def test_hanley_mcneil_at_one_half_is_the_mann_whitney_null() -> None:
    scores = torch.tensor([0.0, 1.0, 0.0, 1.0, 2.0, 2.0])  # AUC exactly 0.5
    labels = torch.tensor([1, 1, 0, 0, 1, 0])
    result = auc_score(scores, labels, error="hanley-mcneil")
    assert result.auc == pytest.approx(0.5)
    assert result.auc_err == pytest.approx(math.sqrt(7 / (12 * 9)))
    assert result.p_value == pytest.approx(0.5)


@pytest.mark.parametrize("classifier", ["mlp", "knn"])
def test_c2st_of_one_distribution_is_chance_and_of_different_ones_is_one(classifier: str) -> None:
    g = gen(5)
    a, b = torch.randn((600, 3), generator=g), torch.randn((500, 3), generator=g)
    same = c2st(a, b, classifier=classifier, generator=gen(0))
    assert abs(same.auc - 0.5) < 3 * same.auc_err
    assert same.n_test == 550 and same.n_train == 550
    apart = c2st(a, b + 3.0, classifier=classifier, generator=gen(0))
    assert apart.auc > 0.97 and apart.accuracy > 0.9 and apart.p_value < 1e-10


@pytest.mark.parametrize("classifier", ["mlp", "knn"])
def test_c2st_with_context_detects_a_wrong_conditional(classifier: str) -> None:
    """x = +c + noise in a, x = -c + noise in b: the marginals of x agree, p(x | c) does not."""
    g = gen(6)
    ca, cb = torch.randn((700, 1), generator=g), torch.randn((700, 1), generator=g)
    xa = ca + 0.5 * torch.randn((700, 1), generator=g)
    xb = -cb + 0.5 * torch.randn((700, 1), generator=g)
    blind = c2st(xa, xb, classifier=classifier, generator=gen(0))
    assert abs(blind.auc - 0.5) < 3 * blind.auc_err
    seeing = c2st(xa, xb, context_a=ca, context_b=cb, classifier=classifier, generator=gen(0))
    assert seeing.auc > 0.5 + 10 * seeing.auc_err and seeing.auc > 0.85


def test_c2st_is_deterministic_for_a_generator() -> None:
    g = gen(7)
    a, b = torch.randn((200, 2), generator=g), torch.randn((200, 2), generator=g) + 0.3
    first, second = (c2st(a, b, epochs=3, generator=gen(11)) for _ in range(2))
    assert first == second


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="different dimensions"):
        ks_2samp(torch.zeros((5, 2)), torch.zeros((5, 3)))
    with pytest.raises(ValueError, match="both context"):
        c2st(torch.zeros(10), torch.zeros(10), context_a=torch.zeros(10))
    with pytest.raises(ValueError, match="both classes"):
        auc_score(torch.ones(3), torch.ones(3))
    with pytest.raises(ValueError, match="classifier"):
        c2st(torch.randn(10), torch.randn(10), classifier="svm")  # type: ignore[arg-type]


def test_ranks_are_a_permutation_without_ties() -> None:
    x = torch.randn(50, generator=gen(8), dtype=torch.float64)
    ranks = average_ranks(x)
    assert sorted(ranks.tolist()) == [float(i) for i in range(1, 51)]
    assert torch.equal(torch.argsort(ranks), torch.argsort(x))


def _one_conditional_twice(seed: int, n: int = 1000, sigma: float = 0.3) -> tuple[torch.Tensor, ...]:
    """Contexts c (n, 3) ~ N(0, 1) and y drawn twice from one known conditional: y = m(c) + sigma * N(0, 1)."""
    g = gen(seed)
    c = torch.randn((n, 3), generator=g)
    mean = torch.stack([c[:, 0] + 0.5 * c[:, 1], torch.tanh(c[:, 2]) - c[:, 0]], 1)
    return c, mean + sigma * torch.randn((n, 2), generator=g), mean + sigma * torch.randn((n, 2), generator=g)


@pytest.mark.parametrize(("classifier", "seeds"), [("knn", range(6)), ("mlp", range(3))])
def test_c2st_of_a_conditional_against_its_own_redraw_is_chance_when_split_by_halo(classifier: str, seeds) -> None:
    """The same haloes, y drawn twice from one conditional: the AUC interval covers 0.5 for every seed (the split
    keeps a halo's two rows on one side, by default when the contexts are equal row by row); the old independent
    splits (paired=False) put a halo's context in training under one label and in the test under the other,
    and score well below 0.5."""
    fixed, old = [], []
    for seed in seeds:
        c, ya, yb = _one_conditional_twice(100 + seed)
        result = c2st(ya, yb, context_a=c, context_b=c, classifier=classifier, generator=gen(seed))
        assert abs(result.auc - 0.5) < 3 * result.auc_err, (seed, result)
        assert result.n_test == 1000 and result.n_train == 1000
        fixed.append(result.auc)
        old.append(c2st(ya, yb, context_a=c, context_b=c, paired=False, classifier=classifier, generator=gen(seed)))
    mean_err = result.auc_err / math.sqrt(len(fixed))
    assert abs(sum(fixed) / len(fixed) - 0.5) < 3 * mean_err
    assert all(r.auc < 0.5 - 2 * r.auc_err for r in old) and sum(r.auc for r in old) / len(old) < 0.46


def test_c2st_paired_is_the_default_for_equal_contexts_only() -> None:
    c, ya, yb = _one_conditional_twice(7, n=300)
    default = c2st(ya, yb, context_a=c, context_b=c, epochs=2, generator=gen(1))
    assert default == c2st(ya, yb, context_a=c, context_b=c, paired=True, epochs=2, generator=gen(1))
    assert default != c2st(ya, yb, context_a=c, context_b=c, paired=False, epochs=2, generator=gen(1))
    groups = torch.arange(300)
    by_group = c2st(ya, yb, context_a=c, context_b=c, groups_a=groups, groups_b=groups, epochs=2, generator=gen(1))
    assert abs(by_group.auc - 0.5) < 3 * by_group.auc_err and by_group.n_test == 300
    other = c + 0.01  # different contexts: independent splits, as before
    unpaired = c2st(ya, yb, context_a=c, context_b=other, epochs=2, generator=gen(1))
    assert unpaired == c2st(ya, yb, context_a=c, context_b=other, paired=False, epochs=2, generator=gen(1))


def test_c2st_group_split_with_several_rows_per_halo_in_any_order() -> None:
    """Haloes with 1-3 galaxies each, sample b in another order: groups keep a halo's rows together."""
    g = gen(9)
    halo_c = torch.randn((800, 3), generator=g)
    mult = torch.randint(1, 4, (800,), generator=g)
    host = torch.repeat_interleave(torch.arange(800), mult)
    c = halo_c[host]
    mean = torch.stack([c[:, 0] + 0.5 * c[:, 1], torch.tanh(c[:, 2]) - c[:, 0]], 1)
    ya = mean + 0.3 * torch.randn(mean.shape, generator=g)
    order = torch.randperm(len(host), generator=g)
    yb = (mean + 0.3 * torch.randn(mean.shape, generator=g))[order]
    grouped = c2st(ya, yb, context_a=c, context_b=c[order], groups_a=host, groups_b=host[order], classifier="knn")
    assert abs(grouped.auc - 0.5) < 3 * grouped.auc_err
    rows = c2st(ya, yb, context_a=c, context_b=c[order], classifier="knn", generator=gen(0))  # unequal: independent
    assert rows.auc < 0.5 - 3 * rows.auc_err


def test_clustered_auc_error_equals_the_scatter_of_paired_scores() -> None:
    """Pairs (positive, negative) share a random offset u_i: the AUC scatters far less than independent rows
    would; the clustered DeLong error follows the scatter over 300 repeats, the plain one overstates it."""
    aucs, clustered, plain = [], [], []
    g = gen(12)
    n = 200
    for _ in range(300):
        u = 2.0 * torch.randn(n, generator=g, dtype=torch.float64)
        scores = torch.cat([u + torch.randn(n, generator=g, dtype=torch.float64) + 0.2, u])
        labels = torch.cat([torch.ones(n), torch.zeros(n)]).bool()
        pairs = torch.cat([torch.arange(n), torch.arange(n)])
        with_groups = auc_score(scores, labels, groups=pairs)
        aucs.append(with_groups.auc)
        clustered.append(with_groups.auc_err)
        plain.append(auc_score(scores, labels).auc_err)
    scatter = float(torch.tensor(aucs).std())
    assert sum(clustered) / len(clustered) == pytest.approx(scatter, rel=0.12)
    assert sum(plain) / len(plain) > 1.8 * scatter
    # one row per group: the clustered error is the plain DeLong error (up to I/(I-1) vs (n-1) factors)
    scores = torch.randn(300, generator=g, dtype=torch.float64)
    labels = torch.arange(300) % 3 == 0
    single = auc_score(scores, labels, groups=torch.arange(300))
    assert single.auc_err == pytest.approx(auc_score(scores, labels).auc_err, rel=0.01)


def test_c2st_groups_and_paired_bad_inputs() -> None:
    a, b, c = torch.randn(20), torch.randn(20), torch.randn(20)
    with pytest.raises(ValueError, match="both groups"):
        c2st(a, b, groups_a=torch.arange(20))
    with pytest.raises(ValueError, match="not both"):
        c2st(a, b, groups_a=torch.arange(20), groups_b=torch.arange(20), paired=True)
    with pytest.raises(ValueError, match="one label per row"):
        c2st(a, b, groups_a=torch.arange(19), groups_b=torch.arange(20))
    with pytest.raises(ValueError, match="integer"):
        c2st(a, b, groups_a=c, groups_b=c)
    with pytest.raises(ValueError, match="as many rows"):
        c2st(a, b[:10], paired=True)
    with pytest.raises(ValueError, match="at least 2 groups"):
        c2st(a, b, groups_a=torch.zeros(20, dtype=torch.long), groups_b=torch.zeros(20, dtype=torch.long))
    with pytest.raises(ValueError, match="DeLong"):
        auc_score(a, a > 0, error="hanley-mcneil", groups=torch.arange(20))
