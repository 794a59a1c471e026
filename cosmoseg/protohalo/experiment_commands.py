"""``cosmoseg protohalo experiment density|tidal|sigma8|bias``: the §4 experiments of López-Cano et al. on a model
pair (default: the shipped one at the box's resolution), a thin layer over :mod:`cosmoseg.protohalo.experiments`
(the tables) and :mod:`cosmoseg.protohalo.experiment_figures` (their figures).

Each command writes a CSV table (atomically; an existing one is kept unless ``--overwrite``) and a PNG figure into
``--output`` (the figure elsewhere with ``--figure``) and prints a short summary; a bad input is one ``error:`` line
and exit status 1, with nothing written.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cosmoseg.pipeline.commands import DeviceOption, report_errors

if TYPE_CHECKING:
    from cosmoseg.data import Field, Segmentation
    from cosmoseg.protohalo.experiments import ExperimentTable, Predictor

__all__ = ["experiment_app", "parse_values"]

experiment_app = typer.Typer(
    help="The experiments of López-Cano et al. §4: how the predicted protohaloes respond to a large-scale density "
    "(density, bias), a large-scale tide (tidal) and the amplitude of the fluctuations (sigma8).",
    no_args_is_help=True,
)

BoxArgument = Annotated[Path, typer.Argument(help="A suite box file (fields δ, φ + the FoF segmentation).")]
BoxesArgument = Annotated[list[Path], typer.Argument(help="Suite box files (fields δ, φ + the FoF segmentation).")]
HaloOption = Annotated[int | None, typer.Option("--halo", help="The true halo: its label in the box's segmentation.")]
LargestOption = Annotated[bool, typer.Option("--largest", help="Take the box's largest true halo.")]
SemanticOption = Annotated[
    Path | None, typer.Option("--semantic", help="Semantic checkpoint (.pt; default: the shipped model).")
]
InstanceOption = Annotated[
    Path | None, typer.Option("--instance", help="Instance checkpoint (.pt; default: the shipped model).")
]
OutputOption = Annotated[Path, typer.Option(help="Folder for the table (CSV) and, without --figure, the figure.")]
FigureOption = Annotated[Path | None, typer.Option(help="Where to write the figure (PNG; default: in --output).")]
OverwriteOption = Annotated[bool, typer.Option("--overwrite", help="Replace an existing table or figure.")]
BatchOption = Annotated[int, typer.Option(help="Crops per forward pass.")]
BinsOption = Annotated[int, typer.Option("--bins", help="Mass bins, equal in log M from the labelling limit up.")]


def parse_values(text: str, option: str) -> list[float]:
    """``"-0.5,0,0.5"`` -> [-0.5, 0.0, 0.5]; `ValueError` naming ``option`` for an empty list, a word that is not a
    number, a non-finite or a repeated value."""
    words = [w.strip() for w in text.split(",") if w.strip()]
    if not words:
        raise ValueError(f"{option}: give comma-separated numbers, got {text!r}")
    values = []
    for word in words:
        try:
            value = float(word)
        except ValueError:
            raise ValueError(f"{option}: {word!r} is not a number (in {text!r})") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{option}: values must be finite, got {word!r}")
        values.append(value)
    if len(set(values)) != len(values):
        raise ValueError(f"{option}: repeated values in {text!r}")
    return values


def _load_box(path: Path) -> tuple[Field, Segmentation]:
    from cosmoseg.data import Field, Segmentation, load_artifact

    if not path.is_file():
        raise ValueError(f"{path}: no such box file")
    objects = load_artifact(path)
    fields, truth = objects.get("fields"), objects.get("segmentation")
    if not isinstance(fields, Field) or not isinstance(truth, Segmentation):
        raise ValueError(
            f"{path}: a box needs 'fields' (Field) and 'segmentation' (Segmentation), it has {sorted(objects)}"
        )
    missing = [c for c in ("delta", "phi") if c not in fields.channels]
    if missing:
        raise ValueError(f"{path}: its fields lack the channel(s) {missing} (they have {list(fields.channels)})")
    return fields, truth


def _outputs(output: Path, stem: str, figure: Path | None, overwrite: bool) -> tuple[Path, Path]:
    table, png = output / f"{stem}.csv", figure or output / f"{stem}.png"
    if png.suffix.lower() != ".png":
        raise ValueError(f"--figure must be a .png file, got {png}")
    existing = [str(p) for p in (table, png) if p.exists()]
    if existing and not overwrite:
        raise ValueError(f"{', '.join(existing)} exist(s): give --overwrite to replace, or another --output")
    return table, png


def _predictor(
    semantic: Path | None, instance: Path | None, fields: Field, device: str, batch_size: int
) -> tuple[Predictor, str]:
    from cosmoseg.pipeline import resolve_device
    from cosmoseg.protohalo.experiments import pair_predictor
    from cosmoseg.protohalo.pretrained import load_model_pair

    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    where = str(resolve_device(device))
    pair = load_model_pair(semantic, instance, device=where, cell_size=fields.box.length / fields.n)
    pair.check_fields(fields, where="the box")
    models = f"{pair.semantic_path.name} + {pair.instance_path.name} ({pair.kind}, {pair.semantic_path.parent})"
    return pair_predictor(pair, device=where, batch_size=batch_size), models


def _write(table: ExperimentTable, figure: Any, table_path: Path, png: Path, overwrite: bool) -> None:
    from cosmoseg.measure.figures import save_figure

    table.write_csv(table_path, overwrite=overwrite)
    save_figure(figure, png)
    typer.echo(f"table: {table_path}\nfigure: {png}")


def _halo_id(truth: Segmentation, halo: int | None, largest: bool) -> int:
    import torch

    if (halo is None) == (not largest):
        raise ValueError("give exactly one of --halo ID and --largest")
    labels = truth.labels.cpu().long()
    if largest:
        sizes = torch.bincount(labels.flatten())
        sizes[0] = 0
        if int(sizes.max()) == 0:
            raise ValueError("the box has no true halo")
        return int(sizes.argmax())
    top = int(labels.max())
    if not 1 <= int(halo) <= top or not bool((labels == int(halo)).any()):  # type: ignore[arg-type]
        raise ValueError(f"unknown halo id {halo}: the box's true haloes are labelled 1..{top}")
    return int(halo)  # type: ignore[arg-type]


def _halo_experiment(
    kind: str,
    box: Path,
    halo: int | None,
    largest: bool,
    values_text: str,
    option: str,
    semantic: Path | None,
    instance: Path | None,
    output: Path,
    figure: Path | None,
    overwrite: bool,
    device: str,
    batch_size: int,
) -> None:
    from cosmoseg.protohalo.experiment_figures import plot_halo_response
    from cosmoseg.protohalo.experiments import density_response, tidal_response

    with report_errors():
        values = parse_values(values_text, option)
        fields, truth = _load_box(box)
        halo_id = _halo_id(truth, halo, largest)
        table_path, png = _outputs(output, f"{kind}_halo{halo_id}", figure, overwrite)
        predict, models = _predictor(semantic, instance, fields, device, batch_size)
        run = density_response if kind == "density" else tidal_response
        table = run(fields, truth.labels, halo_id, values, predict)
        table = dataclasses.replace(table, meta={**table.meta, "box": str(box), "models": models})
        _write(table, plot_halo_response(table), table_path, png, overwrite)
    meta = table.meta
    typer.echo(
        f"{kind}: {box.name}, true halo {halo_id} ({meta['true_voxels']} voxels, {meta['true_mass']:.3g} Msun/h) "
        f"about q0 = {meta['centre']} Mpc/h; models {models}"
    )
    name = "epsilon" if kind == "density" else "lambda_z"
    for i in range(len(table)):
        line = (
            f"  {name} {table[name][i]:+.3g}: predicted {table['n_voxels'][i]} voxels = {table['mass'][i]:.3g} Msun/h, "
            f"IoU with unmodified {table['iou_unmodified'][i]:.2f}, with true {table['iou_true'][i]:.2f}"
        )
        if "mass_spherical" in table.columns:
            line += f"; spherical collapse {table['mass_spherical'][i]:.3g} Msun/h"
        typer.echo(line)


@experiment_app.command("density")
def density_command(
    box: BoxArgument,
    halo: HaloOption = None,
    largest: LargestOption = False,
    epsilons: Annotated[
        str, typer.Option(help="The shifts δ_ε of the linear density about the halo's centre (eqs. 11–12).")
    ] = "-0.5,-0.25,0,0.25,0.5",
    semantic: SemanticOption = None,
    instance: InstanceOption = None,
    output: OutputOption = Path("runs/experiments"),
    figure: FigureOption = None,
    overwrite: OverwriteOption = False,
    device: DeviceOption = "auto",
    batch_size: BatchOption = 4,
) -> None:
    """§4.1 on one halo: its predicted mass as δ_ε shifts the linear density about its Lagrangian centre, beside
    spherical collapse. Writes <output>/density_halo<ID>.csv and .png."""
    _halo_experiment(
        "density", box, halo, largest, epsilons, "--epsilons", semantic, instance, output, figure, overwrite,
        device, batch_size,
    )  # fmt: skip


@experiment_app.command("tidal")
def tidal_command(
    box: BoxArgument,
    halo: HaloOption = None,
    largest: LargestOption = False,
    lambdas: Annotated[
        str, typer.Option(help="The tides λ_z, T = diag(0, −λ_z, λ_z), about the halo's centre (eqs. 15–16).")
    ] = "-0.5,-0.25,0,0.25,0.5",
    semantic: SemanticOption = None,
    instance: InstanceOption = None,
    output: OutputOption = Path("runs/experiments"),
    figure: FigureOption = None,
    overwrite: OverwriteOption = False,
    device: DeviceOption = "auto",
    batch_size: BatchOption = 4,
) -> None:
    """§4.2 on one halo: its predicted mass and shape under a trace-free tide about its Lagrangian centre. Writes
    <output>/tidal_halo<ID>.csv and .png."""
    _halo_experiment(
        "tidal", box, halo, largest, lambdas, "--lambdas", semantic, instance, output, figure, overwrite,
        device, batch_size,
    )  # fmt: skip


def _boxes(paths: list[Path]) -> list[tuple[Field, Segmentation]]:
    boxes = [_load_box(p) for p in paths]
    first = boxes[0][0]
    for path, (fields, _) in zip(paths[1:], boxes[1:], strict=True):
        if fields.n != first.n or abs(fields.box.length - first.box.length) > 1e-9 * first.box.length:
            raise ValueError(f"{path}: another grid or box size than {paths[0]}: give boxes of one kind")
        if fields.box.cosmology != first.box.cosmology:
            raise ValueError(f"{path}: another cosmology than {paths[0]}: give boxes of one cosmology")
    return boxes


@experiment_app.command("sigma8")
def sigma8_command(
    boxes: BoxesArgument,
    factors: Annotated[
        str, typer.Option(help="σ_8 factors (δ, φ scaled by each); 1.0, the reference, is added when missing.")
    ] = "0.7,1.0,1.3",
    simulate: Annotated[
        bool,
        typer.Option(
            "--simulate/--no-simulate",
            help="Re-run each box's N-body + FoF at every σ_8 (same seed; about 20 s per 64³ box and factor).",
        ),
    ] = True,
    n_bins: BinsOption = 6,
    semantic: SemanticOption = None,
    instance: InstanceOption = None,
    output: OutputOption = Path("runs/experiments"),
    figure: FigureOption = None,
    overwrite: OverwriteOption = False,
    device: DeviceOption = "auto",
    batch_size: BatchOption = 4,
) -> None:
    """§4.3: the predicted halo mass function's response to σ_8 (fields scaled) against the same boxes re-simulated
    at that σ_8. Writes <output>/sigma8.csv and .png."""
    from cosmoseg.protohalo.data import labelling_limit
    from cosmoseg.protohalo.experiment_figures import plot_sigma8_response
    from cosmoseg.protohalo.experiments import resimulate_segmentation, sigma8_response

    deviations: list[float] = []
    with report_errors():
        values = parse_values(factors, "--factors")
        if any(v <= 0 for v in values):
            raise ValueError(f"--factors must be > 0, got {values}")
        values = values if 1.0 in values else sorted([*values, 1.0])
        if n_bins < 1:
            raise ValueError(f"--bins must be >= 1, got {n_bins}")
        if not boxes:
            raise ValueError("give at least one box file")
        loaded = _boxes(boxes)
        table_path, png = _outputs(output, "sigma8", figure, overwrite)
        predict, models = _predictor(semantic, instance, loaded[0][0], device, batch_size)
        min_voxels = max(labelling_limit(truth) for _, truth in loaded)

        def rerun(index: int, factor: float) -> Any:
            segmentation, deviation = resimulate_segmentation(boxes[index], factor)
            deviations.append(deviation)
            typer.echo(f"  {boxes[index].name} re-simulated at σ8 × {factor:g}: {segmentation.n_instances} haloes")
            return segmentation.labels

        table = sigma8_response(
            [(f, t.labels) for f, t in loaded],
            values,
            predict,
            simulate=rerun if simulate else None,
            min_voxels=min_voxels,
            n_bins=n_bins,
        )
        meta = {**table.meta, "boxes": [str(b) for b in boxes], "models": models}
        if deviations:
            meta["max_field_deviation_resimulated"] = max(deviations)
        table = dataclasses.replace(table, meta=meta)
        _write(table, plot_sigma8_response(table), table_path, png, overwrite)
    typer.echo(f"sigma8: {len(boxes)} box(es), haloes of >= {min_voxels} voxels, models {models}")
    for i in range(len(table)):
        if table["factor"][i] == 1.0:
            continue
        typer.echo(
            f"  σ8 {table['sigma_8'][i]:.4g}, M {table['m_low'][i]:.3g}–{table['m_high'][i]:.3g}: response network "
            f"{table['response_pred'][i]:.3g} ± {table['response_pred_err'][i]:.2g}, N-body "
            f"{table['response_sim'][i]:.3g} ± {table['response_sim_err'][i]:.2g}"
        )


@experiment_app.command("bias")
def bias_command(
    boxes: BoxesArgument,
    epsilon: Annotated[float, typer.Option(help="The uniform shift ±δ_ε of the whole box (separate universe).")] = 0.05,
    potential: Annotated[
        str,
        typer.Option(
            help="quadratic: φ + δ_ε|q − q0|²/6 about the box centre (∇²φ = δ but on the box faces); poisson: φ "
            "unchanged (the periodic Poisson solution of the shifted δ)."
        ),
    ] = "quadratic",
    n_bins: BinsOption = 5,
    smoothing: Annotated[float, typer.Option(help="Gaussian smoothing of eq. (14), Mpc/h.")] = 6.0,
    semantic: SemanticOption = None,
    instance: InstanceOption = None,
    output: OutputOption = Path("runs/experiments"),
    figure: FigureOption = None,
    overwrite: OverwriteOption = False,
    device: DeviceOption = "auto",
    batch_size: BatchOption = 4,
) -> None:
    """The Lagrangian bias b_1L(M) of the predicted haloes from a ±δ_ε shift of the whole box, against the
    Sheth–Tormen peak-background split at the true haloes' masses. Writes <output>/bias_<potential>.csv and .png."""
    from cosmoseg.protohalo.data import labelling_limit
    from cosmoseg.protohalo.experiment_figures import plot_bias
    from cosmoseg.protohalo.experiments import bias_response
    from cosmoseg.protohalo.mass_bins import DELTA_COLLAPSE

    with report_errors():
        if not (epsilon > 0 and epsilon < DELTA_COLLAPSE):
            raise ValueError(f"--epsilon must be in (0, {DELTA_COLLAPSE:g}), got {epsilon}")
        if potential not in ("quadratic", "poisson"):
            raise ValueError(f"--potential must be quadratic or poisson, got {potential!r}")
        if n_bins < 1 or not smoothing > 0:
            raise ValueError(f"--bins must be >= 1 and --smoothing > 0, got {n_bins}, {smoothing}")
        if not boxes:
            raise ValueError("give at least one box file")
        loaded = _boxes(boxes)
        table_path, png = _outputs(output, f"bias_{potential}", figure, overwrite)
        predict, models = _predictor(semantic, instance, loaded[0][0], device, batch_size)
        min_voxels = max(labelling_limit(truth) for _, truth in loaded)
        table = bias_response(
            [(f, t.labels) for f, t in loaded],
            epsilon,
            predict,
            potential=potential,  # type: ignore[arg-type]
            min_voxels=min_voxels,
            n_bins=n_bins,
            smoothing=smoothing,
        )
        table = dataclasses.replace(table, meta={**table.meta, "boxes": [str(b) for b in boxes], "models": models})
        _write(table, plot_bias(table), table_path, png, overwrite)
    typer.echo(f"bias: {len(boxes)} box(es), ±δ_ε = {epsilon:g} ({potential}), models {models}")
    for i in range(len(table)):
        typer.echo(
            f"  M {table['m_low'][i]:.3g}–{table['m_high'][i]:.3g}: counts −/0/+ {table['counts_minus'][i]}/"
            f"{table['counts_zero'][i]}/{table['counts_plus'][i]}, b1L network {table['b1L_pred'][i]:.3g} ± "
            f"{table['b1L_pred_err'][i]:.2g} (jackknife ± {table['b1L_pred_err_jk'][i]:.2g}), Sheth–Tormen "
            f"{table['b1L_st'][i]:.3g}, eq. 14 true {table['b1L_eq14_true'][i]:.3g}"
        )
