#!/usr/bin/env bash
# The whole course on a GPU machine, through the course's runner (python -m helpers.core.run), one notebook at a time:
# `full` where the time budget allows, else `quick`. Per-notebook wall time, peak memory, status and headline metrics
# go to benchmarks/results/gpu_course.json and .md (the executed notebooks and logs stay in build/gpu-course/).
#
#   BUDGET_S=3000 GPU_SPEEDUP=4 bash benchmarks/gpu/run_course.sh [NN ...]
#
# BUDGET_S: seconds for the whole course (default 3000). A notebook runs in `full` when its estimated GPU time
# (the published CPU full run's wall time from results/NN_*.json divided by GPU_SPEEDUP, default 4) fits in what is
# left of the budget after reserving its quick time for each notebook still to come; otherwise in `quick`.
# Each notebook is also stopped at the budget that remains (timeout). Needs COURSE_DATA_DIR (the data mirror) and
# the course's requirements; on a machine without internet put wheels in .whl/ (installed with --no-index) and
# expect the model-hub branches to fall back to the offline models (notebooks 05, 06, 09 say so in their output).
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
BUDGET_S=${BUDGET_S:-3000}
GPU_SPEEDUP=${GPU_SPEEDUP:-4}
BUILD=build/gpu-course
mkdir -p "$BUILD" benchmarks/results
if compgen -G ".whl/*.whl" >/dev/null; then
  $PY -m pip install -q --no-index --find-links .whl .whl/*.whl || { echo "wheel install failed"; exit 1; }
fi
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
: "${COURSE_DATA_DIR:?set COURSE_DATA_DIR to the data mirror}"
$PY -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU'; print('GPU:', torch.cuda.get_device_name(0))" || exit 1

mapfile -t BOOKS < <($PY - "$@" <<'PY'
import sys
from helpers.core.run import discover
for p in discover(sys.argv[1:] or None):
    print(p.stem)
PY
)
start=$(date +%s)
n=${#BOOKS[@]}
for i in "${!BOOKS[@]}"; do
  stem=${BOOKS[$i]}
  left=$(( BUDGET_S - ($(date +%s) - start) ))
  if (( left < 60 )); then echo "budget spent: $stem not run"; continue; fi
  profile=$($PY - "$stem" "$left" "$GPU_SPEEDUP" "$(( n - i - 1 ))" <<'PY'
import json, sys
from helpers.core.env import REPO_ROOT
stem, left, speedup, rest = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
try:
    full_cpu = json.loads((REPO_ROOT / "results" / f"{stem}.json").read_text())["wall_time_s"]
except (OSError, KeyError, ValueError):
    full_cpu = 3600.0
reserve = 120 * rest  # a quick run (under 2 minutes each) for every notebook still to come
print("full" if full_cpu / speedup + reserve <= left else "quick")
PY
)
  echo "▶ $stem: $profile (budget left ${left}s)"
  timeout "$left" $PY -m helpers.core.run --profile "$profile" --only "${stem:0:2}" --out "$BUILD/$stem-$profile" \
    || echo "  $stem: exit $?"
done

$PY - "$BUILD" <<'PY'
import datetime, json, sys
from pathlib import Path
from helpers.core.env import hardware_summary, package_versions
build = Path(sys.argv[1])
rows = []
for summary in sorted(build.glob("*/summary.json")):
    payload = json.loads(summary.read_text())
    for nb in payload["notebooks"]:
        rows.append({**nb, "profile": payload["profile"]})
report = {"date": datetime.date.today().isoformat(), "hardware": hardware_summary(),
          "versions": package_versions(("torch", "transformers")), "notebooks": rows,
          "total_wall_time_s": round(sum(r["wall_time_s"] for r in rows), 1)}
Path("benchmarks/results/gpu_course.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
lines = [f"# Course on a GPU ({report['date']})", "", f"{report['hardware']}; total {report['total_wall_time_s'] / 60:.1f} min.", "",
         "| notebook | profile | status | wall time (s) | peak memory (MB) | headline metrics |", "|---|---|---|---|---|---|"]
for r in rows:
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in r["metrics"].items())
    lines.append(f"| {r['notebook']} | {r['profile']} | {r['status']} | {r['wall_time_s']} | {r['peak_rss_mb']} | {metrics} |")
Path("benchmarks/results/gpu_course.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
