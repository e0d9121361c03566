"""Bad input at every public entry point.

Each entry point either returns a documented, sensible result or raises a clear error: a course exception or a
built-in one (TypeError, ValueError, KeyError, FileNotFoundError) raised by the course's own code with a message
that says what is wrong. "Clear" is checked mechanically: the innermost traceback frame must lie in ``helpers/``,
so no error escapes from deep inside pandas, pathlib, gzip, torch or transformers. Failures leave nothing
half-written on disk, checkpoints are read without running code, and archives cannot write outside their folder.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from hostile import save_hostile_weights  # tests/ is on sys.path under pytest

import helpers
from helpers.audio.cnn import SpeechCNN, load_speech_cnn, save_speech_cnn
from helpers.audio.features import AudioError, RejectedClipsWarning, extract_features, load_audio
from helpers.cli import evaluate
from helpers.core.data import DataNotFoundError, load_emotion_en, load_nsmc, load_ravdess, stratified_split
from helpers.core.download import (
    ChecksumError,
    UnsafeArchiveError,
    atomic_folder,
    atomic_write_bytes,
    safe_extract_zip,
)
from helpers.core.metrics import classification_metrics
from helpers.text.lstm import LSTMClassifier, TextClassifier, load_text_classifier, save_text_classifier
from helpers.text.pipeline import Vocab, basic_english, encode_texts, get_tokenizer, whitespace

HELPERS_DIR = Path(helpers.__file__).resolve().parent
SR = 16_000


def clear_error(call, error, match: str):
    """``call()`` raises ``error`` matching ``match``, and the course's own code raised it."""
    with pytest.raises(error, match=match) as info:
        call()
    origin = Path(str(info.traceback[-1].path)).resolve()
    assert origin.is_relative_to(HELPERS_DIR), f"{type(info.value).__name__} escaped from {origin}: {info.value}"
    return info.value


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# --------------------------------------------------------------------------- bad texts

TEXTS = {
    "empty": "",
    "whitespace": " \t\n ",
    "none": None,
    "cp949-bytes": "영화가 정말 좋아요".encode("cp949"),  # bytes in a legacy Korean encoding, not even UTF-8
    "100k-chars": ("so happy today 영화가 좋아요 " * 5_000)[:100_000],
    "emoji": "😀🎉👍 so happy 😭",
}


@pytest.fixture(scope="module")
def vocab() -> Vocab:
    return Vocab.build([basic_english(t) for t in ("so happy today", "i feel sad today", "영화가 좋아요")])


@pytest.fixture(scope="module")
def lstm_classifier(vocab) -> TextClassifier:
    torch.manual_seed(0)
    model = LSTMClassifier(len(vocab), 2, embed_dim=8, hidden_dim=8, pad_id=vocab.pad_id)
    return TextClassifier(model, vocab, "basic_english", ["sad", "happy"], max_len=64)


@pytest.fixture(scope="module")
def tiny_bert():
    """A 1-layer random BERT with the packaged MiniLM tokenizer: the real transformers code path, in a moment."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from helpers.text.hf_finetune import offline_model_dir

    tokenizer = AutoTokenizer.from_pretrained(str(offline_model_dir()))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=2,
        id2label={0: "sad", 1: "happy"},
        label2id={"sad": 0, "happy": 1},
    )
    return BertForSequenceClassification(config).eval(), tokenizer


@pytest.fixture(scope="module")
def text_entry_points(vocab, lstm_classifier, tiny_bert):
    from helpers.text.hf_finetune import EmotionClassifier

    points = {
        "basic_english": basic_english,
        "whitespace": whitespace,
        "encode_texts": lambda text: encode_texts([text], basic_english, vocab, max_len=64),
        "lstm.predict": lstm_classifier.predict,
        "transformer.predict": EmotionClassifier(*tiny_bert, max_length=64).predict,
    }
    points.update({f"ko-{b}": get_tokenizer(f"ko-{b}") for b in ("whitespace", "okt", "mecab", "kiwi")})
    return points


TEXT_ENTRY_POINTS = [
    "basic_english",
    "whitespace",
    "encode_texts",
    "lstm.predict",
    "transformer.predict",
    "ko-whitespace",
    "ko-okt",
    "ko-mecab",
    "ko-kiwi",
]


def _expected_text_error(entry: str, kind: str):
    if kind in ("none", "cp949-bytes") and not entry.startswith("ko-"):
        return TypeError, r"None|bytes"  # "expects a str, got NoneType", "got bytes; decode them first" …
    if entry == "transformer.predict" and kind in ("empty", "whitespace"):
        return ValueError, "empty or only white space"
    return None


@pytest.mark.parametrize("kind", list(TEXTS))
@pytest.mark.parametrize("entry", TEXT_ENTRY_POINTS)
def test_text_entry_points(text_entry_points, vocab, entry, kind):
    text, call = TEXTS[kind], text_entry_points[entry]
    expected = _expected_text_error(entry, kind)
    if expected:
        clear_error(lambda: call(text), *expected)
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = call(text)
    if entry == "encode_texts":  # documented: no tokens -> [unk]; long texts cut at max_len
        (ids,) = result
        assert 1 <= len(ids) <= 64 and all(0 <= i < len(vocab) for i in ids)
        if kind in ("empty", "whitespace"):
            assert ids == [vocab.unk_id]
    elif entry.endswith("predict"):  # one prediction per text, probabilities that sum to one
        (prediction,) = result
        assert prediction["label"] in ("sad", "happy") and math.isclose(
            sum(prediction["probs"].values()), 1, rel_tol=1e-5
        )
        if entry == "transformer.predict" and kind == "100k-chars":
            assert any("truncated" in str(w.message) for w in caught), "a cut text must be reported"
    else:  # tokenisers: a list of non-empty str tokens
        assert isinstance(result, list) and all(isinstance(t, str) and t for t in result)
        if kind in ("empty", "whitespace", "none", "cp949-bytes"):  # Korean adapters: documented, non-str -> ""
            assert result == []
        if kind == "100k-chars":
            assert len(result) > 10_000
        if kind == "emoji":
            assert "happy" in result


def test_vocab_encode_wants_tokens(vocab):
    clear_error(lambda: vocab.encode(None), TypeError, "list of str tokens, got NoneType")
    clear_error(lambda: vocab.encode(b"happy"), TypeError, "got bytes")
    clear_error(lambda: vocab.encode("so happy"), TypeError, "tokenise the text first")
    assert vocab.encode([]) == []


# --------------------------------------------------------------------------- bad audio


def _tone(seconds: float, sr: int = SR, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    wave = (0.3 * np.sin(2 * np.pi * 220 * t)).astype("float32")
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("clips")
    sf.write(folder / "good.wav", _tone(1.0), SR)
    sf.write(folder / "cut.flac", _tone(2.0), SR)
    (folder / "cut.flac").write_bytes((folder / "cut.flac").read_bytes()[:300])
    sf.write(folder / "silence.wav", np.zeros(SR, dtype="float32"), SR)
    sf.write(folder / "short.wav", _tone(0.1), SR)
    sf.write(folder / "stereo44.wav", _tone(1.5, 44_100, channels=2), 44_100)
    (folder / "text.wav").write_text("this is not audio", encoding="utf-8")
    return folder


AUDIO = {  # kind: (file, the AudioError message, or None when the clip is usable)
    "truncated-flac": ("cut.flac", "cannot be decoded"),
    "silent-wav": ("silence.wav", "silent"),
    "0.1s-clip": ("short.wav", "shorter than the minimum"),
    "stereo-44.1k": ("stereo44.wav", None),
    "not-audio": ("text.wav", "cannot be decoded"),
    "missing-file": ("nowhere.wav", "no such audio file"),
}


@pytest.mark.parametrize("kind", list(AUDIO))
def test_load_audio(clips, kind):
    name, message = AUDIO[kind]
    if message:
        error = clear_error(lambda: load_audio(clips / name), AudioError, message)
        assert name in str(error)
        return
    wave = load_audio(clips / name)  # documented: downmixed to mono, resampled to 16 kHz
    assert wave.dtype == np.float32 and wave.ndim == 1 and abs(len(wave) - 1.5 * SR) <= 2


@pytest.mark.parametrize("path", [None, "", b"good.wav"], ids=["none", "empty", "bytes"])
def test_load_audio_without_a_path(path):
    clear_error(lambda: load_audio(path), AudioError, "needs the path of an audio file")


@pytest.mark.parametrize("kind", list(AUDIO))
def test_extract_features_leaves_bad_clips_out(clips, kind, isolated_cache):
    name, message = AUDIO[kind]
    frame = pd.DataFrame({"filepath": [str(clips / "good.wav"), str(clips / name)]})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = extract_features(frame, kind="mfcc", progress=False, cache_name="robust")
    if message:
        assert len(result) == 1 and result.frame["filepath"].tolist() == [str(clips / "good.wav")]
        assert len(result.rejected) == 1 and message in result.rejected[0][1]
        assert any(issubclass(w.category, RejectedClipsWarning) for w in caught)
    else:
        assert len(result) == 2 and not result.rejected
    assert result.features[0].shape[0] == 40
    assert not [p for p in (isolated_cache / "features").iterdir() if p.suffix == ".part"]  # written atomically


def test_extract_features_with_nothing_usable(clips):
    frame = pd.DataFrame({"filepath": [str(clips / "cut.flac"), np.nan]})
    error = clear_error(
        lambda: extract_features(frame, use_cache=False, progress=False), AudioError, "no clip could be used"
    )
    assert "cut.flac" in str(error)
    clear_error(
        lambda: extract_features(pd.DataFrame({"path": ["a.wav"]}), use_cache=False), KeyError, "no column 'filepath'"
    )
    clear_error(lambda: extract_features(pd.DataFrame({"filepath": []}), use_cache=False), ValueError, "holds no clips")


# --------------------------------------------------------------------------- model folders, saved and loaded


@pytest.fixture(scope="module")
def folders(tmp_path_factory, vocab, lstm_classifier, tiny_bert) -> dict[str, Path]:
    """One saved folder of every kind, and folders that are not models."""
    from helpers.text.hf_finetune import save_classifier
    from helpers.text.subword import save_tokenizer

    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    cnn = SpeechCNN(in_channels=1, num_classes=2, widths=(4,), dropout=0.0)
    features = {"kind": "mfcc", "n_mfcc": 13, "n_mels": 26, "n_fft": 512, "win_length": 400, "hop_length": 160}
    other = root / "segmentation"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"task": "image-segmentation", "model": {}}), encoding="utf-8")
    wav2vec2 = _tiny_wav2vec2(root / "wav2vec2")
    garbage = root / "garbage"
    garbage.mkdir()
    (garbage / "config.json").write_bytes(b"\x00\xff not json")
    return {
        "lstm": lstm_classifier.save(root / "lstm"),
        "transformer": save_classifier(*tiny_bert, root, "bert"),
        "speech-cnn": save_speech_cnn(
            cnn, root / "cnn", {"labels": ["calm", "angry"], "features": features, "n_frames": 16}
        ),
        "wav2vec2": wav2vec2,
        "tokenizer": save_tokenizer(tiny_bert[1], root / "tokenizer"),
        "other-task": other,
        "garbage-config": garbage,
        "missing": root / "does-not-exist",
    }


def _tiny_wav2vec2(folder: Path) -> Path:
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification

    config = Wav2Vec2Config(
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=(8, 8),
        conv_stride=(5, 4),
        conv_kernel=(10, 8),
        num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=2,
        num_labels=2,
        id2label={0: "calm", 1: "angry"},
        label2id={"calm": 0, "angry": 1},
    )
    Wav2Vec2ForSequenceClassification(config).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(sampling_rate=SR).save_pretrained(folder)
    return folder


def _load_transformer(folder):
    from helpers.text.hf_finetune import EmotionClassifier

    return EmotionClassifier.from_folder(folder)


def _load_pretrained(folder):
    from helpers.text.hf_finetune import load_classifier

    return load_classifier(str(folder), num_labels=2)


LOADERS = {  # name: (loader, the kind of folder it reads)
    "load_text_classifier": (load_text_classifier, "lstm"),
    "EmotionClassifier.from_folder": (_load_transformer, "transformer"),
    "load_classifier": (_load_pretrained, "transformer"),
    "load_speech_cnn": (load_speech_cnn, "speech-cnn"),
    "evaluate.load_model": (evaluate.load_model, None),
}


@pytest.mark.parametrize(
    "folder_kind",
    ["lstm", "transformer", "speech-cnn", "wav2vec2", "tokenizer", "other-task", "garbage-config", "missing"],
)
@pytest.mark.parametrize("loader_name", list(LOADERS))
def test_loaders_refuse_folders_of_another_kind(folders, loader_name, folder_kind):
    loader, reads = LOADERS[loader_name]
    if folder_kind == reads or (reads is None and folder_kind in ("lstm", "transformer", "speech-cnn", "wav2vec2")):
        assert loader(folders[folder_kind]) is not None  # its own kind loads
        return
    if loader_name == "load_classifier" and folder_kind == "missing":
        # documented: a path that does not exist is read as a hub name; offline, that falls back to the packaged
        # MiniLM and says why, instead of failing
        loaded = loader(folders[folder_kind])
        assert loaded.name == "offline-minilm" and loaded.reason
        return
    error = clear_error(lambda: loader(folders[folder_kind]), (ValueError, FileNotFoundError, KeyError), r".")
    assert str(folders[folder_kind]) in str(error) or folder_kind == "other-task", (
        f"the message should name the folder: {error}"
    )


def test_save_with_bad_arguments_writes_nothing(tmp_path, vocab, lstm_classifier, tiny_bert):
    from helpers.text.hf_finetune import save_classifier

    clear_error(
        lambda: save_text_classifier(tmp_path / "a", lstm_classifier.model, vocab, {}, ["only-one"], "basic_english"),
        ValueError,
        "1 label names",
    )
    clear_error(
        lambda: save_text_classifier(tmp_path / "b", lstm_classifier.model, vocab, {}, ["x", "y"], "no-such-tokenizer"),
        ValueError,
        "registered tokeniser",
    )
    clear_error(lambda: save_speech_cnn(lstm_classifier.model, tmp_path / "c"), TypeError, "saves a SpeechCNN")
    cnn = SpeechCNN(num_classes=2, widths=(4,))
    with pytest.raises(TypeError, match="not JSON serializable"):
        save_speech_cnn(cnn, tmp_path / "d", {"labels": object()})

    class BrokenTokenizer:
        def save_pretrained(self, folder):
            (Path(folder) / "tokenizer.json").write_text("{half")
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_classifier(tiny_bert[0], BrokenTokenizer(), tmp_path, "bert")
    assert _files(tmp_path) == []  # no folder, no staging folder, no half-written file


def test_a_failed_resave_keeps_the_old_folder(tmp_path):
    target = tmp_path / "tokenizer"
    with atomic_folder(target) as staging:
        (staging / "vocab.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_folder(target) as staging:
        (staging / "vocab.txt").write_text("half")
        raise RuntimeError("interrupted")
    assert _files(tmp_path) == ["tokenizer", "tokenizer/vocab.txt"] and (target / "vocab.txt").read_text() == "old"


# --------------------------------------------------------------------------- checkpoints never run code


@pytest.mark.parametrize("kind", ["lstm", "speech-cnn"])
def test_course_checkpoints_are_read_as_plain_weights(folders, tmp_path, kind):
    import shutil

    folder = shutil.copytree(folders[kind], tmp_path / kind)
    marker = tmp_path / "code-ran"
    save_hostile_weights(folder / "model.pt", marker)
    loader = load_text_classifier if kind == "lstm" else load_speech_cnn
    clear_error(lambda: loader(folder), ValueError, "cannot be read as plain weights")
    clear_error(lambda: evaluate.load_model(folder), evaluate.EvaluationError, "cannot")
    assert not marker.exists()


def test_transformers_folders_never_run_code(folders, tmp_path):
    import shutil

    from helpers.text.hf_finetune import load_saved_classifier

    marker = tmp_path / "code-ran"
    pickled = shutil.copytree(folders["transformer"], tmp_path / "pickled")
    (pickled / "model.safetensors").unlink()
    save_hostile_weights(pickled / "pytorch_model.bin", marker)
    remote = shutil.copytree(folders["transformer"], tmp_path / "remote")
    config = json.loads((remote / "config.json").read_text())
    config.update(
        model_type="hostile",
        architectures=["HostileForSequenceClassification"],
        auto_map={
            "AutoConfig": "modeling_hostile.HostileConfig",
            "AutoModelForSequenceClassification": "modeling_hostile.HostileModel",
        },
    )
    (remote / "config.json").write_text(json.dumps(config))
    (remote / "modeling_hostile.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    truncated = shutil.copytree(folders["transformer"], tmp_path / "truncated")
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    for folder in (pickled, remote, truncated):
        clear_error(lambda folder=folder: load_saved_classifier(folder), ValueError, "cannot be loaded")
        clear_error(lambda folder=folder: evaluate.load_model(folder), evaluate.EvaluationError, "cannot be loaded")
    assert not marker.exists()


def test_the_source_never_unpickles_freely_nor_trusts_remote_code():
    paths = sorted(HELPERS_DIR.rglob("*.py"))  # every sub-package (the glob of the top level found none after the move)
    assert len(paths) > 30
    for path in paths:
        source = path.read_text(encoding="utf-8")
        for call in re.findall(r"torch\.load\(([^)]*)\)", source):
            assert "weights_only=True" in call, f"{path.name}: torch.load({call}) without weights_only=True"
        assert "trust_remote_code=True" not in source, path.name
        assert not re.search(r"pickle\.loads?\(", source), f"{path.name} unpickles data"  # the token cache is JSON now


# --------------------------------------------------------------------------- archives


@pytest.mark.parametrize(
    "member", ["../escaped.txt", "/tmp/escaped-absolute.txt", "a/../../escaped.txt", "a/b/../../../escaped.txt"]
)
def test_archive_members_cannot_leave_the_target(tmp_path, member):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok/a.txt", "fine")
        zf.writestr(member, "bad")
    clear_error(lambda: safe_extract_zip(archive, tmp_path / "out"), UnsafeArchiveError, "outside")
    assert _files(tmp_path) == ["evil.zip"]  # no target, no staging folder, nothing escaped beside it
    assert not Path("/tmp/escaped-absolute.txt").exists()


def test_a_truncated_archive_is_a_clear_error(tmp_path):
    archive = tmp_path / "cut.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("Actor_01/a.wav", b"RIFF" * 1000)
    archive.write_bytes(archive.read_bytes()[:100])
    clear_error(lambda: safe_extract_zip(archive, tmp_path / "out"), ValueError, "not a readable zip")
    assert _files(tmp_path) == ["cut.zip"]


# --------------------------------------------------------------------------- data sets from a bad mirror


def _mirror(tmp_path, monkeypatch, files: dict[str, bytes]) -> Path:
    mirror = tmp_path / "mirror"
    for rel, content in files.items():
        (mirror / rel).parent.mkdir(parents=True, exist_ok=True)
        (mirror / rel).write_bytes(content)
    mirror.mkdir(exist_ok=True)
    monkeypatch.setenv("COURSE_DATA_DIR", str(mirror))
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    return mirror


def _flac() -> bytes:
    import io

    buffer = io.BytesIO()
    sf.write(buffer, _tone(0.5), SR, format="FLAC")
    return buffer.getvalue()


NSMC_HEADER = "id\tdocument\tlabel\n"
BAD_MIRRORS = {  # name: (files, loader, error, message)
    "empty": ({}, load_emotion_en, DataNotFoundError, "was not found"),
    "wrong-version": (
        {f"emotion_en/{s}.csv": b"text,label\nhi,1\n" for s in ("train", "validation", "test")},
        load_emotion_en,
        ChecksumError,
        "expected",
    ),
    "cp949-text": (
        {f"nsmc/ratings_{s}.txt": (NSMC_HEADER + "1\t영화 좋아\t1\n").encode("cp949") for s in ("train", "test")},
        load_nsmc,
        ValueError,
        "not UTF-8",
    ),
    "truncated-gzip": (
        {f"nsmc/ratings_{s}.txt.gz": b"\x1f\x8b\x08\x00" + b"\x00" * 20 for s in ("train", "test")},
        load_nsmc,
        ValueError,
        "damaged or truncated",
    ),
    "wrong-columns": (
        {f"nsmc/ratings_{s}.txt": b"a\tb\n1\t2\n" for s in ("train", "test")},
        load_nsmc,
        ValueError,
        "columns id, document, label",
    ),
    "nan-labels": (
        {f"nsmc/ratings_{s}.txt": (NSMC_HEADER + "1\tgood\t\n2\tbad\tNaN\n").encode() for s in ("train", "test")},
        load_nsmc,
        ValueError,
        r"labels must be 0 or 1; data rows \[1, 2\]",
    ),
    "unknown-emotions": (
        {
            "ravdess_speech_16k/audio/Actor_01/03-01-01-01-01-01-01.flac": _flac(),
            "ravdess_speech_16k/metadata.csv": b"path,emotion\naudio/Actor_01/03-01-01-01-01-01-01.flac,bored\n",
        },
        load_ravdess,
        ValueError,
        "'bored'",
    ),
    "empty-metadata": (
        {
            "ravdess_speech_16k/audio/Actor_01/03-01-01-01-01-01-01.flac": _flac(),
            "ravdess_speech_16k/metadata.csv": b"",
        },
        load_ravdess,
        ValueError,
        "not a readable CSV",
    ),
    "metadata-columns": (
        {
            "ravdess_speech_16k/audio/Actor_01/03-01-01-01-01-01-01.flac": _flac(),
            "ravdess_speech_16k/metadata.csv": b"file,label\nx,y\n",
        },
        load_ravdess,
        ValueError,
        "lacks the column",
    ),
    "no-ravdess-names": (
        {"ravdess_speech/audio/Actor_01/notes.wav": b"x"},
        load_ravdess,
        DataNotFoundError,
        "no RAVDESS speech clips",
    ),
}


@pytest.mark.parametrize("name", list(BAD_MIRRORS))
def test_data_loaders_with_a_bad_mirror(tmp_path, monkeypatch, name):
    files, loader, error, message = BAD_MIRRORS[name]
    mirror = _mirror(tmp_path, monkeypatch, files)
    before = _files(mirror)
    clear_error(loader, error, message)
    assert _files(mirror) == before  # the mirror is only read
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.part"))


# --------------------------------------------------------------------------- labels


@pytest.mark.parametrize("labels", [[0, float("nan")], [0, None], ["joy", "sad"]], ids=["nan", "none", "names"])
def test_label_ids_that_are_not_ids(labels, tiny_bert):
    from helpers.text.hf_finetune import TokenizedTexts

    clear_error(lambda: TokenizedTexts(["good", "bad"], labels, tiny_bert[1]), ValueError, "integer class ids")
    clear_error(lambda: classification_metrics(labels, [0, 1]), ValueError, "NaN|integer class ids")


def test_split_with_nan_labels():
    frame = pd.DataFrame({"text": list("abcdefghij"), "label": [0, 1] * 4 + [np.nan, 1]})
    clear_error(lambda: stratified_split(frame, test_size=0.2, val_size=0.2), ValueError, "missing labels")


# --------------------------------------------------------------------------- the evaluate command


@pytest.fixture
def lstm_folder(tmp_path, lstm_classifier):
    return lstm_classifier.save(tmp_path / "lstm")


def test_evaluate_cli_with_every_bad_text_row(lstm_folder, tmp_path, capsys):
    rows = [
        ("so happy today", "happy"),
        ("", "happy"),
        (" \t ", "sad"),
        ('"' + TEXTS["100k-chars"] + '"', "happy"),
        (TEXTS["emoji"], "happy"),
        ("i feel sad", ""),
        ("i feel sad", "NaN"),
        ("i feel sad", "bored"),
        ("lonely",),
    ]
    data = tmp_path / "d.csv"
    data.write_text("text,label\n" + "".join(",".join(r) + "\n" for r in rows), encoding="utf-8")
    assert evaluate.main(["--model", str(lstm_folder), "--data", str(data), "--out", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["rows_total"] == 9 and report["rows_scored"] == 3  # rows 2, 5, 6: plain, 100k characters, emoji
    problems = {p["row"]: p["problem"] for p in report["problems"]}
    assert sorted(problems) == [3, 4, 7, 8, 9, 10]
    assert problems[3] == problems[4] == "empty text"
    assert "unknown label ''" in problems[7] and "'NaN'" in problems[8] and "'bored'" in problems[9]
    assert "unknown label ''" in problems[10]  # a short row: the label cell is missing
    assert "row 3: empty text" in capsys.readouterr().out


@pytest.mark.parametrize("case", ["cp949-file", "missing-model", "other-task", "missing-data", "read-only-out"])
def test_evaluate_cli_errors_leave_no_report(lstm_folder, folders, tmp_path, capsys, case):
    data = tmp_path / "d.csv"
    data.write_text("text,label\nso happy,happy\n", encoding="utf-8")
    model, out = lstm_folder, tmp_path / "out" / "r.json"
    if case == "cp949-file":
        data.write_bytes("text,label\n영화 좋아,happy\n".encode("cp949"))
    elif case == "missing-model":
        model = folders["missing"]
    elif case == "other-task":
        model = folders["other-task"]
    elif case == "missing-data":
        data = tmp_path / "nothing.csv"
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        out.parent.mkdir()
        out.parent.chmod(0o500)
    try:
        code = evaluate.main(["--model", str(model), "--data", str(data), "--out", str(out)])
    finally:
        if out.parent.exists():
            out.parent.chmod(0o700)
    assert code == 2
    message = capsys.readouterr().err
    assert message.startswith("error: ") and "Traceback" not in message
    assert {
        "cp949-file": "not UTF-8",
        "missing-model": "no saved model folder",
        "other-task": "does not know",
        "missing-data": "no data at",
        "read-only-out": "cannot write the report",
    }[case] in message
    assert not out.exists() and not (out.parent.exists() and any(out.parent.iterdir()))


@pytest.mark.parametrize("kind", list(AUDIO) + ["empty-path", "nan-emotion", "unknown-emotion"])
def test_evaluate_cli_with_every_bad_clip(folders, clips, tmp_path, kind, capsys):
    name, message = AUDIO.get(kind, ("good.wav", None))
    if kind == "missing-file":
        message = "no audio file at"  # found missing while reading metadata.csv, before any decoding
    emotion = {"nan-emotion": "", "unknown-emotion": "bored"}.get(kind, "angry")
    if kind == "empty-path":
        name, message = "", "empty path"
    if kind in ("nan-emotion", "unknown-emotion"):
        message = f"unknown emotion {emotion!r}"
    data = tmp_path / "data"
    data.mkdir()
    (data / "clips").symlink_to(clips)  # paths in metadata.csv are relative to the data folder
    (data / "metadata.csv").write_text(
        f"path,emotion\nclips/good.wav,calm\n{'clips/' + name if name else ''},{emotion}\n"
        f"{clips / 'good.wav'},calm\n../clips/good.wav,calm\n",
        encoding="utf-8",
    )
    assert evaluate.main(["--model", str(folders["speech-cnn"]), "--data", str(data)]) == 0
    report = json.loads((data / "evaluation.json").read_text())
    leaving = [p for p in report["problems"] if p["row"] in (4, 5)]  # an absolute path and '..': refused
    assert [p["row"] for p in leaving] == [4, 5] and all("leaves the data folder" in p["problem"] for p in leaving)
    problems = [p for p in report["problems"] if p["row"] not in (4, 5)]
    if message:
        assert report["rows_scored"] == 1 and [p["row"] for p in problems] == [3]
        assert message in problems[0]["problem"]
    else:
        assert report["rows_scored"] == 2 and not problems
    assert sorted(p.name for p in data.iterdir()) == ["clips", "evaluation.json", "metadata.csv"]


# --------------------------------------------------------------------------- small fixes found on the way


def test_atomic_writes_get_the_usual_file_mode(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "shared.json", b"{}")
        with atomic_folder(tmp_path / "folder") as staging:
            (staging / "x").write_text("x")
        os.umask(0o077)
        atomic_write_bytes(tmp_path / "private.json", b"{}")
    finally:
        os.umask(old)
    assert (tmp_path / "shared.json").stat().st_mode & 0o777 == 0o644  # as open() would give, not mkstemp's 0600
    assert (tmp_path / "folder").stat().st_mode & 0o777 == 0o755  # as mkdir would give, not mkdtemp's 0700
    assert (tmp_path / "private.json").stat().st_mode & 0o777 == 0o600  # a strict umask is respected


def test_korean_models_load_without_importing_helpers_korean(tmp_path):
    """A fresh interpreter saves and reloads a ko-* model; helpers.text.korean is imported by get_tokenizer itself."""
    script = f"""
import sys
from helpers.text.lstm import LSTMClassifier, load_text_classifier, save_text_classifier
from helpers.text.pipeline import Vocab, get_tokenizer
assert "helpers.text.korean" not in sys.modules
tokens = get_tokenizer("ko-whitespace")("영화가 정말 좋아요")
vocab = Vocab.build([tokens])
model = LSTMClassifier(len(vocab), 2, embed_dim=4, hidden_dim=4, pad_id=vocab.pad_id)
save_text_classifier({str(tmp_path / "ko")!r}, model, vocab, {{}}, ["neg", "pos"], "ko-mecab")
"""
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"})
    check = f"""
import sys
from helpers.text.lstm import load_text_classifier
assert "helpers.text.korean" not in sys.modules
print(load_text_classifier({str(tmp_path / "ko")!r}).predict("영화가 좋아요")[0]["label"])
"""
    out = subprocess.run(
        [sys.executable, "-c", check],
        check=True,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert out.stdout.strip() in ("neg", "pos")


# ---------------------------------------------------------------- issue 12: outputs never overwrite a user's files


def test_output_folder_checks(tmp_path):
    from helpers.core.outputs import LOCK_NAME, OutputFolderError, prepare_output_dir, release_output_dir

    a_file = tmp_path / "a-file"
    a_file.write_text("mine")
    clear_error(lambda: prepare_output_dir(a_file), OutputFolderError, "is a file")
    foreign = tmp_path / "foreign"
    (foreign / "model").mkdir(parents=True)
    (foreign / "model" / "thesis.tex").write_text("mine")
    (foreign / "notes.txt").write_text("mine")
    clear_error(lambda: prepare_output_dir(foreign), OutputFolderError, "not a training run")
    clear_error(lambda: prepare_output_dir(foreign, resume=True), OutputFolderError, "not a training run")
    assert (foreign / "model" / "thesis.tex").read_text() == "mine"
    clear_error(lambda: prepare_output_dir(Path("/proc/self/no/such")), OutputFolderError, "cannot create")
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "run_config.json").write_text("{}")
    clear_error(lambda: prepare_output_dir(run), OutputFolderError, "--resume")
    assert prepare_output_dir(run, resume=True) == run and (run / LOCK_NAME).is_file()
    clear_error(lambda: prepare_output_dir(run, resume=True), OutputFolderError, "in use by process")  # a live run
    release_output_dir(run)
    assert not (run / LOCK_NAME).exists()
    # a lock left by a process that is gone (a killed run) is taken over
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket

    (run / LOCK_NAME).write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname(), "started": 0}))
    assert prepare_output_dir(run, resume=True) == run
    release_output_dir(run)


def test_a_run_killed_mid_write_can_be_resumed(tmp_path):
    # seen in CI: SIGKILL while metrics.json was being written left .metrics.json.<random>.part, and --resume refused
    from helpers.core.outputs import OutputFolderError, prepare_output_dir, release_output_dir

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / ".metrics.json.maibu07v.part").write_text('{"half": ')
    (run / ".model.x1y2.part").mkdir()
    (run / ".model.x1y2.part" / "config.json").write_text("{}")
    clear_error(lambda: prepare_output_dir(run), OutputFolderError, "--resume")  # still a run: resume or elsewhere
    assert prepare_output_dir(run, resume=True) == run
    assert sorted(p.name for p in run.iterdir()) == [".lock", "checkpoints"]  # the half-written files are gone
    release_output_dir(run)
    # a .part file of a name the scripts never write is someone else's: refused and kept
    (run / ".thesis.tex.abc.part").write_text("mine")
    clear_error(lambda: prepare_output_dir(run, resume=True), OutputFolderError, "not a training run")
    assert (run / ".thesis.tex.abc.part").read_text() == "mine"


def test_atomic_folder_never_deletes_a_users_folder(tmp_path):
    from helpers.core.download import FolderInUseError

    target = tmp_path / "model"
    target.mkdir()
    (target / "thesis.tex").write_text("mine")
    with pytest.raises(FolderInUseError, match="thesis.tex"), atomic_folder(target) as staging:
        (staging / "config.json").write_text("{}")
    assert (target / "thesis.tex").read_text() == "mine" and _files(tmp_path) == ["model", "model/thesis.tex"]
    # an earlier save of the same files is replaced
    saved = tmp_path / "saved"
    for content in ("old", "new"):
        with atomic_folder(saved) as staging:
            (staging / "config.json").write_text(content)
    assert (saved / "config.json").read_text() == "new"


def _text_data(folder: Path, labels: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "validation"):
        rows = "".join(f"text number {i} {lab},{lab}\n" for i, lab in enumerate(labels * 3))
        (folder / f"{split}.csv").write_text("text,label\n" + rows, encoding="utf-8")
    return folder


def _cli(module, argv, capsys) -> tuple[int, str]:
    import importlib

    code = importlib.import_module(module).main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return code, lines[0]


def test_train_text_refuses_a_foreign_output_before_any_work(tmp_path, capsys):
    data = _text_data(tmp_path / "data", ["joy", "sad"])
    out = tmp_path / "mine"
    (out / "model").mkdir(parents=True)
    (out / "model" / "keep.txt").write_text("mine")
    (out / "metrics.json").write_text("my numbers")
    code, line = _cli(
        "helpers.cli.train_text",
        ["lstm", "--data", str(data), "--output", str(out), "--epochs", "1", "--no-progress"],
        capsys,
    )
    assert code == 2 and "--output" in line
    assert (out / "metrics.json").read_text() == "my numbers" and (out / "model" / "keep.txt").is_file()
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "model"]  # no train.log, no lock left behind


def test_a_full_disk_while_saving_is_one_line_and_keeps_the_users_files(tmp_path, capsys, monkeypatch):
    import errno

    import helpers.cli.script_loop as script_loop

    data = _text_data(tmp_path / "data", ["joy", "sad"])
    out = tmp_path / "run"

    def no_space(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(script_loop, "atomic_write_bytes", no_space)  # metrics / checkpoints meet a full disk
    code, line = _cli(
        "helpers.cli.train_text",
        ["lstm", "--data", str(data), "--output", str(out), "--epochs", "1", "--no-progress"],
        capsys,
    )
    assert code == 2 and "No space left on device" in line and "free some disk space" in line
    assert (data / "train.csv").is_file() and (data / "validation.csv").is_file()  # the input is untouched
    assert not (out / ".lock").exists(), "the output lock is released after the failure"


# --------------------------------------------------------------------------- issue 12: bounded input


def test_audio_headers_are_checked_before_decoding(tmp_path):
    import tracemalloc

    one_hz = tmp_path / "one-hz.wav"
    sf.write(one_hz, (0.1 * np.sin(np.arange(20_000))).astype(np.float32), 1, subtype="PCM_16")  # 40 KB, "20,000 s"
    tracemalloc.start()
    clear_error(lambda: load_audio(one_hz), AudioError, "1 Hz")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 5_000_000, peak  # the 20.3 GB of the old code: nothing was decoded
    long_clip = tmp_path / "long.wav"
    sf.write(long_clip, (0.1 * np.sin(np.arange(61 * 8_000) / 3)).astype(np.float32), 8_000, subtype="PCM_16")
    clear_error(lambda: load_audio(long_clip), AudioError, "cap of 60 s")
    assert len(load_audio(long_clip, max_seconds=None)) == 61 * SR
    nan = tmp_path / "nan.wav"
    wave = _tone(1.0)
    wave[100] = np.nan
    sf.write(nan, wave, SR, subtype="FLOAT")
    clear_error(lambda: load_audio(nan), AudioError, "nan.wav: 1 samples are NaN or infinite")


@pytest.mark.parametrize(
    "key,value,message",
    [
        ("n_frames", 10**9, "n_frames must be between"),
        ("n_frames", "32", "n_frames must be an integer"),
        ("n_frames", -3, "n_frames must be between"),
        ("features.n_fft", float("nan"), "n_fft must be"),
        ("features.sr", 1, "sr must be between"),
        ("features", [1, 2], "features must be a JSON object"),
        ("model.num_classes", 100_000, "num_classes must be between"),
        ("labels", ["calm", "Calm"], "must differ"),
    ],
)
def test_model_config_values_are_range_checked(folders, tmp_path, key, value, message):
    import shutil

    folder = shutil.copytree(folders["speech-cnn"], tmp_path / "cnn")
    config = json.loads((folder / "config.json").read_text())
    node = config
    *parents, last = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    (folder / "config.json").write_text(json.dumps(config))
    clear_error(lambda: evaluate.load_model(folder), evaluate.EvaluationError, message)


@pytest.mark.parametrize(
    "labels,message",
    [
        (["joy", "sad", "99999"], "mixes label ids"),
        (["0", "1", "99999"], "caps classes at 1,000"),
        (["0", "1", "5"], "never occur"),
        (["joy", "Joy", "sad"], "differ only in case"),
    ],
)
def test_training_labels_are_checked(tmp_path, labels, message):
    from helpers.cli.train_text import load_text_splits

    clear_error(lambda: load_text_splits(str(_text_data(tmp_path / "d", labels))), ValueError, message)


def test_known_data_set_counts_and_metadata_paths(tmp_path, monkeypatch):

    from helpers.core.data import DataCountWarning

    mirror = Path(os.environ.get("COURSE_DATA_DIR", "/work/shared/data")) / "ravdess_speech_16k"
    if not (mirror / "metadata.csv").is_file():
        pytest.skip("needs the RAVDESS mirror (COURSE_DATA_DIR)")
    folder = tmp_path / "ravdess_speech_16k"
    folder.mkdir()
    (folder / "audio").symlink_to(mirror / "audio")
    meta = pd.read_csv(mirror / "metadata.csv", dtype=str)
    meta.iloc[:1000].to_csv(folder / "metadata.csv", index=False)
    with pytest.warns(
        DataCountWarning, match=r"1,000 clips, expected 1,200.*actor 17: 40, actor 18: 0, actor 19: 0, actor 20: 0"
    ):
        assert len(load_ravdess(folder)) == 1000
    meta.loc[3, "path"] = "../../etc/passwd"
    meta.to_csv(folder / "metadata.csv", index=False)
    clear_error(lambda: load_ravdess(folder), ValueError, "line 5: path '../../etc/passwd' leaves the data folder")


def test_evaluate_streams_large_files_in_chunks(lstm_folder, tmp_path):
    rows = ["i feel happy,happy", "i feel sad today,sad", ",happy"] * 700  # 2,100 rows, 700 without text
    data = tmp_path / "big.csv"
    data.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    report = evaluate.evaluate(lstm_folder, data, chunk_rows=128)
    assert report.rows_total == 2_100 and report.rows_scored == 1_400 and report.problems_total == 700
    assert [p["row"] for p in report.problems[:3]] == [4, 7, 10] and report.problems[-1]["row"] == 2_101
    whole = evaluate.evaluate(lstm_folder, data, chunk_rows=100_000)
    assert whole.metrics == report.metrics


# --------------------------------------------------------------------------- issue 12: one line for every mistake


@pytest.mark.parametrize(
    "argv,message",
    [
        (["fold", "--fold", "0", "--n-folds", "1"], "--n-folds must be between 2"),
        (["fold", "--fold", "0", "--epochs", "0"], "--epochs must be between 1"),
        (
            ["fold", "--fold", "0", "--tokenizer", "/no/such/tokenizer"],
            "--tokenizer /no/such/tokenizer: no such folder",
        ),
        (["fold", "--fold", "0", "--threads", "-1"], "--threads must be between 1"),
        (["fold", "--fold", "0", "--out", "/proc/self/x/fold.json"], "--out"),
        (["lstm", "--epochs", "0", "--output", "{tmp}/o"], "epochs must be at least 1"),
        (["lstm", "--threads", "-1", "--output", "{tmp}/o"], "--threads must be between 1"),
        (["lstm", "--output", "/proc/self/no/such"], "cannot create --output"),
    ],
)
def test_train_text_mistakes_are_one_line(tmp_path, capsys, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, line = _cli("helpers.cli.train_text", argv, capsys)
    assert code == 2 and message in line


def test_device_cuda_without_a_gpu_is_one_line(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: --device cuda is valid here")
    for module, argv in (
        ("helpers.cli.train_text", ["fold", "--fold", "0", "--device", "cuda"]),
        ("helpers.cli.train_audio", ["--fold", "0", "--device", "cuda", "--output", str(tmp_path / "o")]),
    ):
        code, line = _cli(module, argv, capsys)
        assert code == 2 and "no usable CUDA GPU" in line


@pytest.mark.parametrize("value", ["ten", [1], 2.5, True])
def test_config_values_of_the_wrong_type(tmp_path, capsys, value):
    from helpers.cli.train_text import main

    config = tmp_path / "run.json"
    config.write_text(json.dumps({"epochs": value}))
    with pytest.raises(SystemExit) as exit_info:
        main(["lstm", "--config", str(config), "--output", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "epochs=" in err
    assert err.count("\n") == 1 and "usage:" not in err, "one line, no usage block: the flags were fine"
    assert not (tmp_path / "o").exists()


def test_evaluate_cli_mistakes_are_one_line(folders, tmp_path, capsys):
    import shutil

    folder = shutil.copytree(folders["speech-cnn"], tmp_path / "cnn")
    config = json.loads((folder / "config.json").read_text())
    config["n_frames"] = "lots"
    (folder / "config.json").write_text(json.dumps(config))
    code, line = _cli("helpers.cli.evaluate", ["--model", str(folder), "--data", str(tmp_path)], capsys)
    assert code == 2 and "n_frames must be an integer" in line
    code, line = _cli(
        "helpers.cli.evaluate",
        ["--model", str(folders["lstm"]), "--data", str(tmp_path), "--max-seconds", "-1"],
        capsys,
    )
    assert code == 2 and "--max-seconds" in line
