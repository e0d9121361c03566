"""Downloads and archives done safely: atomic writes, verified checksums, no path escapes."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tqdm.auto import tqdm

from helpers.core.inputs import CourseInputError


class ChecksumError(RuntimeError):
    """A downloaded or cached file does not have the expected checksum."""


class UnsafeArchiveError(RuntimeError):
    """An archive member would be written outside the target folder."""


def file_checksum(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file. ``algorithm`` is any hashlib name, or "gitsha1" for a git blob id."""
    path = Path(path)
    if algorithm == "gitsha1":
        digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    else:
        digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_checksum(path: str | Path, expected: str | None) -> None:
    """Check ``path`` against ``expected`` written as "algorithm:hexdigest" (e.g. "sha256:ab12...").

    ``None`` means no published checksum exists; the call then does nothing.
    """
    if expected is None:
        return
    algorithm, _, want = expected.partition(":")
    if not want:
        raise ValueError(f"checksum must look like 'sha256:<hex>', got {expected!r}")
    got = file_checksum(path, algorithm)
    if got != want.lower():
        raise ChecksumError(
            f"{Path(path).name}: {algorithm} is {got}, expected {want}: "
            "the file is incomplete or not the published version"
        )


def _umask() -> int:
    """The process's file-creation mask: from ``/proc`` on Linux, else by setting it and putting it back."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _usual_mode(path: str | Path, folder: bool = False) -> None:
    """Give a ``mkstemp``/``mkdtemp`` file or folder (created 0600/0700) the mode ``open``/``mkdir`` would give."""
    os.chmod(path, (0o777 if folder else 0o666) & ~_umask())


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename.

    The file gets the usual mode for new files (0644 under umask 022), not ``mkstemp``'s private 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        _usual_mode(tmp)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def download(url: str, dest: str | Path, checksum: str | None = None, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` atomically and verify ``checksum`` ("sha256:...", "md5:...", "gitsha1:...").

    The bytes go to a ``.part`` file beside ``dest``; only a complete, verified file is renamed into
    place, so an interrupted or corrupt download never looks like a finished one.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        _usual_mode(tmp)
        request = urllib.request.Request(url, headers={"User-Agent": "emotion-course/0.1"})
        with urllib.request.urlopen(request, timeout=timeout) as response, os.fdopen(fd, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, leave=False) as bar:
                for block in iter(lambda: response.read(1 << 16), b""):
                    out.write(block)
                    bar.update(len(block))
            if total is not None and out.tell() != total:
                raise ChecksumError(f"{dest.name}: got {out.tell()} of {total} bytes; the download was cut short")
        try:
            verify_checksum(tmp, checksum)
        except ChecksumError as exc:
            raise ChecksumError(f"{exc}. The download from {url} was discarded.") from None
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


# files an earlier save of a model or tokenizer may hold that a newer save need not write again
SAVE_ARTIFACTS = frozenset(
    {
        "config.json",
        "generation_config.json",
        "preprocessor_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "added_tokens.json",
        "vocab.txt",
        "vocab.json",
        "merges.txt",
        "chat_template.jinja",
        "model.safetensors",
        "pytorch_model.bin",
        "model.pt",
        "vocab.pt",
        "training_args.bin",
        "sentencepiece.bpe.model",
    }
)


class FolderInUseError(CourseInputError):
    """``atomic_folder`` would have to delete files it did not write (the message names them)."""


def _foreign_entries(old: Path, new: Path) -> list[str]:
    """Entries of ``old`` (recursively) that the new save ``new`` does not hold and that no save writes."""
    found = []
    for path in sorted(old.rglob("*")):
        rel = path.relative_to(old)
        if not (new / rel).exists() and not (path.is_file() and path.name in SAVE_ARTIFACTS):
            found.append(str(rel))
    return found


@contextmanager
def atomic_folder(target: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling folder to fill; on success it replaces ``target`` whole, on failure it is removed.

    Readers therefore see either the old folder or the complete new one, never a half-written one. An existing
    ``target`` is replaced only when it is an earlier save of the same kind: every file in it is rewritten by the
    new save (or is a model/tokenizer file, :data:`SAVE_ARTIFACTS`). A folder holding anything else (a user's
    files) is never deleted: :class:`FolderInUseError` names what is there, and the new save is discarded.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part"))
    try:
        _usual_mode(staging, folder=True)
        yield staging
        if target.is_symlink() or (target.exists() and not target.is_dir()):
            raise FolderInUseError(
                f"{target} is a file or a link, not a folder this code saved; it was left as it is: "
                "move it away or save elsewhere"
            )
        if target.exists():
            foreign = _foreign_entries(target, staging)
            if foreign:
                raise FolderInUseError(
                    f"{target} holds files this save does not write ({', '.join(foreign[:3])}"
                    f"{' …' if len(foreign) > 3 else ''}); nothing was deleted: move them or save elsewhere"
                )
            aside = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".old"))
            os.replace(target, aside / "old")
            os.replace(staging, target)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def safe_extract_zip(archive: str | Path, target: str | Path) -> Path:
    """Extract a zip into ``target``, refusing members that would land outside it (zip slip).

    Extraction happens in a temporary sibling folder that is renamed into place at the end, so a
    failure never leaves a half-extracted ``target``.
    """
    target = Path(target).resolve()
    try:
        zipfile.ZipFile(archive).close()
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"{archive} is not a readable zip archive ({exc}); download it again") from None
    with atomic_folder(target) as staging, zipfile.ZipFile(archive) as zf:
        staging = staging.resolve()
        for member in zf.infolist():
            out = (staging / member.filename).resolve()
            if staging != out and staging not in out.parents:
                raise UnsafeArchiveError(f"archive member {member.filename!r} would be written outside {target}")
            if member.is_dir():
                out.mkdir(parents=True, exist_ok=True)
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(member) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst)
    return target
