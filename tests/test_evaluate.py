import json

import pytest

from helpers.cli import evaluate
from helpers.text.lstm import LSTMClassifier, save_text_classifier
from helpers.text.pipeline import Vocab, basic_english


@pytest.fixture
def lstm_folder(tmp_path):
    vocab = Vocab.build([basic_english(t) for t in ("i feel happy", "i feel sad today")])
    model = LSTMClassifier(len(vocab), 2, embed_dim=8, hidden_dim=8, pad_id=vocab.pad_id)
    return save_text_classifier(tmp_path / "model", model, vocab, {"max_len": 32}, ["sad", "happy"], "basic_english")


def _csv(path, rows):
    path.write_text("text,label\n" + "".join(f"{t},{label}\n" for t, label in rows), encoding="utf-8")
    return path


def test_scores_good_rows_and_reports_bad_ones(lstm_folder, tmp_path):
    data = _csv(
        tmp_path / "d.csv",
        [("i feel happy", "happy"), ("so sad", "0"), ("", "happy"), ("meh", "angry"), ("fine", "HAPPY")],
    )
    report = evaluate.evaluate(lstm_folder, data)
    assert report.rows_total == 5 and report.rows_scored == 3
    assert [p["row"] for p in report.problems] == [4, 5]
    assert "empty text" in report.problems[0]["problem"] and "'angry'" in report.problems[1]["problem"]
    assert set(report.metrics) == {"accuracy", "macro_f1", "balanced_accuracy", "mcc", "weighted_f1"}


def test_cli_writes_json_and_exits_cleanly(lstm_folder, tmp_path, capsys):
    data = _csv(tmp_path / "d.csv", [("i feel happy", "happy"), ("so sad", "sad")])
    assert evaluate.main(["--model", str(lstm_folder), "--data", str(data), "--out", str(tmp_path / "r.json")]) == 0
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["rows_scored"] == 2 and 0 <= saved["metrics"]["accuracy"] <= 1
    assert "accuracy" in capsys.readouterr().out


def test_an_existing_report_is_kept_unless_overwrite(lstm_folder, tmp_path, capsys, monkeypatch):
    data = _csv(tmp_path / "d.csv", [("i feel happy", "happy"), ("so sad", "sad")])
    default = tmp_path / "evaluation.json"
    assert evaluate.main(["--model", str(lstm_folder), "--data", str(data)]) == 0  # nothing there yet: written
    assert json.loads(default.read_text())["rows_scored"] == 2
    capsys.readouterr()
    mine = tmp_path / "mine.json"
    for path in (default, mine):
        path.write_text("my own notes\n")
    real_evaluate = evaluate.evaluate
    monkeypatch.setattr(evaluate, "evaluate", lambda *a, **k: pytest.fail("scored before refusing"))
    for extra, path in (([], default), (["--out", str(mine)], mine)):
        assert evaluate.main(["--model", str(lstm_folder), "--data", str(data), *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
        assert str(path) in err and "--overwrite" in err
        assert path.read_text() == "my own notes\n"
    # a report that appears while this one is scored is kept too
    late = tmp_path / "late.json"
    monkeypatch.setattr(
        evaluate, "evaluate", lambda *a, **k: (late.write_text("written meanwhile\n"), real_evaluate(*a, **k))[1]
    )
    assert evaluate.main(["--model", str(lstm_folder), "--data", str(data), "--out", str(late)]) == 2
    assert late.read_text() == "written meanwhile\n" and "--overwrite" in capsys.readouterr().err
    monkeypatch.setattr(evaluate, "evaluate", real_evaluate)
    for extra, path in (([], default), (["--out", str(mine)], mine)):
        assert evaluate.main(["--model", str(lstm_folder), "--data", str(data), "--overwrite", *extra]) == 0
        assert json.loads(path.read_text())["rows_scored"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.csv", "evaluation.json", "late.json", "mine.json", "model"]


@pytest.mark.parametrize(
    "content, message",
    [
        ("sentence,emotion\nhi,happy\n", "lacks the column"),
        ("", "is empty"),
        ("text,label\n,happy\n", "no scorable rows"),
    ],
)
def test_bad_data_is_a_clear_error(lstm_folder, tmp_path, capsys, content, message):
    data = tmp_path / "bad.csv"
    data.write_text(content, encoding="utf-8")
    assert evaluate.main(["--model", str(lstm_folder), "--data", str(data)]) == 2
    assert message in capsys.readouterr().err


def test_wrong_encoding_and_missing_model(lstm_folder, tmp_path, capsys):
    latin = tmp_path / "latin.csv"
    latin.write_bytes("text,label\ncafé,happy\n".encode("cp1252"))
    assert evaluate.main(["--model", str(lstm_folder), "--data", str(latin)]) == 2
    assert "not UTF-8" in capsys.readouterr().err
    assert evaluate.main(["--model", str(tmp_path / "nothing"), "--data", str(latin)]) == 2
    assert "no saved model folder" in capsys.readouterr().err


def test_folder_of_another_kind_is_refused(tmp_path, capsys):
    folder = tmp_path / "other"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"task": "image-segmentation"}))
    assert evaluate.main(["--model", str(folder), "--data", str(folder)]) == 2
    assert "does not know" in capsys.readouterr().err


def test_transformer_folder(tmp_path):
    from helpers.text.hf_finetune import load_classifier, save_classifier

    loaded = load_classifier("offline-minilm", num_labels=2, label_names=["sad", "happy"])
    folder = save_classifier(loaded.model, loaded.tokenizer, tmp_path, "tiny")
    data = _csv(tmp_path / "d.csv", [("i feel happy", "happy"), ("so sad", "sad"), ("x", "joy")])
    report = evaluate.evaluate(folder, data)
    assert report.rows_scored == 2 and report.problems[0]["row"] == 4


# --------------------------------------------------------------------------- speech models


def _tone(seconds: float, sr: int = 16_000, freq: float = 220.0, channels: int = 1):
    import numpy as np

    t = np.arange(int(seconds * sr)) / sr
    wave = (0.3 * np.sin(2 * np.pi * freq * t)).astype("float32")
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


def _audio_folder(tmp_path, labels):
    """Clips of every kind the evaluator meets, and a metadata.csv with a bad row or two (rows 5, 6, 7, 8)."""
    import numpy as np
    import soundfile as sf

    folder = tmp_path / "clips"
    (folder / "a").mkdir(parents=True)
    sf.write(folder / "a" / "one.wav", _tone(1.0), 16_000)
    sf.write(folder / "a" / "two.flac", _tone(0.8, freq=440), 16_000)
    sf.write(folder / "stereo44.wav", _tone(1.2, 44_100, channels=2), 44_100)  # downmixed and resampled
    cut = folder / "cut.flac"
    sf.write(cut, _tone(2.0), 16_000)
    cut.write_bytes(cut.read_bytes()[:300])  # a truncated download
    sf.write(folder / "silence.wav", np.zeros(16_000, dtype="float32"), 16_000)
    sf.write(folder / "short.wav", _tone(0.1), 16_000)
    rows = [
        ("a/one.wav", labels[0]),
        ("a/two.flac", labels[1]),
        ("stereo44.wav", labels[0].upper()),
        ("cut.flac", labels[1]),
        ("a/one.wav", "bored"),
        ("silence.wav", labels[0]),
        ("short.wav", labels[1]),
        ("missing.wav", labels[0]),
    ]
    (folder / "metadata.csv").write_text("path,emotion\n" + "".join(f"{p},{e}\n" for p, e in rows), encoding="utf-8")
    return folder


def _check_audio_report(report):
    assert report.rows_total == 8 and report.rows_scored == 3
    problems = {p["row"]: p["problem"] for p in report.problems}
    assert sorted(problems) == [5, 6, 7, 8, 9]  # header is row 1: cut, unknown label, silence, short, missing
    assert "cut.flac" in problems[5] and "cannot be decoded" in problems[5]
    assert "'bored'" in problems[6]
    assert "silent" in problems[7] and "shorter" in problems[8] and "missing.wav" in problems[9]
    assert set(report.metrics) == {"accuracy", "macro_f1", "balanced_accuracy", "mcc", "weighted_f1"}


@pytest.fixture
def speech_cnn_folder(tmp_path):
    import torch

    from helpers.audio.cnn import SpeechCNN, save_speech_cnn

    torch.manual_seed(0)
    model = SpeechCNN(in_channels=1, num_classes=2, widths=(4, 8), dropout=0.0)
    features = {"kind": "logmel", "n_mels": 16, "n_fft": 512, "win_length": 400, "hop_length": 160, "trim_db": 30.0}
    return save_speech_cnn(
        model,
        tmp_path / "cnn",
        extra={"labels": ["calm", "angry"], "features": features, "n_frames": 32, "normalize": "per-utterance"},
    )


def test_speech_cnn_folder_scores_clips_and_reports_bad_rows(speech_cnn_folder, tmp_path, capsys):
    folder = _audio_folder(tmp_path, ["calm", "angry"])
    report = evaluate.evaluate(speech_cnn_folder, folder, batch_size=4)
    _check_audio_report(report)
    assert evaluate.main(["--model", str(speech_cnn_folder), "--data", str(folder)]) == 0
    saved = json.loads((folder / "evaluation.json").read_text())
    assert saved["rows_scored"] == 3 and [p["row"] for p in saved["problems"]] == [5, 6, 7, 8, 9]
    assert "row 5:" in capsys.readouterr().out


def test_speech_cnn_features_follow_the_training_pipeline(speech_cnn_folder):
    """The evaluator's input equals notebook 08's: extract_features settings, per-band normalisation, centred crop."""
    import numpy as np

    from helpers.audio import features as audio
    from helpers.audio.cnn import FeatureDataset, load_speech_cnn, speech_cnn_features

    _, config = load_speech_cnn(speech_cnn_folder)
    wave = np.concatenate([np.zeros(8000, "float32"), _tone(1.0, freq=300), np.zeros(8000, "float32")])
    settings = {k: v for k, v in config["features"].items() if k not in ("kind", "trim_db")}
    expected_raw = audio.log_mel_spectrogram(audio.trim_silence(wave, 30.0), **settings)
    expected = FeatureDataset([expected_raw], [0], n_frames=config["n_frames"])[0][0].numpy()
    ours = speech_cnn_features(wave, config)
    assert ours.shape == (1, 16, 32)
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)


def _tiny_wav2vec2(folder, labels, course=None):
    """A tiny random Wav2Vec2 saved as notebook 09 saves one (preprocessing under ``course`` in config.json)."""
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification

    torch.manual_seed(0)
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
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={n: i for i, n in enumerate(labels)},
        feat_extract_norm="layer",
    )
    if course is not None:
        config.course = course
    Wav2Vec2ForSequenceClassification(config).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(sampling_rate=16_000, return_attention_mask=True).save_pretrained(folder)
    return folder


COURSE = {"sampling_rate": 16_000, "clip_seconds": 0.5, "trim_db": 30.0, "crop": "centre"}


@pytest.mark.parametrize("course", [None, COURSE], ids=["own-length", "notebook-09-preprocessing"])
def test_wav2vec2_folder_scores_clips_and_reports_bad_rows(tmp_path, course):
    model_dir = _tiny_wav2vec2(tmp_path / "w2v", ["calm", "angry"], course)
    assert json.loads((model_dir / "config.json").read_text())["model_type"] == "wav2vec2"
    loaded = evaluate.load_model(model_dir)
    assert loaded.kind == "audio" and loaded.label_names == ["calm", "angry"]
    assert ("0.50 s clips" in loaded.description) == bool(course)
    _check_audio_report(evaluate.evaluate(model_dir, _audio_folder(tmp_path, ["calm", "angry"])))


def test_wav2vec2_probabilities_follow_notebook_09(tmp_path):
    """Trim, centre crop, normalise over the real samples, pad at the end: notebook 09's predict_file, by hand."""
    import numpy as np
    import soundfile as sf
    import torch
    from transformers import AutoFeatureExtractor, Wav2Vec2ForSequenceClassification

    from helpers.audio.features import load_audio, trim_silence

    model_dir = _tiny_wav2vec2(tmp_path / "w2v", ["calm", "angry"], COURSE)
    quiet = np.zeros(4000, "float32")
    long_clip, short_clip = tmp_path / "long.wav", tmp_path / "short.flac"
    sf.write(long_clip, np.concatenate([quiet, _tone(1.2, freq=330), quiet]), 16_000)  # cropped to 0.5 s
    sf.write(short_clip, _tone(0.3, freq=500), 16_000)  # padded to 0.5 s
    model = Wav2Vec2ForSequenceClassification.from_pretrained(model_dir).eval()
    extractor = AutoFeatureExtractor.from_pretrained(model_dir)
    expected = []
    for path in (long_clip, short_clip):
        wave = trim_silence(load_audio(path), 30.0)
        if len(wave) > 8000:
            wave = wave[(len(wave) - 8000) // 2 :][:8000]
        inputs = extractor(
            wave,
            sampling_rate=16_000,
            padding="max_length",
            max_length=8000,
            return_attention_mask=True,
            return_tensors="pt",
        )
        with torch.no_grad():
            expected.append(torch.softmax(model(**inputs).logits, dim=-1)[0].numpy())
    ours = evaluate.load_model(model_dir).predict_proba([str(long_clip), str(short_clip)])
    np.testing.assert_allclose(ours, np.stack(expected), rtol=1e-5, atol=1e-6)


def test_wav2vec2_folder_saved_by_the_course_helper(tmp_path):
    """The contract with notebook 09: a folder written by helpers.audio.wav2vec.save_wav2vec2 is read as it was
    saved."""
    import torch

    w2v = pytest.importorskip("helpers.audio.wav2vec")
    torch.manual_seed(0)
    from transformers import Wav2Vec2ForSequenceClassification

    model = Wav2Vec2ForSequenceClassification(w2v.small_wav2vec2_config(["calm", "angry"])).eval()
    folder = w2v.save_wav2vec2(model, w2v.make_feature_extractor(), tmp_path / "w2v", extra=COURSE)
    loaded = evaluate.load_model(folder)
    assert loaded.label_names == ["calm", "angry"] and "0.50 s clips" in loaded.description
    _check_audio_report(evaluate.evaluate(folder, _audio_folder(tmp_path, ["calm", "angry"])))


def test_audio_model_refuses_a_csv_and_a_text_model_refuses_a_folder(speech_cnn_folder, lstm_folder, tmp_path, capsys):
    data = _csv(tmp_path / "d.csv", [("i feel happy", "happy")])
    assert evaluate.main(["--model", str(speech_cnn_folder), "--data", str(data)]) == 2
    assert "reads a folder with metadata.csv" in capsys.readouterr().err
    folder = _audio_folder(tmp_path, ["calm", "angry"])
    assert evaluate.main(["--model", str(lstm_folder), "--data", str(folder)]) == 2
    assert "reads a CSV of text,label" in capsys.readouterr().err
    assert not (folder / "evaluation.json").exists()


def test_audio_folder_without_good_metadata(speech_cnn_folder, tmp_path, capsys):
    folder = tmp_path / "clips"
    folder.mkdir()
    assert evaluate.main(["--model", str(speech_cnn_folder), "--data", str(folder)]) == 2
    assert "no metadata.csv" in capsys.readouterr().err
    (folder / "metadata.csv").write_text("file,label\na.wav,calm\n", encoding="utf-8")
    assert evaluate.main(["--model", str(speech_cnn_folder), "--data", str(folder)]) == 2
    assert "lacks the column(s) ['emotion', 'path']" in capsys.readouterr().err
    assert not (folder / "evaluation.json").exists()


def test_speech_cnn_config_that_does_not_fit_is_refused_at_load(speech_cnn_folder, capsys, tmp_path):
    config = json.loads((speech_cnn_folder / "config.json").read_text())
    config["features"]["kind"] = "chroma"
    (speech_cnn_folder / "config.json").write_text(json.dumps(config))
    folder = _audio_folder(tmp_path, ["calm", "angry"])
    assert evaluate.main(["--model", str(speech_cnn_folder), "--data", str(folder)]) == 2
    assert "feature kind 'chroma'" in capsys.readouterr().err


def _tiny_macaron(folder, tokenizer_in_folder=True):
    """A small Macaron model saved like notebook 07, with a subword tokenizer trained on a few sentences."""
    import torch

    from helpers.text import macaron as mac
    from helpers.text.subword import train_subword_tokenizer

    sentences = ["오늘 정말 기뻐요", "너무 슬퍼요", "왜 화가 나", "정말 무서워요", "기쁜 하루"] * 20
    tokenizer = train_subword_tokenizer(sentences, vocab_size=60, min_frequency=1)
    config = mac.MacaronConfig(
        vocab_size=len(tokenizer),
        num_classes=2,
        pad_id=tokenizer.pad_token_id,
        max_len=16,
        dim=16,
        depth=1,
        heads=2,
        conv_channels=8,
    )
    torch.manual_seed(0)
    model = mac.MacaronClassifier(config)
    mac.save_macaron(model, folder, extra={"labels": ["기쁨", "슬픔"], "max_len": 16, "tokenizer": "no/such/folder"})
    if tokenizer_in_folder:
        tokenizer.save_pretrained(folder / "tokenizer")
    return model, tokenizer


def test_macaron_folder_scores_texts_like_the_model(tmp_path):
    import torch

    from helpers.text.pipeline import pad_batch

    model, tokenizer = _tiny_macaron(tmp_path / "mac")
    data = _csv(
        tmp_path / "d.csv", [("오늘 정말 기뻐요", "기쁨"), ("너무 슬퍼요", "1"), ("", "기쁨"), ("무서워", "분노")]
    )
    report = evaluate.evaluate(tmp_path / "mac", data)
    assert report.rows_scored == 2 and [p["row"] for p in report.problems] == [4, 5]  # file lines (header = 1)
    loaded = evaluate.load_model(tmp_path / "mac")
    ids = tokenizer(["오늘 정말 기뻐요"], return_token_type_ids=False)["input_ids"]
    with torch.no_grad():
        expected = torch.softmax(model.eval()(*pad_batch(ids, tokenizer.pad_token_id)), -1).numpy()
    assert loaded.label_names == ["기쁨", "슬픔"]
    assert abs(loaded.predict_proba(["오늘 정말 기뻐요"]) - expected).max() < 1e-6


def test_macaron_folder_without_its_tokenizer_is_a_clear_error(tmp_path, capsys):
    _tiny_macaron(tmp_path / "mac", tokenizer_in_folder=False)
    data = _csv(tmp_path / "d.csv", [("오늘 정말 기뻐요", "기쁨")])
    assert evaluate.main(["--model", str(tmp_path / "mac"), "--data", str(data)]) == 2
    assert "tokenizer is missing" in capsys.readouterr().err
