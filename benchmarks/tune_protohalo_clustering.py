"""Choose the clustering settings (N_dens, N_ngb, p) to store with a protohalo instance model, on training boxes.

For every combination of the given N_dens, N_ngb and persistence thresholds p, the model pair predicts the panoptic
segmentation of each box (``protohalo.predict.predict_protohaloes``) and is scored against the box's true
segmentation (``truth_scores``); the table gives the mean instance F1 (the harmonic mean of precision and recall at
IoU >= 0.5), precision, recall and the ratio of predicted to true haloes. Use boxes the models trained on, never the
held-out ones, then store the best with ``cosmoseg protohalo export --n-dens --n-ngb --p-thresh``.

    python benchmarks/tune_protohalo_clustering.py suites/omega-m-protohalo/box_0000.h5 ... \
        --semantic runs/ph-omega-m/semantic.pt --instance runs/ph-omega-m/instance.pt \
        --n-dens 5 10 --n-ngb 5 10 --p-thresh 2.5 4.2 --min-particles 20
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

from cosmoseg.data import load_artifact
from cosmoseg.protohalo.predict import predict_protohaloes, truth_scores


def instance_summary(rows: list[dict[str, float]]) -> tuple[float, float, float, float]:
    """Instance F1 (of the mean precision and recall), mean precision, mean recall and predicted / true haloes of
    the per-box ``truth_scores`` rows."""
    precision = sum(r["instance_precision"] for r in rows) / len(rows)
    recall = sum(r["instance_recall"] for r in rows) / len(rows)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return f1, precision, recall, sum(r["n_pred"] for r in rows) / max(sum(r["n_true"] for r in rows), 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("boxes", nargs="+", type=Path, help="box files with fields and the true segmentation")
    parser.add_argument("--semantic", type=str, default="", help="semantic checkpoint (default: the shipped one)")
    parser.add_argument("--instance", type=str, default="", help="instance checkpoint (default: the shipped one)")
    parser.add_argument("--n-dens", type=int, nargs="+", default=[10, 20])
    parser.add_argument("--n-ngb", type=int, nargs="+", default=[10, 15])
    parser.add_argument("--p-thresh", type=float, nargs="+", default=[4.2])
    parser.add_argument("--min-particles", type=int, default=1, help="drop predicted haloes of fewer voxels")
    args = parser.parse_args()

    boxes = [load_artifact(path) for path in args.boxes]
    print("| N_dens | N_ngb | p | instance F1 | precision | recall | predicted / true haloes | semantic F1 |")
    print("|---|---|---|---|---|---|---|---|")
    for n_dens, n_ngb, p_thresh in itertools.product(args.n_dens, args.n_ngb, args.p_thresh):
        rows = []
        for objects in boxes:
            predicted, _ = predict_protohaloes(
                objects["fields"],
                semantic_model=args.semantic,
                instance_model=args.instance,
                n_dens=n_dens,
                n_ngb=n_ngb,
                p_thresh=p_thresh,
                min_particles=args.min_particles,
            )
            rows.append(truth_scores(predicted, objects["segmentation"]))
        f1, precision, recall, ratio = instance_summary(rows)
        semantic_f1 = sum(r["F1"] for r in rows) / len(rows)
        print(
            f"| {n_dens} | {n_ngb} | {p_thresh:g} | {f1:.3f} | {precision:.3f} | {recall:.3f} | {ratio:.3f} "
            f"| {semantic_f1:.3f} |"
        )


if __name__ == "__main__":
    main()
