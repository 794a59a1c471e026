"""The files a pipeline reads: ``[run] files``, input-path params, and the signature ``--resume`` compares.

A stage param of type :data:`~cosmoseg.pipeline.params.InputPath` names a file or folder the stage reads. Before
anything runs, :func:`resolve_input_path` turns its value into an absolute path (``"$name"`` looks ``name`` up in
``[run] files``; a relative path is relative to the pipeline file's folder) and checks that something is there.
:func:`files_signature` summarises the files behind a path (names, sizes, modification times and a sample of their
bytes) so that the runner re-runs a stage whose input files changed.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path

__all__ = ["FILE_NAME", "files_behind", "files_signature", "resolve_input_path"]

FILE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
"""Names of ``[run] files`` entries (``$name`` refers to one)."""

_CHUNK = re.compile(r"^(?P<stem>.+)\.(?P<index>\d+)\.(?P<ext>[A-Za-z0-9]+)$")
_SAMPLE_BYTES = 1 << 20
"""Bytes read from the start and from the end of each file for the signature."""


def resolve_input_path(value: str, *, base_dir: Path, files: Mapping[str, str], where: str) -> tuple[str, list[str]]:
    """The absolute path an input-path param names, and the problems found (empty when there are none).

    value: ``""`` (no file: returned as is), ``"$name"`` (the path of ``[run] files`` entry ``name``), or a path;
        relative paths are taken from ``base_dir`` (the pipeline file's folder).
    where: names the param in messages (``stage 'snap' (io.snapshot): param 'path'``).
    Something must be there: a file, a folder, or a stem whose chunks ``stem.N.ext`` / ``stem.ext`` exist.
    """
    if not value:
        return "", []
    text = value
    if value.startswith("$"):
        name = value[1:]
        if name not in files:
            known = ", ".join(sorted(files)) or "none"
            return "", [
                f"{where} = {value!r}: [run] files has no entry {name!r} (its entries: {known}); add it, or set it "
                f"with --set run.files.{name}=PATH"
            ]
        text = files[name]
        if not text:
            return "", [
                f"{where} = {value!r}: [run] files.{name} is empty; give the path with --set run.files.{name}=PATH"
            ]
    path = Path(os.path.expanduser(text))
    if not path.is_absolute():
        path = base_dir / path
    path = Path(os.path.abspath(path))
    if not files_behind(path):
        shown = f" ({value} = {text})" if value != text else ""
        return str(path), [f"{where}{shown}: {path}: no such file or folder"]
    return str(path), []


def files_behind(path: Path) -> list[Path]:
    """The regular files a reader of ``path`` may open, sorted: the file itself with its chunk siblings
    (``stem.N.ext``), the files of a folder, or the files ``stem.*`` of a stem. Empty when there are none."""
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    parent = path.parent
    if path.is_file():
        match = _CHUNK.match(path.name)
        if not match:
            return [path]
        pattern = re.compile(rf"^{re.escape(match['stem'])}\.\d+\.{re.escape(match['ext'])}$")
        return sorted(p for p in parent.iterdir() if pattern.match(p.name) and p.is_file())
    if not parent.is_dir():
        return []
    return sorted(p for p in parent.iterdir() if p.name.startswith(f"{path.name}.") and p.is_file())


def files_signature(path: str | os.PathLike[str]) -> str:
    """A hash of the files behind ``path`` (:func:`files_behind`): their names, sizes, modification times and the
    first and last MiB of each. Any file added, removed, rewritten or touched changes it; "" for no path."""
    if not str(path):
        return ""
    digest = hashlib.sha256()
    for file in files_behind(Path(path)):
        stat = file.stat()
        digest.update(f"{file.name}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
        with open(file, "rb") as handle:
            digest.update(handle.read(_SAMPLE_BYTES))
            if stat.st_size > 2 * _SAMPLE_BYTES:
                handle.seek(-_SAMPLE_BYTES, os.SEEK_END)
                digest.update(handle.read(_SAMPLE_BYTES))
    return digest.hexdigest()
