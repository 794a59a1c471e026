"""Turn a TOML ``params`` table into a stage's ``Params`` dataclass, reporting every problem."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import types
import typing
from typing import Any, Literal, NewType, Union, get_args, get_origin

InputPath = NewType("InputPath", str)
"""The type of a param that names a file or folder the stage reads (a snapshot, a catalog, a model).

The runner resolves it before the stage sees it: ``""`` stays empty (no file), ``"$name"`` is the path named
``name`` in ``[run] files``, a relative path is relative to the pipeline file's folder; the stage gets an absolute
path that exists (or an empty string), and ``--resume`` re-runs the stage when the files behind it change.
"""


def _describe(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def type_text(tp: Any) -> str:
    """A params field's type as a user reads it: ``int``, ``list[float]``, ``float | None``, ``'ngp' | 'cic'``."""
    origin, args = get_origin(tp), get_args(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        return " | ".join(type_text(a) for a in args)
    if origin is not None and args:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(type_text(a) for a in args)}]"
    if tp is type(None):
        return "None"
    if tp is Ellipsis:
        return "..."
    return _describe(tp)


def _coerce(value: Any, tp: Any, where: str) -> tuple[Any, str | None]:
    """``value`` converted to type ``tp``, or a problem text."""
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return value, None
    if tp is InputPath:
        if isinstance(value, str):
            return InputPath(value), None
        return value, f"{where} must be a path (a string), got {value!r}"
    if origin in (Union, types.UnionType):
        for option in args:
            if option is type(None):
                continue
            converted, problem = _coerce(value, option, where)
            if problem is None:
                return converted, None
        return value, f"{where} must be {' or '.join(_describe(a) for a in args)}, got {value!r}"
    if origin is Literal:
        if value in args:
            return value, None
        return value, f"{where} must be one of {list(args)}, got {value!r}"
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            return value, f"{where} must be a list, got {value!r}"
        item_types = args[:1] if (origin is list or (len(args) == 2 and args[1] is Ellipsis)) else args
        if origin is tuple and args and args[-1] is not Ellipsis and len(args) != len(value):
            return value, f"{where} must have {len(args)} items, got {len(value)}"
        out, problems = [], []
        for i, item in enumerate(value):
            item_type = item_types[0] if len(item_types) == 1 else item_types[i]
            converted, problem = _coerce(item, item_type, f"{where}[{i}]")
            out.append(converted)
            if problem:
                problems.append(problem)
        return (tuple(out) if origin is tuple else out), ("; ".join(problems) or None)
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            return value, f"{where} must be a table, got {value!r}"
        return dict(value), None
    if tp is bool:
        return (value, None) if isinstance(value, bool) else (value, f"{where} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value, None
        return value, f"{where} must be an integer, got {value!r}"
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value):
                return value, f"{where} must be finite, got {value!r}"
            return float(value), None
        return value, f"{where} must be a number, got {value!r}"
    if tp is str:
        return (value, None) if isinstance(value, str) else (value, f"{where} must be a string, got {value!r}")
    if isinstance(tp, type) and isinstance(value, tp):
        return value, None
    return value, f"{where} must be {_describe(tp)}, got {value!r}"


BOUNDS = {"ge": (">=", lambda v, b: v >= b), "gt": (">", lambda v, b: v > b), "le": ("<=", lambda v, b: v <= b),
          "lt": ("<", lambda v, b: v < b)}  # fmt: skip
"""The bounds :func:`param` declares: keyword -> (symbol, test)."""


def param(
    default: Any = dataclasses.MISSING,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    doc: str = "",
) -> Any:
    """A field of a stage's params dataclass with its bounds and a one-line doc, declared once.

    ``n: int = param(64, ge=2, doc="grid cells per side")``. Bounds apply to a number, or to every number of a
    list or tuple; :func:`parse_params` reports a value outside them as "param 'n' must be >= 2, got 1", and
    ``cosmoseg stages show`` prints the bounds and the doc beside the field. A mutable default (a dict, list or
    set) is copied for every instance. Checks that relate several fields stay in the dataclass's ``problems()``.
    """
    bounds = {key: value for key, value in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)) if value is not None}
    metadata = {"doc": doc, "bounds": bounds}
    if isinstance(default, dict | list | set):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def field_doc(field: dataclasses.Field[Any]) -> str:
    """The one-line doc of a params field declared with :func:`param` ("" otherwise)."""
    return str(field.metadata.get("doc", ""))


def field_bounds(field: dataclasses.Field[Any]) -> str:
    """The bounds of a params field as text (``">= 2, < 100"``; "" when it has none)."""
    return ", ".join(f"{BOUNDS[key][0]} {value:g}" for key, value in field.metadata.get("bounds", {}).items())


def _bound_problem(name: str, value: Any, bounds: dict[str, float]) -> str | None:
    numbers = value if isinstance(value, list | tuple) else [value]
    for number in numbers:
        if isinstance(number, bool) or not isinstance(number, int | float):
            continue
        for key, bound in bounds.items():
            symbol, ok = BOUNDS[key]
            if not ok(number, bound):
                shown = f"{value!r}" if numbers is not value else f"{list(value)!r} (an item is {number!r})"
                return f"param {name!r} must be {symbol} {bound:g}, got {shown}"
    return None


def parse_params(params_cls: type, raw: dict[str, Any], where: str) -> tuple[Any, list[str]]:
    """Build ``params_cls(**raw)`` with type checks; returns (instance or None, problems).

    Unknown keys, missing required keys, values of the wrong type, values outside the bounds a field declares with
    :func:`param`, and the dataclass's own checks (``__post_init__`` raising ValueError, or a ``problems()`` method
    for rules across fields) are all reported, one line each. The dataclass's checks run whenever every value has
    its type, so a rule across fields is reported together with a bound; a check that cannot run on an
    out-of-bounds value (it raises) is left for after the bounds are fixed.
    """
    problems: list[str] = []
    fields = {f.name: f for f in dataclasses.fields(params_cls) if f.init}
    hints = typing.get_type_hints(params_cls)
    unknown = sorted(set(raw) - set(fields))
    for key in unknown:
        problems.append(f"{where}: unknown param {key!r} (known: {', '.join(sorted(fields)) or 'none'})")
    values: dict[str, Any] = {}
    typed = not problems  # every key known, every value of its type: the dataclass's own checks can run
    for name, field in fields.items():
        if name not in raw:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                problems.append(f"{where}: missing required param {name!r}")
                typed = False
            continue
        value, problem = _coerce(raw[name], hints.get(name, Any), f"param {name!r}")
        typed = typed and problem is None
        if problem is None and field.metadata.get("bounds"):
            problem = _bound_problem(name, value, field.metadata["bounds"])
        if problem:
            problems.append(f"{where}: {problem}")
        values[name] = value
    if not typed:
        return None, problems
    try:
        instance = params_cls(**values)
    except (ValueError, TypeError) as err:
        return None, [*problems, f"{where}: {err}"]
    check = getattr(instance, "problems", None)
    try:
        problems += [f"{where}: {p}" for p in check()] if callable(check) else []
    except Exception:
        if not problems:
            raise
        # the check could not run on an out-of-bounds value: the bounds say what to fix first
    return (None if problems else instance), problems


def input_path_fields(params_cls: type) -> list[str]:
    """The names of the fields of a params dataclass that are input paths (type :data:`InputPath`)."""
    hints = typing.get_type_hints(params_cls)
    return [f.name for f in dataclasses.fields(params_cls) if hints.get(f.name) is InputPath]


def params_to_dict(params: Any) -> dict[str, Any]:
    """A JSON-friendly dict of a params dataclass (tuples become lists)."""
    return json_friendly(dataclasses.asdict(params))


def json_friendly(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): json_friendly(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_friendly(v) for v in value]
    return value


def parse_key_values(items: list[str], option: str) -> dict[str, Any]:
    """``key=value`` command-line items as a dict; each value read as JSON when it parses ("3", "[1,2]",
    "true"), as a string otherwise. ValueError naming ``option`` for an item without ``=`` or key."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{option} takes key=value, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out
