"""Shared fixtures. Tests that need the real data sets read them from the mirror named by COURSE_DATA_DIR
(CI points it at ../shared/data); when it is unset, the sibling folder ../shared/data is used if present."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
_SIBLING_MIRROR = REPO.parent / "shared" / "data"

if not os.environ.get("COURSE_DATA_DIR") and _SIBLING_MIRROR.is_dir():
    os.environ["COURSE_DATA_DIR"] = str(_SIBLING_MIRROR)
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
