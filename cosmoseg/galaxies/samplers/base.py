"""One interface for every halo → galaxy joint sampler (Abramo et al.): fit, sample, log_prob, save / load.

A sampler learns p(galaxy properties | halo properties) from paired rows:

* ``fit(halo_props (N, C), galaxy_props (N, D))`` — float tensors, columns in the order of ``condition_names``
  and ``target_names`` (the sampler standardises them itself: :class:`Standardizer`);
* ``sample(halo_props (M, C), n=1, generator=None) -> (n, M, D)`` — n draws for every halo;
* ``log_prob(halo_props (N, C), galaxy_props (N, D)) -> (N,)`` — the log density (in the units of the galaxy
  properties) where the method has one, else `NotImplementedError`;
* ``save(path, card=...)`` / :func:`load_sampler` — one ``torch.save`` file of plain types and tensors (loaded with
  ``weights_only=True``) holding the method, the property names, the hyper-parameters, the standardisation, the
  learned state and a model card (data, command, metrics). Loading checks the property names against what the
  caller expects and names every mismatch.

Under ``torchrun`` (a process group, `cosmoseg.nn.distributed.init_from_env`) the network samplers fit
data-parallel: every rank draws the same shuffles from the same generator, runs its network through
``DistributedDataParallel`` on its share of each global mini-batch (:func:`rank_rows`) and weighs its mean loss so that
the averaged gradients are those of the whole mini-batch: the fit equals one process's, to float rounding.

Catalog columns become matrices with :func:`cosmoseg.galaxies.features.property_matrix`. Concrete samplers
subclass :class:`JointSampler`, set ``method``, implement ``_fit``, ``_sample`` (on
standardised values), optionally ``_log_prob``, and ``state_dict`` / ``load_state_dict`` of their learned state.
"""

from __future__ import annotations

import abc
import dataclasses
import importlib
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch

from cosmoseg.data.hdf5 import atomic_write
from cosmoseg.errors import ArtifactError, ValidationError
from cosmoseg.nn.distributed import get_world_size, rank_share

__all__ = [
    "SAMPLERS",
    "SAMPLER_FORMAT",
    "JointSampler",
    "Standardizer",
    "check_matrix",
    "load_sampler",
    "rank_rows",
    "register_sampler",
    "sampler_class",
    "sampler_from_payload",
]

SAMPLER_FORMAT = "cosmoseg.sampler"
SAMPLER_VERSION = 1
SAMPLERS: dict[str, type[JointSampler]] = {}
"""method name -> sampler class (filled by :func:`register_sampler`)."""
BUILT_IN_METHODS = ("flow", "hival", "gauss", "regression")
"""Methods whose module ``cosmoseg.galaxies.samplers.<method>`` is imported on first use (nflows stays out of
``import cosmoseg``)."""


def sampler_class(method: str) -> type[JointSampler]:
    """The registered sampler class of ``method``; built-in ones are imported on first use."""
    if method not in SAMPLERS and method in BUILT_IN_METHODS:
        importlib.import_module(f"cosmoseg.galaxies.samplers.{method}")
    if method not in SAMPLERS:
        known = sorted(set(SAMPLERS) | set(BUILT_IN_METHODS))
        raise ValidationError(f"unknown sampler method {method!r}; known: {known}")
    return SAMPLERS[method]


Progress = Callable[[int, float], None]


def register_sampler(cls: type[JointSampler]) -> type[JointSampler]:
    """Class decorator: make ``cls`` loadable by :func:`load_sampler` under ``cls.method``."""
    if not cls.method:
        raise TypeError(f"{cls.__name__} has no 'method' name")
    SAMPLERS[cls.method] = cls
    return cls


def rank_rows(idx: torch.Tensor) -> tuple[torch.Tensor, float]:
    """This rank's rows of a global mini-batch ``idx`` (B,) of row indices, and the factor ``N·b_r / B`` to put on
    the mean loss over them (``idx`` and 1.0 without a process group), so that the gradients DDP averages over the
    N ranks are those of the mean loss over all of ``idx``. A rank left without a row (B < N) gets row ``idx[0]``
    with the factor 0 (it still takes part in the gradient all-reduce)."""
    world_size = get_world_size()
    if world_size == 1:
        return idx, 1.0
    share, count = rank_share(len(idx))
    return idx[share], world_size * count / len(idx)


def check_matrix(name: str, x: torch.Tensor, columns: Sequence[str]) -> torch.Tensor:
    """``x`` as a 2-D float tensor with ``len(columns)`` columns and finite values; `ValidationError` otherwise."""
    x = torch.as_tensor(x)
    if x.ndim != 2 or x.shape[1] != len(columns):
        raise ValidationError(
            f"{name} must have shape (N, {len(columns)}) for columns {list(columns)}, got {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        x = x.to(torch.float32)
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        counts = bad.sum(0).tolist()
        listing = ", ".join(f"{c!r}: {k}" for c, k in zip(columns, counts, strict=True) if k)
        raise ValidationError(f"{name} holds NaN or infinite values ({listing})")
    return x


@dataclasses.dataclass
class Standardizer:
    """Per-column affine map to zero mean and unit variance: ``z = (x - mean) / std``."""

    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def fit(cls, x: torch.Tensor) -> Standardizer:
        x = x.double()
        std = x.std(0, unbiased=False) if len(x) > 1 else torch.ones(x.shape[1], dtype=torch.float64)
        return cls(mean=x.mean(0).float(), std=torch.where(std > 0, std, torch.ones_like(std)).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x)) / self.std.to(x)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.std.to(z) + self.mean.to(z)

    def log_det(self) -> float:
        """log |d z / d x| summed over columns (add to a log density in z to get one in x)."""
        return -float(torch.log(self.std.double()).sum())

    def state(self) -> dict[str, torch.Tensor]:
        return {"mean": self.mean.clone(), "std": self.std.clone()}


class JointSampler(abc.ABC):
    """Base class of the samplers of p(galaxy | halo). See the module docstring for the interface.

    condition_names: the halo properties (C columns). target_names: the galaxy properties (D columns).
    hyper: the method's hyper-parameters (plain values; stored with the model).
    """

    method: ClassVar[str] = ""
    has_log_prob: ClassVar[bool] = False

    def __init__(self, condition_names: Sequence[str], target_names: Sequence[str], **hyper: Any) -> None:
        if not condition_names or not target_names:
            raise ValidationError("a sampler needs at least one halo property and one galaxy property")
        dup = {n for n in [*condition_names, *target_names] if [*condition_names, *target_names].count(n) > 1}
        if dup:
            raise ValidationError(f"property names must be distinct, repeated: {sorted(dup)}")
        self.condition_names = list(condition_names)
        self.target_names = list(target_names)
        self.hyper: dict[str, Any] = dict(hyper)
        self.x_scaler: Standardizer | None = None
        self.y_scaler: Standardizer | None = None
        self.card: dict[str, Any] = {}

    # ---- public API -------------------------------------------------------------------------------------
    @property
    def fitted(self) -> bool:
        return self.x_scaler is not None

    def fit(
        self,
        halo_props: torch.Tensor,
        galaxy_props: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        progress: Progress | None = None,
    ) -> JointSampler:
        """Learn p(galaxy | halo) from paired rows; returns ``self``."""
        x = check_matrix("halo_props", halo_props, self.condition_names)
        y = check_matrix("galaxy_props", galaxy_props, self.target_names)
        if len(x) != len(y):
            raise ValidationError(f"halo_props has {len(x)} rows but galaxy_props {len(y)}: they must be paired")
        if len(x) < 2:
            raise ValidationError(f"need at least 2 rows to fit, got {len(x)}")
        self.x_scaler, self.y_scaler = Standardizer.fit(x), Standardizer.fit(y)
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        self._fit(self.x_scaler.forward(x.float()), self.y_scaler.forward(y.float()), gen, progress)
        return self

    def sample(self, halo_props: torch.Tensor, n: int = 1, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(n, M, D)`` draws of the galaxy properties for the ``M`` haloes of ``halo_props (M, C)``."""
        self._require_fitted()
        if n < 1:
            raise ValidationError(f"n must be >= 1, got {n}")
        x = check_matrix("halo_props", halo_props, self.condition_names)
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        z = self._sample(self.x_scaler.forward(x.float()), n, gen)  # type: ignore[union-attr]
        return self.y_scaler.inverse(z)  # type: ignore[union-attr]

    def log_prob(self, halo_props: torch.Tensor, galaxy_props: torch.Tensor) -> torch.Tensor:
        """``(N,)`` log p(galaxy | halo) in the units of the galaxy properties."""
        self._require_fitted()
        if not self.has_log_prob:
            raise NotImplementedError(f"the {self.method!r} sampler has no log density")
        x = check_matrix("halo_props", halo_props, self.condition_names)
        y = check_matrix("galaxy_props", galaxy_props, self.target_names)
        lp = self._log_prob(self.x_scaler.forward(x.float()), self.y_scaler.forward(y.float()))  # type: ignore[union-attr]
        return lp + self.y_scaler.log_det()  # type: ignore[union-attr]

    def payload(self, *, card: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The fitted sampler as plain types and tensors (what :meth:`save` writes; :func:`sampler_from_payload`
        reads it back), so that other model files can embed samplers."""
        self._require_fitted()
        return {
            "format": SAMPLER_FORMAT,
            "version": SAMPLER_VERSION,
            "method": self.method,
            "condition_names": list(self.condition_names),
            "target_names": list(self.target_names),
            "hyper": _plain(self.hyper),
            "x_scaler": self.x_scaler.state(),  # type: ignore[union-attr]
            "y_scaler": self.y_scaler.state(),  # type: ignore[union-attr]
            "state": self.state_dict(),
            "card": _plain(dict(card if card is not None else self.card)),
        }

    def save(self, path: str | os.PathLike[str], *, card: Mapping[str, Any] | None = None) -> Path:
        """Write the fitted sampler atomically (see the module docstring); ``card``: data, command, metrics."""
        payload = self.payload(card=card)
        return atomic_write(path, lambda tmp: torch.save(payload, tmp))

    # ---- for subclasses ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def _fit(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator, progress: Progress | None) -> None:
        """Fit on standardised ``x (N, C)``, ``y (N, D)``."""

    @abc.abstractmethod
    def _sample(self, x: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
        """``(n, M, D)`` standardised draws for standardised ``x (M, C)``."""

    def _log_prob(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @abc.abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """The learned state as plain types and tensors (``torch.load(weights_only=True)`` must read it)."""

    @abc.abstractmethod
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (the constructor has already run with the same hyper)."""

    def _require_fitted(self) -> None:
        if not self.fitted:
            raise ValidationError(f"the {self.method!r} sampler is not fitted: call fit() or load_sampler() first")


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (str, int, float, bool, type(None), torch.Tensor)):
        return value
    raise TypeError(f"cannot store a {type(value).__name__} in a sampler file: use plain values")


def load_sampler(
    path: str | os.PathLike[str],
    *,
    condition_names: Sequence[str] | None = None,
    target_names: Sequence[str] | None = None,
    map_location: Any = "cpu",
) -> JointSampler:
    """A fitted sampler from :meth:`JointSampler.save` (``weights_only=True``).

    With ``condition_names`` / ``target_names``, a file fitted on other property names (or another order) is an
    `ArtifactError` naming both lists.
    """
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: no such sampler file")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise ArtifactError(f"{path}: not a readable sampler file ({type(exc).__name__})") from exc
    _check_format(payload, str(path))
    problems = []
    for role, want in (("condition_names", condition_names), ("target_names", target_names)):
        if want is not None and list(want) != list(payload[role]):
            problems.append(f"{path}: fitted on {role} {payload[role]}, but {list(want)} were given")
    if problems:
        raise ArtifactError(problems)
    return sampler_from_payload(payload, str(path))


def _check_format(payload: Any, where: str) -> None:
    if not isinstance(payload, dict) or payload.get("format") != SAMPLER_FORMAT:
        what = payload.get("format") if isinstance(payload, dict) else None
        hint = f" (it is a {what!r} file)" if isinstance(what, str) else ""
        raise ArtifactError(f"{where}: not a cosmoseg sampler file{hint}")
    if payload.get("version") != SAMPLER_VERSION:
        raise ArtifactError(f"{where}: sampler file version {payload.get('version')!r}, expected {SAMPLER_VERSION}")


def sampler_from_payload(payload: Any, where: str) -> JointSampler:
    """A fitted sampler from what :meth:`JointSampler.payload` returned; ``where`` names its file in errors."""
    _check_format(payload, where)
    try:
        cls = sampler_class(payload["method"])
    except ValidationError as err:
        raise ArtifactError(f"{where}: {err}") from None
    sampler = cls(payload["condition_names"], payload["target_names"], **payload["hyper"])
    sampler.x_scaler = Standardizer(**payload["x_scaler"])
    sampler.y_scaler = Standardizer(**payload["y_scaler"])
    sampler.card = dict(payload.get("card") or {})
    sampler.load_state_dict(payload["state"])
    return sampler
