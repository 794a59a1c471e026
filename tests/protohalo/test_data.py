"""Training crops, cube symmetries and position channels of the protohalo networks."""

from __future__ import annotations

import pytest
import torch

from cosmoseg.data import Box, Field, Segmentation, save_artifact
from cosmoseg.mesh.symmetry import apply_symmetry, cube_symmetries, transform_positions
from cosmoseg.mesh.tidal import tidal_shear
from cosmoseg.protohalo.data import (
    LINEAR_CHANNELS,
    ProtohaloCrops,
    balanced_ce_beta,
    collapsed_fraction,
    lagrangian_position_channels,
    linear_channels,
)

SYMS = cube_symmetries()


def _box(n: int = 8, length: float = 16.0, seed: int = 0, with_labels: bool = True) -> tuple[Field, Segmentation]:
    gen = torch.Generator().manual_seed(seed)
    box = Box(length=length)
    values = torch.randn((2, n, n, n), generator=gen)
    fields = Field(values=values, box=box, channels=("delta", "phi"))
    labels = torch.randint(0, 4, (n, n, n), generator=gen) if with_labels else torch.zeros((n, n, n), dtype=torch.int64)
    return fields, Segmentation(labels=labels, box=box)


# --- position channels (the symmetries themselves: tests/mesh/test_symmetry.py) ---------------------------------------


def test_position_channels_cell_centres() -> None:
    q = lagrangian_position_channels(4, cell=2.0)
    assert q.shape == (3, 4, 4, 4)
    assert torch.allclose(q[0, :, 0, 0], torch.tensor([-3.0, -1.0, 1.0, 3.0]))
    assert torch.allclose(q[2, 1, 2, :], torch.tensor([-3.0, -1.0, 1.0, 3.0]))
    assert torch.allclose(q[1, 0, :, 3], torch.tensor([-3.0, -1.0, 1.0, 3.0]))
    assert torch.allclose(q.mean(dim=(1, 2, 3)), torch.zeros(3))
    odd = lagrangian_position_channels(3)
    assert torch.equal(odd[:, 1, 1, 1], torch.zeros(3))


@pytest.mark.parametrize("size", [4, 5])
def test_transformed_positions_equal_recomputed(size: int) -> None:
    q = lagrangian_position_channels(size, cell=0.5, dtype=torch.float64)
    for p, f in SYMS:
        assert torch.equal(transform_positions(q, p, f, size), q)


def test_bad_position_inputs() -> None:
    with pytest.raises(ValueError, match="positive"):
        lagrangian_position_channels(0)


# --- fractions and splits -----------------------------------------------------------------------------------------


def test_collapsed_fraction_and_beta_by_hand() -> None:
    a = torch.zeros((2, 2, 2), dtype=torch.int64)
    a[0, 0, 0], a[1, 1, 0], a[0, 1, 1] = 1, 2, 2  # 3 of 8 collapsed
    b = torch.ones((2, 2, 2), dtype=torch.int64)  # 8 of 8
    seg = Segmentation(labels=a, box=Box(length=1.0))
    assert collapsed_fraction([seg]) == pytest.approx(3 / 8)
    assert balanced_ce_beta([seg]) == pytest.approx(5 / 8)
    assert collapsed_fraction([seg, b]) == pytest.approx(11 / 16)
    assert balanced_ce_beta([a, b]) == pytest.approx(5 / 16)
    with pytest.raises(ValueError, match="at least one"):
        collapsed_fraction([])


# --- crops ----------------------------------------------------------------------------------------------------------


def test_crops_wrap_periodically() -> None:
    fields, seg = _box(n=8)
    data = ProtohaloCrops([(fields, seg)], size_in=6, size_out=4, augment=False)
    corner = torch.tensor([6, 7, 1])  # output crop starts near the far corner: input and labels both wrap
    sample = data.crop(0, corner)
    margin = 1
    rolled = torch.roll(fields.values, shifts=tuple(int(-(c - margin)) for c in corner), dims=(1, 2, 3))
    assert torch.equal(sample["inputs"], rolled[:, :6, :6, :6])
    rolled_labels = torch.roll(seg.labels, shifts=tuple(int(-c) for c in corner), dims=(0, 1, 2))
    assert torch.equal(sample["labels"], rolled_labels[:4, :4, :4])


def test_sample_is_the_symmetric_image_of_the_plain_crop() -> None:
    fields, seg = _box(n=8, seed=2)
    data = ProtohaloCrops([(fields, seg)], size_in=6, size_out=4, mode="instance")
    corner = torch.tensor([3, 0, 5])
    plain = data.crop(0, corner, 0)
    assert plain["inputs"].shape == (5, 6, 6, 6) and plain["labels"].shape == (4, 4, 4)
    assert torch.equal(plain["inputs"][2:], lagrangian_position_channels(6, cell=2.0))
    for k in (7, 29):
        p, f = SYMS[k]
        s = data.crop(0, corner, k)
        assert torch.equal(s["inputs"][:2], apply_symmetry(plain["inputs"][:2], p, f))
        assert torch.equal(s["inputs"][2:], plain["inputs"][2:])  # positions recomputed = transformed
        assert torch.equal(s["labels"], apply_symmetry(plain["labels"], p, f))


def test_deterministic_under_seed(tmp_path) -> None:
    boxes = [_box(n=8, seed=s) for s in range(3)]
    paths = []
    for i, (fields, seg) in enumerate(boxes):
        paths.append(tmp_path / f"box_{i}.h5")
        save_artifact(paths[-1], {"fields": fields, "segmentation": seg})
    a = ProtohaloCrops(paths, 6, 4, mode="instance", length=6, seed=11)
    b = ProtohaloCrops(boxes, 6, 4, mode="instance", length=6, seed=11)
    c = ProtohaloCrops(boxes, 6, 4, mode="instance", length=6, seed=12)
    order = [5, 0, 3]
    for i in order:  # independent of the reading order
        sa, sb = a[i], b[i]
        assert all(torch.equal(torch.as_tensor(sa[k]), torch.as_tensor(sb[k])) for k in sa)
    draws_b = [(b[i]["box"], tuple(b[i]["corner"].tolist()), b[i]["symmetry"]) for i in range(6)]
    draws_c = [(c[i]["box"], tuple(c[i]["corner"].tolist()), c[i]["symmetry"]) for i in range(6)]
    assert draws_b != draws_c
    gen1, gen2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    assert torch.equal(b.sample(gen1)["inputs"], b.sample(gen2)["inputs"])
    assert len(b) == 6 and b.channels == ("delta", "phi", "q_x", "q_y", "q_z")
    with pytest.raises(IndexError):
        b[6]


def test_selected_channels_with_the_shear_move_as_scalars() -> None:
    fields, seg = _box(n=8, seed=3)
    stacked = linear_channels(fields, ("shear", "delta"))
    assert stacked.shape == (2, 8, 8, 8) and stacked.dtype == torch.float32
    assert torch.allclose(stacked[0], tidal_shear(fields.channel("phi"), 16.0))
    assert torch.equal(stacked[1], fields.channel("delta"))
    data = ProtohaloCrops([(fields, seg)], size_in=6, size_out=4, mode="instance", channels=("delta", "phi", "shear"))
    assert data.channels == ("delta", "phi", "shear", "q_x", "q_y", "q_z")
    corner = torch.tensor([5, 1, 2])
    plain = data.crop(0, corner, 0)
    assert plain["inputs"].shape == (6, 6, 6, 6)
    for k in (3, 40):
        p, f = SYMS[k]
        # the shear of the box's φ, cropped and moved, is the shear the network sees: a scalar under the symmetry
        assert torch.equal(data.crop(0, corner, k)["inputs"][:3], apply_symmetry(plain["inputs"][:3], p, f))
    assert ProtohaloCrops([(fields, seg)], 6, 4).channels == ("delta", "phi")
    assert set(LINEAR_CHANNELS) == {"delta", "phi", "shear"}


def test_unknown_or_repeated_channels_are_named() -> None:
    fields, seg = _box(n=8)
    with pytest.raises(ValueError, match="'vorticity'"):
        ProtohaloCrops([(fields, seg)], 6, 4, channels=("delta", "vorticity"))
    with pytest.raises(ValueError, match="unknown: \\['rho'\\]"):
        linear_channels(fields, ("rho",))
    with pytest.raises(ValueError, match="at most once"):
        linear_channels(fields, ("delta", "delta"))


def test_bad_inputs() -> None:
    fields, seg = _box(n=8)
    small = Segmentation(labels=torch.zeros((4, 4, 4), dtype=torch.int64), box=fields.box)
    with pytest.raises(ValueError, match="4\\^3"):
        ProtohaloCrops([(fields, small)], 6, 4)
    other = Segmentation(labels=seg.labels, box=Box(length=32.0))
    with pytest.raises(ValueError, match="different boxes"):
        ProtohaloCrops([(fields, other)], 6, 4)
    with pytest.raises(ValueError, match="larger than the box"):
        ProtohaloCrops([(fields, seg)], 10, 4)
    with pytest.raises(ValueError, match="even"):
        ProtohaloCrops([(fields, seg)], 6, 3)
    with pytest.raises(ValueError, match="size_out <= size_in"):
        ProtohaloCrops([(fields, seg)], 4, 6)
    with pytest.raises(ValueError, match="mode"):
        ProtohaloCrops([(fields, seg)], 6, 4, mode="embedding")  # type: ignore[arg-type]
    rho = Field(values=fields.values, box=fields.box, channels=("delta", "rho"))
    with pytest.raises(ValueError, match="phi"):
        ProtohaloCrops([(rho, seg)], 6, 4)
    f2, s2 = _box(n=8, length=8.0)
    with pytest.raises(ValueError, match="cell size"):
        ProtohaloCrops([(fields, seg), (f2, s2)], 6, 4)


def test_crops_cover_all_symmetries_and_boxes() -> None:
    data = ProtohaloCrops([_box(n=8, seed=s) for s in range(2)], 6, 4, length=400, seed=1)
    draws = [data[i] for i in range(400)]
    assert {d["symmetry"] for d in draws} == set(range(48))
    assert {d["box"] for d in draws} == {0, 1}
    assert all(d["labels"].dtype == torch.int64 and d["inputs"].dtype == torch.float32 for d in draws)
