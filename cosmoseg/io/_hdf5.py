"""Shared machinery of the readers of simulation-code HDF5 outputs (Gadget-4, AREPO, IllustrisTNG).

Three jobs:

1. Finding the files of one output: a single file, an explicit list, the first chunk of a multi-file output
   (``snap_099.0.hdf5`` brings its siblings ``snap_099.1.hdf5``, ...), a file stem (``snap_099``) or a
   directory that holds the chunks of one output.
2. Reading header attributes, which Gadget-2/3 and AREPO keep in ``Header`` and Gadget-4 partly in
   ``Parameters``, and the cosmology they describe.
3. Converting code units to cosmoseg units. A stored value ``x`` stands for the physical cgs quantity

       q = x · a^a_scaling · h^h_scaling · to_cgs,    to_cgs = UL^length · UM^mass · UV^velocity,

   where UL, UM, UV are the code units (``UnitLength_in_cm``, ``UnitMass_in_g``,
   ``UnitVelocity_in_cm_per_s``). AREPO/TNG and Gadget-4 write ``a_scaling``, ``h_scaling`` and ``to_cgs``
   (and the unit exponents ``length_scaling``, ``mass_scaling``, ``velocity_scaling``) on every dataset; for
   files without them each field has a known convention (a ``Convention``). A cosmoseg unit is a ``Target``:
   a value ``y`` stands for ``q = y · a^a · h^h · cgs`` (comoving Mpc/h is a = 1, h = -1, cgs = 1 Mpc), so
   ``y = x · a^(a_scaling - a) · h^(h_scaling - h) · to_cgs / cgs``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from cosmoseg.data import Cosmology
from cosmoseg.errors import ArtifactError, ProblemCollector, ValidationError

KPC_CM = 3.085678e21
"""One kiloparsec in cm (the value Gadget and AREPO use)."""
MPC_CM = 1e3 * KPC_CM
"""One megaparsec in cm."""
MSUN_G = 1.989e33
"""One solar mass in g (the value Gadget and AREPO use)."""
KM_CM = 1e5
"""One km in cm."""
YEAR_S = 3.15576e7
"""One (Julian) year in s."""
DEFAULT_OMEGA_B = 0.0486
"""Ω_b used when neither the file nor the ``cosmology`` argument gives one (the Planck 2015 value of TNG)."""

UNIT_ATTRIBUTES: tuple[tuple[str, float], ...] = (
    ("UnitLength_in_cm", KPC_CM),
    ("UnitMass_in_g", 1e10 * MSUN_G),
    ("UnitVelocity_in_cm_per_s", KM_CM),
)
"""The code-unit attributes and the Gadget defaults (kpc/h, 1e10 Msun/h, km/s) used when a file lacks them."""


def code_units_problems(code_units: Mapping[str, Any]) -> list[str]:
    """Problems of a ``code_units`` argument or param: its keys must be :data:`UNIT_ATTRIBUTES` names, its values
    positive numbers (cm, g or cm/s)."""
    keys = [name for name, _ in UNIT_ATTRIBUTES]
    unknown = sorted(set(code_units) - set(keys))
    out = [f"param 'code_units' has unknown key(s) {unknown}; the keys are {', '.join(keys)}"] if unknown else []
    for key, value in code_units.items():
        if key in keys and not (isinstance(value, int | float) and not isinstance(value, bool) and value > 0):
            out.append(f"param 'code_units': {key} must be a positive number (cm, g or cm/s), got {value!r}")
    return out


HEADER_GROUPS: tuple[str, ...] = ("Header", "Parameters")
"""Where header quantities are looked up, in this order (Gadget-4 keeps the cosmology in Parameters)."""

UNIT_SNAP_RTOL = 1e-3
"""Unit ratios within this relative distance of a power of ten are taken as that power of ten: files round
their cgs constants differently (3.085678e21 vs 3.08568e21 cm per kpc)."""

PathArg = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
"""One path (file, stem or directory) or a sequence of files."""

_CHUNK = re.compile(r"^(?P<stem>.+)\.(?P<index>\d+)\.(?P<ext>hdf5|h5)$")
_HDF5_SUFFIXES = (".hdf5", ".h5")


# ---- finding the files of one output ------------------------------------------------------------------


def chunk_index(path: Path) -> int | None:
    """The chunk number N of a file named ``stem.N.hdf5`` (None for other names)."""
    match = _CHUNK.match(path.name)
    return int(match["index"]) if match else None


def _chunks(directory: Path, stem: str, ext: str) -> list[Path]:
    found = []
    for candidate in directory.iterdir():
        match = _CHUNK.match(candidate.name)
        if match and match["stem"] == stem and match["ext"] == ext and candidate.is_file():
            found.append(candidate)
    return sorted(found, key=lambda p: chunk_index(p) or 0)


def _files_in_directory(directory: Path, what: str) -> list[Path]:
    hdf5 = sorted(p for p in directory.iterdir() if p.suffix in _HDF5_SUFFIXES and p.is_file())
    stems = sorted({(m["stem"], m["ext"]) for p in hdf5 if (m := _CHUNK.match(p.name))})
    plain = [p for p in hdf5 if not _CHUNK.match(p.name)]
    if len(stems) == 1 and not plain:
        return _chunks(directory, *stems[0])
    if not stems and len(plain) == 1:
        return plain
    if not hdf5:
        raise ArtifactError(f"{directory}: the directory holds no .hdf5 files of a {what}")
    names = [f"{stem}.N.{ext}" for stem, ext in stems] + [p.name for p in plain]
    raise ArtifactError(
        f"{directory}: the directory holds several outputs ({', '.join(names)}); pass the files of one of them"
    )


def resolve_files(path: PathArg, *, what: str) -> list[Path]:
    """The files of one output, in chunk order.

    path: a file (the first chunk of a multi-file output brings its siblings ``stem.N.hdf5``), a file stem
        (``snap_099`` for ``snap_099.hdf5`` or ``snap_099.*.hdf5``), a directory holding the chunks of one
        output, or a sequence of files (kept as given unless they are chunks of one stem, then sorted by N).
    what: what is read ("snapshot", "group catalog"), for messages.
    """
    if isinstance(path, str | os.PathLike):
        single = Path(path)
        if single.is_dir():
            return _files_in_directory(single, what)
        if single.is_file():
            match = _CHUNK.match(single.name)
            return _chunks(single.parent, match["stem"], match["ext"]) if match else [single]
        for ext in ("hdf5", "h5"):
            if single.parent.is_dir():
                plain = single.with_name(f"{single.name}.{ext}")
                if plain.is_file():
                    return [plain]
                chunks = _chunks(single.parent, single.name, ext)
                if chunks:
                    return chunks
        raise ArtifactError(f"{single}: no such {what} file, stem or directory")
    files = [Path(p) for p in path]
    if not files:
        raise ArtifactError(f"no {what} files were given (an empty list)")
    problems = ProblemCollector()
    for file in files:
        problems.check(file.is_file(), f"{file}: no such file")
    problems.raise_if_any(ArtifactError, context=f"reading a {what}")
    if len({f.resolve() for f in files}) != len(files):
        raise ArtifactError(f"the list of {what} files names a file twice: {[str(f) for f in files]}")
    matches = [_CHUNK.match(f.name) for f in files]
    if all(matches) and len({(m["stem"], m["ext"]) for m in matches if m}) == 1:
        files.sort(key=lambda f: chunk_index(f) or 0)
    return files


def check_file_count(files: Sequence[Path], declared: int | None, attribute: str) -> list[str]:
    """Problems when ``files`` are not all the chunks the header declares (``declared``, from ``attribute``)."""
    if declared is None or declared == len(files):
        return []
    problem = f"{files[0]}: Header/{attribute} = {declared}, but {len(files)} file(s) were given or found"
    indices = [chunk_index(f) for f in files]
    if all(i is not None for i in indices):
        missing = sorted(set(range(declared)) - {i for i in indices if i is not None})
        if missing:
            stem = _CHUNK.match(files[0].name)
            assert stem is not None
            names = [f"{stem['stem']}.{i}.{stem['ext']}" for i in missing[:5]]
            problem += f"; missing {', '.join(names)}" + (" ..." if len(missing) > 5 else "")
    return [problem]


@contextmanager
def open_hdf5(path: Path) -> Iterator[h5py.File]:
    """An HDF5 file opened for reading, or an ArtifactError naming it."""
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise ArtifactError(f"{path}: not a readable HDF5 file ({err})") from err
    with handle:
        yield handle


# ---- attributes ----------------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """An HDF5 attribute value as a Python scalar, str or NumPy array."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) and value.shape in ((), (1,)):
        return value.reshape(()).item()
    return value


def find_attribute(handle: h5py.File, name: str, groups: Sequence[str] = HEADER_GROUPS) -> tuple[Any, str] | None:
    """The value of attribute ``name`` and the group it was found in (first of ``groups``), or None."""
    for group in groups:
        if group in handle and name in handle[group].attrs:
            return plain(handle[group].attrs[name]), group
    return None


def as_float(value: Any, where: str, problems: ProblemCollector) -> float | None:
    """A finite float from an attribute value, or None with a problem recorded."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        problems.add(f"{where} must be a number, got {value!r}")
        return None
    if not math.isfinite(number):
        problems.add(f"{where} must be finite, got {number}")
        return None
    return number


def per_type(value: Any, index: int, where: str, problems: ProblemCollector) -> Any:
    """Entry ``index`` (a NumPy scalar) of a per-particle-type header array (NumPart_ThisFile, MassTable, ...),
    or None with a problem recorded."""
    array = np.atleast_1d(np.asarray(value))
    if array.ndim != 1 or array.shape[0] <= index or not np.issubdtype(array.dtype, np.number):
        problems.add(f"{where} must list a number for each of at least {index + 1} particle types, got {value!r}")
        return None
    return array[index]


def as_count(value: Any, where: str, problems: ProblemCollector) -> int | None:
    """A non-negative integer count from an attribute value, or None with a problem recorded."""
    try:
        count = int(value)
    except (TypeError, ValueError, OverflowError):
        problems.add(f"{where} must be an integer count, got {value!r}")
        return None
    if count != value or count < 0:
        problems.add(f"{where} must be a non-negative integer count, got {value!r}")
        return None
    return count


def header_float(
    handle: h5py.File, path: Path, name: str, problems: ProblemCollector, *, required: bool = True
) -> tuple[float | None, str]:
    """A scalar header quantity (from Header, else Parameters) and where it was found ("" when absent)."""
    found = find_attribute(handle, name)
    if found is None:
        if required:
            problems.add(f"{path}: attribute {name} is missing (looked in {' and '.join(HEADER_GROUPS)})")
        return None, ""
    value, group = found
    return as_float(value, f"{path}: {group}/{name}", problems), group


def header_redshift(handle: h5py.File, path: Path, problems: ProblemCollector) -> tuple[float | None, str]:
    """The redshift (from ``Redshift``, else from the scale factor ``Time``) and which attribute gave it."""
    z, _ = header_float(handle, path, "Redshift", problems, required=False)
    a, _ = header_float(handle, path, "Time", problems, required=False)
    if z is None and a is None:
        problems.add(f"{path}: neither Header/Redshift nor Header/Time (the scale factor) is present")
        return None, ""
    if a is not None and not a > 0:
        problems.add(f"{path}: Header/Time (the scale factor) must be positive, got {a}")
        return None, ""
    if z is not None and a is not None and abs(1.0 / (1.0 + z) - a) > 1e-4 * a:
        problems.add(
            f"{path}: Header/Redshift = {z} and Header/Time = {a} disagree (1/(1+z) = {1 / (1 + z):.6g}); "
            "is this a non-cosmological run?"
        )
    if z is None:
        assert a is not None
        return 1.0 / a - 1.0, "Time"
    return z, "Redshift"


def check_comoving(handle: h5py.File, path: Path, problems: ProblemCollector) -> None:
    """A problem when ``Parameters/ComovingIntegrationOn`` says the run is not cosmological."""
    found = find_attribute(handle, "ComovingIntegrationOn", ("Parameters", "Header"))
    if found is not None and not int(found[0]):
        problems.add(
            f"{path}: {found[1]}/ComovingIntegrationOn = 0: not a cosmological run (cosmoseg reads comoving boxes)"
        )


def check_same(values: Mapping[Path, Any], what: str, problems: ProblemCollector, *, rtol: float = 1e-6) -> None:
    """A problem when files disagree about a header quantity that must be the same in all of them."""
    items = [(p, v) for p, v in values.items() if v is not None]
    if len(items) < 2:
        return
    first_path, first = items[0]
    for path, value in items[1:]:
        if not _same(first, value, rtol):
            problems.add(f"files disagree about {what}: {first_path} has {first!r}, {path} has {value!r}")
            return


def _same(a: Any, b: Any, rtol: float) -> bool:
    if isinstance(a, float | int) and isinstance(b, float | int):
        return math.isclose(a, b, rel_tol=rtol, abs_tol=0.0) or a == b
    return bool(a == b)


# ---- code units ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CodeUnits:
    """The code units of a file: UL in cm (per h), UM in g (per h), UV in cm/s; ``source`` says where from."""

    length_cm: float
    mass_g: float
    velocity_cm_s: float
    source: str

    @property
    def from_file(self) -> bool:
        """Whether at least one unit was read from the file (or given by the caller) rather than defaulted."""
        return self.source != "Gadget defaults"

    def values(self) -> tuple[float, float, float]:
        return (self.length_cm, self.mass_g, self.velocity_cm_s)

    @property
    def text(self) -> str:
        """The three units as ``name=value`` pairs (6 significant digits)."""
        names = (name for name, _ in UNIT_ATTRIBUTES)
        return ", ".join(f"{name}={value:.6g}" for name, value in zip(names, self.values(), strict=True))


def read_code_units(
    handle: h5py.File, path: Path, problems: ProblemCollector, overrides: Mapping[str, float] | None = None
) -> CodeUnits:
    """The code units of a file: ``Header`` attributes, else ``Parameters``, else ``overrides``, else the Gadget
    defaults (kpc/h, 1e10 Msun/h, km/s). A file whose Header and Parameters disagree, or whose value
    contradicts an override, is a problem; so is a unit that is not a positive number."""
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - {name for name, _ in UNIT_ATTRIBUTES})
    if unknown:
        known = ", ".join(name for name, _ in UNIT_ATTRIBUTES)
        raise ValueError(f"code_units has unknown key(s) {unknown}; the keys are {known}")
    values: list[float] = []
    sources: list[str] = []
    for name, default in UNIT_ATTRIBUTES:
        found: dict[str, float] = {}
        for group in HEADER_GROUPS:
            if group in handle and name in handle[group].attrs:
                number = as_float(plain(handle[group].attrs[name]), f"{path}: {group}/{name}", problems)
                if number is not None:
                    found[group] = number
        if len(found) == 2 and not math.isclose(*found.values(), rel_tol=1e-6):
            listing = ", ".join(f"{group}/{name} = {v:g}" for group, v in found.items())
            problems.add(f"{path}: unit attributes disagree within the file: {listing}")
        value = next(iter(found.values()), None)
        source = next(iter(found), "")
        if name in overrides:
            wanted = float(overrides[name])
            if value is not None and not math.isclose(value, wanted, rel_tol=1e-6):
                problems.add(f"{path}: {source}/{name} = {value:g} contradicts code_units[{name!r}] = {wanted:g}")
            value, source = wanted, source or "code_units argument"
        if value is None:
            value, source = default, "Gadget defaults"
        if not (math.isfinite(value) and value > 0):
            problems.add(f"{path}: {source}/{name} must be a positive number, got {value}")
            value = default
        values.append(value)
        sources.append(source)
    distinct = sorted(set(sources), key=sources.index)
    return CodeUnits(*values, source=" + ".join(distinct))


@dataclasses.dataclass(frozen=True)
class Convention:
    """How a field is stored when its dataset carries no unit attributes:
    q_cgs = x · a^a · h^h · UL^length · UM^mass · UV^velocity.

    It also says which unit attributes make sense on the field's dataset: ``h_scaling`` must equal ``h``
    (the h exponent follows from the field's dimensions in code units, which carry 1/h for lengths and
    masses), and ``a_scaling`` must be one of ``a_allowed`` (default: ``a`` alone), the few physical
    conventions the field can be written in (a velocity may be stored as a · v_pec, v_pec or v_pec / √a).
    """

    a: float = 0.0
    h: float = 0.0
    length: float = 0.0
    mass: float = 0.0
    velocity: float = 0.0
    description: str = ""
    fixed_cgs: float | None = None
    """For fields written in fixed physical units whatever the code units (SFR in Msun/yr): their cgs value."""
    a_allowed: tuple[float, ...] = ()
    """The ``a_scaling`` values that make physical sense for the field (empty: ``a`` alone)."""

    @property
    def a_values(self) -> tuple[float, ...]:
        """The ``a_scaling`` values a dataset of this field may carry."""
        return self.a_allowed or (self.a,)

    def to_cgs(self, units: CodeUnits) -> float:
        if self.fixed_cgs is not None:
            return self.fixed_cgs
        return units.length_cm**self.length * units.mass_g**self.mass * units.velocity_cm_s**self.velocity


@dataclasses.dataclass(frozen=True)
class Target:
    """A cosmoseg unit: a value y stands for the physical cgs quantity q = y · a^a · h^h · cgs."""

    a: float
    h: float
    cgs: float
    name: str


COMOVING_MPC_H = Target(1.0, -1.0, MPC_CM, "comoving Mpc/h")
COMOVING_KPC_H = Target(1.0, -1.0, KPC_CM, "comoving kpc/h")
KM_S = Target(0.0, 0.0, KM_CM, "km/s")
MSUN_H = Target(0.0, -1.0, MSUN_G, "Msun/h")
MSUN_YR = Target(0.0, 0.0, MSUN_G / YEAR_S, "Msun/yr")
KPC_H_KM_S = Target(0.0, -1.0, KPC_CM * KM_CM, "(kpc/h)(km/s)")


@dataclasses.dataclass(frozen=True)
class Conversion:
    """The factor that turns stored values into cosmoseg units (``factor = unit_ratio · a^.. · h^..``)."""

    factor: float
    unit_ratio: float
    source: str


def snap_power_of_ten(ratio: float) -> float:
    """``ratio`` rounded to the nearest power of ten when it lies within ``UNIT_SNAP_RTOL`` of it."""
    if ratio > 0 and math.isfinite(ratio):
        power = 10.0 ** round(math.log10(ratio))
        if abs(ratio / power - 1.0) < UNIT_SNAP_RTOL:
            return power
    return ratio


SCALING_ATOL = 1e-6
"""``a_scaling`` / ``h_scaling`` attributes within this of an allowed value count as that value."""

_SCALING_ATTRS = ("a_scaling", "h_scaling", "to_cgs")
_DIMENSION_ATTRS = (("length_scaling", "length"), ("mass_scaling", "mass"), ("velocity_scaling", "velocity"))


def conversion(
    dataset: h5py.Dataset,
    path: Path,
    convention: Convention,
    target: Target,
    units: CodeUnits,
    *,
    a: float,
    h: float,
) -> Conversion:
    """The factor from the stored values of ``dataset`` to ``target`` units.

    With the AREPO/Gadget-4 unit attributes (``a_scaling``, ``h_scaling``, ``to_cgs``) on the dataset, those
    rule, within what the field allows: ``h_scaling`` must equal the convention's h, ``a_scaling`` must be one
    of ``convention.a_values``, the dimension exponents must match the convention's, and ``to_cgs`` must agree
    with the file's code units when the file states them. Without them, ``convention`` and ``units`` give the
    factor.

    Raises ArtifactError naming the file, the dataset, the attribute, its value and what the field needs.
    """
    where = f"{path}: dataset {dataset.name.lstrip('/')}"
    present = [name for name in _SCALING_ATTRS if name in dataset.attrs]
    if present and len(present) < len(_SCALING_ATTRS):
        missing = [name for name in _SCALING_ATTRS if name not in dataset.attrs]
        raise ArtifactError(f"{where} has unit attribute(s) {present} but not {missing}: incomplete unit attributes")
    if not present:
        unit_ratio = snap_power_of_ten(convention.to_cgs(units) / target.cgs)
        factor = unit_ratio * a ** (convention.a - target.a) * h ** (convention.h - target.h)
        source = "fixed units" if convention.fixed_cgs is not None else f"code units: {units.source}"
        return Conversion(factor, unit_ratio, f"{convention.description}, {source}")
    problems = ProblemCollector()
    a_scaling = as_float(plain(dataset.attrs["a_scaling"]), f"{where} attribute a_scaling", problems)
    h_scaling = as_float(plain(dataset.attrs["h_scaling"]), f"{where} attribute h_scaling", problems)
    to_cgs = as_float(plain(dataset.attrs["to_cgs"]), f"{where} attribute to_cgs", problems)
    problems.raise_if_any(ArtifactError)
    assert a_scaling is not None and h_scaling is not None and to_cgs is not None
    field = convention.description or "this field"
    problems.check(
        abs(h_scaling - convention.h) <= SCALING_ATOL,
        f"{where} has attribute h_scaling = {h_scaling:g}, but {field} need h_scaling = {convention.h:g} (fixed by "
        "the field's dimensions in /h code units): the attribute is wrong",
    )
    allowed_a = ", ".join(f"{v:g}" for v in convention.a_values)
    problems.check(
        any(abs(a_scaling - allowed) <= SCALING_ATOL for allowed in convention.a_values),
        f"{where} has attribute a_scaling = {a_scaling:g}, but {field} need a_scaling in {{{allowed_a}}}: no "
        f"physical convention stores them with a^{a_scaling:g}",
    )
    exponents: dict[str, float] = {}
    for attr, key in _DIMENSION_ATTRS:
        if attr in dataset.attrs and convention.fixed_cgs is None:
            value = as_float(plain(dataset.attrs[attr]), f"{where} attribute {attr}", problems)
            if value is not None:
                exponents[key] = value
                problems.check(
                    value == getattr(convention, key),
                    f"{where} has {attr} = {value:g}, but {convention.description or 'this field'} needs "
                    f"{getattr(convention, key):g}: the dataset holds another kind of quantity",
                )
    problems.check(to_cgs > 0, f"{where} has to_cgs = {to_cgs:g}: a dimensional field needs a positive to_cgs")
    if to_cgs > 0 and convention.fixed_cgs is not None:
        problems.check(
            math.isclose(to_cgs, convention.fixed_cgs, rel_tol=UNIT_SNAP_RTOL),
            f"{where} has to_cgs = {to_cgs:g}, but {convention.description} are stored in fixed units of "
            f"{convention.fixed_cgs:g} (cgs)",
        )
    elif to_cgs > 0 and units.from_file:
        expected = dataclasses.replace(convention, **exponents).to_cgs(units)
        problems.check(
            math.isclose(to_cgs, expected, rel_tol=UNIT_SNAP_RTOL),
            f"{where} has to_cgs = {to_cgs:g}, but the code units of the file ({units.source}: "
            f"UnitLength_in_cm = {units.length_cm:g}, UnitMass_in_g = {units.mass_g:g}, "
            f"UnitVelocity_in_cm_per_s = {units.velocity_cm_s:g}) give {expected:g}",
        )
    problems.raise_if_any(ArtifactError)
    unit_ratio = snap_power_of_ten(to_cgs / target.cgs)
    factor = unit_ratio * a ** (a_scaling - target.a) * h ** (h_scaling - target.h)
    attributes = f"a_scaling={a_scaling:g} h_scaling={h_scaling:g} to_cgs={to_cgs:g}"
    source = f"{convention.description}, dataset attributes {attributes}"
    return Conversion(factor, unit_ratio, source)


# ---- cosmology -----------------------------------------------------------------------------------------


COSMOLOGY_ATTRIBUTES: tuple[str, ...] = (
    "Omega0",
    "OmegaLambda",
    "OmegaBaryon",
    "HubbleParam",
    "Sigma8",
    "PrimordialIndex",
    "PowerSpectrumType",
    "ReNormalizeInputSpectrum",
)
"""The header attributes that describe the cosmology (``Header``, else ``Parameters``); the readers look them
all up and hand them to ``header_cosmology``. ``Sigma8``, ``PrimordialIndex``, ``PowerSpectrumType`` and
``ReNormalizeInputSpectrum`` are Gadget-4 parameters of runs that make their own ICs (NGENIC)."""

COSMOLOGY_RTOL = 1e-3
"""A ``cosmology`` argument that differs from the file's Ω_m, h, σ_8 or n_s by more than this (relative) is an
error."""

TABULATED_SPECTRUM = 2
"""Gadget-4's ``PowerSpectrumType`` of a tabulated input spectrum (a CAMB / CLASS table)."""


def _file_spectrum(lookup: Callable[[str], float | None]) -> tuple[dict[str, tuple[str, float]], list[str]]:
    """σ_8 and n_s as the file states them (name -> (attribute, value)), and the stored values that are not
    σ_8 or n_s, with the reason.

    Gadget-4's NGENIC multiplies every input spectrum by k^(PrimordialIndex - 1): for its analytic spectra
    (Eisenstein-Hu, Efstathiou; P ∝ k T², i.e. n = 1) PrimordialIndex is n_s, but a tabulated spectrum
    (``PowerSpectrumType = 2``) already holds its own tilt, which the file does not state, and PrimordialIndex
    (usually 1) only tilts it further. ``Sigma8`` normalises the spectrum, except a tabulated one read with
    ``ReNormalizeInputSpectrum = 0``.
    """
    found: dict[str, tuple[str, float]] = {}
    ignored: list[str] = []
    tabulated = lookup("PowerSpectrumType") == TABULATED_SPECTRUM
    sigma_8 = lookup("Sigma8")
    if sigma_8 is not None:
        if tabulated and lookup("ReNormalizeInputSpectrum") == 0:
            ignored.append(
                f"Sigma8 = {sigma_8:g} (PowerSpectrumType = 2 with ReNormalizeInputSpectrum = 0: the tabulated "
                "spectrum was used as it is, Sigma8 did not normalise it)"
            )
        else:
            found["sigma_8"] = ("Sigma8", sigma_8)
    n_s = lookup("PrimordialIndex")
    if n_s is not None:
        if tabulated:
            ignored.append(
                f"PrimordialIndex = {n_s:g} (it tilts the tabulated input spectrum of PowerSpectrumType = 2, "
                "whose own n_s the file does not state)"
            )
        else:
            found["n_s"] = ("PrimordialIndex", n_s)
    return found, ignored


def header_cosmology(
    lookup: Callable[[str], float | None],
    cosmology: Cosmology | None,
    where: str,
) -> tuple[Cosmology, dict[str, str]]:
    """The cosmology of a simulation file and the provenance of its values, for ``meta``.

    lookup: a header quantity by its attribute name (those of ``COSMOLOGY_ATTRIBUTES``: ``Omega0``,
        ``OmegaBaryon``, ``OmegaLambda``, ``HubbleParam``, ``Sigma8``, ``PrimordialIndex``, ...), or None when
        the file lacks it.
    cosmology: the caller's cosmology. It gives what the file does not store (σ_8 and n_s of most runs, w0,
        wa, T_cmb, the power backend) and Ω_b; Ω_m, h, and σ_8 and n_s where the file states them (Gadget-4
        runs that make their own ICs, see ``_file_spectrum``) come from the file and must agree with it
        (``COSMOLOGY_RTOL``) when both are given.

    Ω_b: the ``cosmology`` argument, else the file's ``OmegaBaryon`` when positive (gravity-only runs often
    write 0), else ``DEFAULT_OMEGA_B``. Missing values of the rest: Planck 2018 (``Cosmology()``). A file whose
    Omega0 + OmegaLambda differs from 1 by more than 1e-3 is rejected: cosmoseg's cosmology is flat.

    Returns the cosmology and ``meta`` entries: ``cosmology_from_file``, ``cosmology_from_argument``,
    ``cosmology_defaults`` (comma-separated names or ``name=value`` pairs), and ``cosmology_ignored`` (only
    when the file stores Sigma8 / PrimordialIndex that are not the run's σ_8 / n_s, with the reason).
    """
    problems = ProblemCollector()
    base = cosmology if cosmology is not None else Cosmology()
    from_file: list[str] = []
    from_argument: list[str] = []
    defaulted: list[str] = []
    values: dict[str, float] = {}

    def from_the_file(attr: str, name: str, value: float) -> None:
        values[name] = value
        from_file.append(name)
        given = getattr(cosmology, name, None) if cosmology is not None else None
        if given is not None and not math.isclose(given, value, rel_tol=COSMOLOGY_RTOL):
            problems.add(
                f"{where}: {attr} = {value:g} in the file, but the cosmology argument has {name} = {given:g}; "
                "pass a cosmology that matches the simulation, or none"
            )

    for attr, name in (("Omega0", "omega_m"), ("HubbleParam", "h")):
        value = lookup(attr)
        if value is None:
            if cosmology is None:
                problems.add(f"{where}: the file gives no {attr}; pass cosmology= with {name}")
            else:
                from_argument.append(name)
            continue
        from_the_file(attr, name, value)
    omega_lambda = lookup("OmegaLambda")
    if omega_lambda is not None and "omega_m" in values and abs(values["omega_m"] + omega_lambda - 1.0) > 1e-3:
        problems.add(
            f"{where}: Omega0 + OmegaLambda = {values['omega_m'] + omega_lambda:g}, not 1; cosmoseg's Cosmology is flat"
        )
    if cosmology is not None:
        values["omega_b"] = cosmology.omega_b
        from_argument.append("omega_b")
    else:
        omega_b = lookup("OmegaBaryon")
        if omega_b is not None and omega_b > 0:
            values["omega_b"] = omega_b
            from_file.append("omega_b")
        else:
            values["omega_b"] = DEFAULT_OMEGA_B
            defaulted.append(f"omega_b={DEFAULT_OMEGA_B} (TNG, Planck 2015)")
    spectrum, ignored = _file_spectrum(lookup)
    planck: list[str] = []
    for name in ("n_s", "sigma_8", "w0", "wa"):
        if name in spectrum:
            attr, value = spectrum[name]
            from_the_file(attr, name, value)
        elif cosmology is not None:
            from_argument.append(name)
        else:
            planck.append(f"{name}={getattr(base, name):g}")
    if planck:
        defaulted.append(", ".join(planck) + " (Planck 2018)")
    problems.raise_if_any(ArtifactError)
    try:
        result = base.clone(**values)
    except ValidationError as err:
        raise ArtifactError([f"{where}: the cosmology of the file is invalid: {p}" for p in err.problems]) from err
    provenance = {
        "cosmology_from_file": ",".join(from_file),
        "cosmology_from_argument": ",".join(from_argument),
        "cosmology_defaults": "; ".join(defaulted),
    }
    if ignored:
        provenance["cosmology_ignored"] = "; ".join(ignored)
    return result, provenance


def describe(conv: Conversion, target: Target) -> str:
    """A sentence for ``meta``: the factor applied and where it came from."""
    return f"stored x {conv.factor:.6g} = {target.name} ({conv.source})"
