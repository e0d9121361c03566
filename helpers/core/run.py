"""Run the course's notebooks headless with papermill and summarise the run.

    python -m helpers.core.run [--profile quick|full] [--only 02 05] [--out DIR] [--jobs N] [--publish]

Each notebook runs in its own process (so one failure never stops the others, and its peak memory can be
measured), ``--jobs N`` of them at a time; the executed copies, ``summary.md`` and ``summary.json`` land in
``--out`` (never the repository root or a folder with committed files, such as ``notebooks/`` or ``results/``:
refused with exit code 2). The exit code is 1 when any notebook failed. ``--publish`` (``full`` profile only) copies
the executed notebooks back into ``notebooks/``, their results into ``results/`` and regenerates the README results
table.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import shutil
import signal
import site
import subprocess
import sys
import sysconfig
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

import nbformat
import psutil

from helpers.core.env import REPO_ROOT, hardware_summary
from helpers.core.results import PUBLISHED_DIR, RESULTS_ENV, load_results, update_readme

NOTEBOOK_DIR = REPO_ROOT / "notebooks"


@dataclass
class NotebookRun:
    notebook: str
    status: str  # "ok" or "failed"
    wall_time_s: float
    peak_rss_mb: float
    metrics: dict = field(default_factory=dict)
    error: str = ""


def discover(only: list[str] | None = None, folder: Path | None = None) -> list[Path]:
    """Numbered notebooks in order; ``only`` keeps those whose name starts with one of the given prefixes."""
    folder = folder or NOTEBOOK_DIR
    books = sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))
    if only:
        books = [p for p in books if any(p.name.startswith(prefix) for prefix in only)]
        if not books:
            raise SystemExit(f"no notebook in {folder} matches --only {' '.join(only)}")
    return books


def _tree_rss(pid: int) -> int:
    """Resident memory of process ``pid`` and all its children (papermill and its kernel), in bytes; 0 once gone."""
    try:
        root = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
    except psutil.Error:
        return 0


def _peak_rss(process: subprocess.Popen, stop: threading.Event, peak: list[float]) -> None:
    """Poll the resident memory of ``process`` and all its children (the kernel) until ``stop``."""
    while not stop.is_set():
        peak[0] = max(peak[0], _tree_rss(process.pid))
        stop.wait(0.25)


def _peak_total_rss(stop: threading.Event, peak: list[float]) -> None:
    """Poll the memory of every notebook running now, added up (what ``--jobs`` > 1 asks of the machine)."""
    while not stop.is_set():
        with _LIVE_LOCK:
            running = [process.pid for process in _LIVE]
        peak[0] = max(peak[0], sum(_tree_rss(pid) for pid in running))
        stop.wait(0.25)


#: Each notebook's peak memory in the quick profile, as the last ``python -m benchmarks.course_quick`` measured it
PEAKS_FILE = REPO_ROOT / "benchmarks" / "results" / "course_quick.json"


#: Head-room on each measured peak: the same notebook peaked up to 5 % higher on another run of the same commit
#: (notebook 03: 3,450 MB in a fresh clone on a busy host against 3,312 and 3,378 MB measured by the benchmark)
PEAK_MARGIN = 0.10


def expected_peaks_mb(profile: str, peaks_file: Path = PEAKS_FILE, margin: float = PEAK_MARGIN) -> dict[str, float]:
    """``{notebook: MB}`` for ``--memory-mb``: the benchmark's measured peaks in quick, plus ``margin`` (a share of
    each) for run-to-run spread; nothing known in full."""
    if profile != "quick" or not peaks_file.is_file():
        return {}
    try:
        report = json.loads(peaks_file.read_text(encoding="utf-8"))
        return {str(nb["notebook"]): float(nb["peak_rss_mb"]) * (1 + margin) for nb in report["notebooks"]}
    except (ValueError, KeyError, TypeError):
        return {}


def stop_process_tree(process: subprocess.Popen, grace_s: float = 10.0) -> None:
    """Terminate ``process`` and every process under it, then kill what is left after ``grace_s``.

    jupyter_client starts a kernel in a session of its own, so stopping papermill alone leaves the kernel running
    the notebook (seen: a killed run's kernel went on for an hour at 40 % of a core)."""
    try:
        root = psutil.Process(process.pid)
        procs = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()


_LIVE: set[subprocess.Popen] = set()  # papermill processes running now (several with --jobs)
_LIVE_LOCK = threading.Lock()


def stop_all_running() -> None:
    """Stop every notebook still running (and its kernel): the runner was interrupted or terminated."""
    with _LIVE_LOCK:
        running = list(_LIVE)
    for process in running:
        stop_process_tree(process)


def _terminated(signum, frame) -> None:
    """SIGTERM → SystemExit in the main thread, so ``run_notebook`` can stop its notebook before the runner ends."""
    raise SystemExit(128 + signum)


def first_error(executed: Path) -> str:
    """``ErrorName: message`` of the first failing cell of an executed notebook ('' when none)."""
    try:
        nb = nbformat.read(executed, as_version=4)
    except Exception as exc:  # the notebook was never written
        return f"could not read the executed notebook: {exc}"
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return f"{output.get('ename')}: {output.get('evalue')}"
    return ""


KERNEL_START_TIMEOUT_S = 60  # papermill's own default
KERNEL_NOT_STARTED = "Error occurred while starting new kernel client"  # nbclient's log line when no kernel answered


def kernel_never_started(executed: Path, log: Path) -> bool:
    """True when papermill failed before its kernel ran any cell: the kernel did not answer in time, or died starting.

    Kernels started side by side sometimes never answer (a known race of parallel start-ups: papermill issues 239
    and 776); nothing of the notebook ran, so starting it again is safe."""
    if KERNEL_NOT_STARTED not in log.read_text(encoding="utf-8", errors="replace"):
        return False
    try:
        nb = nbformat.read(executed, as_version=4)
    except Exception:  # no executed copy, or a half-written one: nothing can have run
        return True
    return all(cell.get("execution_count") is None for cell in nb.cells if cell.cell_type == "code")


def _papermill(cmd: list[str], env: dict[str, str], log_file: IO[str], peak: list[float]) -> int:
    """One papermill process, its peak memory sampled into ``peak``; stopped with its kernel when interrupted."""
    stop = threading.Event()
    process = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT)
    with _LIVE_LOCK:
        _LIVE.add(process)
    watcher = threading.Thread(target=_peak_rss, args=(process, stop, peak), daemon=True)
    watcher.start()
    try:
        return process.wait()
    except BaseException:  # Ctrl-C or the runner terminated (see main): take papermill's kernel down too
        stop_process_tree(process)
        raise
    finally:
        with _LIVE_LOCK:
            _LIVE.discard(process)
        stop.set()
        watcher.join()


def run_notebook(
    path: Path,
    out_dir: Path,
    profile: str,
    timeout_s: int | None = None,
    start_timeout_s: int = KERNEL_START_TIMEOUT_S,
) -> NotebookRun:
    """Execute one notebook with papermill in a child process and measure wall time and peak memory.

    A kernel that never starts (see :func:`kernel_never_started`) is started once more; the log keeps both tries."""
    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / path.name
    log = out_dir / f"{path.stem}.log"
    env = {
        **os.environ,
        RESULTS_ENV: str(out_dir / "results"),
        # inline plots in the executed notebooks (a plain "Agg" from the caller would leave them out)
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "PYTHONUNBUFFERED": "1",
    }
    cmd = [
        sys.executable,
        "-m",
        "papermill",
        str(path),
        str(executed),
        "-p",
        "profile",
        profile,
        "--cwd",
        str(path.parent),
        "--log-output",
        "--no-progress-bar",
        "--start-timeout",
        str(start_timeout_s),
    ]
    if timeout_s:
        cmd += ["--execution-timeout", str(timeout_s)]
    start = time.perf_counter()
    peak = [0.0]
    with open(log, "w", encoding="utf-8") as log_file:
        code = _papermill(cmd, env, log_file, peak)
        if code > 0 and kernel_never_started(executed, log):  # < 0: stopped by a signal (Ctrl-C), not retried
            print(f"  {path.stem}: its kernel did not start (see {log.name}); starting it once more", flush=True)
            log_file.write("\n--- the kernel did not start; second try ---\n")
            log_file.flush()
            code = _papermill(cmd, env, log_file, peak)
    wall = time.perf_counter() - start
    error = first_error(executed) if code else ""
    if code and not error:
        error = f"papermill exited with {code}; see {log}"
    result_file = out_dir / "results" / f"{path.stem}.json"
    metrics = {}
    if result_file.exists():
        payload = json.loads(result_file.read_text(encoding="utf-8"))
        payload["wall_time_s"] = round(wall, 1)  # the runner's clock includes kernel start-up
        result_file.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        metrics = {k: payload["metrics"][k] for k in payload.get("headline", [])}
    return NotebookRun(path.stem, "failed" if code else "ok", round(wall, 1), round(peak[0] / 2**20, 1), metrics, error)


def write_summary(
    runs: list[NotebookRun],
    out_dir: Path,
    profile: str,
    jobs: int = 1,
    elapsed_s: float | None = None,
    memory: dict | None = None,
) -> None:
    """``summary.json`` and ``summary.md`` of a run. ``total_wall_time_s`` is the sum of the notebooks' times (what
    one after another takes); ``elapsed_s`` is the clock time of the whole run, shorter with ``jobs`` > 1;
    ``memory`` holds ``memory_budget_mb`` and ``peak_total_rss_mb`` (the running notebooks' memory added up)."""
    total = sum(r.wall_time_s for r in runs)
    elapsed = total if elapsed_s is None else elapsed_s
    payload = {
        "profile": profile,
        "hardware": hardware_summary(),
        "jobs": jobs,
        "total_wall_time_s": round(total, 1),
        "elapsed_s": round(elapsed, 1),
        "peak_rss_mb": max((r.peak_rss_mb for r in runs), default=0.0),
        **(memory or {}),
        "notebooks": [asdict(r) for r in runs],
    }
    (out_dir / "summary.json").write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    lines = [
        f"# Course run: profile `{profile}`",
        "",
        f"Machine: {payload['hardware']}. Total wall time {total / 60:.1f} min"
        + (f" of notebook time, {elapsed / 60:.1f} min elapsed with {jobs} notebooks at a time." if jobs > 1 else ".")
        + (
            f" Running notebooks together used at most {payload['peak_total_rss_mb']:.0f} MB"
            + (f" (budget {payload['memory_budget_mb']:.0f} MB)." if payload.get("memory_budget_mb") else ".")
            if payload.get("peak_total_rss_mb")
            else ""
        ),
        "",
        "| notebook | status | wall time (s) | peak memory (MB) | headline metrics | error |",
        "|---|---|---|---|---|---|",
    ]
    for r in runs:
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in r.metrics.items())
        error = r.error.replace("|", "\\|").replace("\n", " ")[:300]
        lines.append(
            f"| {r.notebook} | {'✅ ok' if r.status == 'ok' else '❌ failed'} | {r.wall_time_s} | {r.peak_rss_mb} | "
            f"{metrics} | {error} |"
        )
    (out_dir / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------- what a published notebook looks like

COLAB_SETUP_TAG = "colab-setup"
RUN_NOTE_TAG = "published-run-note"
COURSE_REPO_URL = "https://github.com/emotion-course/emotion-course"

#: The first code cell of every notebook (identical everywhere; tests/test_colab.py runs it in a simulated Colab).
COLAB_SETUP_SOURCE = f"""\
# Colab setup (does nothing outside Colab): fetch the course, make `helpers` importable without a restart, install
# what Colab lacks (Colab's own torch with CUDA is kept) and a Java runtime for the Okt tokenizer. Safe to run again.
import os
import sys

if "google.colab" in sys.modules:
    import importlib
    import shutil
    import subprocess
    from pathlib import Path

    COURSE_REPO_URL = os.environ.get("COURSE_REPO_URL", "{COURSE_REPO_URL}")
    COURSE_REPO_REF = os.environ.get("COURSE_REPO_REF", "main")  # a branch or a tag
    course_dir = Path(os.environ.get("COURSE_DIR", "/content/emotion-course"))
    if (course_dir / ".git").is_dir():  # a rerun: bring the clone up to date, keep going if offline
        subprocess.run(["git", "-C", str(course_dir), "pull", "-q", "--ff-only"], check=False)
    else:
        subprocess.run(["git", "clone", "-q", "--depth", "1", "--branch", COURSE_REPO_REF, COURSE_REPO_URL,
                        str(course_dir)], check=True)
    if str(course_dir) not in sys.path:
        sys.path.insert(0, str(course_dir))  # `import helpers` from the clone: no install, no restart
    os.chdir(course_dir / "notebooks")  # relative paths (../models, ../results) as in the repository
    requirements = course_dir / "requirements-colab.txt"
    stamp = course_dir / ".git" / "colab-installed.txt"  # what was installed last time: skip pip when unchanged
    if os.environ.get("COURSE_SKIP_PIP") == "1":
        print("pip install skipped (COURSE_SKIP_PIP=1)")
    elif not stamp.exists() or stamp.read_text() != requirements.read_text():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-r", str(requirements)], check=True)
        stamp.write_text(requirements.read_text())
        importlib.invalidate_caches()  # packages installed just now become importable in this kernel
    if shutil.which("java") is None and shutil.which("apt-get") and os.environ.get("COURSE_SKIP_APT") != "1":
        jdk = ["apt-get", "install", "-y", "-qq", "openjdk-17-jre-headless"]
        if subprocess.run(jdk, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True)
            subprocess.run(jdk, capture_output=True)
    java_ok = shutil.which("java") is not None and subprocess.run(["java", "-version"], capture_output=True).returncode == 0
    print(f"course: {{course_dir}} ({{COURSE_REPO_REF}}), working directory {{Path.cwd()}}; "
          + ("Java found, the Okt tokenizer works" if java_ok
             else "no Java runtime: the Okt tokenizer cannot start (notebook 03: drop \\"okt\\" from tokenizer_names)"))"""  # noqa: E501 (notebooks' first cell must equal this text; tests/test_published.py)


def format_duration(seconds: float) -> str:
    """``33 s``, ``15 min``, ``1 h 5 min``: a wall time as a reader says it."""
    seconds = float(seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def run_note_source(course: dict) -> str:
    """The markdown line near the top of a published notebook, from its ``metadata.course``."""
    when = f"{course.get('hardware', 'an unrecorded machine')}, {course.get('date', 'an unrecorded date')}"
    took = format_duration(course["wall_time_s"]) if course.get("wall_time_s") is not None else "wall time not recorded"
    profile = course.get("profile", "full")
    return (
        f'*The outputs shown are from the `{profile}` profile run on {when}, {took}; "Run all" runs the profile '
        f'in the parameters cell (`"auto"`: `full` on a CUDA GPU, `quick` otherwise).*  \n'
        f"*아래 출력은 {course.get('date', '기록되지 않은 날짜')}에 {course.get('hardware', '기록되지 않은 기기')}에서 "
        f'`{profile}` 프로필로 실행한 결과입니다(실행 시간 {took}). "모두 실행"(Run all)은 매개변수 셀에 적힌 '
        f"프로필로 실행합니다.*"
    )


def _machine_prefixes(out_dir: Path | None) -> list[tuple[str, str]]:
    """(absolute prefix, replacement) pairs, longest first: the run folder, site-packages, the repository, home."""
    pairs = []
    if out_dir is not None:
        out_dir = Path(out_dir)
        pairs.append((str(out_dir / "results") + os.sep, "results/"))  # publish copies the results there
        try:
            pairs.append((str(out_dir) + os.sep, out_dir.resolve().relative_to(REPO_ROOT).as_posix() + "/"))
        except ValueError:
            pairs.append((str(out_dir) + os.sep, ""))
    packages = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *site.getsitepackages()}
    pairs += [(p.rstrip(os.sep) + os.sep, "site-packages/") for p in packages if p]
    pairs.append((str(REPO_ROOT) + os.sep, ""))
    pairs.append((str(REPO_ROOT), "."))
    pairs.append((str(Path.home()) + os.sep, "~/"))
    return sorted(pairs, key=lambda pair: -len(pair[0]))


def strip_machine_paths(text: str, out_dir: Path | None = None) -> str:
    """``text`` with this machine's absolute paths (run folder, site-packages, repository, home) made relative."""
    for prefix, replacement in _machine_prefixes(out_dir):
        if prefix in text:
            text = text.replace(prefix, replacement)
    return text


def _strip_in(value, out_dir: Path | None):
    if isinstance(value, str):
        return strip_machine_paths(value, out_dir)
    if isinstance(value, list):
        return [_strip_in(v, out_dir) for v in value]
    if isinstance(value, dict):
        return type(value)({k: _strip_in(v, out_dir) for k, v in value.items()})  # keeps a NotebookNode one
    return value


def prepare_published(nb, result: dict | None, out_dir: Path | None = None):
    """Turn an executed notebook into what is committed (in place; returns ``nb``).

    Drops papermill's injected-parameters cell (the parameters cell is what "Run all" uses), records the run's
    profile, hardware, date and wall time in ``metadata.course`` and writes them into the note near the top
    (a markdown cell tagged ``published-run-note``), drops papermill's machine paths (``input_path``,
    ``output_path``) and makes every absolute path of this machine in outputs and metadata relative.
    """
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    papermill = nb.metadata.get("papermill")
    if papermill is not None:
        for key in ("input_path", "output_path"):
            papermill.pop(key, None)
    if result:
        nb.metadata["course"] = {key: result.get(key) for key in ("profile", "hardware", "date", "wall_time_s")}
    course = nb.metadata.get("course")
    if course:
        notes = [c for c in nb.cells if RUN_NOTE_TAG in c.metadata.get("tags", [])]
        if notes:
            notes[0].source = run_note_source(course)
        else:
            cell = nbformat.v4.new_markdown_cell(run_note_source(course))
            cell.metadata["tags"] = [RUN_NOTE_TAG]
            if nb.nbformat_minor < 5:  # cell ids exist from nbformat 4.5 on
                cell.pop("id", None)
            nb.cells.insert(1, cell)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [_strip_in(o, out_dir) for o in cell.outputs]
    nb.metadata = _strip_in(nb.metadata, out_dir)
    return nb


def publish(runs: list[NotebookRun], out_dir: Path) -> None:
    """Copy successful ``full`` runs back into the repository: notebooks, results JSON, README table.

    The notebooks go through :func:`prepare_published`: no injected-parameters cell (a student's "Run all" runs the
    parameters cell, ``profile = "auto"``; nbval re-runs them the same way), the run recorded in ``metadata.course``
    and in the note near the top, no absolute path of this machine.
    """
    PUBLISHED_DIR.mkdir(exist_ok=True)
    for run in runs:
        if run.status != "ok":
            continue
        nb = nbformat.read(out_dir / f"{run.notebook}.ipynb", as_version=4)
        result = out_dir / "results" / f"{run.notebook}.json"
        payload = json.loads(result.read_text(encoding="utf-8")) if result.exists() else None
        prepare_published(nb, payload, out_dir)
        nbformat.write(nb, NOTEBOOK_DIR / f"{run.notebook}.ipynb")
        if result.exists():
            shutil.copyfile(result, PUBLISHED_DIR / result.name)
    if load_results():
        update_readme()


#: Top-level folders of the repository that hold committed files (used when git cannot be asked).
TRACKED_FOLDERS = (".git", ".ci", "benchmarks", "data", "drafts", "helpers", "notebooks", "results", "tests")


def _tracked_tops() -> set[str]:
    """Top-level names of the repository that git tracks (plus the known ones): never a place for run outputs."""
    tops = set(TRACKED_FOLDERS)
    try:
        listed = subprocess.run(["git", "-C", str(REPO_ROOT), "ls-files", "-z"], capture_output=True, timeout=30)
        if listed.returncode == 0:
            tops |= {name.split("/", 1)[0] for name in listed.stdout.decode("utf-8", "replace").split("\0") if name}
    except (OSError, subprocess.SubprocessError):
        pass
    return tops


def check_out_dir(out: Path) -> str:
    """Why ``out`` cannot take a run's outputs ('' when it can); creates it when it does not exist.

    Refused: the repository root and anything inside a folder that holds committed files (``notebooks/``,
    ``results/``, ``helpers/``, …: a run would overwrite them), a file, and a folder this user cannot write.
    """
    out = Path(out).expanduser().resolve()
    root = REPO_ROOT.resolve()
    if out == root:
        return (
            f"--out {out} is the repository itself: the run would overwrite committed notebooks and results; "
            "use build/<name> or a folder outside the repository"
        )
    if root in out.parents:
        top = out.relative_to(root).parts[0]
        if top in _tracked_tops():
            return (
                f"--out {out} is inside the repository's tracked {top}/: the run would overwrite committed files; "
                "use build/<name> or a folder outside the repository"
            )
    if out.exists() and not out.is_dir():
        return f"--out {out} is a file, not a folder"
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return f"--out {out} cannot be written ({exc.strerror or exc}); choose a writable folder"
    return ""


def run_all(
    paths: list[Path],
    out_dir: Path,
    profile: str,
    timeout_s: int | None,
    jobs: int = 1,
    memory_mb: float | None = None,
    expected_mb: dict[str, float] | None = None,
) -> list[NotebookRun]:
    """Run ``paths``, at most ``jobs`` at a time; the summary is rewritten after each notebook, in notebook order.

    With ``memory_mb``, a notebook starts beside others only when their expected peaks and its own (``expected_mb``,
    by notebook name) add up to at most ``memory_mb``; otherwise the next one in order that fits starts, or it waits.
    A notebook with no estimate, or one over the budget, runs alone. Interrupted (Ctrl-C, SIGTERM), every running
    notebook is stopped with its kernel and no waiting one starts."""
    start, done, stopping = time.perf_counter(), {}, threading.Event()
    expected = expected_mb or {}
    sampling, peak_total = threading.Event(), [0.0]
    sampler = threading.Thread(target=_peak_total_rss, args=(sampling, peak_total), daemon=True)
    sampler.start()

    def one(path: Path) -> NotebookRun:
        if stopping.is_set():  # the run was interrupted while this notebook waited for a free slot
            return NotebookRun(path.stem, "failed", 0.0, 0.0, error="not run: the run was stopped")
        print(f"▶ {path.name} ({profile}) …", flush=True)
        run = run_notebook(path, out_dir, profile, timeout_s)
        print(
            f"  {path.stem}: {run.status} in {run.wall_time_s:.0f} s, peak {run.peak_rss_mb:.0f} MB "
            f"{run.metrics or ''} {run.error}",
            flush=True,
        )
        return run

    def record(path: Path, run: NotebookRun) -> None:
        done[path] = run
        finished = [done[p] for p in paths if p in done]
        memory = {"memory_budget_mb": memory_mb, "peak_total_rss_mb": round(peak_total[0] / 2**20, 1)}
        write_summary(finished, out_dir, profile, jobs, time.perf_counter() - start, memory)

    def fits(path: Path, running: list[Path]) -> bool:
        if memory_mb is None or not running:
            return True
        need = [expected.get(p.stem, memory_mb) for p in [*running, path]]
        return sum(need) <= memory_mb

    pending: list[Path] = list(paths)
    running: dict[concurrent.futures.Future, Path] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:  # jobs=1: one after another, the same path
        try:
            while pending or running:
                while len(running) < jobs:
                    nxt = next((p for p in pending if fits(p, list(running.values()))), None)
                    if nxt is None:
                        break
                    pending.remove(nxt)
                    running[pool.submit(one, nxt)] = nxt
                finished, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
                for future in finished:
                    record(running.pop(future), future.result())
        except BaseException:
            stopping.set()
            pool.shutdown(wait=False, cancel_futures=True)
            while not all(future.done() for future in running):  # every started notebook, with its kernel
                stop_all_running()
                time.sleep(0.2)
            raise
        finally:
            sampling.set()
    return [done[p] for p in paths]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the course notebooks headless with papermill.")
    parser.add_argument("--profile", choices=("quick", "full"), default="quick")
    parser.add_argument("--only", nargs="+", metavar="NN", help="notebook number prefixes to run, e.g. --only 02 05")
    parser.add_argument("--out", type=Path, help="output folder (default build/run-<profile>)")
    parser.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="notebooks run at the same time (each in its own kernel); 2 suits a 2-core machine when the notebooks use "
        "one torch thread each (OMP_NUM_THREADS=1, as make run sets). Default 1",
    )
    parser.add_argument(
        "--memory-mb",
        type=float,
        default=None,
        help="with --jobs > 1: start a notebook beside others only while their peaks and its own, as the last "
        "benchmarks.course_quick measured them, add up to at most this many MB (quick profile; in full every "
        "notebook then runs alone). make run uses 4000. Default: no limit",
    )
    parser.add_argument(
        "--publish", action="store_true", help="full profile: copy outputs and results into the repository"
    )
    args = parser.parse_args(argv)
    if args.publish and args.profile != "full":
        parser.error("--publish only makes sense with --profile full: published notebooks carry full results")
    out_dir = (args.out or REPO_ROOT / "build" / f"run-{args.profile}").expanduser().resolve()
    problem = check_out_dir(out_dir)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    signal.signal(signal.SIGTERM, _terminated)
    if args.memory_mb is not None and args.memory_mb <= 0:
        parser.error(f"--memory-mb must be positive, got {args.memory_mb}")
    expected = expected_peaks_mb(args.profile) if args.memory_mb is not None else None
    runs = run_all(discover(args.only), out_dir, args.profile, args.timeout, args.jobs, args.memory_mb, expected)
    if args.publish:
        publish(runs, out_dir)
    failed = [r.notebook for r in runs if r.status != "ok"]
    print(f"\n{len(runs) - len(failed)} of {len(runs)} notebooks ran green; summary in {out_dir / 'summary.md'}")
    if failed:
        print("failed: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
