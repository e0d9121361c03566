"""The committed notebooks' structure and published outputs (no notebook is executed here).

Executing them is the notebook lane's job: ``make test`` runs ``pytest tests notebooks --nbval-lax``, nbval executes
each committed notebook once in the quick profile and compares the outputs of the cells tagged
``nbval-check-output``; ``tests/nbval_lane.py`` then checks every run (no cell raised, results written with profile
quick and finite headline metrics, plots shown, ``results/`` untouched) and that notebook 01 gives the same numbers
twice."""

import nbformat
import pytest

from helpers.core import run

NOTEBOOKS = run.discover()


def test_the_course_has_notebooks():
    assert NOTEBOOKS, "no numbered notebooks found in notebooks/"
    assert NOTEBOOKS[0].name == "00_setup_and_data.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_structure(path):
    nb = nbformat.read(path, as_version=4)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "exactly one cell tagged 'parameters'"
    assert 'profile = "auto"' in params[0].source and "seed =" in params[0].source
    first = nb.cells[0].source
    assert nb.cells[0].cell_type == "markdown" and "colab-badge" in first and "| # |" in first, (
        "title, badge, goals table"
    )
    # the exercises are a markdown cell, or a code cell that renders them with the run's numbers (Markdown(f"..."))
    assert any(
        (c.cell_type == "markdown" and "Exercises" in c.source)
        or (c.cell_type == "code" and "## Exercises" in c.source)
        for c in nb.cells[-3:]
    ), "exercises at the end"
    assert any("record_results(" in c.source for c in nb.cells if c.cell_type == "code")
    assert any("nbval-check-output" in c.metadata.get("tags", []) for c in nb.cells), "at least one nbval-checked cell"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_published_notebook_carries_its_full_run(path):
    """The committed notebook shows the outputs of a full run: results, and the plots it draws."""
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert nb.metadata.get("course", {}).get("profile") == "full", (
        "publish with: python -m helpers.core.run --profile full --publish"
    )
    assert not any(o.get("output_type") == "error" for c in code for o in c.outputs)
    draws = any("plt." in c.source or "plot_" in c.source for c in code)
    images = sum(
        any(kind.startswith("image/") for kind in o.get("data", {})) for c in code for o in c.outputs
    )  # png or jpeg
    assert images or not draws, "the notebook draws plots but its outputs hold none"
    assert (path.parent.parent / "results" / f"{path.stem}.json").exists()


def _helpers_imports(path):
    """``(module, name)`` of every ``from helpers… import name`` in a notebook's code cells."""
    import ast

    found = set()
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        source = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("helpers"):
                found.update((node.module, alias.name) for alias in node.names)
    return found


SOLUTIONS = sorted((NOTEBOOKS[0].parent.parent / "solutions").glob("*.ipynb")) if NOTEBOOKS else []


@pytest.mark.parametrize("path", NOTEBOOKS + SOLUTIONS, ids=[p.stem for p in NOTEBOOKS + SOLUTIONS])
def test_every_helpers_import_of_a_notebook_resolves(path):
    """A helper renamed or moved (or a re-export dropped by a linter) fails here, not in a student's first cell."""
    import importlib

    missing = []
    for module, name in sorted(_helpers_imports(path)):
        owner = importlib.import_module(module)
        if not hasattr(owner, name):
            try:
                importlib.import_module(f"{module}.{name}")
            except ModuleNotFoundError:
                missing.append(f"from {module} import {name}")
    assert not missing, missing
