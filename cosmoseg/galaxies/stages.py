"""The plugin face of ``cosmoseg.galaxies``: the galaxy model, the HOD and the four joint samplers as stages."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

import torch

from cosmoseg.data import GalaxyCatalog, HaloCatalog
from cosmoseg.errors import ValidationError
from cosmoseg.galaxies.hod import HODParams, populate, prepare_hod
from cosmoseg.galaxies.model import VARIANTS, paint_galaxies
from cosmoseg.galaxies.population import DEFAULT_POPULATION_CONDITIONS
from cosmoseg.galaxies.sampler_stage import DEFAULT_MODELS_DIR, SamplerStage, model_provenance, toy_halos
from cosmoseg.hookspecs import hookimpl
from cosmoseg.pipeline.params import InputPath
from cosmoseg.pipeline.stage import Stage

SHIPPED_POPULATION = DEFAULT_MODELS_DIR / "population.pt"
"""The shipped population model (centrals and satellites), with its card in MODEL_CARD.md."""


def _seed(stage: Stage, seed: int) -> int:
    return stage.ctx.seed % (2**62) if seed < 0 else seed


@dataclasses.dataclass(frozen=True)
class GalaxyModelStageParams:
    """variant: "fiducial" (Behroozi et al. 2013 SMHM, quenching by stellar mass, assembly and environment) or
    "moster13" (Moster et al. 2013 SMHM, quenching by halo mass). seed: -1 = the stage's seed. satellites: False
    paints centrals only. min_log_mstar: drop galaxies below this log10 M* (Msun/h); 0 keeps all."""

    variant: str = "fiducial"
    seed: int = -1
    satellites: bool = True
    min_log_mstar: float = 0.0

    def problems(self) -> list[str]:
        out = []
        if self.variant not in VARIANTS:
            out.append(f"param 'variant' must be one of {sorted(VARIANTS)}, got {self.variant!r}")
        if self.seed < -1:
            out.append(f"param 'seed' must be >= 0, or -1 for the stage's seed, got {self.seed}")
        return out


class GalaxyModelStage(Stage):
    """Galaxies painted onto haloes by the semi-empirical model: the truth the samplers learn from."""

    name = "galaxies.model"
    Params = GalaxyModelStageParams
    inputs = {"halos": HaloCatalog}
    outputs = {"galaxies": GalaxyCatalog}

    def run(self, halos: HaloCatalog) -> dict[str, GalaxyCatalog]:
        p: GalaxyModelStageParams = self.params
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


_HOD_FIELDS = {f.name: f for f in dataclasses.fields(HODParams)}


@dataclasses.dataclass(frozen=True)
class HODStageParams:
    """The Zheng et al. (2007) parameters (masses log10 Msun/h; defaults: their M_r < -21 sample): log_m_min,
    sigma_log_m, log_m0, log_m1, alpha, modulate_satellites; decorations: a_cen, a_sat (assembly bias in [-1, 1],
    with a secondary halo property), alpha_c, alpha_s (velocity bias). secondary: halo column ranked at fixed mass
    for assembly bias ("" = none). velocities: give galaxies velocities (the haloes need vel). seed: -1 = the
    stage's seed."""

    log_m_min: float = 12.79
    sigma_log_m: float = 0.39
    log_m0: float = 11.92
    log_m1: float = 13.94
    alpha: float = 1.15
    modulate_satellites: bool = False
    a_cen: float = 0.0
    a_sat: float = 0.0
    alpha_c: float = 0.0
    alpha_s: float = 1.0
    secondary: str = ""
    velocities: bool = True
    seed: int = -1

    def hod(self) -> HODParams:
        return HODParams(**{k: getattr(self, k) for k in _HOD_FIELDS})

    def problems(self) -> list[str]:
        out = []
        try:
            self.hod()
        except ValidationError as err:
            out += [f"params: {problem}" for problem in err.problems]
        if (self.a_cen or self.a_sat) and not self.secondary:
            out.append("params 'a_cen'/'a_sat' (assembly bias) need a 'secondary' halo property, e.g. 'concentration'")
        if self.seed < -1:
            out.append(f"param 'seed' must be >= 0, or -1 for the stage's seed, got {self.seed}")
        return out


class HODStage(Stage):
    """Galaxies from the Zheng et al. (2007) halo occupation distribution, with optional decorations.

    Given ``calibration_halos`` and ``calibration_galaxies`` (galaxies with ``host`` and ``is_central`` in those
    haloes, e.g. the truth of another box), the five occupation parameters are fitted to them
    (:func:`cosmoseg.galaxies.hod_fit.fit_zheng07`) instead of taken from the params; decorations still are.
    """

    name = "galaxies.hod"
    Params = HODStageParams
    inputs = {"halos": HaloCatalog, "calibration_halos": HaloCatalog, "calibration_galaxies": GalaxyCatalog}
    optional_inputs = frozenset({"calibration_halos", "calibration_galaxies"})
    outputs = {"galaxies": GalaxyCatalog}

    def run(
        self,
        halos: HaloCatalog,
        calibration_halos: HaloCatalog | None = None,
        calibration_galaxies: GalaxyCatalog | None = None,
    ) -> dict[str, GalaxyCatalog]:
        p: HODStageParams = self.params
        params = p.hod()
        if (calibration_halos is None) != (calibration_galaxies is None):
            raise ValidationError(
                "give both calibration_halos and calibration_galaxies (or neither)", context=self.name
            )
        if calibration_halos is not None and calibration_galaxies is not None:
            from cosmoseg.galaxies.hod_fit import fit_zheng07

            fitted = fit_zheng07(calibration_halos, calibration_galaxies)
            params = params.clone(**{k: getattr(fitted, k) for k in ("log_m_min", "sigma_log_m", "log_m0", "log_m1",
                                                                     "alpha")})  # fmt: skip
            self.ctx.log(
                f"calibrated: log M_min {params.log_m_min:.3f}, sigma {params.sigma_log_m:.3f}, log M_0 "
                f"{params.log_m0:.3f}, log M_1 {params.log_m1:.3f}, alpha {params.alpha:.3f}"
            )
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
class PopulationStageParams:
    """model: a population model file from `cosmoseg galaxies train --satellites` ("" = fit one on the
    train_halos / train_galaxies inputs, or without them the shipped default). min_mass: haloes lighter than this
    (Msun/h) get no galaxies. conditions, method, hyper: of a model fitted here (halo properties; sampler method and
    its hyper-parameters)."""

    model: InputPath = ""  # type: ignore[assignment]
    min_mass: float = 0.0
    conditions: tuple[str, ...] = DEFAULT_POPULATION_CONDITIONS
    method: Literal["flow", "hival", "gauss", "regression"] = "flow"
    hyper: dict[str, Any] = dataclasses.field(default_factory=dict)

    def problems(self) -> list[str]:
        out = []
        if self.min_mass < 0:
            out.append(f"param 'min_mass' must be >= 0 Msun/h, got {self.min_mass}")
        if not self.conditions:
            out.append("param 'conditions' needs at least one halo property")
        return out


class PopulationStage(Stage):
    """Centrals and satellites for every halo from a galaxy population model: occupations, positions and
    velocities from an HOD and profile fitted to a training catalog, properties from its learned samplers."""

    name = "galaxies.population"
    version = "2"
    """2: the model file actually used and its sha256 in the output's meta (model_file, model_sha256, model_origin)."""
    Params = PopulationStageParams
    inputs = {"halos": HaloCatalog, "train_halos": HaloCatalog, "train_galaxies": GalaxyCatalog}
    optional_inputs = frozenset({"train_halos", "train_galaxies"})
    outputs = {"galaxies": GalaxyCatalog}

    def _model(
        self, train_halos: HaloCatalog | None, train_galaxies: GalaxyCatalog | None
    ) -> tuple[Any, str, dict[str, str]]:
        """The population model, how errors name it, and the provenance entries of the output's meta."""
        from cosmoseg.galaxies.population import fit_population, load_population

        p: PopulationStageParams = self.params
        if p.model:
            return load_population(p.model), p.model, model_provenance(Path(p.model), "file")
        if train_halos is None and train_galaxies is None:
            self.ctx.log(f"using the shipped population model ({SHIPPED_POPULATION.name}, see its model card)")
            shipped = model_provenance(SHIPPED_POPULATION, "shipped")
            return load_population(SHIPPED_POPULATION), f"the shipped {SHIPPED_POPULATION.name}", shipped
        if train_halos is None or train_galaxies is None:
            raise ValidationError("give both inputs train_halos and train_galaxies to fit a population model here")
        model = fit_population(
            train_halos, train_galaxies, conditions=p.conditions, method=p.method, hyper=p.hyper, seed=self.ctx.seed
        )
        fitted = f"fitted in this run on {len(train_galaxies)} galaxies"
        self.ctx.log(f"{fitted} (population model)")
        return model, "the model fitted in this run", {"model_file": "", "model_sha256": "", "model_origin": fitted}

    def run(
        self,
        halos: HaloCatalog,
        train_halos: HaloCatalog | None = None,
        train_galaxies: GalaxyCatalog | None = None,
    ) -> dict[str, GalaxyCatalog]:
        from cosmoseg.galaxies.population import populate_galaxies

        p: PopulationStageParams = self.params
        model, where, provenance = self._model(train_halos, train_galaxies)
        galaxies = populate_galaxies(
            model,
            halos,
            seed=self.ctx.seed % (2**62),
            generator=self.ctx.make_generator("cpu", offset=1),
            min_mass=p.min_mass,
            where=where,
            provenance=provenance,
        )
        n_cen = int(galaxies["is_central"].sum())
        self.ctx.log(f"{len(galaxies)} galaxies: {n_cen} centrals, {len(galaxies) - n_cen} satellites")
        return {"galaxies": galaxies}

    @classmethod
    def example_params(cls) -> dict[str, Any]:
        return {"hyper": {"epochs": 2, "hidden_features": 8, "layers": 1}}

    @classmethod
    def example_inputs(cls, generator: torch.Generator) -> dict[str, Any]:
        from cosmoseg.galaxies.model import paint_galaxies

        halos = toy_halos(generator)
        return {"halos": halos, "train_halos": halos, "train_galaxies": paint_galaxies(halos, seed=3)}


@dataclasses.dataclass(frozen=True)
class CatalogStageParams:
    """rsd_axis: the line of sight of the redshift-space positions pos_rsd: 0, 1, 2 (x, y, z), or -1 for none."""

    rsd_axis: Literal[-1, 0, 1, 2] = 2


class CatalogStage(Stage):
    """The mock galaxy catalog: galaxies with their host's row and mass and redshift-space positions, in the
    documented layout of docs/mock.md whatever made the galaxies (population model, galaxy model or HOD)."""

    name = "galaxies.catalog"
    Params = CatalogStageParams
    inputs = {"galaxies": GalaxyCatalog, "halos": HaloCatalog}
    outputs = {"catalog": GalaxyCatalog}

    def run(self, galaxies: GalaxyCatalog, halos: HaloCatalog) -> dict[str, GalaxyCatalog]:
        from cosmoseg.galaxies.mock import mock_catalog

        catalog = mock_catalog(galaxies, halos, rsd_axis=self.params.rsd_axis)
        self.ctx.log(
            f"{catalog.meta['n_galaxies']} galaxies ({catalog.meta['n_satellites']} satellites), "
            f"n = {catalog.meta['number_density']:.3g} (h/Mpc)^3"
        )
        return {"catalog": catalog}

    @classmethod
    def example_inputs(cls, generator: torch.Generator) -> dict[str, Any]:
        from cosmoseg.galaxies.model import paint_galaxies

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
