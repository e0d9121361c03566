"""Recording a notebook's headline metrics, and the README results table built from them.

Each notebook ends with ``record_results(stem, metrics, profile=...)``. A ``full`` run writes
``results/<stem>.json`` (committed); a ``quick`` run writes under ``build/results-quick/`` so that it
never overwrites published figures. The runner sets ``COURSE_RESULTS_DIR`` to collect them per run.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path

from helpers.core.download import atomic_write_bytes
from helpers.core.env import REPO_ROOT, hardware_summary

RESULTS_ENV = "COURSE_RESULTS_DIR"
PUBLISHED_DIR = REPO_ROOT / "results"
_SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")
README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"


def _kernel_uptime() -> float:
    try:
        import psutil

        return time.time() - psutil.Process().create_time()
    except Exception:  # psutil missing or no access: uptime unknown
        return float("nan")


def results_dir(profile: str) -> Path:
    """Where ``record_results`` writes for this profile (``COURSE_RESULTS_DIR`` wins when set)."""
    if os.environ.get(RESULTS_ENV):
        return Path(os.environ[RESULTS_ENV])
    return PUBLISHED_DIR if profile == "full" else REPO_ROOT / "build" / "results-quick"


def record_results(
    stem: str,
    metrics: Mapping[str, float],
    profile: str,
    headline: tuple[str, ...] | None = None,
    notes: str = "",
    extra: Mapping[str, object] | None = None,
) -> Path:
    """Write ``<stem>.json`` with the metrics, profile, date, hardware and wall time; return its path.

    Metric names must be snake_case and values finite numbers. ``headline`` names the one or two metrics
    the README shows for this notebook (default: the first two).
    """
    if profile not in ("quick", "full"):
        raise ValueError(f"profile must be 'quick' or 'full', got {profile!r}")
    if not metrics:
        raise ValueError("no metrics to record")
    clean = {}
    for name, value in metrics.items():
        if not _SNAKE.match(name):
            raise ValueError(f"metric name {name!r} is not snake_case")
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"metric {name!r} is {value}; only finite numbers are recorded")
        clean[name] = round(value, 6)
    headline = tuple(headline or list(clean)[:2])
    unknown = [h for h in headline if h not in clean]
    if unknown:
        raise ValueError(f"headline metrics {unknown} are not among the recorded metrics")
    payload = {
        "notebook": stem,
        "metrics": clean,
        "headline": list(headline),
        "profile": profile,
        "date": _dt.date.today().isoformat(),
        "hardware": hardware_summary(),
        "wall_time_s": round(_kernel_uptime(), 1),
        "notes": notes,
        **(dict(extra) if extra else {}),
    }
    path = results_dir(profile) / f"{stem}.json"
    atomic_write_bytes(path, (json.dumps(payload, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    return path


def load_results(folder: str | Path = PUBLISHED_DIR) -> dict[str, dict]:
    """All ``*.json`` results in ``folder``, keyed by notebook stem."""
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(Path(folder).glob("*.json"))}


def results_table(folder: str | Path = PUBLISHED_DIR) -> str:
    """A markdown table of every notebook's headline metrics."""
    rows = ["| notebook | headline result | profile | hardware | wall time | date |", "|---|---|---|---|---|---|"]
    for stem, res in load_results(folder).items():
        headline = ", ".join(f"{name.replace('_', ' ')} **{res['metrics'][name]:.4f}**" for name in res["headline"])
        minutes = res.get("wall_time_s")
        wall = f"{minutes / 60:.1f} min" if isinstance(minutes, (int, float)) and math.isfinite(minutes) else "?"
        rows.append(f"| `{stem}` | {headline} | {res['profile']} | {res['hardware']} | {wall} | {res['date']} |")
    return "\n".join(rows)


def update_readme(readme: str | Path = REPO_ROOT / "README.md", folder: str | Path = PUBLISHED_DIR) -> bool:
    """Replace the text between the results markers of the README with :func:`results_table`. True if changed."""
    readme = Path(readme)
    text = readme.read_text(encoding="utf-8")
    if README_START not in text or README_END not in text:
        raise ValueError(f"{readme} has no {README_START} … {README_END} markers")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    new = f"{head}{README_START}\n{results_table(folder)}\n{README_END}{tail}"
    if new != text:
        atomic_write_bytes(readme, new.encode("utf-8"))
    return new != text


if __name__ == "__main__":
    changed = update_readme()
    print("README results table " + ("updated" if changed else "already up to date"))
