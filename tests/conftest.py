"""Shared fixtures: where the real FER+ data lives, and deterministic threading for CPU tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FERPLUS_DIR = Path(os.environ.get("FER_EDGE_FERPLUS", REPO.parent / "shared" / "data" / "ferplus"))


@pytest.fixture(scope="session")
def ferplus_dir() -> Path:
    """The real FER+ folder (FER2013Train/, FER2013Valid/); tests using it skip when it is absent."""
    if not (FERPLUS_DIR / "FER2013Train" / "label.csv").is_file():
        pytest.skip(f"real FER+ data not found at {FERPLUS_DIR} (set FER_EDGE_FERPLUS to its folder)")
    return FERPLUS_DIR
