"""Choose the centre grouping (smoothing, min_votes, ...) to store with a centre-offsets protohalo model.

The pair's maps (probability and offsets, :func:`cosmoseg.protohalo.panoptic.offset_maps`) are computed once per
box; every combination of the given settings then groups the votes of the voxels above the semantic threshold
(:func:`cosmoseg.protohalo.centres.instances_from_offsets`) and is scored against the box's true segmentation
(``truth_scores``): the mean instance F1, precision and recall at IoU >= 0.5, and the ratio of predicted to true
haloes, all with the predicted haloes below the truth's labelling limit dropped first (``--labelled``) or not. Use
boxes the models trained on, never the held-out ones, then store the best with ``cosmoseg protohalo export
--smoothing --min-votes --seed-separation --merge-radius --vote-radius --grow-threshold``.

    python benchmarks/tune_protohalo_grouping.py suites/protohalo-64/box_0000.h5 suites/protohalo-64/box_0002.h5 \
        --semantic cosmoseg/protohalo/default_models/paper/semantic.pt --instance runs/ph-offsets/offsets.pt \
        --smoothing 0.5 1 --min-votes 4 8 16 --seed-separation 1 2 3 --merge-radius 0 0.5 1 --vote-radius 0 0.7 \
        --grow-threshold 0 0.5
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import torch
from tune_protohalo_clustering import instance_summary  # the sibling script (benchmarks/)

from cosmoseg.data import Segmentation, load_artifact
from cosmoseg.protohalo.centres import instances_from_offsets
from cosmoseg.protohalo.evaluation import drop_below, labelling_limit
from cosmoseg.protohalo.panoptic import offset_maps
from cosmoseg.protohalo.predict import truth_scores
from cosmoseg.protohalo.pretrained import load_model_pair


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("boxes", nargs="+", type=Path, help="box files with fields and the true segmentation")
    parser.add_argument("--semantic", default=None, help="semantic (or panoptic) checkpoint")
    parser.add_argument("--instance", default=None, help="offsets checkpoint (none for a panoptic net)")
    parser.add_argument("--smoothing", type=float, nargs="+", default=[1.0])
    parser.add_argument("--min-votes", type=float, nargs="+", default=[4.0, 8.0, 16.0])
    parser.add_argument("--seed-separation", type=float, nargs="+", default=[1.0, 2.0, 3.0])
    parser.add_argument("--merge-radius", type=float, nargs="+", default=[0.0])
    parser.add_argument("--vote-radius", type=float, nargs="+", default=[0.0])
    parser.add_argument("--grow-threshold", type=float, nargs="+", default=[0.0])
    parser.add_argument("--symmetries", type=int, default=1, help="test-time augmentation of the maps")
    parser.add_argument("--labelled", action="store_true", help="drop predicted haloes below the labelling limit")
    args = parser.parse_args()

    pair = load_model_pair(args.semantic, args.instance)
    if pair.kind == "embedding":
        parser.error("the pair is the paper's (instance embedding): tune it with tune_protohalo_clustering.py")
    semantic = None if pair.kind == "panoptic" else pair.semantic
    boxes = []
    for path in args.boxes:
        objects = load_artifact(path)
        fields, _ = pair.prepare_fields(objects["fields"])
        maps = offset_maps(
            fields, semantic, pair.instance, size_in=pair.size_in, size_out=pair.size_out, symmetries=args.symmetries
        )
        boxes.append((objects["segmentation"], maps))
    print(
        "| smoothing | min_votes | seed_separation | merge_radius | vote_radius | grow_threshold | instance F1 "
        "| precision | recall | predicted / true haloes |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    settings = itertools.product(
        args.smoothing, args.min_votes, args.seed_separation, args.merge_radius, args.vote_radius, args.grow_threshold
    )
    for smoothing, min_votes, separation, merge, cut, grow in settings:
        if grow > 0 and (grow >= pair.threshold or cut <= 0):
            continue  # growing needs a vote radius, and at or above the semantic threshold it adds nothing
        rows = []
        for truth, (probs, offsets) in boxes:
            labels = instances_from_offsets(
                offsets,
                probs > pair.threshold,
                smoothing=smoothing,
                min_votes=min_votes,
                seed_separation=separation,
                merge_radius=merge,
                probabilities=probs,
                vote_radius=cut,
                grow_threshold=grow,
            )
            if args.labelled:
                labels = drop_below(labels, labelling_limit(truth))
            rows.append(truth_scores(Segmentation(labels=labels, probabilities=probs, box=truth.box), truth))
        f1, precision, recall, ratio = instance_summary(rows)
        print(
            f"| {smoothing:g} | {min_votes:g} | {separation:g} | {merge:g} | {cut:g} | {grow:g} | {f1:.3f} | "
            f"{precision:.3f} | {recall:.3f} | {ratio:.3f} |"
        )


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
