"""What is committed under notebooks/ is what a student opens: it runs the profile its parameters cell names, says
which run produced its outputs, carries one identical Colab setup cell, and holds no path of the build machine."""

import json
import re

import nbformat
import pytest

from helpers.core import run
from helpers.core.env import REPO_ROOT, resolve_profile

NOTEBOOKS = run.discover()
MACHINE_PATH = re.compile(r"(?<![\w.])(/work/|/home/|/root/|/tmp/|/Users/|[A-Za-z]:\\\\)")


def _strings(value, where=""):
    """Every string in a notebook's JSON with where it sits (cells, outputs, metadata)."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, f"{where}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{where}/{key}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_no_machine_path_in_a_committed_notebook(path):
    raw = json.loads(path.read_text(encoding="utf-8"))
    found = [
        (where, text[max(0, m.start() - 40) : m.end() + 40])
        for where, text in _strings(raw)
        for m in [MACHINE_PATH.search(text)]
        if m
    ]
    assert not found, f"absolute paths of the build machine: {found[:5]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_run_all_runs_the_parameters_cell(path):
    nb = nbformat.read(path, as_version=4)
    assert not [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])], "papermill's injected cell"
    params = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    assert re.search(r'^profile = "auto"', nb.cells[params[0]].source, re.M)
    # the first code cell after the parameters resolves "auto" before anything reads the profile
    after = next(c for c in nb.cells[params[0] + 1 :] if c.cell_type == "code")
    lines = [line for line in after.source.splitlines() if "profile" in line and not line.lstrip().startswith("#")]
    assert "resolve_profile" in lines[0] and lines[1].startswith("profile = resolve_profile(profile)"), lines[:2]
    assert "papermill" not in nb.metadata or not {"input_path", "output_path"} & set(nb.metadata.papermill)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_the_note_names_the_published_run(path):
    nb = nbformat.read(path, as_version=4)
    course = nb.metadata["course"]
    result = json.loads((REPO_ROOT / "results" / f"{path.stem}.json").read_text(encoding="utf-8"))
    assert course == {k: result[k] for k in ("profile", "hardware", "date", "wall_time_s")}
    notes = [i for i, c in enumerate(nb.cells) if run.RUN_NOTE_TAG in c.metadata.get("tags", [])]
    assert notes and notes[0] <= 2, "the note sits near the top"
    note = nb.cells[notes[0]]
    assert note.cell_type == "markdown" and note.source == run.run_note_source(course)
    assert course["hardware"] in note.source and course["date"] in note.source and "프로필" in note.source


def test_one_identical_colab_cell_everywhere():
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        cells = [c for c in nb.cells if run.COLAB_SETUP_TAG in c.metadata.get("tags", [])]
        assert len(cells) == 1, path.name
        assert cells[0].source == run.COLAB_SETUP_SOURCE, (
            f"{path.name}: the Colab cell differs from run.COLAB_SETUP_SOURCE"
        )
        assert not cells[0].outputs
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code[0] is cells[0], f"{path.name}: the Colab cell is the first code cell"
        assert not any("pip install" in c.source and "-e" in c.source.split() for c in code), "an editable install"


def test_resolve_profile(capsys, monkeypatch):
    import torch

    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    assert resolve_profile("quick") == "quick" and resolve_profile("full") == "full"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_profile("auto") == "quick"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_profile("auto") == "full"
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("profile: full") and len(out) == 4
    for bad in ("fast", "", None, 1):
        with pytest.raises(ValueError, match="profile must be"):
            resolve_profile(bad)


def test_course_profile_decides_what_auto_means(capsys, monkeypatch):
    """The nbval lane sets COURSE_PROFILE=quick: "auto" then runs quick on a GPU too; explicit profiles still win."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("COURSE_PROFILE", "quick")
    assert resolve_profile("auto") == "quick" and resolve_profile("full") == "full"
    assert capsys.readouterr().out.splitlines()[0] == "profile: quick (auto: COURSE_PROFILE=quick in the environment)"
    monkeypatch.setenv("COURSE_PROFILE", " Full ")
    assert resolve_profile("auto", verbose=False) == "full"
    monkeypatch.setenv("COURSE_PROFILE", "fast")
    with pytest.raises(ValueError, match="COURSE_PROFILE must be"):
        resolve_profile("auto")
    assert resolve_profile("quick", verbose=False) == "quick"
