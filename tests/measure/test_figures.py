"""Every figure helper draws a real PNG; measurement tables are recognised; measure.report writes its files."""

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from cosmoseg.data import Table
from cosmoseg.measure import figures
from cosmoseg.measure.stages import ReportParams, ReportStage
from cosmoseg.pipeline.context import RunContext
from cosmoseg.plugins import build_registry
from cosmoseg.testing import assert_stage_contract

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_real_png(path: Path) -> None:
    from matplotlib.image import imread

    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    pixels = imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
    flat = pixels.reshape(-1, pixels.shape[-1])
    assert (flat != flat[0]).any(), f"{path} is a single colour"
    assert not list(path.parent.glob(".*.tmp")), "a temporary file was left behind"


K = torch.linspace(0.02, 0.5, 20, dtype=torch.float64)
P = 1e4 * (K / 0.1) ** -1.5
THETA = torch.linspace(0.1, 3.0, 10, dtype=torch.float64)
M = torch.logspace(12, 15, 10, dtype=torch.float64)
HMF = 1e-4 * (M / 1e12) ** -0.9 * torch.exp(-M / 3e14)
LEVELS = torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95], dtype=torch.float64)
Z = torch.tensor([-1.645, -0.674, 0.0, 0.674, 1.645], dtype=torch.float64)

HELPERS: dict[str, Callable[..., object]] = {
    "power": lambda path: figures.plot_power_spectrum(K, {"model": 1.05 * P, "truth": P}, reference=P, path=path),
    "power_interp": lambda path: figures.plot_power_spectrum(K, P, reference=(K[::2], P[::2]), path=path),
    "bispectrum": lambda path: figures.plot_bispectrum(
        THETA,
        0.5 + 0.3 * THETA.cos() ** 2,
        error=0.02 * torch.ones(10),
        reference=0.5 + 0.29 * THETA.cos() ** 2,
        path=path,
    ),
    "pdf": lambda path: figures.plot_pdf(THETA - 1.5, (-((THETA - 1.5) ** 2)).exp(), path=path),
    "hmf": lambda path: figures.plot_mass_function(
        M, HMF, error=0.1 * HMF, reference={"Tinker08": 1.05 * HMF, "ST": 0.9 * HMF}, path=path
    ),
    "violin": lambda path: figures.plot_violin(
        torch.arange(12.0, 15.0, 0.5), LEVELS, torch.arange(12.0, 15.0, 0.5)[:, None] + 0.3 * Z, path=path
    ),
    "confusion": lambda path: figures.plot_confusion_slice(
        torch.rand((16, 16, 16), generator=torch.Generator().manual_seed(0)) > 0.5,
        torch.rand((16, 16, 16), generator=torch.Generator().manual_seed(1)) > 0.5,
        extent=50.0,
        path=path,
    ),
    "coverage": lambda path: figures.plot_coverage(
        LEVELS, torch.stack([LEVELS, LEVELS**1.3], 1), err=0.02 * torch.ones(5), labels=["a", "b"], path=path
    ),
    "pit": lambda path: figures.plot_pit(torch.linspace(0, 1, 6), torch.tensor([30.0, 18, 15, 17, 20]), path=path),
    "two_sample": lambda path: figures.plot_two_sample(
        ["log_mstar", "color_gi"], [0.1, 0.04], [0.2, 0.01], ks_pvalue=[0.01, 0.6], path=path
    ),
    "c2st": lambda path: figures.plot_c2st([0.51, 0.8], [0.01, 0.02], labels=["x", "x | halo"], path=path),
}


@pytest.mark.parametrize("name", sorted(HELPERS))
def test_each_helper_writes_a_png(name: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.png"
    fig = HELPERS[name](path)
    assert type(fig).__name__ == "Figure"
    assert_real_png(path)


def test_the_same_figure_gives_the_same_bytes(tmp_path: Path) -> None:
    HELPERS["hmf"](tmp_path / "one.png")
    HELPERS["hmf"](tmp_path / "two.png")
    assert (tmp_path / "one.png").read_bytes() == (tmp_path / "two.png").read_bytes()


def test_confusion_categories() -> None:
    truth = torch.tensor([[1, 1], [0, 0]])
    fig = figures.plot_confusion_slice(truth, torch.tensor([[1, 0], [1, 0]]))
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["TN 0.25", "FP 0.25", "FN 0.25", "TP 0.25"]


def test_bad_violin_shapes() -> None:
    with pytest.raises(ValueError, match="quantiles"):
        figures.plot_violin([1.0, 2.0], LEVELS, torch.zeros((3, 5)))


TABLES = {
    "power_spectrum": Table(columns={"k": K, "power": P, "power_linear": P * 1.01}),
    "bispectrum": Table(
        columns={
            "k1": torch.full((20,), 0.1).double(),
            "k2": torch.cat([torch.full((10,), 0.1), torch.full((10,), 0.2)]).double(),
            "theta": torch.cat([THETA, THETA]),
            "Q": torch.cat([THETA.cos(), THETA.sin()]),
        }
    ),
    "pdf": Table(columns={"low": THETA - 0.1, "high": THETA + 0.1, "pdf": (-THETA).exp(), "pdf_err": 0.01 + 0 * THETA}),
    "mass_function": Table(columns={"m_mid": M, "dndlnm": HMF, "dndlnm_err": 0.1 * HMF, "dndlnm_tinker08": HMF}),
    "violin": Table(
        columns={"log_m_true": torch.arange(12.0, 14.5, 0.5).double(), "quantiles": 13 + 0.3 * Z.expand(5, 5)},
        meta={"quantile_levels": "0.05,0.25,0.5,0.75,0.95"},
    ),
    "coverage": Table(
        columns={
            "parameter": torch.tensor([0, 0, 1, 1]),
            "level": torch.tensor([0.5, 0.9, 0.5, 0.9]),
            "coverage": torch.tensor([0.45, 0.88, 0.6, 0.95]),
            "coverage_err": torch.full((4,), 0.02),
        },
        meta={"parameter_0": "omega_m", "parameter_1": "sigma_8"},
    ),
    "pit": Table(
        columns={
            "pit_low": torch.linspace(0, 0.8, 5),
            "pit_high": torch.linspace(0.2, 1.0, 5),
            "count": torch.tensor([10.0, 12, 9, 11, 8]),
        }
    ),
    "two_sample": Table(
        columns={
            "column": torch.arange(2),
            "ks_statistic": torch.tensor([0.1, 0.2]),
            "wasserstein": torch.tensor([0.3, 0.1]),
        },
        meta={"column_0": "log_mstar", "column_1": "color_gi"},
    ),
    "c2st": Table(columns={"auc": torch.tensor([0.6]), "auc_err": torch.tensor([0.02])}),
    "generic": Table(columns={"x": torch.linspace(0, 1, 5), "y": torch.linspace(1, 2, 5)}),
}


@pytest.mark.parametrize("kind", sorted(TABLES))
def test_tables_are_recognised_and_drawn(kind: str, tmp_path: Path) -> None:
    table = TABLES[kind]
    assert figures.table_kind(table) == kind
    found, fig = figures.figure_for_table(table, reference=table if kind == "power_spectrum" else None, title=kind)
    assert found == kind
    figures.save_figure(fig, tmp_path / "t.png")
    assert_real_png(tmp_path / "t.png")


def test_a_table_that_names_its_kind_is_drawn_as_that_kind() -> None:
    columns = {"k": K, "power": P, "bin_mid": K, "pdf": P}  # columns of a power spectrum and of a PDF
    assert figures.guess_kind(Table(columns=columns)) == "power_spectrum"
    kind, fig = figures.figure_for_table(Table(columns=columns, meta={"kind": "pdf"}))
    assert kind == "pdf" and fig.axes[0].get_yscale() == "log" and fig.axes[0].get_xscale() == "linear"
    unknown = Table(columns={"k": K, "power": P}, meta={"kind": "no such kind"})
    assert figures.table_kind(unknown) == "power_spectrum"  # an unknown kind: guessed from the columns
    assert set(figures.FIGURES) >= {figures.guess_kind(table) for table in TABLES.values()}


def test_the_stage_writes_beside_the_run_outputs_and_lists_the_file(tmp_path: Path) -> None:
    ctx = RunContext(device=torch.device("cpu"), seed=1, stage_id="report_pk", work_dir=tmp_path)
    table = TABLES["power_spectrum"]
    out = ReportStage(ReportParams(title="P(k)"), ctx).run(table=table, reference=None)["files"]
    path = tmp_path / "report_pk" / "power_spectrum.png"
    assert out.meta["file_0"] == "report_pk/power_spectrum.png" and out.meta["kind_0"] == "power_spectrum"
    assert out["figure"].tolist() == [0] and out.meta["written"] is True
    assert_real_png(path)
    first = path.read_bytes()
    again = ReportStage(ReportParams(title="P(k)"), ctx).run(table=table, reference=table)["files"]
    assert again.meta == out.meta
    ReportStage(ReportParams(title="P(k)"), ctx).run(table=table, reference=None)
    assert path.read_bytes() == first  # same data, same bytes


def test_without_a_work_dir_the_stage_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    ctx = RunContext(device=torch.device("cpu"), seed=1, stage_id="report")
    out = ReportStage(ReportParams(name="hmf"), ctx).run(table=TABLES["mass_function"], reference=None)["files"]
    assert out.meta["written"] is False and out.meta["file_0"] == "report/hmf.png"
    assert not list(tmp_path.iterdir())


def test_report_params_are_checked() -> None:
    from cosmoseg.pipeline.params import parse_params

    assert parse_params(ReportParams, {"name": "../x"}, "r")[1] == [
        "r: param 'name' must be a plain file name stem, got '../x'"
    ]
    assert parse_params(ReportParams, {"dpi": 5}, "r")[1] == ["r: param 'dpi' must be >= 10, got 5"]
    assert not parse_params(ReportParams, {"name": "pk_model"}, "r")[1]


def test_ratio_panel_limits_follow_the_ratios() -> None:
    fig = figures.plot_mass_function(M, HMF, error=10 * HMF, reference=HMF * 1.1)
    low, high = fig.axes[1].get_ylim()
    assert 0.85 < low < 1 / 1.1 and 1.0 < high < 1.05  # the ratio and the line at 1, not the ±10× error bars


def test_per_mass_quantile_columns_make_violins_and_empty_bins_are_skipped(tmp_path: Path) -> None:
    m_mid = torch.tensor([1e12, 1e13, 1e14], dtype=torch.float64)
    columns = {"m_mid": m_mid, "TPR": torch.tensor([0.5, 0.7, 0.9]), "n_violin": torch.tensor([10.0, 0.0, 5.0])}
    columns |= {f"q{int(100 * lv):02d}": m_mid.log10() + 0.2 * z for lv, z in zip(LEVELS.tolist(), Z, strict=True)}
    table = Table(columns=columns)
    assert figures.table_kind(table) == "violin"
    _, fig = figures.figure_for_table(table)
    assert len(fig.axes[0].patches) == 2  # the empty middle bin has no violin
    figures.save_figure(fig, tmp_path / "v.png")
    assert_real_png(tmp_path / "v.png")


def test_pdf_table_with_bin_edges_and_a_cross_spectrum() -> None:
    pdf = Table(columns={"bin_low": THETA - 0.1, "bin_high": THETA + 0.1, "pdf": (-THETA).exp()})
    assert figures.table_kind(pdf) == "pdf"
    cross = Table(columns={"k": K, "power": 0.9 * P, "power_a": P, "power_b": 0.8 * P, "r": 0.9 + 0 * K})
    kind, fig = figures.figure_for_table(cross)
    assert kind == "power_spectrum" and len(fig.axes[0].get_lines()) == 3


@pytest.mark.slow
def test_every_measure_stage_output_can_be_drawn(tmp_path: Path) -> None:
    """The tables the measure.* stages make from their example inputs are all drawn (about 10 s)."""
    from cosmoseg.pipeline.params import parse_params
    from cosmoseg.plugins import build_registry
    from cosmoseg.testing.toys import toy_for_type

    registry = build_registry(autoload=False)
    drawn = []
    for name in sorted(n for n in registry.stages if n.startswith("measure.") and n != "measure.report"):
        cls = registry.stage(name)
        params, problems = parse_params(cls.Params, cls.example_params(), name)
        assert not problems
        inputs = cls.example_inputs(torch.Generator().manual_seed(0))
        if inputs is None:
            inputs = {k: toy_for_type(t, torch.Generator().manual_seed(0)) for k, t in cls.inputs.items()}
        ctx = RunContext(device=torch.device("cpu"), seed=1, stage_id=name.replace(".", "_"), work_dir=tmp_path)
        inputs = {**{k: None for k in cls.optional_inputs}, **inputs}
        for output, table in cls(params, ctx).run(**inputs).items():
            if isinstance(table, Table):
                files = ReportStage(ReportParams(name=output), ctx).run(table=table, reference=None)["files"]
                assert_real_png(tmp_path / files.meta["file_0"])
                drawn.append(files.meta["kind_0"])
    assert {"power_spectrum", "coverage", "pit", "two_sample", "c2st"} <= set(drawn)


MEASURING_STAGES = sorted(
    name for name in build_registry().stages if name.startswith("measure.") and name != "measure.report"
)


@pytest.mark.parametrize("name", MEASURING_STAGES)
def test_every_measured_table_carries_the_kind_its_columns_had(name: str) -> None:
    """A table names its figure (meta kind); the kind is the one its column names gave, so no figure changes."""
    outputs = assert_stage_contract(build_registry().stage(name))
    tables = {key: value for key, value in outputs.items() if isinstance(value, Table) and value.columns}
    assert tables, f"{name} measured no table"
    for key, table in tables.items():
        kind = table.meta.get("kind")
        assert kind in figures.FIGURES, f"{name}.{key}: meta kind {kind!r}"
        assert kind == figures.guess_kind(table), f"{name}.{key}"
