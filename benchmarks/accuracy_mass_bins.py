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
from cosmoseg.protohalo.classify import predicted_classes
from cosmoseg.protohalo.data import linear_channels
from cosmoseg.protohalo.mass_bins import excursion_set_classes, mass_bin_classes, mass_bin_scores
from cosmoseg.protohalo.panoptic import mass_bin_probabilities
from cosmoseg.protohalo.training import load_model, suite_mass_bin_edges

NET_NAMES = {"vnet": "COPRA (V-Net)", "unetr": "VIPR (UNETR)"}
HELD_OUT = ("box_0007.h5", "box_0001.h5")
"""The boxes the shipped protohalo models held out (their checkpoints record them)."""


def pooled(tables: list[dict]) -> dict[str, torch.Tensor]:
    """Voxel counts summed over boxes, and the per-object rows stacked."""
    classes = {k: sum(t["classes"][k] for t in tables) for k in ("n_true", "n_pred")}
    if "auc" in tables[0]["classes"]:
        # the mean of each box's AUC over the boxes that hold the class (a box without it has no AUC for it), the
        # error from the boxes' errors
        held = torch.stack([(t["classes"]["n_true"] > 0).double() for t in tables])
        n_boxes = held.sum(0).clamp_min(1)
        classes["auc"] = sum(h * t["classes"]["auc"] for h, t in zip(held, tables, strict=True)) / n_boxes
        errors = sum(h * t["classes"]["auc_err"] ** 2 for h, t in zip(held, tables, strict=True))
        classes["auc_err"] = torch.sqrt(errors) / n_boxes
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


def figure_scores(curves: list[tuple[str, dict[str, torch.Tensor]]], edges: torch.Tensor, path: Path) -> Path:
    """Three panels per method: one-vs-rest AUC per class (DeLong errors), total mass predicted / true per class, and
    the per-object log10 M_pred / M_FoF (median, 16–84%) in bins of FoF mass."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(14.0, 3.9))
    axes = fig.subplots(1, 3)
    labels = ["no halo"] + [f"{edges[c - 1]:.1f}–{edges[c]:.1f}" for c in range(1, edges.numel())]
    x = torch.arange(edges.numel()).double()
    centres = 0.5 * (edges[:-1] + edges[1:])
    for k, (name, pool) in enumerate(curves):
        dodge = 0.08 * (k - (len(curves) - 1) / 2)
        marker = "s" if "excursion" in name or "twin" in name else "o"
        if "auc" in pool:
            axes[0].errorbar(x + dodge, pool["auc"], yerr=pool["auc_err"], marker=marker, ms=4, capsize=2, label=name)
        ratio = pool["n_pred"].double() / pool["n_true"].double().clamp_min(1)
        axes[1].plot(x + dodge, ratio, marker=marker, ms=4, label=name)
        found = pool["n_predicted"] > 0
        true, diff = pool["log_mass_true"][found], (pool["log_mass_pred"] - pool["log_mass_true"])[found]
        bin_of = torch.bucketize(true, edges[1:-1])
        rows = [(c, diff[bin_of == c]) for c in range(centres.numel()) if int((bin_of == c).sum()) >= 3]
        med = torch.tensor([float(d.median()) for _, d in rows])
        lo = med - torch.tensor([float(torch.quantile(d, 0.16)) for _, d in rows])
        hi = torch.tensor([float(torch.quantile(d, 0.84)) for _, d in rows]) - med
        axes[2].errorbar(
            centres[[c for c, _ in rows]] + 0.02 * (k - 1),
            med,
            yerr=torch.stack([lo, hi]),
            marker=marker,
            ms=4,
            capsize=2,
            label=name,
        )
    axes[0].axhline(0.95, color="0.6", lw=0.8, ls=":", label="target 0.95")
    axes[0].set_ylabel("one-vs-rest ROC AUC")
    axes[0].set_ylim(0.5, 1.0)
    axes[1].axhspan(0.95, 1.05, color="0.9", label="target ±5%")
    axes[1].set_ylabel("total mass in class: predicted / true")
    axes[1].set_yscale("log")
    for axis in axes[:2]:
        axis.set_xticks(x.tolist(), labels, rotation=30, fontsize=7)
        axis.set_xlabel(r"class: $\log_{10} M$ [$M_\odot/h$] of the z = 0 halo")
    axes[2].axhspan(-0.0414, 0.0414, color="0.9", label="±10%")
    axes[2].axhline(0, color="0.5", lw=0.8)
    axes[2].set_xlabel(r"$\log_{10} M_\mathrm{FoF}$ [$M_\odot/h$]")
    axes[2].set_ylabel(r"per object: $\log_{10} M_\mathrm{pred} / M_\mathrm{FoF}$ (median, 16–84%)")
    for axis in axes:
        axis.legend(fontsize=6, title="held-out boxes", title_fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def figure_grad_cam(box: dict, model: torch.nn.Module, meta: dict, edges: torch.Tensor, path: Path) -> Path:
    """Slices through the Lagrangian centre of the box's largest halo: δ, the tidal shear, the true and predicted
    classes and the Grad-CAM map of the halo's true class summed over the halo's voxels."""
    from matplotlib.figure import Figure

    from cosmoseg.nn import grad_cam

    fields, labels = box["fields"], box["segmentation"].labels
    particle_mass = float(box["halos"].meta["particle_mass"])
    size_in, size_out = int(meta["size_in"]), int(meta["size_out"])
    n = fields.n
    largest = int(torch.bincount(labels.flatten())[1:].argmax()) + 1
    ijk = torch.nonzero(labels == largest).double()
    # the halo's periodic centre, in cells: the circular mean along each axis
    angle = ijk * (2 * torch.pi / n)
    centre = (torch.atan2(angle.sin().mean(0), angle.cos().mean(0)) * n / (2 * torch.pi)).round().long() % n
    shift = [int(n // 2 - c) for c in centre]
    roll = lambda v: torch.roll(v, shift, dims=(-3, -2, -1))  # noqa: E731
    values = roll(linear_channels(fields, ("delta", "phi", "shear")))
    inputs = roll(linear_channels(fields, meta["channels"]))
    lo = n // 2 - size_in // 2
    crop = inputs[:, lo : lo + size_in, lo : lo + size_in, lo : lo + size_in][None]
    out_lo = n // 2 - size_out // 2
    window = (slice(out_lo, out_lo + size_out),) * 3
    truth = mass_bin_classes(roll(labels), particle_mass, edges)[window]
    with torch.no_grad():
        predicted = predicted_classes(torch.softmax(model(crop)[0], 0), meta.get("class_log_bias"))
    k = int(truth[size_out // 2, size_out // 2, size_out // 2])
    region = (roll(labels)[window] == largest)[None]
    cam = grad_cam(model, crop, k, region=region)[0]
    margin = (size_in - size_out) // 2
    cam = cam[margin : margin + size_out, margin : margin + size_out, margin : margin + size_out]
    mid = size_out // 2
    panels = [
        ("δ (linear, z = 0)", values[0][window][:, :, mid], "RdBu_r"),
        ("tidal shear q", values[2][window][:, :, mid], "viridis"),
        ("true class", truth[:, :, mid], "tab10"),
        ("predicted class", predicted[:, :, mid], "tab10"),
        (f"Grad-CAM, class {k}", cam[:, :, mid], "magma"),
    ]
    fig = Figure(figsize=(13.0, 2.9))
    axes = fig.subplots(1, len(panels))
    for axis, (title, image, cmap) in zip(axes, panels, strict=True):
        kwargs = {"vmin": 0, "vmax": edges.numel() - 1} if "class" in title and "Grad" not in title else {}
        shown = axis.imshow(image.T.numpy(), origin="lower", cmap=cmap, **kwargs)
        axis.set_title(title, fontsize=8)
        axis.set_xticks([])
        axis.set_yticks([])
        fig.colorbar(shown, ax=axis, fraction=0.046, pad=0.03)
    mass = float(torch.log10(torch.tensor((labels == largest).sum().item() * particle_mass)))
    fig.suptitle(
        f"{NET_NAMES[str(meta.get('backbone', 'vnet'))]}: slice z = const through the largest halo of "
        f"{box['name']} (log10 M = {mass:.2f}); "
        f"{size_out}³ cells of {fields.box.length / n:.2f} Mpc/h",
        fontsize=8,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", type=Path, help="suite folder (box_*.h5 with fields and the FoF segmentation)")
    parser.add_argument("--held-out", nargs="+", default=list(HELD_OUT), help="the boxes scored")
    parser.add_argument("--twins", nargs="*", type=Path, default=[], help="twin box files (segmentation_a, _b)")
    parser.add_argument("--n-bins", type=int, default=6)
    parser.add_argument("--delta-c", type=float, default=1.686)
    parser.add_argument("--model", nargs="*", default=[], help="mass-bins checkpoints to score")
    parser.add_argument("--figures", type=Path, default=None, help="folder for the scores and Grad-CAM figures")
    parser.add_argument("--symmetries", type=int, default=1, help="test-time augmentation over this many symmetries")
    parser.add_argument("--uncalibrated", action="store_true", help="the nets' plain argmax, not the stored biases")
    args = parser.parse_args()
    models = [(path, *load_model(path, "mass-bins")) for path in args.model]

    boxes = {p.name: load_artifact(p) for p in sorted(args.suite.glob("box_*.h5"))}
    train = [b for name, b in boxes.items() if name not in args.held_out]
    first = next(iter(boxes.values()))
    particle_mass = float(first["halos"].meta.get("particle_mass", 0)) or float(
        first["fields"].box.cosmology.particle_mass(first["fields"].n, first["fields"].box.length)
    )
    # the training run's rule (labelling limit to largest halo of the training boxes)
    edges = torch.tensor(suite_mass_bin_edges([(b["fields"], b["segmentation"]) for b in train], args.n_bins))
    if models:  # the nets' own edges (the same rule on their training boxes)
        edges = torch.tensor(models[0][2]["log_mass_edges"], dtype=torch.float64)
        if any(m[2]["log_mass_edges"] != models[0][2]["log_mass_edges"] for m in models):
            parser.error("the models were trained on different mass bins")
    print(f"particle mass {particle_mass:.4g} Msun/h; {args.n_bins} bins, as the mass-bins trainer makes them")
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
        hard = torch.nn.functional.one_hot(baseline, edges.numel()).permute(3, 0, 1, 2).double()
        tables.append(mass_bin_scores(baseline, truth, labels, particle_mass, edges, probabilities=hard))
    report(f"excursion set (δ_c = {args.delta_c}), held-out boxes {', '.join(args.held_out)}", edges, pooled(tables))
    print("(its AUC is that of hard classes: the one-point ROC curve, (TPR + TNR) / 2)")
    curves = [(f"excursion set, δ_c = {args.delta_c}", pooled(tables))]

    for path, model, meta in models:
        tables = []
        for name in args.held_out:
            box = boxes[name]
            labels = box["segmentation"].labels
            truth = mass_bin_classes(labels, particle_mass, edges)
            values = linear_channels(box["fields"], meta["channels"])
            probabilities = mass_bin_probabilities(
                values, model, size_in=int(meta["size_in"]), size_out=int(meta["size_out"]), symmetries=args.symmetries
            )
            bias = None if args.uncalibrated else meta.get("class_log_bias")
            predicted = predicted_classes(probabilities, bias)
            tables.append(mass_bin_scores(predicted, truth, labels, particle_mass, edges, probabilities=probabilities))
        backbone = str(meta.get("backbone", "vnet"))
        name = f"{NET_NAMES[backbone]} ({', '.join(meta['channels'])})"
        argmax = "argmax with the stored class biases" if bias else "plain argmax"
        argmax += f", {args.symmetries} symmetries" if args.symmetries > 1 else ""
        report(f"{name}, {path}, {argmax}, held-out boxes", edges, pooled(tables))
        curves.append((name, pooled(tables)))

    if args.twins:
        twin_tables = []
        for path in args.twins:
            pair = load_artifact(path)
            a, b = pair["segmentation_a"].labels, pair["segmentation_b"].labels
            class_a, class_b = (mass_bin_classes(x, particle_mass, edges) for x in (a, b))
            hard = torch.nn.functional.one_hot(class_a, edges.numel()).permute(3, 0, 1, 2).double()
            twin_tables.append(mass_bin_scores(class_a, class_b, b, particle_mass, edges, probabilities=hard))
        report(f"twins ({len(args.twins)} pairs, twin a predicting twin b)", edges, pooled(twin_tables))
        curves.append(("twins (a predicting b)", pooled(twin_tables)))
    if args.figures and models:
        args.figures.mkdir(parents=True, exist_ok=True)
        print(f"\nfigure: {figure_scores(curves, edges, args.figures / 'mass_bins_scores.png')}")
        box = {**boxes[args.held_out[0]], "name": args.held_out[0]}
        for _, model, meta in models:
            target = args.figures / f"mass_bins_grad_cam_{meta.get('backbone', 'vnet')}.png"
            print(f"figure: {figure_grad_cam(box, model, meta, edges, target)}")


if __name__ == "__main__":
    main()
