"""Notebook 06's helpers (korean_emotion, soft_labels): soft labels from rater-weighted votes, the fold splitter,
the two-stage combiner, the losses and the ``python -m helpers.cli.train_text`` entry point."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from helpers.multimodal import kemdy20
from helpers.text import korean_emotion as ke
from helpers.text import soft_labels as sl

# --------------------------------------------------------------------------- soft labels

HAND = pd.DataFrame(
    [
        ("u1", "A", "happy"),
        ("u1", "B", "happy"),
        ("u1", "C", "sad"),
        ("u2", "A", "sad"),
        ("u2", "B", "sad"),
        ("u2", "C", "sad"),
        ("u3", "A", "angry"),
        ("u3", "B", "happy"),
        ("u3", "C", "angry"),
        ("u4", "A", "happy"),
        ("u4", "B", "sad"),
        ("u4", "C", "angry"),
    ],
    columns=["utterance", "rater", "label"],
)


def test_majority_and_rater_agreement_by_hand():
    majority = sl.majority_labels(HAND)
    assert majority.to_dict() == {"u1": "happy", "u2": "sad", "u3": "angry", "u4": None}  # u4: a three-way tie
    weights = sl.rater_agreement(HAND)
    # A agrees on u1, u2, u3; B misses u3; C misses u1. u4 has no majority and does not count.
    assert weights.to_dict() == pytest.approx({"A": 1.0, "B": 2 / 3, "C": 2 / 3})


def test_weighted_distribution_by_hand_breaks_ties():
    dist, weights = sl.soft_labels(HAND, labels=["angry", "happy", "sad"])
    assert np.allclose(dist.sum(axis=1), 1.0)
    # u4: happy (A, weight 1), sad (B, 2/3), angry (C, 2/3) → 3/7, 2/7, 2/7: the tie is gone
    assert dist.loc["u4"].to_list() == pytest.approx([2 / 7, 3 / 7, 2 / 7])
    assert dist.loc["u1"].to_list() == pytest.approx([0, 5 / 7, 2 / 7])
    assert dist.loc["u2"].to_list() == pytest.approx([0, 0, 1])
    assert dist.idxmax(axis=1).to_dict() == {"u1": "happy", "u2": "sad", "u3": "angry", "u4": "happy"}


def test_rater_weights_equal_agreement_with_majority_on_random_votes():
    rng = np.random.default_rng(0)
    labels = ["a", "b", "c", "d"]
    truth = rng.integers(0, 4, 300)
    rows = []
    for u, t in enumerate(truth):
        for r, acc in enumerate([0.9, 0.7, 0.5, 0.3, 0.8]):
            rows.append((u, f"r{r}", labels[t] if rng.random() < acc else labels[rng.integers(0, 4)]))
    votes = pd.DataFrame(rows, columns=["utterance", "rater", "label"])
    weights = sl.rater_agreement(votes)
    majority = sl.majority_labels(votes).dropna()
    for rater, group in votes[votes.utterance.isin(majority.index)].groupby("rater"):
        expected = (group.set_index("utterance")["label"] == majority.reindex(group["utterance"]).to_numpy()).mean()
        assert weights[rater] == pytest.approx(expected)
    assert weights.idxmax() == "r0" and weights.idxmin() == "r3"  # the most reliable rater weighs most
    dist = sl.weighted_label_distribution(votes, weights, labels)
    assert np.allclose(dist.sum(axis=1), 1.0) and (dist.to_numpy() >= 0).all()


def test_multi_label_votes_are_split_into_shares():
    wide = pd.DataFrame({"utterance": ["x", "y"], "E1": ["happy;neutral", "sad"], "E2": ["happy", None]})
    votes = sl.votes_from_wide(wide, ["E1", "E2"])
    assert votes["share"].tolist() == [0.5, 0.5, 1.0, 1.0]
    assert sl.rater_agreement(votes).to_dict() == pytest.approx(
        {"E1": 0.75, "E2": 1.0}
    )  # x: majority happy; E1 gave it half
    with pytest.raises(ValueError, match="typos"):
        sl.weighted_label_distribution(votes, labels=["happy", "sad"])


def test_kemdy20_loader_reads_the_annotation_format(tmp_path):
    folder = tmp_path / "kemdy20"
    (folder / "annotation").mkdir(parents=True)
    (folder / "wav" / "Session01").mkdir(parents=True)
    (folder / "annotation" / "Sess01_eval.csv").write_text(
        "Numb,Wav,,Segment ID,Total Evaluation,,,Eval01F,,,Eval02M,,,Eval03M,,\n"
        ",start,end,,Emotion,Valence,Arousal,Emotion,Valence,Arousal,Emotion,Valence,Arousal,Emotion,Valence,Arousal\n"
        "1,0.1,2.0,Sess01_script01_User001F_001,neutral,3,3,neutral,3,3,neutral,3,3,happy,4,3\n"
        "2,2.1,4.0,Sess01_script01_User002M_001,disqust,2,4,disqust,2,4,angry;disqust,2,4,Disgust,2,4\n",
        encoding="utf-8",
    )
    (folder / "wav" / "Session01" / "Sess01_script01_User001F_001.txt").write_bytes("안녕하세요.\n".encode("cp949"))
    votes, utterances = kemdy20.load_kemdy20_votes(folder)
    assert set(votes["label"]) == {"neutral", "happy", "angry", "disgust"}  # typo fixed, case folded
    assert utterances["text"].tolist() == ["안녕하세요.", ""]
    dist, _ = sl.soft_labels(votes, labels=kemdy20.KEMDY20_EMOTIONS)
    assert dist.idxmax(axis=1).tolist() == ["neutral", "disgust"]


def test_kemdy20_absent_raises_data_not_found(tmp_path, monkeypatch):
    from helpers.core.data import DataNotFoundError

    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(DataNotFoundError):
        kemdy20.load_kemdy20_votes()


# --------------------------------------------------------------------------- splits


@pytest.fixture(scope="module")
def ko_frame():
    import os
    from pathlib import Path

    if not os.environ.get("COURSE_DATA_DIR") or not Path(os.environ["COURSE_DATA_DIR"]).is_dir():
        pytest.skip("needs the data mirror (COURSE_DATA_DIR)")
    from helpers.core.data import load_ko_single_turn_emotion

    return load_ko_single_turn_emotion()


def test_holdout_is_the_split_notebook_04_kept_from_its_tokenizer(ko_frame):
    from helpers.core.data import stratified_split

    pool, test = ke.holdout_split(ko_frame, seed=42)
    assert len(test) == 3860 and len(pool) + len(test) == len(ko_frame)
    tokenizer_split = stratified_split(ko_frame, "label", test_size=0.1, val_size=0.1, seed=42)
    assert test["text"].tolist() == tokenizer_split["test"]["text"].tolist()


def test_fold_splitter_is_stratified_disjoint_complete_and_deterministic(ko_frame):
    pool, test = ke.holdout_split(ko_frame, seed=42)
    folds = ke.kfold_indices(pool["label_id"], n_folds=5, seed=42)
    assert len(folds) == 5
    val_all = np.concatenate([va for _, va in folds])
    assert sorted(val_all.tolist()) == list(range(len(pool)))  # every pool row validates exactly once
    share = np.bincount(pool["label_id"], minlength=7) / len(pool)
    for tr, va in folds:
        assert not set(tr) & set(va) and len(tr) + len(va) == len(pool)
        fold_share = np.bincount(pool["label_id"].to_numpy()[va], minlength=7) / len(va)
        assert np.abs(fold_share - share).max() < 0.002  # stratified
    again = ke.kfold_indices(pool["label_id"], n_folds=5, seed=42)
    assert all((a[1] == b[1]).all() for a, b in zip(folds, again))
    other = ke.kfold_indices(pool["label_id"], n_folds=5, seed=7)
    assert not (folds[0][1] == other[0][1]).all()
    parts = ke.fold_frames(ko_frame, fold=2, n_folds=5, seed=42)
    test_texts = set(test["text"]) - set(pool["text"])  # a few texts repeat across the split in the raw data
    assert not test_texts & set(parts["train"]["text"]) and not test_texts & set(parts["validation"]["text"])
    assert parts["test"]["text"].tolist() == test["text"].tolist()
    with pytest.raises(ValueError):
        ke.fold_frames(ko_frame, fold=5, n_folds=5)


# --------------------------------------------------------------------------- two stages and losses


def test_two_stage_combiner():
    p_neutral = np.array([0.9, 0.2, 0.45])
    p_rest = np.array([[0.5, 0.1, 0.1, 0.1, 0.1, 0.1], [0.0, 0.0, 0.0, 0.0, 0.2, 0.8], [0.2, 0.2, 0.2, 0.2, 0.1, 0.1]])
    probs, preds = ke.combine_two_stage(p_neutral, p_rest)
    assert np.allclose(probs.sum(axis=1), 1.0)
    assert probs[0, ke.NEUTRAL_ID] == pytest.approx(0.9) and probs[0, 0] == pytest.approx(0.1 * 0.5)
    # the six rest classes map onto the 7-way ids without neutral: rest index 5 is 7-way id 6 (disgust)
    assert probs[1, 6] == pytest.approx(0.8 * 0.8) and probs[1, 5] == pytest.approx(0.8 * 0.2)
    assert preds.tolist() == [ke.NEUTRAL_ID, 6, 0]
    # row 3: neutral has the largest combined probability (0.45 > 0.55 · 0.2) but stage 1 said "not neutral"
    assert probs[2].argmax() == ke.NEUTRAL_ID and preds[2] != ke.NEUTRAL_ID
    assert ke.to_rest_ids([0, 3, 5, 6]).tolist() == [0, 3, 4, 5]
    with pytest.raises(ValueError):
        ke.to_rest_ids([4])


def test_soft_target_loss_equals_cross_entropy_for_one_hot_targets():
    g = torch.Generator().manual_seed(0)
    logits, y = torch.randn(16, 7, generator=g), torch.randint(0, 7, (16,), generator=g)
    one_hot = torch.nn.functional.one_hot(y, 7).float()
    assert sl.soft_cross_entropy(logits, one_hot).item() == pytest.approx(
        nn.CrossEntropyLoss()(logits, y).item(), rel=1e-6
    )
    assert sl.soft_cross_entropy(logits, y).item() == pytest.approx(nn.CrossEntropyLoss()(logits, y).item(), rel=1e-6)
    w = ke.class_weights(y.numpy(), 7) if len(set(y.tolist())) == 7 else torch.rand(7, generator=g) + 0.5
    assert sl.SoftTargetLoss(w)(logits, one_hot).item() == pytest.approx(
        nn.CrossEntropyLoss(weight=w)(logits, y).item(), rel=1e-6
    )
    assert ke.FocalLoss(gamma=0.0)(logits, y).item() == pytest.approx(nn.CrossEntropyLoss()(logits, y).item(), rel=1e-6)
    assert ke.FocalLoss(gamma=2.0)(logits, y).item() < nn.CrossEntropyLoss()(logits, y).item()
    soft = torch.softmax(torch.randn(16, 7, generator=g), -1)  # soft targets: CE = H(t) + KL(t || p) ≥ H(t)
    entropy = -(soft * soft.log()).sum(-1).mean()
    assert sl.soft_cross_entropy(soft.log(), soft).item() == pytest.approx(entropy.item(), rel=1e-5)


def test_class_weights_are_balanced():
    w = ke.class_weights([0, 0, 0, 1], 2)
    assert w.tolist() == pytest.approx([4 / 6, 4 / 2])
    with pytest.raises(ValueError, match="no examples"):
        ke.class_weights([0, 0], 2)


def test_two_stage_tfidf_fold_runs_in_process(ko_frame):
    cfg = ke.FoldConfig(model="tfidf", scheme="two-stage", fold=1, n_folds=3, limit=400)
    result = ke.run_fold(cfg, frame=ko_frame, progress=False)
    assert result["sizes"]["train"] == 400
    assert set(result["validation"]) >= {"accuracy", "micro_f1", "macro_f1", "balanced_accuracy"}
    assert np.allclose(result["test_probs"].sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="focal"):
        ke.FoldConfig(model="tfidf", loss="focal")


# --------------------------------------------------------------------------- the CLI


def _tiny_roberta(ko_frame, **settings):
    """A small WordPiece tokenizer and the FoldConfig of a tiny RoBERTa on 120 training sentences of fold 0 of 3."""
    from helpers.text.subword import train_subword_tokenizer

    tok = train_subword_tokenizer(ko_frame["text"].iloc[::50].tolist(), "wordpiece", vocab_size=300)
    tiny = dict(model="roberta", init="random", fold=0, n_folds=3, limit=120, epochs=1, hidden=32, layers=1, heads=2)
    return tok, ke.FoldConfig(**{**tiny, **settings})


def test_tiny_roberta_fold_runs_in_process(tmp_path, ko_frame):
    tok, cfg = _tiny_roberta(ko_frame, loss="weighted")
    result = ke.run_fold(cfg, frame=ko_frame, tokenizer=tok, progress=False)
    assert result["sizes"] == {"train": 120, "validation": 40, "test": 40}
    assert result["test_probs"].shape == (40, 7) and np.allclose(result["test_probs"].sum(axis=1), 1.0, atol=1e-5)
    assert len(result["history"]["7way"].train_loss) == 1


def test_run_fold_trains_with_the_loop_it_is_given(ko_frame):
    """Notebook 06 passes the fine-tuning loop of its own cell: each stage must train with it, with the fold's
    data and settings, and its history must be what the fold reports."""
    tok, cfg = _tiny_roberta(ko_frame, scheme="two-stage", seed=7)
    calls = []

    def my_finetune(model, tokenizer, texts, labels, *args, **kwargs):
        calls.append((len(texts), sorted(set(np.asarray(labels).tolist())), kwargs["seed"]))
        return ke.finetune(model, tokenizer, texts, labels, *args, **kwargs)

    result = ke.run_fold(cfg, frame=ko_frame, tokenizer=tok, progress=False, finetune_fn=my_finetune)
    n_rest = int((ke.fold_frames(ko_frame, 0, 3, 7, 120)["train"]["label_id"] != ke.NEUTRAL_ID).sum())
    assert calls == [(120, [0, 1], 7), (n_rest, list(range(6)), 7)]  # stage 1: neutral or not; stage 2: six emotions
    assert set(result["history"]) == {"stage1", "stage2"}


@pytest.mark.slow  # a fold trained in a subprocess: 23 s under load; make test only
def test_cli_runs_one_fold_and_writes_metrics_json(tmp_path, ko_frame):
    out = tmp_path / "fold0.json"
    cmd = [
        sys.executable,
        "-m",
        "helpers.cli.train_text",
        "--fold",
        "0",
        "--n-folds",
        "3",
        "--limit",
        "150",
        "--model",
        "tfidf",
        "--scheme",
        "two-stage",
        "--out",
        str(out),
        "--no-progress",
        "--device",
        "cpu",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    payload = json.loads(out.read_text())
    assert payload["config"]["fold"] == 0 and payload["config"]["scheme"] == "two-stage"
    assert payload["sizes"]["train"] == 150
    for split in ("validation", "test"):
        assert 0 <= payload[split]["accuracy"] <= 1 and payload[split]["micro_f1"] == payload[split]["accuracy"]
        assert {"macro_f1", "balanced_accuracy"} <= set(payload[split])
    assert "test: accuracy" in done.stdout


def test_cli_rejects_a_fold_outside_the_range(capsys):
    from helpers.cli.train_text import main

    assert main(["--fold", "3", "--n-folds", "3"]) == 2
    assert "--fold must be between 0 and 2, got 3" in capsys.readouterr().err


def test_compare_targets_trains_on_hard_and_soft_targets(ko_frame):
    part = ko_frame.sample(1000, random_state=0).reset_index(drop=True)
    y = part["label_id"].to_numpy()
    soft = np.full((len(y), 7), 0.1 / 6)
    soft[np.arange(len(y)), y] = 0.9
    table = sl.compare_targets(part["text"][:800], {"hard": y[:800], "soft": soft[:800]}, part["text"][800:], y[800:])
    assert list(table.index) == ["hard", "soft"]
    assert (table["accuracy"] > 0.22).all()  # above chance (1/7) with 800 training sentences


def test_expand_soft_targets_weights_each_label_by_its_share():
    row, label, weight = sl.expand_soft_targets([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    assert row.tolist() == [0, 0, 1] and label.tolist() == [0, 1, 2] and weight.tolist() == [0.5, 0.5, 1.0]
    row, label, weight = sl.expand_soft_targets([2, 0], num_classes=3)
    assert label.tolist() == [2, 0] and weight.tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="sum to 1"):
        sl.expand_soft_targets([[0.5, 0.2, 0.0]])
