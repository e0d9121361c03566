"""Wall time and peak memory of the whole course in the quick profile (python -m benchmarks.course_quick)."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from helpers.env import REPO_ROOT, hardware_summary
from helpers.run import main as run_course

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_MINUTES, TARGET_PEAK_MB = 10, 4096


def main() -> int:
    out = REPO_ROOT / "build" / "bench-course-quick"
    shutil.rmtree(out, ignore_errors=True)
    code = run_course(["--profile", "quick", "--out", str(out)])
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    total_min = summary["total_wall_time_s"] / 60
    peak = summary["peak_rss_mb"]
    report = {
        "machine": hardware_summary(), "total_wall_time_s": summary["total_wall_time_s"], "peak_rss_mb": peak,
        "target": {"total_minutes": TARGET_MINUTES, "peak_rss_mb": TARGET_PEAK_MB},
        "meets_target": total_min < TARGET_MINUTES and peak < TARGET_PEAK_MB,
        "notebooks": [{k: nb[k] for k in ("notebook", "status", "wall_time_s", "peak_rss_mb")} for nb in summary["notebooks"]],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "course_quick.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    lines = [f"# Course, quick profile", "", f"Machine: {report['machine']}.", "",
             f"Total {total_min:.1f} min (target < {TARGET_MINUTES}), peak memory {peak:.0f} MB (target < {TARGET_PEAK_MB}).", "",
             "| notebook | status | wall time (s) | peak memory (MB) |", "|---|---|---|---|"]
    lines += [f"| {nb['notebook']} | {nb['status']} | {nb['wall_time_s']} | {nb['peak_rss_mb']} |" for nb in report["notebooks"]]
    (RESULTS / "course_quick.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return code


if __name__ == "__main__":
    sys.exit(main())
