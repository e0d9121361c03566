"""The course's data sets: one registry, one way to find the files, loaders and splits.

Where files are looked for, in order:

1. an explicit ``path`` given to a loader;
2. the mirror folder named by the environment variable ``COURSE_DATA_DIR`` (read-only is fine:
   nothing is ever written there), laid out like ``COURSE_DATA_DIR/<folder>/<files>``;
3. the course's own cache, ``data/<folder>/`` in the repository (or ``COURSE_CACHE_DIR``);
4. a download from the data set's public source into that cache (atomic, checksum-verified);
5. otherwise a :class:`DataNotFoundError` that says what is missing, where it comes from and where
   to put it.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
import shutil
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.core.download import (
    ChecksumError,
    atomic_folder,
    download,
    file_checksum,
    safe_extract_zip,
    verify_checksum,
)
from helpers.core.env import REPO_ROOT
from helpers.core.inputs import MAX_CLASSES, CourseInputError

MIRROR_ENV = "COURSE_DATA_DIR"
CACHE_ENV = "COURSE_CACHE_DIR"
OFFLINE_ENV = "COURSE_OFFLINE"


class DataCountWarning(UserWarning):
    """A known data set holds fewer (or more) rows than the registry says: part of it is missing or altered."""


def _check_counts(name: str, found: dict[str, int], folder: Path) -> None:
    """Warn loudly (:class:`DataCountWarning`) when the row counts ``found`` differ from the registry's counts."""
    expected = DATASETS[name].counts
    wrong = {k: (found[k], v) for k, v in expected.items() if k in found and found[k] != v}
    if wrong:
        listed = "; ".join(f"{k}: {got:,} rows, expected {want:,}" for k, (got, want) in wrong.items())
        warnings.warn(
            f"{name} in {folder} is not the published data set ({listed}). Results will not match the "
            "course's; restore the files (or delete them to download again)",
            DataCountWarning,
            stacklevel=3,
        )


def labels_from_column(labels: pd.Series, where: str) -> tuple[list[str], pd.Series]:
    """``(label names, integer ids)`` of a label column that holds either names (``joy``) or ids (``0``), not both.

    Ids must run 0..K-1 with every id present; names are sorted. Refused with a one-line :class:`ValueError`
    (``CourseInputError``): a column mixing ids and names, names equal up to case, an id gap (``99999`` in a
    6-class file) and more than :data:`helpers.core.inputs.MAX_CLASSES` classes.
    """
    labels = labels.astype(str).str.strip()
    is_id = labels.str.fullmatch(r"\d{1,9}")
    if is_id.any() and not is_id.all():
        first_id, first_name = labels[is_id].iloc[0], labels[~is_id].iloc[0]
        rows = (
            [int(i) + 2 for i in labels.index[~is_id][:5]]
            if is_id.mean() > 0.5
            else [int(i) + 2 for i in labels.index[is_id][:5]]
        )
        raise CourseInputError(
            f"{where} mixes label ids (e.g. {first_id!r}) and names (e.g. {first_name!r}), lines {rows}; "
            "use one or the other in the whole column"
        )
    if is_id.all():
        ids = labels.astype(int)
        top = int(ids.max())
        if top >= MAX_CLASSES:
            raise CourseInputError(
                f"{where}: label id {top} means {top + 1:,} classes; the course caps classes at "
                f"{MAX_CLASSES:,} (a typo in the label column?)"
            )
        missing = sorted(set(range(top + 1)) - set(ids))
        if missing:
            raise CourseInputError(
                f"{where}: label ids must run 0..K-1 with each present; {top} is the largest but "
                f"{missing[:10]} never occur (a typo in the label column?)"
            )
        return [str(i) for i in range(top + 1)], ids
    names = sorted(set(labels))
    if len(names) > MAX_CLASSES:
        raise CourseInputError(
            f"{where} has {len(names):,} distinct labels; the course caps classes at {MAX_CLASSES:,}"
        )
    folded: dict[str, str] = {}
    for name in names:
        if not name:
            raise CourseInputError(
                f"{where}: some rows have an empty label (lines {[int(i) + 2 for i in labels.index[labels == ''][:5]]})"
            )
        if name.lower() in folded:
            raise CourseInputError(
                f"{where}: labels {folded[name.lower()]!r} and {name!r} differ only in case; write each label one way"
            )
        folded[name.lower()] = name
    return names, labels.map({n: i for i, n in enumerate(names)}).astype(int)


class DataNotFoundError(FileNotFoundError):
    """No copy of a data set could be found or downloaded; the message says how to get one."""

    def _render_traceback_(self) -> list[str]:
        # IPython/Jupyter show this instead of a traceback: the message is the whole story
        return [f"DataNotFoundError: {self}"]


@dataclass(frozen=True)
class DataFile:
    """One file of a data set folder, with its SHA-256 when the published file is fixed."""

    path: str
    sha256: str | None = None


@dataclass(frozen=True)
class Source:
    """A public download: ``url`` is saved as ``filename`` in the cache's ``downloads/`` folder."""

    url: str
    filename: str
    checksum: str | None  # "sha256:…", "md5:…" or "gitsha1:…" (a git blob id)


@dataclass(frozen=True)
class DatasetSpec:
    """Everything the course knows about a data set."""

    name: str
    title: str
    folders: tuple[str, ...]  # folder names accepted in a mirror or cache, first is the cache's
    homepage: str
    license: str
    citation: str
    labels: tuple[str, ...]
    counts: dict[str, int]
    files: tuple[DataFile, ...]  # what a complete folder holds
    sources: tuple[Source, ...] = ()
    build: Callable[[Path, list[Path]], None] | None = None  # turns downloads into ``files``
    manual: str = ""  # how to get it by hand when there is no open download
    label_glosses: tuple[str, ...] = field(default=())

    @property
    def num_labels(self) -> int:
        return len(self.labels)


# --------------------------------------------------------------------------- builders
# Each builder turns the raw public downloads into the folder layout the loaders read
# (the layout of ../shared/data), so a mirror, a cache and a fresh download look the same.


def _write_csv(path: Path, rows: list[tuple[str, object]]) -> None:
    tmp = path.with_name(f".{path.name}.part")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    os.replace(tmp, path)


def _build_emotion_en(folder: Path, downloads: list[Path]) -> None:
    for parquet, split in zip(downloads, ("train", "validation", "test")):
        frame = pd.read_parquet(parquet)
        _write_csv(folder / f"{split}.csv", list(zip(frame["text"], frame["label"].astype(int))))
    (folder / "label_names.txt").write_text("\n".join(EMOTION_EN_LABELS) + "\n", encoding="utf-8")


def _build_nsmc(folder: Path, downloads: list[Path]) -> None:
    for raw in downloads:
        shutil.copyfile(raw, folder / raw.name)


def _build_ko_single_turn(folder: Path, downloads: list[Path]) -> None:
    from openpyxl import load_workbook

    sheet = load_workbook(downloads[0], read_only=True).worksheets[0]
    rows = sheet.iter_rows(values_only=True)
    header = next(rows)
    if tuple(header[:2]) != ("Sentence", "Emotion"):
        raise ValueError(f"unexpected xlsx header {header[:2]!r}; expected ('Sentence', 'Emotion')")
    _write_csv(folder / "ko_single_turn_emotion.csv", [(r[0], r[1]) for r in rows if r[0] is not None])
    (folder / "label_names.tsv").write_text(
        "".join(f"{ko}\t{en}\n" for ko, en in zip(KO_EMOTION_LABELS, KO_EMOTION_GLOSSES)), encoding="utf-8"
    )


def _build_ravdess(folder: Path, downloads: list[Path]) -> None:
    # The Zenodo archive holds Actor_01 … Actor_24 with 48 kHz WAV files; the loaders resample on read.
    safe_extract_zip(downloads[0], folder / "audio")


# --------------------------------------------------------------------------- registry

EMOTION_EN_LABELS = ("sadness", "joy", "love", "anger", "fear", "surprise")
KO_EMOTION_LABELS = ("공포", "놀람", "분노", "슬픔", "중립", "행복", "혐오")
KO_EMOTION_GLOSSES = ("fear", "surprise", "anger", "sadness", "neutral", "happiness", "disgust")
RAVDESS_LABELS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
KEMDY20_LABELS = ("neutral", "happy", "surprise", "angry", "sad", "disqust", "fear")

_HF_EMOTION = "https://huggingface.co/datasets/dair-ai/emotion/resolve/cab853a1dbdf4c42c2b3ef2173804746df8825fe/split"
_NSMC = "https://raw.githubusercontent.com/e9t/nsmc/cc0670e872d4ac27bfe36c87456783004b39ef6c"

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            name="emotion_en",
            title="dair-ai emotion (CARER): English tweets, 6 emotions",
            folders=("emotion_en",),
            homepage="https://huggingface.co/datasets/dair-ai/emotion",
            license="educational and research purposes only (dataset card: license 'other')",
            citation=(
                "Saravia et al. (2018), CARER: Contextualized Affect Representations for Emotion Recognition, EMNLP"
            ),
            labels=EMOTION_EN_LABELS,
            counts={"train": 16_000, "validation": 2_000, "test": 2_000},
            files=(
                DataFile("train.csv", "ace194dd1f110de10ab77ce55edf595fcb7461c09af54cd1006b52b84b179ae4"),
                DataFile("validation.csv", "65556202b68e0ab779dad888ea171ec6d57a9dc45785e055d5652edf1a664439"),
                DataFile("test.csv", "2f8169dc6af336a8522b7763ff06bd56489f26fddfc229bf410042b857074112"),
            ),
            sources=tuple(
                Source(f"{_HF_EMOTION}/{split}-00000-of-00001.parquet", f"emotion_{split}.parquet", f"sha256:{sha}")
                for split, sha in (
                    ("train", "10817f0f2ea42358bc62f69a09dfb8bd71701727df6d5a387bea742f3ea06417"),
                    ("validation", "c70f0e660b5ebd1ea9a37d2a851f516f08a6d6477cdfc11be204e22a2f1102fd"),
                    ("test", "6f8407fa1ca9c310f55781f082ed73812f6551e8dda2c61973123a121869245b"),
                )
            ),
            build=_build_emotion_en,
        ),
        DatasetSpec(
            name="nsmc",
            title="Naver Sentiment Movie Corpus v1.0: Korean movie reviews, binary",
            folders=("nsmc",),
            homepage="https://github.com/e9t/nsmc",
            license="CC0 1.0 (public domain dedication)",
            citation='Lucy Park, "Naver Sentiment Movie Corpus v1.0", https://github.com/e9t/nsmc (2016)',
            labels=("negative", "positive"),
            counts={"train": 150_000, "test": 50_000},
            # The mirror keeps the byte-exact TSVs gzipped; a download keeps them plain. Both are accepted.
            files=(DataFile("ratings_train.txt"), DataFile("ratings_test.txt")),
            sources=(
                Source(
                    f"{_NSMC}/ratings_train.txt",
                    "ratings_train.txt",
                    "gitsha1:ac0dba272895dc1d0b3dd5f11afbeaeb7abe7876",
                ),
                Source(
                    f"{_NSMC}/ratings_test.txt", "ratings_test.txt", "gitsha1:b6cfcd8cd1557bcd9bf06617b0e429ed73e9a367"
                ),
            ),
            build=_build_nsmc,
        ),
        DatasetSpec(
            name="ko_single_turn_emotion",
            title="AI Hub Korean single-turn conversations with 7 emotions",
            folders=("ko_single_turn_emotion",),
            homepage="https://aihub.or.kr (한국어 감정 정보가 포함된 단발성 대화 데이터셋)",
            license="AI Hub terms; redistribution status unclear: use locally for learning",
            citation="AI Hub (NIA, Korea), 한국어 감정 정보가 포함된 단발성 대화 데이터셋",
            labels=KO_EMOTION_LABELS,
            label_glosses=KO_EMOTION_GLOSSES,
            counts={"all": 38_594},
            files=(
                DataFile(
                    "ko_single_turn_emotion.csv", "44bf791b825774fc7332342d667cf276cb9f78fadea08e6ae3b92dd9a88ec6fc"
                ),
            ),
            sources=(
                Source(
                    "https://raw.githubusercontent.com/wisome/data/7ecc7deebd454d31751f77074baa5f0a04b63f7d/"
                    "%ED%95%9C%EA%B5%AD%EC%96%B4_%EB%8B%A8%EB%B0%9C%EC%84%B1_%EB%8C%80%ED%99%94_%EB%8D%B0%EC%9D%B4%ED%84%B0%EC%85%8B.xlsx",
                    "ko_single_turn_emotion.xlsx",
                    "gitsha1:678fc10b38411cf3f6a15f304c5dc60a45231769",
                ),
            ),
            build=_build_ko_single_turn,
            manual="Or download the xlsx from AI Hub (registration required) and convert it with "
            "helpers.core.data.DATASETS['ko_single_turn_emotion'].build(folder, [xlsx_path]).",
        ),
        DatasetSpec(
            name="ravdess_speech",
            title="RAVDESS speech, audio only: English acted speech, 8 emotions",
            folders=("ravdess_speech", "ravdess_speech_16k"),
            homepage="https://zenodo.org/records/1188976",
            license="CC BY-NC-SA 4.0 (non-commercial, share alike)",
            citation=(
                "Livingstone & Russo (2018), The Ryerson Audio-Visual Database of Emotional Speech and Song "
                "(RAVDESS), PLoS ONE 13(5): e0196391"
            ),
            labels=RAVDESS_LABELS,
            counts={"clips_per_actor": 60},
            files=(),  # checked by scanning Actor_XX folders (the mirror has actors 1-20, Zenodo all 24)
            sources=(
                Source(
                    "https://zenodo.org/records/1188976/files/Audio_Speech_Actors_01-24.zip?download=1",
                    "Audio_Speech_Actors_01-24.zip",
                    "md5:bc696df654c87fed845eb13823edef8a",
                ),
            ),
            build=_build_ravdess,
        ),
        DatasetSpec(
            name="kemdy20",
            title="KEMDy20: Korean multimodal emotion (speech, text, bio-signals, several raters)",
            folders=("kemdy20", "KEMDy20"),
            homepage="https://nanum.etri.re.kr/share/kjnoh/KEMDy20",
            license="ETRI research licence: apply on the homepage; not redistributable",
            citation="Noh, K. J. et al., Korean Emotion Multimodal Database in 2020 (KEMDy20), ETRI",
            labels=KEMDY20_LABELS,
            counts={},
            files=(DataFile("annotation"), DataFile("wav")),
            manual="KEMDy20 is distributed by ETRI after a licence request; download it by hand from the "
            "homepage and unpack it so that the folder holds 'annotation/' and 'wav/'.",
        ),
    )
}


# --------------------------------------------------------------------------- resolution


def cache_dir() -> Path:
    """Where downloads and derived files (tokenisations, features) are kept."""
    return Path(os.environ.get(CACHE_ENV) or REPO_ROOT / "data")


def _get_spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown data set {name!r}; the course knows {sorted(DATASETS)}") from None


def _find_file(folder: Path, rel: str) -> Path | None:
    for candidate in (folder / rel, folder / f"{rel}.gz"):
        if candidate.exists():
            return candidate
    return None


_verified: set[tuple[str, int, float]] = set()


def _missing_files(spec: DatasetSpec, folder: Path, verify: bool = True) -> list[str]:
    """Names of the files ``folder`` lacks (or holds in a wrong version) for ``spec``."""
    if not folder.is_dir():
        return [f"{folder} (folder)"]
    if spec.name == "ravdess_speech":
        return [] if any(_ravdess_audio_files(folder)) else [f"{folder}/audio/Actor_XX/*.wav|*.flac"]
    missing = []
    for item in spec.files:
        found = _find_file(folder, item.path)
        if found is None:
            missing.append(item.path)
            continue
        if verify and item.sha256 and found.suffix != ".gz":
            stat = found.stat()
            key = (str(found), stat.st_size, stat.st_mtime)
            if key not in _verified:
                try:
                    verify_checksum(found, f"sha256:{item.sha256}")
                except ChecksumError as exc:
                    raise ChecksumError(
                        f"{exc} (in {folder}; replace it with the published file or remove the folder)"
                    ) from None
                _verified.add(key)
    return missing


def _candidate_folders(spec: DatasetSpec) -> list[tuple[str, Path]]:
    places = []
    mirror = os.environ.get(MIRROR_ENV)
    if mirror:
        places += [(f"mirror ${MIRROR_ENV}", Path(mirror).expanduser() / name) for name in spec.folders]
    places += [("cache", cache_dir() / name) for name in spec.folders]
    return places


def dataset_dir(name: str, path: str | Path | None = None, allow_download: bool | None = None) -> Path:
    """The folder holding data set ``name``, found or downloaded as described in this module's docstring."""
    spec = _get_spec(name)
    if path is not None:
        folder = Path(path).expanduser()
        missing = _missing_files(spec, folder)
        if missing:
            raise DataNotFoundError(_missing_message(spec, [("explicit path", folder)], missing))
        return folder
    tried = _candidate_folders(spec)
    for _, folder in tried:
        if not _missing_files(spec, folder):
            return folder
    if allow_download is None:
        allow_download = os.environ.get(OFFLINE_ENV, "") not in ("1", "true", "yes")
    download_error = None
    if allow_download and spec.sources:
        try:
            return _download_into_cache(spec)
        except (OSError, ChecksumError, ValueError) as exc:  # URLError is an OSError
            download_error = exc
    missing = [f.path for f in spec.files] or ["audio/Actor_XX/*.wav"]
    raise DataNotFoundError(_missing_message(spec, tried, missing, download_error))


def _download_into_cache(spec: DatasetSpec) -> Path:
    target = cache_dir() / spec.folders[0]
    downloads = [
        download(src.url, cache_dir() / "downloads" / src.filename, src.checksum)
        if not (cache_dir() / "downloads" / src.filename).exists()
        else _reverify(cache_dir() / "downloads" / src.filename, src.checksum)
        for src in spec.sources
    ]
    with atomic_folder(target) as staging:
        spec.build(staging, downloads)
        missing = _missing_files(spec, staging)
        if missing:
            raise ChecksumError(f"the downloaded {spec.name} did not give the expected files: {missing}")
    return target


def _reverify(path: Path, checksum: str | None) -> Path:
    try:
        verify_checksum(path, checksum)
    except ChecksumError:
        path.unlink()  # a stale or damaged download: remove it so the next call fetches it again
        raise
    return path


def _missing_message(
    spec: DatasetSpec, tried: list[tuple[str, Path]], missing: list[str], error: Exception | None = None
) -> str:
    lines = [f"Data set '{spec.name}' ({spec.title}) was not found.", "Looked in:"]
    lines += [f"  - {where}: {folder}" for where, folder in tried] or ["  - nowhere"]
    if not os.environ.get(MIRROR_ENV):
        lines.append(
            f"  (the environment variable {MIRROR_ENV} is not set; point it at a folder that holds "
            f"'{spec.folders[-1]}/')"
        )
    lines.append(f"Missing: {', '.join(missing)}")
    if spec.sources:
        lines.append("Public source: " + ", ".join(s.url for s in spec.sources))
        if error is not None:
            lines.append(f"The download failed: {type(error).__name__}: {error}")
        else:
            lines.append(f"Downloads are switched off ({OFFLINE_ENV}=1) or were not allowed.")
    if spec.manual:
        lines.append(spec.manual)
    lines.append(f"Homepage: {spec.homepage}. License: {spec.license}.")
    lines.append(f"Put the files in {cache_dir() / spec.folders[0]} or in ${MIRROR_ENV}/{spec.folders[-1]}.")
    return "\n".join(lines)


def describe(name: str) -> dict[str, object]:
    """Source, license, citation, labels and expected counts of a data set (for notebooks and the README)."""
    spec = _get_spec(name)
    return {
        "name": spec.name,
        "title": spec.title,
        "homepage": spec.homepage,
        "license": spec.license,
        "citation": spec.citation,
        "labels": list(spec.labels),
        "counts": dict(spec.counts),
    }


# --------------------------------------------------------------------------- loaders


def _read_text_file(path: Path) -> str:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise ValueError(f"{path} cannot be read ({exc}); the file is damaged or truncated: replace it") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not UTF-8 text ({exc}); re-save it as UTF-8") from None


def _read_labelled_csv(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(io.StringIO(_read_text_file(path)), keep_default_na=False, dtype={"text": str})
    if list(frame.columns[:2]) != ["text", "label"]:
        raise ValueError(f"{path}: expected the columns 'text,label', found {list(frame.columns)}")
    if frame.empty:
        raise ValueError(f"{path} has a header but no rows")
    return frame


def load_emotion_en(path: str | Path | None = None) -> dict[str, pd.DataFrame]:
    """dair-ai emotion as ``{"train", "validation", "test"}`` frames with ``text``, ``label`` (id)
    and ``label_name``."""
    folder = dataset_dir("emotion_en", path)
    splits = {}
    for split in ("train", "validation", "test"):
        frame = _read_labelled_csv(_find_file(folder, f"{split}.csv"))
        frame["label"] = frame["label"].astype(int)
        frame["label_name"] = frame["label"].map(dict(enumerate(EMOTION_EN_LABELS)))
        splits[split] = frame
    _check_counts("emotion_en", {k: len(v) for k, v in splits.items()}, folder)
    return splits


def load_nsmc(path: str | Path | None = None) -> dict[str, pd.DataFrame]:
    """NSMC's official ``train`` (150k) and ``test`` (50k) splits with ``id``, ``text`` and ``label`` (0/1).

    The 8 empty reviews are kept as empty strings, so the split sizes stay the official ones.
    """
    folder = dataset_dir("nsmc", path)
    splits = {}
    for split in ("train", "test"):
        file = _find_file(folder, f"ratings_{split}.txt")
        text = _read_text_file(file)
        frame = pd.read_csv(io.StringIO(text), sep="\t", keep_default_na=False, dtype={"document": str})
        missing = {"id", "document", "label"} - set(frame.columns)
        if missing:
            raise ValueError(
                f"{file}: expected the tab-separated columns id, document, label; found {list(frame.columns)}"
            )
        frame = frame.rename(columns={"document": "text"})
        labels = pd.to_numeric(frame["label"], errors="coerce")
        bad = frame.index[~labels.isin([0, 1])]
        if len(bad):
            raise ValueError(
                f"{file}: labels must be 0 or 1; data rows {[int(i) + 1 for i in bad[:10]]} hold "
                f"{frame['label'].iloc[bad[:10]].tolist()}"
            )
        frame["label"] = labels.astype(int)
        splits[split] = frame
    _check_counts("nsmc", {k: len(v) for k, v in splits.items()}, folder)
    return splits


def load_ko_single_turn_emotion(path: str | Path | None = None) -> pd.DataFrame:
    """The 38,594 Korean sentences with ``text``, ``label`` (Korean name), ``label_id`` and ``label_en``.

    Texts are stripped of surrounding white space (5,334 rows have some); nothing else is changed.
    """
    folder = dataset_dir("ko_single_turn_emotion", path)
    frame = _read_labelled_csv(folder / "ko_single_turn_emotion.csv")
    frame["text"] = frame["text"].str.strip()
    unknown = sorted(set(frame["label"]) - set(KO_EMOTION_LABELS))
    if unknown:
        raise ValueError(f"unknown labels in ko_single_turn_emotion: {unknown}")
    frame["label_id"] = frame["label"].map({name: i for i, name in enumerate(KO_EMOTION_LABELS)})
    frame["label_en"] = frame["label"].map(dict(zip(KO_EMOTION_LABELS, KO_EMOTION_GLOSSES)))
    _check_counts("ko_single_turn_emotion", {"all": len(frame)}, folder)
    return frame


_RAVDESS_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")
_RAVDESS_STATEMENTS = {1: "Kids are talking by the door", 2: "Dogs are sitting by the door"}


def _ravdess_audio_files(folder: Path):
    for pattern in ("audio/Actor_*/*.flac", "audio/Actor_*/*.wav", "Actor_*/*.wav", "Actor_*/*.flac"):
        yield from sorted(folder.glob(pattern))


def parse_ravdess_filename(name: str) -> dict[str, object]:
    """Decode a RAVDESS file name such as ``03-01-05-02-01-01-12.wav`` into its fields."""
    match = _RAVDESS_NAME.match(Path(name).stem)
    if not match:
        raise ValueError(f"{name!r} is not a RAVDESS file name (MM-VC-EM-IN-ST-RE-AC)")
    modality, channel, emotion, intensity, statement, repetition, actor = (int(g) for g in match.groups())
    if not 1 <= emotion <= 8 or intensity not in (1, 2) or statement not in (1, 2):
        raise ValueError(f"{name!r} has codes outside the RAVDESS scheme")
    return {
        "emotion": RAVDESS_LABELS[emotion - 1],
        "emotion_id": emotion,
        "intensity": "normal" if intensity == 1 else "strong",
        "statement_id": statement,
        "transcript": _RAVDESS_STATEMENTS[statement],
        "repetition": repetition,
        "actor": f"{actor:02d}",
        "gender": "male" if actor % 2 else "female",
        "modality": modality,
        "vocal_channel": channel,
    }


RAVDESS_ACTORS = tuple(range(1, 21))  # the course's folds and published results use actors 01-20 everywhere


def load_ravdess(path: str | Path | None = None, actors=RAVDESS_ACTORS) -> pd.DataFrame:
    """RAVDESS speech clips as a frame: ``filepath`` (absolute), ``emotion``, ``label`` (0-7), ``actor``, ...

    Reads ``metadata.csv`` when the folder has one (the mirror), else decodes the file names
    (a fresh Zenodo download). Only speech clips (vocal channel 01) are kept. ``actors`` keeps those actor
    numbers: by default 1-20, the actors of the course's mirror, so the speaker folds and the published
    comparison are the same on every machine; a full download (24 actors, on Colab) says in one printed line
    that 21-24 are left out (``actors=range(21, 25)``: an extra speaker-independent check; ``None``: all).
    """
    folder = dataset_dir("ravdess_speech", path)
    meta_path = folder / "metadata.csv"
    if meta_path.exists():
        try:
            frame = pd.read_csv(meta_path, dtype={"actor": str, "path": str, "emotion": str})
        except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise ValueError(
                f"{meta_path} is not a readable CSV ({exc}); fix it or delete it to decode the file names"
            ) from None
        missing = {"path", "emotion"} - set(frame.columns)
        if missing:
            raise ValueError(f"{meta_path} lacks the column(s) {sorted(missing)}; found {list(frame.columns)}")
        unknown = frame.index[~frame["emotion"].isin(RAVDESS_LABELS)]
        if len(unknown):
            raise ValueError(
                f"{meta_path}: data rows {[int(i) + 1 for i in unknown[:10]]} name emotions "
                f"{frame['emotion'].iloc[unknown[:10]].tolist()} outside {list(RAVDESS_LABELS)}"
            )
        for row, rel in enumerate(frame["path"], start=2):  # relative, no '..' (a symlinked audio/ folder is fine)
            if not isinstance(rel, str) or not rel.strip() or Path(rel).is_absolute() or ".." in Path(rel).parts:
                raise ValueError(
                    f"{meta_path}, line {row}: path {rel!r} leaves the data folder; paths must be relative "
                    "to it, without '..' (fix metadata.csv)"
                )
        frame["filepath"] = [str(folder / p) for p in frame["path"]]
    else:
        rows = []
        for file in _ravdess_audio_files(folder):
            try:
                info = parse_ravdess_filename(file.name)
            except ValueError:
                continue  # stray files (README, .DS_Store) are not clips
            if info["vocal_channel"] == 1:
                rows.append({"path": str(file.relative_to(folder)), "filepath": str(file), **info})
        if not rows:
            raise DataNotFoundError(
                f"{folder} holds no RAVDESS speech clips (audio/Actor_XX/03-01-EM-IN-ST-RE-AC.wav "
                "or .flac); the folder is incomplete"
            )
        frame = pd.DataFrame(rows)
    frame["label"] = frame["emotion"].map({name: i for i, name in enumerate(RAVDESS_LABELS)})
    _check_ravdess_counts(frame, folder)  # the folder as it is: complete or not, before choosing actors
    if actors is not None:
        wanted = {int(a) for a in actors}
        number = (
            pd.to_numeric(frame["actor"], errors="coerce")
            if "actor" in frame
            else pd.to_numeric(frame["path"].str.extract(r"(\d\d)\.\w+$")[0], errors="coerce")
        )
        keep = number.isin(wanted)
        if not keep.any():
            raise ValueError(f"RAVDESS in {folder} has no clip of actors {sorted(wanted)}")
        left = sorted(int(a) for a in number[~keep].dropna().unique())
        if left:
            print(
                f"RAVDESS: actors {left[0]:02d}-{left[-1]:02d} ({int((~keep).sum()):,} clips) are left out: "
                f"the course's folds use actors {min(wanted):02d}-{max(wanted):02d} "
                "(load_ravdess(actors=range(21, 25)) gives the others, an extra speaker-independent test)"
                if actors is RAVDESS_ACTORS
                else f"RAVDESS: {int((~keep).sum()):,} clips of actors outside {sorted(wanted)} left out"
            )
        frame = frame[keep]
    return frame.sort_values("path").reset_index(drop=True)


def _check_ravdess_counts(frame: pd.DataFrame, folder: Path) -> None:
    """Warn (:class:`DataCountWarning`) unless actors 1..N each have the 60 speech clips RAVDESS has per actor."""
    per_actor = DATASETS["ravdess_speech"].counts["clips_per_actor"]
    actors = pd.to_numeric(
        frame["actor"] if "actor" in frame else frame["path"].str.extract(r"(\d\d)\.\w+$")[0], errors="coerce"
    )
    counts = actors.value_counts()
    if counts.empty:
        return
    # Zenodo's RAVDESS has actors 1-24; the course's 16 kHz mirror (ravdess_speech_16k) holds actors 1-20
    top = max(int(counts.index.max()), 20 if folder.name == "ravdess_speech_16k" else 24)
    short = {a: int(counts.get(a, 0)) for a in range(1, top + 1) if counts.get(a, 0) != per_actor}
    if short:
        listed = ", ".join(f"actor {a:02d}: {n}" for a, n in list(short.items())[:10])
        expected = per_actor * top
        warnings.warn(
            f"RAVDESS in {folder} has {len(frame):,} clips, expected {expected:,} ({per_actor} for each of actors "
            f"1-{top}); clips per actor: {listed}{' …' if len(short) > 10 else ''}. Restore the missing "
            "files (metadata.csv cut short?) or results will not match the course's",
            DataCountWarning,
            stacklevel=3,
        )


# --------------------------------------------------------------------------- splits


def stratified_split(
    frame: pd.DataFrame, label_col: str = "label", test_size: float = 0.1, val_size: float = 0.1, seed: int = 42
) -> dict[str, pd.DataFrame]:
    """Split into stratified, seed-fixed ``train`` / ``validation`` / ``test`` frames.

    ``test_size`` and ``val_size`` are fractions of the whole frame; ``val_size=0`` gives no validation split.
    """
    from sklearn.model_selection import train_test_split

    if not 0 < test_size < 1 or not 0 <= val_size < 1 or test_size + val_size >= 1:
        raise ValueError(f"test_size={test_size} and val_size={val_size} must be fractions that sum below 1")
    if frame[label_col].isna().any():
        raise ValueError(
            f"column {label_col!r} has missing labels in rows {list(frame.index[frame[label_col].isna()][:10])}"
        )
    rest, test = train_test_split(frame, test_size=test_size, stratify=frame[label_col], random_state=seed)
    splits = {"test": test}
    if val_size:
        rest, val = train_test_split(
            rest, test_size=val_size / (1 - test_size), stratify=rest[label_col], random_state=seed
        )
        splits["validation"] = val
    splits["train"] = rest
    return {k: splits[k].reset_index(drop=True) for k in ("train", "validation", "test") if k in splits}


def speaker_split(
    frame: pd.DataFrame, speaker_col: str = "actor", test_speakers: int = 4, val_speakers: int = 2, seed: int = 42
) -> dict[str, pd.DataFrame]:
    """Speaker-independent split: no speaker appears in two of ``train`` / ``validation`` / ``test``.

    Speakers are shuffled with ``seed`` and dealt out; for RAVDESS the halves are kept gender-balanced
    by alternating male and female actors when both are present.
    """
    speakers = sorted(frame[speaker_col].unique())
    if test_speakers + val_speakers >= len(speakers):
        raise ValueError(
            f"{len(speakers)} speakers cannot give {test_speakers} test and {val_speakers} validation speakers"
        )
    rng = np.random.default_rng(seed)
    order = list(rng.permutation(speakers))
    if "gender" in frame:
        gender = frame.groupby(speaker_col)["gender"].first()
        male = [s for s in order if gender[s] == "male"]
        female = [s for s in order if gender[s] != "male"]
        order = [s for pair in zip(male, female) for s in pair] + male[len(female) :] + female[len(male) :]
    test, val = order[:test_speakers], order[test_speakers : test_speakers + val_speakers]
    train = order[test_speakers + val_speakers :]
    return {
        name: frame[frame[speaker_col].isin(group)].reset_index(drop=True)
        for name, group in (("train", train), ("validation", val), ("test", test))
        if group
    }


def speaker_folds(
    frame: pd.DataFrame, n_folds: int = 5, speaker_col: str = "actor"
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train_index, test_index)`` pairs of a group k-fold by speaker, for mean ± std over folds."""
    from sklearn.model_selection import GroupKFold

    return list(GroupKFold(n_splits=n_folds).split(frame, groups=frame[speaker_col]))


def subsample(frame: pd.DataFrame, n: int | None, label_col: str = "label", seed: int = 42) -> pd.DataFrame:
    """A stratified subset of ``n`` rows (the whole frame when ``n`` is None or not smaller)."""
    if n is None or n >= len(frame):
        return frame.reset_index(drop=True)
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    from sklearn.model_selection import train_test_split

    counts = frame[label_col].value_counts()
    stratify = frame[label_col] if counts.min() >= 2 and n >= len(counts) else None
    part, _ = train_test_split(frame, train_size=n, stratify=stratify, random_state=seed)
    return part.reset_index(drop=True)


__all__ = [
    "DATASETS",
    "DataNotFoundError",
    "dataset_dir",
    "describe",
    "cache_dir",
    "file_checksum",
    "load_emotion_en",
    "load_nsmc",
    "load_ko_single_turn_emotion",
    "load_ravdess",
    "parse_ravdess_filename",
    "stratified_split",
    "speaker_split",
    "speaker_folds",
    "subsample",
]
