"""The comparison table of the halo -> galaxy samplers and a Zheng07 HOD on the held-out boxes of a suite.

python benchmarks/accuracy_galaxies.py --suite SUITE --models a.pt b.pt ... [--figures docs/img/galaxies]
    [--output runs/galaxies/accuracy.h5] [--n-validation 2] [--seed 0] [--n-draws 100] [--clustering-draws 8]
    [--no-truth-redrawn] [--no-hod]

Per method: the conditional C2ST AUC (split by halo) and the mean per-property KS statistic
(``evaluate_samplers``; n/a for the HOD, which predicts no galaxy properties), then per sub-population (log M* >= 10,
>= 10.5, red, blue centrals) the bias difference b_method - b_truth against the linear field (k < 0.2 h/Mpc), mean ±
standard deviation over ``--clustering-draws`` draws per halo, and the mean |P/P_truth - 1| for k < 0.5 h/Mpc
(``cosmoseg.galaxies.clustering``). The row "truth redrawn" (the galaxy model painted again on the same haloes,
``TruthRedraw``) is the floor of every number. ``--n-validation`` may be the number of boxes (score a model on every
box of a new suite; no HOD then). Prints a line when a scored box is a training box of a model (its model card).
Writes the stellar-mass vs colour figure and one P(k) figure per sub-population to ``--figures``
(``cosmoseg.galaxies.figures``), and the three tables to ``--output``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from cosmoseg.data import save_artifact
from cosmoseg.galaxies.clustering import comparison_markdown, run_clustering
from cosmoseg.galaxies.figures import write_figures
from cosmoseg.galaxies.training import (
    TRUTH_REDRAWN,
    TruthRedraw,
    evaluate_samplers,
    find_boxes,
    load_samplers,
    split_boxes,
    suite_rows,
    training_box_notes,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", type=Path, required=True, help="suite folder (box_*.h5 with halos and fields)")
    parser.add_argument("--models", type=Path, nargs="+", required=True, help="fitted sampler files")
    parser.add_argument("--figures", type=Path, default=None, help="folder for the PNG figures")
    parser.add_argument("--output", type=Path, default=Path("runs/galaxies/accuracy.h5"), help="tables (HDF5)")
    parser.add_argument("--n-validation", type=int, default=2, help="held-out boxes (the training split)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, the truth and the draws")
    parser.add_argument("--n-draws", type=int, default=100, help="draws per halo for the coverage")
    parser.add_argument("--clustering-draws", type=int, default=8, help="draws per halo for the clustering")
    parser.add_argument("--no-truth-redrawn", action="store_true", help="leave the floor (truth redrawn) out")
    parser.add_argument("--no-hod", action="store_true", help="leave the HOD out")
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))

    start = time.perf_counter()
    samplers: dict = dict(load_samplers(args.models))
    first = next(iter(samplers.values()))
    train_paths, val_paths = split_boxes(find_boxes(args.suite), args.n_validation, args.seed, allow_all=True)
    print(f"held-out boxes: {[p.name for p in val_paths]}")
    for note in training_box_notes(samplers, args.suite, val_paths):
        print(note)
    if not args.no_truth_redrawn:
        floor = TruthRedraw(val_paths, first.condition_names, first.target_names, seed=args.seed)
        samplers = {TRUTH_REDRAWN: floor} | samplers
    x, y = suite_rows(val_paths, first.condition_names, first.target_names, "fiducial", args.seed)
    scores = evaluate_samplers(samplers, x, y, n_draws=args.n_draws, seed=args.seed)
    t_scores = time.perf_counter() - start
    result = run_clustering(
        args.suite,
        samplers,
        n_validation=args.n_validation,
        seed=args.seed,
        hod=not args.no_hod,
        n_draws=args.clustering_draws,
    )
    t_clustering = time.perf_counter() - start - t_scores
    if not args.no_hod and not train_paths:
        print("no box is left to fit the HOD on (every box is scored): no HOD row")
    for name, fit in result.hod_fits.items():
        print(
            f"HOD {name}: log M_min {fit.log_m_min:.3f}, sigma_logM {fit.sigma_log_m:.3f}, "
            f"A {fit.amplitude:.3f}, rms {fit.rms:.3f}"
        )
    print(comparison_markdown(result.summary, scores, first.target_names))
    if args.figures is not None:
        for path in write_figures(result, args.figures):
            print(f"figure: {path}")
    saved = save_artifact(
        args.output, {"scores": scores, "clustering": result.summary, "clustering_curves": result.curves}
    )
    print(f"tables: {saved}")
    print(f"time: scores {t_scores:.1f} s, clustering {t_clustering:.1f} s, total {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
