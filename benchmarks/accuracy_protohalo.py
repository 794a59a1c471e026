"""Validation metrics of a protohalo model pair next to the twin ("chaos") baseline, as markdown tables.

    cosmoseg simulate configs/suites/protohalo-64.toml --output suites/protohalo-64
    cosmoseg simulate configs/suites/protohalo-64-twins.toml --output suites/protohalo-64-twins
    python benchmarks/accuracy_protohalo.py --suite suites/protohalo-64 --twins suites/protohalo-64-twins \
        [--semantic S.pt --instance I.pt] [--figures docs/img/protohalo] [--keep 16]
    python benchmarks/accuracy_protohalo.py BOX.h5 [BOX.h5 ...] [--twins TWIN_DIR_OR_FILES ...]

The boxes scored are the BOX files given, else the semantic checkpoint's ``validation_boxes`` (its metadata) found in
--suite (a clear error names the ones that are not there); every ``box_*.h5`` of a --twins folder, or every
--twins file, is a baseline pair. The tables are those of ``cosmoseg protohalo evaluate``
(:func:`cosmoseg.protohalo.evaluation.evaluate`): semantic scores, instance precision/recall at IoU >= 0.5,
per-true-mass TPR / FNR / FDR and the median with the 16–84% range of the predicted mass of true-halo voxels,
and the predicted vs FoF mass function. With --figures, the violins and the mass functions are drawn as PNGs.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

from cosmoseg.data import Table
from cosmoseg.errors import ValidationError
from cosmoseg.measure.figures import plot_mass_function, plot_violin
from cosmoseg.protohalo.evaluation import QUANTILES, SOURCES, evaluate
from cosmoseg.protohalo.pretrained import load_model_pair, validation_boxes

PAPER = {"model": {"F1": 0.838}, "baseline": {"F1": 0.884}}  # López-Cano et al., 256^3 in 50 Mpc/h


def _fmt(x: float, digits: int = 3, count: float = 1.0) -> str:
    """``x`` with ``digits`` decimals, or "–" when the count behind it is 0 (the value is missing)."""
    return "–" if count == 0 or not math.isfinite(x) else f"{x:.{digits}f}"


SCORE_COUNTS = {
    "TPR": ("TP", "FN"),
    "TNR": ("TN", "FP"),
    "PPV": ("TP", "FP"),
    "instance_precision": ("n_pred_haloes",),
    "instance_precision_labelled": ("n_pred_haloes_labelled",),
    "instance_recall": ("n_true_haloes",),
}
"""The counts behind a score (its value is missing where they sum to 0)."""


def _rows(table: Table, source: int) -> dict[str, torch.Tensor]:
    keep = table["source"] == source
    return {k: v[keep] for k, v in table.columns.items()}


def _count(scores: Table, key: str, row: int) -> float:
    """The count behind ``scores[key][row]`` (1 for a score that is always defined)."""
    if key not in SCORE_COUNTS:
        return 1.0
    return sum(float(scores[c][row]) for c in SCORE_COUNTS[key])


def scores_markdown(scores: Table) -> str:
    keys = ("TPR", "TNR", "PPV", "ACC", "F1", "instance_precision", "instance_precision_labelled", "instance_recall")
    keys += ("ARI",)
    head = "| source | " + " | ".join(keys) + " | true / predicted haloes (at or above the labelling limit) |"
    lines = [head, "|" + "---|" * (len(keys) + 2)]
    for i, source in enumerate(scores["source"].tolist()):
        values = " | ".join(_fmt(float(scores[k][i]), count=_count(scores, k, i)) for k in keys)
        counts = f"{int(scores['n_true_haloes'][i])} / {int(scores['n_pred_haloes'][i])}"
        counts += f" ({int(scores['n_pred_haloes_labelled'][i])})"
        lines.append(f"| {SOURCES[source]} | {values} | {counts} |")
    return "\n".join(lines)


def per_mass_markdown(per_mass: Table) -> str:
    lines = [
        "| log10 M_true | model TPR | twin TPR | model FNR / FDR | twin FNR / FDR "
        "| model log10 M_pred: q50 [q16, q84] | twin: q50 [q16, q84] |",
        "|---|---|---|---|---|---|---|",
    ]
    model, twin = _rows(per_mass, 0), _rows(per_mass, 1)

    def quant(rows: dict[str, torch.Tensor], j: int) -> str:
        if not len(rows["m_mid"]) or float(rows["n_violin"][j]) == 0:
            return "–"
        q = [float(rows[name][j]) for name in ("q50", "q16", "q84")]
        return f"{q[0]:.2f} [{q[1]:.2f}, {q[2]:.2f}]"

    def rate(rows: dict[str, torch.Tensor], key: str, j: int) -> str:
        count = "n_pred" if key == "FDR" else "n_true"
        return _fmt(float(rows[key][j]), 2, float(rows[count][j])) if len(rows["m_mid"]) else "–"

    for j in range(len(model["m_mid"])):
        lo, hi = math.log10(float(model["m_low"][j])), math.log10(float(model["m_high"][j]))
        lines.append(
            f"| {lo:.2f}–{hi:.2f} | {rate(model, 'TPR', j)} | {rate(twin, 'TPR', j)} "
            f"| {rate(model, 'FNR', j)} / {rate(model, 'FDR', j)} | {rate(twin, 'FNR', j)} / {rate(twin, 'FDR', j)} "
            f"| {quant(model, j)} | {quant(twin, j)} |"
        )
    return "\n".join(lines)


def mass_function_markdown(mf: Table) -> str:
    lines = ["| M_mid (Msun/h) | FoF haloes | predicted haloes | ratio pred / FoF |", "|---|---|---|---|"]
    for j in range(len(mf["m_mid"])):
        ratio = float(mf["ratio"][j])
        n_true, n_pred = int(mf["counts_true"][j]), int(mf["counts_pred"][j])
        err = ratio * math.sqrt(1 / n_true + 1 / n_pred) if n_true and n_pred else float("nan")
        shown = "–" if n_true == 0 else f"{ratio:.2f} ± {err:.2f}" if math.isfinite(err) else f"{ratio:.2f}"
        lines.append(f"| {float(mf['m_mid'][j]):.3g} | {n_true} | {n_pred} | {shown} |")
    return "\n".join(lines)


def figures(tables: dict[str, Table], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"q{round(100 * q):02d}" for q in QUANTILES]
    paths = []
    for i, source in enumerate(SOURCES):
        rows = _rows(tables["per_mass"], i)
        if not len(rows["m_mid"]):
            continue
        quantiles = torch.stack([rows[n] for n in names], dim=1).double()
        quantiles[rows["n_violin"] == 0] = float("nan")  # empty bins hold the fill value: left out
        path = folder / f"violin_{source}.png"
        plot_violin(torch.log10(rows["m_mid"]), torch.tensor(QUANTILES), quantiles, title=source, path=path)
        paths.append(path)
    mf = tables["mass_function"]
    have = mf["counts_true"] > 0
    path = folder / "mass_function.png"
    plot_mass_function(
        mf["m_mid"][have],
        {"predicted": mf["dndlnm_pred"][have]},
        error=mf["dndlnm_pred_err"][have],
        reference={"FoF": mf["dndlnm_true"][have]},
        reference_label="FoF",
        path=path,
    )
    paths.append(path)
    return paths


def _twin_paths(given: list[Path]) -> list[Path]:
    """Every ``box_*.h5`` of each folder in ``given``, and each file."""
    paths: list[Path] = []
    for path in given:
        paths += sorted(path.glob("box_*.h5")) if path.is_dir() else [path]
    return paths


def held_out_boxes(boxes: list[Path], suite: Path | None, semantic: str | None) -> list[Path]:
    """The boxes to score: ``boxes`` when given, else the semantic checkpoint's validation boxes in ``suite``
    (:func:`cosmoseg.protohalo.pretrained.validation_boxes`).

    SystemExit naming the problem when neither is given or when ``suite`` lacks some of those boxes."""
    if boxes:
        return boxes
    if suite is None:
        raise SystemExit("give the boxes to score (BOX.h5 ...) or --suite, the folder of the models' validation boxes")
    try:
        return validation_boxes(suite, semantic)
    except ValidationError as error:
        raise SystemExit(str(error)) from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("boxes", type=Path, nargs="*", help="box files to score (fields + FoF segmentation)")
    parser.add_argument("--suite", type=Path, default=None, help="folder holding the models' validation boxes")
    parser.add_argument("--twins", type=Path, nargs="*", default=[], help="twin folder(s) or files (the baseline)")
    parser.add_argument("--semantic", default=None, help="semantic checkpoint (default: shipped)")
    parser.add_argument("--instance", default=None, help="instance checkpoint (default: shipped)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--keep", type=int, default=None, help="central part of each output crop used")
    parser.add_argument("--figures", type=Path, default=None, help="folder for PNG figures")
    args = parser.parse_args(argv)

    pair = load_model_pair(args.semantic, args.instance)
    boxes = held_out_boxes(args.boxes, args.suite, args.semantic)
    twins = _twin_paths(args.twins)
    start = time.perf_counter()
    paths = (pair.semantic_path, pair.instance_path)
    tables = evaluate(*paths, boxes, twin_paths=twins, device=args.device, keep=args.keep, log=print)
    elapsed = time.perf_counter() - start
    print(f"boxes: {[b.name for b in boxes]}; twin pairs: {len(twins)}; threshold {pair.threshold:.4f}")
    print(f"paper (256^3): F1 model {PAPER['model']['F1']} vs twins {PAPER['baseline']['F1']}\n")
    print(scores_markdown(tables["scores"]), end="\n\n")
    print(per_mass_markdown(tables["per_mass"]), end="\n\n")
    print(mass_function_markdown(tables["mass_function"]), end="\n\n")
    if args.figures:
        for path in figures(tables, args.figures):
            print(f"figure: {path}")
    print(f"evaluation took {elapsed:.1f} s")


if __name__ == "__main__":
    main()
