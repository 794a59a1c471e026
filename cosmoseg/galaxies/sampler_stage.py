"""The stage shape shared by the four joint samplers: a HaloCatalog in, one central galaxy per halo out.

A stage loads a fitted sampler file (``model``), or fits one on the spot from optional training inputs
(``train_halos`` and ``train_galaxies``, e.g. the haloes of a simulation and the galaxies the galaxy model painted
on them; centrals are paired with their hosts by the ``host`` column), or, with neither, uses the shipped default
of the method in ``cosmoseg/galaxies/default_models/`` where there is one. It then draws the galaxy properties of
every halo of ``halos`` above ``min_mass``. Galaxies sit at their halo's position with its velocity
(``is_central`` True, ``host`` = the halo's row).

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
from typing import Any, ClassVar

import torch

import cosmoseg
from cosmoseg.data import Box, GalaxyCatalog, HaloCatalog
from cosmoseg.errors import ValidationError
from cosmoseg.galaxies.features import (
    DEFAULT_GALAXY_PROPERTIES,
    DEFAULT_HALO_PROPERTIES,
    central_pairs,
    property_matrix,
)
from cosmoseg.galaxies.samplers.base import JointSampler, load_sampler, sampler_class
from cosmoseg.pipeline.manifest import file_sha256
from cosmoseg.pipeline.params import InputPath
from cosmoseg.pipeline.stage import Stage

DEFAULT_MODELS_DIR = Path(__file__).parent / "default_models"
"""Shipped fitted samplers, ``<method>.pt``, with their MODEL_CARD.md."""

MODEL_SUFFIX = ".pt"
"""The suffix of a sampler file written by ``save_model``."""


def model_file_name(path: Path) -> str:
    """How provenance names a model file: a shipped one relative to the installed package
    (``cosmoseg/galaxies/default_models/flow.pt``), any other by its absolute path."""
    resolved = path.resolve()
    package_root = Path(cosmoseg.__file__).resolve().parent.parent
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


def toy_halos(generator: torch.Generator, n: int = 300) -> HaloCatalog:
    """Haloes of 10^11.5–10^14.5 Msun/h with the columns the galaxy stages use, in a 100 Mpc/h box."""
    log_mass = 11.5 + 3.0 * torch.rand(n, generator=generator, dtype=torch.float64)
    columns = {
        "pos": 100.0 * torch.rand((n, 3), generator=generator, dtype=torch.float64),
        "vel": 300.0 * torch.randn((n, 3), generator=generator, dtype=torch.float64),
        "mass": 10.0**log_mass,
        "vmax": 10.0 ** (2.0 + (log_mass - 12.0) / 3.0),
        "concentration": 5.0 + torch.rand(n, generator=generator, dtype=torch.float64) * 5.0,
        "spin": 0.01 + 0.06 * torch.rand(n, generator=generator, dtype=torch.float64),
        "log_env_density_r2": torch.randn(n, generator=generator, dtype=torch.float64),
    }
    return HaloCatalog(columns=columns, box=Box(length=100.0))


@dataclasses.dataclass(frozen=True)
class SamplerParams:
    """model: a fitted sampler file of this method, relative to the pipeline file or "$name" of [run] files ("" =
    fit one on the train_halos / train_galaxies inputs, or without them the shipped default of the method).
    save_model: file name (relative path, ending in .pt) for the sampler fitted here, inside the stage's folder
    <run folder>/<stage id>/ ("" = not saved). conditions, targets: the halo and galaxy properties (columns or
    log_<column>) of a sampler fitted here. hyper: the method's hyper-parameters. min_mass: haloes lighter than this
    (Msun/h) get no galaxy."""

    model: InputPath = ""  # type: ignore[assignment]
    save_model: str = ""
    conditions: tuple[str, ...] = DEFAULT_HALO_PROPERTIES
    targets: tuple[str, ...] = DEFAULT_GALAXY_PROPERTIES
    hyper: dict[str, Any] = dataclasses.field(default_factory=dict)
    min_mass: float = 0.0

    def problems(self) -> list[str]:
        out = []
        if not self.conditions or not self.targets:
            out.append("params 'conditions' and 'targets' need at least one property each")
        if self.min_mass < 0:
            out.append(f"param 'min_mass' must be >= 0 Msun/h, got {self.min_mass}")
        out += run_folder_path_problems(self.save_model, "save_model", suffix=MODEL_SUFFIX)
        if self.model and self.save_model:
            out.append(
                "params 'model' and 'save_model' exclude each other: 'save_model' writes a sampler fitted here, and "
                "with 'model' set nothing is fitted"
            )
        return out


class SamplerStage(Stage):
    """Base of galaxies.flow / hival / gauss / regression (``method`` names the sampler)."""

    method: ClassVar[str] = ""
    version: ClassVar[str] = "2"
    """2: provenance (model_file, model_sha256, model_origin) in the output's meta; save_model inside the run
    folder."""
    example_hyper: ClassVar[dict[str, Any]] = {}
    """Small hyper-parameters for the contract checker's tiny run."""
    Params = SamplerParams
    inputs = {"halos": HaloCatalog, "train_halos": HaloCatalog, "train_galaxies": GalaxyCatalog}
    optional_inputs = frozenset({"train_halos", "train_galaxies"})
    outputs = {"galaxies": GalaxyCatalog}

    @classmethod
    def example_params(cls) -> dict[str, Any]:
        return {"conditions": ["log_mass", "concentration"], "hyper": dict(cls.example_hyper)}

    @classmethod
    def example_inputs(cls, generator: torch.Generator) -> dict[str, Any]:
        from cosmoseg.galaxies.model import paint_galaxies

        halos = toy_halos(generator)
        return {"halos": halos, "train_halos": halos, "train_galaxies": paint_galaxies(halos, seed=3, satellites=False)}

    def _save_target(self, fitting: bool) -> Path | None:
        """The file ``save_model`` names inside the run folder, checked before anything is fitted (None: no save)."""
        p: SamplerParams = self.params
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

    def _sampler(
        self, train_halos: HaloCatalog | None, train_galaxies: GalaxyCatalog | None
    ) -> tuple[JointSampler, dict[str, str]]:
        """The sampler to draw from and the provenance entries of the output's meta."""
        p: SamplerParams = self.params
        cls = sampler_class(self.method)
        shipped = DEFAULT_MODELS_DIR / f"{self.method}.pt"
        fitting = not p.model and (train_halos is not None or train_galaxies is not None)  # else file or shipped
        target = self._save_target(fitting)
        if p.model:
            sampler = load_sampler(p.model)
            if sampler.method != self.method:
                raise ValidationError(
                    f"{p.model} holds a {sampler.method!r} sampler; stage {self.name} needs {self.method!r}"
                )
            return sampler, model_provenance(Path(p.model), "file")
        if train_halos is None and train_galaxies is None and shipped.is_file():
            self.ctx.log(f"using the shipped {self.method} sampler ({shipped.name}, see its MODEL_CARD.md)")
            return load_sampler(shipped), model_provenance(shipped, "shipped")
        if train_halos is None or train_galaxies is None:
            raise ValidationError(
                f"stage {self.name}: give a fitted sampler file (param 'model') or both inputs 'train_halos' and "
                "'train_galaxies' to fit one"
            )
        halo_rows, galaxy_rows = central_pairs(train_halos, train_galaxies)
        x = property_matrix(train_halos, p.conditions, role="training halo catalog")[halo_rows]
        y = property_matrix(train_galaxies, p.targets, role="training galaxy catalog")[galaxy_rows]
        sampler = cls(list(p.conditions), list(p.targets), **p.hyper)
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

    def run(
        self,
        halos: HaloCatalog,
        train_halos: HaloCatalog | None = None,
        train_galaxies: GalaxyCatalog | None = None,
    ) -> dict[str, GalaxyCatalog]:
        p: SamplerParams = self.params
        sampler, provenance = self._sampler(train_halos, train_galaxies)
        keep = torch.nonzero(halos["mass"] >= p.min_mass).reshape(-1)
        x = property_matrix(halos, sampler.condition_names, role="halo catalog")[keep]
        n_targets = len(sampler.target_names)
        gen = self.ctx.make_generator("cpu", offset=2)
        draws = sampler.sample(x, 1, generator=gen)[0] if len(keep) else torch.zeros(0, n_targets)
        columns: dict[str, torch.Tensor] = {"pos": halos["pos"][keep]}
        if "vel" in halos.columns:
            columns["vel"] = halos["vel"][keep]
        columns |= {"host": keep, "is_central": torch.ones(len(keep), dtype=torch.bool)}
        columns |= {name: draws[:, j].to(torch.float32) for j, name in enumerate(sampler.target_names)}
        origin = provenance["model_origin"]
        described = origin if origin.startswith("fitted") else provenance["model_file"]
        meta = {"sampler": self.method, "model": described, **provenance, "min_mass": p.min_mass}
        return {"galaxies": GalaxyCatalog(columns=columns, box=halos.box, meta=meta)}


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
