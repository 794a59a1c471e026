"""Named columns of equal length: measurement tables and object catalogs."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar, Self

import torch

from cosmoseg.data._base import (
    DataObject,
    Meta,
    as_tensor,
    check_meta,
    check_one_device,
    check_tensor,
    read_meta,
    read_tensor,
    wrap_positions,
    write_meta,
    write_tensor,
)
from cosmoseg.data.box import Box, read_box, write_box
from cosmoseg.errors import ProblemCollector

STANDARD_UNITS: dict[str, str] = {
    "pos": "Mpc/h",
    "vel": "km/s",
    "mass": "Msun/h",
    "n_part": "",
    "r200": "Mpc/h",
    "vel_disp": "km/s",
    "lagr_pos": "Mpc/h",
    "log_mstar": "log10 Msun/h",
    "log_ssfr": "log10 1/yr",
    "color_gi": "mag",
    "log_radius": "log10 kpc/h",
    "log_z": "log10 Z/Zsun",
    "k": "h/Mpc",
    "power": "(Mpc/h)^3",
}
"""Units of the columns every stage agrees on; other columns state theirs in ``units``."""

VECTOR_COLUMNS = frozenset({"pos", "vel", "lagr_pos"})
"""Columns of shape (N, 3)."""

MISSING_FILL = 0.0
"""What a column holds where it has no value (an unresolved halo property, a statistic of an empty bin, a ratio
0/0). Tables hold finite numbers only, so "missing" is never NaN: it is this fill value plus a column beside it that
says which rows are missing, a boolean ``<name>_resolved`` (per-object catalogs) or a count (binned tables: the
number of objects behind the value, 0 in an empty bin). See docs/data-model.md, "Missing values"."""

RESOLVED_SUFFIX = "_resolved"


def resolved_column(name: str) -> str:
    """The name of the mask column of ``name``: ``"concentration"`` -> ``"concentration_resolved"``."""
    return f"{name}{RESOLVED_SUFFIX}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Table(DataObject):
    """Named columns of equal length N, e.g. a binned power spectrum (k, power, n_modes).

    columns: name -> (N, ...) tensor; floating-point columns must be finite.
    units: name -> unit string; columns named in ``STANDARD_UNITS`` get theirs by default.
    meta: scalar facts (shot noise, estimator settings, ...).
    """

    type_name = "Table"
    required_columns: ClassVar[tuple[str, ...]] = ()

    columns: Mapping[str, torch.Tensor]
    units: Mapping[str, str] = dataclasses.field(default_factory=dict)
    meta: Meta = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = ProblemCollector()
        columns = {str(name): as_tensor(value) for name, value in self.columns.items()}
        units = {name: STANDARD_UNITS.get(name, "") for name in columns} | dict(self.units)
        object.__setattr__(self, "columns", columns)
        object.__setattr__(self, "units", units)
        object.__setattr__(self, "meta", dict(self.meta))
        missing = [c for c in self.required_columns if c not in columns]
        problems.check(not missing, f"missing required column(s) {missing}; got {sorted(columns)}")
        problems.check(
            not set(units) - set(columns), f"units given for unknown column(s) {sorted(set(units) - set(columns))}"
        )
        lengths = {name: (int(t.shape[0]) if t.ndim else -1) for name, t in columns.items()}
        if len(set(lengths.values())) > 1:
            listing = ", ".join(f"{name}: {n}" for name, n in lengths.items())
            problems.add(f"columns must have equal length, got {listing}")
        for name, tensor in columns.items():
            if tensor.ndim == 0:
                problems.add(f"column {name!r} is a scalar; columns need a first dimension")
                continue
            shape = (None, 3) if name in VECTOR_COLUMNS else None
            check_tensor(problems, f"column {name!r}", tensor, kind="any", shape=shape)
        check_one_device(problems, columns)
        _check_masks(problems, columns)
        check_meta(problems, self.meta)
        self._validate_more(problems)
        problems.raise_if_any(context=type(self).__name__)

    def _validate_more(self, problems: ProblemCollector) -> None:
        """Hook for subclasses: extra checks, problems collected into the same error."""

    def __len__(self) -> int:
        return int(next(iter(self.columns.values())).shape[0]) if self.columns else 0

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self.columns:
            raise KeyError(f"{type(self).__name__} has no column {name!r}; it has {sorted(self.columns)}")
        return self.columns[name]

    def __contains__(self, name: object) -> bool:
        return name in self.columns

    def resolved(self, name: str) -> torch.Tensor:
        """(N,) bool: True where column ``name`` holds a value, False where it is missing (holds ``MISSING_FILL``).

        The mask is the column ``<name>_resolved`` when the table has one; without it every row counts as resolved.
        """
        values = self[name]
        mask = self.columns.get(resolved_column(name))
        if mask is None:
            return torch.ones(values.shape[0], dtype=torch.bool, device=values.device)
        return mask

    def select(self, index: torch.Tensor) -> Self:
        """The rows picked by a boolean mask or an index tensor."""
        return dataclasses.replace(self, columns={k: v[index] for k, v in self.columns.items()})

    def with_columns(self, **columns: torch.Tensor) -> Self:
        """A copy with columns added or replaced."""
        return dataclasses.replace(self, columns={**self.columns, **columns})

    def _write(self, group: Any) -> None:
        cols = group.create_group("columns")
        for name, tensor in self.columns.items():
            write_tensor(cols, name, tensor, units=self.units.get(name, ""))
        group.attrs["column_order"] = list(self.columns)
        write_meta(group, self.meta)

    @classmethod
    def _read_columns(
        cls, group: Any, device: torch.device, rows: slice | None = None
    ) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        if "columns" not in group:
            raise KeyError(f"group {group.name}/columns")
        cols = group["columns"]
        order = [str(n) for n in group.attrs.get("column_order", list(cols))]
        columns = {name: read_tensor(cols, name, device, rows) for name in order}
        units = {name: str(cols[name].attrs.get("units", "")) for name in order}
        return columns, units

    @classmethod
    def _read(cls, group: Any, device: torch.device, rows: slice | None = None) -> Self:
        """The table of ``group`` (only ``rows``, when given: a slice read from the file, not the whole table)."""
        columns, units = cls._read_columns(group, device, rows)
        return cls(columns=columns, units=units, meta=read_meta(group))


def _check_masks(problems: ProblemCollector, columns: Mapping[str, torch.Tensor]) -> None:
    """A ``<name>_resolved`` column beside a column ``<name>`` is its missing-value mask: (N,) bool, and ``<name>``
    holds ``MISSING_FILL`` wherever the mask is False."""
    for mask_name, mask in columns.items():
        name = mask_name.removesuffix(RESOLVED_SUFFIX)
        if name == mask_name or name not in columns or mask.ndim == 0:
            continue
        values = columns[name]
        if mask.dtype != torch.bool or mask.ndim != 1:
            problems.add(
                f"column {mask_name!r} (the missing-value mask of {name!r}) must be (N,) bool, got {mask.dtype} of "
                f"shape {tuple(mask.shape)}"
            )
            continue
        if values.ndim == 0 or values.shape[0] != mask.shape[0] or values.device != mask.device:
            continue  # reported by the length and device checks
        missing = values[~mask]
        equal = missing == MISSING_FILL
        filled = equal.flatten(1).all(dim=1) if equal.ndim > 1 else equal
        n_bad = int((~filled).sum())
        if n_bad:
            first = int(torch.nonzero(~mask).reshape(-1)[torch.nonzero(~filled).reshape(-1)[0]])
            problems.add(
                f"column {name!r} holds {n_bad} value(s) other than the fill value {MISSING_FILL:g} where "
                f"{mask_name!r} is False (missing), the first at row {first}"
            )


@dataclasses.dataclass(frozen=True, kw_only=True)
class Catalog(Table):
    """Objects in a periodic ``Box``: a table whose ``pos`` column (N, 3) is wrapped into [0, L)."""

    type_name = "Catalog"
    required_columns: ClassVar[tuple[str, ...]] = ("pos",)

    box: Box

    def __post_init__(self) -> None:
        super().__post_init__()
        pos = self.columns["pos"]
        if pos.is_floating_point():
            object.__setattr__(self, "columns", {**self.columns, "pos": wrap_positions(pos, self.box.length)})

    def _validate_more(self, problems: ProblemCollector) -> None:
        problems.check(isinstance(self.box, Box), f"box must be a Box, got {type(self.box).__name__}")
        pos = self.columns.get("pos")
        if pos is not None and not pos.is_floating_point():
            problems.add(f"column 'pos' must be floating point, got dtype {pos.dtype}")

    def _write(self, group: Any) -> None:
        super()._write(group)
        write_box(group, self.box)

    @classmethod
    def _read(cls, group: Any, device: torch.device, rows: slice | None = None) -> Self:
        columns, units = cls._read_columns(group, device, rows)
        return cls(columns=columns, units=units, meta=read_meta(group), box=read_box(group))


@dataclasses.dataclass(frozen=True, kw_only=True)
class HaloCatalog(Catalog):
    """Haloes: at least ``pos`` (N, 3) Mpc/h and ``mass`` (N,) Msun/h; usually ``vel``, ``n_part``, ..."""

    type_name = "HaloCatalog"
    required_columns: ClassVar[tuple[str, ...]] = ("pos", "mass")

    def _validate_more(self, problems: ProblemCollector) -> None:
        super()._validate_more(problems)
        mass = self.columns.get("mass")
        if mass is not None and mass.ndim == 1 and mass.is_floating_point() and mass.numel():
            finite = mass[torch.isfinite(mass)]
            problems.check(bool((finite > 0).all()), "column 'mass' must be positive Msun/h")


@dataclasses.dataclass(frozen=True, kw_only=True)
class GalaxyCatalog(Catalog):
    """Galaxies: at least ``pos``; usually ``log_mstar``, ``log_ssfr``, ``color_gi``, ``host``, ``is_central``."""

    type_name = "GalaxyCatalog"
