"""How much of the successor's P(k) error on the test box comes from haloes heavier than any training halo.

    python benchmarks/accuracy_paint_extrapolation.py suites/paint [--model fcn.pt] [--n-validation 1]
                                                      [--n-test 1] [--seed 0] [--radius 1] [--draws 4]

Loads the split as ``cosmoseg paint evaluate`` does (truth: ``galaxies.model``), paints the first test box with the
successor (``--draws`` fixed-seed draws of the masses, seeds 0, 1, ...), and prints, per halo-mass cut M_cut
(the heaviest training halo, and 0.5 / 1 dex below it): the number of test haloes above it, the truth's and the
painting's stellar mass in the (2 radius + 1)³ voxels around them, and the mean |ln P/P_t| (k ≤ k_Ny/4) of the
painting as it is and with those voxels replaced by the truth. The stellar-mass P(k) of a 100 Mpc/h box is
carried by its few heaviest haloes; this separates the error there from the error elsewhere. A diagnostic, not a
way to score: the painting with truth pasted in is not a method.

Then, for the first training box and the test box, per 0.3 dex bin of halo mass: the truth's mean log10(1 + M*) at
the voxels of the halo centres (NGP) and the successor's mean of its mixture means there (the mean log mass it
predicts), to see where the fit levels off.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from cosmoseg.paint.data import PaintBox
from cosmoseg.paint.evaluation import power_ratio_score
from cosmoseg.paint.fields import from_log_mass
from cosmoseg.paint.models import load_paint_model, truth_seed
from cosmoseg.paint.network import Dm2GalFCN
from cosmoseg.paint.suite import load_split, registry_truth
from cosmoseg.paint.tiling import predict_tiled
from cosmoseg.paint.training import paint_draws_with_fcn


def neighbourhood_mask(pos: torch.Tensor, n: int, length: float, radius: int) -> torch.Tensor:
    """(n, n, n) bool: the periodic (2 radius + 1)³ voxels around each position ``pos`` (H, 3), Mpc/h."""
    mask = torch.zeros(n, n, n, dtype=torch.bool)
    voxel = torch.floor(pos.double() / (length / n)).long() % n
    shifts = torch.arange(-radius, radius + 1)
    for dx in shifts:
        for dy in shifts:
            for dz in shifts:
                mask[(voxel[:, 0] + dx) % n, (voxel[:, 1] + dy) % n, (voxel[:, 2] + dz) % n] = True
    return mask


def centre_table(model: Dm2GalFCN, box: PaintBox) -> None:
    """Print truth vs predicted mean log10(1 + M*) at the halo-centre voxels of ``box`` per halo-mass bin."""
    out = predict_tiled(model, box.inputs, tile=64)
    log_w, means, _ = model.mixture(out)
    predicted = (log_w.exp() * means).sum(0)
    voxel = torch.floor(box.halos["pos"].double() / box.voxel).long() % box.n
    at = (voxel[:, 0], voxel[:, 1], voxel[:, 2])
    log_mass = torch.log10(box.halos["mass"].double())
    print(f"\n{box.name}: mean log10(1 + M*) at the halo centres")
    print("| log10 M_halo bin | haloes | truth | predicted |")
    print("|---|---|---|---|")
    lo = 11.9
    while lo < float(log_mass.max()):
        inside = (log_mass >= lo) & (log_mass < lo + 0.3)
        if bool(inside.any()):
            truth, pred = box.target[at][inside].double().mean(), predicted[at][inside].double().mean()
            print(f"| {lo:.1f}-{lo + 0.3:.1f} | {int(inside.sum())} | {float(truth):.3f} | {float(pred):.3f} |")
        lo += 0.3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", type=Path)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--n-validation", type=int, default=1)
    parser.add_argument("--n-test", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--radius", type=int, default=1)
    parser.add_argument("--draws", type=int, default=4)
    args = parser.parse_args()

    model, meta = load_paint_model(args.model)
    truth_maker = registry_truth("galaxies.model", {}, truth_seed(meta))  # the box's truth, not the split's seed
    split = load_split(args.suite, truth_maker, grid=0, n_validation=args.n_validation, n_test=args.n_test,
                       seed=args.seed, halo_assignment=meta.get("halo_assignment", "cic"))  # fmt: skip
    box = split.test[0]
    train_max = max(float(b.halos["mass"].max()) for b in split.train)
    truth = from_log_mass(box.target).double()
    paintings = [painted.double() for painted in paint_draws_with_fcn(model, box, args.draws)]
    mass, pos = box.halos["mass"].double(), box.halos["pos"]
    heaviest, side = math.log10(float(mass.max())), 2 * args.radius + 1
    print(f"test box {box.name}: heaviest halo 10^{heaviest:.2f}, heaviest training halo 10^{math.log10(train_max):.2f}"
          f" Msun/h; {args.draws} draws, {side}^3 voxels per halo")  # fmt: skip
    print(
        "| M_cut (log10 Msun/h) | haloes above | truth M* there / total | painted M* there / truth there "
        "| mean abs ln(P/P_t) as painted | same, truth pasted there |"
    )
    print("|---|---|---|---|---|---|")
    for cut in (math.log10(train_max), math.log10(train_max) - 0.5, math.log10(train_max) - 1.0):
        above = mass > 10**cut
        mask = neighbourhood_mask(pos[above], box.n, box.length, args.radius)
        as_painted = [power_ratio_score(p, truth, box.length)[0] for p in paintings]
        pasted = [power_ratio_score(torch.where(mask, truth, p), truth, box.length)[0] for p in paintings]
        there = float(truth[mask].sum())
        painted_there = sum(float(p[mask].sum()) for p in paintings) / len(paintings)
        print(f"| {cut:.2f} | {int(above.sum())} | {there / float(truth.sum()):.4f} | "
              f"{painted_there / max(there, 1e-300):.3f} | {sum(as_painted) / len(as_painted):.4f} | "
              f"{sum(pasted) / len(pasted):.4f} |")  # fmt: skip
    for other in (split.train[0], box):
        centre_table(model, other)


if __name__ == "__main__":
    main()
