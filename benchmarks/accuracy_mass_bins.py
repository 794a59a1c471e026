"""Protohalo mass bins (issue #22) on held-out boxes: the excursion-set baseline and the twins, per class.

Every voxel is classed by the log mass of its z = 0 FoF halo (``protohalo.mass_bins``; K bins equal in log M from
the labelling limit to the training boxes' largest halo, class 0 = in no halo). The excursion set (δ top-hat
smoothed on each bin's Lagrangian radius, the largest mass above δ_c) is the classic answer without learning; the
twins (two boxes that differ only below the grid's resolution, a predicting b) the chaos limit. Prints,
per class, the voxels, the total mass predicted / true, precision and recall, and, per true halo, the scatter of
the mean log mass of its voxels' classes around its FoF mass.

With ``--model``, mass-bin nets of ``cosmoseg protohalo train --task mass-bins`` are scored beside them (their
class probabilities give the one-vs-rest AUC per class), on their own bin edges.

    python benchmarks/accuracy_mass_bins.py suites/protohalo-64 --twins suites/protohalo-64-twins/box_*.h5 \
        [--model runs/ph-massbins/mass-bins.pt ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from cosmoseg.data import load_artifact
from cosmoseg.protohalo.data import labelling_limit, linear_channels
from cosmoseg.protohalo.mass_bins import excursion_set_classes, mass_bin_classes, mass_bin_edges, mass_bin_scores
from cosmoseg.protohalo.panoptic import mass_bin_probabilities
from cosmoseg.protohalo.training import load_model

HELD_OUT = ("box_0007.h5", "box_0001.h5")
"""The boxes the shipped protohalo models held out (their checkpoints record them)."""


def pooled(tables: list[dict]) -> dict[str, torch.Tensor]:
    """Voxel counts summed over boxes, and the per-object rows stacked."""
    classes = {k: sum(t["classes"][k] for t in tables) for k in ("n_true", "n_pred")}
    if "auc" in tables[0]["classes"]:  # the mean over boxes of each box's AUC
        classes["auc"] = sum(t["classes"]["auc"] for t in tables) / len(tables)
    confusion = sum(torch.stack(list(t["confusion"].columns.values()), 1) for t in tables)
    objects = {
        k: torch.cat([t["objects"][k] for t in tables]) for k in ("log_mass_true", "log_mass_pred", "n_predicted")
    }
    return classes | {"diagonal": confusion.diagonal()} | objects


def report(name: str, edges: torch.Tensor, pool: dict[str, torch.Tensor]) -> None:
    n_true, n_pred, diagonal = pool["n_true"].double(), pool["n_pred"].double(), pool["diagonal"].double()
    print(f"\n{name}:\n")
    has_auc = "auc" in pool
    print(
        "| class | log10 M (Msun/h) | true voxels | mass pred / true | precision | recall |"
        + (" AUC |" if has_auc else "")
    )
    print("|---|---|---|---|---|---|" + ("---|" if has_auc else ""))
    for c in range(edges.numel()):
        span = "no halo" if c == 0 else f"{edges[c - 1]:.2f}–{edges[c]:.2f}"
        ratio = f"{n_pred[c] / n_true[c]:.3f}" if n_true[c] else "–"
        precision = f"{diagonal[c] / n_pred[c]:.3f}" if n_pred[c] else "– (none predicted)"
        recall = f"{diagonal[c] / n_true[c]:.3f}" if n_true[c] else "–"
        auc = f" {float(pool['auc'][c]):.3f} |" if has_auc else ""
        print(f"| {c} | {span} | {int(n_true[c])} | {ratio} | {precision} | {recall} |{auc}")
    found = pool["n_predicted"] > 0
    diff = pool["log_mass_pred"][found] - pool["log_mass_true"][found]
    q = torch.quantile(diff, torch.tensor([0.16, 0.5, 0.84], dtype=torch.float64))
    within = float((diff.abs() < torch.log10(torch.tensor(1.1))).double().mean())
    print(
        f"\nper object ({int(found.sum())} of {found.numel()} true haloes with a voxel in a predicted halo): "
        f"log10 M_pred/M_FoF median {q[1]:+.3f} [16%: {q[0]:+.3f}, 84%: {q[2]:+.3f}], within 10%: {within:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", type=Path, help="suite folder (box_*.h5 with fields and the FoF segmentation)")
    parser.add_argument("--held-out", nargs="+", default=list(HELD_OUT), help="the boxes scored")
    parser.add_argument("--twins", nargs="*", type=Path, default=[], help="twin box files (segmentation_a, _b)")
    parser.add_argument("--n-bins", type=int, default=6)
    parser.add_argument("--delta-c", type=float, default=1.686)
    parser.add_argument("--model", nargs="*", default=[], help="mass-bins checkpoints to score")
    args = parser.parse_args()
    models = [(path, *load_model(path, "mass-bins")) for path in args.model]

    boxes = {p.name: load_artifact(p) for p in sorted(args.suite.glob("box_*.h5"))}
    train = [b for name, b in boxes.items() if name not in args.held_out]
    first = next(iter(boxes.values()))
    particle_mass = float(first["halos"].meta.get("particle_mass", 0)) or float(
        first["fields"].box.cosmology.particle_mass(first["fields"].n, first["fields"].box.length)
    )
    limit = min(labelling_limit(b["segmentation"]) for b in train)
    largest = max(int(torch.bincount(b["segmentation"].labels.flatten())[1:].max()) for b in train)
    edges = mass_bin_edges(limit * particle_mass, largest * particle_mass * 1.0001, args.n_bins)
    if models:  # the nets' own edges (the same rule on their training boxes)
        edges = torch.tensor(models[0][2]["log_mass_edges"], dtype=torch.float64)
        if any(m[2]["log_mass_edges"] != models[0][2]["log_mass_edges"] for m in models):
            parser.error("the models were trained on different mass bins")
    print(f"particle mass {particle_mass:.4g} Msun/h; {args.n_bins} bins from {limit} to {largest} particles")
    print("edges (log10 Msun/h): " + ", ".join(f"{e:.2f}" for e in edges))

    tables = []
    for name in args.held_out:
        box = boxes[name]
        labels = box["segmentation"].labels
        truth = mass_bin_classes(labels, particle_mass, edges)
        fields = box["fields"]
        baseline = excursion_set_classes(
            fields.channel("delta"), fields.box.length, particle_mass, edges, delta_c=args.delta_c
        )
        tables.append(mass_bin_scores(baseline, truth, labels, particle_mass, edges))
    report(f"excursion set (δ_c = {args.delta_c}), held-out boxes {', '.join(args.held_out)}", edges, pooled(tables))

    for path, model, meta in models:
        tables = []
        for name in args.held_out:
            box = boxes[name]
            labels = box["segmentation"].labels
            truth = mass_bin_classes(labels, particle_mass, edges)
            values = linear_channels(box["fields"], meta["channels"])
            probabilities = mass_bin_probabilities(
                values, model, size_in=int(meta["size_in"]), size_out=int(meta["size_out"])
            )
            predicted = probabilities.argmax(0)
            tables.append(mass_bin_scores(predicted, truth, labels, particle_mass, edges, probabilities=probabilities))
        report(f"{path} (channels {', '.join(meta['channels'])}), held-out boxes", edges, pooled(tables))

    if args.twins:
        twin_tables = []
        for path in args.twins:
            pair = load_artifact(path)
            a, b = pair["segmentation_a"].labels, pair["segmentation_b"].labels
            class_a, class_b = (mass_bin_classes(x, particle_mass, edges) for x in (a, b))
            twin_tables.append(mass_bin_scores(class_a, class_b, b, particle_mass, edges))
        report(f"twins ({len(args.twins)} pairs, twin a predicting twin b)", edges, pooled(twin_tables))


if __name__ == "__main__":
    main()
