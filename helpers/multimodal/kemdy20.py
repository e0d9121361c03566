"""KEMDy20 (ETRI's Korean multimodal emotion corpus) as one frame: transcript, wav file and rater-weighted labels.

KEMDy20 is licensed per user and not shipped with the course; :func:`load_kemdy20` reads a copy the user has put
where :func:`helpers.core.data.dataset_dir` finds it. The corpus' layout:

- ``annotation/SessNN_eval.csv``: two header rows (``Numb, Wav, …, Segment ID, Total Evaluation, Eval01F, …`` over
  ``…, Emotion, Valence, Arousal, …``), one row per utterance, one ``Emotion`` column per rater;
- ``wav/SessionNN/<Segment ID>.wav`` and ``<Segment ID>.txt``, the transcript (often cp949, not UTF-8), with
  segment ids such as ``Sess01_script01_User002M_001`` (session, script, speaker with gender, number).

The votes are read by :func:`helpers.text.soft_labels.load_kemdy20_votes` (labels lower-cased, typos such as
``disqust`` fixed, ``happy;neutral`` split into half votes) and turned into the annotator-weighted label of
notebook 06 by :func:`helpers.text.soft_labels.soft_labels`: each rater weighs as much as their agreement with the
majority, each utterance gets the weighted vote shares (``p_<emotion>`` columns) and their argmax (``label``).
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from helpers.text.soft_labels import KEMDY20_EMOTIONS, load_kemdy20_votes, soft_labels

MISSING_POLICIES = ("skip", "keep", "raise")
_SEGMENT = re.compile(r"^(?P<session>Sess\d+)_(?P<script>[^_]+)_(?P<speaker>[^_]*?(?P<gender>[MF]))_(?P<number>\d+)$")
_NOISE_TAG = re.compile(r"(?<!\S)(?:[A-Za-z]/|/[A-Za-z])(?!\S)")


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
    :data:`helpers.text.soft_labels.KEMDY20_EMOTIONS` (the annotator-weighted label distribution), ``label`` (its
    argmax) and ``label_id``.

    - ``missing``: what to do with an utterance that has no ``.wav`` or no ``.txt`` file: ``"skip"`` (default;
      left out, listed in a :class:`KEMDy20SkippedWarning`), ``"keep"`` (kept with a missing ``wav_path``,
      ``pd.isna``, or an empty ``text``) or ``"raise"`` (:class:`KEMDy20FormatError`). Utterances without any vote are always left out (and
      listed): they have no label.
    - ``label_map``: extra spellings to fix before the labels are checked, e.g. ``{"joy": "happy"}``. A vote for a
      label that is not a KEMDy20 emotion after this mapping raises :class:`KEMDy20FormatError` naming the
      utterance, the rater and the label.
    - ``clean_text``: strip transcription tags with :func:`clean_transcript`.

    Rater weights are computed over all utterances with votes (before anything is skipped) and returned in
    ``frame.attrs["rater_weights"]``; ``frame.attrs["skipped"]`` lists ``(utterance, reason)``. Transcripts are
    read as UTF-8 and, failing that, as cp949. A missing corpus raises :class:`helpers.core.data.DataNotFoundError`.
    """
    from helpers.core.data import DataNotFoundError, dataset_dir

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
        rows.append({
            "utterance": utt, **parse_segment_id(utt),
            "text": clean_transcript(text) if clean_text else text,
            "wav_path": str(wavs[utt]) if utt in wavs else None,
            "n_raters": int(n_raters.get(utt, 0)),
            "total": ";".join(_fix_label(p) for p in total.split(";") if p.strip()),
        })
    if not rows:
        raise KEMDy20FormatError(f"{folder}: no utterance has votes, a wav and a transcript; "
                                 f"first problems: {skipped[:5]}")
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
    from helpers.text.soft_labels import KEMDY20_TYPOS

    label = label.strip().lower()
    return KEMDY20_TYPOS.get(label, label)


def soft_label_matrix(frame: pd.DataFrame) -> np.ndarray:
    """The ``p_<emotion>`` columns of :func:`load_kemdy20`'s frame as an ``[n, 7]`` array (rows sum to 1)."""
    return frame[[f"p_{e}" for e in KEMDY20_EMOTIONS]].to_numpy(dtype=float)


__all__ = [
    "KEMDy20FormatError", "KEMDy20SkippedWarning", "MISSING_POLICIES", "load_kemdy20", "parse_segment_id",
    "clean_transcript", "soft_label_matrix",
]
