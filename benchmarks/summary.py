"""Where the benchmarks write: ``results/<name>.json`` and one section each in ``results/SUMMARY.md``.

Each benchmark rewrites only its own section (between ``<!-- name:start -->`` and ``<!-- name:end -->``), so
the scripts can run at different times and on different days; every section states its machine and load.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from pathlib import Path

from helpers.core.download import atomic_write_bytes
from helpers.core.env import hardware_summary, package_versions

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SUMMARY = RESULTS_DIR / "SUMMARY.md"
HEADER = """# Benchmark results

Written by the scripts in [`benchmarks/`](..) (see its README); each section says which machine it ran on, how
loaded that machine was, and when. Numbers from a shared machine are indicative: compare ratios measured in one
run, not absolute speeds across sections.
"""


def cpu_model() -> str:
    """The CPU's model name (Linux), else the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (empty where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return []


def machine() -> dict:
    """What the numbers were measured on: hardware, CPU, threads, versions, load and date."""
    import torch

    versions = package_versions(("torch", "transformers", "tokenizers", "kiwipiepy", "python-mecab-ko", "konlpy"))
    return {
        "hardware": hardware_summary(),
        "cpu": cpu_model(),
        "torch_threads": torch.get_num_threads(),
        "load_average": load_average(),
        "versions": versions,
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
    }


def write_json(name: str, payload: dict) -> Path:
    """``results/<name>.json`` (atomically)."""
    path = RESULTS_DIR / f"{name}.json"
    atomic_write_bytes(path, (json.dumps(payload, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    return path


def write_section(name: str, markdown: str) -> Path:
    """Replace (or append) the section ``name`` of ``results/SUMMARY.md`` with ``markdown``."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = SUMMARY.read_text(encoding="utf-8") if SUMMARY.exists() else HEADER
    block = f"{start}\n{markdown.strip()}\n{end}"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    atomic_write_bytes(SUMMARY, text.encode("utf-8"))
    return SUMMARY


def machine_line(info: dict, threads: bool = True) -> str:
    """One markdown line describing ``machine()`` (``threads``: mention the torch threads of the measuring process)."""
    load = "/".join(f"{x:.2f}" for x in info["load_average"]) or "unknown"
    thread_part = f", {info['torch_threads']} torch thread(s)" if threads else ""
    return (
        f"Machine: {info['hardware']} ({info['cpu']}); torch {info['versions']['torch']}{thread_part}; "
        f"load average (1/5/15 min) at the start: {load}; {info['date']}."
    )
