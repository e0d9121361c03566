"""The notebook lane's checks (tests/nbval_lane.py) fail when a run goes wrong, on tiny notebooks run by nbval."""

import nbformat
import pytest

from helpers.core.env import REPO_ROOT

pytest_plugins = ["pytester"]

RECORD = "from helpers.core.results import record_results\nrecord_results({stem!r}, {{'accuracy': 0.5}}, profile=p)"
PROFILE = "from helpers.core.env import resolve_profile\np = resolve_profile('auto')"
NOTEBOOKS = {
    "good": [PROFILE, "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()", RECORD],
    "silent": [PROFILE, "x = 1"],  # never records its results
    "boom": [PROFILE, "raise ValueError('boom')", RECORD],
    "noplot": [PROFILE, "import matplotlib.pyplot as plt\nplt.close('all')", RECORD],  # draws, shows nothing
}


@pytest.mark.notebooks
def test_the_lane_checks_every_run(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    monkeypatch.setenv("COURSE_PROFILE", "full")  # the lane must override it with quick inside the kernel
    for stem, cells in NOTEBOOKS.items():
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c.format(stem=stem)) for c in cells])
        nbformat.write(nb, pytester.path / f"{stem}.ipynb")
    result = pytester.runpytest_subprocess(
        "-p",
        "tests.nbval_lane",
        "--nbval-lax",
        "--nbval-current-env",
        "-p",
        "no:cacheprovider",
        "-rA",
        *(f"{s}.ipynb" for s in NOTEBOOKS),
    )
    result.stdout.fnmatch_lines_random(
        [
            "PASSED good.ipynb::results",
            "FAILED silent.ipynb::results*",
            "FAILED boom.ipynb::results*",
            "FAILED noplot.ipynb::results*",
            "E * silent wrote no results*",
            "E * boom raised: cell 1: ValueError: boom",
            "E * noplot draws plots but its run showed none",
        ]
    )
    assert result.ret == 1
    assert not list(REPO_ROOT.glob("build/results-quick/good.json")), "the lane's results go to a session folder"
