import hashlib
import subprocess
import zipfile

import pytest

from helpers.core.download import (
    ChecksumError,
    UnsafeArchiveError,
    atomic_write_bytes,
    download,
    file_checksum,
    safe_extract_zip,
    verify_checksum,
)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_download_verifies_and_renames(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"hello course" * 1000)
    dest = tmp_path / "cache" / "file.bin"
    download(src.as_uri(), dest, f"sha256:{_sha256(src.read_bytes())}")
    assert dest.read_bytes() == src.read_bytes()
    assert [p.name for p in dest.parent.iterdir()] == ["file.bin"]  # no .part left behind


def test_wrong_checksum_keeps_nothing(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"truncated downl")  # as if the transfer had been cut short
    dest = tmp_path / "cache" / "file.bin"
    with pytest.raises(ChecksumError, match="discarded"):
        download(src.as_uri(), dest, f"sha256:{_sha256(b'truncated download')}")
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []


def test_missing_url_keeps_nothing(tmp_path):
    dest = tmp_path / "cache" / "file.bin"
    with pytest.raises(OSError):
        download((tmp_path / "nope.bin").as_uri(), dest, None)
    assert list(dest.parent.iterdir()) == []


def test_git_blob_checksum_matches_git(tmp_path):
    path = tmp_path / "blob.txt"
    path.write_bytes("영화 리뷰\tlabel\n".encode())
    git = subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True, check=True).stdout.strip()
    assert file_checksum(path, "gitsha1") == git
    verify_checksum(path, f"gitsha1:{git}")


def test_checksum_format_is_checked(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x")
    with pytest.raises(ValueError, match="sha256"):
        verify_checksum(path, "deadbeef")


def test_atomic_write_replaces_whole_file(tmp_path):
    path = tmp_path / "a" / "out.json"
    atomic_write_bytes(path, b"first")
    atomic_write_bytes(path, b"second")
    assert path.read_bytes() == b"second"
    assert [p.name for p in path.parent.iterdir()] == ["out.json"]


def test_safe_extract_rejects_zip_slip(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok/a.txt", "fine")
        zf.writestr("../../escaped.txt", "bad")
    target = tmp_path / "out"
    with pytest.raises(UnsafeArchiveError):
        safe_extract_zip(archive, target)
    assert not target.exists()
    assert not (tmp_path.parent / "escaped.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["evil.zip"]  # no staging folder left


def test_safe_extract_good_archive(tmp_path):
    archive = tmp_path / "good.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("Actor_01/a.wav", b"RIFF")
    out = safe_extract_zip(archive, tmp_path / "audio")
    assert (out / "Actor_01" / "a.wav").read_bytes() == b"RIFF"
