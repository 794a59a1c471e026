"""Galaxy graphs: the periodic radius graph against brute force, invariant features, sub-boxes, clear errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

from cosmoseg.data import Box, GalaxyCatalog
from cosmoseg.errors import ValidationError
from cosmoseg.infer.graphs import (
    GraphSpec,
    edge_feature_names,
    galaxy_graph,
    global_feature_names,
    node_feature_names,
    periodic_radius_graph,
    random_subbox,
)

L = 10.0


def _brute_force(pos: np.ndarray, length: float, r_link: float, periodic: bool = True) -> np.ndarray:
    """(2, E) [source j, target i] of every ordered pair with (minimum-image) distance < r_link, sorted by (i, j)."""
    d = pos[None, :, :] - pos[:, None, :]  # d[i, j] = x_j - x_i
    if periodic:
        d -= length * np.round(d / length)
    close = (np.einsum("ijk,ijk->ij", d, d) < r_link**2) & ~np.eye(len(pos), dtype=bool)
    target, source = np.nonzero(close)  # row-major: sorted by target, then source
    return np.stack([source, target])


def _points(n: int, seed: int, length: float = L) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    pos = rng.random((n, 3)) * length
    # points hugging the faces and corners, linked only through the periodic boundary
    m = min(n, 20)
    pos[:m] = rng.choice([1e-6, 0.3, length - 0.3, length - 1e-6], size=(m, 3))
    return torch.from_numpy(pos)


def _catalog(n: int = 300, seed: int = 0, length: float = L, **extra: torch.Tensor) -> GalaxyCatalog:
    gen = torch.Generator().manual_seed(seed)
    columns = {
        "pos": _points(n, seed, length),
        "vel": torch.randn((n, 3), generator=gen, dtype=torch.float64) * 300,
        "log_mstar": 9 + 2 * torch.rand(n, generator=gen, dtype=torch.float64),
        "is_central": torch.rand(n, generator=gen) < 0.7,
    }
    return GalaxyCatalog(columns=columns | extra, box=Box(length=length))


def _by_pair(data: Data) -> dict[tuple[int, int], np.ndarray]:
    edges = data.edge_index.numpy()
    return {(int(j), int(i)): row for j, i, row in zip(edges[0], edges[1], data.edge_attr.numpy(), strict=True)}


def _assert_same_features(a: Data, b: Data) -> None:
    np.testing.assert_allclose(a.x.numpy(), b.x.numpy(), atol=1e-5)
    pairs_a, pairs_b = _by_pair(a), _by_pair(b)
    assert pairs_a.keys() == pairs_b.keys()
    assert len(pairs_a) > 100
    np.testing.assert_allclose(
        np.stack([pairs_a[k] for k in pairs_a]), np.stack([pairs_b[k] for k in pairs_a]), atol=2e-5, rtol=1e-5
    )
    np.testing.assert_allclose(a.u.numpy(), b.u.numpy(), rtol=1e-6)


@pytest.mark.parametrize("r_link", [0.7, 2.0, 4.9])
def test_radius_graph_equals_brute_force(r_link: float) -> None:
    pos = _points(300, seed=1)
    edges = periodic_radius_graph(pos, L, r_link)
    assert edges.dtype == torch.int64 and edges.shape[0] == 2
    np.testing.assert_array_equal(edges.numpy(), _brute_force(pos.numpy(), L, r_link))
    # positions outside [0, L) are wrapped first
    shifted = periodic_radius_graph(pos + torch.tensor([L, -L, 3 * L], dtype=pos.dtype), L, r_link)
    np.testing.assert_array_equal(shifted.numpy(), edges.numpy())


def test_radius_graph_links_across_faces() -> None:
    pos = torch.tensor([[0.1, 5.0, 5.0], [L - 0.2, 5.0, 5.0], [5.0, 5.0, 5.0]])
    np.testing.assert_array_equal(periodic_radius_graph(pos, L, 0.5).numpy(), [[1, 0], [0, 1]])
    assert periodic_radius_graph(pos, L, 0.5, periodic=False).shape == (2, 0)


def test_non_periodic_graph_equals_brute_force() -> None:
    pos = _points(300, seed=2)
    edges = periodic_radius_graph(pos, L, 2.0, periodic=False)
    np.testing.assert_array_equal(edges.numpy(), _brute_force(pos.numpy(), L, 2.0, periodic=False))


@pytest.mark.parametrize("r_link", [L / 2, 0.6 * L, 0.0, -1.0])
def test_radius_graph_refuses_bad_linking_lengths(r_link: float) -> None:
    with pytest.raises(ValidationError, match="r_link"):
        periodic_radius_graph(_points(10, seed=0), L, r_link)
    with pytest.raises(ValidationError, match="r_link"):
        galaxy_graph(_catalog(), GraphSpec(r_link=r_link))
    # a non-periodic region has no such limit
    assert periodic_radius_graph(_points(10, seed=0), L, 0.6 * L, periodic=False).shape[1] > 0


@pytest.mark.parametrize("velocities", ["none", "3d"])
def test_features_invariant_under_translation_and_rotation(velocities: str) -> None:
    catalog = _catalog()
    spec = GraphSpec(r_link=2.0, velocities=velocities, properties=("log_mstar",))  # type: ignore[arg-type]
    base = galaxy_graph(catalog, spec)
    pos, vel = catalog["pos"], catalog["vel"]

    shift = torch.rand(3, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 3 * L
    _assert_same_features(base, galaxy_graph(catalog.with_columns(pos=pos + shift), spec))

    # (x, y, z) -> (y, -x, z), velocities alike, a rotation by 90° about z mapping the box onto itself
    rotate = torch.tensor([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    rotated = catalog.with_columns(pos=pos @ rotate.T, vel=vel @ rotate.T)
    np.testing.assert_allclose(rotated["pos"][0].numpy(), [pos[0, 1], L - pos[0, 0], pos[0, 2]], atol=1e-12)
    _assert_same_features(base, galaxy_graph(rotated, spec))

    # and a reflection of one axis (a mirror of the box)
    mirror = torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64))
    _assert_same_features(base, galaxy_graph(catalog.with_columns(pos=pos @ mirror, vel=vel @ mirror), spec))


def _los_catalog(catalog: GalaxyCatalog) -> GalaxyCatalog:
    columns = {k: v for k, v in catalog.columns.items() if k != "vel"} | {"v_los": catalog["vel"][:, 2].clone()}
    return GalaxyCatalog(columns=columns, box=catalog.box, meta={"los_axis": 2})


def test_los_features_invariant_under_rotation_about_the_line_of_sight() -> None:
    catalog = _los_catalog(_catalog())
    spec = GraphSpec(r_link=2.0, velocities="los")
    base = galaxy_graph(catalog, spec)
    assert base.x.shape == (300, 1) and base.edge_attr.shape[1] == 3
    pos, v_los = catalog["pos"], catalog["v_los"]
    rotate = torch.tensor([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    _assert_same_features(base, galaxy_graph(catalog.with_columns(pos=pos @ rotate.T), spec))
    shift = torch.tensor([1.3, -7.1, 4.4], dtype=torch.float64)
    _assert_same_features(base, galaxy_graph(catalog.with_columns(pos=pos + shift), spec))
    # reflecting the line of sight flips d_los and v_los together
    flip = torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64))
    _assert_same_features(base, galaxy_graph(catalog.with_columns(pos=pos @ flip, v_los=-v_los), spec))
    # a rotation that tilts the line of sight does change them: the los axis is singled out
    tilt = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]], dtype=torch.float64)
    tilted = _by_pair(galaxy_graph(catalog.with_columns(pos=pos @ tilt.T), spec))
    base_pairs = _by_pair(base)
    assert any(abs(tilted[k][1] - base_pairs[k][1]) > 0.1 for k in base_pairs)


def test_feature_values_by_hand() -> None:
    # two galaxies linked through the x face: d (edge 1 -> 0) = x_1 - x_0 = -0.5 along x (minimum image)
    pos = torch.tensor([[0.2, 5.0, 5.0], [L - 0.3, 5.0, 5.0], [5.0, 5.0, 5.0]], dtype=torch.float64)
    vel = torch.tensor([[300.0, 400.0, 0.0], [-100.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    catalog = GalaxyCatalog(columns={"pos": pos, "vel": vel}, box=Box(length=L))
    data = galaxy_graph(catalog, GraphSpec(r_link=1.0), target=torch.tensor([0.3, 0.8]))
    np.testing.assert_array_equal(data.edge_index.numpy(), [[1, 0], [0, 1]])
    np.testing.assert_allclose(data.x.numpy()[:, 0], [5.0, 1.0, 0.0])
    # edge 1 -> 0: d_hat = (-1, 0, 0); (v_1 - v_0)·d_hat = (-400)·(-1) = 400; cos(d_hat, v_0) = -0.6;
    # cos(d_hat, v_1) = 1
    np.testing.assert_allclose(data.edge_attr.numpy()[0], [0.5, 4.0, -0.6, 1.0], atol=1e-6)
    np.testing.assert_allclose(data.edge_attr.numpy()[1], [0.5, 4.0, -1.0, 0.6], atol=1e-6)
    assert data.x.dtype == data.edge_attr.dtype == data.u.dtype == torch.float32
    assert data.y.shape == (1, 2) and data.u.shape == (1, 1)
    np.testing.assert_allclose(data.u.item(), math.log10(3 * 25.0**3 / L**3), rtol=1e-6)
    assert float(data.box_length) == L
    # a galaxy at rest: its cosine is 0; constant node feature without velocities or properties
    none = galaxy_graph(catalog, GraphSpec(r_link=1.0, velocities="none"))
    np.testing.assert_array_equal(none.x.numpy(), np.ones((3, 1)))
    assert none.edge_attr.shape == (2, 1)


def test_feature_names_match_the_widths() -> None:
    catalog = _catalog()
    for spec in [
        GraphSpec(velocities="none"),
        GraphSpec(velocities="3d", properties=("log_mstar", "is_central")),
        GraphSpec(velocities="none", properties=("log_mstar",)),
    ]:
        data = galaxy_graph(catalog, spec)
        assert data.x.shape[1] == len(node_feature_names(spec))
        assert data.edge_attr.shape[1] == len(edge_feature_names(spec))
        assert data.u.shape[1] == len(global_feature_names(spec))
    los = GraphSpec(velocities="los")
    data = galaxy_graph(_los_catalog(catalog), los)
    assert data.x.shape[1] == len(node_feature_names(los)) and data.edge_attr.shape[1] == len(edge_feature_names(los))
    spec = GraphSpec(properties=("log_mstar", "is_central"))
    data = galaxy_graph(catalog, spec)
    np.testing.assert_allclose(data.x[:, 1].numpy(), catalog["log_mstar"].numpy(), rtol=1e-6)
    np.testing.assert_array_equal(data.x[:, 2].numpy(), catalog["is_central"].float().numpy())


def test_subbox_global_feature_and_non_periodic_distances() -> None:
    length = 100.0
    gen = torch.Generator().manual_seed(11)
    n = 40_000
    catalog = GalaxyCatalog(
        columns={"pos": torch.rand((n, 3), generator=gen) * length, "vel": torch.randn((n, 3), generator=gen) * 200},
        box=Box(length=length),
    )
    spec = GraphSpec(r_link=2.0)
    full = galaxy_graph(catalog, spec)
    sub = random_subbox(catalog, 0.125, torch.Generator().manual_seed(5))
    assert sub.meta["periodic"] is False and sub.meta["volume_fraction"] == pytest.approx(0.125)
    side = sub.meta["subbox_length"]
    assert side == pytest.approx(50.0)
    assert bool((sub["pos"] >= 0).all()) and bool((sub["pos"] < side).all())
    # the galaxies of the cube, found another way: the origin is the generator's first three draws times L
    origin = torch.rand(3, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * length
    offset = torch.remainder(catalog["pos"].double() - origin, length)
    assert len(sub) == int((offset < side).all(dim=1).sum())
    # the same number density: Poisson noise of ~5000 galaxies is 0.006 dex
    graph = galaxy_graph(sub, spec)
    sigma = 1 / (math.log(10) * math.sqrt(len(sub)))
    assert abs(graph.u.item() - full.u.item()) < 4 * sigma
    # plain distances inside the cube: no edge across its faces
    expected = _brute_force(sub["pos"].double().numpy(), length, 2.0, periodic=False)
    np.testing.assert_array_equal(graph.edge_index.numpy(), expected)
    periodic_in_cube = _brute_force(sub["pos"].double().numpy(), side, 2.0, periodic=True)
    assert periodic_in_cube.shape[1] > expected.shape[1]
    # deterministic under the generator; a sub-box of a sub-box stays inside it
    again = random_subbox(catalog, 0.125, torch.Generator().manual_seed(5))
    assert torch.equal(again["pos"], sub["pos"])
    inner = random_subbox(sub, 0.125, torch.Generator().manual_seed(6))
    assert inner.meta["volume_fraction"] == pytest.approx(0.125**2)
    assert bool((inner["pos"] < side / 2).all())
    # fraction 1 only translates a periodic box
    whole = random_subbox(catalog, 1.0, torch.Generator().manual_seed(5))
    assert len(whole) == n and whole.meta.get("periodic", True) is True
    with pytest.raises(ValidationError, match="fraction"):
        random_subbox(catalog, 0.0, gen)


def test_clear_errors() -> None:
    catalog = _catalog()
    empty = catalog.select(torch.zeros(len(catalog), dtype=torch.bool))
    with pytest.raises(ValidationError, match="empty catalog"):
        galaxy_graph(empty, GraphSpec())
    no_vel = GalaxyCatalog(columns={"pos": catalog["pos"]}, box=catalog.box)
    with pytest.raises(ValidationError, match=r"'vel'.*velocities='none'"):
        galaxy_graph(no_vel, GraphSpec(velocities="3d"))
    with pytest.raises(ValidationError, match=r"'v_los'.*RedshiftSpace"):
        galaxy_graph(catalog, GraphSpec(velocities="los"))
    with pytest.raises(ValidationError, match=r"'vel'.*velocities='los'"):
        galaxy_graph(_los_catalog(catalog), GraphSpec(velocities="3d"))
    with pytest.raises(ValidationError, match="los_axis"):
        galaxy_graph(_los_catalog(catalog), GraphSpec(velocities="los", los_axis=0))
    with pytest.raises(ValidationError, match="'color_gi' is missing"):
        galaxy_graph(catalog, GraphSpec(properties=("log_mstar", "color_gi")))
    with pytest.raises(ValidationError, match="non-finite"):
        galaxy_graph(catalog, GraphSpec(), target=torch.tensor([float("nan")]))
    with pytest.raises(ValidationError) as info:
        GraphSpec(r_link=-1.0, velocities="2d", los_axis=3, velocity_unit=0.0)  # type: ignore[arg-type]
    assert len(info.value.problems) == 4
    assert GraphSpec(properties=["log_mstar"]).properties == ("log_mstar",)  # type: ignore[arg-type]
