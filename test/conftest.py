"""Shared pytest fixtures: where the (optional, read-only) datasets live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# ../shared beside the checkout; VOS_SHARED overrides it (e.g. on another machine).
SHARED = Path(os.environ.get("VOS_SHARED", REPO_ROOT.parent / "shared"))
VAL_DIR = SHARED / "data" / "vos"
TRAIN_DIR = SHARED / "data" / "vos-train"


@pytest.fixture(scope="session")
def davis_val_dir() -> Path:
    """The 12-sequence DAVIS-2016 validation folder; the test is skipped when it is absent."""
    if not (VAL_DIR / "JPEGImages").is_dir():
        pytest.skip(f"validation data not found at {VAL_DIR} (set VOS_SHARED)")
    return VAL_DIR


@pytest.fixture(scope="session")
def davis_train_dir() -> Path:
    """The 30-sequence DAVIS-2016 training folder; the test is skipped when it is absent."""
    if not (TRAIN_DIR / "JPEGImages").is_dir():
        pytest.skip(f"training data not found at {TRAIN_DIR} (set VOS_SHARED)")
    return TRAIN_DIR
