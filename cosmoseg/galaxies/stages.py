"""The plugin face of ``cosmoseg.galaxies``: the galaxy model, the HOD, the four joint samplers, population models and
the mock catalog as stages; `run` converts and calls the library."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, Literal

import torch

from cosmoseg.data import GalaxyCatalog, HaloCatalog
from cosmoseg.errors import ValidationError
from cosmoseg.galaxies._examples import toy_halos
from cosmoseg.galaxies.hod import HODParams, populate, prepare_hod
from cosmoseg.galaxies.hod_chunks import populate_chunked
from cosmoseg.galaxies.hod_fit import calibrate_hod
from cosmoseg.galaxies.mock import mock_catalog
from cosmoseg.galaxies.model import VariantName, paint_galaxies
from cosmoseg.galaxies.population import (
    DEFAULT_POPULATION_CONDITIONS,
    PopulationModel,
    fit_population,
    load_population,
    populate_galaxies,
)
from cosmoseg.galaxies.sampler_stage import DEFAULT_MODELS_DIR, FittedModelStage, SamplerStage
from cosmoseg.hookspecs import hookimpl
from cosmoseg.pipeline.params import InputPath, param
from cosmoseg.pipeline.stage import Stage

SHIPPED_POPULATION = DEFAULT_MODELS_DIR / "population.pt"
"""The shipped population model (centrals and satellites), with its card in MODEL_CARD.md."""

SEED_DOC = "seed of the draws; -1 = the stage's seed"
VARIANT_DOC = '"fiducial" (Behroozi+13 SMHM, quenching by M*, assembly, environment) or "moster13" (Moster+13, by M_h)'


def _seed(stage: Stage[Any], seed: int) -> int:
    return stage.ctx.seed % (2**62) if seed < 0 else seed


@dataclasses.dataclass(frozen=True)
class GalaxyModelStageParams:
    """The galaxy model's params (its knobs per variant: :class:`cosmoseg.galaxies.model.GalaxyModelParams`)."""

    variant: VariantName = param("fiducial", doc=VARIANT_DOC)  # noqa: RUF009 (a str)
    seed: int = param(-1, ge=-1, doc=SEED_DOC)
    satellites: bool = param(True, doc="False paints centrals only")
    min_log_mstar: float = param(0.0, doc="drop galaxies below this log10 M* (Msun/h); 0 keeps all")


class GalaxyModelStage(Stage[GalaxyModelStageParams]):
    """Galaxies painted onto haloes by the semi-empirical model: the truth the samplers learn from."""

    name = "galaxies.model"
    inputs = {"halos": HaloCatalog}
    outputs = {"galaxies": GalaxyCatalog}

    def run(self, halos: HaloCatalog) -> dict[str, GalaxyCatalog]:
        p = self.params
        galaxies = paint_galaxies(
            halos,
            variant=p.variant,
            seed=_seed(self, p.seed),
            satellites=p.satellites,
            min_log_mstar=p.min_log_mstar or None,
        )
        self.ctx.log(f"{len(galaxies)} galaxies, {int(galaxies['is_central'].sum())} centrals ({p.variant})")
        return {"galaxies": galaxies}

    @classmethod
    def example_inputs(cls, generator: torch.Generator) -> dict[str, HaloCatalog]:
        return {"halos": toy_halos(generator)}


def _copied_fields(cls: type) -> list[tuple[str, Any, Any]]:
    """``(name, type, field)`` of every field of the dataclass ``cls``, with its default, bounds and doc, for
    ``dataclasses.make_dataclass``: a params class that takes over another's fields without declaring them again."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        copy = dataclasses.field(default=f.default, default_factory=f.default_factory, metadata=f.metadata)
        out.append((f.name, hints[f.name], copy))
    return out


class _HODStageRules:
    """The methods of :data:`HODStageParams`."""

    a_cen: float
    a_sat: float
    secondary: str

    def hod(self) -> HODParams:
        """The ``HODParams`` of these params (their first ten fields)."""
        return HODParams(**{f.name: getattr(self, f.name) for f in dataclasses.fields(HODParams)})

    def problems(self) -> list[str]:
        if (self.a_cen or self.a_sat) and not self.secondary:
            return ["params 'a_cen'/'a_sat' (assembly bias) need a 'secondary' halo property, e.g. 'concentration'"]
        return []


HODStageParams = dataclasses.make_dataclass(
    "HODStageParams",
    [
        *_copied_fields(HODParams),
        ("secondary", str, param("", doc='halo column ranked at fixed mass for assembly bias ("" = none)')),
        ("velocities", bool, param(True, doc="give galaxies velocities (the haloes need vel)")),
        ("seed", int, param(-1, ge=-1, doc=SEED_DOC)),
        (
            "chunk_rows",
            int,
            param(
                0,
                ge=0,
                doc="populate chunks of this many haloes, one task each where [run] executor says (the same "
                "galaxies); 0 = all at once",
            ),
        ),
    ],
    bases=(_HODStageRules,),
    frozen=True,
    namespace={
        "__module__": __name__,
        "__doc__": "The params of galaxies.hod: the ten fields of :class:`~cosmoseg.galaxies.hod.HODParams` (the "
        "Zheng et al. 2007 occupation and its decorations, with their defaults and bounds), then secondary, "
        "velocities, seed and chunk_rows.",
    },
)


class HODStage(Stage[HODStageParams]):  # type: ignore[valid-type]
    """Galaxies from the Zheng et al. (2007) halo occupation distribution, with optional decorations.

    Given ``calibration_halos`` and ``calibration_galaxies`` (galaxies with ``host`` and ``is_central`` in those
    haloes, e.g. the truth of another box), the five occupation parameters are fitted to them
    (:func:`cosmoseg.galaxies.hod_fit.calibrate_hod`) instead of taken from the params; decorations still are.
    """

    name = "galaxies.hod"
    inputs = {"halos": HaloCatalog, "calibration_halos": HaloCatalog, "calibration_galaxies": GalaxyCatalog}
    optional_inputs = frozenset({"calibration_halos", "calibration_galaxies"})
    outputs = {"galaxies": GalaxyCatalog}

    def run(
        self,
        halos: HaloCatalog,
        calibration_halos: HaloCatalog | None = None,
        calibration_galaxies: GalaxyCatalog | None = None,
    ) -> dict[str, GalaxyCatalog]:
        p = self.params
        params = p.hod()
        if (calibration_halos is None) != (calibration_galaxies is None):
            raise ValidationError(
                "give both calibration_halos and calibration_galaxies (or neither)", context=self.name
            )
        if calibration_halos is not None and calibration_galaxies is not None:
            params = calibrate_hod(params, calibration_halos, calibration_galaxies)
            self.ctx.log(
                f"calibrated: log M_min {params.log_m_min:.3f}, sigma {params.sigma_log_m:.3f}, log M_0 "
                f"{params.log_m0:.3f}, log M_1 {params.log_m1:.3f}, alpha {params.alpha:.3f}"
            )
        if p.chunk_rows:
            galaxies = populate_chunked(
                halos,
                params,
                _seed(self, p.seed),
                chunk_rows=p.chunk_rows,
                velocities=p.velocities,
                secondary=p.secondary or None,
                map_tasks=self.ctx.map_tasks,
            )
        else:
            prepared = prepare_hod(halos, velocities=p.velocities, secondary=p.secondary or None)
            galaxies = populate(prepared, params, _seed(self, p.seed))
        self.ctx.log(f"{len(galaxies)} galaxies, {int(galaxies['is_central'].sum())} centrals")
        return {"galaxies": galaxies}

    @classmethod
    def example_params(cls) -> dict[str, Any]:
        return {"log_m_min": 12.0, "log_m1": 13.0, "a_cen": 0.5, "secondary": "concentration"}

    @classmethod
    def example_inputs(cls, generator: torch.Generator) -> dict[str, HaloCatalog]:
        return {"halos": toy_halos(generator)}


class FlowStage(SamplerStage):
    """Central galaxies drawn from a conditional normalizing flow (spline autoregressive) given their haloes."""

    name = "galaxies.flow"
    method = "flow"
    example_hyper = {"epochs": 2, "hidden_features": 16, "layers": 2}


class HiValStage(SamplerStage):
    """Central galaxies drawn from HiVAl classes of galaxy-property space, predicted by a classifier."""

    name = "galaxies.hival"
    method = "hival"
    example_hyper = {"n_classes": 8, "epochs": 2, "hidden_features": 16}


class GaussStage(SamplerStage):
    """Central galaxies drawn from a network's Gaussian (mean and full covariance) given their haloes."""

    name = "galaxies.gauss"
    method = "gauss"
    example_hyper = {"epochs": 2, "hidden": 16}


class RegressionStage(SamplerStage):
    """Central galaxies from one regression network per property plus its residual scatter."""

    name = "galaxies.regression"
    method = "regression"
    example_hyper = {"epochs": 2, "hidden": 16}


@dataclasses.dataclass(frozen=True)
class PopulationParams:
    """The params of galaxies.population."""

    model: InputPath = param("", doc='file of `galaxies train --satellites` ("" = fit here or shipped)')  # noqa: RUF009
    min_mass: float = param(0.0, ge=0, doc="haloes lighter than this (Msun/h) get no galaxies")
    conditions: tuple[str, ...] = param(
        DEFAULT_POPULATION_CONDITIONS, doc="halo properties the samplers of a model fitted here condition on"
    )
    method: Literal["flow", "hival", "gauss", "regression"] = param("flow", doc="sampler method of a model fitted here")
    hyper: dict[str, Any] = param({}, doc="its hyper-parameters")  # noqa: RUF009 (copied per instance)

    def problems(self) -> list[str]:
        return [] if self.conditions else ["param 'conditions' needs at least one halo property"]


class PopulationStage(FittedModelStage, Stage[PopulationParams]):
    """Centrals and satellites for every halo from a galaxy population model: occupations, positions and
    velocities from an HOD and profile fitted to a training catalog, properties from its learned samplers."""

    name = "galaxies.population"
    version = "2"
    """2: the model file actually used and its sha256 in the output's meta (model_file, model_sha256, model_origin)."""
    what = "population model"

    def shipped_model(self) -> Path:
        return SHIPPED_POPULATION

    def load(self, path: str | Path) -> PopulationModel:
        return load_population(path)

    def fit(self, train_halos: HaloCatalog, train_galaxies: GalaxyCatalog) -> tuple[PopulationModel, dict[str, str]]:
        p = self.params
        model = fit_population(
            train_halos, train_galaxies, conditions=p.conditions, method=p.method, hyper=p.hyper, seed=self.ctx.seed
        )
        fitted = f"fitted in this run on {len(train_galaxies)} galaxies"
        self.ctx.log(f"{fitted} (population model)")
        return model, {"model_file": "", "model_sha256": "", "model_origin": fitted}

    def draw(self, model: PopulationModel, halos: HaloCatalog, provenance: dict[str, str]) -> GalaxyCatalog:
        named = {"file": self.params.model, "shipped": f"the shipped {SHIPPED_POPULATION.name}"}
        galaxies = populate_galaxies(
            model,
            halos,
            seed=self.ctx.seed % (2**62),
            generator=self.ctx.make_generator("cpu", offset=1),
            min_mass=self.params.min_mass,
            where=named.get(provenance["model_origin"], "the model fitted in this run"),
            provenance=provenance,
        )
        n_cen = int(galaxies["is_central"].sum())
        self.ctx.log(f"{len(galaxies)} galaxies: {n_cen} centrals, {len(galaxies) - n_cen} satellites")
        return galaxies

    @classmethod
    def example_params(cls) -> dict[str, Any]:
        return {"hyper": {"epochs": 2, "hidden_features": 8, "layers": 1}}


@dataclasses.dataclass(frozen=True)
class CatalogParams:
    """The params of galaxies.catalog."""

    rsd_axis: Literal[-1, 0, 1, 2] = param(
        2, doc="line of sight of the redshift-space positions pos_rsd: 0, 1, 2 (x, y, z), or -1 for none"
    )


class CatalogStage(Stage[CatalogParams]):
    """The mock galaxy catalog: galaxies with their host's row and mass and redshift-space positions, in the
    documented layout of docs/mock.md whatever made the galaxies (population model, galaxy model or HOD)."""

    name = "galaxies.catalog"
    inputs = {"galaxies": GalaxyCatalog, "halos": HaloCatalog}
    outputs = {"catalog": GalaxyCatalog}

    def run(self, galaxies: GalaxyCatalog, halos: HaloCatalog) -> dict[str, GalaxyCatalog]:
        catalog = mock_catalog(galaxies, halos, rsd_axis=self.params.rsd_axis)
        self.ctx.log(
            f"{catalog.meta['n_galaxies']} galaxies ({catalog.meta['n_satellites']} satellites), "
            f"n = {catalog.meta['number_density']:.3g} (h/Mpc)^3"
        )
        return {"catalog": catalog}

    @classmethod
    def example_inputs(cls, generator: torch.Generator) -> dict[str, Any]:
        halos = toy_halos(generator)
        return {"galaxies": paint_galaxies(halos, seed=3), "halos": halos}


@hookimpl
def cosmoseg_register_commands(app: Any) -> None:
    """``cosmoseg galaxies train|evaluate``: fit and compare the samplers on a suite."""
    from cosmoseg.galaxies.commands import app as galaxies_app

    app.add_typer(galaxies_app, name="galaxies")


@hookimpl
def cosmoseg_register_stages(register: Any) -> None:
    for stage in (
        GalaxyModelStage,
        HODStage,
        FlowStage,
        HiValStage,
        GaussStage,
        RegressionStage,
        PopulationStage,
        CatalogStage,
    ):
        register(stage)
