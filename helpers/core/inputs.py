"""The one error type for bad input, and the checks that raise it.

Every command-line entry point (``python -m helpers.cli.evaluate``, ``train_text lstm|fold``, ``train_audio``)
catches :class:`CourseInputError` (and ``OSError``) at the top of ``main()`` and prints it as one line,
``error: <what is wrong>, <what to do>``, with exit code 2. It is a ``ValueError``, so code that already
catches ``ValueError`` keeps working.
"""

from __future__ import annotations

import math
import os
from typing import Any

MAX_CLASSES = 1_000  # more classes than this is a typo in a label column, not a course task


class CourseInputError(ValueError):
    """Bad input (a flag, a file, a folder, a config value): the message names it and says what to do."""


def check_number(
    value: Any, name: str, kind: type = int, low: float | None = None, high: float | None = None, where: str = ""
) -> int | float:
    """``value`` as an int (``kind=int``) or float within ``[low, high]``, or a :class:`CourseInputError`
    naming ``name``.

    Booleans, strings, NaN and infinities are refused; an int is accepted where a float is wanted.
    """
    prefix = f"{where}: " if where else ""
    ok_types = (int,) if kind is int else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_types):
        wanted = "an integer" if kind is int else "a number"
        raise CourseInputError(f"{prefix}{name} must be {wanted}, got {value!r} ({type(value).__name__})")
    if isinstance(value, float) and not math.isfinite(value):
        raise CourseInputError(f"{prefix}{name} must be a finite number, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        span = (
            f"between {low:g} and {high:g}"
            if low is not None and high is not None
            else (f"at least {low:g}" if low is not None else f"at most {high:g}")
        )
        raise CourseInputError(f"{prefix}{name} must be {span}, got {value!r}")
    return value


def check_threads(threads: int | None) -> None:
    """``--threads``: None (torch's default) or 1 .. the number of CPUs times 4."""
    if threads is not None:
        check_number(threads, "--threads", int, 1, max(4 * (os.cpu_count() or 1), 64))


def check_device(device: str | None) -> None:
    """``--device``: None, cpu, cuda[:N] or mps, and available here; else one line saying what to pass instead."""
    if device is None:
        return
    import torch

    name = str(device).lower()
    base = name.split(":")[0]
    if base not in ("cpu", "cuda", "mps"):
        raise CourseInputError(f"--device {device!r} is not a device; use cpu, cuda or mps (or leave it out)")
    if base == "cuda" and not torch.cuda.is_available():
        raise CourseInputError(
            "--device cuda was given but this machine has no usable CUDA GPU; use --device cpu or leave --device out"
        )
    if base == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise CourseInputError("--device mps was given but Apple's MPS is not available here; use --device cpu")


def check_config_value(action, key: str, value: Any, source: str) -> Any:
    """A value from a ``--config`` JSON file, checked against the argparse ``action`` it sets.

    Returns the value to use (a path string becomes the flag's type); raises :class:`CourseInputError` naming the
    key for the wrong type (``"ten"`` for ``--epochs``, a list for a number, ``true`` for a path, ...).
    """
    flag = "--" + key.lstrip("-").replace("_", "-")

    def refuse(wanted: str) -> CourseInputError:
        return CourseInputError(
            f"--config {source}: {key}={value!r} ({type(value).__name__}) must be {wanted} like {flag}; "
            "fix the value in the file"
        )

    if value is None:
        return value
    if action.nargs == 0:  # store_true / store_false
        if not isinstance(value, bool):
            raise refuse("true or false")
        return value
    if action.type is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise refuse("an integer")
        return value
    if action.type is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise refuse("a finite number")
        return float(value)
    if isinstance(value, (dict, list, bool)) or not isinstance(value, (str, int, float)):
        raise refuse("a single value (text or number)")
    if action.type is not None and isinstance(value, str):
        try:
            return action.type(value)
        except (TypeError, ValueError) as exc:
            raise refuse(f"a valid value ({exc})") from None
    return value


__all__ = [
    "CourseInputError",
    "MAX_CLASSES",
    "check_number",
    "check_threads",
    "check_device",
    "check_config_value",
    "describe_os_error",
]


def describe_os_error(exc: OSError, what_to_do: str = "check the path, its permissions and the free disk space") -> str:
    """One line for an ``OSError`` (permission denied, disk full, a file where a folder belongs, ...)."""
    import errno

    where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno == errno.ENOSPC:
        what_to_do = "free some disk space (or write elsewhere) and run again"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        what_to_do = "choose a place you can write to"
    return f"cannot use{where}: {reason}; {what_to_do}"
