"""Initial conditions: the linear density and potential on the Lagrangian grid, and 2LPT particles.

Conventions (Scoccimarro 1998; Crocce, Pueblas & Scoccimarro 2006):

- δ(q) is the linear density contrast scaled to z = 0 (growth D(a=1) = 1), φ(q) solves ∇²φ = δ
  (φ_k = -δ_k / k², units (Mpc/h)²). These two fields are the inputs of the protohalo models.
- Particles start at the cell centres q (``cosmoseg.mesh.grid``) and move to
  x(a) = q + D1(a) Ψ1(q) + D2(a) Ψ2(q), with Ψ1 = -∇φ (Zel'dovich: δ = -∇·Ψ1) and Ψ2 = ∇φ2 / 1 where
  ∇²φ2 = Σ_{i<j} (φ,ii φ,jj - φ,ij²) and D2(a) ≈ -3/7 D1(a)² Ω_m(a)^(-1/143) (Bouchet et al. 1995).
- Peculiar velocities: v = a H(a) [f1 D1 Ψ1 + f2 D2 Ψ2] with f1 = dlnD1/dlna from the cosmology and
  f2 ≈ 2 Ω_m(a)^(6/11); in km/s with H = 100 E(a) h km/s/Mpc and Ψ in Mpc/h.
- Modes: δ_k = g_k · n^3 · sqrt(P_lin(k) / V) with the unit white noise g_k of ``cosmoseg.sim.noise``
  (its layout does not depend on n), so <|δ_k|²> = n^6 P / V as in ``cosmoseg.measure.power_spectrum``.
  ``fixed_amplitude`` sets |g_k| = 1 (Angulo & Pontzen 2016); ``paired`` flips every phase by π.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from cosmoseg.data import Box, Cosmology, Field, Particles
from cosmoseg.mesh.fourier import rfft_wavevectors
from cosmoseg.sim.noise import white_noise_modes


@dataclasses.dataclass(frozen=True)
class InitialConditions:
    """fields: Field with channels ("delta", "phi") on the n^3 Lagrangian grid, linear, scaled to z = 0.
    particles: Particles at the starting redshift (2LPT or Zel'dovich), ids = flat cell ids, n_grid = n."""

    fields: Field
    particles: Particles


def second_order_growth(cosmology: Cosmology, a: float) -> tuple[float, float]:
    """(D2, f2) at scale factor a: D2 ≈ -3/7 D1² Ω_m^(-1/143), f2 ≈ 2 Ω_m^(6/11) (Bouchet et al. 1995)."""
    d1 = float(cosmology.growth_factor(a))
    omega = float(cosmology.omega_m_of_a(a))
    return -3.0 / 7.0 * d1**2 * omega ** (-1.0 / 143.0), 2.0 * omega ** (6.0 / 11.0)


def check_grid(n: int, length: float) -> None:
    problems = []
    if not isinstance(n, int) or n < 2 or n % 2:
        problems.append(f"n must be an even integer >= 2 (the FFT layout pairs modes), got {n!r}")
    if not (isinstance(length, int | float) and math.isfinite(length) and length > 0):
        problems.append(f"the box side must be a positive number of Mpc/h, got {length!r}")
    if problems:
        raise ValueError("; ".join(problems))


def _integer_k2(n: int, device: torch.device | str) -> torch.Tensor:
    """|k|² in units of the fundamental frequency squared, as int64, on the (n, n, n//2+1) grid."""
    full = torch.fft.fftfreq(n, d=1.0 / n, device=device).round().long()
    half = torch.arange(n // 2 + 1, device=device)
    return full.view(n, 1, 1) ** 2 + full.view(1, n, 1) ** 2 + half.view(1, 1, -1) ** 2


def linear_modes(
    cosmology: Cosmology,
    noise: torch.Tensor,
    n: int,
    length: float,
    *,
    fixed_amplitude: bool = False,
    paired: bool = False,
) -> torch.Tensor:
    """δ_k at z = 0 on the (n, n, n//2+1) rfftn grid from unit white noise ``noise`` (same dtype).

    The physical field δ(x) = Σ_k g_k n^3 sqrt(P(k)/V) e^{ik·x} / n^3 is sampled at the cell centres, so the
    same noise gives the same field at every resolution. P(k) is evaluated once per distinct integer |k|²
    (at most 3 n²/4 values) and gathered.
    """
    if fixed_amplitude:
        noise = torch.where(noise != 0, noise / noise.abs().clamp_min(1e-30), noise)
    if paired:
        noise = -noise
    k2 = _integer_k2(n, noise.device)
    kf = 2.0 * math.pi / length
    k_table = kf * torch.sqrt(torch.arange(int(k2.max()) + 1, dtype=torch.float64))
    amplitude_table = n**3 * torch.sqrt(torch.as_tensor(cosmology.linear_power(k_table)) / length**3)
    amplitude = amplitude_table.to(device=noise.device, dtype=noise.real.dtype)[k2]
    # sample i of the grid sits at the cell centre (i + 1/2) L/n: the phase e^{ik·(L/2n)(1,1,1)} makes the
    # physical field Σ_k δ_k e^{ik·x} the same at every n (the FFT itself counts positions from sample 0)
    kx, ky, kz = rfft_wavevectors(n, length, device=noise.device, dtype=noise.real.dtype)
    half_cell = torch.exp(1j * (kx + ky + kz) * (0.5 * length / n))
    return noise * amplitude * half_cell


def _inverse_laplacian(modes: torch.Tensor, k2: torch.Tensor) -> torch.Tensor:
    """∇^-2 in Fourier space: -modes / k² with the k = 0 mode set to zero."""
    out = -modes / torch.where(k2 > 0, k2, torch.ones_like(k2))
    out[0, 0, 0] = 0
    return out


def lpt_displacements(
    delta_k: torch.Tensor, n: int, length: float, *, order: int = 2, shift: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Ψ1 and Ψ2 (each (3, n, n, n), real dtype of ``delta_k``, Mpc/h, for D1 = 1) on the grid of δ_k.

    shift: evaluate at grid points moved by ``shift`` cells along every axis (a phase factor; used by the
    twins to sample a fine grid at coarse cell centres).
    """
    real = delta_k.real.dtype
    kx, ky, kz = rfft_wavevectors(n, length, device=delta_k.device, dtype=real)
    ks = (kx, ky, kz)
    k2 = kx**2 + ky**2 + kz**2
    phi_k = _inverse_laplacian(delta_k, k2)
    phase = torch.exp(1j * (kx + ky + kz) * (shift * length / n)) if shift else None
    grid = (n, n, n)

    def gradient(potential_k: torch.Tensor, sign: float) -> torch.Tensor:
        out = torch.empty((3, *grid), dtype=real, device=delta_k.device)
        for axis, k in enumerate(ks):
            modes = potential_k * ((sign * 1j) * k)
            out[axis] = torch.fft.irfftn(modes if phase is None else modes * phase, s=grid)
        return out

    psi1 = gradient(phi_k, -1.0)
    if order == 1:
        return psi1, None
    # second-order source Σ_{i<j} (φ,ii φ,jj − φ,ij²), without holding all six second derivatives
    xx, yy, zz = (torch.fft.irfftn(-(k * k) * phi_k, s=grid) for k in ks)
    source = xx * yy
    source += xx * zz
    source += yy * zz
    del xx, yy, zz
    for a, b in ((0, 1), (0, 2), (1, 2)):
        source -= torch.fft.irfftn(-(ks[a] * ks[b]) * phi_k, s=grid).square_()
    phi2_k = _inverse_laplacian(torch.fft.rfftn(source), k2)
    del source
    return psi1, gradient(phi2_k, 1.0)


def particles_from_displacements(
    cosmology: Cosmology,
    psi1: torch.Tensor,
    psi2: torch.Tensor | None,
    *,
    n: int,
    length: float,
    z_start: float,
    dtype: torch.dtype,
    meta: dict[str, str | int | float | bool],
) -> Particles:
    """Particles at the cell centres of an n^3 grid, displaced and given velocities by LPT at z_start.

    psi1, psi2: (3, n, n, n) displacement fields for D1 = 1 sampled at the cell centres, Mpc/h.
    """
    a = 1.0 / (1.0 + z_start)
    d1, f1 = float(cosmology.growth_factor(a)), float(cosmology.growth_rate(a))
    d2, f2 = second_order_growth(cosmology, a) if psi2 is not None else (0.0, 0.0)
    velocity_unit = a * 100.0 * float(cosmology.efunc(a))  # km/s per Mpc/h of displacement per unit ln a
    device = psi1.device
    pos = torch.empty((n**3, 3), dtype=dtype, device=device)
    vel = torch.empty((n**3, 3), dtype=dtype, device=device)
    centres = (torch.arange(n, device=device, dtype=psi1.dtype) + 0.5) * (length / n)
    for axis in range(3):
        shape = [1, 1, 1]
        shape[axis] = n
        displacement = psi1[axis].mul(d1)
        velocity = psi1[axis].mul(velocity_unit * f1 * d1)
        if psi2 is not None:
            displacement.add_(psi2[axis], alpha=d2)
            velocity.add_(psi2[axis], alpha=velocity_unit * f2 * d2)
        pos[:, axis] = displacement.add_(centres.view(shape)).view(-1)
        vel[:, axis] = velocity.view(-1)
        del displacement, velocity
    box = Box(length=length, redshift=z_start, cosmology=cosmology)
    ids = torch.arange(n**3, device=device)
    return Particles(pos=pos, vel=vel, ids=ids, mass=cosmology.particle_mass(n, length), box=box, n_grid=n, meta=meta)


def fields_from_modes(
    cosmology: Cosmology, delta_k: torch.Tensor, n: int, length: float, dtype: torch.dtype, meta: dict
) -> Field:
    """The ("delta", "phi") Field of δ_k: δ dimensionless, φ in (Mpc/h)², both linear at z = 0."""
    kx, ky, kz = rfft_wavevectors(n, length, device=delta_k.device, dtype=delta_k.real.dtype)
    values = torch.empty((2, n, n, n), dtype=dtype, device=delta_k.device)
    values[0] = torch.fft.irfftn(delta_k, s=(n, n, n))
    values[1] = torch.fft.irfftn(_inverse_laplacian(delta_k, kx**2 + ky**2 + kz**2), s=(n, n, n))
    box = Box(length=length, redshift=0.0, cosmology=cosmology)
    return Field(values=values, box=box, channels=("delta", "phi"), units=("", "(Mpc/h)^2"), meta=meta)


def linear_potential(delta: torch.Tensor, length: float) -> torch.Tensor:
    """φ with ∇²φ = δ on a periodic grid: delta (n, n, n) float, dimensionless; length: box side, Mpc/h.

    Returns (n, n, n) in (Mpc/h)², mean zero, the "phi" of :func:`fields_from_modes` for the same δ.
    """
    n = delta.shape[-1]
    dtype = torch.float64 if delta.dtype == torch.float64 else torch.float32
    delta_k = torch.fft.rfftn(delta.to(dtype), s=(n, n, n))
    kx, ky, kz = rfft_wavevectors(n, length, device=delta.device, dtype=dtype)
    return torch.fft.irfftn(_inverse_laplacian(delta_k, kx**2 + ky**2 + kz**2), s=(n, n, n)).to(delta.dtype)


def complex_dtype_for(dtype: torch.dtype) -> torch.dtype:
    """complex64 for float32 (and lower) outputs, complex128 for float64."""
    return torch.complex128 if dtype == torch.float64 else torch.complex64


def initial_conditions(
    cosmology: Cosmology,
    *,
    n: int,
    length: float,
    seed: int,
    z_start: float = 49.0,
    lpt_order: int = 2,
    fixed_amplitude: bool = False,
    paired: bool = False,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> InitialConditions:
    """Linear δ, φ (scaled to z = 0) and LPT particles at ``z_start`` for an n^3 grid in a box of side
    ``length`` Mpc/h. The same ``seed`` at n and 2n shares every mode below the coarse Nyquist frequency."""
    check_grid(n, length)
    if lpt_order not in (1, 2):
        raise ValueError(f"lpt_order must be 1 (Zel'dovich) or 2 (2LPT), got {lpt_order}")
    if not z_start > 0:
        raise ValueError(f"z_start must be > 0, got {z_start}")
    noise = white_noise_modes(seed, n, device=device).to(complex_dtype_for(dtype))
    delta_k = linear_modes(cosmology, noise, n, length, fixed_amplitude=fixed_amplitude, paired=paired)
    meta = {
        "linear_redshift": 0.0,
        "seed": seed,
        "z_start": z_start,
        "lpt_order": lpt_order,
        "fixed_amplitude": fixed_amplitude,
        "paired": paired,
        "power_backend": cosmology.resolved_power_backend,
    }
    fields = fields_from_modes(cosmology, delta_k, n, length, dtype, meta)
    psi1, psi2 = lpt_displacements(delta_k, n, length, order=lpt_order)
    del delta_k
    particles = particles_from_displacements(
        cosmology, psi1, psi2, n=n, length=length, z_start=z_start, dtype=dtype, meta=meta
    )
    return InitialConditions(fields=fields, particles=particles)


def twin_modes(
    cosmology: Cosmology,
    *,
    n: int,
    length: float,
    seed: int,
    small_scale_seed: int,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """δ_k at z = 0 on the (2n)^3 rfftn grid of one twin: the modes with every |k_i| < n/2 (in units of
    the fundamental frequency) from ``seed``, all others from ``small_scale_seed``."""
    complex_dtype = complex_dtype_for(dtype)
    shared = white_noise_modes(seed, 2 * n, device=device, select="inside", cutoff=n // 2)
    extra = white_noise_modes(small_scale_seed, 2 * n, device=device, select="outside", cutoff=n // 2)
    return linear_modes(cosmology, (shared + extra).to(complex_dtype), 2 * n, length)


def sub_resolution_twins(
    cosmology: Cosmology,
    *,
    n: int,
    length: float,
    seed: int,
    small_scale_seeds: tuple[int, int],
    z_start: float = 49.0,
    lpt_order: int = 2,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[InitialConditions, InitialConditions]:
    """Two n^3 realisations that share every mode of the n grid and differ only in the modes a 2n grid adds.

    As in López-Cano et al. (2024, §2.5): the displacements are generated on a (2n)^3 grid whose modes with
    all |k_i| below the coarse Nyquist frequency come from ``seed`` and whose other modes come from one of
    ``small_scale_seeds``, and every 2^3-th particle is kept (the fine grid is sampled at the coarse cell
    centres, half a fine cell from its own, through an exact Fourier phase shift). The ("delta", "phi")
    fields are the shared coarse ones, identical for both twins; comparing the Lagrangian halo labels of the
    two runs gives the best accuracy any model of the coarse fields can reach.
    """
    check_grid(n, length)
    if small_scale_seeds[0] == small_scale_seeds[1]:
        raise ValueError(f"the two small-scale seeds must differ, got {small_scale_seeds}")
    if lpt_order not in (1, 2):
        raise ValueError(f"lpt_order must be 1 (Zel'dovich) or 2 (2LPT), got {lpt_order}")
    complex_dtype = complex_dtype_for(dtype)
    coarse = white_noise_modes(seed, n, device=device).to(complex_dtype)
    coarse_k = linear_modes(cosmology, coarse, n, length)
    twins = []
    for small in small_scale_seeds:
        meta = {
            "linear_redshift": 0.0,
            "seed": seed,
            "small_scale_seed": small,
            "z_start": z_start,
            "lpt_order": lpt_order,
            "twin_of_grid": 2 * n,
            "power_backend": cosmology.resolved_power_backend,
        }
        fine_k = twin_modes(
            cosmology, n=n, length=length, seed=seed, small_scale_seed=small, device=device, dtype=dtype
        )
        psi1, psi2 = lpt_displacements(fine_k, 2 * n, length, order=lpt_order, shift=0.5)
        del fine_k
        psi1 = psi1[:, ::2, ::2, ::2].contiguous()
        psi2 = psi2[:, ::2, ::2, ::2].contiguous() if psi2 is not None else None
        particles = particles_from_displacements(
            cosmology, psi1, psi2, n=n, length=length, z_start=z_start, dtype=dtype, meta=meta
        )
        fields = fields_from_modes(cosmology, coarse_k, n, length, dtype, meta)
        twins.append(InitialConditions(fields=fields, particles=particles))
    return twins[0], twins[1]
