"""Friends-of-friends haloes (Davis et al. 1985) and the Lagrangian label grid made from them.

Two particles are *friends* when their periodic distance is at most the linking length; a FoF group is a
connected component of the friendship graph. The linking length is ``b`` times the mean interparticle
separation ``L / N^(1/3)`` (b = 0.2 by default, as in López-Cano et al. §2.4).

How the groups are found (``friends_of_friends``): the particles are sorted along x into planes of
thickness >= the linking length and cut into slabs of about ``max_chunk_particles`` particles. Each slab,
with the plane to its left as a margin, goes into a ``scipy.spatial.cKDTree`` that is periodic in y and z
(and open in x, the slab being shifted so that it does not wrap); ``query_pairs`` lists its friend pairs,
and ``scipy.sparse.csgraph.connected_components`` reduces them at once to a star of edges per component
(every member to the component's first member). Every friend pair lies in the slab of its right-hand
particle, so the union of the stars has exactly the connected components of the full graph; a last
``connected_components`` over the stars (at most ~N edges) gives the groups. Memory is bounded by the pairs
of one slab, so dense haloes of a well-resolved run do not blow it up.

``find_halos`` keeps the groups of at least ``min_particles`` particles, numbers them 1..K by decreasing
mass, and measures their properties (``cosmoseg.sim.halo_properties``). ``lagrangian_segmentation`` paints
each particle's halo label onto its Lagrangian grid cell, the training target of the protohalo models,
keeping only haloes of at least ``min_particles`` (López-Cano et al. use 155).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import numpy.typing as npt
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from cosmoseg.data import HaloCatalog, Particles, Segmentation
from cosmoseg.errors import ProblemCollector, ValidationError
from cosmoseg.sim.halo_properties import DEFAULT_ENV_SCALES, halo_properties

__all__ = [
    "find_halos",
    "friends_of_friends",
    "halo_labels_from_groups",
    "halos_and_labels",
    "lagrangian_segmentation",
    "mean_separation",
]

MAX_SORT_PLANES = 128
"""At most this many x-planes for the slab decomposition (their thickness is also >= the linking length)."""


def mean_separation(n_particles: int, length: float) -> float:
    """Mean interparticle separation L / N^(1/3), Mpc/h."""
    return length / n_particles ** (1.0 / 3.0)


def friends_of_friends(
    pos: torch.Tensor | npt.ArrayLike,
    length: float,
    linking_length: float,
    *,
    max_chunk_particles: int = 2**17,
) -> torch.Tensor:
    """Periodic friends-of-friends groups.

    pos: (N, 3) positions in a periodic box, Mpc/h (wrapped into [0, length) here).
    length: side of the box, Mpc/h, > 0.
    linking_length: absolute linking length, Mpc/h, in (0, length / 2).
    max_chunk_particles: about how many particles go into one slab's k-d tree (bounds the memory).

    Returns an (N,) int64 tensor of group indices 0..G-1 on the device of ``pos`` (singletons are groups of
    one); groups are numbered in the order of their lowest particle index, so the result does not depend on
    the chunking.
    """
    pos_t = pos if isinstance(pos, torch.Tensor) else torch.as_tensor(np.asarray(pos))
    device = pos_t.device
    problems = ProblemCollector()
    shape_ok = problems.check(pos_t.ndim == 2 and pos_t.shape[-1] == 3, f"pos must be (N, 3), got {tuple(pos_t.shape)}")
    length_ok = problems.check(
        _is_number(length) and math.isfinite(length) and length > 0,
        f"length must be a positive box side in Mpc/h, got {length!r}",
    )
    ll_ok = problems.check(
        _is_number(linking_length) and math.isfinite(linking_length) and linking_length > 0,
        f"linking_length must be a positive distance in Mpc/h, got {linking_length!r}",
    )
    if length_ok and ll_ok:
        problems.check(
            linking_length < 0.5 * length,
            f"linking_length ({linking_length}) must be smaller than half the box ({0.5 * length})",
        )
    problems.check(max_chunk_particles >= 1, f"max_chunk_particles must be >= 1, got {max_chunk_particles}")
    if shape_ok and pos_t.numel():
        problems.check(bool(torch.isfinite(pos_t).all()), "pos has non-finite values")
    problems.raise_if_any(ValidationError, context="friends_of_friends")

    x = pos_t.detach().to("cpu", torch.float64).numpy()
    n = x.shape[0]
    if n == 0:
        return torch.zeros(0, dtype=torch.int64, device=device)
    x = np.mod(x, length)
    x[x >= length] = 0.0  # values that round up to L

    n_planes = max(1, min(MAX_SORT_PLANES, int(length / (linking_length * (1.0 + 1e-6)))))
    cell = length / n_planes  # > linking_length, with room for rounding
    ijk = np.minimum((x / cell).astype(np.int64), n_planes - 1)
    order = np.argsort((ijk[:, 0] * n_planes + ijk[:, 1]) * n_planes + ijk[:, 2], kind="stable")
    xs = x[order]  # sorted by plane (x major): slabs are index ranges and pairs are near in memory
    plane_start = np.zeros(n_planes + 1, dtype=np.int64)
    np.cumsum(np.bincount(ijk[order, 0], minlength=n_planes), out=plane_start[1:])

    n_slabs = min(-(-n // max_chunk_particles), n_planes)
    if n_slabs < 2 or n_planes < 3:
        labels_sorted = _components(_periodic_pairs(xs, length, linking_length), n)
    else:
        labels_sorted = _slab_components(xs, length, linking_length, plane_start, n_slabs, cell)

    labels = np.empty(n, dtype=np.int64)
    labels[order] = labels_sorted
    return torch.from_numpy(_number_by_first_member(labels)).to(device)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def _periodic_pairs(x: npt.NDArray[np.float64], length: float, r: float) -> npt.NDArray[np.int64]:
    """(P, 2) index pairs within distance r in a fully periodic box."""
    tree = cKDTree(x, boxsize=length, compact_nodes=False, balanced_tree=False)
    return tree.query_pairs(r, output_type="ndarray")


def _components(pairs: npt.NDArray[np.integer], n: int) -> npt.NDArray[np.int64]:
    """Connected-component labels (0..C-1) of n nodes joined by (P, 2) edges."""
    if len(pairs) == 0:
        return np.arange(n, dtype=np.int64)
    graph = coo_matrix((np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n)).tocsr()
    return connected_components(graph, directed=False)[1].astype(np.int64)


def _slab_components(
    xs: npt.NDArray[np.float64],
    length: float,
    r: float,
    plane_start: npt.NDArray[np.int64],
    n_slabs: int,
    cell: float,
) -> npt.NDArray[np.int64]:
    """Components of plane-sorted positions, slab by slab: local pairs -> local components -> star edges."""
    n, n_planes = xs.shape[0], len(plane_start) - 1
    # slab boundaries (in planes) at equal particle counts, every slab at least one plane thick
    targets = np.linspace(0, n, n_slabs + 1)[1:-1]
    cuts = np.searchsorted(plane_start[1:], targets, side="left") + 1
    cuts = np.unique(np.clip(cuts, 1, n_planes - 1))
    bounds = np.concatenate(([0], cuts, [n_planes]))
    boxsize = np.array([0.0, length, length])  # open along x: the slab is shifted so that it does not wrap
    star_from, star_to = [], []
    for first_plane, end_plane in itertools.pairwise(bounds):
        margin_plane = (first_plane - 1) % n_planes
        core = np.arange(plane_start[first_plane], plane_start[end_plane])
        margin = np.arange(plane_start[margin_plane], plane_start[margin_plane + 1])
        index = np.concatenate((margin, core))
        if index.size < 2:
            continue
        local = xs[index].copy()  # x shifted so that the margin plane starts at 0 and the core follows it
        local[: margin.size, 0] -= margin_plane * cell
        local[margin.size :, 0] -= (first_plane - 1) * cell
        tree = cKDTree(local, boxsize=boxsize, compact_nodes=False, balanced_tree=False)
        pairs = tree.query_pairs(r, output_type="ndarray")
        if len(pairs) == 0:
            continue
        components = _components(pairs, index.size)
        rep = np.full(int(components.max()) + 1, index.size, dtype=np.int64)
        np.minimum.at(rep, components, np.arange(index.size))
        joined = rep[components] != np.arange(index.size)
        star_from.append(index[joined])
        star_to.append(index[rep[components[joined]]])
        del pairs, tree
    if not star_from:
        return np.arange(n, dtype=np.int64)
    edges = np.stack((np.concatenate(star_from), np.concatenate(star_to)), axis=1)
    return _components(edges, n)


def _number_by_first_member(labels: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Relabel groups 0..G-1 in the order of their lowest member index."""
    first = np.full(int(labels.max()) + 1, labels.size, dtype=np.int64)
    np.minimum.at(first, labels, np.arange(labels.size))
    used = first < labels.size
    rank = np.full(first.size, -1, dtype=np.int64)
    rank[used] = np.argsort(np.argsort(first[used], kind="stable"), kind="stable")
    return rank[labels]


def find_halos(
    particles: Particles,
    *,
    b: float = 0.2,
    min_particles: int = 20,
    env_scales: tuple[float, ...] = DEFAULT_ENV_SCALES,
    concentration_min_particles: int = 100,
    max_chunk_particles: int = 2**17,
) -> tuple[HaloCatalog, torch.Tensor]:
    """FoF haloes of a particle set and their properties.

    particles: N equal-mass particles in a periodic box (``ids`` on a Lagrangian grid give the
        Lagrangian columns; with ``n_grid = 0`` those columns are left out).
    b: linking length in units of the mean interparticle separation L / N^(1/3).
    min_particles: groups with fewer particles are not haloes (>= 2).
    env_scales: radii (Mpc/h) of the spheres for the ``log_env_density_r*`` columns; may be empty.
    concentration_min_particles: haloes with fewer particles inside R_200c get no concentration.
    max_chunk_particles: slab size of the FoF search (memory bound), see ``friends_of_friends``.

    Returns ``(catalog, labels)``: a ``HaloCatalog`` with one row per halo, sorted by decreasing mass
    (ties: by lowest particle index), with the columns documented in ``cosmoseg.sim.halo_properties``;
    and (N,) int64 labels on the particles' device, in the particles' order: 0 = in no halo, k = the halo
    of row k - 1.
    """
    problems = ProblemCollector()
    problems.check(isinstance(particles, Particles), f"particles must be Particles, got {type(particles).__name__}")
    problems.check(_is_number(b) and math.isfinite(b) and b > 0, f"b must be a positive number, got {b!r}")
    problems.check(
        isinstance(min_particles, int) and min_particles >= 2,
        f"min_particles must be an integer >= 2, got {min_particles!r}",
    )
    problems.raise_if_any(ValidationError, context="find_halos")
    n = len(particles)
    length = particles.box.length
    linking_length = b * mean_separation(max(n, 1), length)
    groups = friends_of_friends(particles.pos, length, linking_length, max_chunk_particles=max_chunk_particles)
    labels = halo_labels_from_groups(groups, min_particles)
    columns, units = halo_properties(
        particles,
        labels,
        env_scales=env_scales,
        concentration_min_particles=concentration_min_particles,
    )
    meta = {
        "finder": "friends-of-friends",
        "b": float(b),
        "linking_length": float(linking_length),
        "min_particles": int(min_particles),
        "particle_mass": float(particles.mass),
        "overdensity": 200.0,
        "overdensity_reference": "critical",
        "env_scales": ",".join(f"{r:g}" for r in env_scales),
        "concentration_min_particles": int(concentration_min_particles),
    }
    catalog = HaloCatalog(columns=columns, units=units, box=particles.box, meta=meta)
    return catalog, labels


def halo_labels_from_groups(groups: torch.Tensor, min_particles: int) -> torch.Tensor:
    """(N,) group indices -> (N,) halo labels: 0 for groups below ``min_particles``, else 1..K by decreasing
    size (ties: in the order of the groups' lowest particle index when ``groups`` is numbered that way)."""
    groups = groups.long()
    if groups.numel() == 0:
        return groups.clone()
    counts = torch.bincount(groups)
    return _relabel_by_size(groups, counts, counts >= min_particles)


def _relabel_by_size(labels: torch.Tensor, counts: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Map label values to 1..K (kept ones, by decreasing count, ties by increasing value) or 0."""
    kept = keep.nonzero().squeeze(1)
    order = torch.sort(-counts[kept], stable=True).indices
    mapping = torch.zeros(counts.numel(), dtype=torch.int64, device=labels.device)
    mapping[kept[order]] = torch.arange(1, kept.numel() + 1, device=labels.device)
    return mapping[labels]


def lagrangian_segmentation(labels: torch.Tensor, particles: Particles, *, min_particles: int = 155) -> Segmentation:
    """Each particle's halo label painted onto its Lagrangian grid cell.

    labels: (N,) int, in the particles' order, 0 = in no halo (e.g. the labels of ``find_halos``).
    particles: the particles, whose ``ids`` are flat cells of the ``n_grid``^3 Lagrangian grid.
    min_particles: haloes with fewer particles are dropped (set to 0): López-Cano et al. keep haloes of
        >= 155 particles, M >~ 1e11 Msun/h at their resolution, where the Lagrangian regions are resolved.

    Returns a ``Segmentation`` of shape (n_grid, n_grid, n_grid) on the particles' grid and box, with labels
    1..K by decreasing particle count (ties: by increasing input label) and 0 elsewhere (also for cells
    without a particle). ``meta``: ``min_particles``, ``n_haloes``.
    """
    labels = torch.as_tensor(labels)
    problems = ProblemCollector()
    problems.check(isinstance(particles, Particles), f"particles must be Particles, got {type(particles).__name__}")
    n_grid = getattr(particles, "n_grid", 0)
    problems.check(n_grid > 0, "particles have n_grid = 0: their ids do not refer to a Lagrangian grid")
    problems.check(
        isinstance(min_particles, int) and min_particles >= 1,
        f"min_particles must be an integer >= 1, got {min_particles!r}",
    )
    if problems.check(
        labels.ndim == 1 and not labels.is_floating_point() and labels.dtype != torch.bool,
        f"labels must be a 1-d integer tensor, got dtype {labels.dtype} and shape {tuple(labels.shape)}",
    ) and isinstance(particles, Particles):
        problems.check(labels.numel() == len(particles), f"{labels.numel()} labels for {len(particles)} particles")
        problems.check(not labels.numel() or int(labels.min()) >= 0, "labels must be >= 0")
    problems.raise_if_any(ValidationError, context="lagrangian_segmentation")
    labels = labels.long().to(particles.ids.device)
    counts = torch.bincount(labels, minlength=1)
    keep = counts >= min_particles
    keep[0] = False
    relabelled = _relabel_by_size(labels, counts, keep)
    grid = torch.zeros(n_grid**3, dtype=torch.int64, device=labels.device)
    grid[particles.ids] = relabelled
    meta = {"min_particles": int(min_particles), "n_haloes": int(keep.sum())}
    return Segmentation(labels=grid.reshape(n_grid, n_grid, n_grid), box=particles.box, meta=meta)


NOT_A_LATTICE = "the particles' ids are not an n^3 lattice (n_grid = 0): no Lagrangian labels"
"""``meta["empty"]`` of the segmentation :func:`halos_and_labels` gives particles whose ids are not a lattice."""


def halos_and_labels(
    particles: Particles,
    *,
    b: float = 0.2,
    min_particles: int = 20,
    segmentation_min_particles: int = 155,
    env_scales: tuple[float, ...] = DEFAULT_ENV_SCALES,
    concentration_min_particles: int = 100,
) -> tuple[HaloCatalog, Segmentation]:
    """The FoF haloes of a particle set (:func:`find_halos`) and their Lagrangian label grid
    (:func:`lagrangian_segmentation` of the haloes of at least ``segmentation_min_particles`` particles).

    Particles whose ids are not an n^3 lattice (``n_grid = 0``: a snapshot from glass initial conditions, say) get
    their haloes and an empty (0, 0, 0) segmentation whose ``meta["empty"]`` says why (:data:`NOT_A_LATTICE`).
    """
    halos, labels = find_halos(
        particles,
        b=b,
        min_particles=min_particles,
        env_scales=env_scales,
        concentration_min_particles=concentration_min_particles,
    )
    if particles.n_grid:
        return halos, lagrangian_segmentation(labels, particles, min_particles=segmentation_min_particles)
    empty = torch.zeros((0, 0, 0), dtype=torch.int64, device=particles.pos.device)
    return halos, Segmentation(labels=empty, box=particles.box, meta={"empty": NOT_A_LATTICE})
