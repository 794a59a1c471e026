"""The docs' listings of the command line's output are what the command line prints today.

A listing is a fenced ``text`` block of docs/*.md whose lines hold ``$ cosmoseg ...`` commands, each followed by
its output. Every command of those that are deterministic and fast (`stages list`, `stages show`, `plugins`,
`validate` and `run --dry-run` of the repository's pipelines, with `--set`) is run here and its output compared
with the listing. After a change that alters them, regenerate the listings with

    python tests/test_doc_listings.py --write
"""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CHECKED = (("stages", "list"), ("stages", "show"), ("plugins",), ("validate",), ("run",))
"""Commands whose listings are checked (``run`` only with ``--dry-run``)."""


@dataclass
class Listing:
    path: Path
    line: int  # 0-based index of the "$ cosmoseg" line
    command: list[str]  # the arguments after "cosmoseg"
    end: int  # index after the last output line
    output: list[str]


def listings(path: Path) -> list[Listing]:
    """The ``$ cosmoseg`` commands of the fenced text blocks of one markdown file, with their output lines."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Listing] = []
    inside = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            inside = not inside and line.strip() in ("```text", "```console")
            i += 1
            continue
        if inside and line.startswith("$ "):
            start, text = i, line[2:]
            while text.endswith("\\") and i + 1 < len(lines):
                i += 1
                text = text[:-1] + " " + lines[i].strip()
            text = text.split("  #")[0].strip()
            i += 1
            output_start = i
            while i < len(lines) and not lines[i].startswith("$ ") and not lines[i].startswith("```"):
                i += 1
            end = i
            while end > output_start and not lines[end - 1].strip():
                end -= 1  # blank lines between one command's output and the next command are not output
            words = shlex.split(text)
            if words and words[0] == "cosmoseg":
                found.append(Listing(path, start, words[1:], end, lines[output_start:end]))
            continue
        i += 1
    return found


def checked(listing: Listing) -> bool:
    """Whether a listing's command is one this test runs: deterministic, fast, and on files the repository has."""
    words = listing.command
    if not any(tuple(words[: len(c)]) == c for c in CHECKED):
        return False
    if words[0] == "run" and "--dry-run" not in words:
        return False
    files = [w for w in words if w.endswith(".toml")]
    return all((ROOT / f).is_file() for f in files)


def run_listing(listing: Listing) -> list[str]:
    from cosmoseg.cli import build_app

    result = CliRunner().invoke(build_app(), listing.command)
    return [line.rstrip() for line in result.output.rstrip("\n").splitlines()]


def all_listings() -> list[Listing]:
    return [item for path in sorted(DOCS.rglob("*.md")) for item in listings(path) if checked(item)]


@pytest.fixture(autouse=True)
def _in_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def test_there_are_listings_to_check() -> None:
    names = {" ".join(item.command[:2]) for item in all_listings()}
    assert {"stages list", "stages show", "plugins"} <= names | {"plugins"}
    assert len(all_listings()) >= 6


@pytest.mark.parametrize(
    "listing", all_listings(), ids=lambda item: f"{item.path.name}:{item.line + 1}:{' '.join(item.command)[:60]}"
)
def test_a_listing_is_what_the_command_prints(listing: Listing) -> None:
    expected = [line.rstrip() for line in listing.output]
    assert run_listing(listing) == expected, (
        f"{listing.path.relative_to(ROOT)}:{listing.line + 1}: `cosmoseg {' '.join(listing.command)}` prints "
        "something else now; regenerate with `python tests/test_doc_listings.py --write`"
    )


def test_the_parser_reads_continued_commands_and_outputs(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text("```text\n$ cosmoseg validate a.toml \\\n    --set x=1\nout 1\nout 2\n$ cosmoseg plugins\n```\n")
    found = listings(page)
    assert [item.command for item in found] == [["validate", "a.toml", "--set", "x=1"], ["plugins"]]
    assert found[0].output == ["out 1", "out 2"] and found[1].output == []


def write() -> None:
    """Replace every checked listing's output in the docs with what the command prints now."""
    import os

    os.chdir(ROOT)
    for path in sorted(DOCS.rglob("*.md")):
        items = [x for x in listings(path) if checked(x)]
        if not items:
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        for item in reversed(items):
            output_start = item.end - len(item.output)
            lines[output_start : item.end] = run_listing(item)
        text = "\n".join(lines) + "\n"
        if text != path.read_text(encoding="utf-8"):
            path.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write()
    else:
        sys.exit(re.sub(r"\s+", " ", __doc__ or ""))


# ---- docs/data-model.md: the messages of damaged artifacts ----------------------------------------------------


def damaged_files(folder: Path) -> dict[str, Path]:
    """The damaged copies of a field artifact that docs/data-model.md ("Reading errors") lists, by table row."""
    import h5py
    import torch

    from cosmoseg.data import Field, save_artifact
    from cosmoseg.testing import toy_box

    field = Field.scalar(torch.linspace(0.0, 1.0, 32**3).reshape(32, 32, 32), box=toy_box(), name="delta")
    good = save_artifact(folder / "field.h5", {"field": field})
    data = good.read_bytes()
    files = {"missing": folder / "missing.h5"}
    files["truncated (first half of the bytes)"] = folder / "truncated.h5"
    files["truncated (first half of the bytes)"].write_bytes(data[: len(data) // 2])
    files["not HDF5 at all"] = folder / "text.h5"
    files["not HDF5 at all"].write_text("just text")
    files["HDF5, but not written by cosmoseg"] = folder / "foreign.h5"
    with h5py.File(folder / "foreign.h5", "w") as f:
        f["x"] = [1, 2]
    cases = {
        "HDF5 with another `format`": ("foreign2.h5", lambda f: f.attrs.__setitem__("format", "something-else")),
        "file of another schema version": ("v2.h5", lambda f: f.attrs.__setitem__("schema_version", 2)),
        "object group of another schema version": (
            "gv2.h5",
            lambda f: f["field"].attrs.__setitem__("schema_version", 2),
        ),
        "a dataset missing": ("nods.h5", lambda f: f["field"].__delitem__("values")),
    }
    for row, (name, damage) in cases.items():
        (folder / name).write_bytes(data)
        with h5py.File(folder / name, "a") as f:
            damage(f)
        files[row] = folder / name
    return files


def documented_reading_errors() -> dict[str, str]:
    """Row label -> message of the "Reading errors" table of docs/data-model.md."""
    text = (DOCS / "data-model.md").read_text(encoding="utf-8")
    section = text.split("### Reading errors", 1)[1].split("\n\n`cosmoseg inspect`", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[1].startswith("`") and cells[0] not in ("file", "---"):
            rows[cells[0]] = cells[1].strip("`")
    return rows


def _normalise(message: str) -> str:
    return re.sub(r"\d{4,}", "N", message)  # byte counts of a truncated file depend on the HDF5 build


def test_the_documented_reading_errors_are_what_load_artifact_and_inspect_say(tmp_path: Path) -> None:
    from cosmoseg.data import load_artifact
    from cosmoseg.errors import ArtifactError

    documented = documented_reading_errors()
    files = damaged_files(tmp_path)
    assert set(files) <= set(documented), sorted(set(files) - set(documented))
    for row, path in files.items():
        with pytest.raises(ArtifactError) as info:
            load_artifact(path)
        said = str(info.value).replace(str(tmp_path) + "/", "")
        assert _normalise(said) == _normalise(documented[row]), row
        from cosmoseg.cli import build_app

        shown = CliRunner().invoke(build_app(), ["inspect", str(path)])
        assert shown.exit_code == 1
        assert _normalise(documented[row]) in _normalise(
            " ".join(shown.output.replace(str(tmp_path) + "/", "").split())
        )


def test_the_quickstart_config_shown_on_the_home_page_is_the_file() -> None:
    text = (DOCS / "index.md").read_text(encoding="utf-8")
    shown = text.split("```toml\n", 1)[1].split("```", 1)[0]
    assert shown == (ROOT / "configs" / "quickstart.toml").read_text(encoding="utf-8")
