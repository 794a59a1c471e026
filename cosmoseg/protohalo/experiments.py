"""Modified initial conditions that probe what a protohalo network learned (López-Cano et al. §4).

* :func:`shift_density`: a uniform density shift δ_ε (eq. 11) with the potential that goes with it, φ + δ_ε |q −
  q₀|²/6 (eq. 12), so that ∇²φ_* = δ_* still holds;
* :func:`impose_tide`: a trace-free tidal field T = diag(0, −λ_z, λ_z) about q₀ (eqs. 15–16), which leaves δ
  unchanged (the trace is 0).

Both quadratic terms are written with the minimal periodic image of q − q₀, so the modified fields are periodic,
as the networks' crop lattice needs; they are exact quadratics within half a box of q₀ (the only region where a
quadratic term makes sense in a periodic box; the face half a box away carries a kink). The paper's public
notebook uses |q − q₀| instead of |q − q₀|² in eq. (12), whose Laplacian is not δ_ε.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from cosmoseg.data import Field
from cosmoseg.mesh.periodic import minimal_image

__all__ = ["impose_tide", "periodic_separation", "shift_density"]


def periodic_separation(n: int, length: float, centre: Sequence[float], *, dtype: torch.dtype) -> torch.Tensor:
    """(3, n, n, n) minimal periodic image of q − q₀ for every cell centre q of an n³ grid, Mpc/h.

    ``centre``: q₀ (3,), Mpc/h. Cell (i, j, k) has its centre at ((i, j, k) + ½) length / n, the project's
    Lagrangian grid convention (``mesh.grid``).
    """
    q0 = torch.as_tensor(centre, dtype=dtype).reshape(3)
    axis = (torch.arange(n, dtype=dtype) + 0.5) * (length / n)
    grids = torch.meshgrid(axis, axis, axis, indexing="ij")
    return torch.stack([minimal_image(g - q0[i], length) for i, g in enumerate(grids)])


def _modified(fields: Field, delta: torch.Tensor, phi: torch.Tensor, what: str) -> Field:
    values = fields.values.clone()
    values[fields.channels.index("delta")] = delta.to(values.dtype)
    values[fields.channels.index("phi")] = phi.to(values.dtype)
    return Field(
        values=values,
        box=fields.box,
        channels=fields.channels,
        units=fields.units,
        meta={**fields.meta, "modified": what},
    )


def _check(fields: Field) -> None:
    missing = [c for c in ("delta", "phi") if c not in fields.channels]
    if missing:
        raise ValueError(f"the fields need 'delta' and 'phi' channels; missing {missing} (they have {fields.channels})")


def shift_density(fields: Field, epsilon: float, centre: Sequence[float]) -> Field:
    """δ_* = δ + ε everywhere and φ_* = φ + ε |q − q₀|²/6 (minimal image), eqs. (11)–(12).

    ``fields``: the linear ("delta", "phi") Field of a box (φ in (Mpc/h)², ∇²φ = δ); ``epsilon``: δ_ε; ``centre``:
    q₀ (3,), Mpc/h, typically a protohalo's Lagrangian centre. Returns a new Field (``meta["modified"]`` says what
    was done); the input is left as it is.
    """
    _check(fields)
    length = fields.box.length
    d = periodic_separation(fields.n, length, centre, dtype=torch.float64)
    delta = fields.channel("delta").to(torch.float64) + float(epsilon)
    phi = fields.channel("phi").to(torch.float64) + float(epsilon) * (d**2).sum(0) / 6.0
    return _modified(fields, delta, phi, f"delta shifted by {float(epsilon):g} about {list(map(float, centre))}")


def impose_tide(fields: Field, lambda_z: float, centre: Sequence[float]) -> Field:
    """φ_* = φ + ½ (q − q₀)ᵀ T (q − q₀) with T = diag(0, −λ_z, λ_z) (minimal image), eqs. (15)–(16); δ unchanged.

    A positive λ_z compresses along z and stretches along y. ``fields``, ``centre``: as :func:`shift_density`.
    """
    _check(fields)
    d = periodic_separation(fields.n, fields.box.length, centre, dtype=torch.float64)
    phi = fields.channel("phi").to(torch.float64) + 0.5 * float(lambda_z) * (d[2] ** 2 - d[1] ** 2)
    return _modified(
        fields, fields.channel("delta"), phi, f"tide lambda_z = {float(lambda_z):g} about {list(map(float, centre))}"
    )
