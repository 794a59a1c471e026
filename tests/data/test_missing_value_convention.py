"""One convention for missing values: a fill value (0) and a mask or count beside it, never NaN."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from cosmoseg.data import Box, HaloCatalog, Table, load_artifact, save_artifact
from cosmoseg.data.table import MISSING_FILL, resolved_column
from cosmoseg.errors import ValidationError

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _halos(**extra: torch.Tensor) -> HaloCatalog:
    columns = {"pos": torch.rand(4, 3, dtype=torch.float64), "mass": torch.full((4,), 1e12, dtype=torch.float64)}
    return HaloCatalog(columns=columns | extra, box=Box(length=1.0))


def test_the_fill_value_is_zero_and_the_mask_is_named_after_the_column() -> None:
    assert MISSING_FILL == 0.0
    assert resolved_column("concentration") == "concentration_resolved"


def test_resolved_reads_the_mask_or_counts_every_row_without_one(tmp_path: Path) -> None:
    mask = torch.tensor([True, False, True, False])
    halos = _halos(spin=torch.tensor([0.03, 0.0, 0.05, 0.0], dtype=torch.float64), spin_resolved=mask)
    assert torch.equal(halos.resolved("spin"), mask)
    assert bool(halos.resolved("mass").all()) and halos.resolved("mass").dtype == torch.bool
    back = load_artifact(save_artifact(tmp_path / "h.h5", {"halos": halos}))["halos"]
    assert torch.equal(back.resolved("spin"), mask)
    with pytest.raises(KeyError, match="no column 'vmax'"):
        halos.resolved("vmax")


def test_a_value_where_the_mask_says_missing_is_refused_by_row() -> None:
    mask = torch.tensor([True, False, True, False])
    with pytest.raises(ValidationError) as err:
        _halos(spin=torch.tensor([0.03, 0.0, 0.05, 0.2], dtype=torch.float64), spin_resolved=mask)
    assert re.search(
        r"column 'spin' holds 1 value\(s\) other than the fill value 0 where 'spin_resolved' is False", str(err.value)
    )
    assert "row 3" in str(err.value)


def test_a_mask_must_be_boolean() -> None:
    with pytest.raises(
        ValidationError, match=r"'spin_resolved' \(the missing-value mask of 'spin'\) must be \(N,\) bool"
    ):
        _halos(spin=torch.zeros(4, dtype=torch.float64), spin_resolved=torch.ones(4))
    # a column that merely ends in _resolved, beside no column of that name, is an ordinary column
    table = Table(columns={"x": torch.arange(3.0), "fit_resolved": torch.arange(3.0)})
    assert bool(table.resolved("x").all())


def test_the_data_model_documents_the_convention() -> None:
    text = (DOCS / "data-model.md").read_text(encoding="utf-8")
    section = text.split("**Missing values", 1)
    assert len(section) == 2, "docs/data-model.md has no 'Missing values' convention"
    body = section[1].split("\n\n**", 1)[0]
    for phrase in ("never NaN", "`<name>_resolved`", "count", "MISSING_FILL", "resolved(name)"):
        assert phrase in body, phrase
