"""Boxes for dm2gal: the input and target fields of a suite box, and the crops the networks train on.

A box of a ``cosmoseg simulate`` suite (``save_particles = true``) holds the z = 0 ``particles`` and the FoF
``halos``. The truth galaxies come from a callable (``truth(halos, box_index) -> GalaxyCatalog``): the commands
build it from a registered stage (by default ``galaxies.model``) so this package does not depend on the galaxy
package, and a user with TNG data passes the TNG subhalo catalog instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from cosmoseg.data import Cosmology, Field, GalaxyCatalog, HaloCatalog, Particles, load_artifact, open_artifact
from cosmoseg.errors import ValidationError
from cosmoseg.mesh.symmetry import apply_symmetry, cube_symmetries
from cosmoseg.paint.fields import default_grid, paint_fields
from cosmoseg.sim.suites import box_index

__all__ = ["PaintBox", "TruthMaker", "load_suite_box", "periodic_crop", "random_crop", "read_box_seed"]

TruthMaker = Callable[[HaloCatalog, int], GalaxyCatalog]
"""truth(halos, box_index) -> the galaxies painted onto those haloes (seeded by the box index)."""

INPUT_CHANNELS = ("log_dm", "log_halo")
TARGET_CHANNEL = "log_mstar"


@dataclasses.dataclass(frozen=True)
class PaintBox:
    """One periodic box: inputs (2, n, n, n) and target (n, n, n), both log10(1 + M / (Msun/h)).

    name: the box file's name; length: its side, Mpc/h; galaxies, halos: the catalogs the fields came from; seed:
    the simulation seed of the box (:func:`read_box_seed`; its identity across suites, where file names repeat), None
    when the file does not record it; particle_mass: of the run the fields were painted from, Msun/h (None when
    unknown). The box's cosmology is its haloes' (:attr:`cosmology`).
    """

    name: str
    length: float
    inputs: torch.Tensor
    target: torch.Tensor
    halos: HaloCatalog
    galaxies: GalaxyCatalog
    seed: int | None = None
    particle_mass: float | None = None

    @property
    def cosmology(self) -> Cosmology:
        """The cosmology of the box (of its halo catalog's box)."""
        return self.halos.box.cosmology

    @property
    def n(self) -> int:
        return int(self.target.shape[-1])

    @property
    def index(self) -> int:
        """The box's index in its suite (:func:`cosmoseg.sim.suites.box_index` of its name): the truth is seeded by
        it."""
        return box_index(self.name)

    @property
    def voxel(self) -> float:
        """Voxel side, Mpc/h."""
        return self.length / self.n


def read_box_seed(path: Path) -> int | None:
    """The ``box_seed`` attribute of a box file (``cosmoseg simulate`` writes it), None when it has none."""
    with open_artifact(path) as f:
        return int(f.attrs["box_seed"]) if "box_seed" in f.attrs else None


def load_suite_box(path: Path, truth: TruthMaker, n: int, halo_assignment: str = "ngp") -> PaintBox:
    """The fields of a suite box file on an ``n``³ grid (0: the particles' Lagrangian grid; haloes by
    ``halo_assignment``, "ngp" or "cic"), with the galaxies ``truth`` paints onto its haloes."""
    objects = load_artifact(path)
    particles, halos = objects.get("particles"), objects.get("halos")
    if not isinstance(particles, Particles) or not isinstance(halos, HaloCatalog):
        raise ValidationError(
            f"a dm2gal box needs 'particles' (Particles) and 'halos' (HaloCatalog); {path} has {sorted(objects)} "
            "(simulate the suite with save_particles = true)",
            context="paint",
        )
    n = n or default_grid(particles)
    galaxies = truth(halos, box_index(path))
    fields = paint_fields(particles, halos, galaxies, n=n, halo_assignment=halo_assignment)
    return box_from_field(path.name, fields, halos, galaxies, seed=read_box_seed(path))


def box_from_field(
    name: str, fields: Field, halos: HaloCatalog, galaxies: GalaxyCatalog, *, seed: int | None = None
) -> PaintBox:
    """A ``PaintBox`` from a ``paint.fields`` Field (channels log_dm, log_halo, log_mstar; the particle mass from its
    meta when recorded)."""
    missing = [c for c in (*INPUT_CHANNELS, TARGET_CHANNEL) if c not in fields.channels]
    if missing:
        raise ValidationError(f"fields lack channel(s) {missing}; they have {list(fields.channels)}", context=name)
    index = {c: i for i, c in enumerate(fields.channels)}
    inputs = fields.values[[index[c] for c in INPUT_CHANNELS]].float()
    target = fields.values[index[TARGET_CHANNEL]].float()
    particle_mass = fields.meta.get("particle_mass")
    mass = None if particle_mass is None else float(particle_mass)
    return PaintBox(name, fields.box.length, inputs, target, halos, galaxies, seed, mass)


def periodic_crop(volume: torch.Tensor, start: Sequence[int], size: int) -> torch.Tensor:
    """The ``size``³ periodic crop of a (..., n, n, n) volume whose first voxel is ``start`` (wrapping around)."""
    n = volume.shape[-1]
    idx = [(torch.arange(size, device=volume.device) + int(s)) % n for s in start]
    return volume[..., idx[0][:, None, None], idx[1][None, :, None], idx[2][None, None, :]]


def random_crop(
    box: PaintBox,
    out_size: int,
    halo: int,
    generator: torch.Generator,
    *,
    augment: bool = True,
    extras: Sequence[torch.Tensor] = (),
    align: int = 1,
) -> list[torch.Tensor]:
    """A random training crop: [inputs (2, s + 2h, s + 2h, s + 2h), the target (s, s, s) at their centre, and the
    same (s, s, s) crop of every (n, n, n) volume in ``extras``].

    One of the 48 cube symmetries is applied to all of them when ``augment`` (the fields are isotropic). ``align``:
    the corner is a multiple of it (with ``s`` and ``h`` multiples too, a symmetry keeps the alignment: a network
    that pools cells of ``align`` voxels sees the cells of whole-box prediction).
    """
    corner = (torch.randint(0, max(box.n // align, 1), (3,), generator=generator) * align).tolist()
    out = [periodic_crop(box.inputs, [c - halo for c in corner], out_size + 2 * halo)]
    out += [periodic_crop(volume, corner, out_size) for volume in (box.target, *extras)]
    if augment:
        symmetries = cube_symmetries()
        perm, flips = symmetries[int(torch.randint(0, len(symmetries), (1,), generator=generator))]
        out = [torch.stack([apply_symmetry(c, perm, flips) for c in out[0]])] + [
            apply_symmetry(v, perm, flips) for v in out[1:]
        ]
    return out
