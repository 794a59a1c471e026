"""Artifact files: several named data-model objects in one HDF5 file, written atomically."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import torch

from cosmoseg._version import __version__
from cosmoseg.data._base import DATA_TYPES, SCHEMA_VERSION, DataObject, check_schema_version, read_attr
from cosmoseg.data.table import Table
from cosmoseg.errors import ArtifactError

FILE_FORMAT = "cosmoseg-artifact"


def atomic_write(path: str | os.PathLike[str], write: Any, *, suffix: str = "") -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it onto ``path``.

    A crash or an error in ``write`` leaves any existing ``path`` untouched and no temporary behind.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix + ".tmp", dir=target.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        # mkstemp creates the file 0600; give it the mode a plain open() would (0666 less the umask)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def save_artifact(
    path: str | os.PathLike[str], objects: Mapping[str, DataObject], *, attrs: Mapping[str, Any] | None = None
) -> Path:
    """Write named objects to ``path`` (one group each), atomically; ``attrs`` go on the file."""
    for name, obj in objects.items():
        if not isinstance(obj, DataObject):
            raise TypeError(f"object {name!r} is a {type(obj).__name__}, not a cosmoseg data-model object")

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FILE_FORMAT
            f.attrs["schema_version"] = SCHEMA_VERSION
            f.attrs["cosmoseg_version"] = __version__
            for key, value in (attrs or {}).items():
                f.attrs[key] = value
            for name, obj in objects.items():
                obj.to_hdf5(f.create_group(name))

    return atomic_write(path, write, suffix=".h5")


def open_artifact(path: str | os.PathLike[str]) -> h5py.File:
    """Open an artifact for reading, checking that it is a whole cosmoseg file of this schema version."""
    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"{path}: no such file")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise ArtifactError(f"{path}: not a readable HDF5 file (truncated or corrupt?): {err}") from err
    try:
        if read_attr(f, "format", str(path)) != FILE_FORMAT:
            raise ArtifactError(f"{path}: not a cosmoseg artifact (format {f.attrs['format']!r})")
        version = read_attr(f, "schema_version", str(path))
        if version != SCHEMA_VERSION:
            raise ArtifactError(
                f"{path}: written with schema version {version}; this cosmoseg reads version {SCHEMA_VERSION}"
            )
    except BaseException:
        f.close()
        raise
    return f


def read_object(group: Any, device: torch.device | str = "cpu") -> DataObject:
    """Read whatever data-model object an h5py group holds, by its ``type`` attribute."""
    type_name = read_attr(group, "type", group.name)
    cls = DATA_TYPES.get(type_name)
    if cls is None:
        raise ArtifactError(f"group {group.name} holds an unknown type {type_name!r}")
    return cls.from_hdf5(group, device=device)


def load_artifact(path: str | os.PathLike[str], device: torch.device | str = "cpu") -> dict[str, DataObject]:
    """Every named object of an artifact file, on ``device``."""
    with open_artifact(path) as f:
        try:
            return {name: read_object(f[name], device) for name in f}
        except ArtifactError as err:
            raise ArtifactError([f"{path}: {p}" for p in err.problems]) from err
        except (OSError, RuntimeError, ValueError) as err:
            raise ArtifactError(f"{path}: a dataset cannot be read (truncated or corrupt?): {err}") from err


def _table_group(f: h5py.File, path: str | os.PathLike[str], name: str) -> tuple[Any, type[Table]]:
    """The group of the table ``name`` of an open artifact and its class; ArtifactError when it is not a table."""
    if name not in f:
        raise ArtifactError(f"{path} has no object {name!r} (it holds {sorted(f)})")
    group = f[name]
    cls = DATA_TYPES.get(read_attr(group, "type", group.name))
    if cls is None or not issubclass(cls, Table):
        raise ArtifactError(f"{path}: {name!r} is not a table or catalog")
    check_schema_version(group, group.name)
    return group, cls


def count_rows(path: str | os.PathLike[str], name: str) -> int:
    """The number of rows of the table (or catalog) ``name`` of an artifact, read from its first column's shape."""
    with open_artifact(path) as f:
        group, _ = _table_group(f, path, name)
        columns = group.get("columns", {})
        order = [str(n) for n in group.attrs.get("column_order", list(columns))]
        return int(columns[order[0]].shape[0]) if order else 0


def load_rows(
    path: str | os.PathLike[str], name: str, start: int, stop: int, device: torch.device | str = "cpu"
) -> Table:
    """Rows ``start:stop`` of the table (or catalog: a ``HaloCatalog`` stays one) ``name`` of an artifact, read
    from the file without the other rows: a chunk of a catalog too large to load whole."""
    with open_artifact(path) as f:
        group, cls = _table_group(f, path, name)
        try:
            return cls._read(group, torch.device(device), rows=slice(start, stop))
        except KeyError as err:
            raise ArtifactError(f"{path}: {name!r} lacks {err.args[0]!s}: the file is incomplete or foreign") from err
