"""Score any model folder the course saved on a labelled file, from the command line.

    python -m helpers.cli.evaluate --model models/02_lstm_emotion_en --data my_tweets.csv [--out report.json]

Text models (the LSTM folders of notebooks 02/03, the transformers folders of notebooks 05/06) read a CSV with
the columns ``text,label``; labels may be names (``joy``) or ids (``1``). Speech models (the SpeechCNN folders of
notebook 08, ``Wav2Vec2ForSequenceClassification`` folders of notebook 09) read a folder holding ``metadata.csv``
with ``path,emotion`` (paths relative to that folder). Rows that cannot be scored (missing text, unknown label,
missing, corrupt, silent or too short audio) are reported with their row number and left out; the rest are
scored. The report prints accuracy, macro-F1, balanced accuracy and MCC and is written as JSON (atomically).

How each kind of folder is recognised (from its ``config.json``; nothing in the folder is ever executed:
weights are read with ``torch.load(weights_only=True)`` or safetensors, ``trust_remote_code`` is never set):

- ``"task": "text-classification-lstm"``: :func:`helpers.text.lstm.load_text_classifier`;
- ``"task": "speech-emotion-cnn"``: :func:`helpers.audio.cnn.load_speech_cnn`; the features are recomputed from
  each clip with the settings the config stores (``features``, ``n_frames``, ``normalize``), as in training;
- ``"model_type": "wav2vec2"``: ``Wav2Vec2ForSequenceClassification`` + ``AutoFeatureExtractor`` from the
  folder (local files only); the preprocessing notebook 09 stores under ``course`` in ``config.json``
  (``trim_db``: silence trimming; ``clip_seconds``: centre crop, then zero padding at the end to that length) is
  repeated; without it each clip is scored whole, at its own length;
- ``"task": "text-classification-encoder"``: :func:`helpers.text.encoder_finetune.load_encoder_classifier` (a
  pretrained encoder fine-tuned by ``python -m helpers.cli.train_text finetune``; prefix and length from its config);
- any other ``…ForSequenceClassification`` (BERT, RoBERTa, MiniLM …): :class:`helpers.text.hf_finetune.EmotionClassifier`.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from helpers.core.download import atomic_write_bytes
from helpers.core.inputs import CourseInputError, check_number, describe_os_error
from helpers.core.model_folder import read_model_config
from helpers.core.metrics import classification_metrics


class EvaluationError(CourseInputError):
    """The model or the data cannot be evaluated at all (the message says why)."""


CHUNK_ROWS = 2_048  # rows read, decoded and scored at a time: memory per input is bounded whatever the file's size
MAX_PROBLEMS_LISTED = 1_000  # problem rows kept in the report; the rest are counted
MAX_SECONDS = 60.0  # longest clip the evaluator decodes (--max-seconds)


@dataclass
class LoadedModel:
    """A saved model reduced to what scoring needs: its kind, label names and a batch probability function."""

    kind: str  # "text" or "audio"
    label_names: list[str]
    predict_proba: Callable[[Sequence], np.ndarray]
    description: str


@dataclass
class Report:
    model: str
    data: str
    metrics: dict = field(default_factory=dict)
    rows_total: int = 0
    rows_scored: int = 0
    problems: list[dict] = field(default_factory=list)  # {"row": n, "problem": "..."}, the first 1,000
    problems_total: int = 0


# --------------------------------------------------------------------------- loading models


def load_model(folder: str | Path, max_seconds: float | None = MAX_SECONDS) -> LoadedModel:
    """Recognise a saved model folder by its ``config.json`` and load it (never running code from the folder).

    ``max_seconds``: speech models refuse clips longer than this (read from the header, before decoding).
    """
    global _max_seconds
    _max_seconds = max_seconds
    folder = Path(folder)
    try:
        config = read_model_config(folder)
    except (FileNotFoundError, ValueError) as exc:
        raise EvaluationError(str(exc)) from None
    from helpers.text.hf_finetune import load_errors

    errors = (*load_errors(), TypeError)
    try:
        loaded = _load_known_model(folder, config)
        from helpers.core.model_folder import check_label_list

        check_label_list(list(loaded.label_names), f"{folder}: the model's labels")
        return loaded
    except EvaluationError:
        raise
    except errors as exc:
        # incomplete or damaged folders: missing weights, a truncated model.pt, a config that does not fit
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise EvaluationError(f"{folder}: the model cannot be loaded ({type(exc).__name__}: {first_line})") from None


def _load_known_model(folder: Path, config: dict) -> LoadedModel:
    task = config.get("task")
    if task == "text-classification-lstm":
        from helpers.text.lstm import load_text_classifier

        clf = load_text_classifier(folder)
        return LoadedModel("text", clf.label_names, clf.predict_proba, f"LSTM classifier ({config.get('tokenizer')})")
    if task == "text-classification-macaron-conv-attention":
        return _load_macaron(folder)
    if task == "text-classification-encoder":  # train_text finetune / notebook 06's E5 (helpers.text.encoder_finetune)
        from helpers.text.encoder_finetune import load_for_evaluation

        labels, predict, what = load_for_evaluation(folder)
        return LoadedModel("text", labels, predict, what)
    if config.get("model_type") in AUDIO_MODEL_TYPES:  # before the text branch: also a …ForSequenceClassification
        return AUDIO_MODEL_TYPES[config["model_type"]](folder, config)
    architectures = config.get("architectures") or []
    if any(isinstance(a, str) and a.endswith("ForSequenceClassification") for a in architectures):
        from helpers.text.hf_finetune import EmotionClassifier

        clf = EmotionClassifier.from_folder(folder)
        return LoadedModel("text", clf.label_names, clf.predict_proba, f"{architectures[0]} ({config.get('model_type')})")
    if task in AUDIO_LOADERS:
        return AUDIO_LOADERS[task](folder, config)
    known = ["text-classification-lstm", "text-classification-macaron-conv-attention", "text-classification-encoder",
             "…ForSequenceClassification", *AUDIO_LOADERS, *(f"model_type={t}" for t in AUDIO_MODEL_TYPES)]
    raise EvaluationError(f"{folder} holds a model the evaluator does not know (task={task!r}, "
                          f"model_type={config.get('model_type')!r}); it reads {known}")


def _load_macaron(folder: Path) -> LoadedModel:
    """Notebook 07's Macaron encoder: its weights, and the subword tokenizer named in its config.

    The tokenizer is read from ``folder/tokenizer/`` when the folder carries one, else from the path stored at
    save time (``extra["tokenizer"]``, relative to the repository), which notebook 04 writes. That path must stay
    inside the model folder or the repository's ``models/`` folder (no absolute path, no ``..``).
    """
    import torch
    from transformers import AutoTokenizer

    from helpers.core.env import REPO_ROOT
    from helpers.core.model_folder import confined_path, load_pretrained
    from helpers.text.macaron import load_macaron
    from helpers.text.pipeline import pad_batch

    model, extra = load_macaron(folder)
    if not isinstance(extra, dict):
        raise EvaluationError(f"{folder}/config.json: 'extra' must be a JSON object; save the model again")
    candidates = [folder / "tokenizer"]
    if extra.get("tokenizer"):
        rel = str(extra["tokenizer"]) if isinstance(extra["tokenizer"], str) else extra["tokenizer"]
        rel = rel.removeprefix("models/") if isinstance(rel, str) else rel  # saved relative to the repository
        candidates.append(confined_path(rel, [folder, REPO_ROOT / "models"], f"{folder}/config.json extra.tokenizer"))
    tokenizer_dir = next((c for c in candidates if (c / "tokenizer.json").is_file()), None)
    if tokenizer_dir is None:
        raise EvaluationError(f"{folder}: its tokenizer is missing (looked in {', '.join(str(c) for c in candidates)}); "
                              "run notebook 04 (or 07) to write it, or copy it into the model folder as tokenizer/")
    tokenizer = load_pretrained(AutoTokenizer, tokenizer_dir, local_files_only=True)
    labels = [str(x) for x in extra.get("labels") or range(model.config.num_classes)]
    if len(labels) != model.config.num_classes:
        raise EvaluationError(f"{folder}/config.json lists {len(labels)} labels for a {model.config.num_classes}-class model")
    max_len = extra.get("max_len", 64)

    def predict_proba(texts: list[str]) -> np.ndarray:
        ids = tokenizer(list(texts), truncation=True, max_length=max_len, return_token_type_ids=False)["input_ids"]
        ids = [x if x else [tokenizer.unk_token_id] for x in ids]
        x, lengths = pad_batch(ids, tokenizer.pad_token_id)
        with torch.no_grad():
            return torch.softmax(model(x, lengths), dim=-1).numpy()

    return LoadedModel("text", labels, predict_proba, f"Macaron encoder + conv-attention head ({tokenizer_dir.name})")


# --------------------------------------------------------------------------- speech models
# The loaders import torch, transformers and the audio helpers only when a speech model is evaluated.

_FEATURE_ARGS = ("sr", "n_fft", "win_length", "hop_length", "n_mels", "fmin", "fmax", "top_db")


def speech_cnn_features(wave: np.ndarray, config: dict) -> np.ndarray:
    """The ``(1, n_features, n_frames)`` input a SpeechCNN saved with ``config`` was trained on, from a mono clip.

    Repeats the training pipeline of notebook 08 (:func:`helpers.audio.features.extract_features` then
    :class:`helpers.audio.cnn.FeatureDataset` at evaluation): optional silence trimming (``trim_db``),
    log-mel or MFCC features with the stored settings, per-utterance normalisation of every feature row
    (``normalize``: ``"band"`` / ``"per-utterance"`` / missing; ``"utterance"`` for one mean and std per clip;
    ``null`` / ``"none"`` for none) and a centred crop or pad to ``n_frames``.
    """
    from helpers.audio import features as audio

    settings = config.get("features") or {}
    kind = settings.get("kind", "logmel")
    common = {k: settings[k] for k in _FEATURE_ARGS if settings.get(k) is not None}
    if settings.get("trim_db") is not None:
        wave = audio.trim_silence(wave, float(settings["trim_db"]))
    if kind == "logmel":
        features = audio.log_mel_spectrogram(wave, **common)
    elif kind == "mfcc":
        features = audio.mfcc(wave, n_mfcc=int(settings.get("n_mfcc", 40)), **common)
    else:
        raise EvaluationError(f"the model's config names feature kind {kind!r}; the evaluator computes 'logmel' and 'mfcc'")
    normalize = config.get("normalize", "band")
    if normalize in ("band", "per-band", "per-utterance", True):
        features = audio.normalize_utterance(features, per_band=True)
    elif normalize == "utterance":
        features = audio.normalize_utterance(features, per_band=False)
    elif normalize not in (None, False, "none"):
        raise EvaluationError(f"the model's config names normalisation {normalize!r}; known: band, utterance, none")
    return audio.fixed_frames(features, int(config["n_frames"]))[None].astype(np.float32)


def _load_speech_cnn(folder: Path, config: dict) -> LoadedModel:
    import torch

    from helpers.audio.features import TARGET_SR, load_audio
    from helpers.audio.cnn import load_speech_cnn

    model, config = load_speech_cnn(folder)
    labels = config.get("labels") or config.get("label_names")
    if not isinstance(labels, list) or len(labels) != model.config["num_classes"]:
        raise EvaluationError(f"{folder}/config.json must list the {model.config['num_classes']} label names under 'labels'")
    if not isinstance(config.get("n_frames"), int) or config["n_frames"] < 1:
        raise EvaluationError(f"{folder}/config.json lacks 'n_frames' (the fixed input length the model was trained on)")
    if model.config["in_channels"] != 1:
        raise EvaluationError(f"{folder}: a SpeechCNN with {model.config['in_channels']} input channels; the evaluator builds 1-channel features")
    settings = config.get("features") or {}
    sr, min_seconds = int(settings.get("sr") or TARGET_SR), float(settings.get("min_seconds", 0.25))

    @torch.no_grad()
    def probabilities(features: list[np.ndarray]) -> np.ndarray:
        return torch.softmax(model(torch.from_numpy(np.stack(features))).float(), dim=1).numpy()

    # one second of a tone through features and model: a config that does not fit fails here, not on every row
    probabilities([speech_cnn_features((0.1 * np.sin(np.arange(sr) * 2 * np.pi * 220 / sr)).astype(np.float32), config)])

    def predict_proba(paths: Sequence[str]) -> np.ndarray:
        return probabilities([speech_cnn_features(load_audio(p, sr=sr, min_seconds=min_seconds, max_seconds=_max_seconds), config)
                              for p in paths])

    kind = settings.get("kind", "logmel")
    return LoadedModel("audio", [str(n) for n in labels], predict_proba,
                       f"SpeechCNN on {kind} features ({config['n_frames']} frames)")


def _load_wav2vec2(folder: Path, config: dict) -> LoadedModel:
    import torch
    from transformers import AutoFeatureExtractor, Wav2Vec2ForSequenceClassification

    from helpers.audio.features import load_audio, trim_silence
    from helpers.text.hf_finetune import label_names_of

    if not (folder / "preprocessor_config.json").is_file():
        raise EvaluationError(f"{folder} has no preprocessor_config.json: save the feature extractor with the model "
                              "(Wav2Vec2FeatureExtractor.save_pretrained(folder))")
    from helpers.core.model_folder import load_pretrained

    model = load_pretrained(Wav2Vec2ForSequenceClassification, folder, local_files_only=True).eval()
    extractor = load_pretrained(AutoFeatureExtractor, folder, local_files_only=True)
    course = config.get("course") or {}  # notebook 09's preprocessing (helpers.audio.wav2vec.save_wav2vec2)
    sr = int(course.get("sampling_rate") or extractor.sampling_rate)
    trim_db = course.get("trim_db")
    n_samples = int(round(float(course["clip_seconds"]) * sr)) if course.get("clip_seconds") else None

    def inputs_of(wave: np.ndarray) -> dict:
        if trim_db is not None:
            wave = trim_silence(wave, float(trim_db))
        if n_samples is None:  # no fixed length stored: the clip as it is
            encoded = extractor(wave, sampling_rate=sr, return_tensors="pt")
        else:  # centre crop, then normalised over the real samples and zero-padded at the end, as in training
            if len(wave) > n_samples:
                start = (len(wave) - n_samples) // 2
                wave = wave[start:start + n_samples]
            encoded = extractor(wave, sampling_rate=sr, padding="max_length", max_length=n_samples,
                                return_attention_mask=True, return_tensors="pt")
            if not extractor.return_attention_mask:
                encoded.pop("attention_mask")
        return {k: v for k, v in encoded.items() if k in ("input_values", "attention_mask")}

    @torch.no_grad()
    def predict_proba(paths: Sequence[str]) -> np.ndarray:
        inputs = [inputs_of(load_audio(p, sr=sr, max_seconds=_max_seconds)) for p in paths]  # one batch of clips at a time
        logits = torch.cat([model(**x).logits for x in inputs])
        return torch.softmax(logits.float(), dim=1).numpy()

    length = f"{n_samples / sr:.2f} s clips" if n_samples else "clips at their own length"
    return LoadedModel("audio", label_names_of(model), predict_proba, f"Wav2Vec2ForSequenceClassification ({length})")


_max_seconds: float | None = MAX_SECONDS  # set by load_model, read by the speech loaders' predict_proba

# Speech model formats register here: course save formats by their config's task, transformers models by model_type.
AUDIO_LOADERS: dict[str, Callable[[Path, dict], LoadedModel]] = {"speech-emotion-cnn": _load_speech_cnn}
AUDIO_MODEL_TYPES: dict[str, Callable[[Path, dict], LoadedModel]] = {"wav2vec2": _load_wav2vec2}


# --------------------------------------------------------------------------- reading data


def _label_index(label_names: list[str]) -> Callable[[object], int | None]:
    by_name = {name.lower(): i for i, name in enumerate(label_names)}

    def index(value: object) -> int | None:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return None
        text = str(value).strip()
        if text.lower() in by_name:
            return by_name[text.lower()]
        if text.lstrip("-").isdigit() and 0 <= int(text) < len(label_names):
            return int(text)
        return None

    return index


def _csv_chunks(path: Path, chunk_rows: int = CHUNK_ROWS):
    """A CSV read as strings, ``chunk_rows`` rows at a time, with clear errors for the usual ways a file is not one."""
    try:
        reader = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8", chunksize=chunk_rows)
        with reader:
            yield from reader
    except UnicodeDecodeError as exc:
        raise EvaluationError(f"{path} is not UTF-8 ({exc}); re-save it as UTF-8") from None
    except pd.errors.EmptyDataError:
        raise EvaluationError(f"{path} is empty") from None
    except pd.errors.ParserError as exc:
        raise EvaluationError(f"{path} is not a readable CSV: {str(exc).strip()}") from None


def _read_csv(path: Path) -> pd.DataFrame:
    """A whole CSV read as strings (small files; :func:`evaluate` reads in chunks)."""
    chunks = list(_csv_chunks(path))
    return pd.concat(chunks, ignore_index=True) if len(chunks) > 1 else chunks[0]


def _cell(value: object) -> str:
    """A CSV cell as text ("" for a missing one: a short row gives NaN even with ``keep_default_na=False``)."""
    return value if isinstance(value, str) else ""


def _problem(report: Report, row: int, problem: str) -> None:
    report.problems_total += 1
    if len(report.problems) < MAX_PROBLEMS_LISTED:
        report.problems.append({"row": row, "problem": problem})


def _text_rows(frame: pd.DataFrame, path: Path, index, label_names, report: Report, first_row: int):
    missing = {"text", "label"} - set(frame.columns)
    if missing:
        raise EvaluationError(f"{path} lacks the column(s) {sorted(missing)}; found {list(frame.columns)}")
    texts, labels, rows = [], [], []
    for row, (text, label) in enumerate(zip(frame["text"], frame["label"]), start=first_row):
        text, label_id = _cell(text), index(_cell(label))
        if not text.strip():
            _problem(report, row, "empty text")
        elif label_id is None:
            _problem(report, row, f"unknown label {_cell(label)!r}; the model knows {label_names}")
        else:
            texts.append(text)
            labels.append(label_id)
            rows.append(row)
    return texts, labels, rows


def _audio_rows(frame: pd.DataFrame, folder: Path, index, label_names, report: Report, first_row: int):
    meta = folder / "metadata.csv"
    missing = {"path", "emotion"} - set(frame.columns)
    if missing:
        raise EvaluationError(f"{meta} lacks the column(s) {sorted(missing)}; found {list(frame.columns)}")
    paths, labels, rows = [], [], []
    for row, (rel, emotion) in enumerate(zip(frame["path"], frame["emotion"]), start=first_row):
        rel, emotion = _cell(rel).strip(), _cell(emotion)
        label_id = index(emotion)
        path = (folder / rel).resolve()
        if label_id is None:
            _problem(report, row, f"unknown emotion {emotion!r}; the model knows {label_names}")
        elif not rel:
            _problem(report, row, "empty path")
        elif Path(rel).is_absolute() or ".." in Path(rel).parts:
            _problem(report, row, f"path {rel!r} leaves the data folder (paths are relative to it, without '..')")
        elif not path.is_file():
            _problem(report, row, f"no audio file at {rel}")
        else:
            paths.append(str(path))
            labels.append(label_id)
            rows.append(row)
    return paths, labels, rows


def read_text_rows(path: Path, label_names: list[str], report: Report, rows: list[int] | None = None) -> tuple[list[str], list[int]]:
    """Texts and label ids from a ``text,label`` CSV; problem rows go into ``report.problems``.

    ``rows``, when given, receives the file's row number (the header is row 1) of every returned text.
    """
    frame = _read_csv(path)
    report.rows_total = len(frame)
    texts, labels, found = _text_rows(frame, path, _label_index(label_names), label_names, report, 2)
    if rows is not None:
        rows.extend(found)
    return texts, labels


def read_audio_rows(folder: Path, label_names: list[str], report: Report, rows: list[int] | None = None) -> tuple[list[str], list[int]]:
    """Clip paths and label ids from ``<folder>/metadata.csv`` (``path,emotion``); missing files are problems.

    ``rows``, when given, receives the row number in ``metadata.csv`` of every returned clip.
    """
    meta = folder / "metadata.csv"
    if not meta.is_file():
        raise EvaluationError(f"{folder} has no metadata.csv with the columns path,emotion")
    frame = _read_csv(meta)
    report.rows_total = len(frame)
    paths, labels, found = _audio_rows(frame, folder, _label_index(label_names), label_names, report, 2)
    if rows is not None:
        rows.extend(found)
    return paths, labels


# --------------------------------------------------------------------------- scoring


def evaluate(model_dir: str | Path, data: str | Path, batch_size: int = 64, max_seconds: float | None = MAX_SECONDS,
             progress: bool = False, chunk_rows: int = CHUNK_ROWS) -> Report:
    """Score the model in ``model_dir`` on ``data`` and return a :class:`Report`.

    The file is read, decoded and scored ``chunk_rows`` rows at a time (a progress bar when ``progress``), so
    memory stays bounded for any number of rows; clips longer than ``max_seconds`` are refused before decoding.
    An item that fails on its own (an unreadable or silent clip: a ``ValueError`` such as
    :class:`helpers.audio.features.AudioError`) is reported with its row number and left out; the others are scored.
    """
    from tqdm.auto import tqdm

    check_number(batch_size, "batch_size", int, 1, 100_000)
    model = load_model(model_dir, max_seconds=max_seconds)
    data = Path(data)
    report = Report(model=str(model_dir), data=str(data))
    if not data.exists():
        raise EvaluationError(f"no data at {data}")
    if model.kind == "text":
        if data.is_dir():
            raise EvaluationError(f"{model.description} reads a CSV of text,label, but {data} is a folder")
        source, read_rows = data, lambda frame, first: _text_rows(frame, data, index, model.label_names, report, first)
    else:
        if not data.is_dir():
            raise EvaluationError(f"{model.description} reads a folder with metadata.csv, but {data} is a file")
        source = data / "metadata.csv"
        if not source.is_file():
            raise EvaluationError(f"{data} has no metadata.csv with the columns path,emotion")
        read_rows = lambda frame, first: _audio_rows(frame, data, index, model.label_names, report, first)  # noqa: E731
    index = _label_index(model.label_names)
    k = len(model.label_names)
    confusion = np.zeros((k, k), dtype=np.int64)
    first_row = 2  # row 1 is the header
    with tqdm(desc=f"scoring {data.name}", unit="row", disable=not progress, leave=False) as bar:
        for frame in _csv_chunks(source, chunk_rows):
            inputs, labels, rows = read_rows(frame, first_row)
            first_row += len(frame)
            report.rows_total += len(frame)
            for start in range(0, len(inputs), batch_size):
                chunk = inputs[start:start + batch_size]
                try:
                    predicted = [int(i) for i in model.predict_proba(chunk).argmax(axis=1)]
                    kept = list(range(start, start + len(chunk)))
                except ValueError:
                    # one bad item (e.g. an unreadable clip) should not sink the batch: score the items one by one
                    predicted, kept = [], []
                    for offset, item in enumerate(chunk):
                        try:
                            predicted.append(int(np.argmax(model.predict_proba([item])[0])))
                        except ValueError as exc:
                            _problem(report, rows[start + offset], str(exc))
                            continue
                        kept.append(start + offset)
                np.add.at(confusion, ([labels[i] for i in kept], predicted), 1)
            bar.update(len(frame))
    report.problems.sort(key=lambda p: p["row"])
    if report.rows_total == 0:
        raise EvaluationError(f"no rows in {source} (only a header)")
    scored = int(confusion.sum())
    if not scored:
        raise EvaluationError(f"no scorable rows in {data} ({report.problems_total} problem rows; first: "
                              f"{report.problems[:3]})")
    rows_i, cols_i = np.nonzero(confusion)
    counts = confusion[rows_i, cols_i]
    metrics = classification_metrics(np.repeat(rows_i, counts), np.repeat(cols_i, counts), num_classes=k)
    report.metrics = {k: metrics[k] for k in ("accuracy", "macro_f1", "balanced_accuracy", "mcc", "weighted_f1")}
    report.rows_scored = scored
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Score a saved course model on labelled data.")
    parser.add_argument("--model", required=True, type=Path, help="a model folder saved by a notebook")
    parser.add_argument("--data", required=True, type=Path, help="a CSV of text,label or a folder with metadata.csv (path,emotion)")
    parser.add_argument("--out", type=Path, help="where to write the JSON report (default: evaluation.json beside the data)")
    parser.add_argument("--max-seconds", type=float, default=MAX_SECONDS,
                        help=f"longest clip to decode (default {MAX_SECONDS:g} s; longer clips are reported, not read)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        check_number(args.max_seconds, "--max-seconds", float, 0.01, 3_600)
        check_number(args.batch_size, "--batch-size", int, 1, 100_000)
        out = args.out or (args.data if args.data.is_dir() else args.data.parent) / "evaluation.json"
        if out.is_dir():
            raise EvaluationError(f"--out {out} is a folder; give the path of a .json file")
        report = evaluate(args.model, args.data, batch_size=args.batch_size, max_seconds=args.max_seconds,
                          progress=not args.no_progress and sys.stderr.isatty())
    except (CourseInputError, FileNotFoundError, KeyError, ValueError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {describe_os_error(exc, 'check --model and --data')}", file=sys.stderr)
        return 2
    try:
        atomic_write_bytes(out, (json.dumps(report.__dict__, indent=2, ensure_ascii=False, default=float) + "\n").encode("utf-8"))
    except OSError as exc:
        print(f"error: cannot write the report to {out} ({exc.strerror or exc}); choose another place with --out", file=sys.stderr)
        return 2
    print(f"{report.rows_scored} of {report.rows_total} rows scored ({report.problems_total} problems)")
    for name, value in report.metrics.items():
        print(f"  {name:<18} {value:.4f}")
    for problem in report.problems[:10]:
        print(f"  row {problem.get('row')}: {problem['problem']}")
    if report.problems_total > 10:
        print(f"  … {report.problems_total - 10} more" + (f" ({len(report.problems)} listed in {out})" if report.problems_total > len(report.problems) else f" in {out}"))
    print(f"report: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
