"""Persistence clustering of the instance network's pseudo-space points (López-Cano et al., Appendix B).

The instance network maps every halo voxel to a point in an abstract "pseudo-space"; the points of one
protohalo should form one clump. This module turns the points into instance labels, as Appendix B does.

**Density (eq. B1).** For every point i, r_{k,i} is the distance to its k-th nearest *other* point, with
k = N_dens (20 in the paper), and the density is rho_i = 3 k / (4 pi r_{k,i}^3). In D dimensions this
generalises to rho_i = k / (V_D r_{k,i}^D), V_D = pi^(D/2) / Gamma(D/2 + 1) the volume of the unit ball
(V_3 = 4 pi / 3, so D = 3 is exactly B1). A point with N_dens or more exact duplicates has r_k = 0 and
rho = inf. The k-NN search uses scipy's cKDTree, as in the paper.

**Descending manifolds with persistence (the modified SUBFIND segmentation).** The paper considers the
points from the highest to the lowest density. For point i it takes, among its N_ngb nearest points (15 in
the paper), those denser than i, and of these the (up to) two closest, the set B_i:

- B_i empty: i is a density maximum, rho_max = rho_i, and starts a new group;
- B_i one point, or two points of the same group: i joins that group;
- B_i two points of different groups: i is a saddle candidate. The group with the lower maximum is
  persistent when rho_max / rho_i >= p_thresh (p_thresh = 4.2). If it is not, the two groups merge (the
  merged group keeps the denser maximum); otherwise both are kept and i joins the group of the denser
  point of B_i (following the discrete density gradient).

The text of the third rule writes the persistence test as "rho_max / rho_i <= p_thresh"; that contradicts
the paragraph before it ("maxima that exceed a persistence ratio threshold rho_max / rho_sad >= p_thresh")
and eq. B3 (a persistent peak is a 6.5 sigma excess *above* the saddle), so the ratio test used here is:
merge when rho_max / rho_sad < p_thresh (also when the ratio is undefined, inf / inf).
Every point gets a group: no point is left unassigned, so the labels are 1..K with no 0.

**Total order.** "Denser" is the strict order (rho descending, then point index ascending), so equal
densities (duplicate points) are well defined. "Nearest" is the order (distance ascending, then point
index ascending); point i itself is never among its neighbours.

**Vectorised form (identical result to the sequential algorithm).** Let parent(i) be the denser point of
B_i (i itself for a maximum). In every case of the sequential algorithm i ends in the group of parent(i)
at that time (when the groups merge, both are the same), and groups only ever grow or merge, so the final
group of i is the final group of peak(i), the maximum reached by following parents; peak(i) is found by
pointer jumping. Group merges happen only at saddle candidates i whose two B_i points descend to
different maxima a, b: an edge (a, b) at saddle density rho_i. Processing the edges in the sequential order
(denser saddle first) with a union-find whose root is the set's densest maximum reproduces the merges. Only
the densest edge between a given pair of maxima can matter: if the sets of a and b do not merge there,
at any later edge between them both sets' maxima are at least as high and the saddle is lower, so the
ratio only grows. The Python loop therefore runs over distinct pairs of adjacent maxima, not over points.

**Labels.** Groups are numbered 1..K by decreasing size, ties by the lowest point index in the group, so
the result does not depend on which maximum a group is stored under.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.spatial import cKDTree

from cosmoseg.errors import ValidationError

__all__ = ["knn_density", "persistence_clustering"]


def _as_points(points: np.ndarray | torch.Tensor, need: int, what: str) -> np.ndarray:
    """The points as a float64 (N, D) array, after checking shape, finiteness and count."""
    if isinstance(points, torch.Tensor):
        points = points.detach().cpu().numpy()
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise ValidationError(f"points must be a 2-D (N, D) array, got shape {tuple(arr.shape)}")
    if not np.isfinite(arr).all():
        raise ValidationError(f"points contain {int((~np.isfinite(arr)).sum())} NaN or infinite values")
    if arr.shape[0] < need + 1:
        raise ValidationError(f"{what} needs at least {need + 1} points, got {arr.shape[0]}")
    return arr


def _check_k(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValidationError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _density(tree: cKDTree, arr: np.ndarray, n_dens: int, dist: np.ndarray | None = None) -> np.ndarray:
    # k = n_dens + 1 because the query returns the point itself (or a duplicate) at distance 0. ``dist``: the
    # sorted distances of a query with at least n_dens + 1 neighbours, reused when given.
    if dist is None:
        dist, _ = tree.query(arr, k=n_dens + 1, workers=-1)
    r_k = dist[:, n_dens]
    d = arr.shape[1]
    volume = math.pi ** (d / 2) / math.gamma(d / 2 + 1)
    with np.errstate(divide="ignore"):
        return n_dens / (volume * r_k**d)


def knn_density(points: np.ndarray | torch.Tensor, n_dens: int = 20) -> np.ndarray:
    """The k-NN density of eq. (B1): rho_i = k / (V_D r_{k,i}^D), = 3 k / (4 pi r_{k,i}^3) in 3-D.

    ``points`` is (N, D); r_{k,i} is the distance to the k-th nearest other point, k = ``n_dens``.
    Returns a float64 (N,) array; inf where n_dens or more other points coincide with point i.
    """
    n_dens = _check_k("n_dens", n_dens)
    arr = _as_points(points, n_dens, "knn_density")
    return _density(cKDTree(arr), arr, n_dens)


def _neighbours(
    tree: cKDTree, arr: np.ndarray, k: int, initial: tuple[np.ndarray, np.ndarray] | None = None
) -> np.ndarray:
    """The k nearest other points of every point, (N, k), ordered by (distance, index), self excluded.

    cKDTree breaks distance ties arbitrarily, so rows whose last returned distance equals the distance of
    the (k+1)-th (self included) are queried again with more neighbours until the tie is fully inside.
    ``initial``: (dist, idx) of a query of all points with at least min(k + 2, N) neighbours, reused when given.
    """
    n = arr.shape[0]
    out = np.empty((n, k), dtype=np.int64)
    rows = np.arange(n)
    kq = min(k + 2, n) if initial is None else initial[0].shape[1]
    while rows.size:
        if initial is not None:
            (dist, idx), initial = initial, None
        else:
            dist, idx = tree.query(arr[rows], k=kq, workers=-1)
        order = np.lexsort((idx, dist), axis=1)
        dist = np.take_along_axis(dist, order, axis=1)
        idx = np.take_along_axis(idx, order, axis=1)
        unresolved = (dist[:, -1] == dist[:, k]) & (kq < n)
        done = ~unresolved
        # The first k + 1 entries are exact; drop self from them (or the last one when more than k + 1
        # points coincide and self, with a higher index, is not among them).
        first = idx[done, : k + 1]
        keep = first != rows[done, None]
        out[rows[done]] = _drop_self(first, keep, k)
        rows = rows[unresolved]
        kq = min(2 * kq, n)
    return out


def _drop_self(first: np.ndarray, keep: np.ndarray, k: int) -> np.ndarray:
    missing = keep.all(axis=1)
    keep = keep.copy()
    keep[missing, k] = False
    return first[keep].reshape(-1, k)


def _find(parent: np.ndarray, x: int) -> int:
    root = x
    while parent[root] != root:
        root = parent[root]
    while parent[x] != root:
        parent[x], x = root, parent[x]
    return root


def persistence_clustering(
    points: np.ndarray | torch.Tensor,
    *,
    n_dens: int = 20,
    n_ngb: int = 15,
    p_thresh: float = 4.2,
) -> np.ndarray | torch.Tensor:
    """Instance labels of pseudo-space points by the persistence clustering of Appendix B.

    ``points`` is (N, D) (numpy or torch). Returns int64 labels 1..K for every point, numbered by
    decreasing group size (ties: lowest point index), as a numpy array, or a torch tensor on the input's
    device when a tensor was given. See the module docstring for the algorithm.
    """
    n_dens = _check_k("n_dens", n_dens)
    n_ngb = _check_k("n_ngb", n_ngb)
    if not (isinstance(p_thresh, (int, float)) and math.isfinite(p_thresh) and p_thresh > 0):
        raise ValidationError(f"p_thresh must be a positive finite number, got {p_thresh!r}")
    arr = _as_points(points, max(n_dens, n_ngb), "persistence_clustering")
    n = arr.shape[0]
    tree = cKDTree(arr)
    # One k-NN query serves the density (k = n_dens + 1, self included) and the neighbours (n_ngb + 2).
    dist, idx = tree.query(arr, k=min(max(n_dens + 1, n_ngb + 2), n), workers=-1)
    rho = _density(tree, arr, n_dens, dist)

    # Strict "denser" order: rank 0 is the densest point; equal densities by point index.
    order = np.lexsort((np.arange(n), -rho))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)

    # B_i: the (up to) two closest denser points among the n_ngb nearest.
    nb = _neighbours(tree, arr, n_ngb, (dist, idx))
    denser = rank[nb] < rank[:, None]
    count = np.cumsum(denser, axis=1)
    has1 = count[:, -1] >= 1
    has2 = count[:, -1] >= 2
    b1 = nb[np.arange(n), np.argmax(denser, axis=1)]
    b2 = nb[np.arange(n), np.argmax(denser & (count == 2), axis=1)]
    b_denser = np.where(rank[b1] <= rank[b2], b1, b2)
    parent = np.where(has2, b_denser, np.where(has1, b1, np.arange(n)))

    # Descent to the maximum by pointer jumping.
    peak = parent.copy()
    while True:
        nxt = peak[peak]
        if np.array_equal(nxt, peak):
            break
        peak = nxt

    # Saddle edges between different maxima; keep the densest saddle per pair, process densest first.
    cand = np.flatnonzero(has2 & (peak[b1] != peak[b2]))
    pa, pb = peak[b1[cand]], peak[b2[cand]]
    lo, hi = np.minimum(pa, pb), np.maximum(pa, pb)
    srank = rank[cand]
    sel = np.lexsort((srank, hi, lo))
    lo, hi, srank, cand = lo[sel], hi[sel], srank[sel], cand[sel]
    first = np.ones(lo.size, dtype=bool)
    first[1:] = (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])
    lo, hi, srank, cand = lo[first], hi[first], srank[first], cand[first]
    by_saddle = np.argsort(srank, kind="stable")

    uf = np.arange(n)  # union-find over maxima; a set's root is its densest maximum
    with np.errstate(invalid="ignore"):
        for e in by_saddle.tolist():
            ra, rb = _find(uf, int(lo[e])), _find(uf, int(hi[e]))
            if ra == rb:
                continue
            top, low = (ra, rb) if rank[ra] < rank[rb] else (rb, ra)
            if not (rho[low] / rho[cand[e]] >= p_thresh):
                uf[low] = top

    roots = uf[peak]
    while True:
        nxt = uf[roots]
        if np.array_equal(nxt, roots):
            break
        roots = nxt
    labels = _relabel(roots)
    if isinstance(points, torch.Tensor):
        return torch.from_numpy(labels).to(points.device)
    return labels


def _relabel(groups: np.ndarray) -> np.ndarray:
    """Labels 1..K by decreasing group size, ties by the lowest point index in the group."""
    uniq, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    lowest = np.full(uniq.size, groups.size, dtype=np.int64)
    np.minimum.at(lowest, inverse, np.arange(groups.size))
    new = np.empty(uniq.size, dtype=np.int64)
    new[np.lexsort((lowest, -counts))] = np.arange(1, uniq.size + 1)
    return new[inverse].astype(np.int64)
