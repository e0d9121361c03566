"""KEMDy20 (ETRI's Korean multimodal emotion corpus) as one frame: transcript, wav file and rater-weighted labels.

KEMDy20 is licensed per user and not shipped with the course; :func:`load_kemdy20` reads a copy the user has put
where :func:`helpers.core.data.dataset_dir` finds it. The corpus' layout:

- ``annotation/SessNN_eval.csv``: two header rows (``Numb, Wav, …, Segment ID, Total Evaluation, Eval01F, …`` over
  ``…, Emotion, Valence, Arousal, …``), one row per utterance, one ``Emotion`` column per rater;
- ``wav/SessionNN/<Segment ID>.wav`` and ``<Segment ID>.txt``, the transcript (often cp949, not UTF-8), with
  segment ids such as ``Sess01_script01_User002M_001`` (session, script, speaker with gender, number).

The votes are read by :func:`load_kemdy20_votes` (labels lower-cased, typos such as
``disqust`` fixed, ``happy;neutral`` split into half votes) and turned into the annotator-weighted label of
notebook 06 by :func:`helpers.text.soft_labels.soft_labels`: each rater weighs as much as their agreement with the
majority, each utterance gets the weighted vote shares (``p_<emotion>`` columns) and their argmax (``label``).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.core.data import DataNotFoundError, dataset_dir
from helpers.text.soft_labels import soft_labels, votes_from_wide

MISSING_POLICIES = ("skip", "keep", "raise")
_SEGMENT = re.compile(r"^(?P<session>Sess\d+)_(?P<script>[^_]+)_(?P<speaker>[^_]*?(?P<gender>[MF]))_(?P<number>\d+)$")
_NOISE_TAG = re.compile(r"(?<!\S)(?:[A-Za-z]/|/[A-Za-z])(?!\S)")


KEMDY20_TYPOS = {
    "disqust": "disgust",
    "surprised": "surprise",
    "happiness": "happy",
    "anger": "angry",
    "sadness": "sad",
}
KEMDY20_EMOTIONS = ("neutral", "happy", "surprise", "angry", "sad", "disgust", "fear")


def _read_kemdy20_annotation(path: Path) -> pd.DataFrame:
    """One ``SessNN_eval.csv``: two header rows (``Eval01F`` … then ``Emotion, Valence, Arousal``) → a flat frame."""
    raw = pd.read_csv(path, header=None, dtype=str, keep_default_na=False, encoding_errors="replace")
    top = raw.iloc[0].replace("", np.nan).ffill().fillna("")
    sub = raw.iloc[1]
    names = [f"{a.strip()}_{b.strip()}" if b.strip() else a.strip() for a, b in zip(top, sub)]
    frame = raw.iloc[2:].copy()
    frame.columns = names
    return frame.reset_index(drop=True)


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    for encoding in ("utf-8", "cp949"):
        try:
            return raw.decode(encoding).strip()
        except UnicodeDecodeError:
            continue
    return raw.decode("utf-8", errors="replace").strip()


def load_kemdy20_votes(path: str | Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """KEMDy20's per-rater emotion labels as long votes, and the utterances with their transcripts.

    Reads ``annotation/Sess*_eval.csv`` (columns ``Segment ID``, ``Total Evaluation`` and one ``EvalNN[F|M]``
    group per rater, each with ``Emotion``) and, when present, the transcripts ``wav/Session*/<Segment ID>.txt``.
    Labels are lower-cased and typos fixed (``disqust`` → ``disgust``); multi-label votes (``happy;neutral``)
    are split into equal shares. Rater columns are taken as the same rater in every session file.
    Returns ``(votes, utterances)`` with ``votes``: utterance, rater, label, share and ``utterances``:
    utterance, text, total (the corpus' own aggregate label). Raises :class:`helpers.core.data.DataNotFoundError`
    when the corpus is not there.
    """
    folder = dataset_dir("kemdy20", path, allow_download=False)
    files = sorted((folder / "annotation").glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"no annotation CSVs in {folder / 'annotation'}")
    texts = {p.stem: p for p in (folder / "wav").glob("*/*.txt")}
    votes, utterances = [], []
    for file in files:
        frame = _read_kemdy20_annotation(file)
        seg_col = next((c for c in frame.columns if c.lower().startswith("segment")), None)
        rater_cols = [c for c in frame.columns if re.match(r"^Eval\d+[A-Za-z]*_Emotion$", c)]
        if seg_col is None or not rater_cols:
            raise ValueError(
                f"{file}: expected a 'Segment ID' column and EvalNN 'Emotion' columns, found {list(frame.columns)[:12]}"
            )
        clean = frame[[seg_col, *rater_cols]].rename(columns={seg_col: "utterance"})
        for col in rater_cols:
            clean[col] = clean[col].map(
                lambda s: (
                    ";".join(
                        KEMDY20_TYPOS.get(p.strip().lower(), p.strip().lower()) for p in str(s).split(";") if p.strip()
                    )
                    or None
                )
            )
        long = votes_from_wide(clean, rater_cols, "utterance")
        long["rater"] = long["rater"].str.removesuffix("_Emotion")
        votes.append(long)
        total_col = next((c for c in frame.columns if c.startswith("Total Evaluation") and c.endswith("Emotion")), None)
        utterances.append(
            pd.DataFrame(
                {
                    "utterance": frame[seg_col],
                    "text": [_read_text(texts[s]) if s in texts else "" for s in frame[seg_col]],
                    "total": frame[total_col] if total_col else "",
                }
            )
        )
    return pd.concat(votes, ignore_index=True), pd.concat(utterances, ignore_index=True).drop_duplicates("utterance")


class KEMDy20FormatError(ValueError):
    """The KEMDy20 folder is there but something in it cannot be read; the message says what and where."""

    def _render_traceback_(self) -> list[str]:
        return [f"KEMDy20FormatError: {self}"]


class KEMDy20SkippedWarning(UserWarning):
    """Some utterances were left out (no wav, no transcript or no votes); the message lists them."""


def parse_segment_id(segment: str) -> dict[str, str | None]:
    """``Sess01_script01_User002M_001`` → session ``Sess01``, speaker ``User002M``, gender ``M``; ``None`` where
    the id does not follow the pattern."""
    match = _SEGMENT.match(str(segment))
    if not match:
        return {"session": None, "speaker": None, "gender": None}
    return {"session": match["session"], "speaker": match["speaker"], "gender": match["gender"]}


def clean_transcript(text: str) -> str:
    """Remove KEMDy20's transcription tags (a Latin letter and a slash standing alone, such as ``l/`` laughter,
    ``b/`` breath, ``n/`` noise, or ``/o``) and squeeze white space; the words stay as they are."""
    return " ".join(_NOISE_TAG.sub(" ", text).split())


def _files(folder: Path, suffix: str) -> dict[str, Path]:
    return {p.stem: p for p in sorted((folder / "wav").glob(f"*/*{suffix}"))}


def load_kemdy20(
    path: str | Path | None = None,
    *,
    missing: str = "skip",
    label_map: Mapping[str, str] | None = None,
    clean_text: bool = True,
) -> pd.DataFrame:
    """One row per utterance: ``utterance``, ``session``, ``speaker``, ``gender``, ``text``, ``wav_path``,
    ``n_raters``, ``total`` (the corpus' own aggregate label), one ``p_<emotion>`` column per emotion of
    :data:`KEMDY20_EMOTIONS` (the annotator-weighted label distribution), ``label`` (its
    argmax) and ``label_id``.

    - ``missing``: what to do with an utterance that has no ``.wav`` or no ``.txt`` file: ``"skip"`` (default;
      left out, listed in a :class:`KEMDy20SkippedWarning`), ``"keep"`` (kept with a missing ``wav_path``,
      ``pd.isna``, or an empty ``text``) or ``"raise"`` (:class:`KEMDy20FormatError`).
      Utterances without any vote are always left out (and
      listed): they have no label.
    - ``label_map``: extra spellings to fix before the labels are checked, e.g. ``{"joy": "happy"}``. A vote for a
      label that is not a KEMDy20 emotion after this mapping raises :class:`KEMDy20FormatError` naming the
      utterance, the rater and the label.
    - ``clean_text``: strip transcription tags with :func:`clean_transcript`.

    Rater weights are computed over all utterances with votes (before anything is skipped) and returned in
    ``frame.attrs["rater_weights"]``; ``frame.attrs["skipped"]`` lists ``(utterance, reason)``. Transcripts are
    read as UTF-8 and, failing that, as cp949. A missing corpus raises :class:`helpers.core.data.DataNotFoundError`.
    """
    if missing not in MISSING_POLICIES:
        raise ValueError(f"missing must be one of {MISSING_POLICIES}, got {missing!r}")
    folder = dataset_dir("kemdy20", path, allow_download=False)
    try:
        votes, utterances = load_kemdy20_votes(folder)
    except DataNotFoundError:
        raise
    except (FileNotFoundError, ValueError, KeyError, IndexError) as exc:
        raise KEMDy20FormatError(f"{folder}: the annotation files cannot be read: {exc}") from None

    if label_map:
        votes["label"] = votes["label"].map(lambda s: label_map.get(s, s))
    stray = votes[~votes["label"].isin(KEMDY20_EMOTIONS)]
    if len(stray):
        first = stray.iloc[0]
        raise KEMDy20FormatError(
            f"{len(stray)} vote(s) name an emotion KEMDy20 does not have: {sorted(stray['label'].unique())[:10]}; "
            f"first: utterance {first['utterance']}, rater {first['rater']}, label {first['label']!r}. "
            f"Known emotions: {list(KEMDY20_EMOTIONS)}. Fix the CSV or map the spelling with "
            f"load_kemdy20(..., label_map={{{first['label']!r}: 'happy'}}) (use the emotion it means)."
        )

    distribution, weights = soft_labels(votes, labels=KEMDY20_EMOTIONS)
    wavs, texts = _files(folder, ".wav"), _files(folder, ".txt")
    utterances = utterances.set_index("utterance")
    n_raters = votes.groupby("utterance")["rater"].nunique()

    rows, skipped = [], []
    for utt in utterances.index:
        if utt not in distribution.index:
            skipped.append((utt, "no votes"))
            continue
        lacks = [kind for kind, files in (("wav", wavs), ("transcript", texts)) if utt not in files]
        if lacks and missing == "raise":
            raise KEMDy20FormatError(
                f"utterance {utt}: no {' and no '.join(lacks)} file under {folder / 'wav'} "
                f"(expected wav/Session*/{utt}.wav and .txt); pass missing='skip' to leave such utterances out"
            )
        if lacks and missing == "skip":
            skipped.append((utt, f"no {' and no '.join(lacks)} file"))
            continue
        text = utterances.at[utt, "text"]
        total = str(utterances.at[utt, "total"]).strip().lower()
        rows.append(
            {
                "utterance": utt,
                **parse_segment_id(utt),
                "text": clean_transcript(text) if clean_text else text,
                "wav_path": str(wavs[utt]) if utt in wavs else None,
                "n_raters": int(n_raters.get(utt, 0)),
                "total": ";".join(_fix_label(p) for p in total.split(";") if p.strip()),
            }
        )
    if not rows:
        raise KEMDy20FormatError(
            f"{folder}: no utterance has votes, a wav and a transcript; first problems: {skipped[:5]}"
        )
    frame = pd.DataFrame(rows)
    probs = distribution.reindex(frame["utterance"]).to_numpy()
    for j, emotion in enumerate(KEMDY20_EMOTIONS):
        frame[f"p_{emotion}"] = probs[:, j]
    frame["label_id"] = probs.argmax(axis=1)
    frame["label"] = [KEMDY20_EMOTIONS[i] for i in frame["label_id"]]
    frame.attrs["rater_weights"] = weights.to_dict()
    frame.attrs["skipped"] = skipped
    if skipped:
        lines = [f"{len(skipped)} of {len(utterances)} KEMDy20 utterances were left out:"]
        lines += [f"  - {utt}: {reason}" for utt, reason in skipped[:20]]
        if len(skipped) > 20:
            lines.append(f"  … and {len(skipped) - 20} more (frame.attrs['skipped'] has them all)")
        warnings.warn("\n".join(lines), KEMDy20SkippedWarning, stacklevel=2)
    return frame


def _fix_label(label: str) -> str:
    label = label.strip().lower()
    return KEMDY20_TYPOS.get(label, label)


def soft_label_matrix(frame: pd.DataFrame) -> np.ndarray:
    """The ``p_<emotion>`` columns of :func:`load_kemdy20`'s frame as an ``[n, 7]`` array (rows sum to 1)."""
    return frame[[f"p_{e}" for e in KEMDY20_EMOTIONS]].to_numpy(dtype=float)


__all__ = [
    "KEMDy20FormatError",
    "KEMDy20SkippedWarning",
    "MISSING_POLICIES",
    "KEMDY20_EMOTIONS",
    "KEMDY20_TYPOS",
    "load_kemdy20_votes",
    "load_kemdy20",
    "parse_segment_id",
    "clean_transcript",
    "soft_label_matrix",
]
