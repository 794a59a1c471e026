"""The ``cosmoseg protohalo`` commands: a thin layer over training.py, evaluation.py and the checkpoints, with the
command kit of :mod:`cosmoseg.pipeline.commands` (errors one problem per line, the shared options)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cosmoseg.pipeline.commands import BoxesOption, DeviceOption, NValidationOption, SeedOption, report_errors
from cosmoseg.protohalo.experiment_commands import InstanceOption, SemanticOption, experiment_app

app = typer.Typer(help="Protohalo segmentation from the initial conditions (López-Cano et al.).", no_args_is_help=True)
app.add_typer(experiment_app, name="experiment")


@app.command("train")
def train_command(
    suite_dir: Annotated[Path, typer.Argument(help="Suite folder holding box_*.h5 files of `cosmoseg simulate`.")],
    task: Annotated[
        str,
        typer.Option(
            help="semantic, instance (the paper's embedding), offsets (centre offsets), panoptic (one net: semantic "
            "logit + centre offsets) or mass-bins (each voxel's class: no halo, or its halo's log-mass bin)."
        ),
    ] = "semantic",
    backbone: Annotated[
        str,
        typer.Option(
            help="vnet (COPRA and the segmentation nets) or unetr (VIPR, MONAI's UNETR: mass-bins only, --size-in a "
            "multiple of 16; needs cosmoseg[transformer])."
        ),
    ] = "vnet",
    steps: Annotated[int, typer.Option(help="Total optimizer steps (a resumed run trains up to it).")] = 1000,
    size_in: Annotated[int, typer.Option(help="Input crop side (voxels).")] = 40,
    size_out: Annotated[int, typer.Option(help="Output crop side (voxels); size_in - size_out must be even.")] = 32,
    batch_size: Annotated[int, typer.Option(help="Crops per step.")] = 2,
    base_filters: Annotated[
        int, typer.Option(help="V-Net filters at the first level (UNETR: the decoder's full-resolution filters).")
    ] = 8,
    depth: Annotated[int, typer.Option(help="V-Net down-sampling levels.")] = 3,
    hidden_size: Annotated[int, typer.Option(help="UNETR: the transformer's token width.")] = 96,
    num_heads: Annotated[int, typer.Option(help="UNETR: attention heads (a divisor of --hidden-size).")] = 4,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-3,
    lr_schedule: Annotated[str, typer.Option(help="constant, or cosine (--lr down to 0 at --steps).")] = "constant",
    init_from: Annotated[
        Path | None, typer.Option(help="Start from the weights of this checkpoint (same architecture): fine-tuning.")
    ] = None,
    position_residual: Annotated[
        float,
        typer.Option(help="Instance only: embedding = this scale (1/(Mpc/h)) x Lagrangian position + net; 0 = off."),
    ] = 0.0,
    c_background: Annotated[
        float,
        typer.Option(
            help="Instance only: weight of a term keeping voxels of no halo away from every halo centre "
            "(0 = the paper's loss)."
        ),
    ] = 0.0,
    channels: Annotated[
        str,
        typer.Option(
            help="mass-bins: the input channels, comma-separated, of delta, phi, shear (the tidal shear of phi); "
            "'' = delta,phi."
        ),
    ] = "",
    n_mass_bins: Annotated[
        int, typer.Option(help="mass-bins: log-mass bins, equal in log M from the labelling limit to the largest halo.")
    ] = 6,
    small_halo_boost: Annotated[
        float,
        typer.Option(
            help="semantic/panoptic: weight a halo voxel's cross-entropy by 1 + this x min(1, N_min/n), n its "
            "halo's voxels in the crop, N_min the suite's smallest labelled halo (0 = the paper's loss)."
        ),
    ] = 0.0,
    offset_weighting: Annotated[
        str, typer.Option(help="offsets/panoptic: 'halo' (every halo weighs the same) or 'voxel'.")
    ] = "halo",
    c_offset: Annotated[float, typer.Option(help="panoptic: weight of the offset loss beside the semantic one.")] = 0.1,
    n_validation: NValidationOption = 1,
    split_from: Annotated[
        Path | None,
        typer.Option(
            help="Take the training and validation boxes a checkpoint records (its train_boxes, validation_boxes) "
            "instead of a new split: rerun the training of a model such as the shipped ones."
        ),
    ] = None,
    validate_every: Annotated[int, typer.Option(help="Validate and checkpoint every this many steps.")] = 100,
    seed: SeedOption = 0,
    device: DeviceOption = "auto",
    output: Annotated[Path | None, typer.Option(help="Checkpoint folder (default: runs/protohalo).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from <output>/<task>.pt.")] = False,
    no_calibrate: Annotated[
        bool, typer.Option("--no-calibrate", help="Keep the semantic threshold at 0.5 (no full-box calibration).")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Train a protohalo net (semantic, instance, offsets, panoptic, mass bins) on a suite.

    Writes a resumable checkpoint <output>/<task>.pt. Under `torchrun --nproc-per-node N -m cosmoseg.cli protohalo
    train ...` the N processes train data-parallel (each takes batch_size/N crops of every step; NCCL on CUDA, one
    GPU per process, gloo on CPU) and rank 0 writes the checkpoint and prints."""
    from rich.console import Console

    from cosmoseg.nn.distributed import init_from_env, is_main_process, shutdown
    from cosmoseg.pipeline import resolve_device
    from cosmoseg.protohalo.training import TrainConfig, find_boxes, train

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    folder = output or Path("runs") / "protohalo"
    with report_errors():
        run_device = init_from_env(resolve_device(device))  # under torchrun: joins the group, cuda:LOCAL_RANK
        main_process = is_main_process()
        say = (lambda message: None) if quiet or not main_process else (lambda m: console.print(m, markup=False))
        if task not in ("semantic", "instance", "offsets", "panoptic", "mass-bins"):
            raise ValueError(f"--task must be semantic, instance, offsets, panoptic or mass-bins, got {task!r}")
        config = TrainConfig(
            task=task,  # type: ignore[arg-type]
            backbone=backbone,  # type: ignore[arg-type]
            hidden_size=hidden_size,
            num_heads=num_heads,
            size_in=size_in,
            size_out=size_out,
            base_filters=base_filters,
            depth=depth,
            batch_size=batch_size,
            steps=steps,
            lr=lr,
            position_residual=position_residual,
            c_background=c_background,
            small_halo_boost=small_halo_boost,
            channels=tuple(c.strip() for c in channels.split(",") if c.strip()),
            n_mass_bins=n_mass_bins,
            offset_weighting=offset_weighting,  # type: ignore[arg-type]
            c_offset=c_offset,
            lr_schedule=lr_schedule,  # type: ignore[arg-type]
            init_from=str(init_from) if init_from else "",
            split_from=str(split_from) if split_from else "",
            n_validation=n_validation,
            validate_every=validate_every,
            seed=seed,
            calibrate=not no_calibrate,
            device=str(run_device),
        )
        try:
            path = train(config, find_boxes(suite_dir), folder, resume=resume, log=say)
        finally:
            shutdown()
    if main_process:
        print(f"checkpoint: {path}")


@app.command("export")
def export_command(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint of `cosmoseg protohalo train`.")],
    output: Annotated[Path, typer.Argument(help="Where to write the weights-only checkpoint (.pt).")],
    n_dens: Annotated[int | None, typer.Option(help="Instance: recommended clustering N_dens to store.")] = None,
    n_ngb: Annotated[int | None, typer.Option(help="Instance: recommended clustering N_ngb to store.")] = None,
    p_thresh: Annotated[float | None, typer.Option(help="Instance: recommended persistence threshold.")] = None,
    smoothing: Annotated[
        float | None, typer.Option(help="Offsets/panoptic: the vote density's Gaussian smoothing (cells) to store.")
    ] = None,
    min_votes: Annotated[
        float | None, typer.Option(help="Offsets/panoptic: the smallest seed strength to store.")
    ] = None,
    seed_separation: Annotated[
        float | None, typer.Option(help="Offsets/panoptic: the smallest distance between seeds (cells) to store.")
    ] = None,
    merge_radius: Annotated[
        float | None,
        typer.Option(help="Offsets/panoptic: merge a group into a larger one within this fraction of its radius."),
    ] = None,
    vote_radius: Annotated[
        float | None,
        typer.Option(help="Offsets/panoptic: drop votes farther than this fraction of their group's radius."),
    ] = None,
    grow_threshold: Annotated[
        float | None,
        typer.Option(
            help="Offsets/panoptic: voxels above this probability join a group their vote lands within "
            "--vote-radius of."
        ),
    ] = None,
    calibrate_classes: Annotated[
        bool,
        typer.Option(
            "--calibrate-classes",
            help="Mass-bins: store the class biases that make the argmax predict each class's voxel count on the "
            "checkpoint's training boxes (needs --suite).",
        ),
    ] = False,
    suite: Annotated[
        Path | None,
        typer.Option(
            help="Suite folder holding the checkpoint's train_boxes: record the cosmologies and particle masses they "
            "span (cosmology, cosmology_range, particle_mass_range) for a checkpoint trained before they were recorded."
        ),
    ] = None,
) -> None:
    """Write a checkpoint's weights and metadata without the optimizer state: a third of the size, for shipping.

    For an instance model, --n-dens/--n-ngb/--p-thresh store the clustering settings that protohalo.panoptic and
    `evaluate` then use by default; for an offsets or panoptic model, --smoothing/--min-votes/--seed-separation/
    --merge-radius/--vote-radius/--grow-threshold store its centre grouping (tune them on training boxes, not on the
    validation ones)."""
    from cosmoseg.data import Field, load_artifact
    from cosmoseg.nn import export_weights, read_checkpoint
    from cosmoseg.protohalo.training import ARCHITECTURE_KEYS, load_model, mass_bin_class_bias, training_cosmology

    with report_errors():
        metadata = read_checkpoint(checkpoint)["metadata"]
        missing = [k for k in ARCHITECTURE_KEYS if k not in metadata]
        if missing:
            raise ValueError(f"{checkpoint}: metadata lacks {missing}: not a protohalo model checkpoint")
        extra: dict[str, object] = {"exported_from": checkpoint.name}
        clustering = {"n_dens": n_dens, "n_ngb": n_ngb, "p_thresh": p_thresh}
        if any(v is not None for v in clustering.values()):
            if metadata.get("task") != "instance":
                raise ValueError("--n-dens/--n-ngb/--p-thresh apply to instance checkpoints only")
            if (n_dens is not None and n_dens < 1) or (n_ngb is not None and n_ngb < 1):
                raise ValueError(f"--n-dens and --n-ngb must be >= 1, got {n_dens}, {n_ngb}")
            if p_thresh is not None and not p_thresh >= 1.0:
                raise ValueError(f"--p-thresh is a density ratio >= 1, got {p_thresh}")
            extra |= {k: v for k, v in clustering.items() if v is not None}
        grouping = {
            "smoothing": smoothing,
            "min_votes": min_votes,
            "seed_separation": seed_separation,
            "merge_radius": merge_radius,
            "vote_radius": vote_radius,
            "grow_threshold": grow_threshold,
        }
        if any(v is not None for v in grouping.values()):
            if metadata.get("task") not in ("offsets", "panoptic"):
                raise ValueError(
                    "--smoothing/--min-votes/--seed-separation/--merge-radius/--vote-radius/--grow-threshold apply to "
                    "offsets and panoptic checkpoints"
                )
            negative = {k: v for k, v in grouping.items() if v is not None and not v >= 0}
            if negative:
                raise ValueError(f"the grouping settings must be >= 0, got {negative}")
            extra |= {k: float(v) for k, v in grouping.items() if v is not None}
        if suite is not None:
            names = [str(name) for name in metadata.get("train_boxes", [])]
            missing = [name for name in names if not (suite / name).is_file()]
            if not names or missing:
                raise ValueError(f"{suite} lacks the checkpoint's train_boxes {missing[:4] or '(none recorded)'}")
            fields = [load_artifact(suite / name)["fields"] for name in names]
            extra |= training_cosmology([f for f in fields if isinstance(f, Field)])
        if calibrate_classes:
            if metadata.get("task") != "mass-bins" or suite is None:
                raise ValueError("--calibrate-classes applies to mass-bins checkpoints, with --suite")
            boxes = [load_artifact(suite / str(name)) for name in metadata.get("train_boxes", [])]
            model, _ = load_model(checkpoint, "mass-bins")
            pairs = [(box["fields"], box["segmentation"]) for box in boxes]
            extra["class_log_bias"] = mass_bin_class_bias(model, metadata, pairs)
            print("class biases: " + ", ".join(f"{b:+.3f}" for b in extra["class_log_bias"] or []))
        path = export_weights(checkpoint, output, metadata=extra)
    print(f"weights: {path} ({path.stat().st_size / 2**20:.2f} MiB)")


@app.command("catalogs")
def catalogs_command(
    suite_dir: Annotated[Path, typer.Argument(help="Suite folder holding box_*.h5 files of `cosmoseg simulate`.")],
    truth: Annotated[
        bool,
        typer.Option(
            "--truth", help="Take each box's true (FoF) Lagrangian segmentation instead of the networks' prediction."
        ),
    ] = False,
    semantic: SemanticOption = None,
    instance: InstanceOption = None,
    min_particles: Annotated[
        int, typer.Option(help="Leave out haloes of fewer voxels (the suite's FoF limit compares like for like).")
    ] = 1,
    lpt_order: Annotated[int, typer.Option(help="The LPT that places the haloes at z = 0 (1 or 2).")] = 2,
    boxes: BoxesOption = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Keep catalogs already written with these settings.")
    ] = False,
    device: DeviceOption = "auto",
    output: Annotated[
        Path | None,
        typer.Option(help="Folder for halos_<i>.h5 (default: SUITE/halos-protohalo, or SUITE/halos-lpt-truth)."),
    ] = None,
) -> None:
    """Halo catalogs of a suite's boxes from their initial conditions alone (protohalo segmentation + 2LPT), one
    halos_<i>.h5 per box, for `cosmoseg galaxies paint-suite --halos`."""
    from cosmoseg.pipeline import resolve_device
    from cosmoseg.protohalo.suite_catalogs import CatalogSettings, catalog_suite
    from cosmoseg.sim.commands import parse_indices

    with report_errors():
        settings = CatalogSettings(
            source="truth" if truth else "predicted",
            semantic_model=str(semantic) if semantic else "",
            instance_model=str(instance) if instance else "",
            min_particles=min_particles,
            lpt_order=lpt_order,
        )
        folder = output or suite_dir / ("halos-lpt-truth" if truth else "halos-protohalo")
        paths = catalog_suite(
            suite_dir,
            folder,
            settings,
            boxes=parse_indices(boxes) if boxes else None,
            resume=resume,
            device=resolve_device(device),
            log=typer.echo,
        )
    typer.echo(f"{len(paths)} halo catalog(s) in {folder}")


@app.command("evaluate")
def evaluate_command(
    boxes: Annotated[
        list[Path] | None,
        typer.Argument(help="Validation box files (fields + FoF segmentation); default: the models' in --suite."),
    ] = None,
    suite: Annotated[
        Path | None,
        typer.Option(help="Suite folder holding the boxes the semantic model held out (its checkpoint records them)."),
    ] = None,
    semantic: SemanticOption = None,
    instance: InstanceOption = None,
    twins: Annotated[
        list[Path] | None, typer.Option("--twins", help="Twin box files (segmentation_a/_b): the baseline.")
    ] = None,
    output: Annotated[Path, typer.Option(help="Folder for evaluation.h5.")] = Path("runs/protohalo/evaluation"),
    batch_size: Annotated[int, typer.Option(help="Crops per forward pass.")] = 4,
    keep: Annotated[
        int,
        typer.Option(
            help="Side of the central part of each output crop used, and the lattice step (voxels; 0 = the whole "
            "output; the paper keeps half of it, at 8 times the crops)."
        ),
    ] = 0,
    oracles: Annotated[
        bool,
        typer.Option(
            "--oracles",
            help="Also score the instance model on the true mask, and the semantic mask with the true instances: "
            "which of the two loses the instances.",
        ),
    ] = False,
    symmetries: Annotated[
        int,
        typer.Option(
            help="Test-time augmentation over this many of the 48 cube symmetries (centre-offsets models only)."
        ),
    ] = 1,
    device: DeviceOption = "auto",
) -> None:
    """Score the panoptic prediction on validation boxes next to the twin baseline; writes <output>/evaluation.h5.

    The boxes are the BOX files given, else the semantic model's validation boxes in --suite. Prints a line per box
    whose fields were filtered (a box larger than the training boxes) and a warning per box whose particle mass or
    cosmology differs from the training boxes'."""
    from cosmoseg.data import save_artifact
    from cosmoseg.pipeline import resolve_device
    from cosmoseg.protohalo.evaluation import SOURCES, evaluate
    from cosmoseg.protohalo.pretrained import validation_boxes

    with report_errors():
        if keep < 0:
            raise ValueError(f"--keep must be >= 0 voxels (0 = the whole output crop), got {keep}")
        if not boxes and suite is None:
            raise ValueError(
                "give the boxes to score (BOX.h5 ...) or --suite, the folder of the models' validation boxes"
            )
        tables = evaluate(
            semantic,
            instance,
            boxes or validation_boxes(suite, semantic),
            twin_paths=twins or (),
            batch_size=batch_size,
            device=str(resolve_device(device)),
            keep=keep or None,
            symmetries=symmetries,
            log=print,
            oracles=oracles,
        )
        path = save_artifact(output / "evaluation.h5", tables)
    scores = tables["scores"]
    for i, source in enumerate(scores["source"].tolist()):
        keys = ("F1", "ARI", "instance_precision", "instance_recall", "instance_precision_labelled")
        row = {key: float(scores[key][i]) for key in (*keys, "instance_recall_labelled")}
        print(
            f"{SOURCES[source]:>28}: F1 {row['F1']:.4f}  ARI {row['ARI']:.4f}  instance precision / recall "
            f"{row['instance_precision']:.4f} / {row['instance_recall']:.4f} (haloes below the labelling limit "
            f"dropped: {row['instance_precision_labelled']:.4f} / {row['instance_recall_labelled']:.4f})"
        )
    print(f"evaluation: {path}")
