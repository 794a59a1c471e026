"""Linear theory of a :class:`~cosmoseg.data.cosmology.Cosmology`: the background expansion, the linear growth
factor and rate, the Eisenstein & Hu transfer function, the CAMB power spectrum and its σ_8 normalisation.

The data model's ``Cosmology`` is the record of the parameters; its methods (``efunc``, ``growth_factor``,
``linear_power``, ``sigma_r``, ...) call the functions here. Units: wavenumbers ``k`` in comoving h/Mpc, lengths in
comoving Mpc/h, power spectra in (Mpc/h)^3, temperatures in K; ``a`` is the scale factor, ``z`` the redshift.

The expensive pieces (the growth ODE, the CAMB table, the sigma_8 normalisation) are computed once per set of
parameters and kept in module-level ``functools.lru_cache`` caches keyed on the frozen, hashable parameters.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from cosmoseg.errors import ProblemCollector, ValidationError

if TYPE_CHECKING:
    import torch
    from scipy.interpolate import CubicSpline

    from cosmoseg.data.cosmology import Cosmology

FloatArray = npt.NDArray[np.float64]
FloatOrArray = float | FloatArray

# Growth ODE: started at A_GROWTH_START with D = a (deep in matter domination), tabulated up to A_GROWTH_MAX.
A_GROWTH_START = 1e-5
A_GROWTH_MAX = 100.0
_N_GROWTH_PAST = 3001  # ln a samples in [ln A_GROWTH_START, 0]
_N_GROWTH_FUTURE = 501  # ln a samples in [0, ln A_GROWTH_MAX]

# sigma(R) quadrature: composite Simpson in ln k over [K_SIGMA_MIN, K_SIGMA_MAX] h/Mpc (odd number of nodes).
K_SIGMA_MIN = 1e-5
K_SIGMA_MAX = 1e3
_N_SIGMA = 8193
_SIGMA_CHUNK = 256  # radii per block in the (radius, k) matrix

# CAMB table: kmax in h/Mpc, and the fiducial primordial amplitude (rescaled to sigma_8 afterwards).
CAMB_KMAX_H = 50.0
_CAMB_AS = 2.1e-9


# ------------------------------------------------------------------------------------------------
# background


def w_of_a(cosmo: Cosmology, a: npt.ArrayLike) -> FloatOrArray:
    """Dark-energy equation of state w(a) = w0 + wa (1 - a); ``a`` > 0, float or array."""
    arr, scalar = _scale_factor(a, "a")
    return _out(cosmo.w0 + cosmo.wa * (1.0 - arr), scalar)


def efunc(cosmo: Cosmology, a: npt.ArrayLike) -> FloatOrArray:
    """E(a) = H(a)/H0 for matter + dark energy (radiation ignored); ``a`` > 0, float or array."""
    arr, scalar = _scale_factor(a, "a")
    return _out(np.sqrt(_e2(cosmo.omega_m, cosmo.w0, cosmo.wa, arr)), scalar)


def omega_m_of_a(cosmo: Cosmology, a: npt.ArrayLike) -> FloatOrArray:
    """Matter density parameter Ω_m(a) = Ω_m a^-3 / E(a)^2; ``a`` > 0, float or array."""
    arr, scalar = _scale_factor(a, "a")
    return _out(_omega_m_of_a(cosmo.omega_m, cosmo.w0, cosmo.wa, arr), scalar)


# ------------------------------------------------------------------------------------------------
# linear growth


def growth_factor(cosmo: Cosmology, a: npt.ArrayLike) -> FloatOrArray:
    """Linear growth factor D(a), normalised to D(1) = 1.

    Solution of D'' + (2 + dlnE/dlna) D' - 1.5 Ω_m(a) D = 0 (' = d/dln a), started at a = 1e-5 with
    D = D' = a. ``a`` must be in (0, 100]; below 1e-5, D ∝ a. Float or array in, same out.
    """
    arr, scalar = _scale_factor(a, "a", a_max=A_GROWTH_MAX)
    log_d, _ = _growth_splines(cosmo.omega_m, cosmo.w0, cosmo.wa)
    return _out(np.exp(_eval_log_growth(log_d, np.log(arr))), scalar)


def growth_rate(cosmo: Cosmology, a: npt.ArrayLike) -> FloatOrArray:
    """Linear growth rate f(a) = dln D / dln a; ``a`` in (0, 100], float or array."""
    arr, scalar = _scale_factor(a, "a", a_max=A_GROWTH_MAX)
    log_d, rate = _growth_splines(cosmo.omega_m, cosmo.w0, cosmo.wa)
    # f is constant (matter domination) below the start of the table.
    return _out(rate(np.maximum(np.log(arr), log_d.x[0])), scalar)


# ------------------------------------------------------------------------------------------------
# linear power spectrum


def resolved_power_backend(cosmo: Cosmology) -> str:
    """The backend actually used: "camb" or "eisenstein-hu" ("auto" is camb when importable)."""
    if cosmo.power_backend == "auto":
        return "camb" if importlib.util.find_spec("camb") is not None else "eisenstein-hu"
    return cosmo.power_backend


def transfer_eisenstein_hu(cosmo: Cosmology, k: npt.ArrayLike) -> FloatOrArray:
    """Eisenstein & Hu (1998, ApJ 496, 605) transfer function with baryon acoustic wiggles.

    ``k`` in h/Mpc (float or array, >= 0; T(0) = 1). Returns float64 of the shape of ``k``.
    """
    arr = np.asarray(k, dtype=np.float64)
    scalar = arr.ndim == 0 and not isinstance(k, np.ndarray)
    problems = ProblemCollector()
    problems.check(bool(np.all(np.isfinite(arr))), "k must be finite")
    problems.check(bool(np.all(arr >= 0.0)), "k must be >= 0 (h/Mpc)")
    problems.raise_if_any(ValidationError, context="Cosmology.transfer_eisenstein_hu")
    t = np.ones_like(arr)
    positive = arr > 0.0
    t[positive] = _eisenstein_hu(arr[positive], cosmo.omega_m, cosmo.omega_b, cosmo.h, cosmo.t_cmb)
    return _out(t, scalar)


def linear_power(cosmo: Cosmology, k: npt.ArrayLike | torch.Tensor, z: float = 0.0) -> FloatOrArray | torch.Tensor:
    """Linear matter power spectrum P(k, z) in (Mpc/h)^3 for ``k`` in h/Mpc.

    Normalised so that sigma(8 Mpc/h, z = 0) = sigma_8 and scaled to redshift ``z`` with D(z)^2.
    ``k`` may be a float (returns a float), an array (returns float64 of the same shape) or a torch
    tensor (returns a tensor of its dtype, float for integer tensors, on its device; no gradient).
    Modes with k <= 0 (the k = 0 mode of a grid) get P = 0.
    """
    torch_module = sys.modules.get("torch")  # a tensor can only exist once torch is imported
    if torch_module is not None and isinstance(k, torch_module.Tensor):
        k_np = k.detach().to(device="cpu", dtype=torch_module.float64).numpy()
        p = linear_power_array(cosmo, k_np, z)
        dtype = k.dtype if k.is_floating_point() else torch_module.get_default_dtype()
        return torch_module.as_tensor(p, dtype=dtype).to(k.device)
    arr = np.asarray(k, dtype=np.float64)
    scalar = arr.ndim == 0 and not isinstance(k, np.ndarray)
    return _out(linear_power_array(cosmo, arr, z), scalar)


def sigma_r(cosmo: Cosmology, r: npt.ArrayLike, z: float = 0.0) -> FloatOrArray:
    """rms linear density contrast in a top-hat sphere of radius ``r`` Mpc/h at redshift ``z``.

    Simpson quadrature in ln k over [1e-5, 1e3] h/Mpc with 8193 nodes. ``r`` > 0, float or array.
    """
    arr = np.asarray(r, dtype=np.float64)
    scalar = arr.ndim == 0 and not isinstance(r, np.ndarray)
    problems = ProblemCollector()
    valid = bool(np.all(np.isfinite(arr)) and np.all(arr > 0.0))
    problems.check(valid, "r must be finite and > 0 (Mpc/h)")
    problems.raise_if_any(ValidationError, context="Cosmology.sigma_r")
    growth = growth_at_redshift(cosmo, z)
    model = _power_model(cosmo)
    sigma2 = model.amplitude * _sigma2_of_shape(model.shape_on_sigma_grid, arr.ravel())
    return _out((growth * np.sqrt(sigma2)).reshape(arr.shape), scalar)


def growth_at_redshift(cosmo: Cosmology, z: float) -> float:
    zf = coerce_real(z)
    problems = ProblemCollector()
    if problems.check(zf is not None and math.isfinite(zf), f"z must be a finite real number, got {z!r}"):
        assert zf is not None
        problems.check(
            zf >= 1.0 / A_GROWTH_MAX - 1.0,
            f"z must be >= {1.0 / A_GROWTH_MAX - 1.0} (a <= {A_GROWTH_MAX}), got {zf}",
        )
    problems.raise_if_any(ValidationError, context="Cosmology")
    assert zf is not None
    return 1.0 if zf == 0.0 else float(growth_factor(cosmo, 1.0 / (1.0 + zf)))


def linear_power_array(cosmo: Cosmology, k: FloatArray, z: float) -> FloatArray:
    if not np.all(np.isfinite(k)):
        raise ValidationError("k must be finite", context="Cosmology.linear_power")
    growth = growth_at_redshift(cosmo, z)
    model = _power_model(cosmo)
    p = np.zeros(k.shape, dtype=np.float64)
    positive = k > 0.0
    p[positive] = (model.amplitude * growth**2) * model.shape(k[positive])
    return p


# ----------------------------------------------------------------------------------------------------
# small helpers


def coerce_real(value: Any) -> float | None:
    """``float(value)`` for a real scalar (Python/numpy number, 0-d array/tensor); None for anything else."""
    if isinstance(value, (bool, np.bool_, str, bytes)) or getattr(value, "ndim", 0) != 0:
        return None
    if isinstance(value, (complex, np.complexfloating)):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _scale_factor(a: npt.ArrayLike, name: str, *, a_max: float | None = None) -> tuple[FloatArray, bool]:
    """``a`` as a float64 array and whether it was a scalar; raises ValidationError outside (0, a_max]."""
    arr = np.asarray(a, dtype=np.float64)
    scalar = arr.ndim == 0 and not isinstance(a, np.ndarray)
    problems = ProblemCollector()
    if problems.check(bool(np.all(np.isfinite(arr))), f"scale factor {name} must be finite"):
        problems.check(bool(np.all(arr > 0.0)), f"scale factor {name} must be > 0")
        if a_max is not None:
            problems.check(bool(np.all(arr <= a_max)), f"scale factor {name} must be <= {a_max}")
    problems.raise_if_any(ValidationError, context="Cosmology")
    return arr, scalar


def _out(values: npt.ArrayLike, scalar: bool) -> FloatOrArray:
    """A float for scalar input, else a float64 array."""
    arr = np.asarray(values, dtype=np.float64)
    return float(arr) if scalar else arr


# ----------------------------------------------------------------------------------------------------
# background and growth


def _de_density(w0: float, wa: float, a: FloatArray) -> FloatArray:
    """Dark-energy density over its value today, for w(a) = w0 + wa (1 - a)."""
    return a ** (-3.0 * (1.0 + w0 + wa)) * np.exp(-3.0 * wa * (1.0 - a))


def _e2(omega_m: float, w0: float, wa: float, a: FloatArray) -> FloatArray:
    """E(a)^2 = (H/H0)^2 for flat matter + dark energy."""
    return omega_m * a**-3 + (1.0 - omega_m) * _de_density(w0, wa, a)


def _omega_m_of_a(omega_m: float, w0: float, wa: float, a: FloatArray) -> FloatArray:
    return omega_m * a**-3 / _e2(omega_m, w0, wa, a)


def _dlne_dlna(omega_m: float, w0: float, wa: float, a: FloatArray) -> FloatArray:
    """d ln E / d ln a."""
    rho_m = omega_m * a**-3
    rho_de = (1.0 - omega_m) * _de_density(w0, wa, a)
    w = w0 + wa * (1.0 - a)
    return -1.5 * (rho_m + (1.0 + w) * rho_de) / (rho_m + rho_de)


@functools.lru_cache(maxsize=128)
def _growth_splines(omega_m: float, w0: float, wa: float) -> tuple[CubicSpline, CubicSpline]:
    """Splines of ln D(ln a) (with D(1) = 1) and f(ln a) on [ln 1e-5, ln 100], from one ODE solution."""
    from scipy.integrate import solve_ivp
    from scipy.interpolate import CubicSpline

    def rhs(lna: float, y: FloatArray) -> FloatArray:
        a = np.exp(lna)
        d, dp = y
        ddp = -(2.0 + _dlne_dlna(omega_m, w0, wa, a)) * dp + 1.5 * _omega_m_of_a(omega_m, w0, wa, a) * d
        return np.array([dp, ddp])

    ln_start, ln_end = math.log(A_GROWTH_START), math.log(A_GROWTH_MAX)
    past = np.linspace(ln_start, 0.0, _N_GROWTH_PAST)
    future = np.linspace(0.0, ln_end, _N_GROWTH_FUTURE)
    grid = np.concatenate([past, future[1:]])
    sol = solve_ivp(
        rhs,
        (ln_start, ln_end),
        np.array([A_GROWTH_START, A_GROWTH_START]),
        method="DOP853",
        t_eval=grid,
        rtol=1e-12,
        atol=1e-18,
    )
    if not sol.success:  # pragma: no cover - smooth, non-stiff problem
        raise RuntimeError(f"growth ODE failed for omega_m={omega_m}, w0={w0}, wa={wa}: {sol.message}")
    d, dp = sol.y
    d_today = d[_N_GROWTH_PAST - 1]
    return CubicSpline(grid, np.log(d / d_today)), CubicSpline(grid, dp / d)


def _eval_log_growth(log_d: CubicSpline, lna: FloatArray) -> FloatArray:
    """ln D at ln a, with D ∝ a below the start of the table."""
    start = log_d.x[0]
    inside = log_d(np.maximum(lna, start))
    return np.where(lna < start, log_d(start) + (lna - start), inside)


# ----------------------------------------------------------------------------------------------------
# transfer function and power spectrum


def _eisenstein_hu(k_h: FloatArray, omega_m: float, omega_b: float, h: float, t_cmb: float) -> FloatArray:
    """Eisenstein & Hu (1998) transfer function at ``k_h`` > 0 in h/Mpc (equation numbers of the paper)."""
    k = k_h * h  # 1/Mpc
    wm = omega_m * h * h
    wb = omega_b * h * h
    fb = omega_b / omega_m
    fc = 1.0 - fb
    theta = t_cmb / 2.7

    z_eq = 2.50e4 * wm * theta**-4  # eq. 2
    k_eq = 7.46e-2 * wm * theta**-2  # eq. 3, 1/Mpc
    b1 = 0.313 * wm**-0.419 * (1.0 + 0.607 * wm**0.674)  # eq. 4
    b2 = 0.238 * wm**0.223
    z_d = 1291.0 * wm**0.251 / (1.0 + 0.659 * wm**0.828) * (1.0 + b1 * wb**b2)
    q = k / (13.41 * k_eq)  # eq. 10

    def t0_tilde(alpha_c: float, beta_c: float) -> FloatArray:  # eqs. 19-20
        log_term = np.log(math.e + 1.8 * beta_c * q)
        c = 14.2 / alpha_c + 386.0 / (1.0 + 69.9 * q**1.08)
        return log_term / (log_term + c * q * q)

    # CDM: eqs. 11-12, 17-18
    a1 = (46.9 * wm) ** 0.670 * (1.0 + (32.1 * wm) ** -0.532)
    a2 = (12.0 * wm) ** 0.424 * (1.0 + (45.0 * wm) ** -0.582)
    alpha_c = a1**-fb * a2 ** -(fb**3)
    bb1 = 0.944 / (1.0 + (458.0 * wm) ** -0.708)
    bb2 = (0.395 * wm) ** -0.0266
    beta_c = 1.0 / (1.0 + bb1 * (fc**bb2 - 1.0))

    if omega_b == 0.0:
        # No baryons: the sound horizon only enters through eq. 18, as its omega_b -> 0 limit.
        s = 2.0 / (3.0 * k_eq) * math.sqrt(6.0) * (math.sqrt(1.0 + z_eq / z_d) - 1.0)
    else:
        r_d = 31.5 * wb * theta**-4 * (1e3 / z_d)  # eq. 5
        r_eq = 31.5 * wb * theta**-4 * (1e3 / z_eq)
        s = (  # eq. 6, Mpc
            2.0
            / (3.0 * k_eq)
            * math.sqrt(6.0 / r_eq)
            * math.log((math.sqrt(1.0 + r_d) + math.sqrt(r_d + r_eq)) / (1.0 + math.sqrt(r_eq)))
        )
    ks = k * s
    f = 1.0 / (1.0 + (ks / 5.4) ** 4)
    t_cdm = f * t0_tilde(1.0, beta_c) + (1.0 - f) * t0_tilde(alpha_c, beta_c)
    if omega_b == 0.0:
        return t_cdm

    # Baryons: eqs. 7, 14-15, 21-24
    k_silk = 1.6 * wb**0.52 * wm**0.73 * (1.0 + (10.4 * wm) ** -0.95)
    y = (1.0 + z_eq) / (1.0 + z_d)
    sq = math.sqrt(1.0 + y)
    g_y = y * (-6.0 * sq + (2.0 + 3.0 * y) * math.log((sq + 1.0) / (sq - 1.0)))
    alpha_b = 2.07 * k_eq * s * (1.0 + r_d) ** -0.75 * g_y
    beta_b = 0.5 + fb + (3.0 - 2.0 * fb) * math.sqrt((17.2 * wm) ** 2 + 1.0)
    beta_node = 8.41 * wm**0.435
    with np.errstate(over="ignore"):
        s_tilde = s / np.cbrt(1.0 + (beta_node / ks) ** 3)
        node_term = t0_tilde(1.0, 1.0) / (1.0 + (ks / 5.2) ** 2)
        peak_term = alpha_b / (1.0 + (beta_b / ks) ** 3) * np.exp(-((k / k_silk) ** 1.4))
    envelope = node_term + peak_term
    x = k * s_tilde
    t_baryon = envelope * np.sinc(x / np.pi)  # j0(x) = sin(x)/x
    return fb * t_baryon + fc * t_cdm


@functools.lru_cache(maxsize=16)
def _camb_table(
    omega_m: float, omega_b: float, h: float, n_s: float, w0: float, wa: float, t_cmb: float
) -> tuple[FloatArray, FloatArray]:
    """ln k (h/Mpc) and ln P ((Mpc/h)^3, arbitrary amplitude) of CAMB's linear matter power at z = 0,
    on CAMB's own k sampling up to ~50 h/Mpc."""
    try:
        import camb
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "power_backend='camb' needs the camb package (pip install camb); use 'eisenstein-hu' or 'auto'"
        ) from exc

    pars = camb.CAMBparams()
    pars.set_cosmology(
        H0=100.0 * h,
        ombh2=omega_b * h * h,
        omch2=(omega_m - omega_b) * h * h,
        mnu=0.0,
        num_massive_neutrinos=0,
        omk=0.0,
        TCMB=t_cmb,
    )
    pars.InitPower.set_params(As=_CAMB_AS, ns=n_s)
    if (w0, wa) != (-1.0, 0.0):
        pars.set_dark_energy(w=w0, wa=wa, dark_energy_model="ppf")
    pars.WantCls = False
    pars.set_matter_power(redshifts=[0.0], kmax=CAMB_KMAX_H * h, nonlinear=False, silent=True)
    results = camb.get_results(pars)
    kh, _, pk = results.get_linear_matter_power_spectrum(hubble_units=True, k_hunit=True)
    kh = np.asarray(kh, dtype=np.float64)
    p0 = np.asarray(pk, dtype=np.float64)[0]
    keep = (kh > 0) & (p0 > 0)
    lnk, lnp = np.log(kh[keep]), np.log(p0[keep])
    lnk.setflags(write=False)
    lnp.setflags(write=False)
    return lnk, lnp


def _camb_shape(lnk: FloatArray, lnp: FloatArray, n_s: float) -> Callable[[FloatArray], FloatArray]:
    """Log-log cubic interpolation of a CAMB table; P ∝ k^n_s below it, last log-log slope above it."""
    from scipy.interpolate import CubicSpline

    spline = CubicSpline(lnk, lnp)
    slope_hi = (lnp[-1] - lnp[-2]) / (lnk[-1] - lnk[-2])

    def shape(k: FloatArray) -> FloatArray:
        x = np.log(k)
        inside = spline(np.clip(x, lnk[0], lnk[-1]))
        below = lnp[0] + n_s * (x - lnk[0])
        above = lnp[-1] + slope_hi * (x - lnk[-1])
        return np.exp(np.where(x < lnk[0], below, np.where(x > lnk[-1], above, inside)))

    return shape


@functools.lru_cache(maxsize=1)
def _sigma_grid() -> tuple[FloatArray, FloatArray]:
    """The k nodes (h/Mpc) of the sigma(R) quadrature and their Simpson weights in ln k."""
    lnk = np.linspace(math.log(K_SIGMA_MIN), math.log(K_SIGMA_MAX), _N_SIGMA)
    step = lnk[1] - lnk[0]
    weights = np.full(_N_SIGMA, 2.0)
    weights[1::2] = 4.0
    weights[0] = weights[-1] = 1.0
    return np.exp(lnk), weights * step / 3.0


def _tophat_window(x: FloatArray) -> FloatArray:
    """Fourier transform of a unit top-hat sphere, W(x) = 3 (sin x - x cos x) / x^3 (series for small x)."""
    small = x < 1e-2
    xs = np.where(small, 1.0, x)
    direct = 3.0 * (np.sin(xs) - xs * np.cos(xs)) / xs**3
    x2 = x * x
    return np.where(small, 1.0 - x2 / 10.0 + x2 * x2 / 280.0, direct)


def _sigma2_of_shape(shape_on_grid: FloatArray, radii: FloatArray) -> FloatArray:
    """sigma^2(R) = 1/(2 pi^2) ∫ k^3 P(k) W(kR)^2 dln k for P sampled on the quadrature grid."""
    k, weights = _sigma_grid()
    integrand = weights * k**3 * shape_on_grid / (2.0 * math.pi**2)
    out = np.empty(radii.shape, dtype=np.float64)
    for start in range(0, radii.size, _SIGMA_CHUNK):
        r = radii[start : start + _SIGMA_CHUNK]
        out[start : start + _SIGMA_CHUNK] = (_tophat_window(np.outer(r, k)) ** 2) @ integrand
    return out


@dataclass(frozen=True)
class _PowerModel:
    """P(k, z=0) = amplitude * shape(k), with the amplitude fixed by sigma_8."""

    shape: Callable[[FloatArray], FloatArray]
    shape_on_sigma_grid: FloatArray
    amplitude: float


@functools.lru_cache(maxsize=64)
def _power_model(cosmo: Cosmology) -> _PowerModel:
    """The normalised linear power model of a cosmology (one CAMB call per set of CAMB parameters)."""
    backend = cosmo.resolved_power_backend
    if backend == "camb":
        params = (cosmo.omega_m, cosmo.omega_b, cosmo.h, cosmo.n_s, cosmo.w0, cosmo.wa, cosmo.t_cmb)
        lnk, lnp = _camb_table(*params)
        shape = _camb_shape(lnk, lnp, cosmo.n_s)
    else:
        om, ob, h, t_cmb, n_s = cosmo.omega_m, cosmo.omega_b, cosmo.h, cosmo.t_cmb, cosmo.n_s

        def shape(k: FloatArray) -> FloatArray:
            return k**n_s * _eisenstein_hu(k, om, ob, h, t_cmb) ** 2

    k_grid, _ = _sigma_grid()
    on_grid = shape(k_grid)
    on_grid.setflags(write=False)
    sigma2_8 = float(_sigma2_of_shape(on_grid, np.array([8.0]))[0])
    return _PowerModel(shape=shape, shape_on_sigma_grid=on_grid, amplitude=cosmo.sigma_8**2 / sigma2_8)
