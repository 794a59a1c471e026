"""Initial conditions: spectra, the Poisson equation, LPT against analytic cases, n-independence, twins."""

from __future__ import annotations

import math

import pytest
import torch

from cosmoseg.data import Cosmology
from cosmoseg.errors import ConfigError
from cosmoseg.measure import model_power_in_bins, power_spectrum
from cosmoseg.mesh.fourier import rfft_wavevectors
from cosmoseg.mesh.grid import grid_cell_centers
from cosmoseg.sim.ics import (
    initial_conditions,
    linear_modes,
    lpt_displacements,
    second_order_growth,
    sub_resolution_twins,
    twin_modes,
)
from cosmoseg.sim.noise import white_noise_modes

COSMO = Cosmology(power_backend="eisenstein-hu")
F64 = torch.float64


def displacement(particles, n: int, length: float) -> torch.Tensor:
    """(n^3, 3) periodic displacement of each particle from its cell centre."""
    d = particles.pos.double() - grid_cell_centers(n, length, dtype=F64)
    return d - length * torch.round(d / length)


def physical_modes(field: torch.Tensor, length: float) -> torch.Tensor:
    """Σ_x δ(x) e^{-ik·x} / n^3 with x the cell centres: the grid-independent Fourier amplitudes."""
    n = field.shape[-1]
    kx, ky, kz = rfft_wavevectors(n, length, dtype=F64)
    return torch.fft.rfftn(field) / n**3 * torch.exp(-1j * (kx + ky + kz) * (0.5 * length / n))


def test_ic_power_spectrum_matches_the_input_within_cosmic_variance() -> None:
    n, length = 48, 400.0
    chi2, dof, pooled, modes = 0.0, 0, 0.0, 0.0
    for seed in range(4):
        delta = initial_conditions(COSMO, n=n, length=length, seed=seed, dtype=F64).fields.channel("delta")
        spectrum = power_spectrum(delta, length)
        expected = model_power_in_bins(COSMO.linear_power, n, length, spectrum.k_low, spectrum.k_high)
        # the Nyquist modes are zeroed by the noise layout, so the last bins lose those modes' power
        keep = spectrum.k_high <= math.pi * (n - 2) / length
        sigma = expected * torch.sqrt(2.0 / spectrum.n_modes)
        chi2 += float((((spectrum.power - expected) / sigma)[keep] ** 2).sum())
        dof += int(keep.sum())
        pooled += float((spectrum.power / expected * spectrum.n_modes)[keep].sum())
        modes += float(spectrum.n_modes[keep].sum())
    assert abs(chi2 / dof - 1) < 5 * math.sqrt(2 / dof)
    assert abs(pooled / modes - 1) < 5 * math.sqrt(2 / modes)


def test_delta_and_phi_satisfy_the_poisson_equation_to_float_precision() -> None:
    n, length = 16, 80.0
    fields = initial_conditions(COSMO, n=n, length=length, seed=4, dtype=F64).fields
    kx, ky, kz = rfft_wavevectors(n, length, dtype=F64)
    delta_k = torch.fft.rfftn(fields.channel("delta"))
    laplacian_phi_k = -(kx**2 + ky**2 + kz**2) * torch.fft.rfftn(fields.channel("phi"))
    assert float((laplacian_phi_k - delta_k).abs().max()) < 1e-12 * float(delta_k.abs().max())
    assert fields.meta["linear_redshift"] == 0.0 and fields.units == ("", "(Mpc/h)^2")
    single = initial_conditions(COSMO, n=n, length=length, seed=4).fields
    lap32 = -(kx**2 + ky**2 + kz**2) * torch.fft.rfftn(single.channel("phi").double())
    assert float((lap32 - torch.fft.rfftn(single.channel("delta").double())).abs().max()) < 1e-5 * float(
        delta_k.abs().max()
    )


def test_the_same_seed_at_n_and_2n_shares_every_coarse_mode() -> None:
    length = 60.0
    coarse = initial_conditions(COSMO, n=8, length=length, seed=9, dtype=F64).fields.channel("delta")
    fine = initial_conditions(COSMO, n=16, length=length, seed=9, dtype=F64).fields.channel("delta")
    coarse_k, fine_k = physical_modes(coarse, length), physical_modes(fine, length)
    for i in range(-3, 4):
        for j in range(-3, 4):
            for k in range(0, 4):
                assert torch.allclose(coarse_k[i % 8, j % 8, k], fine_k[i % 16, j % 16, k], rtol=1e-10, atol=1e-14)
    assert float(fine_k[5, 0, 0].abs()) > 0  # and the fine grid has modes of its own


def test_zeldovich_displacement_is_minus_the_gradient_of_phi_and_velocities_follow() -> None:
    n, length, z_start = 16, 100.0, 30.0
    ics = initial_conditions(COSMO, n=n, length=length, seed=2, z_start=z_start, lpt_order=1, dtype=F64)
    a = 1 / (1 + z_start)
    d1, f1 = COSMO.growth_factor(a), COSMO.growth_rate(a)
    psi = displacement(ics.particles, n, length) / d1  # (n^3, 3) for D = 1
    # -∇·Ψ = δ in Fourier space
    kx, ky, kz = rfft_wavevectors(n, length, dtype=F64)
    grid = psi.T.reshape(3, n, n, n)
    divergence_k = sum(1j * k * torch.fft.rfftn(g) for k, g in zip((kx, ky, kz), grid, strict=True))
    delta_k = torch.fft.rfftn(ics.fields.channel("delta"))
    assert float((divergence_k + delta_k).abs().max()) < 1e-10 * float(delta_k.abs().max())
    expected_vel = a * 100 * COSMO.efunc(a) * f1 * d1 * psi
    assert torch.allclose(ics.particles.vel, expected_vel, rtol=1e-10, atol=1e-10)
    assert ics.particles.mass == pytest.approx(COSMO.particle_mass(n, length))
    assert ics.particles.n_grid == n and torch.equal(ics.particles.ids, torch.arange(n**3))


def test_second_order_displacement_of_two_crossed_plane_waves() -> None:
    # φ1 = A cos(kx) + B cos(ky): the 2LPT source is φ,xx φ,yy = A B k^4 cos(kx) cos(ky), so
    # φ2 = -A B k^2 cos(kx) cos(ky) / 2 and Ψ2 = ∇φ2.
    n, length, amp_a, amp_b = 16, 50.0, 3.0, -2.0
    k = 2 * math.pi * 2 / length
    x = (torch.arange(n, dtype=F64) + 0.5) * length / n
    X, Y = torch.meshgrid(x, x, indexing="ij")
    phi1 = (amp_a * torch.cos(k * X) + amp_b * torch.cos(k * Y))[..., None].expand(n, n, n)
    delta = -(k**2) * (amp_a * torch.cos(k * X) + amp_b * torch.cos(k * Y))[..., None].expand(n, n, n)
    psi1, psi2 = lpt_displacements(torch.fft.rfftn(delta), n, length, order=2)
    grad_phi1_x = -amp_a * k * torch.sin(k * X)[..., None].expand(n, n, n)
    assert torch.allclose(psi1[0], -grad_phi1_x, atol=1e-10)
    assert float(phi1.std()) > 0
    prefactor = -amp_a * amp_b * k**2 / 2
    expected_x = -prefactor * k * (torch.sin(k * X) * torch.cos(k * Y))[..., None].expand(n, n, n)
    expected_y = -prefactor * k * (torch.cos(k * X) * torch.sin(k * Y))[..., None].expand(n, n, n)
    assert torch.allclose(psi2[0], expected_x, atol=1e-9)
    assert torch.allclose(psi2[1], expected_y, atol=1e-9)
    assert float(psi2[2].abs().max()) < 1e-9


def test_second_order_growth_is_close_to_minus_three_sevenths() -> None:
    d2, f2 = second_order_growth(COSMO, 0.02)
    assert d2 / COSMO.growth_factor(0.02) ** 2 == pytest.approx(-3 / 7, rel=2e-3)
    assert f2 == pytest.approx(2.0, rel=1e-3)


def test_fixed_amplitude_and_paired_fields() -> None:
    n, length = 8, 40.0
    noise = white_noise_modes(5, n).to(torch.complex128)
    fixed = linear_modes(COSMO, noise, n, length, fixed_amplitude=True)
    kx, ky, kz = rfft_wavevectors(n, length, dtype=F64)
    target = n**3 * torch.sqrt(COSMO.linear_power(torch.sqrt(kx**2 + ky**2 + kz**2)) / length**3)
    nonzero = noise != 0
    assert torch.allclose(fixed.abs()[nonzero], target.expand_as(fixed)[nonzero], rtol=1e-12)
    a = initial_conditions(COSMO, n=n, length=length, seed=5, dtype=F64)
    b = initial_conditions(COSMO, n=n, length=length, seed=5, paired=True, dtype=F64)
    assert torch.allclose(a.fields.values, -b.fields.values)
    assert b.fields.meta["paired"] is True


def test_twins_share_coarse_modes_exactly_and_differ_above_the_coarse_nyquist() -> None:
    n, length = 8, 40.0
    kwargs = {"n": n, "length": length, "seed": 3, "dtype": F64}
    first = twin_modes(COSMO, small_scale_seed=1, **kwargs)
    second = twin_modes(COSMO, small_scale_seed=2, **kwargs)
    coarse = initial_conditions(COSMO, **kwargs).fields.channel("delta")
    coarse_k = physical_modes(coarse, length)
    kfx, kfy, kfz = rfft_wavevectors(2 * n, length, dtype=F64)
    first_physical = first / (2 * n) ** 3 * torch.exp(-1j * (kfx + kfy + kfz) * (0.5 * length / (2 * n)))
    kx, ky, kz = (
        torch.fft.fftfreq(2 * n, 1 / (2 * n)).round().long().abs().view(-1, 1, 1),
        torch.fft.fftfreq(2 * n, 1 / (2 * n)).round().long().abs().view(1, -1, 1),
        torch.arange(n + 1).view(1, 1, -1),
    )
    inside = (kx < n // 2) & (ky < n // 2) & (kz < n // 2)
    assert torch.equal(first[inside], second[inside])
    outside = ~inside & (first != 0)
    assert bool((first[outside] != second[outside]).all()) and int(outside.sum()) > 1000
    for i, j, k in ((1, 2, 3), (-3, 1, 0), (2, -3, 1)):
        assert torch.allclose(first_physical[i % (2 * n), j % (2 * n), k], coarse_k[i % n, j % n, k], rtol=1e-10)


def test_twin_particles_carry_the_shared_displacement_plus_their_own_small_scales() -> None:
    n, length = 8, 40.0
    a, b = sub_resolution_twins(COSMO, n=n, length=length, seed=3, small_scale_seeds=(1, 2), lpt_order=1, dtype=F64)
    plain = initial_conditions(COSMO, n=n, length=length, seed=3, lpt_order=1, dtype=F64)
    assert torch.equal(a.fields.values, b.fields.values)
    assert torch.allclose(a.fields.values, plain.fields.values, atol=1e-12)
    # Zel'dovich is linear: twin - plain = the displacement of the small-scale modes alone, which must
    # not be zero and must differ between the twins, while the shared part is exactly the plain one
    extra_a = displacement(a.particles, n, length) - displacement(plain.particles, n, length)
    extra_b = displacement(b.particles, n, length) - displacement(plain.particles, n, length)
    d1 = COSMO.growth_factor(1 / 50)
    small = twin_modes(COSMO, n=n, length=length, seed=3, small_scale_seed=1, dtype=F64)
    kx, ky, kz = (
        torch.fft.fftfreq(2 * n, 1 / (2 * n)).round().long().abs().view(-1, 1, 1),
        torch.fft.fftfreq(2 * n, 1 / (2 * n)).round().long().abs().view(1, -1, 1),
        torch.arange(n + 1).view(1, 1, -1),
    )
    small = torch.where((kx < n // 2) & (ky < n // 2) & (kz < n // 2), 0, small)
    psi_small, _ = lpt_displacements(small, 2 * n, length, order=1, shift=0.5)
    expected = psi_small[:, ::2, ::2, ::2].reshape(3, -1).T * d1
    assert torch.allclose(extra_a, expected, atol=1e-10)
    assert float((extra_a - extra_b).abs().max()) > 1e-3 * float(extra_a.abs().max())


def test_bad_input_is_a_clear_error(write_config) -> None:
    with pytest.raises(ValueError, match="n must be an even integer"):
        initial_conditions(COSMO, n=15, length=50.0, seed=1)
    with pytest.raises(ValueError, match="box side must be a positive"):
        initial_conditions(COSMO, n=8, length=0.0, seed=1)
    with pytest.raises(ValueError, match="small-scale seeds must differ"):
        sub_resolution_twins(COSMO, n=8, length=10.0, seed=1, small_scale_seeds=(3, 3))
    from cosmoseg.pipeline import load_config, plan_pipeline
    from cosmoseg.plugins import build_registry

    def problems(params: str) -> str:
        path = write_config(f'[[stage]]\nid = "ics"\nuses = "sim.ics"\nparams = {{ {params} }}\n')
        with pytest.raises(ConfigError) as info:
            plan_pipeline(load_config(path), build_registry(autoload=False))
        return str(info.value)

    assert "param 'box' must be > 0, got -1.0" in problems("n = 16, box = -1.0")
    # the rules beyond bounds (an even n, a valid cosmology) are checked once every field is in its bounds
    text = problems("n = 15, cosmology = { omega_b = 0.4 }")
    assert "param 'n' must be an even integer >= 2, got 15" in text
    assert "omega_b (0.4) must be smaller than omega_m" in text
