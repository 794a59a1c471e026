"""The docs keep up with the code: every hook, every built-in stage and every page is documented and reachable.

Plain text checks of docs/ and mkdocs.yml; mkdocs itself is not needed (build the site with
``mkdocs build --strict``).
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from cosmoseg import hookspecs
from cosmoseg.plugins import build_registry

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PLUGIN_GUIDE = DOCS / "plugins.md"
HOOK_REFERENCE = "Hook reference"
MIN_PROSE_LINES = 3
"""A hook's section needs at least this many lines of text outside code blocks."""


# ---- reading markdown ------------------------------------------------------------------------------


@dataclasses.dataclass
class Section:
    level: int
    title: str
    prose: list[str]  # non-blank lines outside fenced code blocks
    code: list[str]  # lines inside fenced code blocks


FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")


def sections(markdown: str) -> list[Section]:
    """The ATX-headed sections of a markdown text; ``#`` lines inside fenced code are not headings."""
    found: list[Section] = []
    fence: str | None = None
    for line in markdown.splitlines():
        match = FENCE.match(line)
        if match and (fence is None or (match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence))):
            fence = match.group(1) if fence is None else None
            continue
        if fence is not None:
            if found:
                found[-1].code.append(line)
            continue
        heading = HEADING.match(line)
        if heading:
            found.append(Section(len(heading.group(1)), heading.group(2).replace("`", "").strip(), [], []))
        elif found and line.strip():
            found[-1].prose.append(line)
    return found


def hook_names() -> list[str]:
    """The hook specifications: the ``cosmoseg_*`` functions of cosmoseg.hookspecs."""
    return sorted(
        name for name, obj in vars(hookspecs).items() if name.startswith("cosmoseg_") and inspect.isfunction(obj)
    )


def hook_problem(markdown: str, hook: str) -> str | None:
    """Why ``markdown`` fails to document ``hook`` in its hook reference, or None when it does."""
    parent = ""
    for section in sections(markdown):
        if section.level <= 2:
            parent = section.title
        if section.level == 3 and re.search(rf"\b{re.escape(hook)}\b", section.title):
            if parent != HOOK_REFERENCE:
                return f"the heading '### {section.title}' is under '{parent}', not under '## {HOOK_REFERENCE}'"
            if len(section.prose) < MIN_PROSE_LINES:
                return (
                    f"the section '### {section.title}' has {len(section.prose)} line(s) of text; "
                    f"document when the hook is called, what to do in it, and give an example"
                )
            return None
    return f"no '### {hook}' heading (the hook is undocumented)"


# ---- 1. every hook has a section in the plugin guide's hook reference ----------------------------------


def test_there_are_hooks_to_document() -> None:
    assert "cosmoseg_register_stages" in hook_names()


@pytest.mark.parametrize("hook", hook_names())
def test_every_hook_is_documented_in_the_plugin_guide(hook: str) -> None:
    problem = hook_problem(PLUGIN_GUIDE.read_text(encoding="utf-8"), hook)
    assert problem is None, f"docs/plugins.md: {problem}"


def test_the_hook_reference_names_no_hook_that_does_not_exist() -> None:
    hooks = set(hook_names())
    parent, stale = "", []
    for section in sections(PLUGIN_GUIDE.read_text(encoding="utf-8")):
        if section.level <= 2:
            parent = section.title
        elif section.level == 3 and parent == HOOK_REFERENCE:
            names = set(re.findall(r"\bcosmoseg_\w+", section.title))
            if not names or not names <= hooks:
                stale.append(section.title)
    assert not stale, f"docs/plugins.md documents hooks that cosmoseg.hookspecs lacks: {stale}"


def test_the_hook_check_fails_for_a_missing_or_empty_section() -> None:
    """The check above must catch an undocumented hook, a stub, and a heading in the wrong place."""
    good = (
        "# Guide\n\n## Hook reference\n\n### `cosmoseg_x`\n\n"
        "Called when.\nDo this.\nLike so:\n\n```python\n# a comment\n```\n"
    )
    assert hook_problem(good, "cosmoseg_x") is None
    assert "undocumented" in (hook_problem(good, "cosmoseg_y") or "")
    stub = (
        "## Hook reference\n\n### `cosmoseg_x`\n\n```python\n# only code\n#\n#\n```\n\n"
        "### `cosmoseg_y`\n\nText.\nText.\nText.\n"
    )
    assert "0 line(s) of text" in (hook_problem(stub, "cosmoseg_x") or "")
    misplaced = "## Other\n\n### `cosmoseg_x`\n\nText.\nText.\nText.\n"
    assert "not under" in (hook_problem(misplaced, "cosmoseg_x") or "")


# ---- 2. every built-in stage has a page that names it and all its params -------------------------------


def stage_page_problems(name: str, cls: type) -> list[str]:
    page = DOCS / "stages" / f"{name}.md"
    if not page.is_file():
        return [f"no page docs/stages/{name}.md for stage {name!r}"]
    text = page.read_text(encoding="utf-8")
    problems = [] if name in text else [f"docs/stages/{name}.md does not mention {name!r}"]
    for field in dataclasses.fields(cls.Params):
        if not re.search(rf"\b{re.escape(field.name)}\b", text):
            problems.append(f"docs/stages/{name}.md does not document the param {field.name!r}")
    return problems


BUILT_IN_STAGES = build_registry(autoload=False).stages


def test_there_are_built_in_stages() -> None:
    assert BUILT_IN_STAGES


@pytest.mark.parametrize("name", sorted(BUILT_IN_STAGES))
def test_every_built_in_stage_has_a_page_with_all_its_params(name: str) -> None:
    problems = stage_page_problems(name, BUILT_IN_STAGES[name].obj)
    assert not problems, "\n".join(problems)


def test_the_template_plugin_stage_has_a_page() -> None:
    pytest.importorskip("cosmoseg_plugin_template")
    from cosmoseg_plugin_template.stages import SmoothStage

    problems = stage_page_problems(SmoothStage.name, SmoothStage)
    assert not problems, "\n".join(problems)


# ---- 3. every page is in the mkdocs nav, and every nav entry is a page ------------------------------------


class _Loader(yaml.SafeLoader):
    """A safe loader that reads (and ignores) python tags mkdocs.yml may one day hold (``!!python/name:``)."""


_Loader.add_multi_constructor("", lambda loader, suffix, node: None)


def nav_pages(nav: Any) -> list[str]:
    if isinstance(nav, str):
        return [nav] if nav.endswith(".md") else []
    if isinstance(nav, list):
        return [page for item in nav for page in nav_pages(item)]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in nav_pages(value)]
    return []


def load_mkdocs() -> dict[str, Any]:
    return yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=_Loader)


def test_every_page_under_docs_is_in_the_nav() -> None:
    config = load_mkdocs()
    docs_dir = ROOT / config.get("docs_dir", "docs")
    listed = set(nav_pages(config.get("nav", [])))
    pages = {path.relative_to(docs_dir).as_posix() for path in docs_dir.rglob("*.md")}
    assert pages, "docs/ holds no pages"
    assert not pages - listed, f"pages missing from the nav of mkdocs.yml: {sorted(pages - listed)}"
    assert not listed - pages, f"nav entries of mkdocs.yml without a page: {sorted(listed - pages)}"


def test_the_site_has_the_documented_pages() -> None:
    listed = set(nav_pages(load_mkdocs()["nav"]))
    expected = {"index.md", "concepts.md", "data-model.md", "pipelines.md", "plugins.md", "stages/index.md"}
    assert expected <= listed
