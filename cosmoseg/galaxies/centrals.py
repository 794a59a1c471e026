"""A central galaxy for every halo from a joint sampler: what the sampler stages (galaxies.flow / hival / gauss /
regression) draw, callable without a pipeline.

:func:`sample_centrals` puts one central in every halo at least as heavy as ``min_mass``, at the halo's position
with its velocity (``is_central`` True, ``host`` = the halo's row), its properties drawn from a fitted
:class:`~cosmoseg.galaxies.samplers.base.JointSampler` conditioned on the halo's properties. A sampler is fitted on
the centrals of a training catalog with :func:`cosmoseg.galaxies.features.central_rows` and ``fit``, or loaded with
:func:`~cosmoseg.galaxies.samplers.base.load_sampler`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from cosmoseg.data import GalaxyCatalog, HaloCatalog
from cosmoseg.galaxies.features import property_matrix
from cosmoseg.galaxies.samplers.base import JointSampler

__all__ = ["sample_centrals"]


def sample_centrals(
    sampler: JointSampler,
    halos: HaloCatalog,
    *,
    generator: torch.Generator,
    min_mass: float = 0.0,
    provenance: Mapping[str, str] | None = None,
) -> GalaxyCatalog:
    """One central per halo of ``halos`` with ``mass`` >= ``min_mass`` (Msun/h), its properties (the sampler's
    ``target_names``, float32) one draw of ``sampler`` (``generator``).

    Columns: ``pos`` (and ``vel`` when the haloes have it) of the host, ``host``, ``is_central`` and the targets.
    ``meta``: ``sampler`` (the method), ``model`` (``model_origin`` when it says "fitted ...", else ``model_file``),
    the ``provenance`` entries (``model_file``, ``model_sha256``, ``model_origin``, as the stages give them) and
    ``min_mass``.
    """
    keep = torch.nonzero(halos["mass"] >= min_mass).reshape(-1)
    x = property_matrix(halos, sampler.condition_names, role="halo catalog")[keep]
    n_targets = len(sampler.target_names)
    draws = sampler.sample(x, 1, generator=generator)[0] if len(keep) else torch.zeros(0, n_targets)
    columns: dict[str, torch.Tensor] = {"pos": halos["pos"][keep]}
    if "vel" in halos.columns:
        columns["vel"] = halos["vel"][keep]
    columns |= {"host": keep, "is_central": torch.ones(len(keep), dtype=torch.bool)}
    columns |= {name: draws[:, j].to(torch.float32) for j, name in enumerate(sampler.target_names)}
    provenance = dict(provenance or {})
    origin = provenance.get("model_origin", "")
    described = origin if origin.startswith("fitted") else provenance.get("model_file", "")
    meta = {"sampler": sampler.method, "model": described, **provenance, "min_mass": min_mass}
    return GalaxyCatalog(columns=columns, box=halos.box, meta=meta)
