"""The headless runner on tiny notebooks written by the test."""
import json

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from helpers.core import run


def _notebook(path, body):
    params = new_code_cell('profile = "quick"\nseed = 0')
    params.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[params, new_code_cell(body)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_runner_keeps_going_after_a_failure_and_summarises(tmp_path, monkeypatch):
    books = tmp_path / "notebooks"
    books.mkdir()
    _notebook(books / "01_fails.ipynb", 'raise FileNotFoundError("no data here: set COURSE_DATA_DIR")')
    _notebook(books / "02_works.ipynb",
              'import helpers\nassert profile == "full"\nhelpers.record_results("02_works", {"test_accuracy": 0.75}, profile=profile)')
    (books / "notes.ipynb").write_text("{}")  # not numbered: not part of the course
    monkeypatch.setattr(run, "NOTEBOOK_DIR", books)
    out = tmp_path / "out"
    code = run.main(["--profile", "full", "--out", str(out)])
    assert code == 1
    summary = json.loads((out / "summary.json").read_text())
    status = {nb["notebook"]: nb for nb in summary["notebooks"]}
    assert list(status) == ["01_fails", "02_works"]
    assert status["01_fails"]["status"] == "failed"
    assert status["01_fails"]["error"] == "FileNotFoundError: no data here: set COURSE_DATA_DIR"
    assert status["02_works"]["status"] == "ok" and status["02_works"]["metrics"] == {"test_accuracy": 0.75}
    assert status["02_works"]["peak_rss_mb"] > 10 and status["02_works"]["wall_time_s"] > 0
    assert (out / "02_works.ipynb").exists() and "❌ failed" in (out / "summary.md").read_text()


def test_only_selects_by_prefix(tmp_path):
    for name in ("00_a", "01_b", "02_c"):
        _notebook(tmp_path / f"{name}.ipynb", "pass")
    assert [p.stem for p in run.discover(["00", "02"], tmp_path)] == ["00_a", "02_c"]


def test_publish_requires_full_profile(capsys):
    import pytest

    with pytest.raises(SystemExit):
        run.main(["--profile", "quick", "--publish"])
    assert "--publish only makes sense" in capsys.readouterr().err
