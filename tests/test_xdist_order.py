"""make test's work order (tests/xdist_order.py): long scopes first, each solutions notebook a scope of its own."""

import subprocess
import sys

import pytest
from xdist_order import LongFirstQueue, priority, pytest_xdist_make_scheduler, scope_of

from helpers.core.env import REPO_ROOT


def test_scopes():
    assert scope_of("tests/test_solutions.py::test_solution_runs_quick[08_solutions]") == (
        "tests/test_solutions.py::test_solution_runs_quick[08_solutions]"
    )
    assert scope_of("tests/test_solutions.py::test_solutions_exist_for_01_02_03_08") == "tests/test_solutions.py"
    assert scope_of("notebooks/06_korean_roberta_kfold.ipynb::Cell 12") == "notebooks/06_korean_roberta_kfold.ipynb"
    assert scope_of("tests/test_run.py::TestX::test_y") == "tests/test_run.py::TestX"


def test_long_scopes_are_taken_first():
    queue = LongFirstQueue()
    counts = {
        "tests/test_metrics.py": 40,
        "notebooks/02_lstm_emotion_en.ipynb": 30,
        "tests/test_solutions.py::test_solution_runs_quick[01_solutions]": 1,
        "notebooks/06_korean_roberta_kfold.ipynb": 70,
        "tests/test_hub_standins.py": 3,
        "tests/test_robustness.py": 90,
    }
    for scope, n in counts.items():
        queue[scope] = {f"{scope}::item{i}": False for i in range(n)}
    order = [queue.popitem(last=False)[0] for _ in range(len(counts))]
    assert order == [
        "tests/test_solutions.py::test_solution_runs_quick[01_solutions]",
        "tests/test_hub_standins.py",
        "notebooks/06_korean_roberta_kfold.ipynb",
        "notebooks/02_lstm_emotion_en.ipynb",
        "tests/test_robustness.py",
        "tests/test_metrics.py",
    ]
    assert not queue
    assert priority("tests/test_metrics.py", 5) > priority("tests/test_metrics.py", 50)


@pytest.mark.slow  # starts two pytest workers (about 25 s): make test, not make unit
def test_make_tests_lane_uses_it(tmp_path):
    # two workers, --dist loadscope as in the Makefile: xdist names the scheduler it uses and the tests pass
    cmd = [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadscope", "-v", "-p", "no:cacheprovider"]
    cmd += ["tests/test_xdist_order.py::test_scopes", "tests/test_xdist_order.py::test_long_scopes_are_taken_first"]
    run = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "scheduling tests via LongFirstScheduling" in run.stdout


def test_other_modes_keep_xdists_scheduler():
    class Config:
        def getvalue(self, name):
            return {"dist": "load"}[name]

    assert pytest_xdist_make_scheduler(Config(), None) is None  # xdist falls back to its own
