"""The bispectrum B(k1, k2, θ) of a periodic field from shell-filtered FFTs, many triangles per pass.

Convention (that of ``cosmoseg.measure.power_spectrum``): with V = L^3, N = n^3 and the unnormalised DFT
δ_k = Σ_x δ(x) e^{-ik·x}, the power spectrum is P = V/N^2 <|δ_k|^2> and the bispectrum is

    B(k1, k2, k3) = V^2/N^3 <δ_{k1} δ_{k2} δ_{k3}>,   k1 + k2 + k3 = 0,

averaged over the closed triangles whose sides fall in three shells S1, S2, S3 of |k|. Continuous Fourier
amplitudes are δ(k) = (V/N) δ_k and <δ(k1) δ(k2) δ(k3)> = V B for a closed triangle, hence the V^2/N^3.

Estimator (Scoccimarro 2015; Sefusatti et al. 2016): with the shell-filtered fields
δ_S(x) = (1/M) Σ_{k∈S} δ_k e^{ik·x} and the unit fields I_S(x) = (1/M) Σ_{k∈S} e^{ik·x} (inverse FFTs on an
M = m^3 grid), Σ_x δ_1 δ_2 δ_3 = (1/M^2) Σ_{closed triplets} δ_{k1} δ_{k2} δ_{k3} and Σ_x I_1 I_2 I_3 =
N_tri / M^2, so

    B = V^2/N^3 · Σ_x δ_1 δ_2 δ_3 / Σ_x I_1 I_2 I_3,   N_tri = M^2 Σ_x I_1 I_2 I_3.

The ``"fourier"`` method (default) evaluates Σ_x (δ_1 δ_2) δ_3 for every k3 shell at once by Parseval:
Σ_x f(x) δ_3(x) = (1/M) Σ_{k∈S3} F(k) δ_k^*, with F the FFT of the pair product f = δ_1 δ_2 (and likewise for
the unit fields), so one forward FFT per (k1, k2) pair serves any number of angles. The ``"direct"`` method
inverse-transforms each k3 shell (once, cached) and sums the triple product in real space.

Reduced grid: the shells only hold modes with integer components |k_i| ≤ K_i (in units of k_f). When
m > K_1 + K_2 + K_3 no triangle closes modulo m except the true ones, so the same sums computed on an m^3
grid (copying the n^3 grid's modes) are identical to those on the n^3 grid whenever n > K_1 + K_2 + K_3 too.
The estimator therefore works on the smallest 5-smooth m that satisfies this (or on n itself when m would not
be smaller); on n^3, triangles that close only modulo n (possible when k1 + k2 + k3 ≳ 2 k_Ny) are counted,
as in any FFT estimator.

Count cache: Σ_x I_1 I_2 I_3 does not depend on the data, so it is kept per configuration in a small
module-level LRU (``count_cache_info``, ``clear_count_cache``); a later call with the same grids, box, shells,
precision, device and method transforms only the data fields (half the FFTs) and gives identical numbers.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Literal

import torch

from cosmoseg.data import Field, Table
from cosmoseg.mesh.fourier import fundamental_frequency, nyquist_frequency, rfft_mode_weights

Method = Literal["fourier", "direct"]


@dataclasses.dataclass(frozen=True)
class Bispectrum:
    """Bispectra of T triangle configurations; every field is a (T,) float64 tensor.

    k1, k2, k3: the nominal side lengths (shell centres), h/Mpc; k3 = sqrt(k1^2 + k2^2 + 2 k1 k2 cos θ).
    theta: the angle between the vectors k1 and k2, radians (θ = 0: k3 = k1 + k2; θ = π: k3 = |k1 - k2|).
    bispectrum: B, (Mpc/h)^6.
    reduced: Q = B / (P1 P2 + P2 P3 + P3 P1), dimensionless.
    power1, power2, power3: P in the same three shells (mean over their modes), (Mpc/h)^3.
    n_triangles: closed ordered triplets (k1, k2, k3) of full-grid modes, k_i in shell i (k and -k both counted).
    error: the Gaussian (leading-order) standard deviation sqrt(s V P1 P2 P3 / n_triangles), (Mpc/h)^6, with
        s = 6, 2, 1 for three, two, no identical shells.
    grid: the side m of the grid the shells were transformed on (n, or less when that is exact).
    n_transforms: shells whose data field was inverse-transformed (a shell's unit field, transformed only while
        its triangle counts are not cached, is not counted; see ``count_cache_info``).
    """

    k1: torch.Tensor
    k2: torch.Tensor
    k3: torch.Tensor
    theta: torch.Tensor
    bispectrum: torch.Tensor
    reduced: torch.Tensor
    power1: torch.Tensor
    power2: torch.Tensor
    power3: torch.Tensor
    n_triangles: torch.Tensor
    error: torch.Tensor
    grid: int
    n_transforms: int

    def columns(self) -> dict[str, torch.Tensor]:
        """Table columns: k1, k2, k3, theta, bispectrum, bispectrum_err (= error), Q (= reduced), Q_err
        (error / (P1 P2 + P2 P3 + P3 P1)), power1, power2, power3, n_triangles."""
        denominator = self.power1 * self.power2 + self.power2 * self.power3 + self.power3 * self.power1
        return {
            "k1": self.k1,
            "k2": self.k2,
            "k3": self.k3,
            "theta": self.theta,
            "bispectrum": self.bispectrum,
            "bispectrum_err": self.error,
            "Q": self.reduced,
            "Q_err": self.error / denominator,
            "power1": self.power1,
            "power2": self.power2,
            "power3": self.power3,
            "n_triangles": self.n_triangles,
        }


BISPECTRUM_UNITS: dict[str, str] = {
    "k1": "h/Mpc",
    "k2": "h/Mpc",
    "k3": "h/Mpc",
    "theta": "rad",
    "bispectrum": "(Mpc/h)^6",
    "bispectrum_err": "(Mpc/h)^6",
    "power1": "(Mpc/h)^3",
    "power2": "(Mpc/h)^3",
    "power3": "(Mpc/h)^3",
}
"""Units of the columns of ``Bispectrum.columns()`` (the others are dimensionless)."""


Shell = tuple[int, int]
"""A shell of |k| as the half-open range [q_lo, q_hi) of the integer q = |k|^2 / k_f^2."""


def shell_range(k: float, dk: float, kf: float) -> Shell:
    """The modes with k - dk/2 ≤ |k| < k + dk/2 (k = 0 excluded) as a range of q = |k|^2/k_f^2."""
    low = max(k - dk / 2, 0.0) / kf
    high = max(k + dk / 2, 0.0) / kf
    q_low = max(math.ceil(low * low - 1e-9), 1)
    q_high = math.ceil(high * high - 1e-9)
    return q_low, max(q_high, q_low)


def _max_component(shell: Shell) -> int:
    """The largest integer |k_i| (units of k_f) of any mode in the shell."""
    return math.isqrt(shell[1] - 1) if shell[1] > shell[0] else 0


def _smooth_size(at_least: int) -> int:
    """The smallest even integer ≥ at_least with no prime factor above 5 (fast FFT sizes)."""
    m = max(at_least + (at_least % 2), 2)
    while True:
        rest = m
        for p in (2, 3, 5):
            while rest % p == 0:
                rest //= p
        if rest == 1:
            return m
        m += 2


def _crop_spectrum(delta_k: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """The modes with all |k_i| ≤ (m-1)//2 of an (n, n, n//2+1) rfft grid, placed on an (m, m, m//2+1) one."""
    if m == n:
        return delta_k
    h = (m - 1) // 2
    device = delta_k.device
    rows_n = torch.cat([torch.arange(h + 1, device=device), torch.arange(n - h, n, device=device)])
    rows_m = torch.cat([torch.arange(h + 1, device=device), torch.arange(m - h, m, device=device)])
    picked = delta_k.index_select(0, rows_n).index_select(1, rows_n)[..., : h + 1]
    small = torch.zeros((m, m, m // 2 + 1), dtype=delta_k.dtype, device=device)
    small[rows_m[:, None], rows_m[None, :], : h + 1] = picked
    return small


def _q_grid(m: int, device: torch.device) -> torch.Tensor:
    """q = |k|^2 / k_f^2 (int64) on the (m, m, m//2+1) rfft grid."""
    full = torch.fft.fftfreq(m, d=1.0 / m, device=device).round().to(torch.int64)
    half = torch.fft.rfftfreq(m, d=1.0 / m, device=device).round().to(torch.int64)
    return full.view(m, 1, 1) ** 2 + full.view(1, m, 1) ** 2 + half.view(1, 1, -1) ** 2


class _ShellFields:
    """Shell-filtered data fields δ_S(x) and unit fields I_S(x), each inverse-transformed once (on demand) and
    kept within a memory budget.

    An entry is an (m, m, m) field keyed (shell, kind), kind 0 = data, 1 = unit. Least recently used entries
    are dropped first, never the ones the caller is holding (``keep``). ``transforms`` counts the shells whose
    data field was transformed; unit transforms are counted in ``unit_transforms``.
    """

    def __init__(self, spectrum: torch.Tensor, q: torch.Tensor, m: int, max_bytes: int) -> None:
        self.spectrum, self.q, self.m, self.max_bytes = spectrum, q, m, max_bytes
        self.cache: OrderedDict[tuple[Shell, int], torch.Tensor] = OrderedDict()
        self.transforms = 0
        self.unit_transforms = 0

    def get(self, shell: Shell, kind: int, keep: Sequence[tuple[Shell, int]] = ()) -> torch.Tensor:
        key = (shell, kind)
        if key in self.cache:
            self.cache.move_to_end(key)
            return self.cache[key]
        mask = (self.q >= shell[0]) & (self.q < shell[1])
        spec = self.spectrum * mask if kind == 0 else mask.to(self.spectrum.dtype)
        field = torch.fft.irfftn(spec, s=(self.m,) * 3, dim=(-3, -2, -1))
        if kind == 0:
            self.transforms += 1
        else:
            self.unit_transforms += 1
        size = field.numel() * field.element_size()
        while self.cache and sum(t.numel() * t.element_size() for t in self.cache.values()) + size > self.max_bytes:
            victim = next((k for k in self.cache if k not in keep), None)
            if victim is None:
                break
            del self.cache[victim]
        self.cache[key] = field
        return field


_COUNT_CACHE_MAX = 16384
"""Entries (one float each, about 0.2 kB with its key) kept by the triangle-count cache."""
_count_cache: OrderedDict[tuple, float] = OrderedDict()
_count_stats = {"hits": 0, "misses": 0}
_count_lock = threading.Lock()


def _cached_count(key: tuple) -> float | None:
    with _count_lock:
        value = _count_cache.get(key)
        if value is None:
            _count_stats["misses"] += 1
        else:
            _count_stats["hits"] += 1
            _count_cache.move_to_end(key)
        return value


def _store_count(key: tuple, value: float) -> None:
    with _count_lock:
        _count_cache[key] = value
        _count_cache.move_to_end(key)
        while len(_count_cache) > _COUNT_CACHE_MAX:
            _count_cache.popitem(last=False)


def count_cache_info() -> dict[str, int]:
    """The triangle-count cache: hits, misses (per configuration looked up), size and max_size (entries).

    The normalisation Σ_x I_1 I_2 I_3 of a configuration depends only on the grids (n, m), the box, the three
    shells, the precision, the device and the method, never on the data, so ``bispectrum`` keeps it (one float
    per configuration, least recently used dropped first) and skips the unit-field transforms on later calls.
    """
    with _count_lock:
        return {**_count_stats, "size": len(_count_cache), "max_size": _COUNT_CACHE_MAX}


def clear_count_cache() -> None:
    """Empty the triangle-count cache and reset its hit/miss counters."""
    with _count_lock:
        _count_cache.clear()
        _count_stats.update(hits=0, misses=0)


def _as_list(value: float | Sequence[float], name: str) -> list[float]:
    out = [float(value)] if isinstance(value, int | float) else [float(v) for v in value]
    if not out:
        raise ValueError(f"{name} is empty")
    return out


def bispectrum(
    field: torch.Tensor,
    length: float,
    *,
    k1: float | Sequence[float],
    k2: float | Sequence[float],
    thetas: Sequence[float] | torch.Tensor,
    dk: float | None = None,
    method: Method = "fourier",
    reduce_grid: bool = True,
    max_shell_bytes: int = 2**30,
) -> Bispectrum:
    """The bispectrum of a real (n, n, n) field in a periodic box of side ``length`` Mpc/h.

    k1, k2: h/Mpc; one value each, or equal-length sequences of (k1, k2) pairs (the many-configuration mode).
        Each must be positive and at most the Nyquist frequency πn/L.
    thetas: angles between the vectors k1 and k2, radians in [0, π]; every pair is measured at every angle.
    dk: width of every shell, h/Mpc (default k_f = 2π/L); shell i holds the modes k_i - dk/2 ≤ |k| < k_i + dk/2.
    method: "fourier" (one FFT of the pair product serves all angles) or "direct" (one inverse FFT per k3
        shell, real-space triple sums); both give the same numbers to rounding.
    reduce_grid: work on the smallest grid on which the result is identical (see the module docstring).
    max_shell_bytes: memory for cached shell fields; shells beyond it are recomputed when needed again.

    Returns a ``Bispectrum`` with one row per (pair, angle) in that order (pairs outer), leaving out
    triangles with no closed mode triplet (e.g. k3 = 0). Computed in the field's precision (float32 or
    float64) on its device; all sums are accumulated in float64.
    """
    n = field.shape[-1]
    if field.ndim != 3 or field.shape[0] != n or field.shape[1] != n:
        raise ValueError(f"field must be a cubic (n, n, n) grid, got {tuple(field.shape)}")
    if not field.is_floating_point():
        raise ValueError(f"field must be floating point, got dtype {field.dtype}")
    if not length > 0:
        raise ValueError(f"length must be positive Mpc/h, got {length}")
    if method not in ("fourier", "direct"):
        raise ValueError(f"method must be 'fourier' or 'direct', got {method!r}")
    kf, k_ny = fundamental_frequency(length), nyquist_frequency(n, length)
    dk = kf if dk is None else float(dk)
    if not dk > 0:
        raise ValueError(f"dk must be positive h/Mpc, got {dk}")
    k1s, k2s = _as_list(k1, "k1"), _as_list(k2, "k2")
    if len(k1s) != len(k2s):
        raise ValueError(f"k1 and k2 must pair up: got {len(k1s)} and {len(k2s)} values")
    for name, values in (("k1", k1s), ("k2", k2s)):
        for k in values:
            if not 0 < k <= k_ny * (1 + 1e-12):
                raise ValueError(f"{name} = {k} h/Mpc is outside (0, k_Nyquist = {k_ny:.6g}] for n = {n}, L = {length}")
    theta = torch.as_tensor(thetas, dtype=torch.float64).flatten().cpu()
    if theta.numel() == 0:
        raise ValueError("thetas is empty")
    if not bool(((theta >= -1e-12) & (theta <= math.pi + 1e-12)).all()):
        raise ValueError(f"thetas must be in [0, π] radians, got {theta.tolist()}")

    # the configurations and their shells
    rows = []  # (k1, k2, k3, theta, s1, s2, s3)
    for a, b in zip(k1s, k2s, strict=True):
        for t in theta.tolist():
            c = math.sqrt(max(a * a + b * b + 2 * a * b * math.cos(t), 0.0))
            rows.append((a, b, c, t, shell_range(a, dk, kf), shell_range(b, dk, kf), shell_range(c, dk, kf)))
    bound = max(sum(_max_component(s) for s in r[4:]) for r in rows)
    widest = max(_max_component(s) for r in rows for s in r[4:])
    m = _smooth_size(max(bound, 2 * widest) + 1) if reduce_grid else n
    m = min(m, n)

    dtype = torch.float64 if field.dtype == torch.float64 else torch.float32
    device = field.device
    spectrum = _crop_spectrum(torch.fft.rfftn(field.to(dtype)), n, m)
    q = _q_grid(m, device)
    q_flat = q.flatten()
    n_q = int(q_flat.max()) + 2
    weights = rfft_mode_weights(m, device=device, dtype=torch.float64).expand(m, m, -1).flatten()

    def cumulative(values: torch.Tensor) -> torch.Tensor:
        """Σ over q' < q of a per-mode quantity (full-grid weighted), as a (n_q + 1,) cumulative table."""
        sums = torch.bincount(q_flat, weights=weights * values.flatten().to(torch.float64), minlength=n_q)
        return torch.cat([sums.new_zeros(1), sums.cumsum(0)])

    cum_count = cumulative(torch.ones_like(q, dtype=torch.float64))
    cum_power = cumulative(spectrum.abs() ** 2)

    def clip(s: Shell) -> Shell:
        return min(s[0], n_q), min(s[1], n_q)

    def shell_count(s: Shell) -> float:
        lo, hi = clip(s)
        return float(cum_count[hi] - cum_count[lo])

    def shell_power(s: Shell) -> float:
        count = shell_count(s)
        s = clip(s)
        return float(cum_power[s[1]] - cum_power[s[0]]) / count * length**3 / n**6 if count > 0 else 0.0

    fields = _ShellFields(spectrum, q, m, max_shell_bytes)
    data_sum, unit_sum = [0.0] * len(rows), [0.0] * len(rows)
    by_pair: dict[tuple[Shell, Shell], list[int]] = {}
    for i, r in enumerate(rows):
        by_pair.setdefault((r[4], r[5]), []).append(i)
    count_base = (n, m, float(length), str(dtype), str(device), method)

    def count_key(r: tuple) -> tuple:
        """I_1 I_2 = I_2 I_1 bit for bit, so (s1, s2) and (s2, s1) share an entry."""
        return (*count_base, *sorted((r[4], r[5])), r[6])

    for (s1, s2), members in by_pair.items():
        if shell_count(s1) == 0 or shell_count(s2) == 0:
            continue  # an empty shell: no triangles
        cached = {i: _cached_count(count_key(rows[i])) for i in members}
        keep = ((s1, 0), (s2, 0), (s1, 1), (s2, 1))
        data_pair = fields.get(s1, 0, keep) * fields.get(s2, 0, keep)  # the same tensor twice when s1 == s2
        unit_pair = None
        if any(v is None for v in cached.values()):
            unit_pair = fields.get(s1, 1, keep) * fields.get(s2, 1, keep)
        if method == "fourier":
            cum_data = cumulative((torch.fft.rfftn(data_pair, dim=(-3, -2, -1)) * spectrum.conj()).real)
            cum_unit = None if unit_pair is None else cumulative(torch.fft.rfftn(unit_pair, dim=(-3, -2, -1)).real)
            for i in members:
                lo, hi = clip(rows[i][6])
                data_sum[i] = float(cum_data[hi] - cum_data[lo]) / m**3
                if cached[i] is None:
                    unit_sum[i] = float(cum_unit[hi] - cum_unit[lo]) / m**3
                    _store_count(count_key(rows[i]), unit_sum[i])
                else:
                    unit_sum[i] = cached[i]
        else:
            for i in members:
                s3 = rows[i][6]
                if shell_count(s3) == 0:
                    _store_count(count_key(rows[i]), 0.0)  # no triangles, as in the "fourier" branch
                    continue
                hold = (*keep, (s3, 0), (s3, 1))
                data_sum[i] = float((data_pair * fields.get(s3, 0, hold)).sum(dtype=torch.float64))
                if cached[i] is None:
                    unit_sum[i] = float((unit_pair * fields.get(s3, 1, hold)).sum(dtype=torch.float64))
                    _store_count(count_key(rows[i]), unit_sum[i])
                else:
                    unit_sum[i] = cached[i]
        del data_pair, unit_pair

    out = []
    volume = length**3
    for i, r in enumerate(rows):
        n_tri = round(unit_sum[i] * m**6)
        if n_tri <= 0:
            continue
        b = volume**2 / n**9 * data_sum[i] / unit_sum[i]
        p1, p2, p3 = (shell_power(s) for s in r[4:])
        denominator = p1 * p2 + p2 * p3 + p3 * p1
        s1, s2, s3 = r[4:]
        symmetry = {1: 6, 2: 2, 3: 1}[len({s1, s2, s3})]
        error = math.sqrt(max(symmetry * volume * p1 * p2 * p3 / n_tri, 0.0))
        q_red = b / denominator if denominator > 0 else math.nan
        out.append((r[0], r[1], r[2], r[3], b, q_red, p1, p2, p3, float(n_tri), error))
    table = torch.tensor(out, dtype=torch.float64, device=device).reshape(len(out), 11).T
    return Bispectrum(*table, grid=m, n_transforms=fields.transforms)


def bispectrum_table(
    field: Field,
    *,
    k1: float | Sequence[float],
    k2: float | Sequence[float],
    channel: str = "",
    n_theta: int = 10,
    thetas: Sequence[float] = (),
    dk: float | None = None,
    method: Literal["fourier", "direct"] = "fourier",
    device: torch.device | str | None = None,
) -> Table:
    """The bispectrum of one channel of a field ("" = the first) as a table: the columns of
    :meth:`Bispectrum.columns` in :data:`BISPECTRUM_UNITS`, one row per (k1, k2) pair and angle.

    thetas: the angles, radians (empty: ``n_theta`` angles linspace(0, π)); dk: shell width, h/Mpc (0 or None = the
    fundamental frequency); k1, k2, method: as :func:`bispectrum`. ``meta``: channel, box, n, redshift, dk, grid,
    method.
    """
    channel = channel or field.channels[0]
    angles = list(thetas) if thetas else torch.linspace(0, math.pi, n_theta, dtype=torch.float64).tolist()
    values = field.channel(channel) if device is None else field.channel(channel).to(device)
    result = bispectrum(values, field.box.length, k1=k1, k2=k2, thetas=angles, dk=dk or None, method=method)
    meta = {
        "kind": "bispectrum",
        "channel": channel,
        "box": field.box.length,
        "n": field.n,
        "redshift": field.box.redshift,
        "dk": dk or 2 * math.pi / field.box.length,
        "grid": result.grid,
        "method": method,
    }
    return Table(columns=result.columns(), units=BISPECTRUM_UNITS, meta=meta)
