"""Galaxy catalogs as graphs for GNN inference: a radius graph with invariant node, edge and global features.

After CosmoGraphNet (Villanueva-Domingo & Villaescusa-Navarro 2022) and de Santi et al. 2023, with one change:
their edge features use cosines to the catalog's centroid, which are not translation invariant in a periodic box.
Here every feature is built from quantities that a translation (modulo L) and a rotation or reflection of the box
(one of the 48 signed permutations of the axes that map the cube onto itself, applied to positions and velocities
alike) leave unchanged; :func:`galaxy_graph` documents which transformations each feature is invariant under.

Edges link every ordered pair of galaxies closer than ``r_link`` (minimum-image distance in a periodic box, plain
distance in a non-periodic sub-box, :func:`random_subbox`). ``edge_index[0]`` is the source j and
``edge_index[1]`` the target i (torch-geometric's ``source_to_target`` flow: messages go j -> i); edges are sorted
by target, then source. The separation of an edge is ``d = x_j - x_i``.

The graph is built on the CPU with ``scipy.spatial.cKDTree`` (``radius_graph`` of torch-geometric needs
torch-cluster, which does not install here) in vectorized NumPy: a few seconds for 2×10^5 galaxies with ~10
neighbours each (``benchmarks/bench_infer_graphs.py``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from cosmoseg.data import GalaxyCatalog
from cosmoseg.errors import ProblemCollector, ValidationError
from cosmoseg.pipeline.params import BOUNDS, param

if TYPE_CHECKING:
    from torch_geometric.data import Data

__all__ = [
    "DENSITY_VOLUME",
    "GraphSpec",
    "edge_feature_names",
    "galaxy_graph",
    "global_feature_names",
    "node_feature_names",
    "periodic_radius_graph",
    "random_subbox",
]

DENSITY_VOLUME = 25.0**3
"""The volume, (Mpc/h)^3, per which the global feature counts galaxies: log10(N per (25 Mpc/h)^3)."""

VELOCITY_MODES: tuple[str, ...] = ("none", "3d", "los")

META_VOLUME_FRACTION = "volume_fraction"
"""Catalog meta key: the fraction of the box's volume the catalog covers (survey mask, sub-box); 1 when absent."""
META_PERIODIC = "periodic"
"""Catalog meta key: False for a catalog whose region is not periodic (a sub-box); True when absent."""
META_SUBBOX_LENGTH = "subbox_length"
"""Catalog meta key: the side, Mpc/h, of a non-periodic sub-box that starts at the origin."""
META_LOS_AXIS = "los_axis"
"""Catalog meta key: the line-of-sight axis of a redshift-space catalog (set by ``systematics.RedshiftSpace``)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class GraphSpec:
    """How a galaxy catalog becomes a graph: the linking length, which velocities and properties become features.

    Every field is checked when the spec is made (a ``ValidationError`` names each bad one).
    """

    r_link: float = param(1.25, gt=0, doc="linking length, comoving Mpc/h (edges join galaxies closer than this)")
    velocities: Literal["none", "3d", "los"] = param(
        "3d", doc="'none'; '3d' (column 'vel', real space); 'los' (column 'v_los', redshift space)"
    )
    properties: tuple[str, ...] = param((), doc="galaxy property columns added as node features, in this order")
    los_axis: int = param(2, ge=0, le=2, doc="the line-of-sight axis (0, 1, 2 = x, y, z) of 'los' velocities")
    velocity_unit: float = param(100.0, gt=0, doc="velocities are divided by this, km/s")

    def __post_init__(self) -> None:
        problems = ProblemCollector()
        for name in ("r_link", "velocity_unit"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                problems.add(f"{name} must be a finite number, got {value!r}")
                continue
            object.__setattr__(self, name, float(value))
        problems.check(
            self.velocities in VELOCITY_MODES,
            f"velocities must be one of {list(VELOCITY_MODES)}, got {self.velocities!r}",
        )
        if isinstance(self.properties, str) or not all(isinstance(p, str) for p in self.properties):
            problems.add(f"properties must be a tuple of column names, got {self.properties!r}")
        else:
            object.__setattr__(self, "properties", tuple(self.properties))
            problems.check(
                len(set(self.properties)) == len(self.properties), f"properties repeat a column: {self.properties}"
            )
            vectors = [p for p in self.properties if p in ("pos", "vel", "v_los")]
            problems.check(
                not vectors, f"properties {vectors} are positions or velocities, not galaxy properties (see velocities)"
            )
        problems.check(
            isinstance(self.los_axis, int) and not isinstance(self.los_axis, bool),
            f"los_axis must be an integer, got {self.los_axis!r}",
        )
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            for key, bound in field.metadata.get("bounds", {}).items():
                symbol, holds = BOUNDS[key]
                problems.check(holds(value, bound), f"{field.name} must be {symbol} {bound:g}, got {value}")
        problems.raise_if_any(ValidationError, context="GraphSpec")

    def clone(self, **changes: Any) -> GraphSpec:
        return dataclasses.replace(self, **changes)


def node_feature_names(spec: GraphSpec) -> list[str]:
    """The names of the columns of ``x``, in order (for a model card)."""
    names = {"none": [], "3d": ["|v|/velocity_unit"], "los": ["|v_los|/velocity_unit"]}[spec.velocities]
    names = names + list(spec.properties)
    return names or ["one"]


def edge_feature_names(spec: GraphSpec) -> list[str]:
    """The names of the columns of ``edge_attr``, in order; edge j -> i, d = x_j - x_i (minimum image)."""
    names = ["|d|/r_link"]
    if spec.velocities == "3d":
        names += ["(v_j-v_i).d_hat/velocity_unit", "cos(d_hat,v_i)", "cos(d_hat,v_j)"]
    elif spec.velocities == "los":
        names += ["|d_hat_los|", "(v_los_j-v_los_i)*sign(d_los)/velocity_unit"]
    return names


def global_feature_names(spec: GraphSpec) -> list[str]:
    """The names of the columns of ``u``, in order."""
    return ["log10(N per (25 Mpc/h)^3)"]


# ---- the radius graph -------------------------------------------------------------------------------------------


def _wrapped(pos: np.ndarray, length: float) -> np.ndarray:
    out = np.remainder(pos, length)
    out[out >= length] -= length
    return out


def _radius_pairs(
    pos: np.ndarray, length: float, r_link: float, periodic: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(source, target, d) of every ordered pair closer than ``r_link``, sorted by (target, source).

    pos: (N, 3) float64, in [0, length) when periodic. d = pos[source] - pos[target], minimum image when periodic.
    """
    from scipy.spatial import cKDTree

    n = pos.shape[0]
    tree = cKDTree(pos, boxsize=length if periodic else None)
    # the tree keeps d <= r; ask a hair further so that rounding never hides a pair, then keep d < r_link exactly
    pairs = tree.query_pairs(r_link * (1.0 + 1e-9), output_type="ndarray").astype(np.int64, copy=False)
    first, second = pairs[:, 0], pairs[:, 1]
    d = pos[second] - pos[first]
    if periodic:
        d -= length * np.round(d / length)
    keep = np.einsum("ij,ij->i", d, d) < r_link * r_link
    first, second, d = first[keep], second[keep], d[keep]
    source = np.concatenate([first, second])
    target = np.concatenate([second, first])
    d = np.concatenate([-d, d])  # x_source - x_target: edge first -> second has x_first - x_second = -d
    order = np.argsort(target * n + source, kind="stable")
    return source[order], target[order], d[order]


def periodic_radius_graph(
    pos: torch.Tensor, box_length: float, r_link: float, *, periodic: bool = True
) -> torch.Tensor:
    """Every ordered pair (j, i), i != j, of points closer than ``r_link``: a (2, E) int64 ``edge_index``.

    pos: (N, 3) positions, Mpc/h (wrapped into [0, box_length) here). Distances are minimum-image distances in the
    periodic box of side ``box_length``, which needs ``r_link < box_length / 2`` (else a pair could be linked
    through two images); with ``periodic=False`` plain distances (a non-periodic region, any ``r_link``). Both
    directions of every pair; row 0 is the source j, row 1 the target i; sorted by target, then source. Built with
    ``scipy.spatial.cKDTree(boxsize=box_length).query_pairs``; the tensor is on ``pos``' device.
    """
    _check_link(box_length, r_link, periodic)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise ValidationError(f"pos must have shape (N, 3), got {tuple(pos.shape)}", context="periodic_radius_graph")
    points = pos.detach().cpu().numpy().astype(np.float64)
    if not np.isfinite(points).all():
        raise ValidationError("pos holds non-finite values (NaN or inf)", context="periodic_radius_graph")
    if periodic:
        points = _wrapped(points, box_length)
    source, target, _ = _radius_pairs(points, box_length, r_link, periodic)
    return torch.from_numpy(np.stack([source, target])).to(pos.device)


def _check_link(box_length: float, r_link: float, periodic: bool) -> None:
    problems = ProblemCollector()
    problems.check(
        math.isfinite(box_length) and box_length > 0, f"box_length must be a positive number, got {box_length}"
    )
    problems.check(math.isfinite(r_link) and r_link > 0, f"r_link must be a positive number, got {r_link}")
    if periodic and not problems.problems:
        problems.check(
            r_link < box_length / 2,
            f"r_link = {r_link:g} Mpc/h must be smaller than half the periodic box ({box_length:g} / 2 = "
            f"{box_length / 2:g} Mpc/h): a pair would be linked through more than one image",
        )
    problems.raise_if_any(ValidationError, context="radius graph")


# ---- the graph with features ------------------------------------------------------------------------------------


def _column(catalog: GalaxyCatalog, name: str, problems: ProblemCollector, *, why: str) -> np.ndarray | None:
    if name not in catalog:
        problems.add(why)
        return None
    values = catalog[name].detach().cpu().numpy().astype(np.float64)
    if not np.isfinite(values).all():
        n_bad = int((~np.isfinite(values)).sum())
        problems.add(f"column {name!r} has {n_bad} non-finite value(s) (NaN or inf)")
        return None
    return values


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den == 0."""
    out = np.zeros_like(num)
    np.divide(num, den, out=out, where=den > 0)
    return out


def galaxy_graph(
    catalog: GalaxyCatalog,
    spec: GraphSpec | None = None,
    *,
    target: torch.Tensor | None = None,
    periodic: bool | None = None,
) -> Data:
    """The radius graph of a galaxy catalog with invariant features, a torch-geometric ``Data``.

    catalog: ``pos`` (N, 3) Mpc/h; with ``spec.velocities == "3d"`` the column ``vel`` (N, 3) km/s; with "los" the
    column ``v_los`` (N,) km/s (a redshift-space catalog, ``systematics.RedshiftSpace``); the ``spec.properties``
    columns (N,) (booleans and integers become 0/1 and numbers).
    spec: the :class:`GraphSpec` (default ``GraphSpec()``).
    target: the parameters to learn (e.g. Ω_m, σ_8), any shape with P values; stored as ``y`` (1, P) float32.
    periodic: whether distances wrap around the box; None reads ``catalog.meta["periodic"]`` (True when absent;
        :func:`random_subbox` sets False).

    Returns ``Data`` with
      - ``x`` (N, F_node) float32, :func:`node_feature_names`: ``|v|/velocity_unit`` (3d) or
        ``|v_los|/velocity_unit`` (los), then the property columns as they are; a constant 1 when there is neither;
      - ``edge_index`` (2, E) int64 (:func:`periodic_radius_graph`: row 0 source j, row 1 target i);
      - ``edge_attr`` (E, F_edge) float32, :func:`edge_feature_names`, with d = x_j - x_i (minimum image) and
        d_hat = d / |d|: ``|d|/r_link``; with 3d velocities ``(v_j - v_i)·d_hat / velocity_unit`` (the radial
        relative velocity), ``cos(d_hat, v_i)`` and ``cos(d_hat, v_j)`` (0 where |v| = 0); with los velocities
        ``|d_hat_los|`` (the line-of-sight component of d_hat, absolute value) and
        ``(v_los_j - v_los_i)·sign(d_los) / velocity_unit``;
      - ``u`` (1, 1) float32: log10 of the number of galaxies per (25 Mpc/h)^3,
        log10(N (25 / L)^3 / volume_fraction) with ``volume_fraction = catalog.meta.get("volume_fraction", 1)``,
        so a sub-box or a masked catalog is on the scale of the full box;
      - ``y`` (1, P) float32 when ``target`` is given; ``box_length`` (1,) float32, L.

    Invariance. Node features, |d| and the global feature depend on neither position nor direction. In a periodic
    box, every feature is unchanged by a translation (modulo L) of all positions. With "none" or "3d", every
    feature is unchanged by any rotation or reflection applied to positions and velocities alike that maps the
    box onto itself (the 48 signed axis permutations; with ``periodic=False`` and for pairs inside a region, any
    orthogonal map): they are built from |d|, |v| and dot products of d and the velocities. With "los", the
    features are unchanged by rotations about the line of sight and by reflections of any axis (the line of sight
    included, which flips d_los and v_los together), but not by rotations that tilt the line of sight: redshift
    space singles it out.

    ValidationError for an empty catalog, a missing velocity or property column (naming what to do), a
    ``los_axis`` that disagrees with the catalog's ``meta["los_axis"]``, non-finite values, and
    ``r_link >= L/2`` in a periodic box.
    """
    from torch_geometric.data import Data

    spec = GraphSpec() if spec is None else spec
    n = len(catalog)
    if n == 0:
        raise ValidationError("an empty catalog (0 galaxies): nothing to build a graph from", context="galaxy_graph")
    length = catalog.box.length
    periodic = bool(catalog.meta.get(META_PERIODIC, True)) if periodic is None else periodic
    _check_link(length, spec.r_link, periodic)
    problems = ProblemCollector()
    pos = _column(catalog, "pos", problems, why="the catalog has no column 'pos'")
    vel = v_los = None
    if spec.velocities == "3d":
        hint = (
            " (this catalog is in redshift space, it has 'v_los': use velocities='los')"
            if "v_los" in catalog
            else " (use velocities='none' for a catalog without velocities)"
        )
        vel = _column(
            catalog, "vel", problems, why=f"velocities='3d' needs the column 'vel' (N, 3) km/s, which is missing{hint}"
        )
    elif spec.velocities == "los":
        hint = (
            " (this catalog is in real space: apply systematics.RedshiftSpace ('rsd') first, or use velocities='3d')"
            if "vel" in catalog
            else " (apply systematics.RedshiftSpace ('rsd') to a catalog with 'vel', or use velocities='none')"
        )
        v_los = _column(
            catalog,
            "v_los",
            problems,
            why=f"velocities='los' needs the column 'v_los' (N,) km/s, which is missing{hint}",
        )
        if v_los is not None and v_los.ndim != 1:
            problems.add(f"column 'v_los' must have shape (N,), got {v_los.shape}")
        catalog_axis = catalog.meta.get(META_LOS_AXIS)
        if catalog_axis is not None and int(catalog_axis) != spec.los_axis:
            problems.add(
                f"the catalog's line of sight is axis {catalog_axis} (meta['los_axis']) but spec.los_axis = "
                f"{spec.los_axis}: make them agree"
            )
    properties = []
    for name in spec.properties:
        values = _column(
            catalog,
            name,
            problems,
            why=f"property column {name!r} is missing; the catalog has {sorted(catalog.columns)}",
        )
        if values is not None and values.ndim != 1:
            problems.add(f"property column {name!r} must have shape (N,), got {values.shape}")
        properties.append(values)
    fraction = float(catalog.meta.get(META_VOLUME_FRACTION, 1.0))
    problems.check(
        math.isfinite(fraction) and 0 < fraction <= 1,
        f"meta['volume_fraction'] must be in (0, 1], got {fraction}",
    )
    problems.raise_if_any(ValidationError, context="galaxy_graph")
    assert pos is not None

    if periodic:
        pos = _wrapped(pos, length)
    source, target_index, d = _radius_pairs(pos, length, spec.r_link, periodic)
    r = np.sqrt(np.einsum("ij,ij->i", d, d))
    d_hat = _safe_divide(d, r[:, None])
    unit = spec.velocity_unit

    node: list[np.ndarray] = []
    edge: list[np.ndarray] = [r / spec.r_link]
    if vel is not None:
        speed = np.sqrt(np.einsum("ij,ij->i", vel, vel))
        node.append(speed / unit)
        v_i, v_j = vel[target_index], vel[source]
        edge.append(np.einsum("ij,ij->i", v_j - v_i, d_hat) / unit)
        edge.append(_safe_divide(np.einsum("ij,ij->i", d_hat, v_i), speed[target_index]))
        edge.append(_safe_divide(np.einsum("ij,ij->i", d_hat, v_j), speed[source]))
    elif v_los is not None:
        node.append(np.abs(v_los) / unit)
        edge.append(np.abs(d_hat[:, spec.los_axis]))
        edge.append((v_los[source] - v_los[target_index]) * np.sign(d[:, spec.los_axis]) / unit)
    node.extend(p for p in properties if p is not None)
    if not node:
        node.append(np.ones(n))

    device = catalog.device
    x = torch.from_numpy(np.stack(node, axis=1).astype(np.float32)).to(device)
    edge_attr = torch.from_numpy(np.stack(edge, axis=1).astype(np.float32)).to(device)
    edge_index = torch.from_numpy(np.stack([source, target_index])).to(device)
    density = n * DENSITY_VOLUME / (length**3 * fraction)
    u = torch.tensor([[math.log10(density)]], dtype=torch.float32, device=device)
    data = Data(x=x, edge_index=edge_index, edge_attr=edge_attr, u=u)
    data.box_length = torch.tensor([length], dtype=torch.float32, device=device)
    if target is not None:
        y = torch.as_tensor(target, dtype=torch.float32).reshape(1, -1)
        if not bool(torch.isfinite(y).all()):
            raise ValidationError(f"target holds non-finite values: {y.tolist()}", context="galaxy_graph")
        data.y = y.to(device)
    if not (bool(torch.isfinite(x).all()) and bool(torch.isfinite(edge_attr).all())):
        raise ValidationError(
            "the features overflow float32 (non-finite values): rescale the property columns or velocity_unit",
            context="galaxy_graph",
        )
    return data


# ---- augmentation -----------------------------------------------------------------------------------------------


def random_subbox(catalog: GalaxyCatalog, fraction: float, generator: torch.Generator) -> GalaxyCatalog:
    """The galaxies in a randomly placed cube of side fraction^(1/3) of the catalog's region: an augmentation.

    In a periodic catalog the cube is placed uniformly at random in the periodic box (it may wrap around a face);
    in a non-periodic one (already a sub-box) uniformly inside it. Positions are shifted so that the cube starts at
    the origin (they lie in [0, side)); the box stays the same. ``meta``: ``periodic`` = False (distances inside the
    cube do not wrap: :func:`galaxy_graph` then uses plain distances), ``subbox_length`` = the side, Mpc/h, and
    ``volume_fraction`` multiplied by ``fraction`` (the global feature of the graph divides by it). A fraction of 1
    keeps every galaxy and only translates a periodic box (which stays periodic). Apply the systematics that move
    galaxies (``RedshiftSpace``, ``SurveyMask``, ``PositionErrors``) before this, on the periodic box.
    Draws 3 uniform numbers from ``generator``. ValidationError for a fraction outside (0, 1].
    """
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction <= 1:
        raise ValidationError(f"fraction must be in (0, 1], got {fraction!r}", context="random_subbox")
    length = catalog.box.length
    periodic = bool(catalog.meta.get(META_PERIODIC, True))
    extent = length if periodic else float(catalog.meta.get(META_SUBBOX_LENGTH, length))
    side = extent * float(fraction) ** (1.0 / 3.0)
    draw = torch.rand(3, generator=generator, device=generator.device, dtype=torch.float64).cpu()
    pos = catalog["pos"]
    if periodic:
        origin = (draw * length).to(device=pos.device, dtype=torch.float64)
        shifted = torch.remainder(pos.to(torch.float64) - origin, length)
        shifted = torch.where(shifted >= length, shifted - length, shifted)
    else:
        origin = (draw * (extent - side)).to(device=pos.device, dtype=torch.float64)
        shifted = pos.to(torch.float64) - origin
    if periodic and fraction == 1:
        return dataclasses.replace(catalog, columns={**catalog.columns, "pos": shifted.to(pos.dtype)})
    inside = ((shifted >= 0) & (shifted < side)).all(dim=1)
    new_pos = shifted[inside].to(pos.dtype)
    # float32 rounding may land a position on the side exactly: keep the half-open [0, side)
    below = torch.nextafter(torch.tensor(side, dtype=pos.dtype), torch.tensor(0.0, dtype=pos.dtype))
    new_pos = torch.minimum(new_pos, below.to(pos.device))
    columns = {name: values[inside] for name, values in catalog.columns.items()} | {"pos": new_pos}
    meta = dict(catalog.meta) | {
        META_PERIODIC: False,
        META_SUBBOX_LENGTH: side,
        META_VOLUME_FRACTION: float(catalog.meta.get(META_VOLUME_FRACTION, 1.0)) * float(fraction),
    }
    return dataclasses.replace(catalog, columns=columns, meta=meta)
