"""Full-box prediction from crops (López-Cano et al., appendix D), periodic and model-agnostic.

A network sees an input crop of ``size_in``^3 voxels and its prediction is kept on the central output crop of
``size_out``^3 voxels (margin ``(size_in - size_out) / 2`` on every side). The output crops tile the periodic box
on a lattice of step ``size_out``, so the box side ``n`` must be a multiple of ``size_out``.

* Semantic maps (:func:`predict_semantic`): the output crops of one lattice are written side by side.
* Instance maps (:func:`predict_instances`): the instance predictor runs on two lattices, the second shifted by
  half a step along every axis. Every crop's local labels get a globally unique id *by construction*
  (``global = crop_index * stride + local`` with ``stride = max local label + 1``, and the second lattice's ids
  are offset past the first's), so no label is ever reused across crops — unlike the paper's public code, whose
  label counter resets on an empty crop and merges distinct haloes. The two label maps are then merged
  (:func:`merge_lattices`) with a graph whose nodes are the instances of both lattices and whose edges join an
  instance of lattice A and one of lattice B when their IoU within a half-step cell ("quadrant" Q of eq. D2; a
  crop of A and a crop of B intersect in exactly one such cell) is at least ``iou_threshold``; each networkx
  connected component becomes one halo.

Final label of a voxel (step v of appendix D, with our choice for background disagreements):

* foreground in both lattices: the component of its A instance if both components agree; otherwise the
  component with more voxels in total (voxels counted over both lattice maps; ties go to lattice A);
* foreground in only one lattice: that lattice's component (the foreground is the union of both lattices);
* background in both: 0.

Components are finally relabelled 1..K by decreasing voxel count (ties: the one whose first voxel in C order comes
first), components left with no voxel are dropped.

**Tiles as tasks** (:class:`Tiling`). Every lattice can run over cubic tiles of ``side`` voxels (a multiple of the
lattice step that divides ``n``), one task per tile through a :data:`~cosmoseg.pipeline.executor.TaskMap` (in this
process, or on a Dask cluster when the run's executor says so). A task gets only its tile's input, the periodic
sub-volume of ``side + 2 * margin`` voxels around the tile, and returns the predictions of the crops whose output
corner lies in the tile; the crops are the whole-box crops, so the tiled maps equal the whole-box ones (bit for bit
for a crop predictor that does not depend on which crops share its batch). Instance labels are made globally unique
and the two lattices merged (:func:`merge_lattices`) once, over the whole box, after every tile is back. A worker
holds one tile: ``C * (side + 2 * margin)^3`` input values, the batch's network activations and the tile's outputs,
whatever the box side.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable
from typing import Any

import networkx as nx
import torch

from cosmoseg.mesh.crops import crop_lattice, extract_crops, place_crops
from cosmoseg.pipeline.executor import LazySequence, TaskMap, local_map

__all__ = [
    "Tiling",
    "crop_lattice",
    "extract_crops",
    "merge_lattices",
    "place_crops",
    "predict_instances",
    "predict_lattice_labels",
    "predict_semantic",
]

SemanticPredictor = Callable[[torch.Tensor], torch.Tensor]
InstancePredictor = Callable[[torch.Tensor], torch.Tensor]
Progress = Callable[..., Iterable[Any]]
"""``progress(iterable, total=..., description=...)`` yielding the items of ``iterable`` while it shows how far the
loop is (``RunContext.progress`` in a stage); ``None`` is silent."""


@dataclasses.dataclass(frozen=True)
class Tiling:
    """Run a crop lattice over cubic tiles of ``side`` voxels, one task per tile (see the module docstring).

    side: the tile side in voxels, a multiple of the lattice step that divides the box side; ``map_tasks``: where
    the tasks run (:data:`~cosmoseg.pipeline.executor.TaskMap`; in this process by default). The crop predictor
    travels to the tasks with its model, so on a cluster it must pickle (closures over modules and tensors do).
    """

    side: int
    map_tasks: TaskMap = local_map


def _check_sizes(n: int, size_in: int, size_out: int, *, even_step: bool = False) -> int:
    """Validate the crop geometry; return the margin between input and output crops."""
    if size_out <= 0 or size_in <= 0:
        raise ValueError(f"crop sizes must be positive, got size_in={size_in}, size_out={size_out}")
    if size_out > size_in:
        raise ValueError(f"size_out={size_out} must not exceed size_in={size_in}")
    if (size_in - size_out) % 2:
        raise ValueError(
            f"size_in - size_out = {size_in - size_out} must be even so the output crop is centred "
            f"(size_in={size_in}, size_out={size_out})"
        )
    if n % size_out:
        raise ValueError(f"box side n={n} must be a multiple of the lattice step {size_out} (= size_out)")
    if even_step and size_out % 2:
        raise ValueError(f"the instance lattices are offset by half a step: size_out={size_out} must be even")
    return (size_in - size_out) // 2


def _run_lattice(
    fields: torch.Tensor,
    predict: Callable[[torch.Tensor], torch.Tensor],
    size_in: int,
    size_out: int,
    batch_size: int,
    offset: int,
    progress: Progress | None = None,
    description: str = "crops",
    tiling: Tiling | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Predictions ``(M, [C,] s_out, s_out, s_out)`` of every crop of one lattice, and the output-crop corners.

    ``progress`` (see :data:`Progress`) is advanced once per batch of ``batch_size`` crops, with ``description``
    (once per tile with ``tiling``: the crops then run tile by tile as tasks, :func:`_run_tiles`)."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if fields.ndim != 4:
        raise ValueError(f"fields must have shape (C, n, n, n), got {tuple(fields.shape)}")
    n = fields.shape[1]
    margin = _check_sizes(n, size_in, size_out)
    starts = crop_lattice(n, size_out, offset)
    if tiling is not None:
        return _run_tiles(fields, predict, starts, size_in, size_out, batch_size, offset, tiling, progress, description)
    outs = []
    batches: Iterable[int] = range(0, len(starts), batch_size)
    if progress is not None:
        n_crops = len(starts)
        batches = progress(batches, total=-(-n_crops // batch_size), description=f"{description} ({n_crops} crops)")
    for b in batches:
        crops = extract_crops(fields, starts[b : b + batch_size] - margin, size_in)
        pred = predict(crops)
        outs.append(_checked_predictions(pred, len(crops), size_out))
    return torch.cat(outs), starts


def _checked_predictions(pred: Any, n_crops: int, size_out: int) -> torch.Tensor:
    pred = torch.as_tensor(pred)
    if pred.ndim < 4 or pred.shape[0] != n_crops or tuple(pred.shape[-3:]) != (size_out,) * 3:
        expected = f"({n_crops}, [channels,] {size_out}, {size_out}, {size_out})"
        raise ValueError(f"the crop predictor returned shape {tuple(pred.shape)}, expected {expected}")
    return pred


def _predict_tile(
    job: tuple[torch.Tensor, torch.Tensor],
    *,
    predict: Callable[[torch.Tensor], torch.Tensor],
    size_in: int,
    size_out: int,
    batch_size: int,
) -> torch.Tensor:
    """One tile's task: the predictions of its crops, ``job = (sub-volume (C, S, S, S), input corners (M, 3))`` with
    the corners inside the sub-volume (no wrap), in batches of ``batch_size``, under inference mode."""
    volume, corners = job
    outs = []
    with torch.inference_mode():
        for b in range(0, len(corners), batch_size):
            crops = extract_crops(volume, corners[b : b + batch_size], size_in)
            outs.append(_checked_predictions(predict(crops), len(crops), size_out))
    return torch.cat(outs)


def _run_tiles(
    fields: torch.Tensor,
    predict: Callable[[torch.Tensor], torch.Tensor],
    starts: torch.Tensor,
    size_in: int,
    size_out: int,
    batch_size: int,
    offset: int,
    tiling: Tiling,
    progress: Progress | None,
    description: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """What the loop of :func:`_run_lattice` returns, the crops grouped into the tiles of ``tiling``, one task each.

    Tile ``(a, b, c)`` covers the output voxels ``offset + side * (a, b, c) + [0, side)^3`` (periodic): the crops whose
    output corner lies there. Its task gets the sub-volume from ``side * (a, b, c) + offset - margin`` of side
    ``side + 2 * margin`` and the crops' input corners in it."""
    n, side = fields.shape[1], tiling.side
    if not isinstance(side, int) or side <= 0 or side % size_out or n % side:
        raise ValueError(
            f"tile side {side!r} must be a positive multiple of the lattice step {size_out} that divides the box "
            f"side {n}"
        )
    margin = (size_in - size_out) // 2
    per_axis = n // side
    tile_of = ((starts - offset) % n) // side  # (M, 3)
    tile_ids = (tile_of[:, 0] * per_axis + tile_of[:, 1]) * per_axis + tile_of[:, 2]
    members = [torch.nonzero(tile_ids == tile).reshape(-1) for tile in range(per_axis**3)]

    def job(tile: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The tile's input sub-volume and its crops' input corners in it, cut when its task is sent."""
        a, b, c = tile // per_axis**2, (tile // per_axis) % per_axis, tile % per_axis
        corner = torch.tensor([a, b, c], dtype=torch.int64) * side + offset
        volume = extract_crops(fields, (corner - margin)[None], side + 2 * margin)[0]
        return volume, (starts[members[tile]] - corner) % n

    jobs = LazySequence(job, len(members))
    task = functools.partial(_predict_tile, predict=predict, size_in=size_in, size_out=size_out, batch_size=batch_size)
    results: Iterable[tuple[int, torch.Tensor]] = tiling.map_tasks(task, jobs)
    if progress is not None:
        tiles = f"{len(starts)} crops in {len(jobs)} tiles of {side}^3"
        results = progress(results, total=len(jobs), description=f"{description} ({tiles})")
    preds: torch.Tensor | None = None
    for index, pred in results:
        if preds is None:
            preds = torch.empty((len(starts), *pred.shape[1:]), dtype=pred.dtype)
        preds[members[index]] = pred.cpu()
    assert preds is not None
    return preds, starts


def predict_semantic(
    fields: torch.Tensor,
    predict: SemanticPredictor,
    size_in: int,
    size_out: int,
    batch_size: int = 8,
    offset: int = 0,
    progress: Progress | None = None,
    tiling: Tiling | None = None,
) -> torch.Tensor:
    """Full-box ``([C',] n, n, n)`` map from ``predict(crops (B, C, s_in^3)) -> (B, [C',] s_out^3)`` on one periodic
    lattice; ``progress`` (:data:`Progress`) advances once per batch of crops; ``tiling``: the crops run tile by tile
    as tasks (:class:`Tiling`), the same map."""
    preds, starts = _run_lattice(fields, predict, size_in, size_out, batch_size, offset, progress, "semantic", tiling)
    return place_crops(preds, starts, fields.shape[1])


def predict_lattice_labels(
    fields: torch.Tensor,
    predict: InstancePredictor,
    size_in: int,
    size_out: int,
    batch_size: int = 8,
    offset: int = 0,
    id_offset: int = 0,
    progress: Progress | None = None,
    description: str = "instance lattice",
    tiling: Tiling | None = None,
) -> torch.Tensor:
    """Full-box int64 labels of one lattice, unique across crops by construction.

    ``predict`` returns non-negative integer labels per crop (0 = background, labels local to the crop). The
    voxel with local label ``l > 0`` of crop ``m`` gets ``id_offset + m * stride + l`` with
    ``stride = max local label + 1`` (over all crops): no counter, so an empty crop changes nothing. ``progress``
    (:data:`Progress`) advances once per batch of crops, with ``description``; ``tiling``: the crops run tile by
    tile as tasks (:class:`Tiling`), the ids made unique here once every tile is back.
    """
    preds, starts = _run_lattice(fields, predict, size_in, size_out, batch_size, offset, progress, description, tiling)
    if preds.ndim != 4:
        raise ValueError(f"the instance predictor must return (B, {size_out}, {size_out}, {size_out}) labels per crop")
    if preds.is_floating_point() or preds.dtype == torch.bool:
        raise ValueError(f"the instance predictor must return integer labels, got {preds.dtype}")
    preds = preds.to(torch.int64)
    if preds.numel() and int(preds.min()) < 0:
        raise ValueError("the instance predictor returned negative labels (0 is background, instances > 0)")
    stride = int(preds.max()) + 1 if preds.numel() else 1
    if (len(preds) + 1) * stride + id_offset >= 2**62:
        raise ValueError(f"local labels too large to make global ids (max local label {stride - 1})")
    crop_ids = torch.arange(len(preds), dtype=torch.int64)[:, None, None, None]
    global_ids = torch.where(preds > 0, id_offset + crop_ids * stride + preds, torch.zeros_like(preds))
    return place_crops(global_ids, starts, fields.shape[1])


def _cell_index(n: int, cell: int, offset: int) -> torch.Tensor:
    """Flat index of the half-step cell (side ``cell``, corners at ``offset + cell * k``) of every voxel."""
    c = ((torch.arange(n, dtype=torch.int64) - offset) % n) // cell
    m = n // cell
    return (c[:, None, None] * m * m + c[None, :, None] * m + c[None, None, :]).reshape(-1)


def _lookup(keys_sorted: torch.Tensor, values: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    return values[torch.searchsorted(keys_sorted, query)]


def _compact(flat: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Labels ``flat`` (int64 >= 0) renumbered 1..K in order of their ids (0 stays 0), and K; O(N), no sort."""
    present = torch.bincount(flat) > 0
    present[0] = True
    index = torch.cumsum(present, 0) - 1
    return index[flat], int(present.sum()) - 1


def merge_lattices(
    labels_a: torch.Tensor,
    labels_b: torch.Tensor,
    cell: int,
    offset: int = 0,
    iou_threshold: float = 0.5,
) -> torch.Tensor:
    """Merge two periodic instance maps of offset lattices into one ``(n, n, n)`` int64 map labelled 1..K.

    ``labels_a`` / ``labels_b``: int maps (0 = background) whose ids are unique across crops and lattices;
    ``cell``: half the lattice step (the side of the quadrants Q over which IoUs are computed); ``offset``: the
    corner of lattice A (cells have corners at ``offset + cell * k``). See the module docstring for the rules.
    """
    if labels_a.shape != labels_b.shape or labels_a.ndim != 3:
        raise ValueError(
            f"label maps must share a (n, n, n) shape, got {tuple(labels_a.shape)}, {tuple(labels_b.shape)}"
        )
    n = labels_a.shape[0]
    if cell <= 0 or n % cell:
        raise ValueError(f"box side n={n} must be a multiple of the cell side {cell}")
    flat_a, flat_b = labels_a.reshape(-1).to(torch.int64), labels_b.reshape(-1).to(torch.int64)
    if bool((flat_a < 0).any()) or bool((flat_b < 0).any()):
        raise ValueError("instance labels must be >= 0 (0 = background)")
    # Compact ids: A instances are nodes 1..na, B instances na+1..na+nb (0 = background).
    a, na = _compact(flat_a)
    b, nb = _compact(flat_b)
    cells = _cell_index(n, cell, offset)
    ncells = (n // cell) ** 3

    # Per-cell instance sizes |l ∩ Q| for both lattices (foreground only), keyed by cell * (count + 1) + label.
    fg_a, fg_b = a > 0, b > 0
    key_a, cnt_a = torch.unique(cells[fg_a] * (na + 1) + a[fg_a], return_counts=True)
    key_b, cnt_b = torch.unique(cells[fg_b] * (nb + 1) + b[fg_b], return_counts=True)
    # Intersections |l1 ∩ l2 ∩ Q| over (cell, l1, l2); all three keys stay below ncells * (na+1) * (nb+1).
    both = fg_a & fg_b
    if ncells * (na + 1) * (nb + 1) >= 2**62:
        raise ValueError("too many instances to index their overlaps")
    triple = (cells[both] * (na + 1) + a[both]) * (nb + 1) + b[both]
    key_ab, inter = torch.unique(triple, return_counts=True)
    pb = key_ab % (nb + 1)
    pa = (key_ab // (nb + 1)) % (na + 1)
    pc = key_ab // ((nb + 1) * (na + 1))
    size_a = _lookup(key_a, cnt_a, pc * (na + 1) + pa)
    size_b = _lookup(key_b, cnt_b, pc * (nb + 1) + pb)
    iou = inter.double() / (size_a + size_b - inter).double()
    keep = iou >= iou_threshold

    graph = nx.Graph()
    graph.add_nodes_from(range(1, na + nb + 1))
    graph.add_edges_from(zip(pa[keep].tolist(), (pb[keep] + na).tolist(), strict=True))
    component = torch.zeros(na + nb + 1, dtype=torch.int64)
    for k, nodes in enumerate(nx.connected_components(graph), start=1):
        component[torch.tensor(sorted(nodes), dtype=torch.int64)] = k
    ncomp = int(component.max())
    comp_a = component[a]  # background (node 0) stays 0
    comp_b = torch.where(b > 0, component[b + na], torch.zeros_like(b))

    total = torch.bincount(comp_a, minlength=ncomp + 1) + torch.bincount(comp_b, minlength=ncomp + 1)
    total[0] = 0
    prefer_b = (comp_a == 0) | ((comp_b > 0) & (total[comp_b] > total[comp_a]))
    final = torch.where(prefer_b, comp_b, comp_a)

    # Relabel 1..K by decreasing size, ties by first voxel in C order; empty components dropped.
    counts = torch.bincount(final, minlength=ncomp + 1)
    first = torch.full((ncomp + 1,), final.numel(), dtype=torch.int64)
    first.scatter_reduce_(0, final, torch.arange(final.numel(), dtype=torch.int64), reduce="amin")
    present = torch.nonzero(counts[1:] > 0).reshape(-1) + 1
    order = present[torch.sort(first[present], stable=True).indices]
    order = order[torch.sort(-counts[order], stable=True).indices]
    relabel = torch.zeros(ncomp + 1, dtype=torch.int64)
    relabel[order] = torch.arange(1, len(order) + 1, dtype=torch.int64)
    return relabel[final].reshape(labels_a.shape)


def predict_instances(
    fields: torch.Tensor,
    predict: InstancePredictor,
    size_in: int,
    size_out: int,
    batch_size: int = 8,
    offset: int = 0,
    iou_threshold: float = 0.5,
    progress: Progress | None = None,
    tiling: Tiling | None = None,
) -> torch.Tensor:
    """Full-box instance labels ``(n, n, n)`` (int64, 0 = background, 1..K by decreasing size), appendix D.

    ``predict(crops (B, C, s_in^3)) -> (B, s_out^3)`` integer labels local to each crop. Runs on lattice A
    (corners ``offset + size_out * k``) and lattice B (shifted by ``size_out / 2``), then :func:`merge_lattices`.
    ``progress`` (:data:`Progress`) advances once per batch of crops of each lattice. ``tiling``: both lattices run
    tile by tile as tasks (:class:`Tiling`); the merge is done once, here, over the whole box.
    """
    if fields.ndim != 4:
        raise ValueError(f"fields must have shape (C, n, n, n), got {tuple(fields.shape)}")
    _check_sizes(fields.shape[1], size_in, size_out, even_step=True)
    sizes = (size_in, size_out, batch_size)
    labels_a = predict_lattice_labels(
        fields, predict, *sizes, offset, progress=progress, description="instance A", tiling=tiling
    )
    shifted, id_b = offset + size_out // 2, int(labels_a.max()) + 1
    labels_b = predict_lattice_labels(
        fields, predict, *sizes, shifted, id_b, progress=progress, description="instance B", tiling=tiling
    )
    return merge_lattices(labels_a, labels_b, size_out // 2, offset, iou_threshold)
