"""The notebook lane: nbval executes every committed notebook once, in quick, and this plugin checks each run.

Loaded by the repository's ``conftest.py``; it does nothing unless nbval runs (``--nbval`` or ``--nbval-lax``, as
in ``make test``). Then:

- the kernel nbval starts for a notebook gets ``COURSE_PROFILE=quick`` (the parameters cell's ``profile = "auto"``
  resolves to quick, on a GPU machine too), ``COURSE_RESULTS_DIR`` pointing at a folder of this session (so
  ``record_results`` never writes the committed ``results/`` or ``build/``) and the inline matplotlib backend (so
  plots become outputs, as in papermill's runs);
- after a notebook's last cell comes an item ``<notebook>::results`` that checks the run nbval just made: every
  code cell executed and none raised, ``<stem>.json`` written with profile ``quick`` and finite headline metrics,
  a notebook that draws shows at least one image, and the committed ``results/`` is untouched;
- after notebook 01 comes ``<notebook>::determinism``: one more run of 01 through the course's runner (papermill,
  a fresh kernel, same seed) whose every computed metric must equal nbval's run.

Each notebook is therefore executed once (01 twice), instead of papermill then nbval (and 01 twice more).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

try:
    from nbval.plugin import IPyNbCell, find_comment_markers, find_metadata_tags
except ImportError:  # nbval not installed: the unit lane needs none of this
    IPyNbCell = None

from helpers.core import run
from helpers.core.env import PROFILE_ENV, REPO_ROOT
from helpers.core.results import RESULTS_ENV

DETERMINISM_NOTEBOOK = "01_rnn_lstm_from_scratch"  # the cheapest quick run whose headline comes from training
TIMING = re.compile(r"seconds|minutes|(^|_)s$|per_s|wall|speed")  # clock readings differ from run to run
_STATE = pytest.StashKey[dict]()


def _active(config: pytest.Config) -> bool:
    return IPyNbCell is not None and bool(
        getattr(config.option, "nbval", False) or getattr(config.option, "nbval_lax", False)
    )


def _published_results() -> dict[str, str]:
    """The committed results files by content (not mtime: a checkout rewrites a file without changing it)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (REPO_ROOT / "results").glob("*.json")}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "notebooks: executes course notebooks (minutes)")
    if _active(config):
        results = Path(tempfile.mkdtemp(prefix="course-nbval-"))
        config.stash[_STATE] = {"results": results, "published": _published_results(), "runs": {}}


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state:
        shutil.rmtree(state["results"], ignore_errors=True)


def _run_of(item: pytest.Item) -> dict:
    """What nbval's cells of this notebook did in this session (filled by the report hook below)."""
    return item.config.stash[_STATE]["runs"].setdefault(item.parent.nodeid, {"ran": set(), "errors": [], "images": 0})


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    """The environment of the kernel: nbval starts it while setting up a notebook's first cell."""
    if not (_active(item.config) and isinstance(item, IPyNbCell)):
        return (yield)
    wanted = {
        PROFILE_ENV: "quick",
        RESULTS_ENV: str(item.config.stash[_STATE]["results"]),
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "PYTHONUNBUFFERED": "1",
    }
    saved = {key: os.environ.get(key) for key in wanted}
    os.environ.update(wanted)
    try:
        return (yield)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if call.when == "call" and _active(item.config) and isinstance(item, IPyNbCell):
        outputs = getattr(item, "test_outputs", None)  # set by nbval once the cell was sent to the kernel
        if outputs is not None:
            state = _run_of(item)
            state["ran"].add(item.cell_num)
            for out in outputs:
                if out.get("output_type") == "error" and not item.options.get("check_exception"):
                    state["errors"].append(f"cell {item.cell_num}: {out.get('ename')}: {out.get('evalue')}")
                state["images"] += any(kind.startswith("image/") for kind in out.get("data", {}))
    return report


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """After each notebook's last cell, the check of its run (and for notebook 01, the determinism check)."""
    if not _active(config):
        return
    ordered: list[pytest.Item] = []
    for i, item in enumerate(items):
        ordered.append(item)
        last = i + 1 == len(items) or items[i + 1].parent is not item.parent
        if isinstance(item, IPyNbCell) and last:
            ordered.append(NotebookRunCheck.from_parent(item.parent, name="results"))
            if Path(item.parent.path).stem == DETERMINISM_NOTEBOOK:
                ordered.append(DeterminismCheck.from_parent(item.parent, name="determinism"))
    items[:] = ordered


def _skipped(cell) -> bool:
    """nbval leaves this cell out (tag ``nbval-skip`` or a ``# NBVAL_SKIP`` comment)."""
    return bool(
        dict(find_metadata_tags(cell.metadata) or ()).get("skip") or dict(find_comment_markers(cell.source)).get("skip")
    )


def _recorded(results: Path, stem: str) -> dict:
    path = results / f"{stem}.json"
    assert path.is_file(), f"{stem} wrote no results: record_results({stem!r}, ...) was never reached"
    return json.loads(path.read_text(encoding="utf-8"))


class NotebookRunCheck(pytest.Item):
    """What ``test_notebook_runs_quick`` asserted on papermill's run, asserted on nbval's run of the notebook."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_marker(pytest.mark.notebooks)

    def runtest(self) -> None:
        stem = Path(self.parent.path).stem
        nb = self.parent.nb  # read by nbval at collection
        cells = [c for c in nb.cells if c.cell_type == "code"]
        expected = {i for i, c in enumerate(cells) if not _skipped(c)}
        state = self.config.stash[_STATE]
        done = state["runs"].get(self.parent.nodeid, {"ran": set(), "errors": [], "images": 0})
        missing = sorted(expected - done["ran"])
        assert not missing, (
            f"{stem}: code cells {missing} did not run in this session; the check needs the whole notebook"
        )
        assert not done["errors"], f"{stem} raised: " + "; ".join(done["errors"])
        recorded = _recorded(state["results"], stem)
        assert recorded["profile"] == "quick" and recorded["metrics"], recorded
        headline = recorded["headline"]
        assert headline and set(headline) <= set(recorded["metrics"]), f"headline {headline} not among the metrics"
        assert all(math.isfinite(recorded["metrics"][k]) for k in headline), {
            k: recorded["metrics"][k] for k in headline
        }
        draws = any("plt." in c.source or "plot_" in c.source for c in cells)
        assert done["images"] or not draws, f"{stem} draws plots but its run showed none"
        assert _published_results() == state["published"], "a quick run must never touch the committed results/"

    def reportinfo(self):
        return self.path, None, f"{self.parent.name}::results"


class DeterminismCheck(pytest.Item):
    """The same notebook run twice with the same seed gives the same numbers on a CPU: nbval's run, then the runner's.

    Notebook 01's sequence models train for a few hundred steps; its accuracies and losses are floats of those runs.
    The second run goes through :func:`helpers.core.run.run_notebook` (papermill, a fresh kernel, ``COURSE_RESULTS_DIR``
    in its own folder), so it also checks that the runner and nbval execute a notebook alike.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_marker(pytest.mark.notebooks)

    def runtest(self) -> None:
        state = self.config.stash[_STATE]
        path = Path(self.parent.path)
        first = _recorded(state["results"], path.stem)
        again = state["results"] / "determinism"
        result = run.run_notebook(path, again, "quick")
        assert result.status == "ok", f"{path.name} failed: {result.error} (log in {again})"
        second = _recorded(again / "results", path.stem)
        assert first["profile"] == second["profile"] == "quick"
        headline = first["headline"]
        assert headline == second["headline"] and all(isinstance(first["metrics"][k], float) for k in headline)
        assert {k: first["metrics"][k] for k in headline} == {k: second["metrics"][k] for k in headline}
        computed = [k for k in first["metrics"] if not TIMING.search(k)]
        assert len(computed) > len(headline)
        assert {k: first["metrics"][k] for k in computed} == {k: second["metrics"][k] for k in computed}
        assert first.get("exact_max_abs_diffs") == second.get("exact_max_abs_diffs")
        assert _published_results() == state["published"], "a quick run must never touch the committed results/"

    def reportinfo(self):
        return self.path, None, f"{self.parent.name}::determinism"
