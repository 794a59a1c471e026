"""The Stage base class: one named, typed step of a pipeline."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, get_args, get_origin

from cosmoseg.data import DataObject

if TYPE_CHECKING:
    import torch

    from cosmoseg.pipeline.context import RunContext

STAGE_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
"""Stage names are dotted lower-case paths whose first part names the package: ``sim.ics``."""


@dataclasses.dataclass(frozen=True)
class NoParams:
    """The parameters of a stage that takes none."""


P = TypeVar("P")


class Stage(Generic[P]):
    """Base class of every stage, generic over its params: ``class SmoothStage(Stage[SmoothParams])``.

    A subclass declares:

    - ``name``: the dotted name pipelines use (``"sim.gaussian_field"``);
    - its params: a frozen dataclass with defaults (TOML ``params``), named as the type argument of ``Stage[...]``
      (which sets ``Params`` and types ``self.params``); fields declared with
      :func:`cosmoseg.pipeline.params.param` carry their bounds and a one-line doc; ``Literal[...]`` types list
      the choices; a ``problems(self) -> list[str]`` method is for rules across fields;
    - ``inputs`` / ``outputs``: name -> data-model class (``{"field": Field}``);
      ``optional_inputs`` names the inputs a pipeline may leave out (``run`` then gets ``None``);
    - ``version``: bump it when results change, so ``--resume`` re-runs the stage;
    - ``run(**inputs) -> dict[str, DataObject]`` returning exactly the declared outputs.

    Stages never pick a device or a seed: they use ``self.ctx.device`` and ``self.ctx.generator``.
    """

    name: ClassVar[str] = ""
    Params: ClassVar[type] = NoParams
    inputs: ClassVar[Mapping[str, type[DataObject]]] = {}
    optional_inputs: ClassVar[frozenset[str]] = frozenset()
    outputs: ClassVar[Mapping[str, type[DataObject]]] = {}
    version: ClassVar[str] = "1"

    def __init__(self, params: P, ctx: RunContext) -> None:
        self.params: P = params
        self.ctx = ctx

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "Params" in cls.__dict__:
            return
        for base in getattr(cls, "__orig_bases__", ()):
            origin = get_origin(base)  # Stage[P], or a generic subclass of it such as ReaderStage[P]
            if isinstance(origin, type) and issubclass(origin, Stage):
                (argument,) = get_args(base)
                if isinstance(argument, type):
                    cls.Params = argument
                return

    def run(self, **inputs: DataObject | None) -> dict[str, DataObject]:
        raise NotImplementedError(f"stage {self.name!r} does not implement run()")

    # ---- helpers for the contract checker (cosmoseg.testing) -------------------------------
    @classmethod
    def example_params(cls) -> dict[str, Any]:
        """Params for a tiny CPU run of the stage (the contract checker uses them); defaults otherwise."""
        return {}

    @classmethod
    def example_inputs(cls, generator: torch.Generator) -> dict[str, DataObject] | None:
        """Tiny inputs for the contract checker; ``None`` lets it build toy data from the input types."""
        return None

    @classmethod
    def memory_estimate(cls, params: Any) -> int | None:
        """Bytes of memory the stage's ``run`` needs at its peak, judged from its params alone (grids it allocates);
        None when the params do not tell. The graph check refuses a pipeline whose estimate exceeds the machine's
        memory (``--force`` goes on)."""
        return None

    @classmethod
    def summary(cls) -> str:
        """The first line of the class docstring."""
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""


def stage_problems(cls: Any) -> list[str]:
    """What is wrong with a class that claims to be a stage (empty when nothing is)."""
    if not (isinstance(cls, type) and issubclass(cls, Stage)):
        return [f"{cls!r} is not a subclass of cosmoseg.Stage"]
    problems = []
    label = f"stage class {cls.__module__}.{cls.__qualname__}"
    if not STAGE_NAME.match(cls.name or ""):
        problems.append(f"{label} has name {cls.name!r}; names are dotted lower-case like 'package.stage'")
    if not (dataclasses.is_dataclass(cls.Params) and isinstance(cls.Params, type)):
        problems.append(f"{label}: Params must be a dataclass")
    for kind in ("inputs", "outputs"):
        for key, typ in getattr(cls, kind).items():
            if not (isinstance(typ, type) and issubclass(typ, DataObject)):
                problems.append(f"{label}: {kind}[{key!r}] is {typ!r}, not a data-model class")
    unknown = set(cls.optional_inputs) - set(cls.inputs)
    if unknown:
        problems.append(f"{label}: optional_inputs names undeclared inputs {sorted(unknown)}")
    if not cls.outputs:
        problems.append(f"{label} declares no outputs")
    return problems
