"""Output folders of the training scripts: checked before any work, never overwriting what a user owns, locked.

:func:`prepare_output_dir` is called by :mod:`helpers.cli.script_loop` before the data are read or a model is
built, so a bad ``--output`` costs one line, not a training run:

- a path that is a file, a folder that cannot be written (read-only, an unwritable parent) → one line;
- a non-empty folder that is not a training run of the course (files the scripts do not write) → refused: the
  scripts never delete or overwrite a user's files;
- a folder holding a run (checkpoints, a model or metrics) → refused unless ``--resume`` continues it (the
  checkpoint's settings are then compared with the current ones by the loop);
- a lock file, ``.lock`` (pid and host of the writer), against two runs writing into one folder; a lock left by a
  process that no longer exists on this machine (a killed run) is taken over, and so are the half-written files
  (``.metrics.json.<random>.part``) that a run killed in the middle of a write leaves: removed once the lock is held.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
import time
from pathlib import Path

from helpers.core.inputs import CourseInputError

LOCK_NAME = ".lock"
# what the training scripts write into --output (anything else belongs to someone else)
RUN_ENTRIES = {"checkpoints", "model", "metrics.json", "train.log", "run_config.json", LOCK_NAME}
RESULT_ENTRIES = {"checkpoints", "model", "metrics.json"}


def staging_leftover(name: str) -> bool:
    """Whether ``name`` is a half-written file or folder of a run entry (``.metrics.json.<random>.part``,
    ``.model.<random>.part``): the atomic writers stage there, and a killed run can leave one behind."""
    if not (name.startswith(".") and name.endswith(".part")):
        return False
    target = name[1 : -len(".part")].rsplit(".", 1)[0]
    return target in RUN_ENTRIES


class OutputFolderError(CourseInputError):
    """``--output`` cannot be used (the message says why and what to do)."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def _take_lock(folder: Path) -> Path:
    lock = folder / LOCK_NAME
    record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}).encode()
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = json.loads(lock.read_text(encoding="utf-8"))
                pid, host = int(holder["pid"]), str(holder["host"])
            except (OSError, ValueError, KeyError, TypeError):
                pid, host = None, None
            if pid is not None and host == socket.gethostname() and not _pid_alive(pid):
                lock.unlink(missing_ok=True)  # a killed run's lock
                continue
            who = f"process {pid} on {host}" if pid is not None else "another run"
            raise OutputFolderError(
                f"{folder} is in use by {who} (lock file {lock}); wait for it to finish or choose "
                f"another --output (delete {lock} only if that run is gone)"
            ) from None
        except OSError as exc:
            raise OutputFolderError(
                f"cannot write into --output {folder} ({exc.strerror or exc}); choose a folder you can write to"
            ) from None
        try:
            os.write(fd, record)
        finally:
            os.close(fd)
        atexit.register(release_output_dir, folder)
        return lock
    raise OutputFolderError(f"{folder}: could not take the lock {lock}; try again")


def release_output_dir(folder: str | Path) -> None:
    """Remove the lock :func:`prepare_output_dir` took (only when this process holds it)."""
    lock = Path(folder) / LOCK_NAME
    try:
        holder = json.loads(lock.read_text(encoding="utf-8"))
        if int(holder.get("pid", -1)) == os.getpid() and holder.get("host") == socket.gethostname():
            lock.unlink(missing_ok=True)
    except (OSError, ValueError, TypeError, AttributeError):
        pass


def prepare_output_dir(path: str | Path, resume: bool = False, flag: str = "--output") -> Path:
    """Check ``path`` for a training run and lock it; return it as a ``Path`` (created when missing).

    Raises :class:`OutputFolderError` (one line naming the folder and what to do) as described in the module
    docstring. Call :func:`release_output_dir` when the run ends (also done at exit).
    """
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise OutputFolderError(f"{flag} {folder} is a file, not a folder; give a new or empty folder")
    if folder.is_dir():
        try:
            entries = sorted(p.name for p in folder.iterdir())
        except OSError as exc:
            raise OutputFolderError(
                f"cannot read {flag} {folder} ({exc.strerror or exc}); choose another folder"
            ) from None
        foreign = [
            e for e in entries if e not in RUN_ENTRIES and not e.startswith(".model.") and not staging_leftover(e)
        ]
        if foreign:
            raise OutputFolderError(
                f"{flag} {folder} already holds files that are not a training run of this course "
                f"({', '.join(foreign[:3])}"
                f"{' …' if len(foreign) > 3 else ''}); the scripts never overwrite them: give a new or empty folder"
            )
        results = sorted(set(entries) & RESULT_ENTRIES)
        if results and not resume:
            from helpers.core.checkpoint import latest_checkpoint

            newest = latest_checkpoint(folder / "checkpoints") if "checkpoints" in results else None
            if newest is not None:
                raise OutputFolderError(
                    f"{folder} already holds checkpoints (newest: {newest.name}); pass --resume to "
                    "continue that run, or choose another --output"
                )
            raise OutputFolderError(
                f"{flag} {folder} already holds a run ({', '.join(results)}); pass --resume to continue it (same "
                "settings: --config OUTPUT/run_config.json), or give another folder"
            )
    else:
        try:
            folder.mkdir(parents=True)
        except FileExistsError:
            pass
        except OSError as exc:
            raise OutputFolderError(
                f"cannot create {flag} {folder} ({exc.strerror or exc}); choose a folder under a writable parent"
            ) from None
    _take_lock(folder)
    for name in os.listdir(folder):  # a killed run's half-written files: no run writes here now (we hold the lock)
        if staging_leftover(name):
            leftover = folder / name
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
    return folder


__all__ = ["OutputFolderError", "prepare_output_dir", "release_output_dir", "LOCK_NAME"]
