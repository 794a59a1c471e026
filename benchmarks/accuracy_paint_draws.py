"""The spread of the successor's P(k) score over draws of its masses, on the validation and the test box.

    python benchmarks/accuracy_paint_draws.py suites/paint MODEL [MODEL ...] [--draws 8] [--n-validation N]
                                              [--n-test N] [--seed S]

Loads the split as ``cosmoseg paint train`` / ``evaluate`` do (truth: ``galaxies.model``; by default the split
recorded in the first model file, else 1 validation and 1 test box with seed 0), predicts each box once
per model and paints ``--draws`` fixed-seed draws of the masses (seeds 0, 1, ...; the galaxies stay in the same
voxels), and prints per model and box the mean |ln P/P_t| (k ≤ k_Ny/4) of the first 4 draws (what training
selects on by default), and the mean, smallest and largest over all draws. Model files written before the linear
path load without it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cosmoseg.paint.evaluation import power_ratio_score
from cosmoseg.paint.fields import from_log_mass
from cosmoseg.paint.models import load_paint_model, recorded_split
from cosmoseg.paint.suite import load_split, registry_truth
from cosmoseg.paint.training import paint_draws_with_fcn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", type=Path)
    parser.add_argument("models", type=Path, nargs="+")
    parser.add_argument("--draws", type=int, default=8)
    parser.add_argument("--n-validation", type=int, default=None)
    parser.add_argument("--n-test", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    first_meta = load_paint_model(args.models[0])[1]
    args.n_validation, args.n_test, args.seed = recorded_split(first_meta, args.n_validation, args.n_test, args.seed)

    truth_maker = registry_truth("galaxies.model", {}, args.seed)
    split = load_split(args.suite, truth_maker, grid=0, n_validation=args.n_validation, n_test=args.n_test,
                       seed=args.seed, halo_assignment="ngp")  # fmt: skip
    boxes = [("validation", box) for box in split.validation] + [("test", box) for box in split.test]
    print(f"mean abs ln(P/P_t), k <= k_Ny/4, over {args.draws} draws of the masses")
    print("| model | box | first 4 draws | mean | min | max |")
    print("|---|---|---|---|---|---|")
    for path in args.models:
        model, meta = load_paint_model(path)
        if meta.get("halo_assignment", "cic") != "ngp":
            raise SystemExit(f"{path}: trained on {meta.get('halo_assignment', 'cic')} halo fields, not ngp")
        for role, box in boxes:
            truth = from_log_mass(box.target)
            paintings = paint_draws_with_fcn(model, box, args.draws)
            scores = [power_ratio_score(painted, truth, box.length)[0] for painted in paintings]
            print(f"| {path} | {role} {box.name} | {sum(scores[:4]) / len(scores[:4]):.4f} | "
                  f"{sum(scores) / len(scores):.4f} | {min(scores):.4f} | {max(scores):.4f} |")  # fmt: skip


if __name__ == "__main__":
    main()
