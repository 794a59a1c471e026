"""Friends-of-friends groups against a brute-force reference, halo properties against analytic cases,
the Lagrangian labels, formation redshifts and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cosmoseg import Box, Cosmology, HaloCatalog, Particles, Segmentation, ValidationError
from cosmoseg.mesh.grid import cell_centers, ijk_to_ids
from cosmoseg.sim._fof_toys import TOY_BLOBS, toy_clustered_particles
from cosmoseg.sim.fof import find_halos, friends_of_friends, lagrangian_segmentation, mean_separation
from cosmoseg.sim.halo_properties import G_NEWTON, formation_redshifts, halo_properties

COSMO = Cosmology(power_backend="eisenstein-hu")
RHO_200C = 200.0 * COSMO.mean_matter_density / COSMO.omega_m  # z = 0, (Msun/h) / (Mpc/h)^3


# ---- a brute-force reference ---------------------------------------------------------------------------


def brute_force_groups(x: np.ndarray, length: float, r: float) -> np.ndarray:
    """Groups by depth-first search over the O(N^2) periodic friendship matrix, numbered by lowest member."""
    d = x[:, None, :] - x[None, :, :]
    d -= length * np.round(d / length)
    friends = (d**2).sum(-1) <= r * r
    labels = np.full(len(x), -1)
    group = 0
    for seed in range(len(x)):
        if labels[seed] >= 0:
            continue
        labels[seed], stack = group, [seed]
        while stack:
            new = np.flatnonzero(friends[stack.pop()] & (labels < 0))
            labels[new] = group
            stack.extend(new.tolist())
        group += 1
    return labels


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two labelings split the points into the same sets (whatever the label values)."""
    pairs = np.unique(np.stack([a, b], 1), axis=0)
    return len(pairs) == len(np.unique(a)) == len(np.unique(b))


def clustered_points(rng: np.random.Generator, n_background: int, length: float) -> np.ndarray:
    """Uniform background plus clumps, some of them at a corner and on faces of the box."""
    clumps = [np.zeros(3), np.array([length, 0.5 * length, 0.0]), rng.random(3) * length, rng.random(3) * length]
    parts = [rng.random((n_background, 3)) * length]
    for centre in clumps:
        parts.append(centre + rng.normal(scale=0.03 * length, size=(int(rng.integers(20, 120)), 3)))
    return np.mod(np.concatenate(parts), length)


CASES = [
    # (seed, background points, box, linking length in mean separations)
    (0, 300, 10.0, 0.2),
    (1, 800, 10.0, 0.6),
    (2, 1200, 25.0, 0.9),
    (3, 100, 5.0, 1.1),
    (4, 1500, 40.0, 0.4),
]


@pytest.mark.parametrize(("seed", "n_background", "length", "b"), CASES)
@pytest.mark.parametrize("chunk", [2**17, 97, 1])
def test_groups_match_a_brute_force_reference(
    seed: int, n_background: int, length: float, b: float, chunk: int
) -> None:
    rng = np.random.default_rng(seed)
    x = clustered_points(rng, n_background, length)
    r = b * mean_separation(len(x), length)
    expected = brute_force_groups(x, length, r)
    got = friends_of_friends(torch.from_numpy(x), length, r, max_chunk_particles=chunk).numpy()
    assert same_partition(got, expected)
    assert np.array_equal(got, expected)  # both number the groups by their lowest member
    assert (np.bincount(expected) > 20).sum() >= 2  # the case does have clumps


def test_groups_link_across_every_face_and_corner() -> None:
    length, r = 10.0, 0.3
    corner = np.array([[0.05, 0.05, 0.05], [9.95, 9.95, 9.95], [0.05, 9.95, 0.05], [9.95, 0.05, 9.95]])
    face = np.array([[5.0, 5.0, 0.1], [5.0, 5.0, 9.9]])
    lonely = np.array([[5.0, 5.0, 5.0], [5.0, 5.0, 5.31]])  # just beyond the linking length
    groups = friends_of_friends(torch.tensor(np.concatenate([corner, face, lonely])), length, r).numpy()
    assert groups.tolist() == [0, 0, 0, 0, 1, 1, 2, 3]


# ---- halo properties: analytic cases -----------------------------------------------------------------------


def make_particles(x: np.ndarray, v: np.ndarray, length: float, mass: float, ids=None, n_grid: int = 0) -> Particles:
    box = Box(length=length, cosmology=COSMO)
    ids = torch.arange(len(x)) if ids is None else torch.as_tensor(ids)
    return Particles(pos=torch.tensor(x), vel=torch.tensor(v), ids=ids, mass=mass, box=box, n_grid=n_grid)


def uniform_ball(rng: np.random.Generator, n: int, radius: float) -> np.ndarray:
    direction = rng.normal(size=(n, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    return direction * radius * rng.random((n, 1)) ** (1.0 / 3.0)


def test_centre_of_mass_mass_and_velocities_across_the_corner() -> None:
    rng = np.random.default_rng(5)
    length, mass = 20.0, 1e10
    offsets = uniform_ball(rng, 400, 0.5)
    x = np.mod(offsets + np.array([0.1, 19.95, 0.0]), length)  # straddles the corner
    v = np.array([100.0, -50.0, 20.0]) + rng.normal(scale=30.0, size=x.shape)
    catalog, labels = find_halos(make_particles(x, v, length, mass), env_scales=())
    assert len(catalog) == 1 and bool((labels == 1).all())
    want = np.mod(np.array([0.1, 19.95, 0.0]) + offsets.mean(0), length)
    d = catalog["pos"][0].numpy() - want
    assert np.abs(d - length * np.round(d / length)).max() < 1e-9
    assert catalog["mass"][0] == pytest.approx(400 * mass, rel=1e-12)
    assert int(catalog["n_part"][0]) == 400
    assert np.allclose(catalog["vel"][0].numpy(), v.mean(0))
    dispersion = np.sqrt(((v - v.mean(0)) ** 2).sum(1).mean())
    assert float(catalog["vel_disp"][0]) == pytest.approx(dispersion, rel=1e-6)
    assert (catalog["pos"] >= 0).all() and (catalog["pos"] < length).all()


def test_spin_of_a_rigidly_rotating_uniform_sphere() -> None:
    rng = np.random.default_rng(6)
    length, mass, radius, n = 30.0, 1e10, 0.3, 4000  # mean density 3.5e14 > 200 rho_crit = 5.5e13
    offsets = uniform_ball(rng, n, radius)
    omega = np.array([0.0, 0.0, 2000.0])  # km/s per Mpc/h
    x = offsets + 15.0
    v = np.array([300.0, 0.0, -100.0]) + np.cross(omega, offsets)
    catalog, _ = find_halos(make_particles(x, v, length, mass), env_scales=())
    # all members lie inside R_200c, so M_200 = N m and R_200 = (3 N m / (4 pi 200 rho_c))^(1/3)
    assert int(catalog["n200"][0]) == n
    r200 = (3 * n * mass / (4 * math.pi * RHO_200C)) ** (1 / 3)
    assert float(catalog["r200"][0]) == pytest.approx(r200, rel=1e-9)
    assert float(catalog["m200"][0]) == pytest.approx(n * mass, rel=1e-12)
    # J = I omega with the discrete inertia tensor about the centre of mass; lambda' = |J| / (sqrt 2 M V R)
    rel = offsets - offsets.mean(0)
    inertia = (rel**2).sum() * np.eye(3) - rel.T @ rel
    j = mass * inertia @ omega
    v200 = math.sqrt(G_NEWTON * n * mass / r200)
    expected = np.linalg.norm(j) / (math.sqrt(2) * n * mass * v200 * r200)
    assert float(catalog["spin"][0]) == pytest.approx(expected, rel=1e-6)
    # and the continuous sphere: J_z = 2/5 M R^2 omega
    assert np.linalg.norm(j) == pytest.approx(0.4 * n * mass * radius**2 * omega[2], rel=0.05)


def test_r200_and_concentration_of_nfw_haloes() -> None:
    rng = np.random.default_rng(7)
    c, n, mass, n_halo = 8.0, 5000, 1e10, 8
    r200 = (3 * n * mass / (4 * math.pi * RHO_200C)) ** (1 / 3)
    mu = lambda y: np.log1p(y) - y / (1 + y)  # noqa: E731
    target = rng.random((n_halo, n)) * mu(c)
    lo, hi = np.zeros_like(target), np.ones_like(target)
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        below = mu(c * mid) < target
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    direction = rng.normal(size=(n_halo, n, 3))
    direction /= np.linalg.norm(direction, axis=2, keepdims=True)
    centres = np.array(
        [[10.0 + 20.0 * (i % 2), 10.0 + 20.0 * (i // 2 % 2), 10.0 + 20.0 * (i // 4)] for i in range(n_halo)]
    )
    x = (centres[:, None] + (0.5 * (lo + hi))[..., None] * r200 * direction).reshape(-1, 3)
    labels = torch.arange(1, n_halo + 1).repeat_interleave(n)
    particles = make_particles(x, np.zeros_like(x), 40.0, mass)
    columns, units = halo_properties(particles, labels, env_scales=())
    # the haloes end at r200 exactly; the estimated centres are a little off, so a few edge members drop out
    assert bool((columns["n200"] <= n).all()) and bool((columns["n200"] >= 0.995 * n).all())
    assert torch.allclose(columns["r200"], torch.full((n_halo,), r200, dtype=torch.float64), rtol=2e-3)
    assert bool(columns["concentration_resolved"].all())
    estimate = columns["concentration"].numpy()
    assert abs(np.median(estimate) / c - 1) < 0.1  # 5000 particles: ~5% scatter per halo
    centre_error = np.linalg.norm(columns["pos_center"].numpy() - centres, axis=1)
    assert centre_error.max() < 0.05 * r200
    assert units["concentration"] == "" and units["m200"] == "Msun/h"
    # the circular velocity peaks at 2.163 r_s with V_max^2 = V200^2 0.2162 c / mu(c)
    v200 = math.sqrt(G_NEWTON * n * mass / r200)
    vmax = v200 * math.sqrt(0.21621 * c / mu(c))
    assert abs(np.median(columns["vmax"].numpy()) / vmax - 1) < 0.03


def test_unresolved_concentration_is_flagged() -> None:
    particles = toy_clustered_particles()
    catalog, _ = find_halos(particles, concentration_min_particles=100)
    resolved = catalog["concentration_resolved"]
    assert resolved.dtype == torch.bool
    assert bool((catalog["concentration"][~resolved] == 0).all())
    assert bool((catalog["n200"][resolved] >= 100).all())
    assert not bool(resolved[catalog["n200"] < 100].any())


def test_lagrangian_centre_and_inertia_of_a_sphere_of_cells() -> None:
    n, length = 32, 64.0  # cells of 2 Mpc/h
    ijk = np.stack(np.meshgrid(*[np.arange(-6, 7)] * 3, indexing="ij"), -1).reshape(-1, 3)
    ball = ijk[(ijk**2).sum(1) <= 36]  # a sphere of radius 6 cells around cell (0, 0, 0): across the corner
    ids = ijk_to_ids(torch.tensor(ball), n)
    x = np.mod(5.0 + 0.001 * np.arange(len(ids))[:, None] * np.ones(3), length)  # one tight Eulerian clump
    catalog, _ = find_halos(make_particles(x, np.zeros_like(x), length, 1e10, ids=ids, n_grid=n), env_scales=())
    cell = length / n
    assert np.allclose(catalog["lagr_pos"][0].numpy(), [0.5 * cell] * 3)  # the centre of cell (0, 0, 0)
    rel = ball * cell
    expected = rel.T @ rel / len(rel)
    assert np.allclose(catalog["lagr_inertia"][0].numpy(), expected, rtol=1e-9, atol=1e-9)
    # close to the continuous sphere of the same volume: R^2 / 5 on the diagonal
    radius = (3 * len(rel) / (4 * math.pi)) ** (1 / 3) * cell
    assert np.allclose(np.diag(expected), radius**2 / 5, rtol=0.05)
    assert catalog.units["lagr_inertia"] == "(Mpc/h)^2"


def test_environment_of_a_uniform_lattice_is_the_mean_density() -> None:
    n, length = 24, 48.0
    ids = torch.arange(n**3)
    x = cell_centers(ids, n, length, dtype=torch.float64).numpy()
    x[:30] = 24.0 + 0.01 * np.arange(30)[:, None]  # a clump, so that there is a halo
    particles = make_particles(x, np.zeros_like(x), length, 1e10, ids=ids, n_grid=n)
    catalog, _ = find_halos(particles, env_scales=(6.0, 10.0))
    assert len(catalog) == 1
    d = x - catalog["pos"][0].numpy()
    distance = np.linalg.norm(d - length * np.round(d / length), axis=1)
    for name, radius in (("log_env_density_r6", 6.0), ("log_env_density_r10", 10.0)):
        mean_count = n**3 * (4 * math.pi / 3) * radius**3 / length**3  # ~113 and ~524 particles
        expected = math.log10((distance <= radius).sum() / mean_count)
        assert float(catalog[name][0]) == pytest.approx(expected, abs=1e-9)
        assert abs(expected) < 0.15  # near the mean density, the clump's 30 particles aside


def test_catalog_is_sorted_by_mass_and_matches_the_labels() -> None:
    particles = toy_clustered_particles(torch.Generator().manual_seed(3))
    catalog, labels = find_halos(particles)
    assert isinstance(catalog, HaloCatalog)
    sizes = sorted((side**3 for _, _, _, side in TOY_BLOBS), reverse=True)
    assert catalog["n_part"].tolist() == sizes
    counts = torch.bincount(labels, minlength=len(catalog) + 1)[1:]
    assert torch.equal(counts, catalog["n_part"])
    assert torch.equal(catalog["mass"], catalog["n_part"].double() * particles.mass)
    for centre, _, _, _ in TOY_BLOBS:  # every blob found where it is, across faces and the corner
        d = catalog["pos"].numpy() - np.array(centre)
        d -= particles.box.length * np.round(d / particles.box.length)
        assert np.linalg.norm(d, axis=1).min() < 0.2
    assert catalog.meta["linking_length"] == pytest.approx(0.2 * 2.0)
    assert len(find_halos(particles, min_particles=100)[0]) == 2


def test_no_haloes_gives_an_empty_catalog() -> None:
    n, length = 8, 80.0
    ids = torch.arange(n**3)
    x = cell_centers(ids, n, length, dtype=torch.float64).numpy()
    catalog, labels = find_halos(make_particles(x, np.zeros_like(x), length, 1e10, ids=ids, n_grid=n))
    assert len(catalog) == 0 and not bool(labels.any())
    assert catalog["lagr_inertia"].shape == (0, 3, 3)
    segmentation = lagrangian_segmentation(labels, make_particles(x, np.zeros_like(x), length, 1e10, ids=ids, n_grid=n))
    assert segmentation.n_instances == 0


# ---- the Lagrangian labels ----------------------------------------------------------------------------------


def test_lagrangian_segmentation_maps_ids_and_applies_the_mass_cut() -> None:
    n = 4
    ids = torch.randperm(n**3, generator=torch.Generator().manual_seed(0))
    labels = torch.zeros(n**3, dtype=torch.int64)
    labels[:10] = 2  # 10 particles
    labels[10:13] = 1  # 3 particles
    labels[13:30] = 3  # 17 particles
    x = np.zeros((n**3, 3))
    particles = make_particles(x, x, 10.0, 1e10, ids=ids, n_grid=n)
    seg = lagrangian_segmentation(labels, particles, min_particles=5)
    assert isinstance(seg, Segmentation) and seg.labels.shape == (n, n, n)
    flat = seg.labels.flatten()
    assert torch.equal(flat[ids[13:30]], torch.full((17,), 1))  # the largest halo becomes 1
    assert torch.equal(flat[ids[:10]], torch.full((10,), 2))
    assert not bool(flat[ids[10:13]].any()) and not bool(flat[ids[30:]].any())  # below the cut, or in none
    assert seg.meta["n_haloes"] == 2 and seg.n_instances == 2
    assert lagrangian_segmentation(labels, particles, min_particles=1).n_instances == 3


def test_the_stage_segmentation_uses_its_own_cut() -> None:
    from cosmoseg.sim.stages import FriendsOfFriendsStage
    from cosmoseg.testing import assert_stage_contract

    outputs = assert_stage_contract(FriendsOfFriendsStage, params={"segmentation_min_particles": 100})
    assert len(outputs["halos"]) == 4
    seg = outputs["segmentation"]
    assert seg.n_instances == 2
    assert int((seg.labels == 1).sum()) == 216 and int((seg.labels == 2).sum()) == 125


# ---- formation redshifts -------------------------------------------------------------------------------------


def test_formation_redshift_of_a_hand_made_history() -> None:
    # 3 haloes at z = 0: 10, 8 and 4 particles; 2 particles in no halo
    halo = torch.tensor([1] * 10 + [2] * 8 + [3] * 4 + [0, 0])
    # z = 1: halo 1's progenitor (group 5) holds 6 of its 10 particles (f = 0.6); halo 2 splits 4/4 between
    # groups 7 and 8 (tie -> group 7, which also holds the 2 loose particles: f = 6/8); halo 3 in group 9 (f = 1)
    z1 = torch.tensor([5] * 6 + [0] * 4 + [7] * 4 + [8] * 4 + [9] * 4 + [7, 7])
    # z = 3: halo 1 -> 2 particles in group 4 (f = 0.2); halo 2 -> 3 in group 2 (f = 3/8); halo 3 -> 3 of 4 (0.75)
    z3 = torch.tensor([4, 4] + [0] * 8 + [2] * 3 + [0] * 5 + [1, 1, 1, 0] + [0, 0])
    z_form = formation_redshifts(halo, [(3.0, z3), (1.0, z1)])

    def crossing(a_hi: float, f_hi: float, a_lo: float, f_lo: float) -> float:
        a = a_lo + (0.5 - f_lo) * (a_hi - a_lo) / (f_hi - f_lo)
        return 1 / a - 1

    expected = [crossing(0.5, 0.6, 0.25, 0.2), crossing(0.5, 0.75, 0.25, 3 / 8), 3.0]
    assert z_form.tolist() == pytest.approx(expected, rel=1e-12)
    # the order of the snapshots does not matter, and a later snapshot below 1/2 wins over an earlier one
    assert torch.equal(formation_redshifts(halo, [(1.0, z1), (3.0, z3)]), z_form)
    lost = z1.clone()
    lost[:10] = 0  # halo 1 has no progenitor at z = 1
    assert float(formation_redshifts(halo, [(1.0, lost), (3.0, z3)])[0]) == pytest.approx(crossing(1.0, 1.0, 0.5, 0.0))


# ---- bad input --------------------------------------------------------------------------------------------------


def test_bad_input_gives_clear_errors() -> None:
    pos = torch.rand(10, 3)
    with pytest.raises(ValidationError, match="length must be a positive"):
        friends_of_friends(pos, 0.0, 0.1)
    with pytest.raises(ValidationError, match="length must be a positive"):
        friends_of_friends(pos, -5.0, 0.1)
    with pytest.raises(ValidationError, match="linking_length must be a positive"):
        friends_of_friends(pos, 1.0, 0.0)
    with pytest.raises(ValidationError, match="smaller than half the box"):
        friends_of_friends(pos, 1.0, 0.6)
    with pytest.raises(ValidationError, match=r"pos must be \(N, 3\)"):
        friends_of_friends(torch.rand(10, 2), 1.0, 0.1)
    particles = toy_clustered_particles()
    with pytest.raises(ValidationError, match="b must be a positive number"):
        find_halos(particles, b=0.0)
    with pytest.raises(ValidationError, match="b must be a positive number"):
        find_halos(particles, b=-0.2)
    with pytest.raises(ValidationError, match="min_particles must be an integer >= 2"):
        find_halos(particles, min_particles=1)
    with pytest.raises(ValidationError, match="env_scales must lie in"):
        find_halos(particles, env_scales=(20.0,))
    no_grid = Particles(pos=particles.pos, vel=particles.vel, ids=particles.ids, mass=particles.mass, box=particles.box)
    with pytest.raises(ValidationError, match="n_grid = 0"):
        lagrangian_segmentation(torch.zeros(len(no_grid), dtype=torch.int64), no_grid)
    with pytest.raises(ValidationError, match="labels for"):
        lagrangian_segmentation(torch.zeros(3, dtype=torch.int64), particles)
    halo = torch.tensor([1, 1, 0])
    with pytest.raises(ValidationError, match="redshift must be >"):
        formation_redshifts(halo, [(0.0, halo)])
    with pytest.raises(ValidationError, match="shape"):
        formation_redshifts(halo, [(1.0, torch.tensor([1, 1]))])
    with pytest.raises(ValidationError, match="at least one"):
        formation_redshifts(halo, [])


def test_stage_params_are_checked() -> None:
    from cosmoseg.pipeline.params import parse_params
    from cosmoseg.sim.stages import FriendsOfFriendsParams

    _, problems = parse_params(
        FriendsOfFriendsParams,
        {"b": 0.0, "min_particles": 1, "segmentation_min_particles": 0, "env_scales": [-1.0]},
        "sim.fof",
    )
    text = "\n".join(problems)
    for expected in ("'b' must be > 0", "'min_particles' must be >= 2", "'env_scales' must be > 0"):
        assert expected in text
    # the rule across fields is checked once every field is in its bounds
    _, problems = parse_params(FriendsOfFriendsParams, {"min_particles": 30, "segmentation_min_particles": 20}, "f")
    assert problems == [
        "f: param 'segmentation_min_particles' (20) must be >= 'min_particles' (30): smaller haloes are not in the "
        "catalog"
    ]
