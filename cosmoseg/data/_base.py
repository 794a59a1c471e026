"""Shared machinery of the data model: tensor checks, device moves, HDF5 helpers, the type registry."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar, Self

import numpy as np
import torch

from cosmoseg.errors import ArtifactError, ProblemCollector

SCHEMA_VERSION = 1
"""Version of the on-disk layout of every data-model object. Bump it when the layout changes."""

DATA_TYPES: dict[str, type[DataObject]] = {}
"""Every data-model class by its ``type_name``; HDF5 groups name theirs in ``attrs["type"]``."""

MetaValue = str | int | float | bool
Meta = Mapping[str, MetaValue]


def as_tensor(value: Any) -> torch.Tensor:
    """A tensor from a tensor, a NumPy array or a nested sequence (no copy where none is needed)."""
    if isinstance(value, torch.Tensor):
        return value
    return torch.as_tensor(np.asarray(value))


def check_tensor(
    problems: ProblemCollector,
    where: str,
    tensor: torch.Tensor,
    *,
    kind: str,
    shape: tuple[int | None, ...] | None = None,
    finite: bool = True,
) -> bool:
    """Record every problem of ``tensor`` (its dtype kind, shape and finiteness) under the name ``where``.

    ``kind`` is ``"float"``, ``"int"``, ``"bool"`` or ``"any"``; ``shape`` may hold ``None`` for free sizes.
    Returns whether its dtype and shape are right (so that further structural checks make sense).
    """
    ok = True
    if kind == "float" and not tensor.is_floating_point():
        problems.add(f"{where} must be a floating-point tensor, got dtype {tensor.dtype}")
        ok = False
    elif kind == "int" and (tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool):
        problems.add(f"{where} must be an integer tensor, got dtype {tensor.dtype}")
        ok = False
    elif kind == "bool" and tensor.dtype != torch.bool:
        problems.add(f"{where} must be a boolean tensor, got dtype {tensor.dtype}")
        ok = False
    if shape is not None:
        same_rank = tensor.ndim == len(shape)
        if not same_rank or any(
            want is not None and got != want for got, want in zip(tensor.shape, shape, strict=True)
        ):
            want_text = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
            problems.add(f"{where} must have shape {want_text}, got {tuple(tensor.shape)}")
            ok = False
    if ok and finite and tensor.is_floating_point() and tensor.numel() and not tensor.is_meta:
        # fast path: a float64 sum is finite exactly when every element is (NaN and inf propagate)
        if bool(torch.isfinite(tensor.sum(dtype=torch.float64))):
            return ok
        bad = ~torch.isfinite(tensor)
        n_bad = int(bad.sum())
        if n_bad:
            first = np.unravel_index(int(bad.flatten().nonzero()[0]), tuple(tensor.shape))
            index = tuple(int(i) for i in first)
            problems.add(f"{where} has {n_bad} non-finite value(s) (NaN or inf), the first at index {index}")
    return ok


def check_one_device(problems: ProblemCollector, tensors: Mapping[str, torch.Tensor]) -> None:
    """Record a problem when the named tensors do not all live on one device."""
    devices = {name: t.device for name, t in tensors.items()}
    if len(set(devices.values())) > 1:
        listing = ", ".join(f"{name} on {dev}" for name, dev in devices.items())
        problems.add(f"all tensors must be on one device, got {listing}")


def check_meta(problems: ProblemCollector, meta: Meta) -> None:
    """Metadata are HDF5 attributes: string keys and scalar values only."""
    for key, value in meta.items():
        if not isinstance(key, str) or not isinstance(value, MetaValue):
            problems.add(f"meta[{key!r}] must be a str, int, float or bool, got {type(value).__name__}")


def wrap_positions(pos: torch.Tensor, length: float) -> torch.Tensor:
    """Positions wrapped into [0, length): remainder, then fold the values rounding up to ``length``."""
    wrapped = torch.remainder(pos, length)
    return torch.where(wrapped >= length, wrapped - length, wrapped)


class DataObject:
    """Base of the frozen data-model dataclasses that hold tensors.

    Subclasses set ``type_name`` and implement ``_write(group)`` and ``_read(group, device)``; the base gives
    ``.to``, ``.device`` and the versioned ``to_hdf5`` / ``from_hdf5``.
    """

    type_name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("type_name"):
            DATA_TYPES[cls.type_name] = cls

    # ---- tensors and devices -------------------------------------------------
    def _tensors(self) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            if isinstance(value, torch.Tensor):
                out[field.name] = value
            elif isinstance(value, Mapping):
                out.update({f"{field.name}[{k!r}]": v for k, v in value.items() if isinstance(v, torch.Tensor)})
        return out

    @property
    def device(self) -> torch.device:
        """The device every tensor of the object lives on (CPU for an object without tensors)."""
        tensors = self._tensors()
        return next(iter(tensors.values())).device if tensors else torch.device("cpu")

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Self:
        """A copy on ``device``; ``dtype``, when given, applies to floating-point tensors only."""

        def move(value: Any) -> Any:
            if isinstance(value, torch.Tensor):
                cast = dtype if (dtype is not None and value.is_floating_point()) else None
                return value.to(device=device, dtype=cast)
            if isinstance(value, Mapping):
                return {k: move(v) for k, v in value.items()}
            return value

        changes = {f.name: move(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    # ---- HDF5 -----------------------------------------------------------------
    def to_hdf5(self, group: Any) -> None:
        """Write the object into an (empty) h5py group, with its type and schema version as attributes."""
        group.attrs["type"] = self.type_name
        group.attrs["schema_version"] = SCHEMA_VERSION
        self._write(group)

    @classmethod
    def from_hdf5(cls, group: Any, device: torch.device | str = "cpu") -> Self:
        """Read an object written by ``to_hdf5`` from an h5py group, onto ``device``."""
        where = getattr(group, "name", "?")
        found = read_attr(group, "type", where)
        if found != cls.type_name:
            raise ArtifactError(f"group {where} holds a {found!r}, not a {cls.type_name!r}")
        check_schema_version(group, where)
        try:
            return cls._read(group, torch.device(device))
        except KeyError as err:
            raise ArtifactError(f"group {where} lacks {err.args[0]!s}: the file is incomplete or foreign") from err

    def _write(self, group: Any) -> None:
        raise NotImplementedError

    @classmethod
    def _read(cls, group: Any, device: torch.device) -> Self:
        raise NotImplementedError


def read_attr(group: Any, name: str, where: str) -> Any:
    """An attribute of an h5py object, as a plain Python value, or an ArtifactError naming it."""
    if name not in group.attrs:
        raise ArtifactError(f"{where} has no attribute {name!r}: not a cosmoseg object, or an incomplete one")
    value = group.attrs[name]
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def check_schema_version(group: Any, where: str) -> None:
    version = read_attr(group, "schema_version", where)
    if version != SCHEMA_VERSION:
        raise ArtifactError(
            f"{where} was written with schema version {version}; this cosmoseg reads version {SCHEMA_VERSION}"
        )


def write_tensor(group: Any, name: str, tensor: torch.Tensor, *, units: str | None = None) -> None:
    """Write a tensor as a dataset: chunked and gzip-compressed when it is larger than a few kB."""
    array = tensor.detach().cpu()
    if array.dtype == torch.bfloat16:
        array = array.float()
    data = array.numpy()
    options: dict[str, Any] = {}
    if data.size * data.itemsize > 16384:
        options = {"chunks": True, "compression": "gzip", "compression_opts": 4, "shuffle": True}
    dataset = group.create_dataset(name, data=data, **options)
    if units is not None:
        dataset.attrs["units"] = units


def read_tensor(group: Any, name: str, device: torch.device, rows: slice | None = None) -> torch.Tensor:
    """A dataset of ``group`` (only its ``rows`` along the first axis, when given) as a tensor on ``device``; a
    missing one raises KeyError with its path."""
    if name not in group:
        raise KeyError(f"dataset {group.name.rstrip('/')}/{name}")
    dataset = group[name]
    if not hasattr(dataset, "dtype") or dataset.dtype.kind not in "biuf":
        kind = getattr(dataset, "dtype", "a group")
        raise ArtifactError(f"dataset {group.name.rstrip('/')}/{name} holds {kind}, not numbers or booleans")
    return torch.from_numpy(np.asarray(dataset[()] if rows is None else dataset[rows])).to(device)


def write_meta(group: Any, meta: Meta) -> None:
    """Metadata as attributes of a ``meta`` sub-group, in sorted key order: HDF5 lists attributes by name, so an
    object read back and written again gives the same bytes as the first write (checksums compare runs)."""
    sub = group.create_group("meta")
    for key in sorted(meta):
        sub.attrs[key] = meta[key]


def read_meta(group: Any) -> dict[str, MetaValue]:
    if "meta" not in group:
        return {}
    return {k: read_attr(group["meta"], k, group.name) for k in group["meta"].attrs}
