"""Tiled full-box protohalo prediction: the lattices run tile by tile as tasks (in this process or on a Dask cluster)
and give the whole-box segmentation, labels bit for bit."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cosmoseg.data import Box, Field
from cosmoseg.errors import ValidationError
from cosmoseg.pipeline.executor import executor_config, local_map, open_executor
from cosmoseg.protohalo.panoptic import (
    calibrate_threshold,
    predict_panoptic,
    predict_panoptic_offsets,
    semantic_probabilities,
)

CLUSTER = {"n_dens": 8, "n_ngb": 8, "p_thresh": 4.2}


def _fields(n: int, seed: int = 3) -> Field:
    values = torch.randn((2, n, n, n), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return Field(values=values, box=Box(length=2.0 * n), channels=("delta", "phi"))


def _conv_net(c_in: int, c_out: int, seed: int) -> nn.Module:
    """Two valid 3³ convolutions: crops of s_in give outputs of s_in - 4, a receptive field crossing the tiles."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv3d(c_in, 4, 3), nn.Tanh(), nn.Conv3d(4, c_out, 3)).double()


class Counting:
    """A task map that runs in this process and records how many tasks it was given."""

    def __init__(self) -> None:
        self.tasks: list[int] = []

    def __call__(self, function, items):  # type: ignore[no-untyped-def]
        self.tasks.append(len(items))
        return local_map(function, items)


@pytest.mark.parametrize(("keep", "offset", "tile"), [(None, 0, 8), (None, 5, 16), (4, 3, 8)])
def test_tiles_in_this_process_give_the_whole_box(keep: int | None, offset: int, tile: int) -> None:
    """16³ box, crops 12 -> 8 (or their central 4): every tiling and lattice offset gives the whole-box labels and
    probabilities exactly, and each lattice runs as (16 / tile)³ tasks."""
    fields = _fields(16)
    sem, ins = _conv_net(2, 1, 0), _conv_net(5, 3, 1)
    probs = semantic_probabilities(fields, sem, size_in=12, size_out=8)
    kw = {"size_in": 12, "size_out": 8, "threshold": calibrate_threshold([probs], 0.4), "batch_size": 3, **CLUSTER}
    whole = predict_panoptic(fields, sem, ins, keep=keep, offset=offset, **kw)
    counting = Counting()
    tiled = predict_panoptic(fields, sem, ins, keep=keep, offset=offset, tile=tile, map_tasks=counting, **kw)
    assert whole.n_instances >= 2
    assert torch.equal(tiled.labels, whole.labels)
    assert torch.equal(tiled.probabilities, whole.probabilities)
    assert counting.tasks == [(16 // tile) ** 3] * 3  # the semantic lattice, instance lattices A and B


@pytest.mark.slow
def test_tiles_on_a_cluster_give_the_whole_box_64(dask_scheduler: str) -> None:
    """64³ box on a LocalCluster of 2 workers, 8 tiles of 32³ per lattice: the paper's pair (two instance lattices,
    merged once) and a centre-offsets net (votes grouped once) give the whole-box segmentation bit for bit."""
    fields = _fields(64)
    sem, ins = _conv_net(2, 1, 0), _conv_net(5, 3, 1)
    probs = semantic_probabilities(fields, sem, size_in=20, size_out=16)
    kw = {"size_in": 20, "size_out": 16, "threshold": calibrate_threshold([probs], 0.3), "batch_size": 4}
    panoptic_net = _conv_net(2, 4, 2)
    with open_executor(executor_config("dask", scheduler=dask_scheduler)) as executor:
        tiled = predict_panoptic(fields, sem, ins, tile=32, map_tasks=executor.map, **kw, **CLUSTER)
        tiled_offsets = predict_panoptic_offsets(fields, None, panoptic_net, tile=32, map_tasks=executor.map, **kw)
    whole = predict_panoptic(fields, sem, ins, **kw, **CLUSTER)
    assert whole.n_instances > 10
    assert torch.equal(tiled.labels, whole.labels)
    assert torch.equal(tiled.probabilities, whole.probabilities)
    whole_offsets = predict_panoptic_offsets(fields, None, panoptic_net, **kw)
    assert whole_offsets.n_instances >= 1
    assert torch.equal(tiled_offsets.labels, whole_offsets.labels)
    assert torch.equal(tiled_offsets.probabilities, whole_offsets.probabilities)


@pytest.mark.parametrize(("tile", "match"), [(12, "multiple of the crop lattice step 8"), (24, "divides the box")])
def test_a_bad_tile_is_a_clear_error(tile: int, match: str) -> None:
    fields = _fields(16)
    with pytest.raises(ValidationError, match=match):
        predict_panoptic(
            fields, _conv_net(2, 1, 0), _conv_net(5, 3, 1), size_in=12, size_out=8, threshold=0.5, tile=tile
        )
