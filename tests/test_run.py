"""The headless runner on tiny notebooks written by the test."""

import json
from pathlib import Path

import nbformat
import pytest
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
    _notebook(
        books / "02_works.ipynb",
        'import helpers\nassert profile == "full"\n'
        'helpers.record_results("02_works", {"test_accuracy": 0.75}, profile=profile)',
    )
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

    with pytest.raises(SystemExit):
        run.main(["--profile", "quick", "--publish"])
    assert "--publish only makes sense" in capsys.readouterr().err


def test_out_inside_committed_folders_or_unwritable_is_refused(tmp_path, capsys):
    import os
    from pathlib import Path

    from helpers.core.env import REPO_ROOT

    before = {p: p.stat().st_mtime_ns for p in (REPO_ROOT / "notebooks").glob("*.ipynb")}
    for out in (
        REPO_ROOT,
        REPO_ROOT / "notebooks",
        REPO_ROOT / "results" / "sub",
        REPO_ROOT / "helpers",
        REPO_ROOT / "tests",
        Path(os.path.relpath(REPO_ROOT / "notebooks")),
    ):
        assert run.main(["--out", str(out), "--only", "00"]) == 2, out
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("error: --out") and "overwrite committed" in err
    assert not (REPO_ROOT / "results" / "sub").exists()
    assert {p: p.stat().st_mtime_ns for p in (REPO_ROOT / "notebooks").glob("*.ipynb")} == before
    a_file = tmp_path / "a_file"
    a_file.write_text("mine")
    assert run.main(["--out", str(a_file), "--only", "00"]) == 2
    assert "is a file" in capsys.readouterr().err and a_file.read_text() == "mine"
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root writes anywhere: a folder under /proc stands in for read-only
            locked = Path("/proc/course-run-out")
        assert run.main(["--out", str(locked / "run"), "--only", "00"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "cannot be written" in err
    finally:
        (tmp_path / "locked").chmod(0o700)
    # build/ is git-ignored: allowed (checked without running anything)
    assert run.check_out_dir(REPO_ROOT / "build" / "test-out-allowed") == ""
    (REPO_ROOT / "build" / "test-out-allowed").rmdir()


def test_stopping_a_run_takes_the_kernel_down_too(tmp_path):
    """A kernel lives in a session of its own (as jupyter_client starts it); stopping the run must stop it too."""
    import subprocess
    import sys
    import time

    import psutil

    from helpers.core.run import stop_process_tree

    pid_file = tmp_path / "kernel.pid"
    parent_code = (
        "import subprocess, sys, time\n"
        "k = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], start_new_session=True)\n"
        f"open({str(pid_file)!r}, 'w').write(str(k.pid))\n"
        "time.sleep(600)\n"
    )
    papermill = subprocess.Popen([sys.executable, "-c", parent_code])
    for _ in range(100):
        if pid_file.exists() and pid_file.read_text():
            break
        time.sleep(0.1)
    kernel = psutil.Process(int(pid_file.read_text()))
    assert kernel.is_running() and kernel.pid != papermill.pid
    stop_process_tree(papermill, grace_s=5)
    assert papermill.wait(timeout=10) is not None
    kernel_gone = not kernel.is_running() or kernel.status() == psutil.STATUS_ZOMBIE
    assert kernel_gone, "the kernel outlived the stopped run"


def test_jobs_runs_notebooks_side_by_side_and_keeps_their_order(tmp_path, monkeypatch):
    """--jobs 2: two notebooks whose cells overlap in time; the summary lists them in notebook order and its elapsed
    time is shorter than the sum of the notebooks' times."""
    books = tmp_path / "notebooks"
    books.mkdir()
    stamps = tmp_path / "stamps"
    stamps.mkdir()
    for name in ("01_a", "02_b"):
        _notebook(
            books / f"{name}.ipynb",
            f"import time, pathlib\nt0 = time.time()\ntime.sleep(4)\n"
            f"pathlib.Path({str(stamps / name)!r}).write_text(f'{{t0}} {{time.time()}}')",
        )
    monkeypatch.setattr(run, "NOTEBOOK_DIR", books)
    out = tmp_path / "out"
    assert run.main(["--profile", "quick", "--out", str(out), "--jobs", "2"]) == 0
    (a0, a1), (b0, b1) = ([float(x) for x in (stamps / n).read_text().split()] for n in ("01_a", "02_b"))
    assert a0 < b1 and b0 < a1, "the two notebooks did not run at the same time"
    summary = json.loads((out / "summary.json").read_text())
    assert [nb["notebook"] for nb in summary["notebooks"]] == ["01_a", "02_b"] and summary["jobs"] == 2
    assert summary["elapsed_s"] < summary["total_wall_time_s"]
    assert "2 notebooks at a time" in (out / "summary.md").read_text()
    # the two kernels' memory added up, sampled while both ran: more than either alone
    assert summary["peak_total_rss_mb"] > max(nb["peak_rss_mb"] for nb in summary["notebooks"])


def test_jobs_must_be_positive(capsys):

    with pytest.raises(SystemExit):
        run.main(["--jobs", "0"])
    assert "--jobs must be at least 1" in capsys.readouterr().err


def test_an_interrupted_parallel_run_stops_every_running_notebook():
    """Ctrl-C or SIGTERM while two notebooks run: both process trees stop, not only the one in the main thread."""
    import subprocess
    import sys

    procs = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"]) for _ in range(2)]
    with run._LIVE_LOCK:
        run._LIVE.update(procs)
    try:
        run.stop_all_running()
        assert all(p.wait(timeout=15) is not None for p in procs)
    finally:
        with run._LIVE_LOCK:
            run._LIVE.difference_update(procs)
        for p in procs:
            p.kill()


@pytest.mark.parametrize("jobs", [1, 2])
def test_ctrl_c_during_a_run_stops_the_running_kernels_and_starts_no_more(tmp_path, jobs):
    """``jobs`` notebooks running, the others waiting: Ctrl-C stops every running kernel and starts no other one."""
    import os
    import signal
    import threading
    import time

    import psutil

    pids = tmp_path / "pids"
    pids.mkdir()
    paths = []
    for name in ("01_a", "02_b", "03_c"):
        path = tmp_path / f"{name}.ipynb"
        _notebook(
            path,
            f"import os, pathlib, time\npathlib.Path({str(pids / name)!r}).write_text(str(os.getpid()))\n"
            "time.sleep(900)",
        )
        paths.append(path)

    started, interrupted_at = threading.Event(), []

    def interrupt_when_all_run():
        # wait for the kernels themselves, up to 300 s: in stop 23's CI run one kernel had not run its first cell
        # after the 60 s this test used to wait (the cause went with the CI machine; 40 runs here took 2-6 s), and a
        # failure now prints papermill's logs. The notebooks sleep far longer than this wait.
        deadline = time.perf_counter() + 300
        while time.perf_counter() < deadline:
            if len(list(pids.iterdir())) >= jobs:
                started.set()
                break
            time.sleep(0.1)
        interrupted_at.append(time.perf_counter())
        os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C sends (interrupt_main would not wake a blocked wait)

    # Python's own Ctrl-C handler for this test: a shell starts background jobs with SIGINT ignored (seen when the
    # test lane ran as `.ci/run &`), and then the signal would never arrive
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    threading.Thread(target=interrupt_when_all_run, daemon=True).start()
    try:
        with pytest.raises(KeyboardInterrupt):
            run.run_all(paths, tmp_path / "out", "quick", None, jobs=jobs)
    finally:
        signal.signal(signal.SIGINT, previous)
    stopped_after_s = time.perf_counter() - interrupted_at[0]
    logs = "\n".join(f"--- {log.name}\n{log.read_text()[-1500:]}" for log in sorted((tmp_path / "out").glob("*.log")))
    assert started.is_set(), f"{jobs} kernel(s) did not run their first cell within 300 s; papermill's logs:\n{logs}"
    assert stopped_after_s < 60, f"the run took {stopped_after_s:.0f} s to stop after Ctrl-C"
    assert sorted(p.name for p in pids.iterdir()) == ["01_a", "02_b"][:jobs]  # no waiting one started

    def gone(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    assert all(gone(int(p.read_text())) for p in pids.iterdir()), "a kernel outlived Ctrl-C"


def _flaky_kernel(tmp_path, monkeypatch, fails: int, how: str = "hang") -> Path:
    """A kernelspec ``flaky`` whose first ``fails`` starts never answer (``how="hang"``, as a kernel caught in the
    race of parallel start-ups does) or die at once (``"die"``); later ones start ipykernel. Every start is counted in
    the returned file."""
    import sys

    starts = tmp_path / "starts"
    launcher = tmp_path / "launch.py"
    launcher.write_text(
        "import pathlib, runpy, sys, time\n"
        f"starts = pathlib.Path({str(starts)!r})\n"
        "n = len(starts.read_text()) if starts.exists() else 0\n"
        "starts.write_text('x' * (n + 1))\n"
        f"if n < {fails}:\n"
        f"    {'time.sleep(600)' if how == 'hang' else 'sys.exit(1)'}\n"
        "sys.argv = ['ipykernel_launcher', *sys.argv[1:]]\n"
        "runpy.run_module('ipykernel_launcher', run_name='__main__')\n"
    )
    spec = tmp_path / "jupyter" / "kernels" / "flaky"
    spec.mkdir(parents=True)
    argv = [sys.executable, str(launcher), "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "flaky", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return starts


def _flaky_notebook(path: Path, body: str) -> Path:
    _notebook(path, body)
    nb = nbformat.read(path, as_version=4)
    nb.metadata["kernelspec"] = {"name": "flaky", "display_name": "flaky", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_a_kernel_that_died_starting_is_started_once_more(tmp_path, monkeypatch, capsys):
    """The kernel of the first try dies before it answers: nothing ran, so the runner starts it again and the notebook
    runs. (A kernel that never answers takes the same path: the next test.)"""
    starts = _flaky_kernel(tmp_path, monkeypatch, fails=1, how="die")
    book = _flaky_notebook(tmp_path / "01_a.ipynb", "print('the cell ran')")
    result = run.run_notebook(book, tmp_path / "out", "quick")
    assert result.status == "ok", result.error
    assert len(starts.read_text()) == 2
    assert "starting it once more" in capsys.readouterr().out
    log = (tmp_path / "out" / "01_a.log").read_text()
    assert "Kernel died before replying to kernel_info" in log and "second try" in log  # both tries in the log
    executed = nbformat.read(tmp_path / "out" / "01_a.ipynb", as_version=4)
    assert "the cell ran" in executed.cells[-1].outputs[0]["text"]


def test_a_kernel_that_never_answers_fails_after_two_tries(tmp_path, monkeypatch):
    """Both tries hang until papermill's start timeout: the notebook fails, naming its log, after one more try."""
    starts = _flaky_kernel(tmp_path, monkeypatch, fails=5, how="hang")
    book = _flaky_notebook(tmp_path / "01_a.ipynb", "print('the cell ran')")
    result = run.run_notebook(book, tmp_path / "out", "quick", start_timeout_s=2)
    assert result.status == "failed" and "01_a.log" in result.error
    assert len(starts.read_text()) == 2  # one more try, not a loop
    log = (tmp_path / "out" / "01_a.log").read_text()
    assert log.count(run.KERNEL_NOT_STARTED) == 2 and "Kernel didn't respond in 2 seconds" in log


def test_a_notebook_that_fails_in_a_cell_is_not_run_again(tmp_path, monkeypatch):
    """A retry is only for a kernel that ran nothing: a failing cell is the notebook's own fault and runs once."""
    starts = _flaky_kernel(tmp_path, monkeypatch, fails=0)
    book = _flaky_notebook(tmp_path / "01_a.ipynb", "raise ValueError('a real failure')")
    result = run.run_notebook(book, tmp_path / "out", "quick", start_timeout_s=30)
    assert result.status == "failed" and "a real failure" in result.error
    assert len(starts.read_text()) == 1


def _fake_runs(monkeypatch, seconds=0.4):
    """run_notebook replaced by a sleep that records when each notebook ran."""
    import threading
    import time

    spans, lock = {}, threading.Lock()

    def fake(path, out_dir, profile, timeout_s=None):
        t0 = time.perf_counter()
        time.sleep(seconds)
        with lock:
            spans[path.stem] = (t0, time.perf_counter())
        return run.NotebookRun(path.stem, "ok", seconds, 1.0)

    monkeypatch.setattr(run, "run_notebook", fake)
    return spans


def _overlap(a, b):
    return a[0] < b[1] and b[0] < a[1]


def test_a_memory_budget_keeps_large_notebooks_apart(tmp_path, monkeypatch):
    spans = _fake_runs(monkeypatch)
    paths = [tmp_path / f"{n}.ipynb" for n in ("01_big", "02_large", "03_small", "04_unknown", "05_small")]
    peaks = {"01_big": 3000, "02_large": 2000, "03_small": 500, "05_small": 400}
    (tmp_path / "out").mkdir()
    (tmp_path / "out2").mkdir()
    runs = run.run_all(paths, tmp_path / "out", "quick", None, jobs=2, memory_mb=4000, expected_mb=peaks)
    assert [r.notebook for r in runs] == [p.stem for p in paths]  # results in notebook order
    assert not _overlap(spans["01_big"], spans["02_large"])  # 3000 + 2000 > 4000
    assert _overlap(spans["01_big"], spans["03_small"])  # 3000 + 500 fits: the small one goes ahead of 02
    assert not any(_overlap(spans["04_unknown"], spans[n]) for n in peaks)  # no estimate: alone
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["memory_budget_mb"] == 4000 and "peak_total_rss_mb" in summary
    # without a budget, two at a time whatever their size
    spans.clear()
    run.run_all(paths[:2], tmp_path / "out2", "quick", None, jobs=2)
    assert _overlap(spans["01_big"], spans["02_large"])


def test_expected_peaks_come_from_the_benchmark_report(tmp_path):
    report = tmp_path / "course_quick.json"
    report.write_text(json.dumps({"notebooks": [{"notebook": "03_x", "peak_rss_mb": 3283.6}]}))
    assert run.expected_peaks_mb("quick", report, margin=0) == {"03_x": 3283.6}
    assert run.expected_peaks_mb("quick", report) == {"03_x": pytest.approx(3283.6 * (1 + run.PEAK_MARGIN))}
    assert run.PEAK_MARGIN >= 0.05  # the spread seen between runs of one commit
    assert run.expected_peaks_mb("full", report) == {}  # measured in quick only
    report.write_text("{not json")
    assert run.expected_peaks_mb("quick", report) == {}  # then every notebook runs alone
    assert run.expected_peaks_mb("quick", tmp_path / "missing.json") == {}
    committed = run.expected_peaks_mb("quick")
    assert set(committed) == {p.stem for p in run.discover()}, "benchmarks/results/course_quick.json is out of date"


def test_memory_budget_must_be_positive(capsys):
    with pytest.raises(SystemExit):
        run.main(["--memory-mb", "0"])
    assert "--memory-mb must be positive" in capsys.readouterr().err
