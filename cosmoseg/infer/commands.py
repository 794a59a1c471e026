"""The ``cosmoseg infer`` commands: train a graph network on a suite's galaxy catalogs, and evaluate models on held-out
boxes (a thin layer over training.py and evaluation.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cosmoseg.pipeline.commands import (
    DeviceOption,
    NTestOption,
    NValidationOption,
    SeedOption,
    invocation,
    report_errors,
)

app = typer.Typer(
    help="Cosmology (Ω_m, σ_8) from galaxy graphs with graph neural networks (de Santi et al. 2023).",
    no_args_is_help=True,
)

GalaxiesArgument = Annotated[
    Path, typer.Argument(help="Folder of galaxies_<i>.h5 (`cosmoseg galaxies paint-suite`), one catalog per box.")
]


@app.command("train")
def train_command(
    ctx: typer.Context,
    galaxies: GalaxiesArgument,
    head: Annotated[str, typer.Option(help="moments (posterior mean and σ) or flow (full posterior).")] = "moments",
    velocities: Annotated[
        str,
        typer.Option(help="none (positions only), 3d (real space) or los (line of sight, after --systematics rsd)."),
    ] = "3d",
    properties: Annotated[
        str, typer.Option(help="Galaxy properties as node features, comma-separated (e.g. log_mstar,color_gi).")
    ] = "",
    r_link: Annotated[float, typer.Option(help="Linking length, Mpc/h.")] = 1.25,
    systematics: Annotated[
        str,
        typer.Option(help='Observational effects, e.g. "rsd,mask:0.1,pos_err:0.5,vel_err:50,cut:log_mstar>9.5".'),
    ] = "",
    hidden: Annotated[int, typer.Option(help="Width of the hidden layers.")] = 64,
    layers: Annotated[int, typer.Option(help="Message-passing blocks.")] = 2,
    lr: Annotated[float, typer.Option(help="Learning rate (AdamW).")] = 1e-3,
    batch_size: Annotated[int, typer.Option(help="Graphs per step.")] = 16,
    max_epochs: Annotated[int, typer.Option(help="The most epochs.")] = 300,
    patience: Annotated[int, typer.Option(help="Epochs without a better validation loss before stopping.")] = 30,
    subbox_fraction: Annotated[
        float, typer.Option(help="Augmentation: train on a random sub-box of this volume fraction (0 = off).")
    ] = 0.0,
    n_validation: NValidationOption = 100,
    n_test: NTestOption = 100,
    seed: SeedOption = 0,
    device: DeviceOption = "auto",
    output: Annotated[Path, typer.Option(help="Model file.")] = Path("runs/infer/model.pt"),
) -> None:
    """Train a graph network on the training boxes, stop early on the validation boxes, save it with its card.

    Under `torchrun --nproc-per-node N -m cosmoseg.cli infer train ...` the N processes train data-parallel (each
    takes its share of every batch of --batch-size graphs and of the validation graphs, the same weights as one
    process; NCCL on CUDA, one GPU per process, gloo on CPU) and rank 0 writes the model and prints."""
    from cosmoseg.infer.evaluation import train_from_folder
    from cosmoseg.infer.graphs import GraphSpec
    from cosmoseg.infer.training import TrainSettings
    from cosmoseg.nn.distributed import init_from_env, is_main_process, shutdown
    from cosmoseg.pipeline import resolve_device

    main_process = True
    with report_errors():
        run_device = init_from_env(resolve_device(device))  # under torchrun: joins the group, cuda:LOCAL_RANK
        main_process = is_main_process()
        spec = GraphSpec(
            r_link=r_link,
            velocities=velocities,  # type: ignore[arg-type]
            properties=tuple(p for p in properties.split(",") if p),
        )
        settings = TrainSettings(
            head=head,  # type: ignore[arg-type]
            hidden=hidden,
            layers=layers,
            lr=lr,
            batch_size=batch_size,
            max_epochs=max_epochs,
            patience=patience,
            subbox_fraction=subbox_fraction,
        )
        try:
            path, metrics = train_from_folder(
                galaxies,
                spec,
                systematics,
                settings,
                n_validation=n_validation,
                n_test=n_test,
                seed=seed,
                device=run_device,
                command=invocation(ctx),
                output=output,
                log=typer.echo if main_process else (lambda message: None),
            )
        finally:
            shutdown()
    if not main_process:
        return
    typer.echo(metrics)
    typer.echo(f"model: {path}")


@app.command("evaluate")
def evaluate_command(
    galaxies: GalaxiesArgument,
    model: Annotated[list[Path], typer.Option("--model", help="A model file of `cosmoseg infer train` (repeatable).")],
    boxes: Annotated[
        str,
        typer.Option(
            help="Which boxes: test (the model's held-out test boxes), validation, or all (a new suite or variant)."
        ),
    ] = "test",
    systematics: Annotated[
        str | None,
        typer.Option(help="Observe the catalogs with these effects instead of the model's own (robustness tests)."),
    ] = None,
    n_samples: Annotated[
        int, typer.Option(help="Posterior samples per box (flow head; Gaussian ones for TARP).")
    ] = 1000,
    seed: SeedOption = 0,
    device: DeviceOption = "auto",
    output: Annotated[Path, typer.Option(help="Folder for evaluation.h5 and the figures.")] = Path(
        "runs/infer/evaluation"
    ),
    reference: Annotated[
        Path | None,
        typer.Option(
            help="Another folder of catalogs of the same boxes (e.g. the N-body-built ones when GALAXIES holds those "
            "built from the initial conditions alone): also scored, and the estimates compared box by box."
        ),
    ] = None,
) -> None:
    """Score models on held-out boxes: RMSE, mean relative error ε, R², the uncut reduced χ² and the fraction of boxes
    with χ² > 10, 68%/95% coverage and TARP; prints a table, writes evaluation.h5 and figures (predicted vs true Ω_m
    with error bars, TARP)."""
    from cosmoseg.infer.evaluation import evaluate_models
    from cosmoseg.pipeline import resolve_device

    with report_errors():
        if boxes not in ("test", "validation", "all"):
            raise ValueError(f"--boxes must be test, validation or all, got {boxes!r}")
        text = evaluate_models(
            galaxies,
            model,
            boxes=boxes,
            systematics=systematics,
            n_samples=n_samples,
            seed=seed,
            device=resolve_device(device),
            output=output,
            reference=reference,
        )
    typer.echo(text)
