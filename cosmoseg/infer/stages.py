"""The plugin face of ``cosmoseg.infer``: the stage ``infer.omega_m`` (a galaxy catalog in, the posterior of
(Ω_m, σ_8) out) and the ``cosmoseg infer`` commands."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from cosmoseg.data import Box, Cosmology, GalaxyCatalog, ParameterEstimate
from cosmoseg.hookspecs import hookimpl
from cosmoseg.infer.systematics import Compose
from cosmoseg.infer.training import (
    build_graphs,
    check_catalog_for_model,
    estimate,
    graph_spec_of,
    load_model,
    systematics_of,
)
from cosmoseg.pipeline.manifest import file_sha256
from cosmoseg.pipeline.params import InputPath, param
from cosmoseg.pipeline.stage import Stage

DEFAULT_MODEL = Path(__file__).parent / "default_models" / "omega_m.pt"
"""The shipped model (its card: MODEL_CARD.md beside it)."""


@dataclasses.dataclass(frozen=True)
class OmegaMParams:
    model: InputPath = param(  # noqa: RUF009 (a str)
        "", doc="a model file of `cosmoseg infer train` (empty: the shipped one, default_models/omega_m.pt)"
    )
    n_samples: int = param(1000, ge=2, doc="posterior samples (flow head; a moments model gives mean and σ)")
    observe: bool = param(
        True,
        doc="observe the catalog as the model was trained (its systematics, e.g. redshift space); false for a "
        "catalog that is already observed so",
    )


class OmegaMStage(Stage[OmegaMParams]):
    """The posterior of (Ω_m, σ_8) given a galaxy catalog, from a graph neural network (de Santi et al. 2023)."""

    name = "infer.omega_m"
    inputs = {"galaxies": GalaxyCatalog}
    outputs = {"estimate": ParameterEstimate}

    def run(self, galaxies: GalaxyCatalog) -> dict[str, ParameterEstimate]:
        p = self.params
        path = Path(p.model) if p.model else DEFAULT_MODEL
        model, meta = load_model(path, self.ctx.device)
        check_catalog_for_model(galaxies, meta, "galaxies")
        effects = systematics_of(meta) if p.observe else Compose(())
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=self.ctx.generator))
        graphs = build_graphs({0: galaxies}, graph_spec_of(meta), effects, seed=seed)
        result = estimate(model, graphs, n_samples=p.n_samples, generator=self.ctx.generator, with_truth=False)
        m = result.mean[0]
        self.ctx.log(f"Ω_m = {float(m[0]):.3f} ± {float(result.std[0, 0]):.3f}, σ_8 = {float(m[1]):.3f} ± "
                     f"{float(result.std[0, 1]):.3f} from {len(galaxies)} galaxies")  # fmt: skip
        provenance = {"model_file": str(path), "model_sha256": file_sha256(path), "systematics": effects.describe()}
        single = ParameterEstimate(
            names=result.names,
            mean=result.mean[0],
            std=result.std[0],
            samples=None if result.samples is None else result.samples[0],
            meta=provenance | {"galaxy_model": str(galaxies.meta.get("galaxy_model", ""))},
        )
        return {"estimate": single}

    @classmethod
    def example_inputs(cls, generator: torch.Generator) -> dict[str, Any]:
        """A uniform catalog in a 25 Mpc/h box (the shipped model's) with velocities."""
        n = 300
        box = Box(length=25.0, cosmology=Cosmology(omega_m=0.3, sigma_8=0.8), redshift=0.0)
        columns = {
            "pos": torch.rand((n, 3), generator=generator) * 25.0,
            "vel": torch.randn((n, 3), generator=generator) * 200.0,
            "log_mstar": 9.0 + torch.rand(n, generator=generator) * 2.0,
            "color_gi": 0.6 + 0.4 * torch.rand(n, generator=generator),
            "is_central": torch.ones(n, dtype=torch.bool),
        }
        return {"galaxies": GalaxyCatalog(columns=columns, box=box)}


@hookimpl
def cosmoseg_register_commands(app: Any) -> None:
    """``cosmoseg infer train|evaluate``."""
    from cosmoseg.infer.commands import app as infer_app

    app.add_typer(infer_app, name="infer")


@hookimpl
def cosmoseg_register_stages(register: Any) -> None:
    register(OmegaMStage)
