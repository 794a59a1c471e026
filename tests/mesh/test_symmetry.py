"""The 48 symmetries of the cube (cosmoseg.mesh.symmetry): group structure, volumes and position channels."""

from __future__ import annotations

import pytest
import torch

from cosmoseg.mesh.symmetry import (
    apply_symmetry,
    compose_symmetries,
    cube_symmetries,
    invert_symmetry,
    symmetry_average,
    transform_positions,
)

SYMS = cube_symmetries()


def _volume(n: int = 4, seed: int = 0) -> torch.Tensor:
    """A cube of distinct values, so any two different symmetries give different images."""
    return torch.randperm(n**3, generator=torch.Generator().manual_seed(seed)).reshape(n, n, n).double()


def _which(image: torch.Tensor, vol: torch.Tensor) -> int:
    hits = [i for i, (p, f) in enumerate(SYMS) if torch.equal(apply_symmetry(vol, p, f), image)]
    assert len(hits) == 1
    return hits[0]


def _centres(size: int, cell: float = 1.0) -> torch.Tensor:
    """(3, size, size, size) cell-centre positions relative to the crop centre: (i + 1/2 - size/2) * cell."""
    ticks = (torch.arange(size, dtype=torch.float64) + 0.5 - size / 2) * cell
    return torch.stack(torch.meshgrid(ticks, ticks, ticks, indexing="ij"))


def test_48_distinct_symmetries_identity_first() -> None:
    assert len(SYMS) == 48 and len(set(SYMS)) == 48
    vol = _volume()
    images = {tuple(apply_symmetry(vol, p, f).reshape(-1).tolist()) for p, f in SYMS}
    assert len(images) == 48
    assert torch.equal(apply_symmetry(vol, *SYMS[0]), vol)


@pytest.mark.parametrize(("i", "j"), [(1, 2), (9, 17), (47, 30), (12, 12), (5, 40)])
def test_closure_and_composition(i: int, j: int) -> None:
    vol = _volume(seed=i + j)
    twice = apply_symmetry(apply_symmetry(vol, *SYMS[i]), *SYMS[j])
    k = _which(twice, vol)  # closure: the composite is one of the 48
    assert SYMS[k] == compose_symmetries(SYMS[i], SYMS[j])


def test_every_symmetry_has_an_inverse() -> None:
    vol = _volume(seed=3)
    for p, f in SYMS:
        inv = invert_symmetry(p, f)
        assert inv in SYMS
        assert torch.equal(apply_symmetry(apply_symmetry(vol, p, f), *inv), vol)
        assert compose_symmetries((p, f), inv) == SYMS[0]


def test_symmetry_keeps_voxel_label_correspondence() -> None:
    n = 5
    field = torch.randn((2, n, n, n), generator=torch.Generator().manual_seed(1))
    labels = torch.arange(n**3).reshape(n, n, n)  # label = flat id of the voxel
    for p, f in SYMS[::5]:
        tf, tl = apply_symmetry(field, p, f), apply_symmetry(labels, p, f)
        flat = tl.reshape(-1)
        # the voxel now carrying label l carries the field values of original voxel l
        assert torch.equal(tf.reshape(2, -1), field.reshape(2, -1)[:, flat])


def test_bad_symmetry_and_volume() -> None:
    with pytest.raises(ValueError, match="permutation"):
        apply_symmetry(_volume(), (0, 0, 1), (False, False, False))
    with pytest.raises(ValueError, match="n, n, n"):
        apply_symmetry(torch.zeros(3, 4, 5), (0, 1, 2), (False, False, False))


@pytest.mark.parametrize("size", [4, 5])
def test_cell_centre_positions_are_invariant(size: int) -> None:
    q = _centres(size, cell=0.5)
    for p, f in SYMS:
        assert torch.equal(transform_positions(q, p, f, size), q)


def test_marker_voxel_carries_its_new_position() -> None:
    """A voxel moved by a symmetry lands on the cell whose recomputed position is the transformed one."""
    size = 5
    q = _centres(size)
    marker = torch.zeros(size, size, size)
    src = (0, 1, 3)
    marker[src] = 1
    for p, f in SYMS:
        moved = apply_symmetry(marker, p, f)
        dst = tuple(int(i) for i in torch.nonzero(moved)[0])
        r = q[(slice(None), *src)]
        expected = torch.stack([-r[p[d]] if f[d] else r[p[d]] for d in range(3)])
        assert torch.equal(q[(slice(None), *dst)], expected)


def test_positions_relative_to_another_point_transform_as_vectors() -> None:
    """Channels q - c transform to q - g(c): the components are permuted and the flipped ones negated."""
    size = 4
    q = _centres(size)
    c = torch.tensor([0.25, -1.5, 2.0], dtype=torch.float64)
    for p, f in SYMS:
        gc = torch.stack([-c[p[d]] if f[d] else c[p[d]] for d in range(3)])
        out = transform_positions(q - c[:, None, None, None], p, f)
        assert torch.allclose(out, q - gc[:, None, None, None])


def test_bad_position_inputs() -> None:
    q = _centres(4)
    with pytest.raises(ValueError, match="crop_size"):
        transform_positions(q, (0, 1, 2), (False,) * 3, crop_size=5)
    with pytest.raises(ValueError, match=r"\(3, n, n, n\)"):
        transform_positions(q[:2], (0, 1, 2), (False,) * 3)


def test_symmetry_average_is_the_mean_of_the_transformed_predictions() -> None:
    # a predictor that is not equivariant: output depends on the axis order (a scalar) and a fixed vector field
    vol = _volume(n=4, seed=3)[None]
    weights = torch.tensor([1.0, 10.0, 100.0], dtype=torch.float64)

    def predict(v: torch.Tensor) -> torch.Tensor:
        grad = torch.stack([v[0] - torch.roll(v[0], 1, d) for d in range(3)])
        return torch.cat([(grad * weights[:, None, None, None]).sum(0, keepdim=True), grad])

    chosen = [SYMS[k] for k in (0, 3, 11, 30)]
    expected = []
    for perm, flips in chosen:
        out = predict(apply_symmetry(vol, perm, flips))
        back = invert_symmetry(perm, flips)
        expected.append(torch.cat([apply_symmetry(out[:1], *back), transform_positions(out[1:], *back)]))
    mean = torch.stack(expected).mean(0)
    assert torch.allclose(symmetry_average(predict, vol, chosen, vector_channels=(1, 2, 3)), mean)
    assert torch.equal(symmetry_average(predict, vol, SYMS[:1]), predict(vol))
    # without naming the vector channels they come back as scalars: a different (wrong) answer here
    assert not torch.allclose(symmetry_average(predict, vol, chosen), mean)
    with pytest.raises(ValueError, match="at least one"):
        symmetry_average(predict, vol, [])
    with pytest.raises(ValueError, match="3 channels"):
        symmetry_average(predict, vol, chosen, vector_channels=(1, 2))


def test_symmetry_average_of_an_equivariant_predictor_changes_nothing() -> None:
    vol = _volume(n=6, seed=4)[None]

    def gradient(v: torch.Tensor) -> torch.Tensor:  # centred differences: a true vector field, and its norm
        g = torch.stack([(torch.roll(v[0], -1, d) - torch.roll(v[0], 1, d)) / 2 for d in range(3)])
        return torch.cat([g.norm(dim=0, keepdim=True), g])

    averaged = symmetry_average(gradient, vol, SYMS, vector_channels=(1, 2, 3))
    assert torch.allclose(averaged, gradient(vol), atol=1e-12)
