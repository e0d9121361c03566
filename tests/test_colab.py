"""The Colab setup cell in a simulated Colab: a fresh kernel whose start-up imports a stub ``google.colab``, a working
directory outside the repository, the course cloned from a local clone (``COURSE_REPO_URL``), pip answered from the
local environment (``PIP_NO_INDEX``: the requirements are already installed, so pip runs for real and fetches
nothing). The setup cell and notebook 00's first cells run through a real Jupyter kernel (nbclient); ``helpers``
must come from the fresh clone, without a restart, and a data loader must work."""

import json
import os
import subprocess
import sys

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

from helpers.core import run
from helpers.core.env import REPO_ROOT


def _git(*args, cwd=None):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def colab(tmp_path, monkeypatch):
    """A Colab-like world: stub module, IPython start-up that imports it, a local clone to fetch from, /content."""
    stub = tmp_path / "stub" / "google" / "colab"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text('"""Stand-in for Colab\'s google.colab (tests only)."""\nSTUB = True\n')
    startup = tmp_path / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-colab.py").write_text("import google.colab  # Colab's kernel has it imported from the start\n")
    origin = tmp_path / "origin"
    _git("clone", "-q", str(REPO_ROOT), str(origin))  # what is committed, not the working tree
    content = tmp_path / "content"
    content.mkdir()
    ref = _git("rev-parse", "--abbrev-ref", "HEAD", cwd=origin)
    if ref == "HEAD":  # a detached checkout, as many CI systems make: `git clone --branch` needs a name to clone
        ref = "course-under-test"
        _git("checkout", "-q", "-b", ref, cwd=origin)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "stub"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("COURSE_REPO_URL", origin.as_uri())
    monkeypatch.setenv("COURSE_REPO_REF", ref)
    monkeypatch.setenv("COURSE_DIR", str(content / "emotion-course"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # nothing from the network: every requirement is satisfied locally
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    monkeypatch.setenv("COURSE_SKIP_APT", "1")  # never apt-get on the test machine
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    return {
        "content": content,
        "clone": content / "emotion-course",
        "origin": origin,
        "head": _git("rev-parse", "HEAD", cwd=origin),
    }


def _outputs(cell):
    text = []
    for out in cell.outputs:
        if out.output_type == "stream":
            text.append(out.text)
        elif out.output_type in ("execute_result", "display_data"):
            text.append(out.get("data", {}).get("text/plain", ""))
    return "".join(text)


@pytest.mark.slow  # a real Jupyter kernel: 87 s under load; make test only
def test_colab_setup_cell_in_a_fresh_kernel(colab):
    if not os.environ.get("COURSE_DATA_DIR"):
        pytest.fail("set COURSE_DATA_DIR to the data mirror: the test loads a data set the way a student does")
    source = nbformat.read(REPO_ROOT / "notebooks" / "00_setup_and_data.ipynb", as_version=4)
    code = [c for c in source.cells if c.cell_type == "code"]
    assert run.COLAB_SETUP_TAG in code[0].metadata["tags"]
    upto = next(i for i, c in enumerate(code) if "load_emotion_en" in c.source)  # notebook 00's first data loader
    cells = [new_code_cell(c.source) for c in code[: upto + 1]]
    cells.append(new_code_cell(code[0].source))  # run again: idempotent
    cells.append(
        new_code_cell(
            "import json, os, sys, helpers\n"
            "print(json.dumps({'helpers': helpers.__file__, 'cwd': os.getcwd(), 'colab': helpers.in_colab(),\n"
            "                  'clones_on_path': sys.path.count(str(course_dir)), 'profile': profile,\n"
            "                  'emotion_en_rows': sum(len(f) for f in data.load_emotion_en().values())}))"
        )
    )
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(colab["content"])}}
    ).execute()
    first = _outputs(nb.cells[0])
    assert f"course: {colab['clone']}" in first and "working directory" in first
    assert "Okt" in first  # Java found, or the line that says Okt cannot start
    assert (colab["clone"] / ".git").is_dir() and _git("rev-parse", "HEAD", cwd=colab["clone"]) == colab["head"]
    stamp = colab["clone"] / ".git" / "colab-installed.txt"
    assert stamp.read_text() == (colab["clone"] / "requirements-colab.txt").read_text(), "pip ran and was recorded"
    assert "profile: quick (auto: no CUDA GPU" in _outputs(nb.cells[2])  # "Run all" without a GPU: quick
    assert "course:" in _outputs(nb.cells[-2])  # the rerun printed its line and raised nothing
    report = json.loads(_outputs(nb.cells[-1]).strip().splitlines()[-1])
    assert report["helpers"].startswith(str(colab["clone"] / "helpers")), report
    assert report["cwd"] == str(colab["clone"] / "notebooks") and report["colab"] is True
    assert report["clones_on_path"] == 1 and report["profile"] == "quick"
    assert report["emotion_en_rows"] == 20_000


def test_colab_cell_does_nothing_outside_colab(tmp_path):
    """Outside Colab the cell neither clones, installs, nor changes directory (this is what nbval and papermill see)."""
    script = tmp_path / "cell.py"
    script.write_text(run.COLAB_SETUP_SOURCE + "\nprint('cwd', __import__('os').getcwd())\n")
    env = {k: v for k, v in os.environ.items() if k != "COLAB_RELEASE_TAG"}
    env["COURSE_DIR"] = str(tmp_path / "would-be-clone")
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"cwd {tmp_path}" and not (tmp_path / "would-be-clone").exists()
