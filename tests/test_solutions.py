"""The worked solutions in solutions/: every lesson that promises one links it, each exercise says what to expect,
and every solutions notebook runs green in the quick profile (its cells assert what must hold whatever the seed)."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from helpers.core import run
from helpers.core.env import REPO_ROOT

SOLUTIONS_DIR = REPO_ROOT / "solutions"
SOLUTIONS = sorted(SOLUTIONS_DIR.glob("[0-9][0-9]_solutions.ipynb"))
NEEDS_DATA = {"02", "03", "08"}  # these read the data mirror; 01 uses toy data only


def lesson_of(solution: Path) -> Path:
    return next((REPO_ROOT / "notebooks").glob(f"{solution.name[:2]}_*.ipynb"))


def exercise_numbers(lesson: Path) -> list[int]:
    nb = nbformat.read(lesson, as_version=4)
    text = next(c.source for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("## Exercises"))
    return [int(n) for n in re.findall(r"^(\d+)\. ", text, flags=re.M)]


def test_solutions_exist_for_01_02_03_08():
    assert {p.name[:2] for p in SOLUTIONS} >= {"01", "02", "03", "08"}, f"found {[p.name for p in SOLUTIONS]}"


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_solution_is_linked_and_covers_every_exercise(path):
    lesson = nbformat.read(lesson_of(path), as_version=4)
    exercises = next(
        c.source for c in lesson.cells if c.cell_type == "markdown" and c.source.startswith("## Exercises")
    )
    assert f"../solutions/{path.name}" in exercises, f"{lesson_of(path).name}'s exercises do not link {path.name}"
    nb = nbformat.read(path, as_version=4)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and 'profile = "auto"' in params[0].source
    headings = {
        int(m.group(1)): c.source
        for c in nb.cells
        if c.cell_type == "markdown"
        for m in [re.match(r"## Exercises? (\d+)", c.source)]
        if m
    }
    assert sorted(headings) == exercise_numbers(lesson_of(path)), "one solution section per exercise of the lesson"
    for number, text in headings.items():
        assert "What to expect" in text, f"exercise {number}: no 'What to expect' beside the solution"


@pytest.mark.notebooks
@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_solution_runs_quick(path, tmp_path, request):
    pytest.importorskip("papermill")
    if path.name[:2] in NEEDS_DATA:
        request.getfixturevalue("mirror")  # skips, saying why, where no data mirror is set
    # the course's runner: papermill in a child process, from the notebook's folder, a kernel that never started
    # tried once more
    result = run.run_notebook(path, tmp_path, "quick", timeout_s=900)
    executed = nbformat.read(tmp_path / path.name, as_version=4)
    errors = [
        o
        for c in executed.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert not errors, f"{path.name}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
    assert result.status == "ok", f"{path.name}: {result.error}"
    ran = "\n".join(
        o.get("text", "")
        for c in executed.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "stream"
    )
    assert "solutions notebook ran in" in ran and "(quick)" in ran, "the last cell did not run in the quick profile"
