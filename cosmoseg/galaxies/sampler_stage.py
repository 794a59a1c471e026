"""The stage shapes of galaxies drawn from a fitted model: :class:`FittedModelStage`, shared by the four joint
samplers and galaxies.population (a model file, one fitted here, or the shipped one, and the provenance of the file
used), and :class:`SamplerStage`, the four samplers' own: a HaloCatalog in, one central galaxy per halo out.

A sampler stage loads a fitted sampler file (``model``), or fits one on the spot from optional training inputs
(``train_halos`` and ``train_galaxies``, e.g. the haloes of a simulation and the galaxies the galaxy model painted
on them; centrals are paired with their hosts by the ``host`` column), or, with neither, uses the shipped default
of the method in ``cosmoseg/galaxies/default_models/`` where there is one. It then draws the galaxy properties of
every halo of ``halos`` above ``min_mass`` (:func:`cosmoseg.galaxies.centrals.sample_centrals`). Galaxies sit at
their halo's position with its velocity (``is_central`` True, ``host`` = the halo's row).

The draws' seed is the stage's seed + 2 (the fit uses + 1); they are made in blocks of
:data:`~cosmoseg.galaxies.centrals.DRAW_BLOCK` halo rows, each with its own generator, so with ``chunk_rows`` (a
multiple of the block) the chunks, one task each where ``[run] executor`` says
(:func:`cosmoseg.galaxies.centrals_chunks.sample_chunked`), give the same galaxies bit for bit.

Provenance: the output's ``meta`` names the sampler file actually used (``model_file``, its ``model_sha256`` and
``model_origin``: "file", "shipped", or "fitted in this run on N centrals"; for a fitted sampler ``model_file`` is
the file it was saved to, or "" when it was not saved). ``meta["model"]`` is the file, or "fitted in this run on N
centrals".

``save_model`` writes a sampler fitted here into the run's output folder (``ctx.work_dir``) and nowhere else: into
the stage's own work folder ``<run folder>/<stage id>/``, where the runner keeps a stage's files (listed with the
stage in the manifest, moved aside with its artifact when a later run does not reuse them). It is a relative path
ending in ``.pt`` (absolute paths, ``..``, hidden parts and other suffixes are refused when the params are checked),
written atomically. An existing file is overwritten only when this stage (same stage id and stage name) wrote it, as
its card records (``written_by_stage``, ``written_by``): a ``--resume`` re-run of the stage replaces its own file,
while any other file is refused before anything is fitted. Without a run folder (a stage run outside a pipeline)
``save_model`` is an error, and so is ``save_model`` when nothing is fitted here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from cosmoseg.data import DataObject, GalaxyCatalog, HaloCatalog
from cosmoseg.errors import ValidationError
from cosmoseg.galaxies._examples import toy_halos
from cosmoseg.galaxies.centrals import DRAW_BLOCK, chunk_rows_problems, sample_centrals
from cosmoseg.galaxies.centrals_chunks import sample_chunked
from cosmoseg.galaxies.features import DEFAULT_GALAXY_PROPERTIES, DEFAULT_HALO_PROPERTIES, central_rows
from cosmoseg.galaxies.model import paint_galaxies
from cosmoseg.galaxies.samplers.base import JointSampler, load_sampler, sampler_class
from cosmoseg.pipeline.manifest import file_sha256
from cosmoseg.pipeline.params import InputPath, param
from cosmoseg.pipeline.stage import Stage

if TYPE_CHECKING:
    from cosmoseg.pipeline.context import RunContext

DEFAULT_MODELS_DIR = Path(__file__).parent / "default_models"
"""Shipped fitted samplers, ``<method>.pt``, with their MODEL_CARD.md."""

MODEL_SUFFIX = ".pt"
"""The suffix of a sampler file written by ``save_model``."""


def model_file_name(path: Path) -> str:
    """How provenance names a model file: a shipped one relative to the installed package
    (``cosmoseg/galaxies/default_models/flow.pt``), any other by its absolute path."""
    resolved = path.resolve()
    package_root = Path(__file__).resolve().parents[2]  # the folder that holds the cosmoseg package
    if resolved.is_relative_to(DEFAULT_MODELS_DIR.resolve()):
        return resolved.relative_to(package_root).as_posix()
    return str(resolved)


def model_provenance(path: Path, origin: str) -> dict[str, str]:
    """``meta`` entries naming the model file actually used: ``model_file``, ``model_sha256``, ``model_origin``."""
    return {"model_file": model_file_name(path), "model_sha256": file_sha256(path), "model_origin": origin}


def run_folder_path_problems(value: str, param: str, *, suffix: str) -> list[str]:
    """What is wrong with ``value`` as a file name inside the run's output folder (empty when nothing is)."""
    if not value:
        return []
    where = f"param {param!r}"
    if PurePosixPath(value).is_absolute() or PureWindowsPath(value).is_absolute() or value.startswith("~"):
        return [
            f"{where} must be a file name inside the run's output folder (e.g. 'flow{suffix}'), got the absolute "
            f"path {value!r}; files a stage writes stay in the run folder"
        ]
    parts = PurePosixPath(value.replace("\\", "/")).parts
    out = []
    if ".." in parts:
        out.append(f"{where} must stay inside the run's output folder, got {value!r}, which climbs out with '..'")
    if any(part.startswith(".") and part != ".." for part in parts):
        out.append(f"{where} must not name hidden files or folders (parts starting with '.'), got {value!r}")
    if not value.endswith(suffix) or PurePosixPath(value).name == suffix:
        out.append(f"{where} must be a file name ending in {suffix!r}, got {value!r}")
    return out


@dataclasses.dataclass(frozen=True)
class SamplerParams:
    """The params of the four sampler stages (galaxies.flow / hival / gauss / regression)."""

    model: InputPath = param("", doc='sampler file ("" = fit one here, or the shipped one)')  # noqa: RUF009
    save_model: str = param("", doc='name (*.pt) of the sampler fitted here, in <run folder>/<stage id>/ ("" = none)')
    conditions: tuple[str, ...] = param(DEFAULT_HALO_PROPERTIES, doc="halo properties of a sampler fitted here")
    targets: tuple[str, ...] = param(DEFAULT_GALAXY_PROPERTIES, doc="galaxy properties of a sampler fitted here")
    hyper: dict[str, Any] = param({}, doc="the method's hyper-parameters")  # noqa: RUF009 (copied per instance)
    min_mass: float = param(0.0, ge=0, doc="haloes lighter than this (Msun/h) get no galaxy")
    chunk_rows: int = param(
        0,
        ge=0,
        doc=f"draw over chunks of this many haloes (a multiple of the draw block, {DRAW_BLOCK}), one task each where "
        "[run] executor says (the same galaxies); 0 = all at once",
    )

    def problems(self) -> list[str]:
        out = chunk_rows_problems(self.chunk_rows) if self.chunk_rows else []
        if not self.conditions or not self.targets:
            out.append("params 'conditions' and 'targets' need at least one property each")
        out += run_folder_path_problems(self.save_model, "save_model", suffix=MODEL_SUFFIX)
        if self.model and self.save_model:
            out.append(
                "params 'model' and 'save_model' exclude each other: 'save_model' writes a sampler fitted here, and "
                "with 'model' set nothing is fitted"
            )
        return out


class FittedModelStage:
    """The shape of the stages that draw galaxies for ``halos`` from a fitted model: the four samplers and
    galaxies.population (a mixin: a stage class derives from it and from ``Stage[P]``, P with a ``model`` field).

    The model is the file of param ``model``; or, with the optional inputs ``train_halos`` and ``train_galaxies``,
    one fitted here (:meth:`fit`); or, without them, the shipped default (:meth:`shipped_model`, where there is one).
    ``run`` then draws the galaxies (:meth:`draw`), with the provenance of the model in their ``meta``.
    """

    what: ClassVar[str] = "model"
    """How messages name the model ("flow sampler", "population model")."""
    inputs: ClassVar[dict[str, type[DataObject]]] = {
        "halos": HaloCatalog,
        "train_halos": HaloCatalog,
        "train_galaxies": GalaxyCatalog,
    }
    optional_inputs: ClassVar[frozenset[str]] = frozenset({"train_halos", "train_galaxies"})
    outputs: ClassVar[dict[str, type[DataObject]]] = {"galaxies": GalaxyCatalog}
    example_satellites: ClassVar[bool] = True
    """Whether the training galaxies of the contract checker's example have satellites."""
    name: ClassVar[str]
    params: Any
    ctx: RunContext

    def shipped_model(self) -> Path:
        """The shipped model file used without a ``model`` and training inputs (it may not exist)."""
        raise NotImplementedError

    def load(self, path: str | Path) -> Any:
        """The model of a file."""
        raise NotImplementedError

    def fit(self, train_halos: HaloCatalog, train_galaxies: GalaxyCatalog) -> tuple[Any, dict[str, str]]:
        """A model fitted on the training inputs and its provenance entries."""
        raise NotImplementedError

    def draw(self, model: Any, halos: HaloCatalog, provenance: dict[str, str]) -> GalaxyCatalog:
        """The galaxies of ``halos``."""
        raise NotImplementedError

    def model(
        self, train_halos: HaloCatalog | None, train_galaxies: GalaxyCatalog | None
    ) -> tuple[Any, dict[str, str]]:
        """The model to draw from and the provenance entries of the output's meta (:func:`model_provenance`)."""
        if self.params.model:
            return self.load(self.params.model), model_provenance(Path(self.params.model), "file")
        shipped = self.shipped_model()
        if train_halos is None and train_galaxies is None and shipped.is_file():
            self.ctx.log(f"using the shipped {self.what} ({shipped.name}, see its MODEL_CARD.md)")
            return self.load(shipped), model_provenance(shipped, "shipped")
        if train_halos is None or train_galaxies is None:
            raise ValidationError(
                f"stage {self.name}: give a fitted {self.what} file (param 'model') or both inputs 'train_halos' and "
                "'train_galaxies' to fit one"
            )
        return self.fit(train_halos, train_galaxies)

    def run(
        self,
        halos: HaloCatalog,
        train_halos: HaloCatalog | None = None,
        train_galaxies: GalaxyCatalog | None = None,
    ) -> dict[str, GalaxyCatalog]:
        model, provenance = self.model(train_halos, train_galaxies)
        return {"galaxies": self.draw(model, halos, provenance)}

    @classmethod
    def example_inputs(cls, generator: torch.Generator) -> dict[str, Any]:
        halos = toy_halos(generator)
        galaxies = paint_galaxies(halos, seed=3, satellites=cls.example_satellites)
        return {"halos": halos, "train_halos": halos, "train_galaxies": galaxies}


class SamplerStage(FittedModelStage, Stage[SamplerParams]):
    """Base of galaxies.flow / hival / gauss / regression (``method`` names the sampler)."""

    method: ClassVar[str] = ""
    version: ClassVar[str] = "3"
    """2: provenance (model_file, model_sha256, model_origin) in the output's meta; save_model inside the run
    folder. 3: draws in blocks of DRAW_BLOCK halo rows, each with its own generator (other random numbers than
    version 2, same distribution), and param chunk_rows."""
    example_hyper: ClassVar[dict[str, Any]] = {}
    """Small hyper-parameters for the contract checker's tiny run."""
    example_satellites = False

    @property
    def what(self) -> str:  # type: ignore[override]
        return f"{self.method} sampler"

    @classmethod
    def example_params(cls) -> dict[str, Any]:
        return {"conditions": ["log_mass", "concentration"], "hyper": dict(cls.example_hyper)}

    def shipped_model(self) -> Path:
        return DEFAULT_MODELS_DIR / f"{self.method}.pt"

    def load(self, path: str | Path) -> JointSampler:
        sampler = load_sampler(path)
        if sampler.method != self.method:
            raise ValidationError(f"{path} holds a {sampler.method!r} sampler; stage {self.name} needs {self.method!r}")
        return sampler

    def model(
        self, train_halos: HaloCatalog | None, train_galaxies: GalaxyCatalog | None
    ) -> tuple[JointSampler, dict[str, str]]:
        fitting = not self.params.model and (train_halos is not None or train_galaxies is not None)
        self._save_target(fitting)  # before anything is loaded or fitted
        return super().model(train_halos, train_galaxies)

    def fit(self, train_halos: HaloCatalog, train_galaxies: GalaxyCatalog) -> tuple[JointSampler, dict[str, str]]:
        p = self.params
        target = self._save_target(True)
        roles = ("training halo catalog", "training galaxy catalog")
        x, y = central_rows(train_halos, train_galaxies, p.conditions, p.targets, roles=roles)
        sampler = sampler_class(self.method)(list(p.conditions), list(p.targets), **p.hyper)
        sampler.fit(x, y, generator=self.ctx.make_generator("cpu", offset=1))
        fitted = f"fitted in this run on {len(x)} centrals"
        self.ctx.log(f"{fitted} ({self.method})")
        provenance = {"model_file": "", "model_sha256": "", "model_origin": fitted}
        if target is not None:
            card = {
                "data": f"{len(x)} centrals of the pipeline's training inputs",
                "written_by_stage": self.ctx.stage_id,
                "written_by": self.name,
            }
            sampler.save(target, card=card)
            relative = target.relative_to(Path(self.ctx.work_dir).resolve()).as_posix()
            provenance |= {"model_file": relative, "model_sha256": file_sha256(target)}
            self.ctx.log(f"saved the sampler to {target}")
        return sampler, provenance

    def draw(self, model: JointSampler, halos: HaloCatalog, provenance: dict[str, str]) -> GalaxyCatalog:
        p = self.params
        seed = (self.ctx.seed + 2) % (2**63)  # the stream of version 2's make_generator(offset=2)
        if p.chunk_rows:
            return sample_chunked(
                model,
                halos,
                seed,
                chunk_rows=p.chunk_rows,
                min_mass=p.min_mass,
                provenance=provenance,
                map_tasks=self.ctx.map_tasks,
            )
        return sample_centrals(model, halos, seed=seed, min_mass=p.min_mass, provenance=provenance)

    def _save_target(self, fitting: bool) -> Path | None:
        """The file ``save_model`` names inside the run folder, checked before anything is fitted (None: no save)."""
        p = self.params
        if not p.save_model:
            return None
        where = f"stage {self.ctx.stage_id!r} ({self.name}): param 'save_model' ({p.save_model!r})"
        problems = run_folder_path_problems(p.save_model, "save_model", suffix=MODEL_SUFFIX)
        if problems:  # params made without their checks (a stage built by hand)
            raise ValidationError(problems, context=where)
        if self.ctx.work_dir is None:
            raise ValidationError(
                f"{where} writes into the run's output folder, and this stage runs without one (outside a pipeline "
                "run); leave 'save_model' empty and save the sampler yourself, or run the stage in a pipeline"
            )
        if not fitting:
            raise ValidationError(
                f"{where}: no sampler is fitted here (without the inputs 'train_halos' and 'train_galaxies' the stage "
                "uses the shipped default), so there is nothing to save; leave 'save_model' empty"
            )
        folder = Path(self.ctx.work_dir).resolve()
        target = (folder / self.ctx.stage_id / p.save_model).resolve()
        if not target.is_relative_to(folder):
            raise ValidationError(f"{where} leads out of the run folder {folder} (to {target}, through a link)")
        if target.exists():
            owner = _written_by(target)
            if owner != (self.ctx.stage_id, self.name):
                found = "not by a stage" if owner is None else f"by stage {owner[0]!r} ({owner[1]})"
                raise ValidationError(
                    f"{where}: {target} exists, written {found}; refusing to overwrite it. A stage replaces only the "
                    "file it wrote itself in this run folder: choose another name, or remove the file"
                )
        return target


def _written_by(path: Path) -> tuple[str, str] | None:
    """(stage id, stage name) that wrote the sampler file ``path``, from its card; None for any other file."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch raises many types for foreign files
        return None
    card = payload.get("card") if isinstance(payload, dict) else None
    if not isinstance(card, dict):
        return None
    stage_id, stage = card.get("written_by_stage"), card.get("written_by")
    return (stage_id, stage) if isinstance(stage_id, str) and isinstance(stage, str) else None
