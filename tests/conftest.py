"""Shared fixtures (the mirror fallback for COURSE_DATA_DIR is in the repository's root conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def mirror() -> Path:
    """The real data mirror; tests using it are skipped (with the reason) where no mirror exists."""
    path = os.environ.get("COURSE_DATA_DIR")
    if not path or not Path(path).is_dir():
        pytest.skip("needs the data mirror: set COURSE_DATA_DIR to a folder laid out like ../shared/data")
    return Path(path)


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch) -> Path:
    """A private cache folder, with no mirror and downloads allowed."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("COURSE_CACHE_DIR", str(cache))
    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)
    monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    return cache
