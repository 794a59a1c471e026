"""Clustering of galaxy sub-populations (cosmoseg.galaxies.clustering), its figures (cosmoseg.galaxies.figures) and
`cosmoseg galaxies evaluate --clustering`."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from typer.testing import CliRunner

from cosmoseg.data import Box, Field, Table, load_artifact, save_artifact
from cosmoseg.galaxies._examples import toy_halos
from cosmoseg.galaxies.clustering import (
    COLOUR_CUT,
    ClusteringBox,
    clustering_comparison,
    comparison_markdown,
    default_selections,
    draw_centrals,
)
from cosmoseg.galaxies.commands import app as galaxies_app
from cosmoseg.galaxies.figures import colour_mass_plane, plot_colour_mass, plot_power_ratios
from cosmoseg.galaxies.training import find_boxes, split_boxes, train_sampler

torch.set_num_threads(1)

TARGETS = ["log_mstar", "color_gi"]
LENGTH = 100.0
N_GRID = 32


def _linear_field(generator: torch.Generator, n: int = N_GRID, smooth: float = 8.0) -> torch.Tensor:
    """A Gaussian field (n, n, n) with a smooth cut-off power, std ~0.1 (so 1 + 2 delta > 0 everywhere)."""
    white = torch.randn((n, n, n), generator=generator, dtype=torch.float64)
    k = torch.fft.fftfreq(n, d=LENGTH / n, dtype=torch.float64) * 2 * math.pi
    kk = k.view(-1, 1, 1) ** 2 + k.view(1, -1, 1) ** 2 + k[: n // 2 + 1].abs().view(1, 1, -1) ** 2
    delta = torch.fft.irfftn(torch.fft.rfftn(white) * torch.exp(-0.5 * kk * smooth**2), s=(n, n, n))
    return 0.1 * delta / delta.std()


def _poisson_catalog(delta: torch.Tensor, bias: float, per_cell: float, generator: torch.Generator) -> torch.Tensor:
    """Positions (N, 3) Mpc/h: Poisson counts of mean per_cell (1 + bias delta) per cell, uniform inside it."""
    n = delta.shape[0]
    counts = torch.poisson(per_cell * (1.0 + bias * delta), generator=generator).long().reshape(-1)
    cells = torch.repeat_interleave(torch.arange(n**3), counts)
    ijk = torch.stack([cells // n**2, (cells // n) % n, cells % n], 1).double()
    return (ijk + torch.rand(ijk.shape, generator=generator, dtype=torch.float64)) * (LENGTH / n)


def _box(seed: int, n_halos: int = 3000) -> ClusteringBox:
    """Haloes Poisson-sampled from a biased linear field, with truth properties tied to the local density."""
    gen = torch.Generator().manual_seed(seed)
    delta = _linear_field(gen)
    pos = _poisson_catalog(delta, 1.5, n_halos / N_GRID**3, gen)
    m = len(pos)
    log_mass = 11.5 + 2.5 * torch.rand(m, generator=gen, dtype=torch.float64)
    log_mstar = 10.0 + 0.6 * (log_mass - 12.0) + 0.2 * torch.randn(m, generator=gen, dtype=torch.float64)
    colour = 0.8 + 0.3 * (log_mass > 12.3).double() + 0.08 * torch.randn(m, generator=gen, dtype=torch.float64)
    truth = torch.stack([log_mstar, colour], 1).float()
    return ClusteringBox(
        name=f"toy_{seed}", length=LENGTH, pos=pos, mass=10.0**log_mass, x=truth, truth=truth, delta_lin=delta.float()
    )


class _Oracle:
    """A 'sampler' conditioned on the truth itself that returns it: the perfect sampler."""

    target_names = TARGETS
    condition_names = TARGETS

    def sample(self, x: torch.Tensor, n: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
        return x.unsqueeze(0).expand(n, *x.shape).clone()


class _Shuffled(_Oracle):
    """The truth's properties handed to random haloes: right one-point statistics, no clustering information."""

    def sample(self, x: torch.Tensor, n: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
        return x[torch.randperm(len(x), generator=generator)].unsqueeze(0).expand(n, *x.shape).clone()


def test_selections_partition_and_thresholds() -> None:
    props = torch.tensor([[9.8, 0.70], [10.2, 0.97], [10.6, 1.20], [10.4, 0.96], [11.0, 0.80]])
    sel = {s.name: s.mask(props, TARGETS) for s in default_selections()}
    assert set(sel) == {"M*>10", "M*>10.5", "red", "blue"}
    assert bool((sel["red"] ^ sel["blue"]).all())  # a partition: every galaxy in exactly one
    assert sel["red"].tolist() == [False, True, True, False, False] and COLOUR_CUT == 0.97
    assert sel["M*>10"].tolist() == [False, True, True, True, True]
    assert sel["M*>10.5"].tolist() == [False, False, True, False, True]


def test_oracle_sampler_has_ratio_one_and_the_truths_bias() -> None:
    boxes = [_box(10), _box(11)]
    samplers = {"oracle": _Oracle(), "shuffled": _Shuffled()}
    result = clustering_comparison(
        samplers,
        boxes,
        targets=TARGETS,
        training_boxes=[_box(12)],
        k_max=0.3,
        n_mesh=32,  # type: ignore[arg-type]
    )
    s = result.summary
    methods = [s.meta[f"method_{i}"] for i in range(3)]
    assert methods == ["oracle", "shuffled", "hod"] and len(s) == 3 * 4
    oracle = s["method"] == 0
    assert torch.equal(s["n_method"][oracle], s["n_truth"][oracle])
    assert torch.allclose(s["bias_method"][oracle], s["bias_truth"][oracle], atol=1e-12)
    assert float(s["bias_diff"][oracle].abs().max()) < 1e-12 and float(s["power_ratio_mad"][oracle].max()) < 1e-12
    curves = result.curves
    assert torch.allclose(curves["ratio"][curves["method"] == 0], torch.ones(1, dtype=torch.float64))
    # the shuffle keeps the number density (its bias, here, too: the properties ignore the density)
    shuffled = s["method"] == 1
    assert torch.allclose(s["n_method"][shuffled], s["n_truth"][shuffled])
    # the truth's bias is the field's 1.5 for every selection (selection is independent of the density here)
    assert torch.allclose(s["bias_truth"], torch.full_like(s["bias_truth"], 1.5), atol=0.25)
    assert set(result.hod_fits) == {"M*>10", "M*>10.5", "red", "blue"}
    hod = s["method"] == 2
    assert torch.allclose(s["n_method"][hod], s["n_truth"][hod], rtol=0.15)
    table = comparison_markdown(s)
    assert "| hod | n/a | n/a |" in table and "| oracle |" in table


def test_colour_mass_plane_and_figure(tmp_path: Path) -> None:
    boxes = [_box(10)]
    draws = {"oracle": [boxes[0].truth.clone()]}
    planes = colour_mass_plane(draws, boxes, targets=TARGETS, mass_bins=((11.5, 12.5), (12.5, 14.0)))
    assert list(planes) == ["truth", "oracle"]
    assert sum(len(p) for p in planes["truth"]) == len(boxes[0].truth)
    assert np.array_equal(planes["truth"][1], planes["oracle"][1]) and planes["truth"][0].shape[1] == 2
    plot_colour_mass(planes, ((11.5, 12.5), (12.5, 14.0)), path=tmp_path / "cm.png")
    assert (tmp_path / "cm.png").stat().st_size > 1000


def test_cli_evaluate_writes_the_clustering(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    for i in range(3):
        gen = torch.Generator().manual_seed(20 + i)
        halos = toy_halos(gen, n=400)
        fields = Field(
            values=torch.stack([_linear_field(gen, n=16), torch.zeros(16, 16, 16, dtype=torch.float64)]).float(),
            box=Box(length=100.0),
            channels=("delta", "phi"),
        )
        save_artifact(suite / f"box_{i:04d}.h5", {"halos": halos, "fields": fields})
    train, _ = split_boxes(find_boxes(suite), 1, seed=0)
    sampler = train_sampler("gauss", train, ["log_mass", "concentration"], TARGETS, hyper={"epochs": 3})
    model = sampler.save(tmp_path / "gauss.pt")
    args = ["evaluate", str(suite), "--model", str(model), "--n-validation", "1", "--n-draws", "10"]
    args += ["--output", str(tmp_path / "eval"), "--figures", str(tmp_path / "fig")]
    result = CliRunner().invoke(galaxies_app, args)
    assert result.exit_code == 0, result.output
    saved = load_artifact(tmp_path / "eval" / "evaluation.h5")
    assert set(saved) == {"scores", "clustering", "clustering_curves"} and len(saved["clustering"]) == 3 * 4
    methods = [saved["clustering"].meta[f"method_{i}"] for i in range(3)]
    assert methods == ["truth redrawn", "gauss (gauss.pt)", "hod"]  # the floor, the model, the HOD
    assert "| hod | n/a | n/a |" in result.output and "C2ST AUC" in result.output
    assert (tmp_path / "fig" / "colour_mass.png").exists() and (tmp_path / "fig" / "power_ratio_red.png").exists()


class _Noisy(_Oracle):
    """The truth's properties with N(0, 0.15) added to the colour: every draw moves the red/blue split."""

    def sample(self, x: torch.Tensor, n: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
        out = x.unsqueeze(0).expand(n, *x.shape).clone()
        out[..., 1] += 0.15 * torch.randn(out[..., 1].shape, generator=generator)
        return out


def test_clustering_averages_every_number_over_draws() -> None:
    """n_draws = 3 gives the mean over the three single-draw comparisons (draw k seeded seed + box + k * stride), and
    the spread of their Δb; the P(k) ratio is the mean over draws and boxes."""
    boxes = [_box(10), _box(11)]
    samplers = {"noisy": _Noisy()}
    options = {"targets": TARGETS, "k_max": 0.3, "n_mesh": 32, "seed": 5}
    three = clustering_comparison(samplers, boxes, n_draws=3, **options)  # type: ignore[arg-type]
    singles = [
        clustering_comparison(samplers, boxes, draws=draw_centrals(samplers, boxes, seed=5, draw=k), **options)
        for k in range(3)
    ]
    s = three.summary
    assert s.meta["n_draws"] == 3 and singles[0].summary.meta["n_draws"] == 1
    diffs = torch.stack([one.summary["bias_diff"] for one in singles])  # (3 draws, 4 populations)
    assert torch.allclose(s["bias_diff"], diffs.mean(0), atol=1e-12)
    assert torch.allclose(s["bias_diff_spread"], diffs.std(0), atol=1e-12)
    assert float(s["bias_diff_spread"].max()) > 0 and float(singles[0].summary["bias_diff_spread"].max()) == 0
    ratios = torch.stack([one.curves["ratio"] for one in singles])
    assert torch.allclose(three.curves["ratio"], ratios.mean(0), atol=1e-12)
    methods = torch.stack([one.summary["bias_method"] for one in singles])
    assert torch.allclose(s["bias_method"], methods.mean(0), atol=1e-12)
    assert "mean ± standard deviation over 3 draws per halo" in comparison_markdown(s)
    assert "one draw per halo" in comparison_markdown(singles[0].summary)


def test_power_ratio_panel_plots_the_stored_ratio_and_errors() -> None:
    """The ratio panel draws the table's ratio (a mean of per-box ratios, not the ratio of mean powers) and
    its ratio_err band."""
    k = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)
    curves = Table(
        columns={
            "method": torch.zeros(3, dtype=torch.int64),
            "population": torch.zeros(3, dtype=torch.int64),
            "k": k,
            "power_truth": torch.tensor([100.0, 50.0, 20.0], dtype=torch.float64),
            "power_method": torch.tensor([110.0, 50.0, 18.0], dtype=torch.float64),
            "ratio": torch.tensor([1.05, 0.97, 0.93], dtype=torch.float64),
            "ratio_err": torch.tensor([0.02, 0.03, 0.04], dtype=torch.float64),
        },
        meta={"method_0": "m", "population_0": "red"},
    )
    fig = plot_power_ratios(curves, 0)
    ratio_axis = fig.axes[1]
    plotted = [line.get_ydata() for line in ratio_axis.get_lines() if len(line.get_xdata()) == 3]
    assert any(np.allclose(y, [1.05, 0.97, 0.93]) for y in plotted)
    band = ratio_axis.collections[0].get_paths()[0].vertices[:, 1]
    assert np.isclose(band.min(), 0.93 - 0.04) and np.isclose(band.max(), 1.05 + 0.02)


def test_cli_evaluate_clustering_with_draws_and_the_floor(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    for i in range(2):
        gen = torch.Generator().manual_seed(30 + i)
        fields = Field(
            values=torch.stack([_linear_field(gen, n=16), torch.zeros(16, 16, 16, dtype=torch.float64)]).float(),
            box=Box(length=100.0),
            channels=("delta", "phi"),
        )
        save_artifact(suite / f"box_{i:04d}.h5", {"halos": toy_halos(gen, n=400), "fields": fields})
    sampler = train_sampler("gauss", find_boxes(suite)[:1], ["log_mass", "concentration"], TARGETS, hyper={"epochs": 2})
    model = sampler.save(tmp_path / "gauss.pt")
    args = ["evaluate", str(suite), "--model", str(model), "--n-validation", "2", "--n-draws", "10"]
    args += ["--clustering-draws", "2", "--output", str(tmp_path / "eval")]
    result = CliRunner().invoke(galaxies_app, args)
    assert result.exit_code == 0, result.output
    clustering = load_artifact(tmp_path / "eval" / "evaluation.h5")["clustering"]
    assert clustering.meta["method_0"] == "truth redrawn" and clustering.meta["n_draws"] == 2
    assert "hod" not in [clustering.meta[f"method_{i}"] for i in range(2)] and len(clustering) == 2 * 4
    assert "no box is left to fit the HOD on" in result.output and "| truth redrawn |" in result.output
