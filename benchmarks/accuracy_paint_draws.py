"""The spread of the successor's scores over draws of its masses, beside the spread of the truth's own redraws,
on the validation and the test boxes.

    python benchmarks/accuracy_paint_draws.py suites/paint MODEL [MODEL ...] [--draws 8] [--n-validation N]
                                              [--n-test N] [--seed S] [--no-redraws]

Loads the split as ``cosmoseg paint train`` / ``evaluate`` do (truth: ``galaxies.model``; by default the split
recorded in the first model file, else 1 validation and 1 test box with seed 0), predicts each box once per model
and paints ``--draws`` fixed-seed draws of the masses (seeds 0, 1, ...; the galaxies stay in the same voxels).
Unless ``--no-redraws``, the row ``truth redraw`` holds ``--draws`` realisations of the truth's galaxy model on the
same haloes with other seeds (:func:`~cosmoseg.paint.suite.redraw_truth`): the ideal painter, whose spread is the
floor set by the truth's own randomness.

Per painter and box: the mean |ln P/P_t| (k ≤ k_Ny/4) of the first 4 draws (what training selects on by default)
and its mean, smallest and largest over all draws; the largest |P/P_t − 1| (k ≤ k_Ny/4), its mean and range, and
in how many draws it is ≤ 5%; the total M* over the truth's, its mean and range, and in how many draws it is within
1%. Model files written before the linear path load without it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cosmoseg.paint.data import PaintBox
from cosmoseg.paint.evaluation import PaintScores, score_painting
from cosmoseg.paint.fields import from_log_mass, stellar_mass_field
from cosmoseg.paint.models import load_paint_model, recorded_split, truth_seed
from cosmoseg.paint.suite import load_split, redraw_truth, registry_truth
from cosmoseg.paint.training import paint_draws_with_fcn

POWER_TARGET = 0.05  # largest |P/P_t - 1| for k <= k_Ny / 4 (issue #7)
TOTAL_TARGET = 0.01  # |total M* / truth - 1|


def _spread(values: list[float]) -> str:
    return f"{sum(values) / len(values):.4f} ({min(values):.4f}–{max(values):.4f})"


def row(painter: str, role: str, box: PaintBox, scores: list[PaintScores]) -> str:
    power = [s.power_score for s in scores]
    deviation = [s.max_power_deviation for s in scores]
    total = [s.total_mass_ratio for s in scores]
    within_power = sum(d <= POWER_TARGET for d in deviation)
    within_total = sum(abs(t - 1) <= TOTAL_TARGET for t in total)
    return (
        f"| {painter} | {role} {box.name} | {sum(power[:4]) / len(power[:4]):.4f} | {_spread(power)} | "
        f"{_spread(deviation)} | {within_power}/{len(scores)} | {_spread(total)} | {within_total}/{len(scores)} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", type=Path)
    parser.add_argument("models", type=Path, nargs="+")
    parser.add_argument("--draws", type=int, default=8)
    parser.add_argument("--n-validation", type=int, default=None)
    parser.add_argument("--n-test", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--no-redraws", dest="redraws", action="store_false")
    args = parser.parse_args()
    first_meta = load_paint_model(args.models[0])[1]
    args.n_validation, args.n_test, args.seed = recorded_split(first_meta, args.n_validation, args.n_test, args.seed)

    truth_maker = registry_truth("galaxies.model", {}, truth_seed(first_meta))  # the box's truth, not the split's seed
    split = load_split(args.suite, truth_maker, grid=0, n_validation=args.n_validation, n_test=args.n_test,
                       seed=args.seed, halo_assignment="ngp")  # fmt: skip
    boxes = [("validation", box) for box in split.validation] + [("test", box) for box in split.test]
    print(f"over {args.draws} draws: mean abs ln(P/P_t) and max abs(P/P_t - 1) for k <= k_Ny/4, total M* / truth")
    print(
        "| painter | box | mean abs ln(P/P_t), first 4 | mean abs ln(P/P_t), mean (range) | max abs(P/P_t - 1), "
        f"mean (range) | draws <= {POWER_TARGET:.0%} | total M* / truth, mean (range) | draws within "
        f"{TOTAL_TARGET:.0%} |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for path in args.models:
        model, meta = load_paint_model(path)
        if meta.get("halo_assignment", "cic") != "ngp":
            raise SystemExit(f"{path}: trained on {meta.get('halo_assignment', 'cic')} halo fields, not ngp")
        threshold = float(meta["threshold"])
        for role, box in boxes:
            truth = from_log_mass(box.target)
            paintings = paint_draws_with_fcn(model, box, args.draws)
            scores = [score_painting(p, truth, box.length, threshold=threshold) for p in paintings]
            print(row(str(path), role, box, scores), flush=True)
    if args.redraws:
        threshold = float(first_meta["threshold"])
        makers = [redraw_truth("galaxies.model", {}, args.seed, draw) for draw in range(args.draws)]
        for role, box in boxes:
            truth = from_log_mass(box.target)
            scores = []
            for make in makers:
                painted = stellar_mass_field(make(box.halos, box.index), box.n)
                scores.append(score_painting(painted, truth, box.length, threshold=threshold))
            print(row("truth redraw", role, box, scores), flush=True)


if __name__ == "__main__":
    main()
