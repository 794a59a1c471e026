"""Segmentation metrics on hand-made label cubes, against hand-computed numbers and sklearn."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cosmoseg import Segmentation
from cosmoseg.measure.segmentation import (
    InstanceMatch,
    adjusted_rand_index,
    binary_scores,
    binned_quantiles,
    contingency,
    instance_sizes,
    match_instances,
    per_mass_rates,
    score_curves,
    variation_of_information,
)
from cosmoseg.pipeline.context import RunContext
from cosmoseg.testing import toy_box, toy_segmentation


def cube(flat_labels: dict[int, list[int]], n: int = 4) -> torch.Tensor:
    """An (n, n, n) label cube from {label: flat voxel indices}."""
    out = torch.zeros(n**3, dtype=torch.int64)
    for label, voxels in flat_labels.items():
        out[voxels] = label
    return out.view(n, n, n)


def relabel(labels: torch.Tensor, seed: int) -> torch.Tensor:
    """The same partition with the non-zero ids replaced by a random bijection onto large ids."""
    ids = torch.unique(labels)
    ids = ids[ids > 0]
    new = 1000 + torch.randperm(10 * len(ids), generator=torch.Generator().manual_seed(seed))[: len(ids)]
    table = torch.zeros(int(labels.max()) + 1, dtype=torch.int64)
    table[ids] = new
    return table[labels]


def blobs(seed: int, n: int = 12, count: int = 12) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    labels = torch.zeros((n, n, n), dtype=torch.int64)
    for label in range(1, count + 1):
        i, j, k = (int(c) for c in torch.randint(0, n - 3, (3,), generator=gen))
        a, b, c = (int(s) for s in torch.randint(1, 4, (3,), generator=gen))
        labels[i : i + a, j : j + b, k : k + c] = label
    return labels


# ---- semantic -----------------------------------------------------------------------------------------


def test_binary_scores_by_hand() -> None:
    truth = torch.tensor([1, 1, 0, 0, 2, 0, 0, 0]).view(2, 2, 2)
    prob = torch.tensor([0.9, 0.4, 0.6, 0.1, 0.5, 0.2, 0.7, 0.0]).view(2, 2, 2)
    s = binary_scores(prob, truth, 0.5)  # positive: p >= 0.5 -> voxels 0, 2, 4, 6
    assert (s["TP"], s["FP"], s["TN"], s["FN"]) == (2, 2, 3, 1)
    expected = {"TPR": 2 / 3, "TNR": 3 / 5, "PPV": 1 / 2, "NPV": 3 / 4, "ACC": 5 / 8, "F1": 4 / 7}
    expected |= {"FPR": 2 / 5, "FNR": 1 / 3, "FDR": 1 / 2, "predicted_fraction": 1 / 2, "true_fraction": 3 / 8}
    for name, value in expected.items():
        assert s[name] == pytest.approx(value, abs=1e-15), name
    assert binary_scores(prob >= 0.5, truth > 0) == s  # booleans give the same
    assert math.isnan(binary_scores(torch.zeros(8), torch.zeros(8))["PPV"])
    assert binary_scores(torch.zeros(8), torch.zeros(8), zero_division=0.0)["TPR"] == 0.0


def test_score_curves_equal_binary_scores_at_each_threshold() -> None:
    gen = torch.Generator().manual_seed(4)
    truth = blobs(4)
    prob = (0.6 * (truth > 0) + 0.5 * torch.rand(truth.shape, generator=gen)).clamp(0, 1)
    thresholds = [0.9, 0.05, 0.5, 0.3, 0.75, 0.5]
    curves = score_curves(prob, truth, thresholds)
    for i, t in enumerate(thresholds):
        single = binary_scores(prob, truth, t)
        for name in ("TP", "FP", "TN", "FN", "TPR", "TNR", "PPV", "NPV", "ACC", "F1", "predicted_fraction"):
            assert float(curves[name][i]) == pytest.approx(single[name], abs=1e-14), (t, name)
    assert curves["threshold"].tolist() == thresholds


# ---- per mass -----------------------------------------------------------------------------------------


def test_per_mass_rates_by_hand() -> None:
    # truth: halo 1 of 8 voxels (log10 M = 0.90), halo 2 of 2 voxels (0.30), with a particle mass of 1
    truth = cube({1: list(range(8)), 2: [10, 11]})
    # prediction: 5 = six voxels of halo 1 + two empty ones (size 8); 6 = one voxel of halo 2 + three empty (size 4)
    pred = cube({5: [2, 3, 4, 5, 6, 7, 30, 31], 6: [10, 40, 41, 42]})
    r = per_mass_rates(truth, pred, 1.0, [0.0, 0.5, 1.0])
    assert r["n_true"].tolist() == [2, 8] and r["n_true_haloes"].tolist() == [1, 1]
    assert r["TPR"].tolist() == [0.5, 0.75] and r["FNR"].tolist() == [0.5, 0.25]
    assert r["n_pred"].tolist() == [0, 12] and r["n_pred_haloes"].tolist() == [0, 2]
    assert math.isnan(float(r["FDR"][0])) and float(r["FDR"][1]) == pytest.approx(5 / 12)
    assert r["n_violin"].tolist() == [1, 6]
    for q in ("q05", "q25", "q50", "q75", "q95"):
        assert r[q].tolist() == pytest.approx([math.log10(4), math.log10(8)])
    assert r["m_low"].tolist() == pytest.approx([1.0, 10**0.5]) and r["m_high"].tolist() == pytest.approx([10**0.5, 10])
    # instances: 1 ~ 5 with IoU 6/10 (matched), 2 ~ 6 with 1/5 (not); both predictions (log10 M 0.90, 0.60) in bin 1
    assert r["n_true_matched"].tolist() == [0, 1] and r["instance_recall"].tolist() == [0.0, 1.0]
    assert r["n_pred_matched"].tolist() == [0, 1] and math.isnan(float(r["instance_precision"][0]))
    assert float(r["instance_precision"][1]) == 0.5
    strict = per_mass_rates(truth, pred, 1.0, [0.0, 0.5, 1.0], iou_threshold=0.7)  # 6/10 < 0.7: nothing matches
    assert strict["instance_recall"].tolist() == [0.0, 0.0] and strict["n_pred_matched"].tolist() == [0, 0]
    # a semantic map that calls every voxel positive: TPR 1 while the instance FNR stays
    everything = per_mass_rates(truth, pred, 1.0, [0.0, 0.5, 1.0], pred_positive=torch.ones_like(truth, dtype=bool))
    assert everything["TPR"].tolist() == [1.0, 1.0] and everything["FNR"].tolist() == [0.5, 0.25]
    assert torch.equal(instance_sizes(truth).flatten()[[0, 10, 20]], torch.tensor([8, 2, 0]))


def test_binned_quantiles_match_numpy() -> None:
    gen = torch.Generator().manual_seed(5)
    values = torch.randn(997, generator=gen, dtype=torch.float64)
    bins = torch.randint(0, 6, (997,), generator=gen)
    bins[bins == 4] = 3  # bin 4 empty
    q = binned_quantiles(bins, values, 7, (0.05, 0.25, 0.5, 0.75, 0.95))
    for b in (0, 1, 2, 3, 5):
        expected = np.quantile(values[bins == b].numpy(), [0.05, 0.25, 0.5, 0.75, 0.95])
        assert np.allclose(q[b].numpy(), expected, rtol=0, atol=1e-14)
    assert torch.isnan(q[4]).all() and torch.isnan(q[6]).all()


# ---- instances, ARI, VI ---------------------------------------------------------------------------------


def test_instance_matching_by_hand() -> None:
    truth = cube({1: list(range(8)), 2: [10, 11, 12, 13], 3: [20, 21, 22, 23]})
    # 5 overlaps halo 1 with IoU 6/10; 9 is half of halo 2, IoU 2/4 = 0.5; 4 lies outside every halo
    pred = cube({5: [2, 3, 4, 5, 6, 7, 30, 31], 9: [10, 11], 4: [40, 41, 42]})
    m = match_instances(truth, pred)
    assert m.true_label.tolist() == [1, 2] and m.pred_label.tolist() == [5, 9]
    assert m.iou.tolist() == pytest.approx([0.6, 0.5])
    assert (m.n_true, m.n_pred) == (3, 3)
    assert (m.precision, m.recall, m.f1) == pytest.approx((2 / 3, 2 / 3, 2 / 3))
    assert m.mean_iou == pytest.approx(0.55) and m.panoptic_quality == pytest.approx(1.1 / 3)
    strict = match_instances(truth, pred, iou_threshold=0.6)
    assert strict.true_label.tolist() == [1] and strict.precision == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="iou_threshold"):
        match_instances(truth, pred, iou_threshold=0.4)


def test_an_exact_half_half_tie_gives_one_match() -> None:
    truth = cube({1: [0, 1, 2, 3]})
    pred = cube({7: [0, 1], 3: [2, 3]})
    m = match_instances(truth, pred)
    assert m.true_label.tolist() == [1] and m.pred_label.tolist() == [3] and m.iou.tolist() == [0.5]


def test_ari_and_vi_by_hand() -> None:
    truth = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2]).view(2, 2, 2)
    pred = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1]).view(2, 2, 2)
    # pairs together: cells 6+1+1 = 8, truth 8, pred 12, of 28; ARI = (8 - 96/28) / (10 - 96/28) = 16/23
    assert adjusted_rand_index(truth, pred) == pytest.approx(16 / 23, abs=1e-15)
    # truth refines pred: VI = H(T) - H(P) = 1.5 ln 2 - ln 2
    assert variation_of_information(truth, pred) == pytest.approx(0.5 * math.log(2), abs=1e-15)
    assert adjusted_rand_index(truth, truth) == 1.0 and variation_of_information(truth, truth) == 0.0
    ones = torch.ones((2, 2, 2), dtype=torch.int64)
    assert adjusted_rand_index(ones, ones) == 1.0  # both trivial
    table = contingency(truth, pred)
    assert table.pair_counts.tolist() == [4, 2, 2] and table.n == 8


def test_ari_and_vi_match_sklearn() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    for seed in range(3):
        truth, pred = blobs(seed), blobs(seed + 10)
        noisy = torch.where(torch.rand(truth.shape, generator=torch.Generator().manual_seed(seed)) < 0.7, truth, pred)
        for a, b in ((truth, pred), (truth, noisy)):
            x, y = a.flatten().numpy(), b.flatten().numpy()
            assert adjusted_rand_index(a, b) == pytest.approx(metrics.adjusted_rand_score(x, y), abs=1e-12)
            h_x = metrics.mutual_info_score(x, x)
            h_y = metrics.mutual_info_score(y, y)
            vi = h_x + h_y - 2 * metrics.mutual_info_score(x, y)
            assert variation_of_information(a, b) == pytest.approx(vi, abs=1e-12)


def test_everything_is_invariant_under_relabelling() -> None:
    truth = blobs(1)
    pred = torch.where(torch.rand(truth.shape, generator=torch.Generator().manual_seed(2)) < 0.85, truth, blobs(3))
    t2, p2 = relabel(truth, 4), relabel(pred, 5)
    assert adjusted_rand_index(truth, pred) == pytest.approx(adjusted_rand_index(t2, p2), abs=1e-14)
    assert variation_of_information(truth, pred) == pytest.approx(variation_of_information(t2, p2), abs=1e-14)
    a, b = match_instances(truth, pred), match_instances(t2, p2)
    assert a.iou.numel() > 3
    assert (a.n_true, a.n_pred, a.precision, a.recall, a.f1) == (b.n_true, b.n_pred, b.precision, b.recall, b.f1)
    # the matched pairs are the same pairs of regions
    pairs_a = {
        (int(t2[truth == t][0]), int(p2[pred == p][0]), round(float(i), 12)) for t, p, i in zip(*_m(a), strict=True)
    }
    pairs_b = {(int(t), int(p), round(float(i), 12)) for t, p, i in zip(*_m(b), strict=True)}
    assert pairs_a == pairs_b
    ra = per_mass_rates(truth, pred, 1e10, torch.linspace(10, 12, 5))
    rb = per_mass_rates(t2, p2, 1e10, torch.linspace(10, 12, 5))
    for name in ra:
        assert torch.allclose(ra[name], rb[name], equal_nan=True), name


def _m(match: InstanceMatch) -> tuple[list, list, list]:
    return match.true_label.tolist(), match.pred_label.tolist(), match.iou.tolist()


def test_a_perfect_prediction() -> None:
    truth = blobs(6)
    pred = relabel(truth, 7)
    s = binary_scores(pred, truth)
    assert all(s[k] == 1.0 for k in ("TPR", "TNR", "PPV", "NPV", "ACC", "F1"))
    assert all(s[k] == 0.0 for k in ("FPR", "FNR", "FDR"))
    m = match_instances(truth, pred)
    assert (m.precision, m.recall, m.f1, m.mean_iou, m.panoptic_quality) == (1.0, 1.0, 1.0, 1.0, 1.0)
    assert adjusted_rand_index(truth, pred) == 1.0 and variation_of_information(truth, pred) == pytest.approx(0.0)
    r = per_mass_rates(truth, pred, 1.0, [0.0, 0.6, 1.2, 1.8])
    filled = r["n_true"] > 0
    assert (r["FNR"][filled] == 0).all() and (r["FDR"][r["n_pred"] > 0] == 0).all() and (r["TPR"][filled] == 1).all()
    assert torch.equal(r["n_true"], r["n_pred"]) and torch.equal(r["n_violin"], r["n_true"])


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="shape"):
        binary_scores(torch.zeros((2, 2, 2)), torch.zeros((2, 2, 3)))
    with pytest.raises(ValueError, match="integer"):
        contingency(torch.zeros((2, 2, 2)), torch.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="increasing"):
        per_mass_rates(torch.zeros((2, 2, 2), dtype=torch.int64), torch.zeros((2, 2, 2), dtype=torch.int64), 1.0, [1.0])
    with pytest.raises(ValueError, match="particle_mass"):
        per_mass_rates(
            torch.zeros((2, 2, 2), dtype=torch.int64), torch.zeros((2, 2, 2), dtype=torch.int64), 0.0, [0, 1]
        )
    with pytest.raises(ValueError, match="floating"):
        score_curves(torch.zeros((2, 2, 2), dtype=torch.int64), torch.zeros((2, 2, 2)), [0.5])


# ---- the stage ----------------------------------------------------------------------------------------------


def _run_stage(truth: Segmentation, prediction: Segmentation, **params: object) -> dict:
    from cosmoseg.measure.stages import SegmentationScoresParams, SegmentationScoresStage

    ctx = RunContext(device=torch.device("cpu"), seed=0, stage_id="scores")
    return SegmentationScoresStage(SegmentationScoresParams(**params), ctx).run(truth=truth, prediction=prediction)


def test_the_stage_on_a_perfect_prediction() -> None:
    truth = toy_segmentation(torch.Generator().manual_seed(3), n=8, n_haloes=3)
    prediction = Segmentation(labels=relabel(truth.labels, 1), probabilities=(truth.labels > 0).double(), box=truth.box)
    out = _run_stage(truth, prediction, particle_mass=1e11, mass_edges=(11.0, 12.0, 13.0))
    scores = {k: float(v[0]) for k, v in out["scores"].columns.items()}
    for name in ("TPR", "TNR", "PPV", "NPV", "ACC", "F1", "instance_precision", "instance_recall", "ARI"):
        assert scores[name] == 1.0, name
    assert scores["VI"] == pytest.approx(0.0) and scores["n_true_haloes"] == scores["n_matched"]
    per_mass = out["per_mass"]
    assert len(per_mass) == 2 and float(per_mass["n_true"].sum()) == float((truth.labels > 0).sum())
    assert float(per_mass["FNR"].max()) == 0.0
    curves = out["curves"]
    assert len(curves) == 19 and bool((curves["F1"] == 1.0).all())


def test_the_stage_takes_the_particle_mass_from_the_box_and_rejects_other_grids() -> None:
    truth = toy_segmentation(torch.Generator().manual_seed(3), n=8, n_haloes=3)
    out = _run_stage(truth, truth)
    expected = truth.box.cosmology.particle_mass(8, truth.box.length)
    assert out["scores"].meta["particle_mass"] == pytest.approx(expected)
    other = Segmentation(labels=torch.zeros((4, 4, 4), dtype=torch.int64), box=toy_box())
    with pytest.raises(ValueError, match="grids differ"):
        _run_stage(truth, other)


def test_the_library_gives_the_stage_outputs_without_a_pipeline() -> None:
    from cosmoseg.measure.segmentation import segmentation_scores
    from cosmoseg.measure.stages import SegmentationScoresStage
    from cosmoseg.testing import assert_data_equal

    inputs = SegmentationScoresStage.example_inputs(torch.Generator().manual_seed(5))
    tables = segmentation_scores(inputs["truth"], inputs["prediction"], particle_mass=1e11)
    out = _run_stage(inputs["truth"], inputs["prediction"], particle_mass=1e11)
    assert_data_equal({"scores": tables.scores, "per_mass": tables.per_mass, "curves": tables.curves}, out)
    assert tables.summary.startswith("semantic F1 ") and "true haloes)" in tables.summary
