"""The protohalo.panoptic stage: fields -> segmentation + halo catalog, its checks, and the shipped models."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from cosmoseg.data import Box, Field, Segmentation, save_artifact
from cosmoseg.errors import ArtifactError, ValidationError
from cosmoseg.nn import read_checkpoint
from cosmoseg.pipeline.context import RunContext, SilentReporter
from cosmoseg.pipeline.params import parse_params
from cosmoseg.protohalo.panoptic import combine_linear_fields
from cosmoseg.protohalo.pretrained import DEFAULT_MODELS_DIR, default_checkpoint, load_model_pair
from cosmoseg.protohalo.stages import PanopticStage
from cosmoseg.protohalo.training import TrainConfig, train

TINY = TrainConfig(size_in=8, size_out=4, base_filters=2, depth=1, batch_size=2, steps=2, validate_every=2)
BOX = Box(length=16.0)  # 8^3 cells of 2 Mpc/h


def _labels(n: int = 8) -> torch.Tensor:
    labels = torch.zeros((n, n, n), dtype=torch.int64)
    labels[0:3, 0:3, 0:3] = 1
    labels[4:6, 4:7, 2:5] = 2
    labels[1:3, 5:8, 5:7] = 3
    return labels


def _fields(seed: int, box: Box = BOX, n: int = 8) -> Field:
    gen = torch.Generator().manual_seed(seed)
    return Field(values=torch.randn((2, n, n, n), generator=gen), box=box, channels=("delta", "phi"))


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("panoptic_stage")
    paths = []
    for i in range(2):
        path = root / "suite" / f"box_{i:04d}.h5"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_artifact(path, {"fields": _fields(i), "segmentation": Segmentation(labels=_labels(), box=BOX)})
        paths.append(path)
    sem = train(TINY, paths, root / "out")
    ins = train(dataclasses.replace(TINY, task="instance", n_validation=0), paths, root / "out")
    return sem, ins


def _run(models: tuple[Path, Path], fields: Field, **params: object) -> dict:
    sem, ins = models
    parsed, problems = parse_params(
        PanopticStage.Params, {"semantic_model": str(sem), "instance_model": str(ins), **params}, PanopticStage.name
    )
    assert not problems, problems
    return PanopticStage(parsed, RunContext(device=torch.device("cpu"), seed=1, stage_id="t")).run(fields=fields)


def test_catalog_rows_are_the_labels(models: tuple[Path, Path]) -> None:
    out = _run(models, _fields(5), threshold=0.3)
    seg, halos = out["segmentation"], out["halos"]
    counts = torch.bincount(seg.labels.flatten(), minlength=seg.n_instances + 1)[1:]
    assert len(halos) == seg.n_instances > 0
    particle_mass = BOX.cosmology.particle_mass(8, 16.0)
    torch.testing.assert_close(halos["mass"].double(), counts.double() * particle_mass, rtol=1e-6, atol=0)
    assert bool((counts[:-1] >= counts[1:]).all())  # labels 1..K by decreasing size, as the rows
    assert seg.meta["threshold"] == 0.3 and halos.meta["threshold"] == 0.3
    assert seg.meta["semantic_model"] == str(models[0])


def test_threshold_extremes(models: tuple[Path, Path]) -> None:
    nothing = _run(models, _fields(5), threshold=1.0)
    assert nothing["segmentation"].n_instances == 0 and len(nothing["halos"]) == 0
    everything = _run(models, _fields(5), threshold=0.0)
    assert bool((everything["segmentation"].labels > 0).all())


def test_default_threshold_is_the_models(models: tuple[Path, Path]) -> None:
    stored = float(read_checkpoint(models[0])["metadata"]["threshold"])
    out = _run(models, _fields(5))
    assert out["segmentation"].meta["threshold"] == pytest.approx(stored)


def test_clustering_settings_from_the_instance_model_unless_given(models: tuple[Path, Path], tmp_path: Path) -> None:
    from cosmoseg.nn import export_weights

    sem, ins = models
    assert _run(models, _fields(5))["segmentation"].meta["n_dens"] == 20  # no recommendation: the paper's
    tuned = export_weights(ins, tmp_path / "tuned.pt", metadata={"n_dens": 6, "n_ngb": 7, "p_thresh": 2.5})
    meta = _run((sem, tuned), _fields(5))["segmentation"].meta
    assert (meta["n_dens"], meta["n_ngb"], meta["p_thresh"]) == (6, 7, 2.5)
    meta = _run((sem, tuned), _fields(5), n_dens=9)["segmentation"].meta
    assert (meta["n_dens"], meta["n_ngb"]) == (9, 7)


def test_min_particles_drops_small_haloes(models: tuple[Path, Path]) -> None:
    full = _run(models, _fields(6), threshold=0.3)["segmentation"]
    sizes = torch.bincount(full.labels.flatten())[1:]
    cut = int(sizes.median()) + 1
    kept = _run(models, _fields(6), threshold=0.3, min_particles=cut)
    assert kept["segmentation"].n_instances == int((sizes >= cut).sum()) == len(kept["halos"])
    assert bool((torch.bincount(kept["segmentation"].labels.flatten())[1:] >= cut).all())


def test_another_cell_size_is_a_clear_error(models: tuple[Path, Path]) -> None:
    with pytest.raises(ValidationError, match=r"cell size L/n = 32/8 = 4 Mpc/h.*trained at 16/8 = 2 Mpc/h"):
        _run(models, _fields(5, box=Box(length=32.0)))


def test_box_not_on_the_crop_lattice_is_a_clear_error(models: tuple[Path, Path]) -> None:
    with pytest.raises(ValidationError, match=r"n = 10 is not a multiple of the crop lattice step size_out = 4"):
        _run(models, _fields(5, box=Box(length=20.0), n=10))


def test_swapped_checkpoints_are_a_clear_error(models: tuple[Path, Path]) -> None:
    sem, ins = models
    with pytest.raises(
        ArtifactError, match=r"'task' is 'instance' in the checkpoint, expected 'semantic' or 'panoptic'"
    ):
        _run((ins, sem), _fields(5))


def test_checkpoints_of_different_crop_sizes_are_a_clear_error(tmp_path: Path, models: tuple[Path, Path]) -> None:
    box_paths = []
    for i in range(2):
        path = tmp_path / f"box_{i:04d}.h5"
        save_artifact(path, {"fields": _fields(i), "segmentation": Segmentation(labels=_labels(), box=BOX)})
        box_paths.append(path)
    config = dataclasses.replace(TINY, task="instance", size_in=6, size_out=4, n_validation=0)
    other = train(config, box_paths, tmp_path)
    with pytest.raises(ValidationError, match=r"size_in is 8 in .* but 6 in"):
        load_model_pair(models[0], other)


def test_nan_in_the_fields_is_a_clear_error(models: tuple[Path, Path]) -> None:
    fields = _fields(5)
    values = fields.values.clone()
    values[1, 2, 3, 4] = float("nan")
    with pytest.raises(ValidationError, match=r"NaN"):
        _run(models, dataclasses.replace(fields, values=values))


def test_bad_params_are_named() -> None:
    """Every param outside its declared bounds is named at once; so are the values between a sentinel (-1 or 0: the
    model's) and the valid range, which the params' problems() refuses once the bounds hold."""
    bad = {"threshold": 1.5, "p_thresh": -0.5, "batch_size": 0, "n_dens": -1, "lpt_order": 3, "iou_threshold": 0.4}
    _, problems = parse_params(PanopticStage.Params, bad, PanopticStage.name)
    assert len(problems) == len(bad)
    text = "\n".join(problems)
    assert all(f"param {name!r} must be" in text for name in bad), text
    gaps = {"threshold": -0.5, "p_thresh": 0.5}
    _, problems = parse_params(PanopticStage.Params, gaps, PanopticStage.name)
    text = "\n".join(problems)
    assert "param 'threshold' must be in [0, 1], or -1 for the model's, got -0.5" in text
    assert "param 'p_thresh' is a density ratio >= 1 (or 0 for the model's), got 0.5" in text


def test_shipped_models_are_small_documented_and_load_weights_only() -> None:
    from cosmoseg.protohalo.pretrained import PAPER_PAIR_DIR

    folders = (DEFAULT_MODELS_DIR, PAPER_PAIR_DIR)
    files = [folder / f"{task}.pt" for folder in folders for task in ("semantic", "instance")]
    assert files[:2] == [default_checkpoint("semantic"), default_checkpoint("instance")]
    assert all(f.is_file() for f in files)
    assert sum(f.stat().st_size for f in files) <= 20 * 2**20
    for folder in folders:
        card = (folder / "MODEL_CARD.md").read_text()
        for needed in ("configs/suites/protohalo-64.toml", "cosmoseg protohalo train", "F1", "steps", "precision"):
            assert needed in card, (folder, needed)
    pair = load_model_pair()
    assert pair.kind == "offsets"  # the centre-offsets formulation (issue #21), its grouping tuned on training boxes
    assert pair.grouping == GROUPING
    paper = load_model_pair(PAPER_PAIR_DIR / "semantic.pt", PAPER_PAIR_DIR / "instance.pt")
    assert paper.kind == "embedding" and paper.clustering == {"n_dens": 10, "n_ngb": 10, "p_thresh": 4.2}
    for p in (pair, paper):
        assert p.semantic_meta["threshold_calibrated"] is True
        assert p.semantic_meta["final"] is True and p.instance_meta["final"] is True
        assert p.cell_size == pytest.approx(50.0 / 64)
        assert p.semantic_meta["train_boxes"] == paper.semantic_meta["train_boxes"]  # the same split, boxes held out
    for f in files:
        torch.load(f, map_location="cpu", weights_only=True)  # plain tensors and metadata only


GROUPING = {
    "smoothing": 0.7,
    "min_votes": 8.0,
    "seed_separation": 3.0,
    "merge_radius": 0.9,
    "vote_radius": 0.7,
    "grow_threshold": 0.5,
}
"""The shipped default's centre grouping, as its MODEL_CARD.md gives it."""


def test_potential_from_the_density_is_the_one_of_the_initial_conditions() -> None:
    from cosmoseg.data import Cosmology
    from cosmoseg.sim.ics import initial_conditions

    fields = initial_conditions(Cosmology(power_backend="eisenstein-hu"), n=16, length=40.0, seed=3).fields
    density = Field(values=fields.values[:1], box=fields.box, channels=("delta",))
    combined = combine_linear_fields(density)
    assert combined.channels == ("delta", "phi")
    torch.testing.assert_close(combined.channel("phi"), fields.channel("phi"), rtol=1e-4, atol=1e-5)


def test_a_separate_potential_gives_the_same_prediction(models: tuple[Path, Path]) -> None:
    fields = _fields(5)
    density = Field(values=fields.values[:1], box=BOX, channels=("delta",))
    potential = Field(values=fields.values[1:], box=BOX, channels=("phi",))
    sem, ins = models
    parsed, _ = parse_params(
        PanopticStage.Params, {"semantic_model": str(sem), "instance_model": str(ins)}, PanopticStage.name
    )
    stage = PanopticStage(parsed, RunContext(device=torch.device("cpu"), seed=1, stage_id="t"))
    separate = stage.run(fields=density, potential=potential)["segmentation"]
    together = _run(models, fields)["segmentation"]
    assert torch.equal(separate.labels, together.labels)


def test_density_and_potential_of_different_shapes_or_boxes_are_clear_errors() -> None:
    density = _fields(1)
    with pytest.raises(ValidationError, match=r"different shapes: density \(8, 8, 8\), potential \(16, 16, 16\)"):
        combine_linear_fields(density, _fields(2, box=Box(length=32.0), n=16))
    with pytest.raises(ValidationError, match=r"different boxes: density L = 16 Mpc/h, potential L = 20 Mpc/h"):
        combine_linear_fields(density, _fields(2, box=Box(length=20.0)))
    with pytest.raises(ValidationError, match=r"expected a 'phi' channel"):
        combine_linear_fields(density, Field(values=density.values, box=BOX, channels=("a", "b")))


class _Recorder(SilentReporter):
    """Keeps every progress loop: (description, total, items yielded)."""

    def __init__(self) -> None:
        super().__init__()
        self.loops: list[tuple[str, int | None, int]] = []

    def track(self, iterable, *, total, description):  # type: ignore[no-untyped-def]
        count = 0
        for item in iterable:
            count += 1
            yield item
        self.loops.append((description, total, count))


def _stage(models: tuple[Path, Path], reporter: SilentReporter, **params: object) -> PanopticStage:
    sem, ins = models
    parsed, problems = parse_params(
        PanopticStage.Params, {"semantic_model": str(sem), "instance_model": str(ins), **params}, PanopticStage.name
    )
    assert not problems, problems
    return PanopticStage(parsed, RunContext(device=torch.device("cpu"), seed=1, stage_id="t", reporter=reporter))


def test_progress_over_the_crops_of_every_lattice(models: tuple[Path, Path]) -> None:
    """8^3 voxels, output crops of 4^3: 8 crops per lattice, 2 batches of 4 on the semantic lattice and on each of
    the two instance lattices; every loop is shown through the run context with its total."""
    reporter = _Recorder()
    _stage(models, reporter, threshold=0.3, batch_size=4).run(fields=_fields(5))
    assert [(d.split(" ")[0], d.split(" ")[1], total, n) for d, total, n in reporter.loops] == [
        ("semantic", "(8", 2, 2),
        ("instance", "A", 2, 2),
        ("instance", "B", 2, 2),
    ]


def test_the_truth_given_the_log_scores_the_prediction(models: tuple[Path, Path]) -> None:
    from cosmoseg.measure.instance_metrics import contingency, match_instances
    from cosmoseg.measure.segmentation import binary_scores

    reporter = SilentReporter()
    truth = Segmentation(labels=_labels(), box=BOX)
    out = _stage(models, reporter, threshold=0.3).run(fields=_fields(5), truth=truth)
    pred = out["segmentation"].labels
    f1 = binary_scores(pred > 0, truth.labels > 0)["F1"]
    match = match_instances(contingency(truth.labels, pred))
    (line,) = [m for m in reporter.messages if "vs the truth" in m]
    assert f"F1 {f1:.3f}" in line and f"precision {match.precision:.3f}, recall {match.recall:.3f}" in line
    assert f"against {float((truth.labels > 0).float().mean()):.3f}" in line
    without = _stage(models, reporter, threshold=0.3).run(fields=_fields(5))["segmentation"]
    assert torch.equal(without.labels, pred)  # the truth changes no output
    with pytest.raises(ValidationError, match=r"input 'truth': labels of shape \(16, 16, 16\).*\(8, 8, 8\)"):
        _stage(models, reporter).run(fields=_fields(5), truth=Segmentation(labels=_labels(16), box=Box(length=32.0)))


def _small_and_big(long_amplitude: float) -> tuple[Field, Field]:
    """A training-size box (8^3 cells of 2 Mpc/h, phi of zero mean) and a box twice as large that holds it 2x2x2
    times plus a mode of phi longer than the training box (wavelength 32 Mpc/h)."""
    gen = torch.Generator().manual_seed(11)
    values = torch.randn((2, 8, 8, 8), generator=gen)
    values[1] -= values[1].mean()
    small = Field(values=values, box=BOX, channels=("delta", "phi"))
    big = values.repeat(1, 2, 2, 2)
    x = (torch.arange(16, dtype=torch.float64) + 0.5) * 2.0
    big[1] += (long_amplitude * torch.cos(2 * torch.pi * x / 32.0)).float()[:, None, None]
    return small, Field(values=big, box=Box(length=32.0), channels=("delta", "phi"))


def test_a_bigger_box_is_predicted_as_the_training_boxes_are(models: tuple[Path, Path]) -> None:
    """The models see only the modes a training box can hold: the big box's prediction on each of its 8 copies of
    the small box is the small box's prediction, whatever the longer mode of phi (5 times phi's std)."""
    small, big = _small_and_big(long_amplitude=5.0)
    reporter = SilentReporter()
    p_small = _stage(models, reporter, threshold=0.3).run(fields=small)["segmentation"]
    p_big = _stage(models, reporter, threshold=0.3).run(fields=big)["segmentation"]
    assert p_big.probabilities is not None and p_small.probabilities is not None
    tiled = p_small.probabilities.repeat(2, 2, 2)
    torch.testing.assert_close(p_big.probabilities, tiled, rtol=0, atol=1e-5)
    assert torch.equal(p_big.labels > 0, p_small.labels.repeat(2, 2, 2) > 0)
    (line,) = [m for m in reporter.messages if "removed from phi" in m]
    assert "box of 32 Mpc/h" in line and "training boxes (16 Mpc/h" in line
    assert p_big.meta["input_highpass_length"] == 16.0 and p_small.meta["input_highpass_length"] == 0.0


def test_checkpoints_record_the_training_cosmology_and_preprocessing(models: tuple[Path, Path]) -> None:
    pair = load_model_pair(*models)
    assert pair.cosmology is not None and pair.cosmology["sigma_8"] == pytest.approx(BOX.cosmology.sigma_8)
    assert pair.semantic_meta["input_highpass"] == {"box_length": 16.0, "channels": ["phi"]}


def test_another_cosmology_is_a_warning_in_the_log(models: tuple[Path, Path]) -> None:
    from cosmoseg.data import Cosmology

    reporter = SilentReporter()
    other = Box(length=16.0, cosmology=Cosmology(sigma_8=0.7))
    fields = _fields(5)
    _stage(models, reporter, threshold=0.3).run(fields=dataclasses.replace(fields, box=other))
    (line,) = [m for m in reporter.messages if "warning" in m]
    assert f"sigma_8 0.7 (trained {BOX.cosmology.sigma_8:.6g})" in line and "extrapolate" in line
    assert "omega_m" not in line and "particle mass" not in line
    quiet = SilentReporter()
    _stage(models, quiet, threshold=0.3).run(fields=fields)
    assert not [m for m in quiet.messages if "warning" in m]


def test_shipped_models_record_their_suite_cosmology_and_preprocessing() -> None:
    import tomllib

    suite = tomllib.loads((Path(__file__).parents[2] / "configs/suites/protohalo-64.toml").read_text())
    from cosmoseg.protohalo.pretrained import PAPER_PAIR_DIR

    pair = load_model_pair()
    paper = load_model_pair(PAPER_PAIR_DIR / "semantic.pt", PAPER_PAIR_DIR / "instance.pt")
    for meta in (pair.semantic_meta, pair.instance_meta, paper.semantic_meta, paper.instance_meta):
        assert meta["cosmology"] == {**suite["cosmology"], "w0": -1.0, "wa": 0.0}
        assert meta["input_highpass"] == {"box_length": suite["grid"]["box"], "channels": ["phi"]}


def test_the_stage_hands_every_param_to_the_library_by_name() -> None:
    """The stage calls predict_protohaloes(**params): every param is one of its keywords, with the same default."""
    import inspect

    from cosmoseg.protohalo.predict import predict_protohaloes

    keywords = inspect.signature(predict_protohaloes).parameters
    for field in dataclasses.fields(PanopticStage.Params):
        assert field.name in keywords and keywords[field.name].default == field.default, field.name


@pytest.fixture(scope="module")
def lhs_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A pair trained on boxes of two cosmologies (σ_8 0.7 and 0.9, Ω_m 0.25 and 0.35): a suite over cosmologies."""
    from cosmoseg.data import Cosmology

    root = tmp_path_factory.mktemp("lhs_models")
    paths = []
    for i, (omega_m, sigma_8) in enumerate(((0.25, 0.7), (0.35, 0.9))):
        box = Box(length=16.0, cosmology=Cosmology(omega_m=omega_m, sigma_8=sigma_8))
        path = root / "suite" / f"box_{i:04d}.h5"
        path.parent.mkdir(parents=True, exist_ok=True)
        fields = dataclasses.replace(_fields(i), box=box)
        save_artifact(path, {"fields": fields, "segmentation": Segmentation(labels=_labels(), box=box)})
        paths.append(path)
    config = dataclasses.replace(TINY, n_validation=0)
    return train(config, paths, root / "out"), train(dataclasses.replace(config, task="instance"), paths, root / "out")


def test_a_suite_over_cosmologies_records_their_range_and_warns_only_outside_it(
    lhs_models: tuple[Path, Path],
) -> None:
    from cosmoseg.data import Cosmology

    pair = load_model_pair(*lhs_models)
    assert pair.cosmology_range == {"omega_m": (0.25, 0.35), "sigma_8": (0.7, 0.9)}
    assert pair.cosmology is not None and "sigma_8" not in pair.cosmology and "h" in pair.cosmology
    low, high = pair.particle_mass_range
    assert low == pytest.approx(Cosmology(omega_m=0.25).particle_mass(8, 16.0)) and high / low == pytest.approx(1.4)
    inside = Box(length=16.0, cosmology=Cosmology(omega_m=0.3, sigma_8=0.8))
    assert pair.domain_notes(dataclasses.replace(_fields(3), box=inside)) == []
    outside = Box(length=16.0, cosmology=Cosmology(omega_m=0.3, sigma_8=1.1))
    (note,) = pair.domain_notes(dataclasses.replace(_fields(3), box=outside))
    assert "sigma_8 1.1 (trained 0.7–0.9)" in note and "particle mass" not in note
    heavy = Box(length=16.0, cosmology=Cosmology(omega_m=0.5, sigma_8=0.8))
    notes = pair.domain_notes(dataclasses.replace(_fields(3), box=heavy))
    assert any("particle mass" in n and "–" in n for n in notes) and any("omega_m 0.5" in n for n in notes)


def test_the_shipped_pair_is_chosen_by_the_box_cell_size() -> None:
    from cosmoseg.protohalo.pretrained import SHIPPED_PAIR_DIRS

    for folder in SHIPPED_PAIR_DIRS:
        pair = load_model_pair(cell_size=load_model_pair(folder / "semantic.pt", folder / "instance.pt").cell_size)
        assert pair.semantic_path == folder / "semantic.pt" and pair.instance_path == folder / "instance.pt"
    assert load_model_pair(cell_size=0.123).semantic_path == default_checkpoint("semantic")


def test_the_omega_m_pair_is_small_documented_and_spans_its_suite() -> None:
    import tomllib

    from cosmoseg.protohalo.pretrained import SHIPPED_PAIR_DIRS

    folder = SHIPPED_PAIR_DIRS[1]
    files = [folder / "semantic.pt", folder / "instance.pt"]
    assert sum(f.stat().st_size for f in files) <= 20 * 2**20
    card = (folder / "MODEL_CARD.md").read_text()
    for needed in ("configs/suites/omega-m.toml", "cosmoseg protohalo train", "F1", "steps", "precision"):
        assert needed in card
    pair = load_model_pair(*files)
    assert pair.cell_size == pytest.approx(25.0 / 64) and pair.semantic_meta["threshold_calibrated"] is True
    suite = tomllib.loads((Path(__file__).parents[2] / "configs/suites/omega-m.toml").read_text())
    for name, (low, high) in suite["latin_hypercube"].items():
        trained_low, trained_high = pair.cosmology_range[name]
        assert low <= trained_low < low + 0.05 and high - 0.05 < trained_high <= high
    for f in files:
        torch.load(f, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def offset_models(tmp_path_factory: pytest.TempPathFactory, models: tuple[Path, Path]) -> tuple[Path, Path]:
    """The semantic net of ``models``, a centre-offsets net, and a panoptic net, on the same boxes."""
    root = tmp_path_factory.mktemp("offset_models")
    paths = sorted((models[0].parent.parent / "suite").glob("box_*.h5"))
    offsets = train(dataclasses.replace(TINY, task="offsets", n_validation=0), paths, root)
    panoptic = train(dataclasses.replace(TINY, task="panoptic", n_validation=0), paths, root)
    return offsets, panoptic


def test_an_offsets_pair_and_a_panoptic_net_run_as_the_stage(
    models: tuple[Path, Path], offset_models: tuple[Path, Path]
) -> None:
    offsets, panoptic = offset_models
    for sem, ins in ((models[0], offsets), (panoptic, panoptic)):
        out = _run((sem, ins), _fields(5), threshold=0.3)
        seg, halos = out["segmentation"], out["halos"]
        assert seg.meta["instances"] == "centre offsets" and seg.meta["symmetries"] == 1
        assert len(halos) == seg.n_instances
        assert bool(((seg.labels > 0) == (seg.probabilities > 0.3)).all())  # every masked voxel joins a halo
    augmented = _run((models[0], offsets), _fields(5), threshold=0.3, symmetries=4)["segmentation"]
    assert augmented.meta["symmetries"] == 4
    with pytest.raises(ValidationError, match="offsets or panoptic model"):
        _run(models, _fields(5), symmetries=2)
    with pytest.raises(ValidationError, match="panoptic net"):
        _run((panoptic, offsets), _fields(5))
    with pytest.raises(ArtifactError, match="expected 'instance' or 'offsets' for the instance model"):
        _run((models[0], panoptic), _fields(5))


def test_the_grown_membership_keeps_to_its_probability_and_only_lowers_the_threshold(
    models: tuple[Path, Path], offset_models: tuple[Path, Path]
) -> None:
    pair = load_model_pair(models[0], offset_models[0])
    grouping = {"vote_radius": 0.7, "grow_threshold": 0.2}
    grown = pair.predict(_fields(5), threshold=0.3, grouping=grouping)
    assert grown.meta["grouping_grow_threshold"] == 0.2 and grown.meta["grouping_vote_radius"] == 0.7
    assert grown.probabilities is not None and bool((grown.probabilities[grown.labels > 0] > 0.2).all())
    # a grow threshold above the semantic one adds nothing: the same labels as the cut alone
    above = pair.predict(_fields(5), threshold=0.3, grouping={**grouping, "grow_threshold": 0.5})
    assert torch.equal(above.labels, pair.predict(_fields(5), threshold=0.3, grouping={"vote_radius": 0.7}).labels)
    oracle = pair.predict(_fields(5), threshold=0.3, grouping=grouping, mask=_labels() > 0)
    assert bool(((oracle.labels > 0) <= (_labels() > 0)).all())  # an oracle mask is the membership: no growth
