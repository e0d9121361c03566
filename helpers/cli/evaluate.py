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
from helpers.core.model_folder import read_model_config
from helpers.core.metrics import classification_metrics


class EvaluationError(ValueError):
    """The model or the data cannot be evaluated at all (the message says why)."""


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
    problems: list[dict] = field(default_factory=list)  # {"row": n, "problem": "..."}


# --------------------------------------------------------------------------- loading models


def load_model(folder: str | Path) -> LoadedModel:
    """Recognise a saved model folder by its ``config.json`` and load it (never running code from the folder)."""
    folder = Path(folder)
    try:
        config = read_model_config(folder)
    except (FileNotFoundError, ValueError) as exc:
        raise EvaluationError(str(exc)) from None
    from helpers.text.hf_finetune import load_errors

    errors = (*load_errors(), TypeError)
    try:
        return _load_known_model(folder, config)
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
    if config.get("model_type") in AUDIO_MODEL_TYPES:  # before the text branch: also a …ForSequenceClassification
        return AUDIO_MODEL_TYPES[config["model_type"]](folder, config)
    architectures = config.get("architectures") or []
    if any(isinstance(a, str) and a.endswith("ForSequenceClassification") for a in architectures):
        from helpers.text.hf_finetune import EmotionClassifier

        clf = EmotionClassifier.from_folder(folder)
        return LoadedModel("text", clf.label_names, clf.predict_proba, f"{architectures[0]} ({config.get('model_type')})")
    if task in AUDIO_LOADERS:
        return AUDIO_LOADERS[task](folder, config)
    known = ["text-classification-lstm", "text-classification-macaron-conv-attention", "…ForSequenceClassification", *AUDIO_LOADERS, *(f"model_type={t}" for t in AUDIO_MODEL_TYPES)]
    raise EvaluationError(f"{folder} holds a model the evaluator does not know (task={task!r}, "
                          f"model_type={config.get('model_type')!r}); it reads {known}")


def _load_macaron(folder: Path) -> LoadedModel:
    """Notebook 07's Macaron encoder: its weights, and the subword tokenizer named in its config.

    The tokenizer is read from ``folder/tokenizer/`` when the folder carries one, else from the path stored at
    save time (``extra["tokenizer"]``, relative to the repository), which notebook 04 writes.
    """
    import torch
    from transformers import AutoTokenizer

    from helpers.core.env import REPO_ROOT
    from helpers.text.macaron import load_macaron
    from helpers.text.pipeline import pad_batch

    model, extra = load_macaron(folder)
    candidates = [folder / "tokenizer"]
    if extra.get("tokenizer"):
        candidates.append(REPO_ROOT / str(extra["tokenizer"]))
    tokenizer_dir = next((c for c in candidates if (c / "tokenizer.json").is_file()), None)
    if tokenizer_dir is None:
        raise EvaluationError(f"{folder}: its tokenizer is missing (looked in {', '.join(str(c) for c in candidates)}); "
                              "run notebook 04 (or 07) to write it, or copy it into the model folder as tokenizer/")
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    labels = [str(x) for x in extra.get("labels") or range(model.config.num_classes)]
    max_len = int(extra.get("max_len", 64))

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
        return probabilities([speech_cnn_features(load_audio(p, sr=sr, min_seconds=min_seconds), config) for p in paths])

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
    model = Wav2Vec2ForSequenceClassification.from_pretrained(folder, local_files_only=True).eval()
    extractor = AutoFeatureExtractor.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
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
        inputs = [inputs_of(load_audio(p, sr=sr)) for p in paths]  # every clip is read before the model runs
        logits = torch.cat([model(**x).logits for x in inputs])
        return torch.softmax(logits.float(), dim=1).numpy()

    length = f"{n_samples / sr:.2f} s clips" if n_samples else "clips at their own length"
    return LoadedModel("audio", label_names_of(model), predict_proba, f"Wav2Vec2ForSequenceClassification ({length})")


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


def _read_csv(path: Path) -> pd.DataFrame:
    """A CSV read as strings, with clear errors for the usual ways a file is not one."""
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise EvaluationError(f"{path} is not UTF-8 ({exc}); re-save it as UTF-8") from None
    except pd.errors.EmptyDataError:
        raise EvaluationError(f"{path} is empty") from None
    except pd.errors.ParserError as exc:
        raise EvaluationError(f"{path} is not a readable CSV: {exc}") from None


def _cell(value: object) -> str:
    """A CSV cell as text ("" for a missing one: a short row gives NaN even with ``keep_default_na=False``)."""
    return value if isinstance(value, str) else ""


def read_text_rows(path: Path, label_names: list[str], report: Report, rows: list[int] | None = None) -> tuple[list[str], list[int]]:
    """Texts and label ids from a ``text,label`` CSV; problem rows go into ``report.problems``.

    ``rows``, when given, receives the file's row number (the header is row 1) of every returned text.
    """
    frame = _read_csv(path)
    missing = {"text", "label"} - set(frame.columns)
    if missing:
        raise EvaluationError(f"{path} lacks the column(s) {sorted(missing)}; found {list(frame.columns)}")
    index = _label_index(label_names)
    texts, labels = [], []
    report.rows_total = len(frame)
    for row, (text, label) in enumerate(zip(frame["text"], frame["label"]), start=2):  # row 1 is the header
        text, label_id = _cell(text), index(_cell(label))
        if not text.strip():
            report.problems.append({"row": row, "problem": "empty text"})
        elif label_id is None:
            report.problems.append({"row": row, "problem": f"unknown label {_cell(label)!r}; the model knows {label_names}"})
        else:
            texts.append(text)
            labels.append(label_id)
            if rows is not None:
                rows.append(row)
    return texts, labels


def read_audio_rows(folder: Path, label_names: list[str], report: Report, rows: list[int] | None = None) -> tuple[list[str], list[int]]:
    """Clip paths and label ids from ``<folder>/metadata.csv`` (``path,emotion``); missing files are problems.

    ``rows``, when given, receives the row number in ``metadata.csv`` of every returned clip.
    """
    meta = folder / "metadata.csv"
    if not meta.is_file():
        raise EvaluationError(f"{folder} has no metadata.csv with the columns path,emotion")
    frame = _read_csv(meta)
    missing = {"path", "emotion"} - set(frame.columns)
    if missing:
        raise EvaluationError(f"{meta} lacks the column(s) {sorted(missing)}; found {list(frame.columns)}")
    index = _label_index(label_names)
    paths, labels = [], []
    report.rows_total = len(frame)
    for row, (rel, emotion) in enumerate(zip(frame["path"], frame["emotion"]), start=2):
        rel, emotion = _cell(rel).strip(), _cell(emotion)
        label_id = index(emotion)
        path = (folder / rel).resolve()
        if label_id is None:
            report.problems.append({"row": row, "problem": f"unknown emotion {emotion!r}; the model knows {label_names}"})
        elif not rel:
            report.problems.append({"row": row, "problem": "empty path"})
        elif not path.is_file():
            report.problems.append({"row": row, "problem": f"no audio file at {rel}"})
        else:
            paths.append(str(path))
            labels.append(label_id)
            if rows is not None:
                rows.append(row)
    return paths, labels


# --------------------------------------------------------------------------- scoring


def evaluate(model_dir: str | Path, data: str | Path, batch_size: int = 64) -> Report:
    """Score the model in ``model_dir`` on ``data`` and return a :class:`Report`.

    An item that fails on its own (an unreadable or silent clip: a ``ValueError`` such as
    :class:`helpers.audio.features.AudioError`) is reported with its row number and left out; the others are scored.
    """
    model = load_model(model_dir)
    data = Path(data)
    report = Report(model=str(model_dir), data=str(data))
    if not data.exists():
        raise EvaluationError(f"no data at {data}")
    rows: list[int] = []
    if model.kind == "text":
        if data.is_dir():
            raise EvaluationError(f"{model.description} reads a CSV of text,label, but {data} is a folder")
        inputs, labels = read_text_rows(data, model.label_names, report, rows)
    else:
        if not data.is_dir():
            raise EvaluationError(f"{model.description} reads a folder with metadata.csv, but {data} is a file")
        inputs, labels = read_audio_rows(data, model.label_names, report, rows)
    if not inputs:
        raise EvaluationError(f"no scorable rows in {data} ({len(report.problems)} problem rows; first: {report.problems[:3]})")
    predictions, kept = [], []
    for start in range(0, len(inputs), batch_size):
        chunk = inputs[start:start + batch_size]
        try:
            probs = model.predict_proba(chunk)
        except ValueError:
            # one bad item (e.g. an unreadable clip) should not sink the batch: score the items one by one
            for offset, item in enumerate(chunk):
                try:
                    predictions.append(int(np.argmax(model.predict_proba([item])[0])))
                except ValueError as exc:
                    report.problems.append({"row": rows[start + offset], "problem": str(exc)})
                    continue
                kept.append(start + offset)
            continue
        predictions.extend(probs.argmax(axis=1).tolist())
        kept.extend(range(start, start + len(chunk)))
    report.problems.sort(key=lambda p: p["row"])
    if not kept:
        raise EvaluationError(f"no row of {data} could be scored; first problems: {report.problems[:3]}")
    truth = [labels[i] for i in kept]
    metrics = classification_metrics(truth, predictions, num_classes=len(model.label_names))
    report.metrics = {k: metrics[k] for k in ("accuracy", "macro_f1", "balanced_accuracy", "mcc", "weighted_f1")}
    report.rows_scored = len(truth)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Score a saved course model on labelled data.")
    parser.add_argument("--model", required=True, type=Path, help="a model folder saved by a notebook")
    parser.add_argument("--data", required=True, type=Path, help="a CSV of text,label or a folder with metadata.csv (path,emotion)")
    parser.add_argument("--out", type=Path, help="where to write the JSON report (default: evaluation.json beside the data)")
    args = parser.parse_args(argv)
    try:
        report = evaluate(args.model, args.data)
    except (EvaluationError, FileNotFoundError, KeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = args.out or (args.data if args.data.is_dir() else args.data.parent) / "evaluation.json"
    try:
        atomic_write_bytes(out, (json.dumps(report.__dict__, indent=2, ensure_ascii=False, default=float) + "\n").encode("utf-8"))
    except OSError as exc:
        print(f"error: cannot write the report to {out} ({exc}); choose another place with --out", file=sys.stderr)
        return 2
    print(f"{report.rows_scored} of {report.rows_total} rows scored ({len(report.problems)} problems)")
    for name, value in report.metrics.items():
        print(f"  {name:<18} {value:.4f}")
    for problem in report.problems[:10]:
        print(f"  row {problem.get('row')}: {problem['problem']}")
    if len(report.problems) > 10:
        print(f"  … {len(report.problems) - 10} more in {out}")
    print(f"report: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
