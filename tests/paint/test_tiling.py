"""Periodic tiling (cosmoseg.paint.tiling): tiles stitch to the whole box, per-voxel crops, the checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cosmoseg.paint.network import Dm2GalFCN, dilated_equivalent
from cosmoseg.paint.tiling import predict_tiled, predict_voxels, tile_corners

from .helpers import FCN_SMALL, random_fields, randomise_bn, small_net


def test_tiles_stitch_to_the_whole_box() -> None:
    torch.manual_seed(7)
    fcn = Dm2GalFCN(**FCN_SMALL)
    randomise_bn(fcn, 8)
    fcn.train()
    fields = random_fields(12, seed=9)
    whole = predict_tiled(fcn, fields, tile=12)
    assert whole.shape == (7, 12, 12, 12) and fcn.training  # training flag restored
    for tile, batch in [(8, 4), (2, 7), (4, 1)]:  # tiles that do not divide n; batches that do not divide the count
        torch.testing.assert_close(predict_tiled(fcn, fields, tile=tile, batch=batch), whole, atol=1e-5, rtol=1e-5)
    whole += 1  # an ordinary tensor, not an inference tensor
    # Periodicity: rolling the input by whole coarse cells rolls the output.
    rolled = predict_tiled(fcn, torch.roll(fields, (4, -2, 6), dims=(1, 2, 3)), tile=12)
    torch.testing.assert_close(rolled, torch.roll(whole - 1, (4, -2, 6), dims=(1, 2, 3)), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match=r"cells of 2 voxels: the box side \(12\), the tile \(3\)"):
        predict_tiled(fcn, fields, tile=3)


@pytest.mark.slow
def test_tiles_on_a_cluster_stitch_to_the_whole_box(dask_scheduler: str) -> None:
    """Each batch of tiles one task on a LocalCluster of 2 workers: the box predicted in one pass, and the model
    left as it was (its training flag restored, its weights untouched by the trip)."""
    from cosmoseg.pipeline.executor import executor_config, open_executor

    torch.manual_seed(7)
    fcn = Dm2GalFCN(**FCN_SMALL)
    randomise_bn(fcn, 8)
    fcn.train()
    fields = random_fields(16, seed=9)
    whole = predict_tiled(fcn, fields, tile=16)
    with open_executor(executor_config("dask", scheduler=dask_scheduler)) as executor:
        tiled = predict_tiled(fcn, fields, tile=8, batch=3, map_tasks=executor.map)  # 8 tiles, 3 tasks
    torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=1e-5)
    assert fcn.training


def test_predict_voxels_equals_dilated_tiled() -> None:
    net = small_net(seed=10)
    fields = random_fields(8, seed=11)
    tiled = predict_tiled(dilated_equivalent(net), fields, tile=3, batch=4)[0]
    voxels = torch.cartesian_prod(torch.arange(8), torch.tensor([0, 7]), torch.tensor([3]))
    out = predict_voxels(net, fields, voxels + 8, batch=5)  # indices taken modulo n
    assert out.shape == (len(voxels),)
    torch.testing.assert_close(out, tiled[voxels[:, 0], voxels[:, 1], voxels[:, 2]], atol=1e-5, rtol=1e-5)


def test_tiling_errors() -> None:
    fields = random_fields(4)
    with pytest.raises(TypeError, match="halo"):
        predict_tiled(nn.Identity(), fields, tile=2)
    with pytest.raises(ValueError, match=r"\(C, n, n, n\)"):
        predict_tiled(Dm2GalFCN(**FCN_SMALL), fields[0], tile=2)
    with pytest.raises(ValueError, match=r"\(M, 3\)"):
        predict_voxels(small_net(), fields, torch.zeros(2, 2, dtype=torch.int64), batch=1)
    assert tile_corners(5, 2).shape == (27, 3)
