"""Plain grids as fields: NumPy ``.npy`` cubes and datasets of plain HDF5 files (δ, φ, ...)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from cosmoseg.data import Box, Cosmology, Field
from cosmoseg.errors import ArtifactError

__all__ = ["BOX_SIZE_ATTRIBUTES", "REDSHIFT_ATTRIBUTES", "read_cube", "read_hdf5_cube", "read_npy_cube"]

BOX_SIZE_ATTRIBUTES: tuple[str, ...] = ("BoxSize", "box_size", "length")
"""Attributes (of the dataset, else of the file) that ``read_hdf5_cube`` takes as the box side in Mpc/h."""
REDSHIFT_ATTRIBUTES: tuple[str, ...] = ("Redshift", "redshift")
"""Attributes (of the dataset, else of the file) that ``read_hdf5_cube`` takes as the redshift."""


def read_npy_cube(
    path: str | os.PathLike[str],
    *,
    length: float,
    name: str = "delta",
    units: str = "",
    redshift: float = 0.0,
    cosmology: Cosmology | None = None,
) -> Field:
    """A ``.npy`` file holding an (n, n, n) or (C, n, n, n) grid, as a Field in a box of side ``length`` Mpc/h.

    name: the channel name (C names separated by commas for a multi-channel cube).
    """
    path = Path(path)
    try:
        values = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ArtifactError(f"{path}: not a readable .npy array: {err}") from err
    if values.ndim == 3:
        values = values[None]
    names = tuple(n.strip() for n in name.split(","))
    if values.ndim != 4:
        raise ArtifactError(f"{path}: expected an (n, n, n) or (C, n, n, n) array, got shape {values.shape}")
    box = Box(length=length, redshift=redshift, cosmology=cosmology or Cosmology())
    return Field(values=values.astype(np.float32, copy=False), box=box, channels=names, units=(units,) * len(names))


def _attribute(dataset: h5py.Dataset, names: Sequence[str]) -> tuple[float, str] | None:
    """The first of the attributes ``names`` on the dataset, else on the file root, as (value, where)."""
    for holder in (dataset, dataset.file):
        for name in names:
            if name in holder.attrs:
                value = holder.attrs[name]
                where = f"{holder.name} attribute {name}"
                try:
                    return float(np.asarray(value).reshape(())), where
                except (TypeError, ValueError) as err:
                    raise ArtifactError(f"{dataset.file.filename}: {where} is not a number: {value!r}") from err
    return None


def _plain_str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_hdf5_cube(
    path: str | os.PathLike[str],
    dataset: str | Sequence[str] | None = None,
    *,
    length: float | None = None,
    name: str | None = None,
    units: str | None = None,
    redshift: float | None = None,
    cosmology: Cosmology | None = None,
) -> Field:
    """Grids stored in a plain HDF5 file, as a Field: one (n, n, n) or (C, n, n, n) dataset, or several (n, n, n)
    datasets stacked as channels (e.g. ``dataset=("delta", "phi")``).

    dataset: the dataset path(s) in the file; None: the file's only dataset.
    length: the box side in Mpc/h. None: the ``BoxSize`` (or ``box_size``, ``length``) attribute of the
        (first) dataset, else of the file; when both an argument and an attribute are given they must agree.
    name: channel name(s), commas between several; default: the datasets' base names (for one
        (C, n, n, n) dataset, its ``channels`` attribute when it has one).
    units: one unit string for every channel; default: the datasets' ``units`` attributes, else "".
    redshift: the redshift of the box; default: a ``Redshift`` / ``redshift`` attribute, else 0.
    cosmology: the box's cosmology (default Planck 2018).

    Values are read as float32. Raises ArtifactError naming the file and dataset: unreadable file, missing
    dataset, a file with several datasets and no ``dataset`` argument, a grid that is not cubic, datasets of
    different shapes, no box size, or a box size that contradicts the ``length`` argument.
    """
    path = Path(path)
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise ArtifactError(f"{path}: not a readable HDF5 file ({err})") from err
    with handle:
        if dataset is None:
            found: list[str] = []
            handle.visititems(lambda key, obj: found.append(key) if isinstance(obj, h5py.Dataset) else None)
            if len(found) != 1:
                listing = ", ".join(found) or "none"
                raise ArtifactError(f"{path}: pass dataset=; the file holds {len(found)} datasets ({listing})")
            names_in_file = found
        else:
            names_in_file = [dataset] if isinstance(dataset, str) else list(dataset)
            if not names_in_file:
                raise ArtifactError(f"{path}: dataset= names no dataset")
        datasets: list[h5py.Dataset] = []
        for key in names_in_file:
            obj = handle.get(key)
            if not isinstance(obj, h5py.Dataset):
                what = "is not a dataset" if obj is not None else "is missing"
                raise ArtifactError(f"{path}: dataset {key!r} {what}")
            datasets.append(obj)
        arrays = []
        for obj in datasets:
            where = f"{path}: dataset {obj.name}"
            if not np.issubdtype(obj.dtype, np.number) or np.issubdtype(obj.dtype, np.complexfloating):
                raise ArtifactError(f"{where} holds {obj.dtype}, not real numbers")
            shape = obj.shape
            grid = shape[-3:] if len(shape) in (3, 4) else ()
            if not grid or len(set(grid)) != 1 or (len(datasets) > 1 and len(shape) != 3):
                want = "(n, n, n)" if len(datasets) > 1 else "(n, n, n) or (C, n, n, n)"
                raise ArtifactError(f"{where} has shape {shape}; expected a cubic grid {want}")
            arrays.append(np.asarray(obj[()], dtype=np.float32))
        shapes = {a.shape for a in arrays}
        if len(shapes) > 1:
            raise ArtifactError(f"{path}: the datasets {names_in_file} have different shapes {sorted(shapes)}")
        values = np.stack(arrays) if len(arrays) > 1 else arrays[0]
        if values.ndim == 3:
            values = values[None]
        first = datasets[0]
        side = _attribute(first, BOX_SIZE_ATTRIBUTES)
        if length is None:
            if side is None:
                raise ArtifactError(
                    f"{path}: no box size: pass length= (Mpc/h), or store a BoxSize attribute on {first.name} or on /"
                )
            length = side[0]
        elif side is not None and not math.isclose(side[0], float(length), rel_tol=1e-6):
            raise ArtifactError(
                f"{path}: length={length} Mpc/h contradicts the attribute {side[1]} = {side[0]:g}; "
                "pass the matching length, or none"
            )
        if redshift is None:
            found_z = _attribute(first, REDSHIFT_ATTRIBUTES)
            redshift = found_z[0] if found_z is not None else 0.0
        if name is not None:
            channels = tuple(n.strip() for n in name.split(","))
        elif len(datasets) == 1 and "channels" in first.attrs:
            channels = tuple(_plain_str(c) for c in np.atleast_1d(first.attrs["channels"]))
            if len(channels) != values.shape[0]:
                raise ArtifactError(
                    f"{path}: dataset {first.name} has {values.shape[0]} channel(s) but its channels attribute "
                    f"names {len(channels)}: {channels}"
                )
        elif len(datasets) == 1 and values.shape[0] > 1:
            channels = tuple(f"{first.name.rsplit('/', 1)[-1]}_{i}" for i in range(values.shape[0]))
        else:
            channels = tuple(obj.name.rsplit("/", 1)[-1] for obj in datasets)
        if units is not None:
            unit_strings = (units,) * len(channels)
        elif len(datasets) > 1:
            unit_strings = tuple(_plain_str(obj.attrs.get("units", "")) for obj in datasets)
        else:
            stored = [_plain_str(u) for u in np.atleast_1d(first.attrs.get("units", ""))]
            unit_strings = tuple(stored) if len(stored) == len(channels) else (stored[0],) * len(channels)
    box = Box(length=length, redshift=redshift, cosmology=cosmology or Cosmology())
    meta = {"source": "hdf5-cube", "path": str(path), "datasets": ",".join(names_in_file)}
    return Field(values=values, box=box, channels=channels, units=unit_strings, meta=meta)


def read_cube(
    path: str | os.PathLike[str],
    *,
    dataset: str = "",
    length: float = 0.0,
    name: str = "",
    units: str = "",
    redshift: float = -1.0,
    cosmology: Cosmology | None = None,
    device: torch.device | str = "cpu",
) -> Field:
    """A grid from a ``.npy`` cube (:func:`read_npy_cube`) or a plain HDF5 file (:func:`read_hdf5_cube`), with the
    ``io.field`` stage's conventions: dataset: HDF5 dataset name(s), commas between several stacked as channels
    ("" = the file's only one); length: box side, Mpc/h (0 = the file's attribute; a .npy cube needs it); name:
    channel name(s) ("" = the datasets' names; .npy: "delta"); units: one unit for every channel; redshift: of the
    box (-1 = the file's attribute, else 0); device: of the field's values."""
    if str(path).endswith(".npy"):
        field = read_npy_cube(
            path, length=length, name=name or "delta", units=units, redshift=max(redshift, 0.0), cosmology=cosmology
        )
        return field.to(device)
    datasets = [d.strip() for d in dataset.split(",") if d.strip()]
    field = read_hdf5_cube(
        path,
        datasets if len(datasets) > 1 else (datasets[0] if datasets else None),
        length=length or None,
        name=name or None,
        units=units or None,
        redshift=None if redshift < 0 else redshift,
        cosmology=cosmology,
    )
    return field.to(device)
