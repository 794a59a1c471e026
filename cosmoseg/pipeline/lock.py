"""The run folder belongs to one run at a time: a lock file held with ``flock`` for the whole run.

``<output>/.cosmoseg.lock`` names its holder (pid, host, start time, command). The kernel releases a ``flock`` when
its process ends, however it ends (``kill -9`` included), so a lock file left by a dead process is recognised and
taken over; a second run while the first is alive is refused with the holder named. After taking the lock, a run
removes the temporary files that writers killed mid-write left in the folder (:func:`remove_leftovers`): with the
lock held, no other cosmoseg process can be writing them.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from cosmoseg.errors import ArtifactError, RunLockedError

__all__ = ["LOCK_NAME", "hold_run_folder", "remove_leftovers"]

LOCK_NAME = ".cosmoseg.lock"
"""The lock file's name inside a run folder."""
LEFTOVER_SUFFIX = ".tmp"
"""Temporary files of atomic writes end in this (``.<name>.<random>.h5.tmp``, ``.manifest.json.<random>.json.tmp``)."""


def _holder(path: Path) -> dict[str, object]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


@contextlib.contextmanager
def hold_run_folder(folder: Path) -> Iterator[dict[str, object]]:
    """Hold the lock of ``folder`` (made if missing) for the ``with`` block; yields what the previous lock file
    said when it was taken over from a dead process (else an empty dict).

    Raises RunLockedError naming the holder when another live process holds it, and ArtifactError when the folder
    cannot be made or written (one line naming the path and the reason).
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError as err:
        raise ArtifactError(f"{folder}: the output folder is a file") from err
    except OSError as err:
        raise ArtifactError(f"{folder}: cannot make the output folder: {err.strerror or err}") from err
    path = folder / LOCK_NAME
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise ArtifactError(f"{folder}: cannot write in the output folder: {err.strerror or err}") from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = _holder(path)
            who = ", ".join(f"{k} {holder[k]}" for k in ("pid", "host", "started", "command") if k in holder)
            raise RunLockedError(
                f"{folder} is in use by another cosmoseg run ({who or 'holder unknown'}); wait for it to finish, "
                "or write to another --output"
            ) from None
        try:  # the file may have been unlinked by its last holder between our open and our flock: start again
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    previous = _holder(path)
    stale = previous if previous and not _alive(previous.get("pid")) else {}
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv)[:500],
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
    try:
        yield stale
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)


def remove_leftovers(folder: Path) -> list[Path]:
    """Delete the temporary files of interrupted atomic writes (hidden ``.*.tmp`` files) in ``folder`` and its
    sub-folders; call it only while holding the folder's lock. Returns what was removed."""
    removed = []
    for path in sorted(folder.rglob(f".*{LEFTOVER_SUFFIX}")):
        if path.is_file():
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    return removed
