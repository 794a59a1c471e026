"""The plugin face of ``cosmoseg.measure``: statistics as pipeline stages."""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import math
from typing import Any, Literal

import torch

from cosmoseg.data import Catalog, Field, GalaxyCatalog, HaloCatalog, ParameterEstimate, Segmentation, Table
from cosmoseg.hookspecs import hookimpl
from cosmoseg.measure.bispectrum import BISPECTRUM_UNITS, bispectrum
from cosmoseg.measure.mass_function import THEORY_MODELS, halo_mass_function, theory_in_bins
from cosmoseg.measure.onepoint import KERNELS, field_pdf
from cosmoseg.measure.power import (
    catalog_cross_spectrum,
    catalog_power_spectrum,
    cross_spectrum,
    power_spectrum,
    redshift_space_positions,
)
from cosmoseg.measure.segmentation import (
    adjusted_rand_index,
    binary_scores,
    contingency,
    default_mass_edges,
    match_instances,
    per_mass_rates,
    score_curves,
    variation_of_information,
    voxel_halo_masses,
)
from cosmoseg.pipeline.stage import Stage


@dataclasses.dataclass(frozen=True)
class PowerSpectrumParams:
    """channel: the channel to measure ("" = the first). dk: bin width, h/Mpc (0 = the fundamental
    frequency 2π/L). k_max: last bin edge, h/Mpc (0 = the Nyquist frequency). with_linear: add the
    column power_linear, D(z)^2 P_lin at each bin's mean k, from the field's cosmology."""

    channel: str = ""
    dk: float = 0.0
    k_max: float = 0.0
    with_linear: bool = True

    def problems(self) -> list[str]:
        out = []
        if self.dk < 0:
            out.append(f"param 'dk' must be >= 0 (0 = the fundamental frequency), got {self.dk}")
        if self.k_max < 0:
            out.append(f"param 'k_max' must be >= 0 (0 = the Nyquist frequency), got {self.k_max}")
        return out


class PowerSpectrum(Stage):
    """The binned power spectrum P(k) of one channel of a field, with the linear-theory P(k) beside it."""

    name = "measure.power_spectrum"
    Params = PowerSpectrumParams
    inputs = {"field": Field}
    outputs = {"spectrum": Table}

    def run(self, field: Field) -> dict[str, Table]:
        p: PowerSpectrumParams = self.params
        channel = p.channel or field.channels[0]
        spectrum = power_spectrum(field.channel(channel), field.box.length, dk=p.dk or None, k_max=p.k_max or None)
        columns = {
            "k": spectrum.k,
            "power": spectrum.power,
            "n_modes": spectrum.n_modes,
            "k_low": spectrum.k_low,
            "k_high": spectrum.k_high,
        }
        units = {"k_low": "h/Mpc", "k_high": "h/Mpc"}
        if p.with_linear:
            columns["power_linear"] = field.box.cosmology.linear_power(spectrum.k, z=field.box.redshift)
            units["power_linear"] = "(Mpc/h)^3"
        meta = {"channel": channel, "box": field.box.length, "n": field.n, "redshift": field.box.redshift}
        return {"spectrum": Table(columns=columns, units=units, meta=meta)}


@dataclasses.dataclass(frozen=True)
class BispectrumParams:
    """k1, k2: triangle sides, h/Mpc: one value each, or equal-length lists of (k1, k2) pairs. channel: the
    channel to measure ("" = the first). n_theta: that many angles linspace(0, π) between k1 and k2, used
    when thetas is empty. thetas: the angles, radians in [0, π]. dk: shell width, h/Mpc (0 = the fundamental
    frequency 2π/L). method: "fourier" (one FFT per (k1, k2) pair serves every angle) or "direct"."""

    k1: float | tuple[float, ...]
    k2: float | tuple[float, ...]
    channel: str = ""
    n_theta: int = 10
    thetas: tuple[float, ...] = ()
    dk: float = 0.0
    method: Literal["fourier", "direct"] = "fourier"

    def problems(self) -> list[str]:
        out = []
        k1 = (self.k1,) if isinstance(self.k1, float | int) else tuple(self.k1)
        k2 = (self.k2,) if isinstance(self.k2, float | int) else tuple(self.k2)
        if len(k1) != len(k2) or not k1:
            out.append(f"params 'k1' and 'k2' must have the same, non-zero number of values, got {len(k1)}, {len(k2)}")
        if any(k <= 0 for k in (*k1, *k2)):
            out.append(f"params 'k1' and 'k2' must be positive h/Mpc, got {list(k1)}, {list(k2)}")
        if not self.thetas and self.n_theta < 1:
            out.append(f"param 'n_theta' must be >= 1 (or give 'thetas'), got {self.n_theta}")
        if any(not 0 <= t <= math.pi for t in self.thetas):
            out.append(f"param 'thetas' must be radians in [0, π], got {list(self.thetas)}")
        if self.dk < 0:
            out.append(f"param 'dk' must be >= 0 (0 = the fundamental frequency), got {self.dk}")
        return out


class BispectrumStage(Stage):
    """The bispectrum B(k1, k2, θ) and reduced bispectrum Q of one channel of a field (FFT shell estimator)."""

    name = "measure.bispectrum"
    Params = BispectrumParams
    inputs = {"field": Field}
    outputs = {"bispectrum": Table}

    @classmethod
    def example_params(cls) -> dict[str, Any]:
        return {"k1": 0.25, "k2": [0.25], "n_theta": 5}

    def run(self, field: Field) -> dict[str, Table]:
        p: BispectrumParams = self.params
        channel = p.channel or field.channels[0]
        thetas = list(p.thetas) if p.thetas else torch.linspace(0, math.pi, p.n_theta, dtype=torch.float64).tolist()
        values = field.channel(channel).to(self.ctx.device)
        result = bispectrum(values, field.box.length, k1=p.k1, k2=p.k2, thetas=thetas, dk=p.dk or None, method=p.method)
        meta = {
            "channel": channel,
            "box": field.box.length,
            "n": field.n,
            "redshift": field.box.redshift,
            "dk": p.dk or 2 * math.pi / field.box.length,
            "grid": result.grid,
            "method": p.method,
        }
        return {"bispectrum": Table(columns=result.columns(), units=BISPECTRUM_UNITS, meta=meta)}


@dataclasses.dataclass(frozen=True)
class FieldPdfParams:
    """channel: the channel to measure ("" = the first). smoothing_radius: Mpc/h (0 = none). kernel:
    "tophat" or "gaussian". n_bins: equal bins over value_range. value_range: [lo, hi] of the binned values
    (of log10 of them with log); empty = from the minimum to the maximum. log: the PDF of log10 of the
    positive voxels. positive_only: bin only the positive voxels (not in log)."""

    channel: str = ""
    smoothing_radius: float = 0.0
    kernel: str = "tophat"
    n_bins: int = 50
    value_range: tuple[float, ...] = ()
    log: bool = False
    positive_only: bool = False

    def problems(self) -> list[str]:
        out = []
        if self.smoothing_radius < 0:
            out.append(f"param 'smoothing_radius' must be >= 0 Mpc/h (0 = none), got {self.smoothing_radius}")
        if self.kernel not in KERNELS:
            out.append(f"param 'kernel' must be one of {list(KERNELS)}, got {self.kernel!r}")
        if self.n_bins < 1:
            out.append(f"param 'n_bins' must be >= 1, got {self.n_bins}")
        if self.value_range and not (len(self.value_range) == 2 and self.value_range[0] < self.value_range[1]):
            out.append(f"param 'value_range' must be empty or [lo, hi] with lo < hi, got {list(self.value_range)}")
        return out


class FieldPdf(Stage):
    """The one-point PDF (counts in cells) of one channel of a field, optionally smoothed, or of its log10."""

    name = "measure.pdf"
    Params = FieldPdfParams
    inputs = {"field": Field}
    outputs = {"pdf": Table}

    def run(self, field: Field) -> dict[str, Table]:
        p: FieldPdfParams = self.params
        channel = p.channel or field.channels[0]
        result = field_pdf(
            field.channel(channel),
            field.box.length,
            smoothing_radius=p.smoothing_radius,
            kernel=p.kernel,
            bins=p.n_bins,
            value_range=(p.value_range[0], p.value_range[1]) if p.value_range else None,
            log=p.log,
            positive_only=p.positive_only,
        )
        unit = field.units[field.channels.index(channel)] if field.units else ""
        bin_unit = f"log10 {unit}".strip() if p.log else unit
        density_unit = f"1/({bin_unit})" if bin_unit else ""
        columns = {
            "bin_low": result.edges[:-1],
            "bin_high": result.edges[1:],
            "bin_mid": result.centers,
            "counts": result.counts,
            "pdf": result.pdf,
            "pdf_err": result.pdf_err,
        }
        units = {"bin_low": bin_unit, "bin_high": bin_unit, "bin_mid": bin_unit}
        units |= {"pdf": density_unit, "pdf_err": density_unit}
        meta = {
            "channel": channel,
            "smoothing_radius": p.smoothing_radius,
            "kernel": p.kernel,
            "log": p.log,
            "n_voxels": result.n_voxels,
            "n_in_range": result.n_in_range,
            "n_below": result.n_below,
            "n_above": result.n_above,
            "n_nonpositive": result.n_nonpositive,
            "mean": result.mean,
            "variance": result.variance,
        }
        return {"pdf": Table(columns=columns, units=units, meta=meta)}

    @classmethod
    def example_params(cls) -> dict[str, Any]:
        return {"smoothing_radius": 10.0, "n_bins": 10}


@dataclasses.dataclass(frozen=True)
class MassFunctionParams:
    """column: the mass column of the catalog (Msun/h). n_bins: bins equal in ln M. m_min, m_max: the
    range, Msun/h (0 = the smallest / largest mass). theory: colossus models whose bin-averaged dn/dlnM to
    add as columns dndlnm_<model> ("tinker08", "sheth99", "despali16"). mdef: their mass definition ("" =
    each model's default: 200m, fof, vir)."""

    column: str = "mass"
    n_bins: int = 20
    m_min: float = 0.0
    m_max: float = 0.0
    theory: tuple[str, ...] = ()
    mdef: str = ""

    def problems(self) -> list[str]:
        out = []
        if self.n_bins < 1:
            out.append(f"param 'n_bins' must be >= 1, got {self.n_bins}")
        if self.m_min < 0 or self.m_max < 0:
            out.append(f"params 'm_min', 'm_max' must be >= 0 Msun/h (0 = automatic), got {self.m_min}, {self.m_max}")
        if self.m_min and self.m_max and self.m_min >= self.m_max:
            out.append(f"param 'm_min' ({self.m_min}) must be smaller than 'm_max' ({self.m_max})")
        unknown = sorted(set(self.theory) - set(THEORY_MODELS))
        if unknown:
            out.append(f"param 'theory' names unknown model(s) {unknown}; known: {sorted(THEORY_MODELS)}")
        return out


class MassFunction(Stage):
    """The halo mass function dn/dlnM of a catalog with Poisson errors, and theory curves from colossus."""

    name = "measure.mass_function"
    Params = MassFunctionParams
    inputs = {"halos": HaloCatalog}
    outputs = {"mass_function": Table}

    def run(self, halos: HaloCatalog) -> dict[str, Table]:
        p: MassFunctionParams = self.params
        box = halos.box
        table = halo_mass_function(
            halos[p.column], box.volume, n_bins=p.n_bins, m_min=p.m_min or None, m_max=p.m_max or None
        )
        extra = {}
        for model in p.theory:
            extra[f"dndlnm_{model}"] = theory_in_bins(
                box.cosmology, table["m_low"], table["m_high"], box.redshift, model=model, mdef=p.mdef or None
            )
        table = table.with_columns(**extra) if extra else table
        units = dict(table.units) | {name: "(Mpc/h)^-3" for name in extra}
        meta = dict(table.meta) | {"column": p.column, "redshift": box.redshift, "box": box.length}
        return {"mass_function": dataclasses.replace(table, units=units, meta=meta)}

    @classmethod
    def example_params(cls) -> dict[str, Any]:
        return {"n_bins": 5, "theory": list(THEORY_MODELS) if importlib.util.find_spec("colossus") else []}


@dataclasses.dataclass(frozen=True)
class SegmentationScoresParams:
    """threshold: semantic threshold on the prediction's probabilities (-1 = the prediction's own, meta
    "threshold" as protohalo.panoptic stores it, else 0.5). n_thresholds: points of the score
    curves over (0, 1). mass_edges: bin edges in log10 Msun/h for the per-mass rates (empty = n_mass_bins
    equal bins spanning the true and predicted halo masses). particle_mass: Msun/h (0 = from the truth's box
    cosmology and grid). iou_threshold: instance matching criterion (>= 0.5)."""

    threshold: float = -1.0
    n_thresholds: int = 19
    mass_edges: tuple[float, ...] = ()
    n_mass_bins: int = 10
    particle_mass: float = 0.0
    iou_threshold: float = 0.5

    def problems(self) -> list[str]:
        out = []
        if self.threshold != -1.0 and not 0.0 <= self.threshold <= 1.0:
            out.append(f"param 'threshold' must be in [0, 1], or -1 for the prediction's own, got {self.threshold}")
        if self.n_thresholds < 1:
            out.append(f"param 'n_thresholds' must be >= 1, got {self.n_thresholds}")
        if self.mass_edges and (
            len(self.mass_edges) < 2 or any(b <= a for a, b in itertools.pairwise(self.mass_edges))
        ):
            out.append(f"param 'mass_edges' must be >= 2 increasing log10 masses, got {list(self.mass_edges)}")
        if self.n_mass_bins < 1:
            out.append(f"param 'n_mass_bins' must be >= 1, got {self.n_mass_bins}")
        if self.particle_mass < 0:
            out.append(f"param 'particle_mass' must be >= 0 Msun/h (0 = from the box), got {self.particle_mass}")
        if not 0.5 <= self.iou_threshold <= 1.0:
            out.append(f"param 'iou_threshold' must be in [0.5, 1], got {self.iou_threshold}")
        return out


def _finite_columns(values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Tables hold finite numbers: an undefined ratio (0/0, NaN) becomes 0; the counts beside it tell."""
    return {k: torch.nan_to_num(v.to(torch.float64), nan=0.0) for k, v in values.items()}


class SegmentationScores(Stage):
    """Semantic, per-mass and instance scores of a predicted protohalo segmentation against the truth."""

    name = "measure.segmentation_scores"
    Params = SegmentationScoresParams
    inputs = {"truth": Segmentation, "prediction": Segmentation}
    outputs = {"scores": Table, "per_mass": Table, "curves": Table}

    def run(self, truth: Segmentation, prediction: Segmentation) -> dict[str, Table]:
        p: SegmentationScoresParams = self.params
        if truth.labels.shape != prediction.labels.shape:
            raise ValueError(
                f"truth and prediction grids differ: {tuple(truth.labels.shape)} vs {tuple(prediction.labels.shape)}"
            )
        device = self.ctx.device
        t_labels, p_labels = truth.labels.to(device), prediction.labels.to(device)
        semantic = prediction.probabilities.to(device) if prediction.probabilities is not None else p_labels > 0
        particle_mass = p.particle_mass or truth.box.cosmology.particle_mass(truth.n, truth.box.length)
        threshold = float(prediction.meta.get("threshold", 0.5)) if p.threshold == -1.0 else p.threshold

        scores = binary_scores(semantic, t_labels, threshold)
        table = contingency(t_labels, p_labels)
        match = match_instances(table, iou_threshold=p.iou_threshold)
        scores |= {
            "threshold": threshold,
            "n_true_haloes": float(match.n_true),
            "n_pred_haloes": float(match.n_pred),
            "n_matched": float(match.iou.numel()),
            "instance_precision": match.precision,
            "instance_recall": match.recall,
            "instance_f1": match.f1,
            "mean_matched_iou": match.mean_iou,
            "panoptic_quality": match.panoptic_quality,
            "ARI": adjusted_rand_index(table),
            "VI": variation_of_information(table),
        }
        self.ctx.log(
            f"semantic F1 {scores['F1']:.3f} (precision {scores['PPV']:.3f}, recall {scores['TPR']:.3f}); "
            f"instances at IoU >= {p.iou_threshold:g}: precision "
            f"{match.precision:.3f}, recall {match.recall:.3f} ({match.n_pred} predicted, {match.n_true} true haloes)"
        )
        scores_table = Table(
            columns=_finite_columns({k: torch.tensor([v], dtype=torch.float64) for k, v in scores.items()}),
            units={"VI": "nats"},
            meta={"particle_mass": particle_mass, "iou_threshold": p.iou_threshold},
        )

        positive = semantic >= threshold if semantic.is_floating_point() else semantic
        masses = [voxel_halo_masses(t_labels, particle_mass), voxel_halo_masses(p_labels, particle_mass)]
        edges = torch.tensor(p.mass_edges, dtype=torch.float64) if p.mass_edges else None
        edges = default_mass_edges(masses, p.n_mass_bins) if edges is None else edges
        rates = per_mass_rates(t_labels, p_labels, particle_mass, edges, pred_positive=positive)
        mass_units = {"m_low": "Msun/h", "m_high": "Msun/h", "m_mid": "Msun/h"}
        mass_units |= {name: "log10 Msun/h" for name in rates if name.startswith("q")}
        per_mass = Table(columns=_finite_columns(rates), units=mass_units, meta={"particle_mass": particle_mass})

        thresholds = torch.linspace(0.0, 1.0, p.n_thresholds + 2, dtype=torch.float64)[1:-1]
        curve_input = semantic if semantic.is_floating_point() else semantic.to(torch.float64)
        curves = Table(columns=_finite_columns(score_curves(curve_input, t_labels, thresholds.to(device))))
        return {"scores": scores_table, "per_mass": per_mass, "curves": curves}

    @classmethod
    def example_inputs(cls, generator: torch.Generator) -> dict[str, Segmentation]:
        """A toy truth and a prediction made from it: labels shifted by one voxel and renumbered, with
        probabilities that are high inside the predicted haloes."""
        from cosmoseg.testing import toy_segmentation

        truth = toy_segmentation(generator, n=8, n_haloes=3)
        shifted = torch.roll(truth.labels, shifts=1, dims=0)
        renumbered = torch.where(shifted > 0, 10 * shifted + 7, 0)
        noise = 0.3 * torch.rand(truth.labels.shape, generator=generator, dtype=torch.float64)
        probabilities = torch.where(renumbered > 0, 1.0 - noise, noise)
        prediction = Segmentation(labels=renumbered, probabilities=probabilities, box=truth.box)
        return {"truth": truth, "prediction": prediction}


@dataclasses.dataclass(frozen=True)
class TwoSampleParams:
    """columns: the galaxy properties to compare ([] = every 1-D float column both catalogs have, but
    the context columns). context_columns: columns appended to both samples for the C2ST only (e.g. host-halo
    properties), so it tests p(x | context). classifier: "mlp" or "knn". test_fraction: share held out.
    epochs, hidden, layers, lr, batch_size: the MLP's training. k: neighbours of "knn" (0 = √n_train).
    auc_error: "delong" or "hanley-mcneil". energy_max_points: subsample each catalog to at most this many
    rows for the O(N²) energy distance (0 = all). energy_permutations: permutations of its p-value."""

    columns: tuple[str, ...] = ()
    context_columns: tuple[str, ...] = ()
    classifier: Literal["mlp", "knn"] = "mlp"
    test_fraction: float = 0.5
    epochs: int = 20
    hidden: int = 64
    layers: int = 2
    lr: float = 3e-3
    batch_size: int = 256
    k: int = 0
    auc_error: Literal["delong", "hanley-mcneil"] = "delong"
    energy_max_points: int = 4000
    energy_permutations: int = 100

    def problems(self) -> list[str]:
        out = []
        if not 0.0 < self.test_fraction < 1.0:
            out.append(f"param 'test_fraction' must be in (0, 1), got {self.test_fraction}")
        for name in ("epochs", "hidden", "layers", "batch_size"):
            if getattr(self, name) < 1:
                out.append(f"param {name!r} must be >= 1, got {getattr(self, name)}")
        for name in ("k", "energy_max_points", "energy_permutations"):
            if getattr(self, name) < 0:
                out.append(f"param {name!r} must be >= 0, got {getattr(self, name)}")
        if self.lr <= 0:
            out.append(f"param 'lr' must be > 0, got {self.lr}")
        if set(self.columns) & set(self.context_columns):
            out.append(f"columns and context_columns overlap: {sorted(set(self.columns) & set(self.context_columns))}")
        return out


def _catalog_matrix(catalog: GalaxyCatalog, names: tuple[str, ...], which: str) -> torch.Tensor:
    """(N, D) float64 matrix of the named columns (vector columns flattened)."""
    missing = [n for n in names if n not in catalog.columns]
    if missing:
        raise KeyError(f"the {which} catalog has no column(s) {missing}; it has {sorted(catalog.columns)}")
    return torch.cat([catalog[n].reshape(len(catalog), -1).double() for n in names], dim=1)


class TwoSample(Stage):
    """Two-sample tests of galaxy properties, a sampler's catalog against a reference: KS, W1, C2ST, energy."""

    name = "measure.two_sample"
    Params = TwoSampleParams
    inputs = {"sample": GalaxyCatalog, "reference": GalaxyCatalog}
    outputs = {"per_column": Table, "summary": Table}

    @classmethod
    def example_params(cls) -> dict[str, Any]:
        return {
            "columns": ["log_mstar", "color_gi"],
            "context_columns": ["log_mhost"],
            "epochs": 5,
            "energy_permutations": 20,
        }

    @classmethod
    def example_inputs(cls, generator: torch.Generator) -> dict[str, Any]:
        from cosmoseg.testing import toy_box

        def catalog(n: int, shift: float) -> GalaxyCatalog:
            host = 12.0 + torch.rand((n,), generator=generator, dtype=torch.float64) * 2
            return GalaxyCatalog(
                columns={
                    "pos": torch.rand((n, 3), generator=generator, dtype=torch.float64) * 50.0,
                    "log_mhost": host,
                    "log_mstar": host - 2.0 + shift + 0.2 * torch.randn((n,), generator=generator, dtype=torch.float64),
                    "color_gi": 0.8 + 0.1 * torch.randn((n,), generator=generator, dtype=torch.float64),
                },
                box=toy_box(),
            )

        return {"sample": catalog(120, 0.1), "reference": catalog(100, 0.0)}

    def run(self, sample: GalaxyCatalog, reference: GalaxyCatalog) -> dict[str, Table]:
        from cosmoseg.measure.twosample import c2st, energy_distance, ks_2samp, wasserstein_1d

        p: TwoSampleParams = self.params
        names = p.columns or tuple(
            n
            for n, t in sample.columns.items()
            if t.ndim == 1 and t.is_floating_point() and n in reference.columns and n not in p.context_columns
        )
        if not names:
            shared = sorted(set(sample.columns) & set(reference.columns))
            raise ValueError(f"no columns to compare: the catalogs share no 1-D float column (shared: {shared})")
        device = self.ctx.device
        a = _catalog_matrix(sample, names, "sample").to(device)
        b = _catalog_matrix(reference, names, "reference").to(device)
        widths = [sample[n].reshape(len(sample), -1).shape[1] for n in names]
        labels = [n if w == 1 else f"{n}[{j}]" for n, w in zip(names, widths, strict=True) for j in range(w)]
        ks = ks_2samp(a, b)
        per_column = Table(
            columns={
                "column": torch.arange(len(labels)),
                "ks_statistic": ks.statistic.cpu(),
                "ks_pvalue": ks.pvalue.cpu(),
                "wasserstein": wasserstein_1d(a, b).cpu(),
                "mean_sample": a.mean(dim=0).cpu(),
                "mean_reference": b.mean(dim=0).cpu(),
                "std_sample": a.std(dim=0).cpu() if len(a) > 1 else torch.zeros(a.shape[1], dtype=torch.float64),
                "std_reference": b.std(dim=0).cpu() if len(b) > 1 else torch.zeros(b.shape[1], dtype=torch.float64),
            },
            meta={f"column_{i}": label for i, label in enumerate(labels)}
            | {"n_sample": len(sample), "n_reference": len(reference)},
        )
        generator = self.ctx.generator
        context = {}
        if p.context_columns:
            context = {
                "context_a": _catalog_matrix(sample, p.context_columns, "sample").to(device),
                "context_b": _catalog_matrix(reference, p.context_columns, "reference").to(device),
            }
        test = c2st(
            a,
            b,
            **context,
            classifier=p.classifier,
            test_fraction=p.test_fraction,
            hidden=p.hidden,
            layers=p.layers,
            epochs=p.epochs,
            batch_size=p.batch_size,
            lr=p.lr,
            k=p.k,
            error=p.auc_error,
            generator=generator,
        )
        ea, eb = a, b
        if p.energy_max_points:
            gen_device = generator.device
            if len(a) > p.energy_max_points:
                ea = a[torch.randperm(len(a), generator=generator, device=gen_device)[: p.energy_max_points].to(device)]
            if len(b) > p.energy_max_points:
                eb = b[torch.randperm(len(b), generator=generator, device=gen_device)[: p.energy_max_points].to(device)]
        # standardise with the reference's spread so that columns in different units weigh alike
        scale = b.std(dim=0) if len(b) > 1 else torch.ones(b.shape[1], dtype=torch.float64, device=device)
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        energy = energy_distance(ea / scale, eb / scale, n_permutations=p.energy_permutations, generator=generator)
        row = {
            "auc": test.auc,
            "auc_err": test.auc_err,
            "accuracy": test.accuracy,
            "c2st_pvalue": test.p_value,
            "n_train": float(test.n_train),
            "n_test": float(test.n_test),
            "energy_distance": energy.distance,
        }
        if p.energy_permutations:
            row["energy_pvalue"] = energy.p_value
        summary = Table(
            columns={key: torch.tensor([value], dtype=torch.float64) for key, value in row.items()},
            meta={
                "columns": ",".join(labels),
                "context_columns": ",".join(p.context_columns),
                "classifier": p.classifier,
                "energy_points_sample": len(ea),
                "energy_points_reference": len(eb),
                "label_0": "C2ST | " + ",".join(p.context_columns) if p.context_columns else "C2ST",
            },
        )
        return {"per_column": per_column, "summary": summary}


@dataclasses.dataclass(frozen=True)
class CalibrationParams:
    """levels: credible levels α in (0, 1) at which coverage is measured. n_bins: bins of the PIT histogram.
    use_samples: use the estimate's posterior samples when it has them (else its Gaussian mean ± std)."""

    levels: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.68, 0.7, 0.8, 0.9, 0.95, 0.99)
    n_bins: int = 10
    use_samples: bool = True

    def problems(self) -> list[str]:
        out = []
        if not self.levels or any(not 0.0 < lv < 1.0 for lv in self.levels):
            out.append(f"param 'levels' must be a non-empty list of numbers in (0, 1), got {list(self.levels)}")
        if self.n_bins < 1:
            out.append(f"param 'n_bins' must be >= 1, got {self.n_bins}")
        return out


class Calibration(Stage):
    """Calibration of posteriors against the truth: coverage of credible intervals, PIT histogram, KS test."""

    name = "measure.calibration"
    Params = CalibrationParams
    inputs = {"estimate": ParameterEstimate}
    outputs = {"coverage": Table, "pit": Table, "summary": Table}

    @classmethod
    def example_inputs(cls, generator: torch.Generator) -> dict[str, Any]:
        truth = torch.stack(
            [
                0.3 + 0.02 * torch.randn((40,), generator=generator, dtype=torch.float64),
                0.8 + 0.03 * torch.randn((40,), generator=generator, dtype=torch.float64),
            ],
            dim=1,
        )
        std = torch.tensor([0.01, 0.02], dtype=torch.float64).expand(40, 2)
        mean = truth + std * torch.randn((40, 2), generator=generator, dtype=torch.float64)
        noise = torch.randn((40, 50, 2), generator=generator, dtype=torch.float64)
        samples = mean[:, None, :] + std[:, None, :] * noise
        return {
            "estimate": ParameterEstimate(
                names=("omega_m", "sigma_8"), mean=mean, std=std, samples=samples, truth=truth
            )
        }

    def run(self, estimate: ParameterEstimate) -> dict[str, Table]:
        from cosmoseg.measure.calibration import calibration

        p: CalibrationParams = self.params
        result = calibration(estimate, levels=p.levels, n_bins=p.n_bins, use_samples=p.use_samples)
        n_par, n_lv, n_bins = len(result.names), len(p.levels), p.n_bins
        names = {f"parameter_{i}": name for i, name in enumerate(result.names)}
        source = "samples" if p.use_samples and estimate.samples is not None else "gaussian"
        meta = names | {"n_estimates": result.coverage.n, "source": source}
        cov = result.coverage
        coverage_table = Table(
            columns={
                "parameter": torch.arange(n_par).repeat_interleave(n_lv),
                "level": cov.levels.cpu().repeat(n_par),
                "coverage": cov.coverage.T.reshape(-1).cpu(),
                "coverage_err": cov.err.cpu().repeat(n_par),
            },
            meta=meta,
        )
        pit_table = Table(
            columns={
                "parameter": torch.arange(n_par).repeat_interleave(n_bins),
                "pit_low": result.edges[:-1].cpu().repeat(n_par),
                "pit_high": result.edges[1:].cpu().repeat(n_par),
                "count": result.counts.T.reshape(-1).cpu(),
            },
            meta=meta,
        )
        summary = {
            "parameter": torch.arange(n_par),
            "ks_statistic": result.ks_statistic.cpu(),
            "ks_pvalue": result.ks_pvalue.cpu(),
        }
        if bool(torch.isfinite(result.z_mean).all() and torch.isfinite(result.z_std).all()):
            summary |= {"z_mean": result.z_mean.cpu(), "z_std": result.z_std.cpu()}
        return {"coverage": coverage_table, "pit": pit_table, "summary": Table(columns=summary, meta=meta)}


@dataclasses.dataclass(frozen=True)
class ReportParams:
    """name: file name stem of the figure ("" = the table's kind, e.g. "power_spectrum"). title: the
    figure's title. label, reference_label: the legend's names of the table's curve and of the reference's ("" =
    the tables' meta label, else "measured" / "reference"). field: the legend's title, what was measured ("" = the
    table's meta). dpi: resolution of the PNG."""

    name: str = ""
    title: str = ""
    label: str = ""
    reference_label: str = ""
    field: str = ""
    dpi: int = 100

    def problems(self) -> list[str]:
        out = []
        if self.name and (
            self.name != self.name.strip() or any(c in self.name for c in "/\\:") or self.name.startswith(".")
        ):
            out.append(f"param 'name' must be a plain file name stem, got {self.name!r}")
        if not 10 <= self.dpi <= 1000:
            out.append(f"param 'dpi' must be in [10, 1000], got {self.dpi}")
        return out


class Report(Stage):
    """Draws a measurement table (P(k), B(θ), PDF, HMF, violins, coverage, PIT, two-sample) as a PNG."""

    name = "measure.report"
    version = "2"  # legends name the curves, error bars, log-axis labels (issue #18)
    Params = ReportParams
    inputs = {"table": Table, "reference": Table}
    optional_inputs = frozenset({"reference"})
    outputs = {"files": Table}

    @classmethod
    def example_inputs(cls, generator: torch.Generator) -> dict[str, Any]:
        k = torch.linspace(0.05, 0.5, 12, dtype=torch.float64)
        power = 1e4 * (k / 0.1) ** -1.5
        noisy = power * (1 + 0.05 * torch.randn((12,), generator=generator, dtype=torch.float64))
        return {"table": Table(columns={"k": k, "power": noisy, "power_linear": power})}

    def run(self, table: Table, reference: Table | None = None) -> dict[str, Table]:
        from cosmoseg.measure.figures import figure_for_table, write_stage_figure

        p: ReportParams = self.params
        kind, fig = figure_for_table(
            table.to("cpu"),
            reference.to("cpu") if reference is not None else None,
            title=p.title,
            label=p.label,
            reference_label=p.reference_label,
            field=p.field,
        )
        relative = f"{self.ctx.stage_id}/{p.name or kind}.png"
        write_stage_figure(fig, self.ctx.work_dir, relative, dpi=p.dpi)
        meta = {"file_0": relative, "kind_0": kind, "written": self.ctx.work_dir is not None}
        return {"files": Table(columns={"figure": torch.arange(1)}, meta=meta)}


@dataclasses.dataclass(frozen=True)
class MockSummaryParams:
    """n_mesh: mesh cells per side of the power spectra (TSC, interlaced). n_bins: mass-function bins.
    slab: thickness of the slice, as a fraction of the box side. dpi: of the PNG."""

    n_mesh: int = 128
    n_bins: int = 20
    slab: float = 0.1
    dpi: int = 100

    def problems(self) -> list[str]:
        out = []
        if self.n_mesh < 8:
            out.append(f"param 'n_mesh' must be >= 8, got {self.n_mesh}")
        if self.n_bins < 2:
            out.append(f"param 'n_bins' must be >= 2, got {self.n_bins}")
        if not 0 < self.slab <= 1:
            out.append(f"param 'slab' must be a fraction of the box side in (0, 1], got {self.slab}")
        if not 10 <= self.dpi <= 1000:
            out.append(f"param 'dpi' must be in [10, 1000], got {self.dpi}")
        return out


class MockSummaryStage(Stage):
    """The summary of a mock catalog: halo and stellar mass functions, galaxy P(k) in real and redshift space (with
    the quadrupole) and a slice, as tables and one figure (``<output>/<stage id>/summary.png``)."""

    name = "measure.mock_summary"
    Params = MockSummaryParams
    inputs = {"catalog": GalaxyCatalog, "halos": HaloCatalog}
    outputs = {"hmf": Table, "smf": Table, "power": Table}

    def run(self, catalog: GalaxyCatalog, halos: HaloCatalog) -> dict[str, Table]:
        from cosmoseg.measure.figures import write_stage_figure
        from cosmoseg.measure.summary import mock_summary, plot_mock_summary

        p: MockSummaryParams = self.params
        summary = mock_summary(catalog, halos, n_mesh=p.n_mesh, n_bins=p.n_bins)
        fig = plot_mock_summary(summary, catalog.to("cpu"), slab_fraction=p.slab)
        path = write_stage_figure(fig, self.ctx.work_dir, f"{self.ctx.stage_id}/summary.png", dpi=p.dpi)
        if path is not None:
            self.ctx.log(f"figure: {path}")
        return {"hmf": summary.hmf, "smf": summary.smf, "power": summary.power}

    @classmethod
    def example_params(cls) -> dict[str, Any]:
        return {"n_mesh": 16, "n_bins": 5}

    @classmethod
    def example_inputs(cls, generator: torch.Generator) -> dict[str, Any]:
        from cosmoseg.testing.toys import toy_galaxy_catalog, toy_halo_catalog

        halos = toy_halo_catalog(generator)
        galaxies = toy_galaxy_catalog(generator)
        n = len(galaxies)
        columns = dict(galaxies.columns)
        columns["host"] = torch.randint(0, len(halos), (n,), generator=generator)
        columns["is_central"] = torch.rand(n, generator=generator) < 0.7
        columns["log_mstar"] = 9.0 + 2.0 * torch.rand(n, generator=generator, dtype=torch.float64)
        return {"catalog": GalaxyCatalog(columns=columns, box=galaxies.box), "halos": halos}


@dataclasses.dataclass(frozen=True)
class CatalogPowerParams:
    """n_mesh: mesh cells per side. scheme: mass assignment ("ngp", "cic", "tsc", "pcs"). interlace: two
    meshes half a cell apart (Sefusatti et al. 2016). weight_column / other_weight_column: column weighting each
    object of ``catalog`` / ``other`` ("" = unit weights; a ``log_`` column is used as 10**value, e.g.
    "log_mstar" for stellar mass). rsd_axis: line of sight for redshift space (0, 1, 2; -1 = real space;
    needs a ``vel`` column). multipoles: columns power_0, power_2, power_4 instead of power (line of sight
    rsd_axis, or z in real space). subtract_shot_noise: subtract V Σw²/(Σw)² from auto spectra. dk, k_max:
    bin width and last edge, h/Mpc (0 = the fundamental frequency / the Nyquist frequency of the mesh)."""

    n_mesh: int = 256
    scheme: Literal["ngp", "cic", "tsc", "pcs"] = "tsc"
    interlace: bool = True
    weight_column: str = ""
    other_weight_column: str = ""
    rsd_axis: int = -1
    multipoles: bool = False
    subtract_shot_noise: bool = True
    dk: float = 0.0
    k_max: float = 0.0

    def problems(self) -> list[str]:
        out = []
        if self.n_mesh < 2:
            out.append(f"param 'n_mesh' must be >= 2, got {self.n_mesh}")
        if self.rsd_axis not in (-1, 0, 1, 2):
            out.append(f"param 'rsd_axis' must be -1 (real space), 0, 1 or 2, got {self.rsd_axis}")
        if self.dk < 0:
            out.append(f"param 'dk' must be >= 0 (0 = the fundamental frequency), got {self.dk}")
        if self.k_max < 0:
            out.append(f"param 'k_max' must be >= 0 (0 = the Nyquist frequency), got {self.k_max}")
        return out


def _catalog_weights(catalog: Catalog, column: str, what: str) -> torch.Tensor | None:
    """The (N,) weights of a catalog from a column name ("" = None; ``log_x`` -> 10**log_x)."""
    if not column:
        return None
    if column not in catalog:
        raise KeyError(f"{what} has no column {column!r} to weight by; it has {sorted(catalog.columns)}")
    values = catalog[column]
    if values.ndim != 1:
        raise ValueError(f"weight column {column!r} of {what} must be one number per object, got {tuple(values.shape)}")
    values = values.to(torch.float64)
    return torch.pow(10.0, values) if column.startswith("log_") else values


def _catalog_positions(catalog: Catalog, rsd_axis: int, device: torch.device, what: str) -> torch.Tensor:
    pos = catalog["pos"].to(device)
    if rsd_axis < 0:
        return pos
    if "vel" not in catalog:
        raise KeyError(f"rsd_axis = {rsd_axis} needs peculiar velocities, but {what} has no column 'vel'")
    return redshift_space_positions(pos, catalog["vel"].to(device), catalog.box, rsd_axis)


class CatalogPower(Stage):
    """The power spectrum of a catalog (or the cross spectrum and r(k) of two), mesh-painted, shot-noise corrected."""

    name = "measure.catalog_power"
    Params = CatalogPowerParams
    inputs = {"catalog": Catalog, "other": Catalog}
    optional_inputs = frozenset({"other"})
    outputs = {"spectrum": Table}

    @classmethod
    def example_params(cls) -> dict[str, Any]:
        return {"n_mesh": 16}

    def run(self, catalog: Catalog, other: Catalog | None = None) -> dict[str, Table]:
        p: CatalogPowerParams = self.params
        length = catalog.box.length
        if other is not None and abs(other.box.length - length) > 1e-9 * length:
            raise ValueError(f"the catalogs are in boxes of different sizes: {length} and {other.box.length} Mpc/h")
        device = self.ctx.device
        pos = _catalog_positions(catalog, p.rsd_axis, device, "catalog")
        weights = _catalog_weights(catalog, p.weight_column, "catalog")
        weights = None if weights is None else weights.to(device)
        los = p.rsd_axis if p.rsd_axis >= 0 else 2
        mesh = {"n_mesh": p.n_mesh, "scheme": p.scheme, "interlace": p.interlace}
        binning = {"dk": p.dk or None, "k_max": p.k_max or None}
        ells = (0, 2, 4) if p.multipoles else ()
        meta: dict[str, Any] = {
            "box": length,
            "redshift": catalog.box.redshift,
            "n_mesh": p.n_mesh,
            "scheme": p.scheme,
            "interlace": p.interlace,
            "rsd_axis": p.rsd_axis,
            "los_axis": los,
            "subtract_shot_noise": p.subtract_shot_noise,
            "weight_column": p.weight_column,
            "n_objects": len(catalog),
        }
        if other is None:
            spectrum = catalog_power_spectrum(
                pos,
                length,
                weights=weights,
                subtract_shot_noise=p.subtract_shot_noise,
                ells=ells,
                los_axis=los,
                **mesh,
                **binning,
            )
            meta["shot_noise"] = spectrum.shot_noise
            extra: dict[str, torch.Tensor] = {}
        else:
            other_weights = _catalog_weights(other, p.other_weight_column, "other")
            spectrum = catalog_cross_spectrum(
                pos,
                _catalog_positions(other, p.rsd_axis, device, "other"),
                length,
                weights=weights,
                other_weights=None if other_weights is None else other_weights.to(device),
                subtract_shot_noise=p.subtract_shot_noise,
                ells=ells,
                los_axis=los,
                **mesh,
                **binning,
            )
            extra = {"power_a": spectrum.power_a, "power_b": spectrum.power_b, "r": spectrum.r}
            meta.update(
                {
                    "shot_noise": spectrum.shot_noise_a,
                    "shot_noise_other": spectrum.shot_noise_b,
                    "other_weight_column": p.other_weight_column,
                    "n_objects_other": len(other),
                }
            )
        powers = {f"power_{ell}": spectrum.multipoles[ell] for ell in ells} if ells else {"power": spectrum.power}
        columns = {"k": spectrum.k, **powers, **extra}
        columns.update({"n_modes": spectrum.n_modes, "k_low": spectrum.k_low, "k_high": spectrum.k_high})
        units = {name: "(Mpc/h)^3" for name in columns if name.startswith("power")}
        units.update({"k_low": "h/Mpc", "k_high": "h/Mpc"})
        return {"spectrum": Table(columns=columns, units=units, meta=meta)}


@dataclasses.dataclass(frozen=True)
class CrossPowerParams:
    """channel / other_channel: the channels of ``field`` / ``other`` ("" = the first). dk, k_max: bin width
    and last edge, h/Mpc (0 = the fundamental frequency / the Nyquist frequency)."""

    channel: str = ""
    other_channel: str = ""
    dk: float = 0.0
    k_max: float = 0.0

    def problems(self) -> list[str]:
        out = []
        if self.dk < 0:
            out.append(f"param 'dk' must be >= 0 (0 = the fundamental frequency), got {self.dk}")
        if self.k_max < 0:
            out.append(f"param 'k_max' must be >= 0 (0 = the Nyquist frequency), got {self.k_max}")
        return out


class CrossPower(Stage):
    """The cross spectrum of two fields, both auto spectra and the cross-correlation coefficient r(k)."""

    name = "measure.cross_power"
    Params = CrossPowerParams
    inputs = {"field": Field, "other": Field}
    outputs = {"spectrum": Table}

    def run(self, field: Field, other: Field) -> dict[str, Table]:
        p: CrossPowerParams = self.params
        if field.n != other.n or abs(field.box.length - other.box.length) > 1e-9 * field.box.length:
            raise ValueError(
                f"the fields must share one grid: {field.n}^3 in {field.box.length} Mpc/h and "
                f"{other.n}^3 in {other.box.length} Mpc/h"
            )
        channel = p.channel or field.channels[0]
        other_channel = p.other_channel or other.channels[0]
        a = field.channel(channel).to(self.ctx.device)
        b = other.channel(other_channel).to(self.ctx.device)
        spectrum = cross_spectrum(a, b, field.box.length, dk=p.dk or None, k_max=p.k_max or None)
        columns = {
            "k": spectrum.k,
            "power": spectrum.power,
            "power_a": spectrum.power_a,
            "power_b": spectrum.power_b,
            "r": spectrum.r,
            "n_modes": spectrum.n_modes,
            "k_low": spectrum.k_low,
            "k_high": spectrum.k_high,
        }
        units = {"power_a": "(Mpc/h)^3", "power_b": "(Mpc/h)^3", "k_low": "h/Mpc", "k_high": "h/Mpc"}
        meta = {
            "channel": channel,
            "other_channel": other_channel,
            "box": field.box.length,
            "n": field.n,
            "redshift": field.box.redshift,
        }
        return {"spectrum": Table(columns=columns, units=units, meta=meta)}


@hookimpl
def cosmoseg_register_stages(register: Any) -> None:
    register(PowerSpectrum)
    register(BispectrumStage)
    register(FieldPdf)
    register(MassFunction)
    register(SegmentationScores)
    register(TwoSample)
    register(Calibration)
    register(Report)
    register(CatalogPower)
    register(CrossPower)
    register(MockSummaryStage)
