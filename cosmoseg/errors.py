"""The exceptions cosmoseg raises. Every one carries a list of problems, one line each."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class CosmosegError(Exception):
    """Base class: a message made of one line per problem.

    ``problems`` keeps the individual lines so callers (the CLI, tests) can show or inspect them.
    """

    def __init__(self, problems: str | Iterable[str], *, context: str | None = None) -> None:
        self.problems: list[str] = [problems] if isinstance(problems, str) else list(problems)
        self.context = context
        super().__init__(self._format())

    def _format(self) -> str:
        head = f"{self.context}:" if self.context else ""
        if len(self.problems) == 1:
            return f"{head} {self.problems[0]}" if head else self.problems[0]
        lines = [f"- {p}" for p in self.problems]
        return "\n".join(([head] if head else []) + lines)


class ValidationError(CosmosegError, ValueError):
    """A data-model object was built from bad values (shapes, dtypes, NaNs, missing columns)."""


class ArtifactError(CosmosegError, OSError):
    """An HDF5 artifact cannot be read: missing, truncated, foreign or of another schema version."""


class ConfigError(CosmosegError, ValueError):
    """A pipeline configuration is wrong (TOML syntax, unknown keys, bad params, bad graph)."""


class PluginError(CosmosegError, RuntimeError):
    """A plugin cannot be loaded or registers something that clashes with another plugin."""


class StageError(CosmosegError, RuntimeError):
    """A stage failed while running or returned outputs that break its declared contract."""


class RunLockedError(CosmosegError, RuntimeError):
    """The output folder is in use by another cosmoseg run."""


class ProblemCollector:
    """Gathers problems so that all of them are reported in one error.

    >>> problems = ProblemCollector()
    >>> problems.check(n > 0, f"n must be positive, got {n}")
    >>> problems.raise_if_any(ValidationError, context="Field")
    """

    def __init__(self) -> None:
        self.problems: list[str] = []

    def add(self, problem: str) -> None:
        self.problems.append(problem)

    def check(self, condition: bool, problem: str) -> bool:
        if not condition:
            self.problems.append(problem)
        return bool(condition)

    def __bool__(self) -> bool:
        return bool(self.problems)

    def raise_if_any(self, error: type[CosmosegError] = ValidationError, *, context: str | None = None) -> None:
        if self.problems:
            raise error(self.problems, context=context)


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when ``known`` has names close to ``name``, else an empty string."""
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
