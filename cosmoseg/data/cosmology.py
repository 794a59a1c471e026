"""The cosmology of the data model: the record of a flat w0-wa CDM cosmology's parameters, with its linear theory
(background, growth, linear matter power) computed by :mod:`cosmoseg.data.linear_theory`.

Units throughout: wavenumbers ``k`` in comoving h/Mpc, lengths in comoving Mpc/h, power spectra in
(Mpc/h)^3, temperatures in K. ``a`` is the scale factor (a = 1 today), ``z`` the redshift.

Methods of ``a``, ``k`` or ``r`` accept a Python float or anything numpy turns into a float64 array
(``linear_power`` also takes a torch tensor) and return a float for a float and a float64 array of the
input's shape otherwise.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
import numpy.typing as npt

from cosmoseg.data import linear_theory
from cosmoseg.data.linear_theory import FloatOrArray, coerce_real
from cosmoseg.errors import ArtifactError, ProblemCollector, ValidationError

if TYPE_CHECKING:
    import torch

__all__ = ["Cosmology"]

POWER_BACKENDS: tuple[str, ...] = ("auto", "camb", "eisenstein-hu")

RHO_CRIT = 2.77536627e11
"""Critical density today in h^2 Msun / Mpc^3, i.e. (Msun/h) / (Mpc/h)^3: 3 H0^2 / (8 π G) with H0 = 100h km/s/Mpc."""


class _HasAttrs(Protocol):
    """Anything with an HDF5-like ``attrs`` mapping (an h5py Group or Dataset)."""

    @property
    def attrs(self) -> MutableMapping[str, Any]: ...


@dataclass(frozen=True, kw_only=True)
class Cosmology:
    """Flat w0-wa CDM cosmology (massless neutrinos, radiation ignored in the growth). Planck 2018 defaults
    (TT,TE,EE+lowE+lensing+BAO: Ω_m=0.3111, Ω_b=0.0490, h=0.6766, n_s=0.9665, σ_8=0.8102).

    Fields (all dimensionless except ``t_cmb``):

    - ``omega_m``: total matter density today over the critical density (CDM + baryons), in (0, 1].
    - ``omega_b``: baryon density today over the critical density, in [0, omega_m).
    - ``h``: H0 / (100 km/s/Mpc), in (0, 2].
    - ``n_s``: tilt of the primordial power spectrum, in (0, 2).
    - ``sigma_8``: rms linear density contrast in a top-hat sphere of 8 Mpc/h at z = 0, > 0.
    - ``w0``, ``wa``: dark-energy equation of state w(a) = w0 + wa (1 - a); w0 + wa < 0 so that dark
      energy is negligible at early times. Dark energy density is 1 - omega_m (flat).
    - ``t_cmb``: CMB temperature today in K (enters the transfer function only).
    - ``power_backend``: "camb", "eisenstein-hu" or "auto" (CAMB when importable, else Eisenstein & Hu).

    The background ``E(a) = H(a)/H0`` contains matter and dark energy only (no radiation), consistently
    with the growth factor. The linear power spectrum at z = 0 comes from the backend and is normalised
    to ``sigma_8``; at other redshifts it is scaled by ``growth_factor(a)**2``.
    """

    omega_m: float = 0.3111
    omega_b: float = 0.0490
    h: float = 0.6766
    n_s: float = 0.9665
    sigma_8: float = 0.8102
    w0: float = -1.0
    wa: float = 0.0
    t_cmb: float = 2.7255  # K
    power_backend: str = "auto"  # "camb", "eisenstein-hu", or "auto" (camb when importable, else EH)

    NUMERIC_FIELDS: ClassVar[tuple[str, ...]] = (
        "omega_m",
        "omega_b",
        "h",
        "n_s",
        "sigma_8",
        "w0",
        "wa",
        "t_cmb",
    )

    # ------------------------------------------------------------------------------------------------
    # construction, validation, copies, serialisation

    def __post_init__(self) -> None:
        problems = ProblemCollector()
        values: dict[str, float] = {}
        for name in self.NUMERIC_FIELDS:
            raw = getattr(self, name)
            value = coerce_real(raw)
            if value is None:
                problems.add(f"{name} must be a real number, got {raw!r} ({type(raw).__name__})")
            elif not math.isfinite(value):
                problems.add(f"{name} must be finite, got {value}")
            else:
                values[name] = value
                object.__setattr__(self, name, value)

        om = values.get("omega_m")
        ob = values.get("omega_b")
        if om is not None:
            problems.check(0.0 < om <= 1.0, f"omega_m must be in (0, 1], got {om}")
        if ob is not None and problems.check(ob >= 0.0, f"omega_b must be >= 0, got {ob}") and om is not None:
            problems.check(ob < om, f"omega_b ({ob}) must be smaller than omega_m ({om})")
        if (h := values.get("h")) is not None:
            problems.check(0.0 < h <= 2.0, f"h must be in (0, 2], got {h}")
        if (n_s := values.get("n_s")) is not None:
            problems.check(0.0 < n_s < 2.0, f"n_s must be in (0, 2), got {n_s}")
        if (sigma_8 := values.get("sigma_8")) is not None:
            problems.check(sigma_8 > 0.0, f"sigma_8 must be positive, got {sigma_8}")
        if (t_cmb := values.get("t_cmb")) is not None:
            problems.check(t_cmb > 0.0, f"t_cmb must be positive (in K), got {t_cmb}")
        w0, wa = values.get("w0"), values.get("wa")
        if w0 is not None and wa is not None:
            problems.check(
                w0 + wa < 0.0,
                f"w0 + wa ({w0} + {wa}) must be negative: dark energy has to be negligible at early times",
            )
        backend = self.power_backend
        if not (isinstance(backend, str) and backend in POWER_BACKENDS):
            allowed = ", ".join(map(repr, POWER_BACKENDS))
            problems.add(f"power_backend must be one of {allowed}, got {backend!r}")
        problems.raise_if_any(ValidationError, context="Cosmology")

    @classmethod
    def planck18(cls) -> Cosmology:
        """Planck 2018 (TT,TE,EE+lowE+lensing+BAO) parameters: the field defaults."""
        return cls()

    def clone(self, **changes: Any) -> Cosmology:
        """A copy with some fields changed (validated again); unknown field names raise ValidationError."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValidationError(
                [f"unknown field {name!r} (fields: {', '.join(sorted(names))})" for name in unknown],
                context="Cosmology.clone",
            )
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, float | str]:
        """All fields by name (floats, and ``power_backend`` as a string)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def to_hdf5(self, group: _HasAttrs) -> None:
        """Write every field as an attribute of ``group`` (an h5py Group or Dataset), and ``type``."""
        for name, value in self.to_dict().items():
            group.attrs[name] = value
        group.attrs["type"] = "Cosmology"

    @classmethod
    def from_hdf5(cls, group: _HasAttrs) -> Cosmology:
        """Read a cosmology written by ``to_hdf5``. Other attributes (``type``, ...) are ignored; a missing
        field raises ArtifactError naming every missing field, a bad value raises ValidationError."""
        attrs = group.attrs
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [name for name in names if name not in attrs]
        if missing:
            where = getattr(group, "name", None)
            raise ArtifactError(
                [f"missing attribute {name!r}" for name in missing],
                context=f"Cosmology.from_hdf5({where})" if where else "Cosmology.from_hdf5",
            )
        return cls(**{name: _from_attr(attrs[name]) for name in names})

    # ------------------------------------------------------------------------------------------------
    # derived parameters

    @property
    def omega_lambda(self) -> float:
        """Dark-energy density today over the critical density, 1 - omega_m (flat universe)."""
        return 1.0 - self.omega_m

    @property
    def mean_matter_density(self) -> float:
        """Comoving mean matter density Ω_m ρ_crit in (Msun/h) / (Mpc/h)^3."""
        return self.omega_m * RHO_CRIT

    def particle_mass(self, n: int, length: float) -> float:
        """Mass of one of n^3 equal-mass particles in a box of side ``length`` Mpc/h, in Msun/h."""
        return self.mean_matter_density * length**3 / n**3

    # ------------------------------------------------------------------------------------------------
    # linear theory (cosmoseg.data.linear_theory)

    def w_of_a(self, a: npt.ArrayLike) -> FloatOrArray:
        """Dark-energy equation of state w(a) = w0 + wa (1 - a); ``a`` > 0, float or array."""
        return linear_theory.w_of_a(self, a)

    def efunc(self, a: npt.ArrayLike) -> FloatOrArray:
        """E(a) = H(a)/H0 for matter + dark energy (radiation ignored); ``a`` > 0, float or array."""
        return linear_theory.efunc(self, a)

    def omega_m_of_a(self, a: npt.ArrayLike) -> FloatOrArray:
        """Matter density parameter Ω_m(a) = Ω_m a^-3 / E(a)^2; ``a`` > 0, float or array."""
        return linear_theory.omega_m_of_a(self, a)

    def growth_factor(self, a: npt.ArrayLike) -> FloatOrArray:
        """Linear growth factor D(a), D(1) = 1, for ``a`` in (0, 100] (:func:`linear_theory.growth_factor`)."""
        return linear_theory.growth_factor(self, a)

    def growth_rate(self, a: npt.ArrayLike) -> FloatOrArray:
        """Linear growth rate f(a) = dln D / dln a; ``a`` in (0, 100], float or array."""
        return linear_theory.growth_rate(self, a)

    @property
    def resolved_power_backend(self) -> str:
        """The backend actually used: "camb" or "eisenstein-hu" ("auto" is camb when importable)."""
        return linear_theory.resolved_power_backend(self)

    def transfer_eisenstein_hu(self, k: npt.ArrayLike) -> FloatOrArray:
        """Eisenstein & Hu (1998) transfer function with baryon wiggles; ``k`` in h/Mpc, >= 0, T(0) = 1."""
        return linear_theory.transfer_eisenstein_hu(self, k)

    def linear_power(self, k: npt.ArrayLike | torch.Tensor, z: float = 0.0) -> FloatOrArray | torch.Tensor:
        """Linear matter power spectrum P(k, z) in (Mpc/h)^3 for ``k`` in h/Mpc, normalised to σ_8 and scaled by
        D(z)^2; a float, an array or a torch tensor in, the same kind out; P = 0 for k <= 0
        (:func:`linear_theory.linear_power`)."""
        return linear_theory.linear_power(self, k, z)

    def sigma_r(self, r: npt.ArrayLike, z: float = 0.0) -> FloatOrArray:
        """rms linear density contrast in a top-hat sphere of radius ``r`` Mpc/h at redshift ``z``."""
        return linear_theory.sigma_r(self, r, z)


# ----------------------------------------------------------------------------------------------------
# small helpers


COSMOLOGY_PARAMETERS: tuple[str, ...] = ("omega_m", "omega_b", "h", "n_s", "sigma_8", "w0", "wa")
"""The parameters a model file records of its training cosmology, and that :func:`cosmology_differences` compares."""


def cosmology_differences(
    recorded: Mapping[str, float], cosmology: Cosmology, *, rtol: float = 0.01, reference: str = "trained"
) -> list[str]:
    """One phrase per parameter of ``cosmology`` that differs from ``recorded`` (name -> value, e.g. a model file's
    training cosmology) by more than ``rtol`` (relative; absolute for w0 and wa, which may be 0), such as
    ``"sigma_8 0.7 (trained 0.8288)"`` (``reference`` names the other side); parameters ``recorded`` lacks are not
    compared."""
    out = []
    for key in COSMOLOGY_PARAMETERS:
        if key not in recorded:
            continue
        want, have = float(recorded[key]), float(getattr(cosmology, key))
        scale = 1.0 if key in ("w0", "wa") else abs(want)
        if abs(have - want) > rtol * scale:
            out.append(f"{key} {have:.6g} ({reference} {want:.6g})")
    return out


def cosmology_problems(changes: dict[str, Any], param: str = "cosmology") -> list[str]:
    """Problems of a ``cosmology = { ... }`` stage param (changes to Planck 2018): unknown keys, then the
    Cosmology's own checks; ``param`` names the param in the messages."""
    unknown = set(changes) - {f.name for f in dataclasses.fields(Cosmology)}
    if unknown:
        return [f"param {param!r} has unknown key(s) {sorted(unknown)}"]
    try:
        Cosmology(**changes)
    except (ValidationError, TypeError) as err:
        return [f"param {param!r}: {p}" for p in getattr(err, "problems", [str(err)])]
    return []


def _from_attr(value: Any) -> Any:
    """An HDF5 attribute value as a plain Python object (bytes decoded, numpy scalars unwrapped)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, np.generic):
        value = value.item()
        if isinstance(value, bytes):
            return value.decode()
    return value
