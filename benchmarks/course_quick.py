"""Wall time and peak memory of the whole course in the quick profile (``python -m benchmarks.course_quick``).

Runs every notebook of ``notebooks/`` in the ``quick`` profile through the course's runner (:mod:`helpers.core.run`:
papermill, one fresh kernel per notebook, peak resident memory of the kernel and its children), in
``build/bench-course-quick/``; the notebooks' results go there too (``COURSE_RESULTS_DIR``), never into the
committed ``results/``. Writes ``benchmarks/results/course_quick.json`` and the ``course_quick`` section of
``benchmarks/results/SUMMARY.md``. Target on a 2-core CPU: ``make run``'s course run (two notebooks at a time,
``--jobs 2``, one torch thread each, ``--memory-mb 4000``) under 10 minutes elapsed, and under 4 GB of memory for
the notebooks running at any moment, added up (sampled by the runner). The sum of the notebooks' times (one after
another) is reported beside it. Run it on a quiet machine: other jobs slow it down.

Each notebook's peak measured here is also what the next ``--memory-mb`` run schedules by (``helpers.core.run``
reads this report): a notebook starts beside another only when their peaks add up to the budget.

    python -m benchmarks.course_quick [--jobs N] [--memory-mb MB]   # default 2 and 4000, as make run
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

from benchmarks.summary import load_average, machine, machine_line, write_json, write_section
from helpers.core.env import REPO_ROOT
from helpers.core.run import main as run_course

TARGET_MINUTES, TARGET_PEAK_MB = 10, 4096


def warm_caches() -> list[str]:
    """The derived-data caches (features, tokenisations, waveforms) that already hold files before the run."""
    from helpers.core.data import cache_dir

    return (
        sorted(p.name for p in cache_dir().iterdir() if p.is_dir() and p.name != "downloads" and any(p.iterdir()))
        if cache_dir().is_dir()
        else []
    )


def _cache_sentence(warm: list[str] | None) -> str:
    if warm is None:
        return "Caches: not recorded."
    if not warm:
        return "Caches: cold (nothing cached before the run; this is what a fresh clone costs)."
    return (
        f"Caches: warm ({', '.join(warm)} under the cache folder held files from earlier runs, and were reused); "
        "a fresh clone builds them on its first run, which takes longer."
    )


def summary_markdown(report: dict) -> str:
    total_min, peak = report["total_wall_time_s"] / 60, report["peak_rss_mb"]
    jobs = report.get("jobs", 1)
    elapsed_min = report.get("elapsed_s", report["total_wall_time_s"]) / 60
    verdict = "meets" if report["meets_target"] else "misses"
    together_mb, budget_mb = report.get("peak_total_rss_mb"), report.get("memory_budget_mb")
    if together_mb:
        memory = f"; the notebooks running at once used at most **{together_mb:.0f} MB** together (sampled"
        memory += f", budget {budget_mb:.0f} MB)" if budget_mb else ", no budget)"
    elif jobs > 1:  # a report from before the runner sampled the total
        at_once_mb = sum(sorted((nb["peak_rss_mb"] for nb in report["notebooks"]), reverse=True)[:jobs])
        memory = f"; {jobs} at once need at most {at_once_mb:.0f} MB (the {jobs} largest peaks added)"
    else:
        memory = ""
    lines = [
        "## The whole course, quick profile (`python -m benchmarks.course_quick`)",
        "",
        machine_line(report["machine"], threads=False),
        f"Load average at the end: {'/'.join(f'{x:.2f}' for x in report['load_average_end']) or 'unknown'}.",
        "",
        f"**{elapsed_min:.1f} min** elapsed with {jobs} notebook{'s' if jobs > 1 else ''} at a time (target < "
        f"{TARGET_MINUTES}); the notebooks' times add up to {total_min:.1f} min (one after another). Peak memory of "
        f"one notebook's kernel **{peak:.0f} MB** (target < {TARGET_PEAK_MB})"
        + memory
        + f": the run {verdict} the target. "
        f"{report['notebooks_ok']} of {len(report['notebooks'])} notebooks ran green.",
        "",
        _cache_sentence(report.get("warm_caches")),
        "",
        "| notebook | status | wall time (s) | peak memory (MB) |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {nb['notebook']} | {nb['status']} | {nb['wall_time_s']} | {nb['peak_rss_mb']} |"
        for nb in report["notebooks"]
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Wall time and peak memory of the whole course in quick.")
    parser.add_argument("--jobs", type=int, default=2, help="notebooks at a time (default 2, as make run)")
    parser.add_argument(
        "--memory-mb",
        type=float,
        default=4000,
        help="memory budget of the notebooks at once (default 4000, as make run)",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # as make run: one torch thread per notebook
    out = REPO_ROOT / "build" / "bench-course-quick"
    shutil.rmtree(out, ignore_errors=True)
    info = machine()
    warm = warm_caches()
    code = run_course(
        ["--profile", "quick", "--out", str(out), "--jobs", str(args.jobs), "--memory-mb", str(args.memory_mb)]
    )
    summary_path = out / "summary.json"
    if not summary_path.exists():
        print(f"error: the runner wrote no {summary_path}; see the logs in {out}", file=sys.stderr)
        return code or 1
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    total_s, peak = summary["total_wall_time_s"], summary["peak_rss_mb"]
    elapsed_s = summary.get("elapsed_s", total_s)
    notebooks = [
        {k: nb[k] for k in ("notebook", "status", "wall_time_s", "peak_rss_mb")} for nb in summary["notebooks"]
    ]
    report = {
        "machine": info,
        "warm_caches": warm,
        "load_average_end": load_average(),
        "jobs": args.jobs,
        "elapsed_s": elapsed_s,
        "total_wall_time_s": total_s,
        "peak_rss_mb": peak,
        "memory_budget_mb": summary.get("memory_budget_mb"),
        "peak_total_rss_mb": summary.get("peak_total_rss_mb"),
        "target": {"total_minutes": TARGET_MINUTES, "peak_total_rss_mb": TARGET_PEAK_MB},
        "meets_target": code == 0
        and elapsed_s / 60 < TARGET_MINUTES
        and max(peak, summary.get("peak_total_rss_mb") or 0) < TARGET_PEAK_MB,
        "notebooks_ok": sum(nb["status"] == "ok" for nb in notebooks),
        "notebooks": notebooks,
    }
    write_json("course_quick", report)
    markdown = summary_markdown(report)
    write_section("course_quick", markdown)
    print(markdown)
    return code


if __name__ == "__main__":
    sys.exit(main())
