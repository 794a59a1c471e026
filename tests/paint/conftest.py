"""Shared fixtures of the paint tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Every paint test on one torch thread (``one_torch_thread`` of tests/conftest.py)."""
