"""Baselines for dm2gal (Kasmanoff et al.): stellar masses drawn by host-halo mass and central/satellite.

The paper's "HOD" benchmark bins the haloes of the truth run by mass; within each bin it splits the galaxies into
centrals and satellites and keeps their two stellar-mass distributions. Galaxies of another run (or of a held-out
box) then get stellar masses drawn from the distribution of their host's mass bin and of their kind.
:class:`ConditionalMassResampler` is that model, with empirical distributions (the training ``log_mstar`` values
themselves, drawn uniformly). Applied to

- the truth galaxies of a held-out box (same positions, same central/satellite split):
  :func:`paper_hod_baseline`, the paper's benchmark;
- a Zheng et al. (2007) HOD catalog made elsewhere (the ``galaxies.hod`` stage; positions, ``host``,
  ``is_central``, no stellar masses): :func:`hod_catalog_baseline` gives it stellar masses, so that it can be
  painted to the same grid as the truth.

Not done here: the paper's extra correction for baryonic effects (rescaling by the ratio of satellite numbers and
of halo masses between the hydrodynamic and the gravity-only run) needs a matched hydro/gravity-only pair.

Binning: host bin ``b = floor(log10(M_host [Msun/h]) / bin_dex)``, anchored at M = 1 Msun/h so that fitting and
assigning agree without storing a range. A galaxy whose (bin, kind) had no training galaxy draws from the nearest
non-empty bin of the same kind (by bin number; a tie goes to the less massive bin); host masses beyond the training
range thus use the edge bins. A kind with no training galaxy at all cannot be assigned (error).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import torch

from cosmoseg.data import GalaxyCatalog, HaloCatalog
from cosmoseg.errors import ProblemCollector, ValidationError

DEFAULT_BIN_DEX = 0.1
"""Width of the host-mass bins in dex."""

KINDS = ("satellite", "central")
"""Galaxy kinds, indexed by ``int(is_central)``."""


def _check_pair(problems: ProblemCollector, galaxies: object, halos: object, *, need_mstar: bool, where: str) -> bool:
    """Record every problem of a (galaxies, halos) pair; returns whether the columns can be used."""
    ok = problems.check(
        isinstance(galaxies, GalaxyCatalog), f"{where}galaxies must be a GalaxyCatalog, got {type(galaxies).__name__}"
    )
    ok &= problems.check(
        isinstance(halos, HaloCatalog), f"{where}halos must be a HaloCatalog, got {type(halos).__name__}"
    )
    if not ok:
        return False
    assert isinstance(galaxies, GalaxyCatalog) and isinstance(halos, HaloCatalog)
    need = ["host", "is_central"] + (["log_mstar"] if need_mstar else [])
    missing = [c for c in need if c not in galaxies]
    if missing:
        problems.add(f"{where}galaxies miss column(s) {missing}; they have {sorted(galaxies.columns)}")
        return False
    host, is_central = galaxies["host"], galaxies["is_central"]
    host_ok = problems.check(
        host.ndim == 1 and not host.is_floating_point() and host.dtype != torch.bool,
        f"{where}column 'host' must be a 1D integer tensor (row of the host halo), got {host.dtype} "
        f"{tuple(host.shape)}",
    )
    ok = problems.check(
        is_central.ndim == 1 and is_central.dtype == torch.bool,
        f"{where}column 'is_central' must be a 1D bool tensor, got {is_central.dtype} {tuple(is_central.shape)}",
    )
    if need_mstar:
        log_mstar = galaxies["log_mstar"]
        ok &= problems.check(
            log_mstar.ndim == 1 and log_mstar.is_floating_point(),
            f"{where}column 'log_mstar' must be a 1D float tensor, got {log_mstar.dtype} {tuple(log_mstar.shape)}",
        )
    ok &= problems.check(
        halos["mass"].ndim == 1, f"{where}halo column 'mass' must be 1D, got {tuple(halos['mass'].shape)}"
    )
    if host_ok and host.numel():
        n_halos = len(halos)
        bad = (host < 0) | (host >= n_halos)
        n_bad = int(bad.sum())
        if n_bad:
            first = int(bad.nonzero()[0])
            problems.add(
                f"{where}{n_bad} galaxy host(s) outside the halo catalog's rows [0, {n_halos}), the first at "
                f"galaxy {first} (host {int(host[first])})"
            )
            host_ok = False
    return ok and host_ok


@dataclasses.dataclass(frozen=True)
class _KindTable:
    """Training log_mstar values of one kind, grouped by host bin (a CSR layout)."""

    bins: torch.Tensor  # (B,) int64, sorted occupied host-bin numbers
    offsets: torch.Tensor  # (B + 1,) int64, values[offsets[j]:offsets[j + 1]] belong to bins[j]
    values: torch.Tensor  # (M,) float64 log10 M* [Msun/h]

    @classmethod
    def build(cls, bins: torch.Tensor, values: torch.Tensor) -> _KindTable:
        order = torch.argsort(bins, stable=True)
        bins, values = bins[order], values[order]
        unique, counts = torch.unique_consecutive(bins, return_counts=True)
        offsets = torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])
        return cls(bins=unique, offsets=offsets, values=values)

    def nearest(self, bins: torch.Tensor) -> torch.Tensor:
        """(G,) row in ``self.bins`` of the nearest occupied bin to each of ``bins`` (G,); ties go lower."""
        table = self.bins.to(bins.device)
        right = torch.searchsorted(table, bins).clamp_(max=table.numel() - 1)
        left = (right - 1).clamp_(min=0)
        take_left = (bins - table[left]).abs() <= (table[right] - bins).abs()
        return torch.where(take_left, left, right)


class ConditionalMassResampler:
    """The paper's HOD benchmark: log_mstar drawn from truth galaxies of the same host-mass bin and kind.

    bin_dex: width of the host-mass bins in dex (default 0.1); see the module docstring for the binning and the
        fallback of empty bins.

    Fit once on the truth of the training boxes (:meth:`fit`), then :meth:`assign` to any galaxy catalog with
    ``host`` and ``is_central``. The fitted tables live on the CPU as float64.
    """

    def __init__(self, *, bin_dex: float = DEFAULT_BIN_DEX) -> None:
        if not (isinstance(bin_dex, int | float) and math.isfinite(bin_dex) and bin_dex > 0):
            raise ValidationError(f"bin_dex must be a finite positive width in dex, got {bin_dex!r}")
        self.bin_dex = float(bin_dex)
        self._tables: dict[bool, _KindTable] | None = None

    def host_bin(self, host_mass: torch.Tensor) -> torch.Tensor:
        """(G,) int64 host bin of host masses (G,) in Msun/h: ``floor(log10(M) / bin_dex)``."""
        return torch.floor(torch.log10(host_mass.to(torch.float64)) / self.bin_dex).to(torch.int64)

    @property
    def is_fitted(self) -> bool:
        return self._tables is not None

    def fit(
        self,
        galaxies: GalaxyCatalog | Sequence[GalaxyCatalog],
        halos: HaloCatalog | Sequence[HaloCatalog],
    ) -> ConditionalMassResampler:
        """Collect the truth stellar masses per (host bin, kind) over one box or a list of boxes.

        galaxies: truth galaxies with ``log_mstar`` (G,) log10 Msun/h, ``is_central`` (G,) bool and ``host`` (G,)
            int (row of the host in the matching ``halos``), one catalog per box.
        halos: the matching halo catalogs, ``mass`` (H,) Msun/h.

        Returns self. Raises `ValidationError` naming every problem of every box at once (missing columns, bad
        dtypes, hosts outside the halo catalog, unequal numbers of boxes, no galaxy at all).
        """
        gal_list = [galaxies] if isinstance(galaxies, GalaxyCatalog) else list(galaxies)
        halo_list = [halos] if isinstance(halos, HaloCatalog) else list(halos)
        problems = ProblemCollector()
        problems.check(
            len(gal_list) == len(halo_list),
            f"got {len(gal_list)} galaxy catalog(s) but {len(halo_list)} halo catalog(s)",
        )
        problems.check(bool(gal_list), "no training box given")
        oks = [
            _check_pair(problems, g, h, need_mstar=True, where=f"box {i}: " if len(gal_list) > 1 else "")
            for i, (g, h) in enumerate(zip(gal_list, halo_list, strict=False))
        ]
        problems.raise_if_any(ValidationError, context="ConditionalMassResampler.fit")
        assert all(oks)

        bins, kinds, values = [], [], []
        for g, h in zip(gal_list, halo_list, strict=True):
            host = g["host"].to(torch.int64).cpu()
            bins.append(self.host_bin(h["mass"].cpu()[host]))
            kinds.append(g["is_central"].cpu())
            values.append(g["log_mstar"].cpu().to(torch.float64))
        all_bins, all_kinds, all_values = torch.cat(bins), torch.cat(kinds), torch.cat(values)
        if all_values.numel() == 0:
            raise ValidationError("the training catalogs hold no galaxy", context="ConditionalMassResampler.fit")
        self._tables = {
            central: _KindTable.build(all_bins[all_kinds == central], all_values[all_kinds == central])
            for central in (False, True)
            if bool((all_kinds == central).any())
        }
        return self

    def training_values(self, *, central: bool, host_mass: float) -> torch.Tensor:
        """(M,) float64 training log_mstar values a galaxy of this kind and host mass [Msun/h] draws from."""
        table = self._table(central)
        row = int(table.nearest(self.host_bin(torch.tensor([float(host_mass)])))[0])
        return table.values[table.offsets[row] : table.offsets[row + 1]]

    def _table(self, central: bool) -> _KindTable:
        if self._tables is None:
            raise ValidationError("call fit() before drawing stellar masses", context="ConditionalMassResampler")
        if central not in self._tables:
            raise ValidationError(
                f"the training catalogs hold no {KINDS[int(central)]}, so none can be given a stellar mass",
                context="ConditionalMassResampler",
            )
        return self._tables[central]

    def assign(self, galaxies: GalaxyCatalog, halos: HaloCatalog, generator: torch.Generator) -> GalaxyCatalog:
        """A copy of ``galaxies`` whose ``log_mstar`` (G,) [log10 Msun/h] is drawn from the matching training bin.

        galaxies: ``host`` (G,) int rows of ``halos`` and ``is_central`` (G,) bool; an existing ``log_mstar`` is
            replaced (it keeps its dtype; a new one takes the dtype of ``pos``). Positions and all other columns are
            kept as they are.
        halos: the host catalog, ``mass`` (H,) Msun/h.
        generator: the source of the uniform draws (one per galaxy, on the generator's device): the same generator
            state gives the same masses.

        meta gains ``log_mstar_model = "conditional-resampling"`` and ``log_mstar_bin_dex``.
        Raises `ValidationError` naming every problem at once (missing columns, bad hosts), and when the catalog
        holds a kind (central/satellite) that the training had none of.
        """
        problems = ProblemCollector()
        problems.check(
            isinstance(generator, torch.Generator), f"generator must be a torch.Generator, got {generator!r}"
        )
        _check_pair(problems, galaxies, halos, need_mstar=False, where="")
        problems.raise_if_any(ValidationError, context="ConditionalMassResampler.assign")

        device = galaxies["pos"].device
        dtype = galaxies["log_mstar"].dtype if "log_mstar" in galaxies else galaxies["pos"].dtype
        host = galaxies["host"].to(torch.int64)
        is_central = galaxies["is_central"]
        bins = self.host_bin(halos["mass"].to(device)[host])
        u = torch.rand(len(galaxies), generator=generator, dtype=torch.float64, device=generator.device).to(device)
        out = torch.empty(len(galaxies), dtype=torch.float64, device=device)
        for central in (False, True):
            mask = is_central == central
            if not bool(mask.any()):
                continue
            table = self._table(central)
            offsets, values = table.offsets.to(device), table.values.to(device)
            row = table.nearest(bins[mask])
            start, count = offsets[row], offsets[row + 1] - offsets[row]
            pick = torch.minimum(torch.floor(u[mask] * count).to(torch.int64), count - 1)
            out[mask] = values[start + pick]
        result = galaxies.with_columns(log_mstar=out.to(dtype))
        meta = {**result.meta, "log_mstar_model": "conditional-resampling", "log_mstar_bin_dex": self.bin_dex}
        return dataclasses.replace(result, meta=meta)


def paper_hod_baseline(
    train_galaxies: GalaxyCatalog | Sequence[GalaxyCatalog],
    train_halos: HaloCatalog | Sequence[HaloCatalog],
    galaxies: GalaxyCatalog,
    halos: HaloCatalog,
    *,
    generator: torch.Generator,
    bin_dex: float = DEFAULT_BIN_DEX,
) -> GalaxyCatalog:
    """The paper's HOD benchmark on a held-out box: its truth galaxies (same positions, same central/satellite
    split) with ``log_mstar`` redrawn from the training boxes' distribution per host-mass bin and kind.

    train_galaxies / train_halos: truth of the training box(es) (see :meth:`ConditionalMassResampler.fit`).
    galaxies / halos: truth of the held-out box; ``galaxies`` needs ``host`` and ``is_central``.
    Returns a copy of ``galaxies`` with new ``log_mstar`` (G,) log10 Msun/h.
    """
    resampler = ConditionalMassResampler(bin_dex=bin_dex).fit(train_galaxies, train_halos)
    return resampler.assign(galaxies, halos, generator)


def hod_catalog_baseline(
    train_galaxies: GalaxyCatalog | Sequence[GalaxyCatalog],
    train_halos: HaloCatalog | Sequence[HaloCatalog],
    hod_galaxies: GalaxyCatalog,
    halos: HaloCatalog,
    *,
    generator: torch.Generator,
    bin_dex: float = DEFAULT_BIN_DEX,
) -> GalaxyCatalog:
    """Stellar masses for an HOD catalog (e.g. the Zheng07 one of the ``galaxies.hod`` stage), drawn as in
    :func:`paper_hod_baseline`, so that it can be painted onto the same grid as the truth.

    hod_galaxies: positions, ``host`` (G,) int rows of ``halos``, ``is_central`` (G,) bool.
    Returns a copy with ``log_mstar`` (G,) log10 Msun/h.
    """
    return paper_hod_baseline(train_galaxies, train_halos, hod_galaxies, halos, generator=generator, bin_dex=bin_dex)
