"""The architecture of docs/concepts.md as a test: the floors of the package, imports only going down.

Floors, bottom up (a module may import its own floor and the floors below; the four science packages of the top
science floor import none of each other):

0. ``errors``, ``hookspecs``, ``_version``
1. ``data``, ``mesh``
2. ``pipeline``, ``plugins``, ``io``, ``nn``
3. ``sim``, ``measure``
4. ``protohalo``, ``galaxies``, ``paint``, ``infer``
5. ``cli``, ``testing`` and the package root

Besides: production code never imports ``cosmoseg.testing`` (helpers for plugin authors' tests), and typer (the
command line) is imported only by ``cosmoseg/cli`` and by modules whose name ends in ``commands.py``. Imports under
``if TYPE_CHECKING:`` are annotations, not dependencies, and are not counted.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "cosmoseg"

FLOORS: dict[str, int] = {
    "errors": 0,
    "hookspecs": 0,
    "_version": 0,
    "data": 1,
    "mesh": 1,
    "pipeline": 2,
    "plugins": 2,
    "io": 2,
    "nn": 2,
    "sim": 3,
    "measure": 3,
    "protohalo": 4,
    "galaxies": 4,
    "paint": 4,
    "infer": 4,
    "cli": 5,
    "testing": 5,
    "__init__": 5,
}
SCIENCE_FLOOR = 4
"""The floor whose packages must not import each other."""


def _runtime_imports(tree: ast.Module) -> list[tuple[int, str]]:
    """(line, module) of every import outside ``if TYPE_CHECKING:`` blocks, functions included."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for child in ast.walk(node) if child is not node)
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module == "cosmoseg" and node.level == 0:
            # ``from cosmoseg import hookspecs`` imports the submodule; ``from cosmoseg import Stage`` the root.
            found += [
                (node.lineno, f"cosmoseg.{alias.name}" if alias.name in FLOORS else "cosmoseg") for alias in node.names
            ]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _part(module: str) -> str | None:
    """The top-level part of a ``cosmoseg`` module name (``cosmoseg.sim.fof`` -> ``sim``), or None."""
    parts = module.split(".")
    if parts[0] != "cosmoseg":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def layering_problems(root: Path) -> list[str]:
    """Every import of the package under ``root`` that breaks the floors, the testing or the typer rule."""
    problems = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        here = (
            relative.parts[0].removesuffix(".py")
            if len(relative.parts) > 1 or relative.stem != "__init__"
            else "__init__"
        )
        floor = FLOORS.get(here)
        if floor is None:
            problems.append(f"{relative}: package {here!r} has no floor; add it to the floors of docs/concepts.md")
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for line, module in _runtime_imports(tree):
            where = f"cosmoseg/{relative}:{line}"
            if module.split(".")[0] == "typer" and here != "cli" and not path.name.endswith("commands.py"):
                problems.append(f"{where} imports typer outside the command line (cli/ or a *commands.py module)")
            target = _part(module)
            if target is None or target == here:
                continue
            if target == "testing" and here != "testing":
                problems.append(f"{where}: production code imports {module} (helpers for tests)")
                continue
            target_floor = FLOORS.get(target)
            if target_floor is None:
                continue
            if target_floor > floor:
                problems.append(f"{where}: {here} (floor {floor}) imports {module} (floor {target_floor}): upward")
            elif target_floor == floor == SCIENCE_FLOOR:
                problems.append(f"{where}: science package {here} imports science package {module}")
    return problems


def test_the_package_keeps_its_floors() -> None:
    assert layering_problems(ROOT) == []


def _write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize(
    ("relative", "text", "expected"),
    [
        ("data/model.py", "from cosmoseg.sim.fof import find_halos\n", "data (floor 1) imports cosmoseg.sim.fof"),
        ("pipeline/run.py", "def f():\n    import cosmoseg.galaxies\n", "imports cosmoseg.galaxies (floor 4): upward"),
        ("paint/x.py", "from cosmoseg.protohalo import panoptic\n", "science package paint imports science package"),
        ("sim/x.py", "from cosmoseg.testing import toy_box\n", "production code imports cosmoseg.testing"),
        ("measure/x.py", "import typer\n", "imports typer outside the command line"),
        ("newpkg/x.py", "x = 1\n", "package 'newpkg' has no floor"),
        ("io/z.py", "from cosmoseg import Stage\n", "io (floor 2) imports cosmoseg (floor 5): upward"),
    ],
)
def test_a_synthetic_package_with_a_broken_rule_fails(tmp_path: Path, relative: str, text: str, expected: str) -> None:
    root = tmp_path / "cosmoseg"
    _write(root, "__init__.py", "")
    _write(root, "sim/commands.py", "import typer\n")  # allowed: a commands module
    _write(root, "galaxies/stages.py", "from cosmoseg.measure import power\nfrom cosmoseg.sim import fof\n")  # down
    _write(root, "pipeline/z.py", "from cosmoseg import errors, hookspecs\n")  # submodules, not the root
    _write(root, "io/y.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from cosmoseg.sim import fof\n")
    assert layering_problems(root) == []
    _write(root, relative, text)
    problems = layering_problems(root)
    assert len(problems) == 1 and expected in problems[0], problems
