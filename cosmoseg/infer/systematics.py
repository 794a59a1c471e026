"""Observational systematics as composable catalog transforms, each ``(catalog, generator) -> catalog``.

A network trained on simulated galaxy catalogs meets real surveys only if it has seen their imperfections
(de Santi et al. 2023): the line-of-sight velocity shifts positions (redshift space) and is the only velocity
an observer measures; parts of the sky are masked; redshifts and velocities carry errors; samples are cut in
stellar mass or colour. Each transform here is a small frozen dataclass; :class:`Compose` chains them, and
:func:`parse_systematics` reads them from a command-line text (:data:`SYNTAX`), which ``describe()`` gives back.

Every transform is deterministic given the generator (same generator state, same catalog, same result); the
random numbers are drawn on the generator's device. The transforms that move galaxies or place holes
(:class:`RedshiftSpace`, :class:`SurveyMask`, :class:`PositionErrors`) need a periodic box: apply them before
``graphs.random_subbox``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from cosmoseg.data import GalaxyCatalog
from cosmoseg.errors import ValidationError
from cosmoseg.infer.graphs import META_LOS_AXIS, META_PERIODIC, META_VOLUME_FRACTION
from cosmoseg.measure.power import redshift_space_positions

__all__ = [
    "SYNTAX",
    "CatalogTransform",
    "Compose",
    "PositionErrors",
    "PropertyCut",
    "RedshiftSpace",
    "SurveyMask",
    "VelocityErrors",
    "parse_systematics",
]

SYNTAX = """\
systematics: comma-separated items, applied in order ("" or "none" = no systematics):
  rsd[:AXIS]                   redshift space along AXIS (0|1|2 or x|y|z, default 2); keeps v_los, drops vel
  mask:FRACTION[:N_HOLES]      remove the galaxies in N_HOLES (default 100) random spherical holes covering about
                               FRACTION (in [0, 1)) of the volume
  pos_err:SIGMA[:AXIS|iso]     Gaussian position errors of SIGMA Mpc/h along the line of sight (the catalog's
                               redshift-space axis, else 2), along AXIS, or on all axes (iso)
  vel_err:SIGMA                Gaussian velocity errors of SIGMA km/s on v_los (or on every component of vel)
  cut:COLUMN>MIN | cut:COLUMN<MAX | cut:MIN<COLUMN<MAX
                               keep the galaxies with MIN < COLUMN < MAX (strict), e.g. cut:log_mstar>9.5
example: rsd,mask:0.1,pos_err:0.5,vel_err:50,cut:log_mstar>9.5"""
"""The text syntax :func:`parse_systematics` reads."""

_AXES = {"0": 0, "1": 1, "2": 2, "x": 0, "y": 1, "z": 2}
DEFAULT_HOLES = 100
_MASK_GRID = 64
"""Cells per side of the grid on which :class:`SurveyMask` measures the volume its holes cover."""


@runtime_checkable
class CatalogTransform(Protocol):
    """A systematic: ``transform(catalog, generator) -> catalog`` and ``describe() -> str`` (its text form)."""

    def __call__(self, catalog: GalaxyCatalog, generator: torch.Generator) -> GalaxyCatalog: ...

    def describe(self) -> str: ...


def _number(value: float) -> str:
    """The shortest text that reads back as the same float ("50" for 50.0, "0.1", "1e-05")."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def _fail(problem: str, context: str) -> ValidationError:
    return ValidationError(problem, context=context)


def _check_number(value: object, name: str, context: str, *, low: float, high: float = math.inf) -> float:
    """``value`` as a float in [low, high) (``high`` excluded when finite); a ValidationError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(f"{name} must be a finite number, got {value!r}", context)
    if not low <= value < high:
        upper = f" and < {high:g}" if math.isfinite(high) else ""
        raise _fail(f"{name} must be >= {low:g}{upper}, got {value!r}", context)
    return float(value)


def _check_axis(axis: object, context: str) -> None:
    if isinstance(axis, bool) or axis not in (0, 1, 2):
        raise _fail(f"axis must be 0, 1 or 2 (x, y, z), got {axis!r}", context)


def _require_periodic(catalog: GalaxyCatalog, context: str) -> None:
    if not bool(catalog.meta.get(META_PERIODIC, True)):
        raise _fail(
            "the catalog is a non-periodic sub-box (meta['periodic'] = False): apply this systematic to the periodic "
            "box, before graphs.random_subbox",
            context,
        )


def _replace(
    catalog: GalaxyCatalog, columns: dict[str, torch.Tensor], units: dict[str, str] | None = None, **meta: object
) -> GalaxyCatalog:
    """A copy with these columns (units of dropped columns dropped too, ``units`` added) and meta updated."""
    kept = {name: unit for name, unit in catalog.units.items() if name in columns} | (units or {})
    return dataclasses.replace(catalog, columns=columns, units=kept, meta=dict(catalog.meta) | meta)


def _normal(shape: tuple[int, ...], generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    noise = torch.randn(shape, generator=generator, device=generator.device, dtype=torch.float64)
    return noise.to(device=like.device)


@dataclasses.dataclass(frozen=True)
class RedshiftSpace:
    """Redshift space in the distant-observer approximation, line of sight along ``axis``.

    Positions along the axis move by v_axis / (a H(a)) (:func:`cosmoseg.measure.power.redshift_space_positions`)
    and wrap into the box; the catalog then keeps ``v_los`` (N,) = vel[:, axis], km/s, and drops ``vel`` (an
    observer measures only the line-of-sight velocity). ``meta["los_axis"] = axis``. Draws nothing.
    """

    axis: int = 2

    def __post_init__(self) -> None:
        _check_axis(self.axis, "RedshiftSpace")

    def __call__(self, catalog: GalaxyCatalog, generator: torch.Generator) -> GalaxyCatalog:
        context = "RedshiftSpace"
        _require_periodic(catalog, context)
        if "vel" not in catalog:
            already = " (it has 'v_los': it is already in redshift space)" if "v_los" in catalog else ""
            raise _fail(f"redshift space needs the column 'vel' (N, 3) km/s, which is missing{already}", context)
        vel = catalog["vel"]
        pos = redshift_space_positions(catalog["pos"], vel, catalog.box, self.axis)
        columns = {name: values for name, values in catalog.columns.items() if name != "vel"}
        columns |= {"pos": pos, "v_los": vel[:, self.axis].clone()}
        return _replace(catalog, columns, {"v_los": "km/s"}, **{META_LOS_AXIS: self.axis})

    def describe(self) -> str:
        return "rsd" if self.axis == 2 else f"rsd:{self.axis}"


@dataclasses.dataclass(frozen=True)
class SurveyMask:
    """Removes the galaxies inside ``n_holes`` random spherical holes that cover about ``masked_fraction`` of the box.

    The hole centres are uniform in the periodic box and the holes overlap freely, so all of them have the radius R
    with 1 - exp(-n_holes (4/3) π R^3 / L^3) = masked_fraction (the expected covered fraction of Poisson-placed
    spheres). The volume this draw covers is measured on a 64^3 grid of cell centres, and ``meta["volume_fraction"]``
    is multiplied by the kept fraction (so the graph's number density stays unbiased); ``meta["masked_fraction"]``
    records the measured masked fraction. Draws 3 n_holes uniform numbers.
    """

    masked_fraction: float = 0.1
    n_holes: int = DEFAULT_HOLES

    def __post_init__(self) -> None:
        fraction = _check_number(self.masked_fraction, "masked_fraction", "SurveyMask", low=0.0, high=1.0)
        object.__setattr__(self, "masked_fraction", fraction)
        if isinstance(self.n_holes, bool) or not isinstance(self.n_holes, int) or self.n_holes < 1:
            raise _fail(f"n_holes must be a positive integer, got {self.n_holes!r}", "SurveyMask")

    def radius(self, box_length: float) -> float:
        """The radius of every hole, Mpc/h, in a box of side ``box_length``."""
        return box_length * (3 * -math.log1p(-self.masked_fraction) / (4 * math.pi * self.n_holes)) ** (1 / 3)

    def __call__(self, catalog: GalaxyCatalog, generator: torch.Generator) -> GalaxyCatalog:
        from scipy.spatial import cKDTree

        _require_periodic(catalog, "SurveyMask")
        length = catalog.box.length
        draw = torch.rand((self.n_holes, 3), generator=generator, device=generator.device, dtype=torch.float64)
        centres = np.remainder(draw.cpu().numpy() * length, length)
        centres[centres >= length] = 0.0
        radius = self.radius(length)
        if radius == 0:
            return _replace(catalog, dict(catalog.columns), masked_fraction=0.0)
        tree = cKDTree(centres, boxsize=length)

        def masked(points: np.ndarray) -> np.ndarray:
            distance, _ = tree.query(points, k=1, distance_upper_bound=radius)
            return distance < radius

        pos = np.remainder(catalog["pos"].detach().cpu().numpy().astype(np.float64), length)
        pos[pos >= length] = 0.0
        keep = torch.from_numpy(~masked(pos)).to(catalog.device)
        grid = (np.arange(_MASK_GRID) + 0.5) * (length / _MASK_GRID)
        cells = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), axis=-1).reshape(-1, 3)
        covered = float(masked(cells).mean())
        if covered >= 1.0:
            raise _fail(
                f"the holes cover the whole box: use more, smaller holes (n_holes = {self.n_holes})", "SurveyMask"
            )
        volume = float(catalog.meta.get(META_VOLUME_FRACTION, 1.0)) * (1.0 - covered)
        columns = {name: values[keep] for name, values in catalog.columns.items()}
        return _replace(catalog, columns, **{META_VOLUME_FRACTION: volume, "masked_fraction": covered})

    def describe(self) -> str:
        holes = "" if self.n_holes == DEFAULT_HOLES else f":{self.n_holes}"
        return f"mask:{_number(self.masked_fraction)}{holes}"


@dataclasses.dataclass(frozen=True)
class PositionErrors:
    """Gaussian position errors of ``sigma`` Mpc/h (redshift errors), wrapped into the box.

    Along ``axis``; ``axis=None`` means the line of sight: the catalog's ``meta["los_axis"]`` (a redshift-space
    catalog) or 2. ``isotropic=True`` perturbs all three axes instead. Draws N (or 3N) normal numbers.
    """

    sigma: float
    axis: int | None = None
    isotropic: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "sigma", _check_number(self.sigma, "sigma", "PositionErrors", low=0.0))
        if self.axis is not None:
            _check_axis(self.axis, "PositionErrors")
        if self.isotropic and self.axis is not None:
            raise _fail("give either an axis or isotropic=True, not both", "PositionErrors")

    def __call__(self, catalog: GalaxyCatalog, generator: torch.Generator) -> GalaxyCatalog:
        _require_periodic(catalog, "PositionErrors")
        pos = catalog["pos"]
        n = pos.shape[0]
        if self.isotropic:
            shift = _normal((n, 3), generator, pos) * self.sigma
        else:
            axis = int(catalog.meta.get(META_LOS_AXIS, 2)) if self.axis is None else self.axis
            shift = torch.zeros((n, 3), dtype=torch.float64, device=pos.device)
            shift[:, axis] = _normal((n,), generator, pos) * self.sigma
        moved = (pos.to(torch.float64) + shift).to(pos.dtype)  # the catalog wraps it into [0, L)
        return _replace(catalog, {**catalog.columns, "pos": moved})

    def describe(self) -> str:
        option = ":iso" if self.isotropic else ("" if self.axis is None else f":{self.axis}")
        return f"pos_err:{_number(self.sigma)}{option}"


@dataclasses.dataclass(frozen=True)
class VelocityErrors:
    """Gaussian velocity errors of ``sigma`` km/s: on ``v_los`` when the catalog has it (redshift space), else on
    every component of ``vel``. Draws N (or 3N) normal numbers."""

    sigma: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "sigma", _check_number(self.sigma, "sigma", "VelocityErrors", low=0.0))

    def __call__(self, catalog: GalaxyCatalog, generator: torch.Generator) -> GalaxyCatalog:
        name = "v_los" if "v_los" in catalog else "vel" if "vel" in catalog else None
        if name is None:
            raise _fail("velocity errors need a column 'v_los' or 'vel', and the catalog has neither", "VelocityErrors")
        values = catalog[name]
        noisy = (values.to(torch.float64) + _normal(tuple(values.shape), generator, values) * self.sigma).to(
            values.dtype
        )
        return _replace(catalog, {**catalog.columns, name: noisy})

    def describe(self) -> str:
        return f"vel_err:{_number(self.sigma)}"


@dataclasses.dataclass(frozen=True)
class PropertyCut:
    """Keeps the galaxies with ``minimum < catalog[column] < maximum`` (strict; None = no bound on that side), e.g. a
    stellar-mass cut ``PropertyCut("log_mstar", minimum=9.5)`` or a colour cut ``PropertyCut("color_gi",
    maximum=0.8)``. Draws nothing."""

    column: str
    minimum: float | None = None
    maximum: float | None = None

    def __post_init__(self) -> None:
        context = "PropertyCut"
        if not isinstance(self.column, str) or not self.column:
            raise _fail(f"column must be a column name, got {self.column!r}", context)
        if self.minimum is None and self.maximum is None:
            raise _fail(f"a cut on {self.column!r} needs a minimum, a maximum or both", context)
        for name in ("minimum", "maximum"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _check_number(value, name, context, low=-math.inf))
        if self.minimum is not None and self.maximum is not None and not self.minimum < self.maximum:
            raise _fail(f"minimum ({self.minimum}) must be smaller than maximum ({self.maximum})", context)

    def __call__(self, catalog: GalaxyCatalog, generator: torch.Generator) -> GalaxyCatalog:
        if self.column not in catalog:
            raise _fail(
                f"no column {self.column!r} to cut on; the catalog has {sorted(catalog.columns)}", "PropertyCut"
            )
        values = catalog[self.column]
        if values.ndim != 1:
            raise _fail(
                f"column {self.column!r} must have shape (N,) to be cut on, got {tuple(values.shape)}", "PropertyCut"
            )
        keep = torch.ones(values.shape, dtype=torch.bool, device=values.device)
        if self.minimum is not None:
            keep &= values > self.minimum
        if self.maximum is not None:
            keep &= values < self.maximum
        return catalog.select(keep)

    def describe(self) -> str:
        if self.minimum is not None and self.maximum is not None:
            return f"cut:{_number(self.minimum)}<{self.column}<{_number(self.maximum)}"
        if self.minimum is not None:
            return f"cut:{self.column}>{_number(self.minimum)}"
        return f"cut:{self.column}<{_number(self.maximum)}"  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True)
class Compose:
    """Applies ``transforms`` in order, all drawing from the one generator; ``describe()`` joins their texts with
    commas ("none" for no transform)."""

    transforms: tuple[CatalogTransform, ...] = ()

    def __post_init__(self) -> None:
        transforms = tuple(self.transforms)
        bad = [type(t).__name__ for t in transforms if not isinstance(t, CatalogTransform)]
        if bad:
            raise _fail(f"not catalog transforms (callable with describe()): {bad}", "Compose")
        object.__setattr__(self, "transforms", transforms)

    def __call__(self, catalog: GalaxyCatalog, generator: torch.Generator) -> GalaxyCatalog:
        for transform in self.transforms:
            catalog = transform(catalog, generator)
        return catalog

    def __len__(self) -> int:
        return len(self.transforms)

    def __iter__(self) -> Iterator[CatalogTransform]:
        return iter(self.transforms)

    def describe(self) -> str:
        return ",".join(t.describe() for t in self.transforms) or "none"


# ---- the text form ----------------------------------------------------------------------------------------------


def _parse_float(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{what} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{what} must be finite, got {text!r}")
    return value


def _parse_axis(text: str) -> int:
    if text.lower() not in _AXES:
        raise ValueError(f"the axis must be 0, 1, 2, x, y or z, got {text!r}")
    return _AXES[text.lower()]


def _arguments(args: Sequence[str], low: int, high: int) -> None:
    if not low <= len(args) <= high:
        want = f"{low}" if low == high else f"{low} to {high}"
        raise ValueError(f"takes {want} ':'-separated value(s), got {len(args)}")


def _rsd(args: Sequence[str]) -> CatalogTransform:
    _arguments(args, 0, 1)
    return RedshiftSpace(axis=_parse_axis(args[0]) if args else 2)


def _mask(args: Sequence[str]) -> CatalogTransform:
    _arguments(args, 1, 2)
    holes = DEFAULT_HOLES
    if len(args) == 2:
        if not args[1].isdigit():
            raise ValueError(f"N_HOLES must be a positive integer, got {args[1]!r}")
        holes = int(args[1])
    return SurveyMask(masked_fraction=_parse_float(args[0], "FRACTION"), n_holes=holes)


def _pos_err(args: Sequence[str]) -> CatalogTransform:
    _arguments(args, 1, 2)
    sigma = _parse_float(args[0], "SIGMA")
    if len(args) == 2 and args[1].lower() == "iso":
        return PositionErrors(sigma, isotropic=True)
    return PositionErrors(sigma, axis=_parse_axis(args[1]) if len(args) == 2 else None)


def _vel_err(args: Sequence[str]) -> CatalogTransform:
    _arguments(args, 1, 1)
    return VelocityErrors(_parse_float(args[0], "SIGMA"))


_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_NUM = r"[^<>]+"


def _cut(args: Sequence[str]) -> CatalogTransform:
    _arguments(args, 1, 1)
    text = args[0].replace(" ", "")
    if match := re.fullmatch(rf"({_NUM})<({_NAME})<({_NUM})", text):
        low, column, high = match.groups()
        return PropertyCut(column, _parse_float(low, "MIN"), _parse_float(high, "MAX"))
    if match := re.fullmatch(rf"({_NAME})>({_NUM})", text):
        return PropertyCut(match.group(1), minimum=_parse_float(match.group(2), "MIN"))
    if match := re.fullmatch(rf"({_NAME})<({_NUM})", text):
        return PropertyCut(match.group(1), maximum=_parse_float(match.group(2), "MAX"))
    raise ValueError(f"must read COLUMN>MIN, COLUMN<MAX or MIN<COLUMN<MAX, got {args[0]!r}")


PARSERS: dict[str, Callable[[Sequence[str]], CatalogTransform]] = {
    "rsd": _rsd,
    "mask": _mask,
    "pos_err": _pos_err,
    "vel_err": _vel_err,
    "cut": _cut,
}
"""The names :func:`parse_systematics` knows, each with the parser of its ':'-separated values."""


def parse_systematics(text: str | Iterable[str]) -> Compose:
    """The :class:`Compose` a command-line text describes (:data:`SYNTAX`), e.g.
    ``"rsd,mask:0.1,pos_err:0.5,vel_err:50,cut:log_mstar>9.5"``; "" or "none" gives no transform.
    ``parse_systematics(s).describe()`` is the canonical text, which parses back to the same transforms.
    A list of items (already split at commas) is accepted too.

    ValidationError for an unknown name or a bad value: it names the item, and lists the known names and the
    syntax.
    """
    items = [item.strip() for item in (text.split(",") if isinstance(text, str) else text)]
    if items in ([""], ["none"], []):
        return Compose(())
    transforms: list[CatalogTransform] = []
    problems: list[str] = []
    for item in items:
        name, *args = item.split(":")
        name = name.strip().lower()
        parser = PARSERS.get(name)
        if parser is None:
            problems.append(f"unknown systematic {name!r} in {item!r} (known: {', '.join(PARSERS)})")
            continue
        try:
            transforms.append(parser([a.strip() for a in args]))
        except ValidationError as err:
            problems.append(f"{item!r}: " + "; ".join(err.problems))
        except ValueError as err:
            problems.append(f"{item!r}: {name} {err}")
    if problems:
        raise ValidationError([*problems, SYNTAX], context=f"systematics {text!r}")
    return Compose(tuple(transforms))
