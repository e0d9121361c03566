"""Run the course's notebooks headless with papermill and summarise the run.

    python -m helpers.core.run [--profile quick|full] [--only 02 05] [--out DIR] [--publish]

Each notebook runs in its own process (so one failure never stops the others, and its peak memory can be
measured); the executed copies, ``summary.md`` and ``summary.json`` land in ``--out``. The exit code is 1 when
any notebook failed. ``--publish`` (``full`` profile only) copies the executed notebooks back into
``notebooks/``, their results into ``results/`` and regenerates the README results table.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

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


def _peak_rss(process: subprocess.Popen, stop: threading.Event, peak: list[float]) -> None:
    """Poll the resident memory of ``process`` and all its children (the kernel) until ``stop``."""
    try:
        root = psutil.Process(process.pid)
    except psutil.NoSuchProcess:
        return
    while not stop.is_set():
        try:
            rss = sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
            peak[0] = max(peak[0], rss)
        except psutil.Error:
            pass
        stop.wait(0.25)


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


def run_notebook(path: Path, out_dir: Path, profile: str, timeout_s: int | None = None) -> NotebookRun:
    """Execute one notebook with papermill in a child process and measure wall time and peak memory."""
    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / path.name
    log = out_dir / f"{path.stem}.log"
    env = {**os.environ, RESULTS_ENV: str(out_dir / "results"),
           # inline plots in the executed notebooks (a plain "Agg" from the caller would leave them out)
           "MPLBACKEND": "module://matplotlib_inline.backend_inline", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "papermill", str(path), str(executed), "-p", "profile", profile,
           "--cwd", str(path.parent), "--log-output", "--no-progress-bar"]
    if timeout_s:
        cmd += ["--execution-timeout", str(timeout_s)]
    start = time.perf_counter()
    stop, peak = threading.Event(), [0.0]
    with open(log, "w", encoding="utf-8") as log_file:
        process = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT)
        watcher = threading.Thread(target=_peak_rss, args=(process, stop, peak), daemon=True)
        watcher.start()
        code = process.wait()
        stop.set()
        watcher.join()
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


def write_summary(runs: list[NotebookRun], out_dir: Path, profile: str) -> None:
    """``summary.json`` and ``summary.md`` of a run."""
    total = sum(r.wall_time_s for r in runs)
    payload = {"profile": profile, "hardware": hardware_summary(), "total_wall_time_s": round(total, 1),
               "peak_rss_mb": max((r.peak_rss_mb for r in runs), default=0.0), "notebooks": [asdict(r) for r in runs]}
    (out_dir / "summary.json").write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    lines = [f"# Course run: profile `{profile}`", "", f"Machine: {payload['hardware']}. Total wall time {total / 60:.1f} min.", "",
             "| notebook | status | wall time (s) | peak memory (MB) | headline metrics | error |", "|---|---|---|---|---|---|"]
    for r in runs:
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in r.metrics.items())
        error = r.error.replace("|", "\\|").replace("\n", " ")[:300]
        lines.append(f"| {r.notebook} | {'✅ ok' if r.status == 'ok' else '❌ failed'} | {r.wall_time_s} | {r.peak_rss_mb} | {metrics} | {error} |")
    (out_dir / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def publish(runs: list[NotebookRun], out_dir: Path) -> None:
    """Copy successful ``full`` runs back into the repository: notebooks, results JSON, README table.

    Papermill's injected-parameters cell is tagged ``nbval-skip``, so nbval re-runs a published notebook
    with its default (``quick``) parameters and checks only the cells whose output does not depend on the profile.
    """
    PUBLISHED_DIR.mkdir(exist_ok=True)
    for run in runs:
        if run.status != "ok":
            continue
        nb = nbformat.read(out_dir / f"{run.notebook}.ipynb", as_version=4)
        for cell in nb.cells:
            tags = cell.metadata.get("tags", [])
            if "injected-parameters" in tags and "nbval-skip" not in tags:
                cell.metadata["tags"] = [*tags, "nbval-skip"]
        nbformat.write(nb, NOTEBOOK_DIR / f"{run.notebook}.ipynb")
        result = out_dir / "results" / f"{run.notebook}.json"
        if result.exists():
            shutil.copyfile(result, PUBLISHED_DIR / result.name)
    if load_results():
        update_readme()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the course notebooks headless with papermill.")
    parser.add_argument("--profile", choices=("quick", "full"), default="quick")
    parser.add_argument("--only", nargs="+", metavar="NN", help="notebook number prefixes to run, e.g. --only 02 05")
    parser.add_argument("--out", type=Path, help="output folder (default build/run-<profile>)")
    parser.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds")
    parser.add_argument("--publish", action="store_true", help="full profile: copy outputs and results into the repository")
    args = parser.parse_args(argv)
    if args.publish and args.profile != "full":
        parser.error("--publish only makes sense with --profile full: published notebooks carry full results")
    out_dir = (args.out or REPO_ROOT / "build" / f"run-{args.profile}").resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = []
    for path in discover(args.only):
        print(f"▶ {path.name} ({args.profile}) …", flush=True)
        run = run_notebook(path, out_dir, args.profile, args.timeout)
        print(f"  {run.status} in {run.wall_time_s:.0f} s, peak {run.peak_rss_mb:.0f} MB {run.metrics or ''} {run.error}", flush=True)
        runs.append(run)
        write_summary(runs, out_dir, args.profile)
    if args.publish:
        publish(runs, out_dir)
    failed = [r.notebook for r in runs if r.status != "ok"]
    print(f"\n{len(runs) - len(failed)} of {len(runs)} notebooks ran green; summary in {out_dir / 'summary.md'}")
    if failed:
        print("failed: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
