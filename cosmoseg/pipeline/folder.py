"""What a run folder holds, and the files of earlier runs that a new run moves aside.

A run folder holds, for the run its ``manifest.json`` describes: the stages' artifacts ``<id>.h5``, their work
files (figures) under ``<id>/``, the manifest, the lock while a run holds it, and ``stale/`` where earlier runs'
files were moved. Before a run writes anything it moves into ``stale/<run start>/`` every artifact and work folder of
an earlier run that it will not reuse (:func:`move_aside_stale`), with a ``stale.json`` saying when and why and a
copy of the earlier manifest, so that a run that stops half-way never leaves a mixture of its files and an older
run's. :func:`artifact_status` tells whether an artifact is part of the run its folder's manifest describes.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h5py

from cosmoseg.pipeline.lock import LOCK_NAME
from cosmoseg.pipeline.manifest import MANIFEST_NAME

__all__ = ["STALE_DIR", "STALE_NOTE", "artifact_status", "folder_files", "move_aside_stale", "work_files"]

STALE_DIR = "stale"
"""Folder of a run folder where files of earlier runs are moved."""
STALE_NOTE = "stale.json"
"""The note in each ``stale/<time>/`` folder: when, by which run and why its files were moved."""


def _artifact_stage(path: Path) -> str | None:
    """The ``stage_id`` attribute of a cosmoseg artifact written by a run, else None (not ours, unreadable)."""
    try:
        with h5py.File(path, "r") as f:
            value = f.attrs.get("stage_id")
    except OSError:
        return None
    if isinstance(value, bytes):
        value = value.decode()
    return value if isinstance(value, str) else None


def move_aside_stale(
    folder: Path,
    keep: Iterable[str],
    known: Iterable[str],
    previous: Mapping[str, Any],
    started: str,
    recomputed: Iterable[str] = (),
) -> dict[str, Any]:
    """Move the files of earlier runs that this run does not reuse into ``stale/<started>/``.

    keep: stage ids whose artifact (and work folder) this run reuses. known: stage ids of this pipeline and of the
    previous manifest; their ``<id>.h5`` and ``<id>/`` are moved unless kept, as is any other artifact written by a
    cosmoseg run (an ``.h5`` with a ``stage_id`` attribute). recomputed: stage ids whose previous result has the
    fingerprint this run's has (the same params, seed, code and inputs) and that this run computes again: their
    files are deleted rather than kept aside, since the run writes the same again (so re-running a pipeline does
    not pile up copies). Other files are left where they are.
    Returns ``{"folder": "stale/<started>", "files": [...], "replaced": [...]}``.
    """
    keep, known, recomputed = set(keep), set(known), set(recomputed) - set(keep)
    replaced: list[str] = []
    for stage_id in sorted(recomputed):
        for path in (folder / f"{stage_id}.h5", folder / stage_id):
            if path.is_dir():
                shutil.rmtree(path)
                replaced.append(path.name)
            elif path.exists():
                path.unlink()
                replaced.append(path.name)
    moving: list[Path] = []
    for stage_id in sorted(known - keep - recomputed):
        for path in (folder / f"{stage_id}.h5", folder / stage_id):
            if path.exists():
                moving.append(path)
    for path in sorted(folder.glob("*.h5")):
        stage_id = path.stem
        if stage_id not in keep and path not in moving and _artifact_stage(path) is not None:
            moving.append(path)
    if not moving:
        return {"folder": "", "files": [], "replaced": replaced}
    target = folder / STALE_DIR / started.replace(":", "")
    target.mkdir(parents=True, exist_ok=True)
    for path in moving:
        os.replace(path, target / path.name)
    if (folder / MANIFEST_NAME).is_file():
        shutil.copy2(folder / MANIFEST_NAME, target / MANIFEST_NAME)
    relative = [p.name for p in moving]
    note = {
        "moved": started,
        "by": "a cosmoseg run that did not reuse them (other params, seed, code version or inputs, or another "
        "pipeline)",
        "files": relative,
        "previous_run_created": previous.get("created", ""),
        "previous_config_source": previous.get("config_source", ""),
    }
    (target / STALE_NOTE).write_text(json.dumps(note, indent=2) + "\n")
    return {"folder": str(target.relative_to(folder)), "files": relative, "replaced": replaced}


def work_files(folder: Path, stage_id: str) -> list[str]:
    """The files a stage wrote under ``<folder>/<stage id>/`` (figures), relative to the folder, sorted."""
    root = folder / stage_id
    if not root.is_dir():
        return []
    return sorted(str(p.relative_to(folder)) for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


def folder_files(folder: Path, described: Iterable[str]) -> list[str]:
    """Files in ``folder`` that the manifest does not describe otherwise (not artifacts, work files, the manifest,
    the lock or ``stale/``), relative to the folder."""
    described = set(described) | {MANIFEST_NAME, LOCK_NAME}
    out = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if not path.is_file() or relative.parts[0] == STALE_DIR or str(relative) in described:
            continue
        if path.name.startswith(".") and path.name.endswith(".tmp"):
            continue  # a write in progress
        out.append(str(relative))
    return out


def artifact_status(path: Path) -> str | None:
    """Why an artifact is not part of the run its folder describes (a sentence), or None when it is (or when its
    folder has no manifest to tell)."""
    path = Path(path).resolve()
    note = path.parent / STALE_NOTE
    if note.is_file():
        try:
            moved = json.loads(note.read_text())
        except (OSError, ValueError):
            moved = {}
        return (
            f"stale: moved aside on {moved.get('moved', '?')} by a later run in {path.parent.parent.parent} that "
            "did not reuse it; it is not part of that folder's results"
        )
    manifest_path = path.parent / MANIFEST_NAME
    if not manifest_path.is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text())
        stages = manifest.get("stages", {}) if isinstance(manifest, dict) else {}
    except (OSError, ValueError, AttributeError):
        return None
    try:
        with h5py.File(path, "r") as f:
            fingerprint, stage_id = f.attrs.get("fingerprint"), f.attrs.get("stage_id")
    except OSError:
        return None
    if stage_id is None:
        return None
    record = stages.get(str(stage_id)) if isinstance(stages, dict) else None
    if not isinstance(record, dict) or record.get("file") != path.name:
        return f"stale: {MANIFEST_NAME} beside it does not list stage {stage_id!s} (written by another run)"
    if record.get("fingerprint") != fingerprint:
        return f"stale: {MANIFEST_NAME} beside it records another run of stage {stage_id!s} (other fingerprint)"
    return None


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
