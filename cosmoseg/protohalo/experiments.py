"""Modified initial conditions that probe what a protohalo network learned (López-Cano et al. §4).

* :func:`shift_density`: a uniform density shift δ_ε (eq. 11) with the potential that goes with it, φ + δ_ε |q −
  q₀|²/6 (eq. 12), so that ∇²φ_* = δ_* still holds;
* :func:`impose_tide`: a trace-free tidal field T = diag(0, −λ_z, λ_z) about q₀ (eqs. 15–16), which leaves δ
  unchanged (the trace is 0).

Both quadratic terms are written with the minimal periodic image of q − q₀, so the modified fields are periodic,
as the networks' crop lattice needs; they are exact quadratics within half a box of q₀ (the only region where a
quadratic term makes sense in a periodic box; the face half a box away carries a kink). The paper's public
notebook uses |q − q₀| instead of |q − q₀|² in eq. (12), whose Laplacian is not δ_ε.

The four experiments of §4 built on them (``cosmoseg protohalo experiment density|tidal|sigma8|bias``) take the
predictor as a plain callable (:data:`Predictor`: Field -> labels), so any model pair runs them
(:func:`pair_predictor`, the one the ``protohalo.panoptic`` stage uses) and a toy predictor tests them:

* :func:`density_response` / :func:`tidal_response`: one true halo's predicted counterpart as δ_ε (about its
  Lagrangian centre) or λ_z changes, with the spherical-collapse mass of the same linear field beside it
  (:func:`spherical_collapse_mass`);
* :func:`sigma8_response`: the predicted halo mass function of the fields scaled by a factor (linear theory:
  δ, φ ∝ σ_8, :func:`scale_amplitude`) against the mass function of the same box re-simulated at that σ_8
  (:func:`resimulate_segmentation`);
* :func:`bias_response`: the separate-universe Lagrangian bias of the predicted haloes (a uniform shift of the
  whole box, :func:`shift_box`) against the Sheth–Tormen peak-background-split value at the true haloes' masses
  (:func:`sheth_tormen_bias`) and the paper's eq. (14) estimator (:func:`lagrangian_bias_estimates`).

Every result is an :class:`ExperimentTable` (numpy columns, units, meta) that writes itself as CSV atomically; the
figures drawn from them are in :mod:`cosmoseg.protohalo.experiment_figures`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from cosmoseg.data import Cosmology, Field
from cosmoseg.data.hdf5 import atomic_write
from cosmoseg.errors import ValidationError
from cosmoseg.measure.onepoint import histogram, smooth_field
from cosmoseg.mesh.grid import cell_centers, grid_cell_centers
from cosmoseg.mesh.periodic import group_centres, minimal_image
from cosmoseg.protohalo.mass_bins import DELTA_COLLAPSE

if TYPE_CHECKING:
    from cosmoseg.data import Segmentation
    from cosmoseg.protohalo.pretrained import ModelPair

__all__ = [
    "ExperimentTable",
    "Predictor",
    "bias_response",
    "counts_in_bins",
    "density_response",
    "halo_centre",
    "halo_response",
    "impose_tide",
    "instance_masses",
    "jackknife_bias",
    "lagrangian_bias_estimates",
    "log_mass_edges",
    "mask_extent",
    "mask_iou",
    "matched_instance",
    "pair_predictor",
    "peak_height",
    "periodic_separation",
    "resimulate_segmentation",
    "response_ratio",
    "scale_amplitude",
    "separate_universe_bias",
    "sheth_tormen_bias",
    "shift_box",
    "shift_density",
    "sigma8_response",
    "spherical_collapse_mass",
    "tidal_response",
]


def periodic_separation(n: int, length: float, centre: Sequence[float], *, dtype: torch.dtype) -> torch.Tensor:
    """(3, n, n, n) minimal periodic image of q − q₀ for every cell centre q of an n³ grid, Mpc/h.

    ``centre``: q₀ (3,), Mpc/h. Cell (i, j, k) has its centre at ((i, j, k) + ½) length / n, the project's
    Lagrangian grid convention (:func:`cosmoseg.mesh.grid.grid_cell_centers`).
    """
    q0 = torch.as_tensor(centre, dtype=dtype).reshape(3)
    q = grid_cell_centers(n, length, dtype=dtype)
    return minimal_image(q - q0, length).T.reshape(3, n, n, n)


def _modified(fields: Field, delta: torch.Tensor, phi: torch.Tensor, what: str) -> Field:
    values = fields.values.clone()
    values[fields.channels.index("delta")] = delta.to(values.dtype)
    values[fields.channels.index("phi")] = phi.to(values.dtype)
    return Field(
        values=values,
        box=fields.box,
        channels=fields.channels,
        units=fields.units,
        meta={**fields.meta, "modified": what},
    )


def _check(fields: Field) -> None:
    missing = [c for c in ("delta", "phi") if c not in fields.channels]
    if missing:
        raise ValueError(f"the fields need 'delta' and 'phi' channels; missing {missing} (they have {fields.channels})")


def shift_density(fields: Field, epsilon: float, centre: Sequence[float]) -> Field:
    """δ_* = δ + ε everywhere and φ_* = φ + ε |q − q₀|²/6 (minimal image), eqs. (11)–(12).

    ``fields``: the linear ("delta", "phi") Field of a box (φ in (Mpc/h)², ∇²φ = δ); ``epsilon``: δ_ε; ``centre``:
    q₀ (3,), Mpc/h, typically a protohalo's Lagrangian centre. Returns a new Field (``meta["modified"]`` says what
    was done); the input is left as it is.
    """
    _check(fields)
    length = fields.box.length
    d = periodic_separation(fields.n, length, centre, dtype=torch.float64)
    delta = fields.channel("delta").to(torch.float64) + float(epsilon)
    phi = fields.channel("phi").to(torch.float64) + float(epsilon) * (d**2).sum(0) / 6.0
    return _modified(fields, delta, phi, f"delta shifted by {float(epsilon):g} about {list(map(float, centre))}")


def impose_tide(fields: Field, lambda_z: float, centre: Sequence[float]) -> Field:
    """φ_* = φ + ½ (q − q₀)ᵀ T (q − q₀) with T = diag(0, −λ_z, λ_z) (minimal image), eqs. (15)–(16); δ unchanged.

    A positive λ_z compresses along z and stretches along y. ``fields``, ``centre``: as :func:`shift_density`.
    """
    _check(fields)
    d = periodic_separation(fields.n, fields.box.length, centre, dtype=torch.float64)
    phi = fields.channel("phi").to(torch.float64) + 0.5 * float(lambda_z) * (d[2] ** 2 - d[1] ** 2)
    return _modified(
        fields, fields.channel("delta"), phi, f"tide lambda_z = {float(lambda_z):g} about {list(map(float, centre))}"
    )


# ----------------------------------------------------------------------------------------------------------------
# the results: a small table with units and meta that writes itself as CSV


@dataclasses.dataclass(frozen=True)
class ExperimentTable:
    """Named numpy columns of equal length (float or int), their units, and scalar facts about the run (meta).

    Undefined values (a ratio to an empty bin) are NaN, written ``nan`` in the CSV.
    """

    columns: Mapping[str, np.ndarray]
    units: Mapping[str, str] = dataclasses.field(default_factory=dict)
    meta: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        lengths = {name: len(np.asarray(v)) for name, v in self.columns.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"columns of different lengths: {lengths}")

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def __getitem__(self, name: str) -> np.ndarray:
        return np.asarray(self.columns[name])

    def csv_text(self) -> str:
        """The CSV: ``# key: value`` lines (units, then meta as JSON), the header, one line per row (floats %.6g)."""
        lines = [f"# units: {json.dumps({k: v for k, v in self.units.items() if v})}"]
        lines += [f"# {key}: {json.dumps(value, default=str)}" for key, value in self.meta.items()]
        names = list(self.columns)
        lines.append(",".join(names))
        arrays = [np.asarray(self.columns[n]) for n in names]

        def cell(x: Any) -> str:
            if isinstance(x, (float, np.floating)):
                return "nan" if not math.isfinite(float(x)) else f"{float(x):.6g}"
            return str(x.item() if hasattr(x, "item") else x)

        lines += [",".join(cell(a[i]) for a in arrays) for i in range(len(self))]
        return "\n".join(lines) + "\n"

    def write_csv(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write :meth:`csv_text` to ``path`` atomically (a temporary file beside it, then ``os.replace``);
        `FileExistsError` when ``path`` exists and not ``overwrite``."""
        target = Path(path)
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target} exists (give --overwrite to replace it)")
        text = self.csv_text()
        return atomic_write(target, lambda tmp: tmp.write_text(text), suffix=".csv")


# ----------------------------------------------------------------------------------------------------------------
# predictors and single-halo geometry

Predictor = Callable[[Field], torch.Tensor]
"""The linear ("delta", "phi") Field of a box -> its predicted instance labels, (n, n, n) int, 0 = no halo."""


def pair_predictor(pair: ModelPair, *, device: str | torch.device = "cpu", batch_size: int = 4) -> Predictor:
    """The :data:`Predictor` of a model pair, as the ``protohalo.panoptic`` stage predicts a box
    (:func:`~cosmoseg.protohalo.predict.predict_protohaloes`): the fields are checked against the pair
    (:meth:`~cosmoseg.protohalo.pretrained.ModelPair.check_fields`), prepared
    (:meth:`~cosmoseg.protohalo.pretrained.ModelPair.prepare_fields`) and predicted with the pair's threshold and
    clustering / grouping (:meth:`~cosmoseg.protohalo.pretrained.ModelPair.predict`). Returns labels on the CPU."""

    def predict(fields: Field) -> torch.Tensor:
        pair.check_fields(fields, where="input 'fields'")
        prepared, _ = pair.prepare_fields(fields)
        return pair.predict(prepared, batch_size=batch_size, device=device).labels.cpu().long()

    return predict


def _mask_centre(mask: torch.Tensor, length: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The cell centres (M, 3), float64 Mpc/h, of the voxels of a non-empty boolean (n, n, n) mask
    (:func:`cosmoseg.mesh.grid.cell_centers`) and their periodic centre of mass (3,)
    (:func:`cosmoseg.mesh.periodic.group_centres`)."""
    x = cell_centers(torch.nonzero(mask.flatten()).flatten(), mask.shape[-1], length, dtype=torch.float64)
    return x, group_centres(x, torch.zeros(len(x), dtype=torch.int64), 1, length)[0]


def halo_centre(labels: torch.Tensor, halo_id: int, length: float) -> tuple[float, float, float]:
    """Periodic Lagrangian centre of mass q₀ (Mpc/h) of the voxels labelled ``halo_id`` in ``labels`` ((n, n, n)
    int on a box of side ``length``); `ValidationError` when no voxel has that label."""
    mask = labels == int(halo_id)
    if not bool(mask.any()):
        raise ValidationError(f"no voxel is labelled {halo_id} (labels run 1..{int(labels.max())})")
    _, c = _mask_centre(mask, length)
    return (float(c[0]), float(c[1]), float(c[2]))


def _voxel_of(centre: Sequence[float], n: int, length: float) -> tuple[int, int, int]:
    i, j, k = (math.floor(float(c) / length * n) % n for c in centre)
    return (i, j, k)


def mask_iou(a: torch.Tensor, b: torch.Tensor) -> float:
    """|a ∩ b| / |a ∪ b| of two boolean masks of one shape; 0 when both are empty."""
    union = int((a | b).sum())
    return int((a & b).sum()) / union if union else 0.0


def matched_instance(labels: torch.Tensor, reference: torch.Tensor, centre_voxel: Sequence[int]) -> int:
    """The instance of ``labels`` ((n, n, n) int, 0 = none) that shares the most voxels with the boolean
    ``reference`` mask (ties: the lower label); when none overlaps it, the instance at ``centre_voxel`` (i, j, k);
    0 when that voxel is in none either."""
    inside = labels[reference.bool()].long()
    inside = inside[inside > 0]
    if len(inside):
        return int(torch.bincount(inside).argmax())
    return int(labels[tuple(int(c) for c in centre_voxel)])


def mask_extent(mask: torch.Tensor, length: float) -> tuple[float, float, float]:
    """rms extent along x, y, z (Mpc/h) of a boolean (n, n, n) mask about its periodic centre of mass: sqrt of the
    diagonal of its second-moment tensor; NaN for an empty mask."""
    if not bool(mask.any()):
        return (math.nan, math.nan, math.nan)
    x, c = _mask_centre(mask, length)
    d = minimal_image(x - c, length)
    rms = d.square().mean(0).sqrt()
    return (float(rms[0]), float(rms[1]), float(rms[2]))


def spherical_collapse_mass(
    delta: torch.Tensor,
    centre: Sequence[float],
    length: float,
    particle_mass: float,
    epsilon: float = 0.0,
    delta_c: float = DELTA_COLLAPSE,
) -> float:
    """Spherical-collapse (top-hat excursion-set) mass about q₀ of the linear field shifted by ε, Msun/h.

    The voxels of ``delta`` ((n, n, n), linear at z = 0) are ordered by their periodic distance to ``centre`` (q₀,
    Mpc/h); δ̄(<N) is the mean of the N nearest. The mass is ``particle_mass`` × the largest N, within the sphere of
    radius L/2, with δ̄(<N) + ε ≥ δ_c: the first up-crossing of the barrier δ_c − ε coming from large radii (Bond
    et al. 1991, sharp top-hat filter on the grid). A uniform ε lowers the barrier, so this mass grows with ε; it is
    0 when no sphere about q₀ reaches the barrier.
    """
    n = delta.shape[-1]
    d = periodic_separation(n, length, centre, dtype=torch.float64)
    r = d.square().sum(0).sqrt().flatten()
    order = torch.argsort(r, stable=True)
    inside = r[order] <= length / 2
    values = delta.to(torch.float64).flatten()[order][inside]
    mean = values.cumsum(0) / torch.arange(1, len(values) + 1, dtype=torch.float64)
    above = torch.nonzero(mean + float(epsilon) >= delta_c)
    return float(particle_mass) * (int(above.max()) + 1 if len(above) else 0)


def _check_values(values: Sequence[float], name: str) -> list[float]:
    out = [float(v) for v in values]
    if not out:
        raise ValidationError(f"{name}: give at least one value")
    bad = [v for v in out if not math.isfinite(v)]
    if bad:
        raise ValidationError(f"{name}: values must be finite, got {bad}")
    if len(set(out)) != len(out):
        raise ValidationError(f"{name}: repeated values in {out}")
    return out


def _check_box(fields: Field, truth: torch.Tensor) -> None:
    missing = [c for c in ("delta", "phi") if c not in fields.channels]
    if missing:
        raise ValidationError(f"the box's fields lack the channel(s) {missing} (they have {list(fields.channels)})")
    if tuple(truth.shape) != tuple(fields.values.shape[1:]):
        raise ValidationError(
            f"the true labels have shape {tuple(truth.shape)}, the fields' grid is {tuple(fields.values.shape[1:])}"
        )


def halo_response(
    fields: Field,
    truth: torch.Tensor,
    halo_id: int,
    values: Sequence[float],
    modify: Callable[[Field, float, Sequence[float]], Field],
    predict: Predictor,
    *,
    value_name: str = "value",
) -> ExperimentTable:
    """How the predicted counterpart of one true halo changes as the fields are modified about its centre.

    fields: the box's linear ("delta", "phi") Field; truth: its true instance labels (n, n, n); halo_id: a label of
    ``truth``; values: the modification's amplitudes (ε, λ_z, ...); modify(fields, value, q₀) -> Field (e.g.
    :func:`shift_density`), applied about the halo's periodic Lagrangian centre of mass q₀ (:func:`halo_centre`);
    predict: :data:`Predictor`. For each value the fields are modified and predicted, and the predicted halo is
    :func:`matched_instance` to the true halo's voxels (or the one containing q₀). The unmodified fields are
    predicted once more as the reference (unless a value is 0).

    Returns one row per value (in the order given): ``value_name``; ``label`` of the matched prediction (0 = none);
    ``n_voxels``; ``mass`` = n_voxels × particle mass (Msun/h; the box cosmology's
    :meth:`~cosmoseg.data.Cosmology.particle_mass`); ``iou_unmodified`` (with the matched halo of the unmodified
    prediction); ``iou_true`` (with the true halo); ``extent_x|y|z`` (rms extent, Mpc/h, :func:`mask_extent`);
    ``n_instances`` in the whole prediction. meta: halo_id, centre (Mpc/h), true_voxels, true_mass, particle_mass.
    """
    _check_box(fields, truth)
    values = _check_values(values, value_name)
    n, length = fields.n, fields.box.length
    truth = truth.cpu().long()
    top = int(truth.max())
    if not 1 <= int(halo_id) <= top or not bool((truth == int(halo_id)).any()):
        raise ValidationError(f"unknown halo id {halo_id}: the box's true haloes are labelled 1..{top}")
    particle_mass = fields.box.cosmology.particle_mass(n, length)
    true_mask = truth == int(halo_id)
    centre = halo_centre(truth, int(halo_id), length)
    voxel = _voxel_of(centre, n, length)

    def one(labels: torch.Tensor) -> tuple[int, torch.Tensor]:
        label = matched_instance(labels, true_mask, voxel)
        return label, (labels == label) if label else torch.zeros_like(true_mask)

    predictions = {v: predict(modify(fields, v, centre)).cpu().long() for v in values}
    reference = predictions[0.0] if 0.0 in predictions else predict(fields).cpu().long()
    _, reference_mask = one(reference)
    rows: dict[str, list[float]] = {k: [] for k in ("label", "n_voxels", "mass", "iou_unmodified", "iou_true")}
    rows |= {"extent_x": [], "extent_y": [], "extent_z": [], "n_instances": []}
    for v in values:
        labels = predictions[v]
        label, mask = one(labels)
        size = int(mask.sum())
        extent = mask_extent(mask, length)
        rows["label"].append(label)
        rows["n_voxels"].append(size)
        rows["mass"].append(size * particle_mass)
        rows["iou_unmodified"].append(mask_iou(mask, reference_mask))
        rows["iou_true"].append(mask_iou(mask, true_mask))
        for axis, e in zip("xyz", extent, strict=True):
            rows[f"extent_{axis}"].append(e)
        rows["n_instances"].append(int(torch.unique(labels[labels > 0]).numel()))
    ints = ("label", "n_voxels", "n_instances")
    columns = {value_name: np.asarray(values, dtype=np.float64)}
    columns |= {k: np.asarray(v, dtype=np.int64 if k in ints else np.float64) for k, v in rows.items()}
    units = {"mass": "Msun/h", "extent_x": "Mpc/h", "extent_y": "Mpc/h", "extent_z": "Mpc/h"}
    meta = {
        "halo_id": int(halo_id),
        "centre": [round(c, 4) for c in centre],
        "true_voxels": int(true_mask.sum()),
        "true_mass": float(true_mask.sum()) * particle_mass,
        "particle_mass": particle_mass,
    }
    return ExperimentTable(columns=columns, units=units, meta=meta)


def density_response(
    fields: Field, truth: torch.Tensor, halo_id: int, epsilons: Sequence[float], predict: Predictor
) -> ExperimentTable:
    """§4.1 about one halo: :func:`halo_response` to δ_ε (:func:`shift_density` about the halo's centre), with a
    column ``epsilon`` and ``mass_spherical`` (Msun/h), the :func:`spherical_collapse_mass` of the box's linear δ
    about the same centre for each ε: what spherical collapse expects of the shifted field."""
    table = halo_response(fields, truth, halo_id, epsilons, shift_density, predict, value_name="epsilon")
    centre, mass = table.meta["centre"], table.meta["particle_mass"]
    delta = fields.channel("delta")
    spherical = [spherical_collapse_mass(delta, centre, fields.box.length, mass, e) for e in table["epsilon"]]
    columns = {**table.columns, "mass_spherical": np.asarray(spherical, dtype=np.float64)}
    meta = {**table.meta, "delta_c": DELTA_COLLAPSE, "experiment": "density"}
    return dataclasses.replace(table, columns=columns, units={**table.units, "mass_spherical": "Msun/h"}, meta=meta)


def tidal_response(
    fields: Field, truth: torch.Tensor, halo_id: int, lambdas: Sequence[float], predict: Predictor
) -> ExperimentTable:
    """§4.2 about one halo: :func:`halo_response` to a trace-free tide T = diag(0, −λ_z, λ_z) (:func:`impose_tide`
    about the halo's centre), column ``lambda_z``. δ is unchanged, so spherical collapse expects no change."""
    table = halo_response(fields, truth, halo_id, lambdas, impose_tide, predict, value_name="lambda_z")
    return dataclasses.replace(table, meta={**table.meta, "experiment": "tidal"})


# ----------------------------------------------------------------------------------------------------------------
# mass functions: σ8 response


def scale_amplitude(fields: Field, factor: float) -> Field:
    """The fields with δ and φ multiplied by ``factor`` (> 0): linear theory at another σ_8 = factor × σ_8 of the same
    phases (δ ∝ σ_8, and φ with it through ∇²φ = δ); other channels are copied. The box's cosmology gets the new
    σ_8 so that anything derived from it (σ(M), the domain checks) follows."""
    factor = float(factor)
    if not (math.isfinite(factor) and factor > 0):
        raise ValidationError(f"the σ8 factor must be a positive number, got {factor}")
    _check(fields)
    values = fields.values.clone()
    for name in ("delta", "phi"):
        i = fields.channels.index(name)
        values[i] = (fields.values[i].to(torch.float64) * factor).to(values.dtype)
    cosmology = fields.box.cosmology.clone(sigma_8=fields.box.cosmology.sigma_8 * factor)
    box = dataclasses.replace(fields.box, cosmology=cosmology)
    return dataclasses.replace(
        fields, values=values, box=box, meta={**fields.meta, "modified": f"delta, phi x {factor:g}"}
    )


def instance_masses(labels: torch.Tensor, particle_mass: float, min_voxels: int = 1) -> torch.Tensor:
    """Masses (K,) float64, Msun/h, of the instances of ``labels`` (int, 0 = none) with at least ``min_voxels``
    voxels: voxel count × ``particle_mass``."""
    sizes = torch.bincount(labels.flatten().long().cpu())[1:]
    sizes = sizes[sizes >= max(1, int(min_voxels))]
    return sizes.to(torch.float64) * float(particle_mass)


def log_mass_edges(m_min: float, m_max: float, n_bins: int) -> np.ndarray:
    """``n_bins`` + 1 edges equal in log M from ``m_min`` to just above ``m_max`` (Msun/h), so that a halo of
    mass ``m_max`` falls in the last bin."""
    if not (0 < m_min < m_max and n_bins >= 1):
        raise ValidationError(f"mass edges need 0 < m_min < m_max and n_bins >= 1, got {m_min:g}, {m_max:g}, {n_bins}")
    return np.logspace(math.log10(m_min), math.log10(m_max) + 1e-9, int(n_bins) + 1)


def counts_in_bins(masses: torch.Tensor | np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts (B,) int64 of ``masses`` in the bins [edges[i], edges[i+1]), the last bin closed (Msun/h): the
    project's histogram (:func:`cosmoseg.measure.onepoint.histogram`, NumPy's rule) as a numpy column."""
    m = torch.as_tensor(np.asarray(masses, dtype=np.float64))
    counts, _, _ = histogram(m, torch.as_tensor(np.asarray(edges, dtype=np.float64)))
    return counts.numpy().astype(np.int64)


def response_ratio(counts: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """n/n_ref per bin and its Poisson error, the two counts taken independent: var = max(n, 1)/n_ref² +
    n²/n_ref³ (an empty bin still has the error of one count). NaN where n_ref = 0."""
    n = np.asarray(counts, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(ref > 0, n / ref, np.nan)
        error = np.where(ref > 0, np.sqrt(np.maximum(n, 1.0) / ref**2 + n**2 / ref**3), np.nan)
    return ratio, error


def sigma8_response(
    boxes: Sequence[tuple[Field, torch.Tensor]],
    factors: Sequence[float],
    predict: Predictor,
    *,
    simulate: Callable[[int, float], torch.Tensor] | None = None,
    min_voxels: int = 1,
    n_bins: int = 6,
) -> ExperimentTable:
    """§4.3: the predicted halo mass function of the boxes with δ, φ scaled by each factor (:func:`scale_amplitude`)
    and, given ``simulate``, the mass function of the same boxes re-simulated at σ_8 × factor, pooled over boxes.

    boxes: (fields, true labels (n, n, n)) per box, one cosmology and grid; factors: must include 1.0, the
    reference of the responses; simulate(box index, factor) -> the true labels of that box re-simulated at
    σ_8 × factor (factor 1.0 is taken from ``boxes``); min_voxels: haloes with fewer voxels are left out of both
    (the truth's labelling limit); n_bins: bins equal in log M from min_voxels × particle mass to the largest halo.

    Returns one row per (factor, bin): ``factor``, ``sigma_8``, ``m_low``, ``m_high``, ``m_mid`` (geometric,
    Msun/h), ``counts_pred``, ``counts_sim`` (-1 without ``simulate``), ``response_pred`` = n(M|f)/n(M|1) with
    ``response_pred_err``, and ``response_sim`` with ``response_sim_err`` (NaN without ``simulate`` or where the
    reference bin is empty), errors from :func:`response_ratio`.
    """
    factors = _check_values(factors, "factors")
    if 1.0 not in factors:
        raise ValidationError(f"factors must include 1.0, the reference of the responses; got {factors}")
    bad = [f for f in factors if f <= 0]
    if bad:
        raise ValidationError(f"factors must be > 0, got {bad}")
    if not boxes:
        raise ValidationError("give at least one box")
    first = boxes[0][0]
    for fields, truth in boxes:
        _check_box(fields, truth)
    particle_mass = first.box.cosmology.particle_mass(first.n, first.box.length)
    pred: dict[float, list[torch.Tensor]] = {f: [] for f in factors}
    sim: dict[float, list[torch.Tensor]] = {f: [] for f in factors}
    for index, (fields, truth) in enumerate(boxes):
        for f in factors:
            pred[f].append(instance_masses(predict(scale_amplitude(fields, f)), particle_mass, min_voxels))
            if simulate is not None:
                labels = truth if f == 1.0 else simulate(index, f)
                sim[f].append(instance_masses(labels, particle_mass, min_voxels))
    everything = [m for group in (pred, sim) for masses in group.values() for m in masses]
    largest = max((float(m.max()) for m in everything if len(m)), default=2.0 * min_voxels * particle_mass)
    edges = log_mass_edges(min_voxels * particle_mass, max(largest, 1.01 * min_voxels * particle_mass), n_bins)
    pooled_pred = {f: counts_in_bins(torch.cat(pred[f]), edges) for f in factors}
    pooled_sim = {f: counts_in_bins(torch.cat(sim[f]), edges) for f in factors} if simulate is not None else None
    columns: dict[str, list[np.ndarray]] = {}

    def add(name: str, value: np.ndarray) -> None:
        columns.setdefault(name, []).append(np.asarray(value))

    nb = len(edges) - 1
    for f in factors:
        add("factor", np.full(nb, f))
        add("sigma_8", np.full(nb, first.box.cosmology.sigma_8 * f))
        add("m_low", edges[:-1])
        add("m_high", edges[1:])
        add("m_mid", np.sqrt(edges[:-1] * edges[1:]))
        add("counts_pred", pooled_pred[f])
        ratio, error = response_ratio(pooled_pred[f], pooled_pred[1.0])
        add("response_pred", ratio)
        add("response_pred_err", error)
        if pooled_sim is not None:
            add("counts_sim", pooled_sim[f])
            ratio, error = response_ratio(pooled_sim[f], pooled_sim[1.0])
        else:
            add("counts_sim", np.full(nb, -1))
            ratio = error = np.full(nb, np.nan)
        add("response_sim", ratio)
        add("response_sim_err", error)
    table = {k: np.concatenate(v) for k, v in columns.items()}
    units = {"m_low": "Msun/h", "m_high": "Msun/h", "m_mid": "Msun/h"}
    meta = {
        "experiment": "sigma8",
        "n_boxes": len(boxes),
        "sigma_8_reference": first.box.cosmology.sigma_8,
        "particle_mass": particle_mass,
        "min_voxels": int(min_voxels),
        "errors": "Poisson, counts taken independent (response_ratio)",
    }
    return ExperimentTable(columns=table, units=units, meta=meta)


def resimulate_segmentation(box_path: str | os.PathLike[str], factor: float) -> tuple[Segmentation, float]:
    """The true Lagrangian segmentation of a suite box re-simulated with σ_8 × ``factor`` and nothing else changed.

    The suite's settings come from ``suite.json`` beside the box (written by ``cosmoseg simulate``); the box's
    index and the suite fingerprint from its attributes (they must match, so the settings are the ones that made
    the box). The box is regenerated with :func:`cosmoseg.sim.suites.simulate_box` (same seed, so the same phases:
    ICs, particle mesh, FoF) at the new σ_8. Returns the segmentation and the largest relative deviation of the
    regenerated linear fields from ``factor`` × the stored ones (0 up to rounding: the check that it is the same
    box). `ValidationError` when the box cannot be regenerated (no suite.json, another suite, a missing attribute).
    """
    import h5py

    from cosmoseg.data import load_artifact
    from cosmoseg.sim.suites import parse_suite, simulate_box

    path = Path(box_path)
    summary_path = path.parent / "suite.json"
    if not summary_path.is_file():
        raise ValidationError(f"{path}: no suite.json beside it, so its simulation cannot be rerun at another σ8")
    summary = json.loads(summary_path.read_text())
    with h5py.File(path, "r") as handle:
        attrs = dict(handle.attrs)
    missing = [k for k in ("box_index", "suite_fingerprint") if k not in attrs]
    if missing:
        raise ValidationError(f"{path}: lacks the attribute(s) {missing} of a `cosmoseg simulate` suite box")
    config = parse_suite(summary["settings"], str(summary_path))
    if config.fingerprint() != str(attrs["suite_fingerprint"]) or summary.get("fingerprint") != config.fingerprint():
        raise ValidationError(f"{path}: its suite fingerprint differs from {summary_path}'s: not the same suite")
    index = int(attrs["box_index"])
    cosmology = config.box_cosmology(index)
    changed = {**cosmology.to_dict(), "sigma_8": cosmology.sigma_8 * float(factor)}
    rerun = dataclasses.replace(config, cosmology=changed, latin_hypercube={})
    objects = simulate_box(rerun, index)
    stored = load_artifact(path)["fields"]
    regenerated = objects["fields"].values.to(torch.float64)
    expected = stored.values.to(torch.float64) * float(factor)
    deviation = float((regenerated - expected).abs().max() / expected.abs().max())
    segmentation = objects["segmentation"]
    return segmentation, deviation


# ----------------------------------------------------------------------------------------------------------------
# bias: separate universe against peak-background split


def shift_box(fields: Field, epsilon: float, potential: Literal["quadratic", "poisson"] = "quadratic") -> Field:
    """The whole periodic box with δ + ε everywhere, the separate-universe shift of §4.1 over the whole box.

    potential: "quadratic" — φ + ε|q − q₀|²/6 about the box centre q₀ = (L/2, L/2, L/2) (:func:`shift_density`):
    ∇²φ = δ holds everywhere but on the box faces, where the minimal-image quadratic has a kink (a sheet of
    Laplacian −ε L³/L² that makes the box's mean Laplacian 0); a different q₀ only adds a uniform gradient and a
    constant to φ, which a uniform displacement of every particle makes unobservable. "poisson" — φ unchanged, the
    periodic Poisson solution of the shifted δ (:func:`cosmoseg.sim.ics.linear_potential` drops k = 0, the only mode
    ε changes): periodic everywhere, but the trace of ∂ᵢ∂ⱼφ no longer equals δ (it misses ε).
    """
    if potential == "quadratic":
        half = fields.box.length / 2
        return shift_density(fields, epsilon, (half, half, half))
    if potential == "poisson":
        _check(fields)
        delta = fields.channel("delta").to(torch.float64) + float(epsilon)
        return _modified(fields, delta, fields.channel("phi"), f"delta shifted by {float(epsilon):g}, phi unchanged")
    raise ValidationError(f"potential must be 'quadratic' or 'poisson', got {potential!r}")


def separate_universe_bias(
    counts_minus: np.ndarray, counts_zero: np.ndarray, counts_plus: np.ndarray, epsilon: float
) -> tuple[np.ndarray, np.ndarray]:
    """The Lagrangian bias by central finite differences of the mass function in a separate universe, eq. (13):
    b_1L(M) = [n(M|+ε) − n(M|−ε)] / (2ε n(M|0)), per bin, with the Poisson error of the counts taken independent,
    sqrt(n₊ + n₋ + b² (2ε)² n₀) / (2ε n₀) — an upper bound, since the three predictions share one realisation
    (:func:`jackknife_bias` measures the scatter that remains). NaN where n₀ = 0."""
    minus, zero, plus = (np.asarray(c, dtype=np.float64) for c in (counts_minus, counts_zero, counts_plus))
    if not float(epsilon) > 0:
        raise ValidationError(f"epsilon must be > 0, got {epsilon}")
    two_eps = 2.0 * float(epsilon)
    with np.errstate(divide="ignore", invalid="ignore"):
        bias = np.where(zero > 0, (plus - minus) / (two_eps * zero), np.nan)
        error = np.where(zero > 0, np.sqrt(plus + minus + bias**2 * two_eps**2 * zero) / (two_eps * zero), np.nan)
    return bias, error


def jackknife_bias(
    counts_minus: np.ndarray, counts_zero: np.ndarray, counts_plus: np.ndarray, epsilon: float
) -> tuple[np.ndarray, np.ndarray]:
    """b_1L per bin from counts per region (R, B) summed over regions, and its delete-one jackknife error:
    sqrt((R − 1)/R Σ_r (b_(r) − b̄)²) with b_(r) the estimate without region r. NaN where undefined."""
    minus, zero, plus = (np.asarray(c, dtype=np.float64) for c in (counts_minus, counts_zero, counts_plus))
    regions = zero.shape[0]
    bias, _ = separate_universe_bias(minus.sum(0), zero.sum(0), plus.sum(0), epsilon)
    if regions < 2:
        return bias, np.full_like(bias, np.nan)
    leave = np.stack(
        [
            separate_universe_bias(minus.sum(0) - minus[r], zero.sum(0) - zero[r], plus.sum(0) - plus[r], epsilon)[0]
            for r in range(regions)
        ]
    )
    with np.errstate(invalid="ignore"):
        mean = leave.mean(0)
        error = np.sqrt((regions - 1) / regions * ((leave - mean) ** 2).sum(0))
    return bias, error


def sheth_tormen_bias(
    nu: np.ndarray | float, *, q: float = 0.707, p: float = 0.3, delta_c: float = DELTA_COLLAPSE
) -> np.ndarray:
    """Sheth & Tormen (1999) Lagrangian peak-background-split bias b_1L(ν) = (qν² − 1)/δ_c + 2p/(δ_c(1 + (qν²)^p)),
    ν = δ_c/σ(M) (the Eulerian bias is 1 + b_1L)."""
    nu2 = q * np.asarray(nu, dtype=np.float64) ** 2
    return (nu2 - 1.0) / delta_c + 2.0 * p / (delta_c * (1.0 + nu2**p))


def peak_height(cosmology: Cosmology, masses: np.ndarray | torch.Tensor, delta_c: float = DELTA_COLLAPSE) -> np.ndarray:
    """ν = δ_c/σ(M) at z = 0: σ of the linear power spectrum of ``cosmology`` (the project's,
    :meth:`~cosmoseg.data.Cosmology.sigma_r`) in a top-hat of Lagrangian radius R = (3M / (4π ρ̄_m))^(1/3).
    masses: Msun/h, > 0."""
    m = np.asarray(masses, dtype=np.float64)
    if m.size == 0:
        return np.zeros(0)
    radius = (3.0 * m / (4.0 * math.pi * cosmology.mean_matter_density)) ** (1.0 / 3.0)
    return delta_c / np.asarray(cosmology.sigma_r(radius), dtype=np.float64)


def lagrangian_bias_estimates(
    delta: torch.Tensor, centres: torch.Tensor, length: float, smoothing: float = 6.0
) -> np.ndarray:
    """Each tracer's term of the paper's eq. (14), b_1L = ⟨δ_i⟩/σ² (Paranjape et al. 2013): δ_i / σ², with δ_i the
    linear field ``delta`` ((n, n, n), z = 0) smoothed by a Gaussian of width ``smoothing`` (Mpc/h) at the voxel of
    tracer i's Lagrangian centre (``centres`` (K, 3), Mpc/h), and σ² the variance of the smoothed field
    (:func:`cosmoseg.measure.onepoint.smooth_field`, float64). Returns (K,).
    """
    n = delta.shape[-1]
    smoothed = smooth_field(delta.to(torch.float64), length, smoothing, "gaussian")
    variance = float(smoothed.var())
    if len(centres) == 0:
        return np.zeros(0)
    index = torch.remainder(torch.floor(centres.to(torch.float64) / length * n).long(), n)
    return (smoothed[index[:, 0], index[:, 1], index[:, 2]] / variance).numpy()


def _instances(labels: torch.Tensor, length: float, min_voxels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Voxel counts (K,) and periodic centres (K, 3), Mpc/h, of the instances with >= min_voxels voxels."""
    flat = labels.flatten().long().cpu()
    sizes = torch.bincount(flat)
    keep = torch.nonzero(sizes >= max(1, int(min_voxels))).flatten()
    keep = keep[keep > 0]
    if len(keep) == 0:
        return torch.zeros(0, dtype=torch.int64), torch.zeros(0, 3, dtype=torch.float64)
    remap = torch.full((len(sizes),), -1, dtype=torch.int64)
    remap[keep] = torch.arange(len(keep))
    group = remap[flat]
    inside = group >= 0
    x = grid_cell_centers(labels.shape[-1], length, dtype=torch.float64)[inside]  # the voxels of kept instances
    centres = group_centres(x, group[inside], len(keep), length)
    return sizes[keep], centres


def _octant(centres: torch.Tensor, length: float) -> np.ndarray:
    o = torch.clamp(torch.floor(centres / (length / 2)).long(), 0, 1)
    return (o[:, 0] * 4 + o[:, 1] * 2 + o[:, 2]).numpy()


def _binned_mean(values: np.ndarray, masses: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    index = np.digitize(masses, edges) - 1
    mean, error = np.full(len(edges) - 1, np.nan), np.full(len(edges) - 1, np.nan)
    for b in range(len(edges) - 1):
        v = values[index == b]
        if len(v):
            mean[b] = v.mean()
        if len(v) > 1:
            error[b] = v.std(ddof=1) / math.sqrt(len(v))
    return mean, error


def bias_response(
    boxes: Sequence[tuple[Field, torch.Tensor]],
    epsilon: float,
    predict: Predictor,
    *,
    potential: Literal["quadratic", "poisson"] = "quadratic",
    min_voxels: int = 1,
    n_bins: int = 5,
    smoothing: float = 6.0,
) -> ExperimentTable:
    """The Lagrangian bias b_1L(M) of the predicted haloes by separate universe (eq. 13), beside the peak-background
    split and the paper's eq. (14) on the true haloes.

    boxes: (fields, true labels (n, n, n)) per box, one cosmology and grid; epsilon: the whole-box shift ±ε
    (:func:`shift_box` with ``potential``); predict: :data:`Predictor`, run on each box at −ε, 0, +ε; min_voxels:
    haloes with fewer voxels are left out (the truth's labelling limit); n_bins: bins equal in log M from
    min_voxels × particle mass to the largest halo (predicted at any shift, or true); smoothing: the Gaussian of
    eq. (14), Mpc/h.

    Returns one row per mass bin: ``m_low``, ``m_high``, ``m_mid`` (Msun/h); ``counts_minus|zero|plus`` (predicted,
    pooled over boxes); ``b1L_pred`` = [n(M|+ε) − n(M|−ε)]/(2ε n(M|0)) with ``b1L_pred_err`` (Poisson, counts
    independent: :func:`separate_universe_bias`) and ``b1L_pred_err_jk`` (delete-one jackknife over the 8 octants of
    each box, haloes placed by their Lagrangian centre: :func:`jackknife_bias`); ``counts_true``; ``b1L_st`` = the
    mean of :func:`sheth_tormen_bias` (ν from :func:`peak_height` at the box cosmology) over the true haloes of the
    bin, ``b1L_st_mid`` at the bin's centre; ``b1L_eq14_true`` / ``b1L_eq14_pred`` with errors (std/√N): eq. (14) on
    the true and on the ε = 0 predicted haloes (:func:`lagrangian_bias_estimates`). NaN where a bin is empty.
    """
    if not boxes:
        raise ValidationError("give at least one box")
    first = boxes[0][0]
    for fields, truth in boxes:
        _check_box(fields, truth)
    cosmology = first.box.cosmology
    length = first.box.length
    particle_mass = cosmology.particle_mass(first.n, length)
    shifts = (-float(epsilon), 0.0, float(epsilon))
    if not float(epsilon) > 0:
        raise ValidationError(f"epsilon must be > 0, got {epsilon}")
    predicted: dict[float, list[tuple[torch.Tensor, torch.Tensor]]] = {s: [] for s in shifts}
    true_sizes, eq14_true, eq14_pred = [], [], []
    for fields, truth in boxes:
        delta = fields.channel("delta")
        for s in shifts:
            labels = predict(fields if s == 0.0 else shift_box(fields, s, potential)).cpu().long()
            predicted[s].append(_instances(labels, length, min_voxels))
        sizes, centres = _instances(truth.cpu().long(), length, min_voxels)
        true_sizes.append(sizes)
        eq14_true.append(lagrangian_bias_estimates(delta, centres, length, smoothing))
        eq14_pred.append(lagrangian_bias_estimates(delta, predicted[0.0][-1][1], length, smoothing))
    true_masses = torch.cat(true_sizes).numpy() * particle_mass
    pred_zero = torch.cat([s for s, _ in predicted[0.0]]).numpy() * particle_mass
    sizes_all = [float(sizes.max()) for s in shifts for sizes, _ in predicted[s] if len(sizes)]
    largest = max([*sizes_all, 0.0]) * particle_mass
    largest = max(largest, float(true_masses.max()) if len(true_masses) else 0.0)
    edges = log_mass_edges(min_voxels * particle_mass, max(largest, 1.01 * min_voxels * particle_mass), n_bins)

    def region_counts(s: float) -> np.ndarray:
        rows = []
        for sizes, centres in predicted[s]:
            masses = sizes.numpy() * particle_mass
            octants = _octant(centres, length)
            rows += [counts_in_bins(masses[octants == o], edges) for o in range(8)]
        return np.stack(rows)

    minus, zero, plus = (region_counts(s) for s in shifts)
    b, b_err = separate_universe_bias(minus.sum(0), zero.sum(0), plus.sum(0), epsilon)
    _, b_jk = jackknife_bias(minus, zero, plus, epsilon)
    st_per_halo = sheth_tormen_bias(peak_height(cosmology, true_masses))
    st_mean, _ = _binned_mean(st_per_halo, true_masses, edges)
    mid = np.sqrt(edges[:-1] * edges[1:])
    e14_true, e14_true_err = _binned_mean(np.concatenate(eq14_true), true_masses, edges)
    e14_pred, e14_pred_err = _binned_mean(np.concatenate(eq14_pred), pred_zero, edges)
    columns = {
        "m_low": edges[:-1],
        "m_high": edges[1:],
        "m_mid": mid,
        "counts_minus": minus.sum(0),
        "counts_zero": zero.sum(0),
        "counts_plus": plus.sum(0),
        "b1L_pred": b,
        "b1L_pred_err": b_err,
        "b1L_pred_err_jk": b_jk,
        "counts_true": counts_in_bins(true_masses, edges),
        "b1L_st": st_mean,
        "b1L_st_mid": sheth_tormen_bias(peak_height(cosmology, mid)),
        "b1L_eq14_true": e14_true,
        "b1L_eq14_true_err": e14_true_err,
        "b1L_eq14_pred": e14_pred,
        "b1L_eq14_pred_err": e14_pred_err,
    }
    meta = {
        "experiment": "bias",
        "epsilon": float(epsilon),
        "potential": potential,
        "n_boxes": len(boxes),
        "particle_mass": particle_mass,
        "min_voxels": int(min_voxels),
        "smoothing": float(smoothing),
        "sheth_tormen": {"q": 0.707, "p": 0.3, "delta_c": DELTA_COLLAPSE},
        "sigma_8": cosmology.sigma_8,
    }
    return ExperimentTable(columns=columns, units={"m_low": "Msun/h", "m_high": "Msun/h", "m_mid": "Msun/h"}, meta=meta)
