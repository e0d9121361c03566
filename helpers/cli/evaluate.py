"""Score any model folder the course saved on a labelled file, from the command line.

    python -m helpers.cli.evaluate --model models/02_lstm_emotion_en --data my_tweets.csv
                                   [--out report.json] [--overwrite]

Text models (the LSTM folders of notebooks 02/03, the transformers folders of notebooks 05/06) read a CSV with
the columns ``text,label``; labels may be names (``joy``) or ids (``1``). Speech models (the SpeechCNN folders of
notebook 08, ``Wav2Vec2ForSequenceClassification`` folders of notebook 09) read a folder holding ``metadata.csv``
with ``path,emotion`` (paths relative to that folder). Rows that cannot be scored (missing text, unknown label,
missing, corrupt, silent or too short audio) are reported with their row number and left out; the rest are
scored. The report prints accuracy, macro-F1, balanced accuracy and MCC and is written as JSON (atomically), by
default to ``evaluation.json`` beside the data; a report that already exists there (or at ``--out``) is never
replaced unless ``--overwrite`` is given: without it the command stops with one ``error:`` line before scoring.

How a folder is recognised: each model module registers its kind with :mod:`helpers.core.model_kinds` (the task
its ``config.json`` names, or a test on the config) and a loader; this module knows no kind itself. Registered
today: LSTM (:mod:`helpers.text.lstm`), Macaron (:mod:`helpers.text.macaron`), fine-tuned encoder
(:mod:`helpers.text.encoder_finetune`), SpeechCNN (:mod:`helpers.audio.cnn`, features recomputed from each clip with
the stored settings), ``Wav2Vec2ForSequenceClassification`` (:mod:`helpers.audio.wav2vec`, notebook 09's stored
preprocessing repeated) and, last, any other ``…ForSequenceClassification`` (:mod:`helpers.text.hf_finetune`).
Nothing in a folder is ever executed: weights are read with ``torch.load(weights_only=True)`` or safetensors,
``trust_remote_code`` is never set.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.core.download import atomic_write_bytes
from helpers.core.inputs import CourseInputError, check_number, describe_os_error
from helpers.core.metrics import classification_metrics
from helpers.core.model_folder import check_label_list, read_model_config
from helpers.core.model_kinds import Scorer, ScorerError, find_model_kind, import_model_kinds, model_kinds
from helpers.text.hf_finetune import load_errors


class EvaluationError(CourseInputError):
    """The model or the data cannot be evaluated at all (the message says why)."""


CHUNK_ROWS = 2_048  # rows read, decoded and scored at a time: memory per input is bounded whatever the file's size
MAX_PROBLEMS_LISTED = 1_000  # problem rows kept in the report; the rest are counted
MAX_SECONDS = 60.0  # longest clip the evaluator decodes (--max-seconds)


LoadedModel = Scorer  # what a model kind's loader returns: modality, label names, predict_proba, description


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
    folder = Path(folder)
    try:
        config = read_model_config(folder)
    except (FileNotFoundError, ValueError) as exc:
        raise EvaluationError(str(exc)) from None
    errors = (*load_errors(), TypeError)
    try:
        loaded = _load_known_model(folder, config, max_seconds)
        check_label_list(list(loaded.label_names), f"{folder}: the model's labels")
        return loaded
    except EvaluationError:
        raise
    except ScorerError as exc:  # a known kind that cannot be scored as it is: its loader's message says why
        raise EvaluationError(str(exc)) from None
    except errors as exc:
        # incomplete or damaged folders: missing weights, a truncated model.pt, a config that does not fit
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise EvaluationError(f"{folder}: the model cannot be loaded ({type(exc).__name__}: {first_line})") from None


def _load_known_model(folder: Path, config: dict, max_seconds: float | None) -> LoadedModel:
    """The registered kind that recognises ``config`` loads the folder (:mod:`helpers.core.model_kinds`)."""
    import_model_kinds()
    kind = find_model_kind(config)
    if kind is None:
        known = [k.name for k in model_kinds()]
        raise EvaluationError(
            f"{folder} holds a model the evaluator does not know (task={config.get('task')!r}, "
            f"model_type={config.get('model_type')!r}); it reads {known}"
        )
    return kind.loader(folder, config, max_seconds=max_seconds)


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


def read_text_rows(
    path: Path, label_names: list[str], report: Report, rows: list[int] | None = None
) -> tuple[list[str], list[int]]:
    """Texts and label ids from a ``text,label`` CSV; problem rows go into ``report.problems``.

    ``rows``, when given, receives the file's row number (the header is row 1) of every returned text.
    """
    frame = _read_csv(path)
    report.rows_total = len(frame)
    texts, labels, found = _text_rows(frame, path, _label_index(label_names), label_names, report, 2)
    if rows is not None:
        rows.extend(found)
    return texts, labels


def read_audio_rows(
    folder: Path, label_names: list[str], report: Report, rows: list[int] | None = None
) -> tuple[list[str], list[int]]:
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


def evaluate(
    model_dir: str | Path,
    data: str | Path,
    batch_size: int = 64,
    max_seconds: float | None = MAX_SECONDS,
    progress: bool = False,
    chunk_rows: int = CHUNK_ROWS,
) -> Report:
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
                chunk = inputs[start : start + batch_size]
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
        raise EvaluationError(
            f"no scorable rows in {data} ({report.problems_total} problem rows; first: {report.problems[:3]})"
        )
    rows_i, cols_i = np.nonzero(confusion)
    counts = confusion[rows_i, cols_i]
    metrics = classification_metrics(np.repeat(rows_i, counts), np.repeat(cols_i, counts), num_classes=k)
    report.metrics = {k: metrics[k] for k in ("accuracy", "macro_f1", "balanced_accuracy", "mcc", "weighted_f1")}
    report.rows_scored = scored
    return report


def _refuse_existing_report(out: Path, overwrite: bool) -> None:
    """:class:`EvaluationError` when ``out`` already exists and ``--overwrite`` was not given
    (a user's file is kept)."""
    if not overwrite and (out.exists() or out.is_symlink()):
        raise EvaluationError(f"{out} already exists; it is kept: pass --overwrite to replace it, or --out NEW.json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Score a saved course model on labelled data.")
    parser.add_argument("--model", required=True, type=Path, help="a model folder saved by a notebook")
    parser.add_argument(
        "--data", required=True, type=Path, help="a CSV of text,label or a folder with metadata.csv (path,emotion)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="where to write the JSON report (default: evaluation.json beside the data); "
        "an existing file is refused unless --overwrite",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a report that already exists at --out / evaluation.json (default: refuse, exit 2)",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=MAX_SECONDS,
        help=f"longest clip to decode (default {MAX_SECONDS:g} s; longer clips are reported, not read)",
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        check_number(args.max_seconds, "--max-seconds", float, 0.01, 3_600)
        check_number(args.batch_size, "--batch-size", int, 1, 100_000)
        out = args.out or (args.data if args.data.is_dir() else args.data.parent) / "evaluation.json"
        if out.is_dir():
            raise EvaluationError(f"--out {out} is a folder; give the path of a .json file")
        _refuse_existing_report(out, args.overwrite)  # before scoring: a refusal costs nothing
        report = evaluate(
            args.model,
            args.data,
            batch_size=args.batch_size,
            max_seconds=args.max_seconds,
            progress=not args.no_progress and sys.stderr.isatty(),
        )
    except (CourseInputError, FileNotFoundError, KeyError, ValueError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {describe_os_error(exc, 'check --model and --data')}", file=sys.stderr)
        return 2
    try:
        _refuse_existing_report(out, args.overwrite)  # again: a report may have appeared while this one was scored
    except EvaluationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        atomic_write_bytes(
            out, (json.dumps(report.__dict__, indent=2, ensure_ascii=False, default=float) + "\n").encode("utf-8")
        )
    except OSError as exc:
        print(
            f"error: cannot write the report to {out} ({exc.strerror or exc}); choose another place with --out",
            file=sys.stderr,
        )
        return 2
    print(f"{report.rows_scored} of {report.rows_total} rows scored ({report.problems_total} problems)")
    for name, value in report.metrics.items():
        print(f"  {name:<18} {value:.4f}")
    for problem in report.problems[:10]:
        print(f"  row {problem.get('row')}: {problem['problem']}")
    if report.problems_total > 10:
        print(
            f"  … {report.problems_total - 10} more"
            + (
                f" ({len(report.problems)} listed in {out})"
                if report.problems_total > len(report.problems)
                else f" in {out}"
            )
        )
    print(f"report: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
