"""The KEMDy20 loader on a small corpus written by the test: two sessions, tiny wavs, a missing wav, a cp949
transcript with a transcription tag, and (in one test) an emotion name KEMDy20 does not have."""

import warnings

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from helpers.audio.features import load_audio
from helpers.core.data import DataNotFoundError
from helpers.multimodal import kemdy20
from helpers.multimodal.kemdy20 import (
    KEMDy20FormatError,
    KEMDy20SkippedWarning,
    clean_transcript,
    load_kemdy20,
    parse_segment_id,
    soft_label_matrix,
)
from helpers.text import soft_labels as sl

HEADER = (
    "Numb,Wav,,Segment ID,Total Evaluation,,,Eval01F,,,Eval02M,,,Eval03F,,\n"
    ",start,end,,Emotion,Valence,Arousal,Emotion,Valence,Arousal,Emotion,Valence,Arousal,Emotion,Valence,Arousal\n"
)
SESSIONS = {
    "Sess01": [
        ("Sess01_script01_User001F_001", "neutral", "neutral", "neutral", "happy"),
        ("Sess01_script01_User002M_001", "disqust", "disqust", "angry;disqust", "Disgust"),
        ("Sess01_script01_User002M_002", "sad", "sad", "sad", "sad"),
    ],  # its wav is missing
    "Sess02": [
        ("Sess02_script03_User003F_001", "sad", "sad", "sad", "fear"),
        ("Sess02_script03_User004M_001", "happy", "happy", "happy;neutral", "surprise"),
    ],
}
TEXTS = {
    "Sess01_script01_User001F_001": ("그냥 그래요.", "utf-8"),
    "Sess01_script01_User002M_001": ("이건 정말 싫어.", "utf-8"),
    "Sess01_script01_User002M_002": ("슬프다.", "utf-8"),
    "Sess02_script03_User003F_001": ("l/ 오늘은 좀 우울하네요.", "cp949"),  # cp949 bytes, with a laughter tag
    "Sess02_script03_User004M_001": ("와 진짜 좋다!", "utf-8"),
}
MISSING_WAV = "Sess01_script01_User002M_002"


def write_corpus(root, sessions=SESSIONS, texts=TEXTS, missing_wav=(MISSING_WAV,)):
    folder = root / "kemdy20"
    (folder / "annotation").mkdir(parents=True)
    sr = 16_000
    for k, (session, rows) in enumerate(sessions.items()):
        lines = [
            f"{i + 1},0.0,1.0,{seg},{total},3,3," + ",".join(f"{v},3,3" for v in votes)
            for i, (seg, total, *votes) in enumerate(rows)
        ]
        (folder / "annotation" / f"{session}_eval.csv").write_text(HEADER + "\n".join(lines) + "\n", encoding="utf-8")
        wav_dir = folder / "wav" / f"Session{session[-2:]}"
        wav_dir.mkdir(parents=True)
        for j, (seg, *_) in enumerate(rows):
            text, encoding = texts[seg]
            (wav_dir / f"{seg}.txt").write_bytes(text.encode(encoding))
            if seg not in missing_wav:
                t = np.arange(int(0.4 * sr)) / sr
                sf.write(
                    wav_dir / f"{seg}.wav", (0.2 * np.sin(2 * np.pi * (200 + 50 * (k + j)) * t)).astype("float32"), sr
                )
    return folder


def test_one_frame_with_text_wav_and_weighted_labels(tmp_path):
    folder = write_corpus(tmp_path)
    with pytest.warns(KEMDy20SkippedWarning, match=MISSING_WAV):
        frame = load_kemdy20(folder)
    assert frame["utterance"].tolist() == [s for rows in SESSIONS.values() for s, *_ in rows if s != MISSING_WAV]
    assert frame.attrs["skipped"] == [(MISSING_WAV, "no wav file")]
    # the annotator-weighted label is notebook 06's: soft_labels over every vote of the corpus
    votes, _ = kemdy20.load_kemdy20_votes(folder)
    dist, weights = sl.soft_labels(votes, labels=kemdy20.KEMDY20_EMOTIONS)
    assert np.allclose(soft_label_matrix(frame), dist.loc[frame["utterance"]].to_numpy())
    assert frame.attrs["rater_weights"] == pytest.approx(weights.to_dict())
    assert np.allclose(soft_label_matrix(frame).sum(axis=1), 1.0)
    assert frame["label"].tolist() == ["neutral", "disgust", "sad", "happy"]
    assert (frame["label_id"] == frame["label"].map(kemdy20.KEMDY20_EMOTIONS.index)).all()
    assert frame["total"].tolist() == ["neutral", "disgust", "sad", "happy"]  # typo fixed in the corpus' own label too
    assert frame["n_raters"].tolist() == [3, 3, 3, 3]
    # speaker and session from the segment id; every wav path points at a readable clip
    assert frame["speaker"].tolist() == ["User001F", "User002M", "User003F", "User004M"]
    assert frame["session"].tolist() == ["Sess01", "Sess01", "Sess02", "Sess02"]
    assert all(len(load_audio(p)) == 6_400 for p in frame["wav_path"])


def test_cp949_transcript_is_decoded_and_tags_removed(tmp_path):
    folder = write_corpus(tmp_path)
    with pytest.warns(KEMDy20SkippedWarning):
        cleaned = load_kemdy20(folder).set_index("utterance")["text"]
        raw = load_kemdy20(folder, clean_text=False).set_index("utterance")["text"]
    assert cleaned["Sess02_script03_User003F_001"] == "오늘은 좀 우울하네요."
    assert raw["Sess02_script03_User003F_001"] == "l/ 오늘은 좀 우울하네요."
    assert cleaned["Sess01_script01_User001F_001"] == "그냥 그래요."


def test_missing_files_can_be_kept_or_refused(tmp_path):
    folder = write_corpus(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # keeping means no warning
        kept = load_kemdy20(folder, missing="keep").set_index("utterance")
    assert pd.isna(kept.loc[MISSING_WAV, "wav_path"]) and kept.loc[MISSING_WAV, "label"] == "sad"
    with pytest.raises(KEMDy20FormatError, match=f"{MISSING_WAV}: no wav"):
        load_kemdy20(folder, missing="raise")
    with pytest.raises(ValueError, match="missing must be one of"):
        load_kemdy20(folder, missing="ignore")


def test_unknown_emotion_is_named_and_can_be_mapped(tmp_path):
    sessions = {
        **SESSIONS,
        "Sess02": [
            ("Sess02_script03_User003F_001", "sad", "sad", "joyful", "fear"),
            ("Sess02_script03_User004M_001", "happy", "happy", "happy", "happy"),
        ],
    }
    folder = write_corpus(tmp_path, sessions=sessions)
    with pytest.raises(KEMDy20FormatError, match=r"Sess02_script03_User003F_001, rater Eval02M, label 'joyful'"):
        load_kemdy20(folder)
    with pytest.warns(KEMDy20SkippedWarning):
        frame = load_kemdy20(folder, label_map={"joyful": "happy"})
    row = frame.set_index("utterance").loc["Sess02_script03_User003F_001"]
    assert row["p_happy"] > 0 and row["label"] == "sad"


def test_broken_or_absent_corpus(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    (empty / "annotation").mkdir(parents=True)
    (empty / "wav").mkdir()
    with pytest.raises(KEMDy20FormatError, match="no annotation CSVs"):
        load_kemdy20(empty)
    bad = tmp_path / "bad"
    (bad / "annotation").mkdir(parents=True)
    (bad / "wav").mkdir()
    (bad / "annotation" / "Sess01_eval.csv").write_text("a,b\n,c\n1,2\n", encoding="utf-8")
    with pytest.raises(KEMDy20FormatError, match="Segment ID"):
        load_kemdy20(bad)
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(DataNotFoundError, match="kemdy20"):
        load_kemdy20()


def test_segment_ids_and_transcript_tags():
    assert parse_segment_id("Sess12_impro03_User024F_017") == {
        "session": "Sess12",
        "speaker": "User024F",
        "gender": "F",
    }
    assert parse_segment_id("something else") == {"session": None, "speaker": None, "gender": None}
    assert clean_transcript("b/ 아 n/ 그래? /o 좋아") == "아 그래? 좋아"
    assert clean_transcript("a/b 테스트") == "a/b 테스트"  # a path-like word is not a tag
