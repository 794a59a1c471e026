"""The stage shape shared by the four joint samplers: a HaloCatalog in, one central galaxy per halo out.

A stage loads a fitted sampler file (``model``), or fits one on the spot from optional training inputs
(``train_halos`` and ``train_galaxies``, e.g. the haloes of a simulation and the galaxies the galaxy model painted
on them; centrals are paired with their hosts by the ``host`` column), or, with neither, uses the shipped default
of the method in ``cosmoseg/galaxies/default_models/`` where there is one. It then draws the galaxy properties of
every halo of ``halos`` above ``min_mass``. Galaxies sit at their halo's position with its velocity
(``is_central`` True, ``host`` = the halo's row).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import torch

from cosmoseg.data import Box, GalaxyCatalog, HaloCatalog
from cosmoseg.errors import ValidationError
from cosmoseg.galaxies.features import (
    DEFAULT_GALAXY_PROPERTIES,
    DEFAULT_HALO_PROPERTIES,
    central_pairs,
    property_matrix,
)
from cosmoseg.galaxies.samplers.base import JointSampler, load_sampler, sampler_class
from cosmoseg.pipeline.stage import Stage

DEFAULT_MODELS_DIR = Path(__file__).parent / "default_models"
"""Shipped fitted samplers, ``<method>.pt``, with their MODEL_CARD.md."""


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
    """model: a fitted sampler file of this method ("" = fit one on the train_halos / train_galaxies inputs, or
    without them the shipped default of the method).
    save_model: where to write the sampler fitted here ("" = nowhere). conditions, targets: the halo and galaxy
    properties (columns or log_<column>) of a sampler fitted here. hyper: the method's hyper-parameters.
    min_mass: haloes lighter than this (Msun/h) get no galaxy."""

    model: str = ""
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
        return out


class SamplerStage(Stage):
    """Base of galaxies.flow / hival / gauss / regression (``method`` names the sampler)."""

    method: ClassVar[str] = ""
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

    def _sampler(self, train_halos: HaloCatalog | None, train_galaxies: GalaxyCatalog | None) -> JointSampler:
        p: SamplerParams = self.params
        cls = sampler_class(self.method)
        if p.model:
            sampler = load_sampler(p.model)
            if sampler.method != self.method:
                raise ValidationError(
                    f"{p.model} holds a {sampler.method!r} sampler; stage {self.name} needs {self.method!r}"
                )
            return sampler
        shipped = DEFAULT_MODELS_DIR / f"{self.method}.pt"
        if train_halos is None and train_galaxies is None and shipped.is_file():
            self.ctx.log(f"using the shipped {self.method} sampler ({shipped.name}, see its MODEL_CARD.md)")
            return load_sampler(shipped)
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
        self.ctx.log(f"fitted a {self.method} sampler on {len(x)} centrals")
        if p.save_model:
            sampler.save(p.save_model, card={"data": f"{len(x)} centrals of the pipeline's training inputs"})
        return sampler

    def run(
        self,
        halos: HaloCatalog,
        train_halos: HaloCatalog | None = None,
        train_galaxies: GalaxyCatalog | None = None,
    ) -> dict[str, GalaxyCatalog]:
        p: SamplerParams = self.params
        sampler = self._sampler(train_halos, train_galaxies)
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
        meta = {"sampler": self.method, "model": p.model or "fitted in this run", "min_mass": p.min_mass}
        return {"galaxies": GalaxyCatalog(columns=columns, box=halos.box, meta=meta)}
