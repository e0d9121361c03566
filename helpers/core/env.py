"""Environment: reproducible seeds, device choice, Colab detection and a version report."""

from __future__ import annotations

import os
import platform
import random
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # annotations only: torch is imported inside the functions (helpers.core works without it)
    import torch

REPO_ROOT = Path(__file__).resolve().parents[2]  # helpers/core/env.py → the repository


def in_colab() -> bool:
    """True when running inside a Google Colab kernel."""
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


PROFILES = ("quick", "full")
PROFILE_ENV = "COURSE_PROFILE"  # "quick" / "full": what "auto" means in this process (the nbval lane sets quick)


def resolve_profile(profile: str = "auto", verbose: bool = True) -> str:
    """The run profile a notebook uses: ``"auto"`` is ``"full"`` on a CUDA GPU and ``"quick"`` otherwise.

    ``"quick"`` and ``"full"`` are returned as they are; anything else is refused with one line. ``"auto"`` follows
    ``$COURSE_PROFILE`` when it is set (``make test`` sets ``quick``, so nbval runs the committed notebooks quick
    even on a GPU machine). With ``verbose`` the choice is printed in one line, so a notebook's output says which
    profile produced it.
    """
    if not isinstance(profile, str) or profile.strip().lower() not in ("auto", *PROFILES):
        raise ValueError(f'profile must be "auto", "quick" or "full", got {profile!r}')
    profile = profile.strip().lower()
    forced = os.environ.get(PROFILE_ENV, "").strip().lower()
    if profile == "auto" and forced:
        if forced not in PROFILES:
            raise ValueError(f'{PROFILE_ENV} must be "quick" or "full", got {os.environ[PROFILE_ENV]!r}')
        resolved, why = forced, f"auto: {PROFILE_ENV}={forced} in the environment"
    elif profile == "auto":
        try:
            import torch

            gpu = torch.cuda.is_available()
        except ImportError:
            gpu = False
        resolved = "full" if gpu else "quick"
        why = "auto: a CUDA GPU is present" if gpu else "auto: no CUDA GPU, so the quick profile"
    else:
        resolved, why = profile, "as set in the parameters cell"
    if verbose:
        print(f"profile: {resolved} ({why})")
    return resolved


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and PyTorch (CPU and CUDA) and ask torch for deterministic kernels.

    On CPU the course's runs are then repeatable bit for bit; on GPU a few kernels stay
    non-deterministic, so expect differences in the last digits there.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    os.environ["PYTHONHASHSEED"] = str(seed)
    try:
        import torch
    except ImportError:  # helpers.core.data and friends work without torch
        return
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def get_device(prefer: str | None = None) -> "torch.device":
    """Pick the best available device: CUDA, then Apple MPS, then CPU.

    ``prefer`` ("cpu", "cuda", "mps") forces a choice and fails clearly when it is not available.
    """
    import torch

    if prefer is not None:
        prefer = prefer.lower()
        available = {
            "cpu": True,
            "cuda": torch.cuda.is_available(),
            "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available(),
        }
        if prefer not in available:
            raise ValueError(f"unknown device {prefer!r}; choose one of {sorted(available)}")
        if not available[prefer]:
            raise RuntimeError(f"device {prefer!r} was requested but is not available on this machine")
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def describe_device(device: "torch.device") -> str:
    """A one-line, human description of a device (GPU name or CPU core count)."""
    import torch

    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "mps: Apple GPU"
    return f"cpu: {os.cpu_count()} cores, torch threads={torch.get_num_threads()}"


def hardware_summary() -> str:
    """Short description of the machine, used in results files and benchmarks."""
    try:
        import torch

        if torch.cuda.is_available():
            return f"{torch.cuda.get_device_name(0)} GPU, {os.cpu_count()} CPU cores"
    except ImportError:
        pass
    try:
        import psutil

        mem = f", {psutil.virtual_memory().total / 2**30:.0f} GiB RAM"
    except ImportError:
        mem = ""
    return f"{platform.machine()} CPU, {os.cpu_count()} cores{mem}, no GPU"


def package_versions(names: tuple[str, ...] | None = None) -> dict[str, str]:
    """Installed versions of the course's main packages ("missing" when not installed)."""
    names = names or (
        "torch",
        "transformers",
        "tokenizers",
        "accelerate",
        "pandas",
        "numpy",
        "scikit-learn",
        "matplotlib",
        "seaborn",
        "librosa",
        "soundfile",
        "konlpy",
        "python-mecab-ko",
        "kiwipiepy",
        "papermill",
        "nbval",
    )
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions


def cpu_supports_bf16() -> bool:
    """True when this CPU has bfloat16 matrix units that PyTorch's oneDNN kernels use (recent Intel Xeons)."""
    try:
        import torch

        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # a private API: treat any failure (other builds, other CPUs) as "no"
        return False


def fastest_precision(device: torch.device | str) -> str:
    """The ``precision`` for the course's training loop that is fastest on ``device`` and still trains well.

    "bf16" on a CPU with bfloat16 matrix units (about 1.5x faster for transformer fine-tuning on the course's 2-core
    machine), otherwise "auto": bf16 or fp16 autocast on a CUDA GPU, float32 on any other CPU. Notebook 05's
    hand-written loop (section 3) spells the same choice out."""
    device_type = device.type if hasattr(device, "type") else str(device).split(":")[0]
    return "bf16" if device_type == "cpu" and cpu_supports_bf16() else "auto"
