import json

import pytest

from helpers import evaluate
from helpers.models import LSTMClassifier, save_text_classifier
from helpers.text import Vocab, basic_english


@pytest.fixture
def lstm_folder(tmp_path):
    vocab = Vocab.build([basic_english(t) for t in ("i feel happy", "i feel sad today")])
    model = LSTMClassifier(len(vocab), 2, embed_dim=8, hidden_dim=8, pad_id=vocab.pad_id)
    return save_text_classifier(tmp_path / "model", model, vocab, {"max_len": 32}, ["sad", "happy"], "basic_english")


def _csv(path, rows):
    path.write_text("text,label\n" + "".join(f"{t},{l}\n" for t, l in rows), encoding="utf-8")
    return path


def test_scores_good_rows_and_reports_bad_ones(lstm_folder, tmp_path):
    data = _csv(tmp_path / "d.csv", [("i feel happy", "happy"), ("so sad", "0"), ("", "happy"), ("meh", "angry"), ("fine", "HAPPY")])
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


@pytest.mark.parametrize("content, message", [
    ("sentence,emotion\nhi,happy\n", "lacks the column"),
    ("", "is empty"),
    ("text,label\n,happy\n", "no scorable rows"),
])
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
    assert "no model folder" in capsys.readouterr().err


def test_folder_of_another_kind_is_refused(tmp_path, capsys):
    folder = tmp_path / "other"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"task": "image-segmentation"}))
    assert evaluate.main(["--model", str(folder), "--data", str(folder)]) == 2
    assert "does not know" in capsys.readouterr().err


def test_transformer_folder(tmp_path):
    from helpers.transformer import load_classifier, save_classifier

    loaded = load_classifier("offline-minilm", num_labels=2, label_names=["sad", "happy"])
    folder = save_classifier(loaded.model, loaded.tokenizer, tmp_path, "tiny")
    data = _csv(tmp_path / "d.csv", [("i feel happy", "happy"), ("so sad", "sad"), ("x", "joy")])
    report = evaluate.evaluate(folder, data)
    assert report.rows_scored == 2 and report.problems[0]["row"] == 4
