"""Halo catalogs of every box of a suite from its initial conditions alone (``cosmoseg protohalo catalogs``).

For each ``box_<i>.h5`` of a suite (fields δ, φ and, for ``source="truth"``, the FoF Lagrangian segmentation), this
writes ``<output>/halos_<i>.h5`` holding one :class:`HaloCatalog` ``halos`` placed at z = 0 by 2LPT
(:mod:`cosmoseg.protohalo.catalog`), from one of two segmentations:

- ``"predicted"``: the protohalo networks' panoptic segmentation
  (:func:`~cosmoseg.protohalo.predict.predict_protohaloes`) — the chain without an N-body run;
- ``"truth"``: the box's true (FoF) Lagrangian segmentation moved by the same 2LPT — the oracle that separates the
  networks' error from what LPT costs (positions and velocities of haloes without their N-body orbits).

The catalogs carry the box's cosmology, so ``cosmoseg galaxies paint-suite --halos DIR`` paints them as it paints the
N-body haloes. Files are written atomically; ``resume`` keeps those already written with the same settings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Literal, TypeVar

import torch

from cosmoseg.data import Field, HaloCatalog, Segmentation, load_artifact, save_artifact
from cosmoseg.errors import ArtifactError, ConfigError
from cosmoseg.protohalo.catalog import halo_catalog_from_segmentation
from cosmoseg.protohalo.predict import predict_protohaloes, truth_scores, truth_summary
from cosmoseg.sim.suites import box_index, box_is_done, find_boxes

__all__ = ["CatalogSettings", "catalog_suite", "halos_path", "scores_summary"]

T = TypeVar("T")
Progress = Callable[[Iterable[T], str], Iterator[T]]

Source = Literal["predicted", "truth"]


@dataclasses.dataclass(frozen=True)
class CatalogSettings:
    """What decides a box's halo catalog (and the fingerprint ``resume`` compares).

    source: "predicted" (the protohalo networks) or "truth" (the box's FoF Lagrangian segmentation).
    semantic_model, instance_model: checkpoints of ``cosmoseg protohalo train`` ("" = the shipped models; predicted).
    min_particles: haloes with fewer voxels are left out (choose the suite's FoF limit to compare like for like).
    lpt_order: the LPT that places the haloes at z = 0 (1 or 2).
    """

    source: Source = "predicted"
    semantic_model: str = ""
    instance_model: str = ""
    min_particles: int = 1
    lpt_order: int = 2

    def __post_init__(self) -> None:
        problems = []
        if self.source not in ("predicted", "truth"):
            problems.append(f"source must be 'predicted' or 'truth', got {self.source!r}")
        if self.source == "truth" and (self.semantic_model or self.instance_model):
            problems.append("the true segmentation needs no model: give models with source 'predicted' only")
        if self.min_particles < 1:
            problems.append(f"min_particles must be >= 1, got {self.min_particles}")
        if self.lpt_order not in (1, 2):
            problems.append(f"lpt_order must be 1 or 2, got {self.lpt_order}")
        for model in (self.semantic_model, self.instance_model):
            if model and not Path(model).is_file():
                problems.append(f"{model}: no such model file")
        if problems:
            raise ConfigError("\n".join(problems), context="protohalo catalogs")

    def fingerprint(self) -> str:
        payload = dataclasses.asdict(self)
        for key in ("semantic_model", "instance_model"):  # a retrained model at the same path is another model
            path = Path(payload[key]) if payload[key] else None
            payload[key] = hashlib.sha256(path.read_bytes()).hexdigest() if path else ""
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def halos_path(output_dir: Path, index: int) -> Path:
    return output_dir / f"halos_{index:04d}.h5"


def _box_objects(path: Path) -> tuple[Field, Segmentation | None, int | None]:
    """The box's fields, its true segmentation (or None) and its number of FoF haloes (or None)."""
    objects = load_artifact(path)
    fields = objects.get("fields")
    if not isinstance(fields, Field) or "delta" not in fields.channels:
        raise ArtifactError(f"{path}: holds no Field 'fields' with a 'delta' channel (a box of `cosmoseg simulate`)")
    truth, fof = objects.get("segmentation"), objects.get("halos")
    return (
        fields,
        truth if isinstance(truth, Segmentation) else None,
        len(fof) if isinstance(fof, HaloCatalog) else None,
    )


def catalog_suite(
    suite_dir: str | Path,
    output_dir: str | Path,
    settings: CatalogSettings,
    *,
    boxes: Iterable[int] | None = None,
    resume: bool = False,
    device: torch.device | str = "cpu",
    progress: Progress | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> list[Path]:
    """Write the halo catalog of every box of ``suite_dir`` (or of ``boxes``) into ``output_dir``; returns the files.

    ``log`` gets one line per box: the number of haloes against the N-body (FoF) catalog's and, when the box holds its
    true segmentation, the prediction's scores against it. `ConfigError` for boxes the suite lacks; `ArtifactError`
    for a box file without fields (or without a segmentation when ``source`` is "truth").
    """
    suite, out = Path(suite_dir), Path(output_dir)
    paths = {box_index(p): p for p in find_boxes(suite)}
    wanted = sorted(paths) if boxes is None else list(boxes)
    missing = [i for i in wanted if i not in paths]
    if missing:
        raise ConfigError(f"boxes {missing} have no file box_<i>.h5 in {suite}", context="protohalo catalogs")
    out.mkdir(parents=True, exist_ok=True)
    fingerprint = settings.fingerprint()
    written = []
    box_scores: list[dict[str, float]] = []
    items: Iterable[int] = progress(wanted, "halo catalogs from the ICs") if progress else wanted
    for index in items:
        path = halos_path(out, index)
        written.append(path)
        if resume and box_is_done(path, fingerprint, "catalog_settings_fingerprint"):
            continue
        fields, truth, n_fof = _box_objects(paths[index])
        score_attrs: dict[str, float] = {}
        if settings.source == "truth":
            if truth is None:
                raise ArtifactError(f"{paths[index]}: holds no Segmentation 'segmentation' to take as the truth")
            halos, _ = halo_catalog_from_segmentation(
                truth, fields, lpt_order=settings.lpt_order, min_particles=settings.min_particles
            )
            scores = ""
        else:
            predicted, halos = predict_protohaloes(
                fields,
                semantic_model=settings.semantic_model,
                instance_model=settings.instance_model,
                lpt_order=settings.lpt_order,
                min_particles=settings.min_particles,
                device=device,
            )
            scores = f"; {truth_summary(predicted, truth)}" if truth is not None else ""
            if truth is not None:
                box_scores.append(truth_scores(predicted, truth))
                score_attrs = {f"score_{key}": value for key, value in box_scores[-1].items()}
        meta = halos.meta | {"catalog_source": settings.source, "box_index": index}
        halos = dataclasses.replace(halos, meta=meta)
        attrs = {"catalog_settings_fingerprint": fingerprint, "box_index": index, "source": str(paths[index])}
        save_artifact(path, {"halos": halos}, attrs=attrs | score_attrs)
        against = f" against {n_fof} FoF haloes" if n_fof is not None else ""
        log(f"box {index}: {len(halos)} haloes ({settings.source}){against}{scores} -> {path}")
    if box_scores:
        log(scores_summary(box_scores))
    return written


def scores_summary(box_scores: Sequence[dict[str, float]]) -> str:
    """One line: the mean and spread over boxes of the scores of :func:`~cosmoseg.protohalo.predict.truth_scores`."""
    table = {key: torch.tensor([s[key] for s in box_scores], dtype=torch.float64) for key in box_scores[0]}

    def stat(key: str) -> str:
        values = table[key]
        spread = float(values.std()) if len(values) > 1 else 0.0
        return f"{float(values.mean()):.3f} ± {spread:.3f}"

    ratio = float(table["n_pred"].sum() / table["n_true"].sum().clamp(min=1))
    return (
        f"mean over {len(box_scores)} boxes (± the scatter between boxes): F1 {stat('F1')}, instance precision "
        f"{stat('instance_precision')}, recall {stat('instance_recall')}; predicted / true haloes {ratio:.3f}"
    )
