"""Score any model folder the course saved on a labelled file, from the command line.

    python -m helpers.evaluate --model models/02_lstm_emotion_en --data my_tweets.csv [--out report.json]

Text models (the LSTM folders of notebooks 02/03, the transformers folders of notebooks 05/06) read a CSV with
the columns ``text,label``; labels may be names (``joy``) or ids (``1``). Speech models read a folder holding
``metadata.csv`` with ``path,emotion``. Rows that cannot be scored (missing text, unknown label, unreadable
audio) are reported with their row number and left out; the rest are scored. The report prints accuracy,
macro-F1, balanced accuracy and MCC and is written as JSON.
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

from .download import atomic_write_bytes
from .metrics import classification_metrics


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
    if not folder.is_dir():
        raise EvaluationError(f"no model folder at {folder}")
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise EvaluationError(f"{folder} has no config.json: it is not a model folder saved by the course")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EvaluationError(f"{config_path} is not valid JSON ({exc})") from None
    task = config.get("task")
    if task == "text-classification-lstm":
        from . import korean  # noqa: F401  registers the Korean tokenisers a model may name
        from .models import load_text_classifier

        clf = load_text_classifier(folder)
        return LoadedModel("text", clf.label_names, clf.predict_proba, f"LSTM classifier ({config.get('tokenizer')})")
    if any(a.endswith("ForSequenceClassification") for a in config.get("architectures") or []):
        from .transformer import EmotionClassifier

        clf = EmotionClassifier.from_folder(folder)
        return LoadedModel("text", clf.label_names, clf.predict_proba, f"{config['architectures'][0]} ({config.get('model_type')})")
    if task in AUDIO_LOADERS:
        return AUDIO_LOADERS[task](folder, config)
    known = ["text-classification-lstm", "…ForSequenceClassification", *AUDIO_LOADERS]
    raise EvaluationError(f"{folder} holds a model the evaluator does not know (task={task!r}); it reads {known}")


# Speech model formats register here (task name -> loader), so this module needs no audio imports.
AUDIO_LOADERS: dict[str, Callable[[Path, dict], LoadedModel]] = {}


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


def read_text_rows(path: Path, label_names: list[str], report: Report) -> tuple[list[str], list[int]]:
    """Texts and label ids from a ``text,label`` CSV; problem rows go into ``report.problems``."""
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise EvaluationError(f"{path} is not UTF-8 ({exc}); re-save it as UTF-8") from None
    except pd.errors.EmptyDataError:
        raise EvaluationError(f"{path} is empty") from None
    except pd.errors.ParserError as exc:
        raise EvaluationError(f"{path} is not a readable CSV: {exc}") from None
    missing = {"text", "label"} - set(frame.columns)
    if missing:
        raise EvaluationError(f"{path} lacks the column(s) {sorted(missing)}; found {list(frame.columns)}")
    index = _label_index(label_names)
    texts, labels = [], []
    report.rows_total = len(frame)
    for row, (text, label) in enumerate(zip(frame["text"], frame["label"]), start=2):  # row 1 is the header
        label_id = index(label)
        if not text.strip():
            report.problems.append({"row": row, "problem": "empty text"})
        elif label_id is None:
            report.problems.append({"row": row, "problem": f"unknown label {label!r}; the model knows {label_names}"})
        else:
            texts.append(text)
            labels.append(label_id)
    return texts, labels


def read_audio_rows(folder: Path, label_names: list[str], report: Report) -> tuple[list[str], list[int]]:
    """Clip paths and label ids from ``<folder>/metadata.csv`` (``path,emotion``); missing files are problems."""
    meta = folder / "metadata.csv"
    if not meta.is_file():
        raise EvaluationError(f"{folder} has no metadata.csv with the columns path,emotion")
    frame = pd.read_csv(meta, dtype=str, keep_default_na=False)
    missing = {"path", "emotion"} - set(frame.columns)
    if missing:
        raise EvaluationError(f"{meta} lacks the column(s) {sorted(missing)}; found {list(frame.columns)}")
    index = _label_index(label_names)
    paths, labels = [], []
    report.rows_total = len(frame)
    for row, (rel, emotion) in enumerate(zip(frame["path"], frame["emotion"]), start=2):
        label_id = index(emotion)
        path = (folder / rel).resolve()
        if label_id is None:
            report.problems.append({"row": row, "problem": f"unknown emotion {emotion!r}; the model knows {label_names}"})
        elif not path.is_file():
            report.problems.append({"row": row, "problem": f"no audio file at {rel}"})
        else:
            paths.append(str(path))
            labels.append(label_id)
    return paths, labels


# --------------------------------------------------------------------------- scoring


def evaluate(model_dir: str | Path, data: str | Path, batch_size: int = 64) -> Report:
    """Score the model in ``model_dir`` on ``data`` and return a :class:`Report`."""
    model = load_model(model_dir)
    data = Path(data)
    report = Report(model=str(model_dir), data=str(data))
    if not data.exists():
        raise EvaluationError(f"no data at {data}")
    if model.kind == "text":
        if data.is_dir():
            raise EvaluationError(f"{model.description} reads a CSV of text,label, but {data} is a folder")
        inputs, labels = read_text_rows(data, model.label_names, report)
    else:
        if not data.is_dir():
            raise EvaluationError(f"{model.description} reads a folder with metadata.csv, but {data} is a file")
        inputs, labels = read_audio_rows(data, model.label_names, report)
    if not inputs:
        raise EvaluationError(f"no scorable rows in {data} ({len(report.problems)} problem rows; first: {report.problems[:3]})")
    predictions, kept = [], []
    for start in range(0, len(inputs), batch_size):
        chunk = inputs[start:start + batch_size]
        try:
            probs = model.predict_proba(chunk)
        except ValueError:
            # one bad item (e.g. an unreadable clip) should not sink the batch: score the items one by one
            probs = []
            for offset, item in enumerate(chunk):
                try:
                    probs.append(model.predict_proba([item])[0])
                except ValueError as exc:
                    report.problems.append({"row": None, "item": str(item)[:200], "problem": str(exc)})
                    continue
                kept.append(start + offset)
            predictions.extend(np.argmax(p) for p in probs)
            continue
        predictions.extend(probs.argmax(axis=1).tolist())
        kept.extend(range(start, start + len(chunk)))
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
    atomic_write_bytes(out, (json.dumps(report.__dict__, indent=2, ensure_ascii=False, default=float) + "\n").encode("utf-8"))
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
