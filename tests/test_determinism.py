"""The same notebook run twice with the same seed gives the same numbers on a CPU.

Notebook 01 is the cheapest quick run whose headline metrics come from training (its sequence models are
trained for a few hundred steps; accuracies and losses are floats of those runs). Each run goes through the
course's runner (papermill, a fresh kernel), which points ``COURSE_RESULTS_DIR`` at the run's own folder under
``tmp_path``: the committed ``results/`` is never written (a quick run would not write there anyway; see
:func:`helpers.core.results.results_dir`).
"""
import json
import re

import pytest

from helpers.core import run
from helpers.core.env import REPO_ROOT

NOTEBOOK = run.NOTEBOOK_DIR / "01_rnn_lstm_from_scratch.ipynb"
TIMING = re.compile(r"seconds|minutes|(^|_)s$|per_s|wall|speed")  # clock readings differ from run to run


def _published_results() -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (REPO_ROOT / "results").glob("*.json")}


@pytest.mark.notebooks
def test_same_seed_same_metrics(tmp_path):
    before = _published_results()
    recorded = []
    for attempt in ("first", "second"):
        result = run.run_notebook(NOTEBOOK, tmp_path / attempt, "quick")
        assert result.status == "ok", f"{NOTEBOOK.name} failed: {result.error} (log in {tmp_path / attempt})"
        recorded.append(json.loads((tmp_path / attempt / "results" / f"{NOTEBOOK.stem}.json").read_text()))
    first, second = recorded
    assert first["profile"] == second["profile"] == "quick"
    headline = first["headline"]
    assert headline == second["headline"] and all(isinstance(first["metrics"][k], float) for k in headline)
    assert {k: first["metrics"][k] for k in headline} == {k: second["metrics"][k] for k in headline}
    computed = [k for k in first["metrics"] if not TIMING.search(k)]
    assert len(computed) > len(headline)
    assert {k: first["metrics"][k] for k in computed} == {k: second["metrics"][k] for k in computed}
    assert first.get("exact_max_abs_diffs") == second.get("exact_max_abs_diffs")
    assert _published_results() == before, "a quick run must never touch the committed results/"
