"""Weighted sampling of training voxels by the inverse abundance of their stellar mass (dm2gal, Kasmanoff et al.).

The abundance of voxels falls by orders of magnitude with stellar mass, so a network trained on uniformly drawn
voxels learns only the most common, least massive ones. dm2gal bins the training targets in 100 bins of log10 M*
between 10^8 and 10^11.5 Msun/h and gives each sample the weight 1 / (number of samples in its bin); drawing with
probability proportional to that weight makes every occupied bin equally likely.

The published code draws only from the first 40 000 samples; here every one of the N samples can be drawn: the
draw is an inverse-CDF look-up over the cumulative weights of all N samples (no category limit, unlike
``torch.multinomial``'s 2^24).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

from cosmoseg.errors import ProblemCollector, ValidationError

DEFAULT_N_BINS = 100
DEFAULT_LO = 1e8
"""Lower edge of the first bin, Msun/h."""
DEFAULT_HI = 10**11.5
"""Upper edge of the last bin, Msun/h."""


def _check_bins(problems: ProblemCollector, n_bins: int, lo: float, hi: float) -> None:
    problems.check(
        isinstance(n_bins, int) and not isinstance(n_bins, bool) and n_bins > 0,
        f"n_bins must be a positive integer, got {n_bins!r}",
    )
    lo_ok = problems.check(math.isfinite(lo) and lo > 0, f"lo must be a finite positive mass in Msun/h, got {lo!r}")
    hi_ok = problems.check(math.isfinite(hi) and hi > 0, f"hi must be a finite positive mass in Msun/h, got {hi!r}")
    if lo_ok and hi_ok:
        problems.check(lo < hi, f"lo must be below hi, got lo={lo!r} >= hi={hi!r}")


def mass_bin_index(
    mstar: torch.Tensor, *, n_bins: int = DEFAULT_N_BINS, lo: float = DEFAULT_LO, hi: float = DEFAULT_HI
) -> torch.Tensor:
    """The log10-mass bin of each sample.

    mstar: (N,) stellar mass per sample in Msun/h, finite and >= 0 (a voxel without stars has 0; a field stored as
        log10(1 + M*) is turned back with
        ``cosmoseg.paint.fields.from_log_mass``).
    n_bins, lo, hi: ``n_bins`` bins of equal width in log10 M* between ``lo`` and ``hi`` (Msun/h).

    Returns (N,) int64 bin numbers in [0, n_bins). Samples below ``lo`` (M* = 0 included) go to the first bin and
    samples at or above ``hi`` to the last, so no sample is left without a weight.
    Raises `ValidationError` naming every problem: empty or non-1D input, NaN/inf or negative masses, bad bins.
    """
    problems = ProblemCollector()
    _check_bins(problems, n_bins, lo, hi)
    if not isinstance(mstar, torch.Tensor):
        problems.add(f"mstar must be a torch.Tensor, got {type(mstar).__name__}")
    elif mstar.ndim != 1 or mstar.numel() == 0:
        problems.add(f"mstar must be a non-empty 1D tensor of masses (N,), got shape {tuple(mstar.shape)}")
    elif not mstar.is_floating_point():
        problems.add(f"mstar must be floating point (Msun/h), got dtype {mstar.dtype}")
    else:
        n_bad = int((~torch.isfinite(mstar)).sum())
        problems.check(n_bad == 0, f"mstar has {n_bad} non-finite value(s) (NaN or inf)")
        n_neg = int((mstar < 0).sum())
        problems.check(n_neg == 0, f"mstar has {n_neg} negative value(s); masses must be >= 0 Msun/h")
    problems.raise_if_any(ValidationError, context="mass_bin_index")

    log_m = torch.log10(mstar.to(torch.float64).clamp_min(lo))
    log_lo, log_hi = math.log10(lo), math.log10(hi)
    index = torch.floor((log_m - log_lo) * (n_bins / (log_hi - log_lo))).to(torch.int64)
    return index.clamp_(0, n_bins - 1)


def mass_bin_weights(
    mstar: torch.Tensor, *, n_bins: int = DEFAULT_N_BINS, lo: float = DEFAULT_LO, hi: float = DEFAULT_HI
) -> torch.Tensor:
    """dm2gal's sample weights: 1 / (number of samples in the sample's log10 M* bin), counted over ALL samples.

    mstar: (N,) stellar mass per sample in Msun/h (see :func:`mass_bin_index` for the binning, edge bins included).

    Returns (N,) float64 weights on the device of ``mstar``, all > 0; each occupied bin sums to 1, so drawing with
    probability proportional to the weight picks every occupied bin equally often.
    """
    index = mass_bin_index(mstar, n_bins=n_bins, lo=lo, hi=hi)
    counts = torch.bincount(index, minlength=n_bins).to(torch.float64)
    return 1.0 / counts[index]


class WeightedSampler(Sampler[int]):
    """Draws ``num_samples`` indices out of ALL N samples, with replacement, with probability ∝ ``weights``.

    weights: (N,) non-negative finite weights (e.g. from :func:`mass_bin_weights`), at least one > 0.
    num_samples: indices per epoch (default N).
    seed / generator: the stream of draws. Give a ``seed`` (int), or a ``torch.Generator`` from which one 63-bit
        base seed is drawn once, at construction (default seed 0). Epoch ``e`` draws with a CPU generator seeded
        with ``base_seed + e``, so a sampler is deterministic given its seed and epoch, whatever else ran.

    Epochs: ``set_epoch(e)`` picks the epoch of the next iteration (as ``DistributedSampler`` does); each
    ``__iter__`` then moves an internal counter to the next epoch, so iterating again without ``set_epoch``
    gives a new, still reproducible, stream. Indices are Python ints; the look-up runs on the CPU.
    """

    def __init__(
        self,
        weights: torch.Tensor,
        num_samples: int | None = None,
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        problems = ProblemCollector()
        if not isinstance(weights, torch.Tensor) or weights.ndim != 1 or weights.numel() == 0:
            shape = tuple(weights.shape) if isinstance(weights, torch.Tensor) else type(weights).__name__
            problems.add(f"weights must be a non-empty 1D tensor (N,), got {shape}")
        else:
            w = weights.detach().to("cpu", torch.float64)
            n_bad = int((~torch.isfinite(w)).sum())
            problems.check(n_bad == 0, f"weights have {n_bad} non-finite value(s) (NaN or inf)")
            n_neg = int((w < 0).sum())
            problems.check(n_neg == 0, f"weights have {n_neg} negative value(s)")
            if n_bad == 0 and n_neg == 0:
                problems.check(bool((w > 0).any()), "weights are all zero; nothing can be drawn")
        if num_samples is not None:
            problems.check(
                isinstance(num_samples, int) and not isinstance(num_samples, bool) and num_samples > 0,
                f"num_samples must be a positive integer, got {num_samples!r}",
            )
        problems.check(seed is None or generator is None, "give a seed or a generator, not both")
        problems.check(seed is None or isinstance(seed, int), f"seed must be an int, got {seed!r}")
        problems.raise_if_any(ValidationError, context="WeightedSampler")

        self.cdf = torch.cumsum(w, 0)
        """(N,) float64 cumulative weights on the CPU."""
        self.num_samples = int(num_samples) if num_samples is not None else int(w.numel())
        if generator is not None:
            seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
        self.base_seed = int(seed) if seed is not None else 0
        self.epoch = 0
        self._last = int(torch.nonzero(w > 0)[-1])  # the last index that can be drawn

    @classmethod
    def from_masses(
        cls,
        mstar: torch.Tensor,
        num_samples: int | None = None,
        *,
        n_bins: int = DEFAULT_N_BINS,
        lo: float = DEFAULT_LO,
        hi: float = DEFAULT_HI,
        seed: int | None = None,
        generator: torch.Generator | None = None,
    ) -> WeightedSampler:
        """The dm2gal sampler: weights from :func:`mass_bin_weights` of ``mstar`` (N,) in Msun/h."""
        weights = mass_bin_weights(mstar, n_bins=n_bins, lo=lo, hi=hi)
        return cls(weights, num_samples, seed=seed, generator=generator)

    @property
    def probabilities(self) -> torch.Tensor:
        """(N,) float64 probability of each index per draw (sums to 1)."""
        total = self.cdf[-1]
        return torch.diff(self.cdf, prepend=self.cdf.new_zeros(1)) / total

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration draw the stream of ``epoch`` (an int >= 0)."""
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
            raise ValidationError(f"epoch must be an integer >= 0, got {epoch!r}", context="WeightedSampler")
        self.epoch = epoch

    def draw(self, epoch: int | None = None) -> torch.Tensor:
        """(num_samples,) int64 CPU indices of epoch ``epoch`` (default: the current one); moves no counter."""
        epoch = self.epoch if epoch is None else epoch
        gen = torch.Generator().manual_seed((self.base_seed + epoch) % (2**63))
        u = torch.rand(self.num_samples, generator=gen, dtype=torch.float64) * self.cdf[-1]
        # right=True: u in [cdf[i-1], cdf[i]) picks i, so zero-weight samples (empty intervals) are never drawn
        index = torch.searchsorted(self.cdf, u, right=True)
        return index.clamp_(max=self._last)  # u rounding up to the total

    def __iter__(self) -> Iterator[int]:
        index = self.draw()
        self.epoch += 1
        return iter(index.tolist())

    def __len__(self) -> int:
        return self.num_samples
