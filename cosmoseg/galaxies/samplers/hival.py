"""HiVAl classes of the galaxy-property space + a halo → class classifier (method ``"hival"``).

1. **HiVAl** (Hierarchical Voronoi Allocation) partitions the D-dimensional standardised galaxy-property space into
   ``n_classes`` classes. It starts from the Voronoi cells of the training points (or, above ``max_seeds`` points,
   of ``max_seeds`` random training points, every point going to the cell of its nearest seed) and, level by level,
   merges every cell with the neighbour that shares the largest face, until exactly ``n_classes`` cells remain.

   *Face-size proxy.* Exact Voronoi face areas in D > 2 are too expensive, so two cells are neighbours when a k-NN
   edge (``k_neighbors`` nearest training points) joins a point of one to a point of the other, and their shared
   face size is ``sum over those crossing edges of 1 / (1 + d_ij / s)`` (``d_ij`` the edge length, ``s`` the median
   k-NN distance): for large cells it is the number of point pairs across the face, for single points it prefers the
   nearest neighbour. A disconnected k-NN graph is joined by its shortest inter-component edges first.

   *One level.* Cells are paired by a locally-dominant matching (repeatedly merge mutual best neighbours among the
   cells still free; ties go to the lower index), then every cell left without a partner joins the pair of its best
   neighbour. So every cell merges at every full level, cells on the outer hull included — the published version
   never merged hull cells, leaving single-galaxy classes that return training galaxies exactly and a floor on the
   class count; here they are merged like any other. After ``l`` full levels every cell holds at least ``2**l``
   points; a level that would overshoot ``n_classes`` merges only its largest-face pairs. Guaranteed minimum class
   size: ``min_class_size(N0, n_classes) = 2 ** floor(log3(N0 / n_classes))`` with ``N0`` initial cells (each full
   level divides the cell count by at most 3).

2. A **classifier** MLP (cross-entropy) maps the standardised halo properties to class probabilities.

3. **Sampling**: draw a class from the predicted probabilities, then a value inside it: a random training member
   ``m`` of the class, shrunk towards the class mean ``mu`` and completed with Gaussian noise of the class covariance
   ``S = L L^T``: ``mu + sqrt(1 - j^2) (m - mu) + j L eps`` (``j = jitter`` in [0, 1]); this keeps the class mean and
   covariance exactly, ``j = 0`` returns training galaxies, ``j = 1`` a Gaussian of the class mean / covariance.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from cosmoseg.errors import ValidationError
from cosmoseg.galaxies.samplers.base import JointSampler, Progress, rank_rows, register_sampler
from cosmoseg.nn.distributed import data_parallel, mean_over_ranks

__all__ = ["HiValSampler", "hival_partition", "min_class_size"]

DEFAULTS: dict[str, Any] = {
    "n_classes": 64,
    "k_neighbors": 10,
    "max_seeds": 50000,
    "jitter": 0.5,
    "hidden_features": 64,
    "hidden_layers": 2,
    "epochs": 50,
    "batch_size": 512,
    "lr": 1e-3,
    "weight_decay": 0.0,
}


def min_class_size(n_cells: int, n_classes: int) -> int:
    """Lower bound on the class size :func:`hival_partition` guarantees, starting from ``n_cells`` single cells."""
    if n_cells <= n_classes:
        return 1
    return 2 ** math.floor(math.log(n_cells / n_classes, 3) + 1e-9)


# ---- graph helpers ----------------------------------------------------------------------------------------------
def _knn_edges(y: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Undirected k-NN edges (i < j) of points ``y (N, D)`` and their lengths, joined into one connected graph."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    n = len(y)
    k = min(k, n - 1)
    tree = cKDTree(y)
    dist, idx = tree.query(y, k=k + 1)
    i = np.repeat(np.arange(n), k)
    j = idx[:, 1:].ravel()
    d = dist[:, 1:].ravel()
    a, b = np.minimum(i, j), np.maximum(i, j)
    key = np.unique(a.astype(np.int64) * n + b, return_index=True)[1]
    a, b, d = a[key], b[key], d[key]
    while True:  # join components by their shortest connecting edge, component by component
        graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
        ncomp, comp = connected_components(graph, directed=False)
        if ncomp == 1:
            break
        largest = np.bincount(comp).argmax()
        extra_a, extra_b, extra_d = [], [], []
        for c in range(ncomp):
            if c == largest:
                continue
            inside, outside = np.flatnonzero(comp == c), np.flatnonzero(comp != c)
            dd, jj = cKDTree(y[outside]).query(y[inside], k=1)
            best = int(np.argmin(dd))
            p, q = int(inside[best]), int(outside[jj[best]])
            extra_a.append(min(p, q))
            extra_b.append(max(p, q))
            extra_d.append(float(dd[best]))
        a = np.concatenate([a, extra_a]).astype(np.int64)
        b = np.concatenate([b, extra_b]).astype(np.int64)
        d = np.concatenate([d, extra_d])
    return a.astype(np.int64), b.astype(np.int64), d


def _cell_edges(labels: np.ndarray, a: np.ndarray, b: np.ndarray, w: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
    """Cell adjacency: (cell_a < cell_b, summed face weight) over the point edges that cross cells."""
    la, lb = labels[a], labels[b]
    cross = la != lb
    ca, cb = np.minimum(la[cross], lb[cross]), np.maximum(la[cross], lb[cross])
    key, inv = np.unique(ca * np.int64(k) + cb, return_inverse=True)
    weight = np.bincount(inv.ravel(), weights=w[cross], minlength=len(key))
    return key // k, key % k, weight


def _best_neighbour(src: np.ndarray, dst: np.ndarray, w: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``k`` cells the neighbour of largest weight (ties: lowest index; -1 where none) and the weight."""
    order = np.lexsort((dst, -w, src))
    s = src[order]
    first = np.ones(len(s), dtype=bool)
    first[1:] = s[1:] != s[:-1]
    best = np.full(k, -1, dtype=np.int64)
    best[s[first]] = dst[order][first]
    weight = np.zeros(k)
    weight[s[first]] = w[order][first]
    return best, weight


def _merge_level(ca: np.ndarray, cb: np.ndarray, w: np.ndarray, k: int, budget: int) -> np.ndarray:
    """Union edges (u, v) of one HiVAl level over ``k`` cells, merging away at most ``budget`` cells."""
    free = np.ones(k, dtype=bool)
    pa, pb, pw = [], [], []
    for _ in range(64):  # locally-dominant matching: each round matches at least one mutual pair
        live = free[ca] & free[cb]
        if not live.any():
            break
        ea, eb, ew = ca[live], cb[live], w[live]
        best, bw = _best_neighbour(np.concatenate([ea, eb]), np.concatenate([eb, ea]), np.concatenate([ew, ew]), k)
        cells = np.flatnonzero(best >= 0)
        mutual = cells[(best[best[cells]] == cells) & (cells < best[cells])]
        partner = best[mutual]
        pa.append(mutual)
        pb.append(partner)
        pw.append(bw[mutual])
        free[mutual] = False
        free[partner] = False
    u = np.concatenate(pa) if pa else np.zeros(0, np.int64)
    v = np.concatenate(pb) if pb else np.zeros(0, np.int64)
    uw = np.concatenate(pw) if pw else np.zeros(0)
    if len(u) >= budget:  # partial (last) level: keep only the largest faces
        keep = np.argsort(-uw, kind="stable")[:budget]
        return np.stack([u[keep], v[keep]], 1)
    left = np.flatnonzero(free)  # cells without a partner join the pair of their best neighbour
    best, _ = _best_neighbour(np.concatenate([ca, cb]), np.concatenate([cb, ca]), np.concatenate([w, w]), k)
    left = left[best[left] >= 0][: budget - len(u)]
    return np.concatenate([np.stack([u, v], 1), np.stack([left, best[left]], 1)])


def hival_partition(
    y: np.ndarray, n_classes: int, *, k_neighbors: int = 10, max_seeds: int | None = None, seed: int = 0
) -> np.ndarray:
    """HiVAl class labels ``(N,)`` in ``[0, n_classes)`` of points ``y (N, D)`` (see the module docstring).

    Every class is non-empty and connected in the k-NN graph; classes are numbered by their first point.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    if not 1 <= n_classes <= n:
        raise ValidationError(f"n_classes must be in [1, {n}] (the number of points), got {n_classes}")
    if max_seeds is not None and n > max_seeds:
        seeds = np.random.default_rng(seed).choice(n, size=max_seeds, replace=False)
        labels = cKDTree(y[seeds]).query(y, k=1)[1].astype(np.int64)
        labels = np.unique(labels, return_inverse=True)[1].ravel()
    else:
        labels = np.arange(n, dtype=np.int64)
    a, b, d = _knn_edges(y, k_neighbors)
    scale = float(np.median(d)) if len(d) and np.median(d) > 0 else 1.0
    w = 1.0 / (1.0 + d / scale)
    k = int(labels.max()) + 1
    while k > n_classes:
        ca, cb, cw = _cell_edges(labels, a, b, w, k)
        pairs = _merge_level(ca, cb, cw, k, k - n_classes)
        if len(pairs) == 0:
            raise ValidationError("HiVAl could not merge further: the neighbour graph is disconnected")
        graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(k, k))
        k, comp = connected_components(graph, directed=False)  # union-find of the level's merges
        labels = comp[labels].astype(np.int64)
    _, first = np.unique(labels, return_index=True)
    rank = np.empty(k, dtype=np.int64)
    rank[np.argsort(first)] = np.arange(k)
    return rank[labels]


# ---- sampler ----------------------------------------------------------------------------------------------------
def _mlp(c: int, k: int, hidden: int, layers: int) -> torch.nn.Sequential:
    mods: list[torch.nn.Module] = []
    width = c
    for _ in range(layers):
        mods += [torch.nn.Linear(width, hidden), torch.nn.SiLU()]
        width = hidden
    mods.append(torch.nn.Linear(width, k))
    return torch.nn.Sequential(*mods)


@register_sampler
class HiValSampler(JointSampler):
    """HiVAl classes + classifier (see the module docstring).

    Hyper-parameters (defaults in ``DEFAULTS``): ``n_classes``, ``k_neighbors`` (k-NN graph of the face-size proxy),
    ``max_seeds`` (initial Voronoi seeds cap, 0 = all points), ``jitter`` (in [0, 1]), ``hidden_features``,
    ``hidden_layers``, ``epochs``, ``batch_size``, ``lr``, ``weight_decay`` (classifier).

    Learned state: ``labels (N,)`` class of each training row, ``members (N, D)`` standardised training galaxies
    sorted by class, ``offsets (K + 1,)`` class slices of ``members``, ``means (K, D)``, ``chol (K, D, D)``
    Cholesky factors of the class covariances (standardised units), ``net`` the classifier weights.
    """

    method = "hival"

    def __init__(self, condition_names: Any, target_names: Any, **hyper: Any) -> None:
        unknown = set(hyper) - set(DEFAULTS)
        if unknown:
            raise ValidationError(f"unknown hival hyper-parameter(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}")
        super().__init__(condition_names, target_names, **{**DEFAULTS, **hyper})
        if not 0.0 <= float(self.hyper["jitter"]) <= 1.0:
            raise ValidationError(f"jitter must be in [0, 1], got {self.hyper['jitter']}")
        self.net: torch.nn.Sequential | None = None
        self.labels = self.members = self.offsets = self.means = self.chol = torch.zeros(0)

    def _build(self, k: int) -> torch.nn.Sequential:
        h = self.hyper
        return _mlp(len(self.condition_names), k, int(h["hidden_features"]), int(h["hidden_layers"]))

    def _fit(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator, progress: Progress | None) -> None:
        h = self.hyper
        n, d = y.shape
        k = int(h["n_classes"])
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        max_seeds = int(h["max_seeds"]) or None
        labels = torch.from_numpy(
            hival_partition(y.numpy(), k, k_neighbors=int(h["k_neighbors"]), max_seeds=max_seeds, seed=seed)
        )
        order = torch.argsort(labels, stable=True)
        counts = torch.bincount(labels, minlength=k)
        self.labels = labels
        self.members = y[order].clone()
        self.offsets = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(counts, 0)])
        yd = y.double()
        means = torch.zeros((k, d), dtype=torch.float64).index_add_(0, labels, yd) / counts[:, None]
        dev = yd - means[labels]
        cov = torch.zeros((k, d, d), dtype=torch.float64).index_add_(0, labels, dev[:, :, None] * dev[:, None, :])
        cov = cov / counts[:, None, None] + 1e-6 * torch.eye(d, dtype=torch.float64)
        self.means, self.chol = means.float(), torch.linalg.cholesky(cov).float()

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = self._build(k)
        opt = torch.optim.Adam(self.net.parameters(), lr=float(h["lr"]), weight_decay=float(h["weight_decay"]))
        bs = max(1, min(int(h["batch_size"]), n))
        network = data_parallel(self.net)  # DDP under a process group: each rank fits its share of a mini-batch
        for epoch in range(int(h["epochs"])):
            perm = torch.randperm(n, generator=generator)
            total = 0.0
            for start in range(0, n, bs):
                idx = perm[start : start + bs]
                rows, factor = rank_rows(idx)
                loss = torch.nn.functional.cross_entropy(network(x[rows]), labels[rows])
                if factor != 1.0:
                    loss = loss * factor
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
            total = mean_over_ranks(total)
            if progress is not None:
                progress(epoch, total / n)
        self.net.eval()

    def class_probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """``(M, K)`` class probabilities for standardised halo properties ``x (M, C)``."""
        assert self.net is not None
        with torch.no_grad():
            return torch.softmax(self.net(x), dim=1)

    def _sample(self, x: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
        m, d = len(x), self.members.shape[1]
        cls = torch.multinomial(self.class_probabilities(x), n, replacement=True, generator=generator).T  # (n, M)
        u = torch.rand((n, m), generator=generator)
        eps = torch.randn((n, m, d), generator=generator)
        start, count = self.offsets[cls], self.offsets[cls + 1] - self.offsets[cls]
        member = self.members[start + torch.clamp((u * count).long(), max=count - 1)]
        mu = self.means[cls]
        j = float(self.hyper["jitter"])
        noise = torch.einsum("nmij,nmj->nmi", self.chol[cls], eps)
        return mu + math.sqrt(1.0 - j * j) * (member - mu) + j * noise

    def state_dict(self) -> dict[str, Any]:
        if self.net is None:
            raise ValidationError("the hival sampler is not fitted")
        return {
            "labels": self.labels.clone(),
            "members": self.members.clone(),
            "offsets": self.offsets.clone(),
            "means": self.means.clone(),
            "chol": self.chol.clone(),
            "net": {k: v.detach().clone() for k, v in self.net.state_dict().items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for name in ("labels", "members", "offsets", "means", "chol"):
            setattr(self, name, state[name].clone())
        self.net = self._build(len(self.means))
        self.net.load_state_dict(dict(state["net"]))
        self.net.eval()
