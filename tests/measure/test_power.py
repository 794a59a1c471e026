"""The binned power spectrum estimator against analytic results."""

import math

import pytest
import torch

from cosmoseg.measure import power_spectrum


def test_a_plane_wave_puts_its_power_in_one_bin() -> None:
    n, length, amplitude = 16, 100.0, 0.3
    x = (torch.arange(n, dtype=torch.float64) * length / n).view(1, n, 1).expand(n, n, n)
    k0 = 2 * math.pi * 3 / length
    spectrum = power_spectrum(amplitude * torch.cos(k0 * x), length)
    # |δ_k|^2 = (A N / 2)^2 at ±k0, so P = V A^2 / 4 per mode; the k0 shell holds other, empty modes too
    shell = torch.argmin((spectrum.k - k0).abs())
    total = spectrum.power * spectrum.n_modes
    assert float(total[shell]) == pytest.approx(2 * length**3 * amplitude**2 / 4, rel=1e-10)
    assert float(total.sum()) == pytest.approx(float(total[shell]), rel=1e-10)


def test_parseval_the_binned_power_sums_to_the_variance() -> None:
    n, length = 12, 50.0
    field = torch.randn((n, n, n), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    spectrum = power_spectrum(field, length, k_max=math.sqrt(3) * math.pi * n / length + 1e-9)
    assert float(spectrum.n_modes.sum()) == n**3 - 1
    variance = float((spectrum.power * spectrum.n_modes).sum()) / length**3
    assert variance == pytest.approx(float(field.var(unbiased=False)), rel=1e-10)


def test_cross_spectrum_of_a_field_with_itself_and_its_negative() -> None:
    field = torch.randn((8, 8, 8), generator=torch.Generator().manual_seed(2))
    auto = power_spectrum(field, 20.0)
    cross = power_spectrum(field, 20.0, other=field)
    anti = power_spectrum(field, 20.0, other=-field)
    assert torch.allclose(auto.power, cross.power) and torch.allclose(anti.power, -auto.power)


def test_white_noise_has_a_flat_spectrum() -> None:
    n, length = 32, 64.0
    field = torch.randn((n, n, n), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    spectrum = power_spectrum(field, length)
    cell_volume = (length / n) ** 3
    pooled = float((spectrum.power * spectrum.n_modes).sum() / spectrum.n_modes.sum())
    sigma = cell_volume * math.sqrt(2 / float(spectrum.n_modes.sum()))
    assert abs(pooled - cell_volume) < 5 * sigma


def test_bad_shapes() -> None:
    with pytest.raises(ValueError, match="cubic"):
        power_spectrum(torch.zeros((4, 4, 5)), 10.0)


def test_spectrum_tables_name_their_columns_and_units() -> None:
    from cosmoseg.measure.power import BinnedSpectrum

    k = torch.tensor([0.1, 0.2], dtype=torch.float64)
    spectrum = BinnedSpectrum(
        k=k, power=10 / k, n_modes=torch.tensor([6.0, 18.0]), k_low=k - 0.05, k_high=k + 0.05, multipoles={0: k, 2: -k}
    )
    table = spectrum.to_table(meta={"box": 100.0})
    assert list(table.columns) == ["k", "power", "n_modes", "k_low", "k_high"]
    assert table.meta == {"kind": "power_spectrum", "box": 100.0}
    assert table.units == {"k": "h/Mpc", "power": "(Mpc/h)^3", "n_modes": "", "k_low": "h/Mpc", "k_high": "h/Mpc"}
    table = spectrum.to_table(multipoles=True, edges=False, extra={"power_linear": k})
    assert list(table.columns) == ["k", "power_0", "power_2", "n_modes", "power_linear"]
    assert {table.units[name] for name in ("power_0", "power_2", "power_linear")} == {"(Mpc/h)^3"}
    assert table.meta == {"kind": "generic"}  # multipoles: one curve per column against k
