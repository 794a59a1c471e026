"""The run manifest: what ran, with which config, versions, seeds, timings and output hashes."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
from pathlib import Path
from typing import Any

from cosmoseg.data import atomic_write

MANIFEST_NAME = "manifest.json"
TRACKED_PACKAGES = ("cosmoseg", "torch", "numpy", "scipy", "h5py", "networkx", "pluggy", "typer", "camb")


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def read_manifest(output_dir: Path) -> dict[str, Any]:
    """The manifest of a previous run in ``output_dir`` ({} when there is none or it is unreadable)."""
    return check_manifest(output_dir)[0]


def check_manifest(output_dir: Path) -> tuple[dict[str, Any], str]:
    """(manifest, problem): the previous run's manifest, or {} and a sentence saying why it cannot be used (empty
    when there is simply none). A manifest must be a JSON object whose ``stages`` is an object of objects."""
    path = output_dir / MANIFEST_NAME
    if not path.exists():
        return {}, ""
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return {}, f"{path} cannot be read as JSON ({err})"
    if not isinstance(value, dict):
        return {}, f"{path} is a JSON {type(value).__name__}, not a cosmoseg manifest (an object)"
    stages = value.get("stages", {})
    if not isinstance(stages, dict) or not all(isinstance(v, dict) for v in stages.values()):
        return {}, f"{path}: 'stages' must be an object of stage records"
    return value, ""


def write_manifest(output_dir: Path, manifest: dict[str, Any]) -> Path:
    text = json.dumps(manifest, indent=2, sort_keys=False, default=str)
    return atomic_write(output_dir / MANIFEST_NAME, lambda tmp: tmp.write_text(text + "\n"), suffix=".json")
