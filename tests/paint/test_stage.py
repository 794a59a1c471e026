"""The paint.dm2gal stage: outputs, the truth comparison, and the inputs it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cosmoseg.data import Box, Field
from cosmoseg.errors import ValidationError
from cosmoseg.paint.fields import LOG_UNIT
from cosmoseg.paint.models import extrapolation_note, save_paint_model
from cosmoseg.paint.network import Dm2Gal, Dm2GalFCN
from cosmoseg.paint.stages import Dm2GalParams, Dm2GalStage
from cosmoseg.pipeline.context import RunContext, SilentReporter

N = 16
VOXEL = 2.0
FCN_TINY = {"local": 4, "local_layers": 1, "context": 2, "context_layers": 2, "pool": 2, "hidden": 8}


def _model_file(
    tmp_path: Path, *, halo_assignment: str = "ngp", kind: str = "fcn", max_log_halo: float | None = None
) -> Path:
    torch.manual_seed(0)
    model = Dm2GalFCN(**FCN_TINY) if kind == "fcn" else Dm2Gal(channels=(2,) * 6, hidden=4, large_kernel=3,
                                                                  input_size=29)  # fmt: skip
    if kind == "fcn":
        with torch.no_grad():  # stellar masses around 10^10 (an untrained head paints ~1 Msun/h)
            model.head.bias[1 + model.components : 1 + 2 * model.components] = 10.0
    return save_paint_model(tmp_path / f"{kind}.pt", model.eval(), voxel=VOXEL, threshold=1e8, step=1,
                            card={"data": "toy"}, halo_assignment=halo_assignment,
                            max_log_halo=max_log_halo)  # fmt: skip


def _fields(n: int = N, voxel: float = VOXEL, *, truth: bool = True, assignment: str = "ngp") -> Field:
    g = torch.Generator().manual_seed(3)
    dm = 11.0 + torch.rand((n, n, n), generator=g)
    halo = torch.where(torch.rand((n, n, n), generator=g) < 0.05, 12.5, 0.0)
    channels = [dm, halo] + ([torch.where(halo > 0, 10.3, 0.0)] if truth else [])
    names = ("log_dm", "log_halo", "log_mstar")[: len(channels)]
    return Field(values=torch.stack(channels), box=Box(length=n * voxel), channels=names,
                 units=(LOG_UNIT,) * len(channels), meta={"assignment_log_halo": assignment})  # fmt: skip


def _run(model: Path, fields: Field, reporter: SilentReporter | None = None, **params: object) -> dict:
    ctx = RunContext(device=torch.device("cpu"), seed=5, stage_id="painted", reporter=reporter or SilentReporter())
    return Dm2GalStage(Dm2GalParams(model=str(model), **params), ctx).run(fields=fields)


def test_haloes_beyond_the_training_range_are_named(tmp_path: Path) -> None:
    """The toy fields' haloes are 10^12.5: a model trained up to 10^12.0 says it extrapolates, naming both masses
    and the number of voxels; one trained up to 10^13 (or whose file does not say) stays quiet."""
    quiet, loud, unknown = SilentReporter(), SilentReporter(), SilentReporter()
    fields = _fields()
    _run(_model_file(tmp_path, max_log_halo=13.0), fields, quiet, tile=8)
    _run(_model_file(tmp_path, max_log_halo=12.0), fields, loud, tile=8)
    _run(_model_file(tmp_path), fields, unknown, tile=8)
    count = int((fields.values[1] > 0).sum())
    (warning,) = [m for m in loud.messages if "warning" in m]
    assert f"{count} halo voxel(s) up to 10^12.50 Msun/h" in warning and "(10^12.00)" in warning
    assert not [m for m in quiet.messages + unknown.messages if "warning" in m]
    assert "hinge features' last slope" in warning  # the default successor goes on straight past its range
    without = extrapolation_note(torch.tensor([11.0, 13.0]), {"max_log_halo": 12.0, "arch": {"hinges": 0}})
    assert without is not None and "1 halo voxel(s) up to 10^13.00" in without and "levels off" in without


def test_outputs_and_the_truth_comparison(tmp_path: Path) -> None:
    out = _run(_model_file(tmp_path), _fields(), tile=8)
    painted, galaxies = out["painted"], out["galaxies"]
    assert painted.values.shape == (1, N, N, N) and painted.channels == ("log_mstar",)
    assert len(galaxies) == int((painted.values[0] > 0).sum())  # one galaxy per occupied voxel
    assert len(out["power"]) == len(out["power_truth"]) > 0
    no_truth = _run(_model_file(tmp_path), _fields(truth=False), tile=8)
    assert len(no_truth["power_truth"]) == 0 and torch.equal(no_truth["painted"].values, painted.values)
    means = _run(_model_file(tmp_path), _fields(), tile=8, sample=False)["painted"].values
    assert torch.equal(means > 0, painted.values > 0) and not torch.equal(means, painted.values)


def test_refused_inputs_name_the_problem(tmp_path: Path) -> None:
    model = _model_file(tmp_path)
    with pytest.raises(ValidationError, match=r"voxels of 1 Mpc/h but the model was trained on voxels of 2 Mpc/h"):
        _run(model, _fields(voxel=1.0))
    with pytest.raises(ValidationError, match=r"painted by 'cic' but the model was trained on 'ngp'"):
        _run(model, _fields(assignment="cic"))
    with pytest.raises(ValidationError, match=r"lack channel\(s\) \['log_halo'\]"):
        fields = _fields()
        _run(model, Field(values=fields.values[:1], box=fields.box, channels=("log_dm",), units=(LOG_UNIT,)))
    with pytest.raises(ValidationError, match="needs the true galaxy positions"):
        _run(_model_file(tmp_path, kind="dm2gal"), _fields())
    with pytest.raises(ValueError, match=r"cells of 2 voxels"):
        _run(model, _fields(), tile=3)
