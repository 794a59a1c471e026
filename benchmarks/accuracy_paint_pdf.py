"""The PDF of the painted stellar masses in bins of log10 M*: voxels per bin of the truth, of the successor's draws,
of its conditional means and of the truth's own redraws, per test box.

    python benchmarks/accuracy_paint_pdf.py suites/paint-check --n-validation 0 --n-test 2 [--model MODEL]
                                            [--draws 8] [--edges 8,8.75,9.5,10,10.5,11,12]

Loads the split as ``cosmoseg paint evaluate`` does (truth: ``galaxies.model`` seeded by the model's training seed
and the box index; split: the options, else the model file's), predicts each test box once, paints ``--draws``
fixed-seed draws of the masses (seeds 0, 1, ...; the galaxies stay in the same voxels) and counts, per bin of
log10 M* (``--edges``, Msun/h), the voxels of the truth, of each draw (mean, smallest, largest), of the conditional
means and of ``--draws`` redraws of the truth (:func:`~cosmoseg.paint.suite.redraw_truth`, the floor). The
``cosmoseg paint evaluate`` figure of the same numbers is ``pdf.png`` (log axes).
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import torch

from cosmoseg.paint.fields import from_log_mass, stellar_mass_field
from cosmoseg.paint.models import load_paint_model, recorded_split, truth_seed
from cosmoseg.paint.suite import load_split, redraw_truth, registry_truth
from cosmoseg.paint.tiling import predict_tiled
from cosmoseg.paint.training import paint_draws_with_fcn


def bin_counts(mstar: torch.Tensor, edges: list[float]) -> list[int]:
    """Voxels of an (n, n, n) M* field (Msun/h) per bin [edges[i], edges[i+1]) of log10 M*."""
    log = torch.log10(mstar.to(torch.float64).clamp_min(1e-30))
    return [int(((log >= lo) & (log < hi)).sum()) for lo, hi in itertools.pairwise(edges)]


def _spread(values: list[int]) -> str:
    return f"{sum(values) / len(values):.0f} ({min(values)}–{max(values)})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", type=Path)
    parser.add_argument("--model", type=Path, default=None, help="successor model file (default: the shipped one)")
    parser.add_argument("--draws", type=int, default=8)
    parser.add_argument("--n-validation", type=int, default=None)
    parser.add_argument("--n-test", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--edges", default="8,8.75,9.5,10,10.5,11,12", help="bin edges, log10 Msun/h")
    args = parser.parse_args(argv)
    edges = [float(e) for e in args.edges.split(",")]
    model, meta = load_paint_model(args.model)
    n_validation, n_test, seed = recorded_split(meta, args.n_validation, args.n_test, args.seed)
    truth_maker = registry_truth("galaxies.model", {}, truth_seed(meta))
    split = load_split(args.suite, truth_maker, grid=0, n_validation=n_validation, n_test=n_test, seed=seed,
                       halo_assignment=meta.get("halo_assignment", "ngp"))  # fmt: skip
    redraws = [redraw_truth("galaxies.model", {}, seed, draw) for draw in range(args.draws)]
    heads = " | ".join(f"{lo:g}–{hi:g}" for lo, hi in itertools.pairwise(edges))
    print(f"voxels per bin of log10 M* [Msun/h]; draws and redraws: mean (smallest–largest) over {args.draws}")
    print(f"| box | painter | {heads} |")
    print("|---|---|" + "---|" * (len(edges) - 1))
    for box in split.test:
        truth = bin_counts(from_log_mass(box.target), edges)
        draws = [bin_counts(p, edges) for p in paint_draws_with_fcn(model, box, args.draws)]
        means = bin_counts(from_log_mass(model.paint(predict_tiled(model, box.inputs, tile=64))), edges)
        again = [bin_counts(stellar_mass_field(make(box.halos, box.index), box.n), edges) for make in redraws]
        rows = {
            "truth": " | ".join(map(str, truth)),
            "successor, drawn masses": " | ".join(_spread([d[j] for d in draws]) for j in range(len(truth))),
            "successor, conditional means": " | ".join(map(str, means)),
            "truth redrawn": " | ".join(_spread([d[j] for d in again]) for j in range(len(truth))),
        }
        for painter, cells in rows.items():
            print(f"| {box.name} | {painter} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
