"""The plugin face of ``cosmoseg.measure``: statistics as pipeline stages.

Each stage's params are the keyword arguments of the library function it delegates to
(``**dataclasses.asdict(self.params)``), which takes data-model objects and returns the output tables.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import math
from typing import TYPE_CHECKING, Any, Literal

import torch

from cosmoseg.data import Catalog, Field, GalaxyCatalog, HaloCatalog, ParameterEstimate, Segmentation, Table
from cosmoseg.hookspecs import hookimpl
from cosmoseg.measure.bispectrum import bispectrum_table
from cosmoseg.measure.calibration import DEFAULT_LEVELS, calibration_tables
from cosmoseg.measure.mass_function import THEORY_MODELS, mass_function_table
from cosmoseg.measure.onepoint import pdf_table
from cosmoseg.measure.power import catalog_power_table, field_cross_table, field_power_table
from cosmoseg.measure.segmentation import segmentation_scores
from cosmoseg.measure.twosample import two_sample_tables
from cosmoseg.pipeline.params import param
from cosmoseg.pipeline.stage import Stage

if TYPE_CHECKING:
    from cosmoseg.data import Box

CHANNEL_DOC = 'the channel to measure ("" = the first)'
DK_DOC = "bin width, h/Mpc (0 = the fundamental frequency 2π/L)"
K_MAX_DOC = "last bin edge, h/Mpc (0 = the Nyquist frequency)"
DPI_DOC = "resolution of the PNG"


def _example_box() -> Box:
    """The box of the example inputs: 50 Mpc/h, Eisenstein & Hu power (no CAMB call)."""
    from cosmoseg.data import Box, Cosmology

    return Box(length=50.0, redshift=0.0, cosmology=Cosmology(power_backend="eisenstein-hu"))


# ---- spectra of fields -----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PowerSpectrumParams:
    channel: str = param("", doc=CHANNEL_DOC)
    dk: float = param(0.0, ge=0, doc=DK_DOC)
    k_max: float = param(0.0, ge=0, doc=K_MAX_DOC)
    with_linear: bool = param(True, doc="add power_linear, D(z)^2 P_lin at each bin's mean k (the field's cosmology)")


class PowerSpectrumStage(Stage[PowerSpectrumParams]):
    """The binned power spectrum P(k) of one channel of a field, with the linear-theory P(k) beside it."""

    name = "measure.power_spectrum"
    inputs = {"field": Field}
    outputs = {"spectrum": Table}

    def run(self, field: Field) -> dict[str, Table]:
        return {"spectrum": field_power_table(field, **dataclasses.asdict(self.params))}


@dataclasses.dataclass(frozen=True)
class CrossPowerParams:
    channel: str = param("", doc='the channel of ``field`` ("" = the first)')
    other_channel: str = param("", doc='the channel of ``other`` ("" = the first)')
    dk: float = param(0.0, ge=0, doc=DK_DOC)
    k_max: float = param(0.0, ge=0, doc=K_MAX_DOC)


class CrossPowerStage(Stage[CrossPowerParams]):
    """The cross spectrum of two fields, both auto spectra and the cross-correlation coefficient r(k)."""

    name = "measure.cross_power"
    inputs = {"field": Field, "other": Field}
    outputs = {"spectrum": Table}

    def run(self, field: Field, other: Field) -> dict[str, Table]:
        table = field_cross_table(field, other, **dataclasses.asdict(self.params), device=self.ctx.device)
        return {"spectrum": table}


@dataclasses.dataclass(frozen=True)
class BispectrumParams:
    k1: float | tuple[float, ...] = param(gt=0, doc="first triangle side, h/Mpc: one value, or a list (pairs with k2)")
    k2: float | tuple[float, ...] = param(gt=0, doc="second triangle side, h/Mpc: as many values as k1")
    channel: str = param("", doc=CHANNEL_DOC)
    n_theta: int = param(10, doc="that many angles linspace(0, π) between k1 and k2, used when thetas is empty")
    thetas: tuple[float, ...] = param((), ge=0, le=math.pi, doc="the angles, radians in [0, π]")
    dk: float = param(0.0, ge=0, doc="shell width, h/Mpc (0 = the fundamental frequency 2π/L)")
    method: Literal["fourier", "direct"] = param(
        "fourier", doc='"fourier" (one FFT per (k1, k2) pair serves every angle) or "direct"'
    )

    def problems(self) -> list[str]:
        out = []
        k1 = (self.k1,) if isinstance(self.k1, float | int) else tuple(self.k1)
        k2 = (self.k2,) if isinstance(self.k2, float | int) else tuple(self.k2)
        if len(k1) != len(k2) or not k1:
            out.append(f"params 'k1' and 'k2' must have the same, non-zero number of values, got {len(k1)}, {len(k2)}")
        if not self.thetas and self.n_theta < 1:
            out.append(f"param 'n_theta' must be >= 1 (or give 'thetas'), got {self.n_theta}")
        return out


class BispectrumStage(Stage[BispectrumParams]):
    """The bispectrum B(k1, k2, θ) and reduced bispectrum Q of one channel of a field (FFT shell estimator)."""

    name = "measure.bispectrum"
    inputs = {"field": Field}
    outputs = {"bispectrum": Table}

    @classmethod
    def example_params(cls) -> dict[str, Any]:
        return {"k1": 0.25, "k2": [0.25], "n_theta": 5}

    def run(self, field: Field) -> dict[str, Table]:
        return {"bispectrum": bispectrum_table(field, **dataclasses.asdict(self.params), device=self.ctx.device)}


@dataclasses.dataclass(frozen=True)
class FieldPdfParams:
    channel: str = param("", doc=CHANNEL_DOC)
    smoothing_radius: float = param(0.0, ge=0, doc="Mpc/h (0 = none)")
    kernel: Literal["tophat", "gaussian"] = param(
        "tophat", doc='"tophat" (a sphere of the radius) or "gaussian" (that σ)'
    )
    n_bins: int = param(50, ge=1, doc="equal bins over value_range")
    value_range: tuple[float, ...] = param(
        (), doc="[lo, hi] of the binned values (of log10 of them with log); empty = from the minimum to the maximum"
    )
    log: bool = param(False, doc="the PDF of log10 of the positive voxels")
    positive_only: bool = param(False, doc="bin only the positive voxels (not in log)")

    def problems(self) -> list[str]:
        if self.value_range and not (len(self.value_range) == 2 and self.value_range[0] < self.value_range[1]):
            return [f"param 'value_range' must be empty or [lo, hi] with lo < hi, got {list(self.value_range)}"]
        return []


class FieldPdfStage(Stage[FieldPdfParams]):
    """The one-point PDF (counts in cells) of one channel of a field, optionally smoothed, or of its log10."""

    name = "measure.pdf"
    inputs = {"field": Field}
    outputs = {"pdf": Table}

    def run(self, field: Field) -> dict[str, Table]:
        return {"pdf": pdf_table(field, **dataclasses.asdict(self.params))}

    @classmethod
    def example_params(cls) -> dict[str, Any]:
        return {"smoothing_radius": 10.0, "n_bins": 10}


# ---- catalogs --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MassFunctionParams:
    column: str = param("mass", doc="the mass column of the catalog (Msun/h)")
    n_bins: int = param(20, ge=1, doc="bins equal in ln M")
    m_min: float = param(0.0, ge=0, doc="smallest mass, Msun/h (0 = the smallest in the catalog)")
    m_max: float = param(0.0, ge=0, doc="largest mass, Msun/h (0 = the largest in the catalog)")
    theory: tuple[Literal["tinker08", "sheth99", "despali16"], ...] = param(
        (),
        doc='colossus models ("tinker08", "sheth99", "despali16") whose bin-averaged dn/dlnM to add as dndlnm_<model>',
    )
    mdef: str = param("", doc='their mass definition ("" = each model\'s default: 200m, fof, vir)')

    def problems(self) -> list[str]:
        if self.m_min and self.m_max and self.m_min >= self.m_max:
            return [f"param 'm_min' ({self.m_min}) must be smaller than 'm_max' ({self.m_max})"]
        return []


class MassFunctionStage(Stage[MassFunctionParams]):
    """The halo mass function dn/dlnM of a catalog with Poisson errors, and theory curves from colossus."""

    name = "measure.mass_function"
    inputs = {"halos": HaloCatalog}
    outputs = {"mass_function": Table}

    def run(self, halos: HaloCatalog) -> dict[str, Table]:
        return {"mass_function": mass_function_table(halos, **dataclasses.asdict(self.params))}

    @classmethod
    def example_params(cls) -> dict[str, Any]:
        return {"n_bins": 5, "theory": list(THEORY_MODELS) if importlib.util.find_spec("colossus") else []}


@dataclasses.dataclass(frozen=True)
class CatalogPowerParams:
    n_mesh: int = param(256, ge=2, doc="mesh cells per side")
    scheme: Literal["ngp", "cic", "tsc", "pcs"] = param("tsc", doc='mass assignment: "ngp", "cic", "tsc" or "pcs"')
    interlace: bool = param(True, doc="two meshes half a cell apart (Sefusatti et al. 2016)")
    weight_column: str = param(
        "", doc='column weighting each object of ``catalog`` ("" = unit weights; a log_ column is used as 10**value)'
    )
    other_weight_column: str = param("", doc="the same for ``other``")
    rsd_axis: int = param(-1, ge=-1, le=2, doc="line of sight of redshift space (0, 1, 2; -1 = real space; needs vel)")
    multipoles: bool = param(False, doc="columns power_0, _2, _4 instead of power (line of sight rsd_axis, or z)")
    subtract_shot_noise: bool = param(True, doc="subtract V Σw²/(Σw)² from auto spectra")
    dk: float = param(0.0, ge=0, doc=DK_DOC)
    k_max: float = param(0.0, ge=0, doc="last bin edge, h/Mpc (0 = the Nyquist frequency of the mesh)")


class CatalogPowerStage(Stage[CatalogPowerParams]):
    """The power spectrum of a catalog (or the cross spectrum and r(k) of two), mesh-painted, shot-noise corrected."""

    name = "measure.catalog_power"
    inputs = {"catalog": Catalog, "other": Catalog}
    optional_inputs = frozenset({"other"})
    outputs = {"spectrum": Table}

    @classmethod
    def example_params(cls) -> dict[str, Any]:
        return {"n_mesh": 16}

    def run(self, catalog: Catalog, other: Catalog | None = None) -> dict[str, Table]:
        table = catalog_power_table(catalog, other, **dataclasses.asdict(self.params), device=self.ctx.device)
        return {"spectrum": table}


@dataclasses.dataclass(frozen=True)
class MockSummaryParams:
    n_mesh: int = param(128, ge=8, doc="mesh cells per side of the power spectra (TSC, interlaced)")
    n_bins: int = param(20, ge=2, doc="mass-function bins")
    slab: float = param(0.1, gt=0, le=1, doc="thickness of the slice, as a fraction of the box side")
    dpi: int = param(100, ge=10, le=1000, doc=DPI_DOC)


class MockSummaryStage(Stage[MockSummaryParams]):
    """The summary of a mock catalog: halo and stellar mass functions, galaxy P(k) in real and redshift space (with
    the quadrupole) and a slice, as tables and one figure (``<output>/<stage id>/summary.png``)."""

    name = "measure.mock_summary"
    inputs = {"catalog": GalaxyCatalog, "halos": HaloCatalog}
    outputs = {"hmf": Table, "smf": Table, "power": Table}

    def run(self, catalog: GalaxyCatalog, halos: HaloCatalog) -> dict[str, Table]:
        from cosmoseg.measure.figures import write_stage_figure
        from cosmoseg.measure.summary import mock_summary, plot_mock_summary

        p = self.params
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
        """16 haloes of 20-500 particles of 1e11 Msun/h and 24 galaxies (70% centrals) at random hosts."""
        box = _example_box()
        n_part = torch.randint(20, 500, (16,), generator=generator)
        halos = HaloCatalog(
            columns={"pos": torch.rand((16, 3), generator=generator) * box.length, "mass": n_part.double() * 1e11},
            box=box,
        )
        galaxies = {
            "pos": torch.rand((24, 3), generator=generator) * box.length,
            "host": torch.randint(0, 16, (24,), generator=generator),
            "is_central": torch.rand(24, generator=generator) < 0.7,
            "log_mstar": 9.0 + 2.0 * torch.rand(24, generator=generator, dtype=torch.float64),
        }
        return {"catalog": GalaxyCatalog(columns=galaxies, box=box), "halos": halos}


# ---- scores ----------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SegmentationScoresParams:
    threshold: float = param(
        -1.0, ge=-1, le=1, doc='on the probabilities, in [0, 1] (-1 = the prediction\'s own meta "threshold", else 0.5)'
    )
    n_thresholds: int = param(19, ge=1, doc="points of the score curves over (0, 1)")
    mass_edges: tuple[float, ...] = param(
        (), doc="log10 Msun/h bin edges of the per-mass rates (empty = n_mass_bins bins spanning every halo mass)"
    )
    n_mass_bins: int = param(10, ge=1, doc="equal bins in log10 M when mass_edges is empty")
    particle_mass: float = param(0.0, ge=0, doc="Msun/h (0 = from the truth's box cosmology and grid)")
    iou_threshold: float = param(0.5, ge=0.5, le=1, doc="instance matching criterion")

    def problems(self) -> list[str]:
        out = []
        if self.threshold != -1.0 and self.threshold < 0:
            out.append(f"param 'threshold' must be in [0, 1], or -1 for the prediction's own, got {self.threshold}")
        if self.mass_edges and (
            len(self.mass_edges) < 2 or any(b <= a for a, b in itertools.pairwise(self.mass_edges))
        ):
            out.append(f"param 'mass_edges' must be >= 2 increasing log10 masses, got {list(self.mass_edges)}")
        return out


class SegmentationScoresStage(Stage[SegmentationScoresParams]):
    """Semantic, per-mass and instance scores of a predicted protohalo segmentation against the truth."""

    name = "measure.segmentation_scores"
    inputs = {"truth": Segmentation, "prediction": Segmentation}
    outputs = {"scores": Table, "per_mass": Table, "curves": Table}

    def run(self, truth: Segmentation, prediction: Segmentation) -> dict[str, Table]:
        tables = segmentation_scores(truth, prediction, **dataclasses.asdict(self.params), device=self.ctx.device)
        self.ctx.log(tables.summary)
        return {"scores": tables.scores, "per_mass": tables.per_mass, "curves": tables.curves}

    @classmethod
    def example_inputs(cls, generator: torch.Generator) -> dict[str, Segmentation]:
        """A truth of three 2^3 haloes on an 8^3 grid and a prediction made from it: labels shifted by one voxel and
        renumbered, with probabilities that are high inside the predicted haloes."""
        labels = torch.zeros((8, 8, 8), dtype=torch.int64)
        for label in (1, 2, 3):
            i, j, k = (int(c) for c in torch.randint(0, 6, (3,), generator=generator))
            labels[i : i + 2, j : j + 2, k : k + 2] = label
        truth = Segmentation(labels=labels, box=_example_box())
        shifted = torch.roll(truth.labels, shifts=1, dims=0)
        renumbered = torch.where(shifted > 0, 10 * shifted + 7, 0)
        noise = 0.3 * torch.rand(truth.labels.shape, generator=generator, dtype=torch.float64)
        probabilities = torch.where(renumbered > 0, 1.0 - noise, noise)
        prediction = Segmentation(labels=renumbered, probabilities=probabilities, box=truth.box)
        return {"truth": truth, "prediction": prediction}


@dataclasses.dataclass(frozen=True)
class TwoSampleParams:
    columns: tuple[str, ...] = param(
        (), doc="the galaxy properties to compare ([] = every 1-D float column both catalogs have, but the context)"
    )
    context_columns: tuple[str, ...] = param(
        (), doc="columns appended to both samples for the C2ST only (e.g. host-halo properties): tests p(x | context)"
    )
    classifier: Literal["mlp", "knn"] = param("mlp", doc='the C2ST\'s classifier: "mlp" or "knn"')
    test_fraction: float = param(0.5, gt=0, lt=1, doc="share of the rows held out")
    epochs: int = param(20, ge=1, doc="the MLP's training epochs")
    hidden: int = param(64, ge=1, doc="the MLP's hidden units per layer")
    layers: int = param(2, ge=1, doc="the MLP's hidden layers")
    lr: float = param(3e-3, gt=0, doc="the MLP's learning rate")
    batch_size: int = param(256, ge=1, doc="the MLP's batch size")
    k: int = param(0, ge=0, doc='neighbours of "knn" (0 = √n_train)')
    auc_error: Literal["delong", "hanley-mcneil"] = param(
        "delong", doc='the standard error of the AUC: "delong" or "hanley-mcneil"'
    )
    energy_max_points: int = param(4000, ge=0, doc="rows of each catalog for the O(N²) energy distance (0 = all)")
    energy_permutations: int = param(100, ge=0, doc="permutations of the energy distance's p-value")

    def problems(self) -> list[str]:
        overlap = sorted(set(self.columns) & set(self.context_columns))
        return [f"columns and context_columns overlap: {overlap}"] if overlap else []


class TwoSampleStage(Stage[TwoSampleParams]):
    """Two-sample tests of galaxy properties, a sampler's catalog against a reference: KS, W1, C2ST, energy."""

    name = "measure.two_sample"
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
        def catalog(n: int, shift: float) -> GalaxyCatalog:
            host = 12.0 + torch.rand((n,), generator=generator, dtype=torch.float64) * 2
            return GalaxyCatalog(
                columns={
                    "pos": torch.rand((n, 3), generator=generator, dtype=torch.float64) * 50.0,
                    "log_mhost": host,
                    "log_mstar": host - 2.0 + shift + 0.2 * torch.randn((n,), generator=generator, dtype=torch.float64),
                    "color_gi": 0.8 + 0.1 * torch.randn((n,), generator=generator, dtype=torch.float64),
                },
                box=_example_box(),
            )

        return {"sample": catalog(120, 0.1), "reference": catalog(100, 0.0)}

    def run(self, sample: GalaxyCatalog, reference: GalaxyCatalog) -> dict[str, Table]:
        per_column, summary = two_sample_tables(
            sample, reference, **dataclasses.asdict(self.params), generator=self.ctx.generator, device=self.ctx.device
        )
        return {"per_column": per_column, "summary": summary}


@dataclasses.dataclass(frozen=True)
class CalibrationParams:
    levels: tuple[float, ...] = param(DEFAULT_LEVELS, gt=0, lt=1, doc="credible levels α at which coverage is measured")
    n_bins: int = param(10, ge=1, doc="bins of the PIT histogram")
    use_samples: bool = param(True, doc="use the estimate's posterior samples when it has them (else mean ± std)")

    def problems(self) -> list[str]:
        return [] if self.levels else ["param 'levels' must be a non-empty list of numbers in (0, 1), got []"]


class CalibrationStage(Stage[CalibrationParams]):
    """Calibration of posteriors against the truth: coverage of credible intervals, PIT histogram, KS test."""

    name = "measure.calibration"
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
        coverage, pit, summary = calibration_tables(estimate, **dataclasses.asdict(self.params))
        return {"coverage": coverage, "pit": pit, "summary": summary}


# ---- figures ---------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ReportParams:
    name: str = param("", doc='file name stem of the figure ("" = the table\'s kind, e.g. "power_spectrum")')
    title: str = param("", doc="the figure's title")
    label: str = param("", doc='the legend\'s name of the table\'s curve ("" = its meta label, else "measured")')
    reference_label: str = param("", doc='the reference\'s ("" = its meta label, else "reference")')
    field: str = param("", doc="the legend's title, what was measured (\"\" = the table's meta)")
    dpi: int = param(100, ge=10, le=1000, doc=DPI_DOC)

    def problems(self) -> list[str]:
        if self.name and (
            self.name != self.name.strip() or any(c in self.name for c in "/\\:") or self.name.startswith(".")
        ):
            return [f"param 'name' must be a plain file name stem, got {self.name!r}"]
        return []


class ReportStage(Stage[ReportParams]):
    """Draws a measurement table (P(k), B(θ), PDF, HMF, violins, coverage, PIT, two-sample) as a PNG."""

    name = "measure.report"
    version = "2"  # legends name the curves, error bars, log-axis labels (issue #18)
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

        p = self.params
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


@hookimpl
def cosmoseg_register_stages(register: Any) -> None:
    for stage in (
        PowerSpectrumStage,
        BispectrumStage,
        FieldPdfStage,
        MassFunctionStage,
        SegmentationScoresStage,
        TwoSampleStage,
        CalibrationStage,
        ReportStage,
        CatalogPowerStage,
        CrossPowerStage,
        MockSummaryStage,
    ):
        register(stage)
