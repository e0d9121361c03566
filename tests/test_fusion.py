"""helpers.multimodal.fusion: the constructed pairing (same emotion, speaker-independent audio, no sentence reused), the
text branch and the fusion heads."""

import numpy as np
import pandas as pd
import pytest
import torch

from helpers.audio.cnn_recipe import speaker_splits
from helpers.multimodal import fusion as fu

EMOTIONS = fu.FUSION_EMOTIONS


def clips_frame(n_actors=8, per_emotion=2):
    rows = [
        {"actor": f"{a:02d}", "gender": "male" if a % 2 else "female", "emotion": e, "take": k}
        for a in range(1, n_actors + 1)
        for e in EMOTIONS
        for k in range(per_emotion)
    ]
    return pd.DataFrame(rows)


def texts_frame(per_emotion=80, emotions=EMOTIONS):
    rows = [{"text": f"{e} 문장 {i}", "emotion": e} for e in emotions for i in range(per_emotion)]
    return pd.DataFrame(rows).sample(frac=1.0, random_state=0).reset_index(drop=True)


@pytest.fixture
def paired():
    clips, texts = clips_frame(), texts_frame()
    splits = speaker_splits(clips, n_folds=4, seed=42)
    folds = fu.build_paired_folds(clips, texts, splits, partners={"train": 2, "val": 3, "test": 1}, seed=7)
    return clips, texts, splits, folds


def test_every_pair_shares_its_emotion(paired):
    clips, texts, _, folds = paired
    for fold in folds:
        p = fold.pairs
        assert (clips["emotion"].to_numpy()[p["clip_row"]] == p["emotion"]).all()
        assert (texts["emotion"].to_numpy()[p["sentence_row"]] == p["emotion"]).all()
        assert (np.array(EMOTIONS)[p["label"]] == p["emotion"]).all()


def test_audio_side_is_speaker_independent_and_complete(paired):
    clips, _, splits, folds = paired
    for fold, (tr, va, te) in zip(folds, splits):
        speakers = {s: set(fold.split(s)["speaker"]) for s in fu.SPLITS}
        assert not (
            speakers["train"] & speakers["test"]
            or speakers["val"] & speakers["test"]
            or speakers["train"] & speakers["val"]
        )
        for name, idx, k in (("train", tr, 2), ("val", va, 3), ("test", te, 1)):
            counts = fold.split(name)["clip_row"].value_counts()
            assert sorted(counts.index) == sorted(idx.tolist()) and (counts == k).all()  # every clip, k partners each
        assert set(clips["actor"].iloc[te]) == speakers["test"]


def test_no_sentence_is_reused_across_or_within_splits(paired):
    _, texts, _, folds = paired
    for fold in folds:
        used = {s: fold.split(s)["sentence_row"].to_numpy() for s in fu.SPLITS}
        for s, rows in used.items():
            assert len(set(rows)) == len(rows), f"a sentence is used twice in {s}"
        assert not (
            set(used["train"]) & set(used["test"])
            or set(used["val"]) & set(used["test"])
            or set(used["train"]) & set(used["val"])
        )
        assert not set(fold.text_branch) & set(
            fold.pairs["sentence_row"]
        )  # the text branch never sees a paired sentence
        assert not set(texts["text"].iloc[used["test"]]) & set(texts["text"].iloc[fold.text_branch])
    tests = [set(f.split("test")["sentence_row"]) for f in folds]  # test sentences come from different text folds
    assert all(not (tests[i] & tests[j]) for i in range(len(tests)) for j in range(i + 1, len(tests)))


def test_pairing_is_deterministic_with_a_seed(paired):
    clips, texts, splits, folds = paired
    again = fu.build_paired_folds(clips, texts, splits, partners={"train": 2, "val": 3, "test": 1}, seed=7)
    other = fu.build_paired_folds(clips, texts, splits, partners={"train": 2, "val": 3, "test": 1}, seed=8)
    for a, b in zip(folds, again):
        pd.testing.assert_frame_equal(a.pairs, b.pairs)
        np.testing.assert_array_equal(a.text_branch, b.text_branch)
    assert any(not a.pairs.equals(c.pairs) for a, c in zip(folds, other))


def test_text_branch_limit_keeps_a_stratified_sample():
    clips, texts = clips_frame(), texts_frame(per_emotion=100)
    folds = fu.build_paired_folds(clips, texts, speaker_splits(clips, 4, 42), text_branch_limit=140)
    for fold in folds:
        assert len(fold.text_branch) == 140
        assert texts["emotion"].iloc[fold.text_branch].value_counts().tolist() == [20] * 7


def test_clear_errors_for_unpairable_input():
    clips = clips_frame()
    splits = speaker_splits(clips, 4, 42)
    no_fear = texts_frame(emotions=[e for e in EMOTIONS if e != "fearful"])
    with pytest.raises(fu.PairingError, match=r"\['fearful'\] have clips but no candidate sentence"):
        fu.build_paired_folds(clips, no_fear, splits)
    with pytest.raises(fu.PairingError, match=r"emotion 'neutral' needs \d+ sentences but only \d+ are available"):
        fu.build_paired_folds(clips, texts_frame(per_emotion=20), splits, partners={"train": 3})
    with pytest.raises(fu.PairingError, match="calm"):
        fu.build_paired_folds(
            pd.concat([clips, clips.head(1).assign(emotion="calm")], ignore_index=True), texts_frame(), splits
        )
    with pytest.raises(fu.PairingError, match="more than once"):
        fu.build_paired_folds(clips, pd.concat([texts_frame(), texts_frame().head(3)], ignore_index=True), splits)
    tr, va, te = splits[0]
    leaky = [(np.concatenate([tr, te[:1]]), va, te)] + list(splits[1:])
    with pytest.raises(fu.PairingError, match="speaker-independent"):
        fu.build_paired_folds(clips, texts_frame(), leaky)
    with pytest.raises(fu.PairingError, match="partners"):
        fu.build_paired_folds(clips, texts_frame(), splits, partners={"test": 0})


def test_drop_duplicate_sentences():
    texts = pd.DataFrame({"text": ["a", "a", "b", "b", "c"], "emotion": ["sad", "sad", "sad", "angry", "happy"]})
    kept = fu.drop_duplicate_sentences(texts)
    assert kept["text"].tolist() == ["a", "c"]  # "a" once; "b" has two labels and goes


# --------------------------------------------------------------------------- the text branch


def test_text_branch_gives_probabilities_and_an_embedding():
    texts = texts_frame(per_emotion=30)
    labels = texts["emotion"].map(EMOTIONS.index).to_numpy()
    branch = fu.TextBranch(svd_dim=8, seed=0).fit(texts["text"], labels)
    probs, emb = branch.predict_proba(texts["text"][:5]), branch.embed(texts["text"][:5])
    assert probs.shape == (5, 7) and np.allclose(probs.sum(axis=1), 1.0)
    assert emb.shape == (5, 8) and emb.dtype == np.float32
    assert (probs.argmax(axis=1) == labels[:5]).all()  # each label word is in its sentences: an easy task


# --------------------------------------------------------------------------- fusion heads


def test_heads_give_one_row_of_logits_per_pair():
    xt, xa = torch.randn(5, 12), torch.randn(5, 20)
    for head in (fu.EarlyFusion(12, 20, 7), fu.GatedFusion(12, 20, 7)):
        assert head(xt, xa).shape == (5, 7)
    gates = fu.GatedFusion(12, 20, 7).gates(xt, xa)
    assert gates.shape == (5, 2) and ((gates > 0) & (gates < 1)).all()


def test_late_fusion_is_the_average_of_probabilities():
    rng = np.random.default_rng(0)
    p, q = rng.dirichlet(np.ones(7), 10), rng.dirichlet(np.ones(7), 10)
    assert np.allclose(fu.late_fusion(p, q), (p + q) / 2)
    assert np.allclose(fu.late_fusion(p, q, text_weight=1.0), p) and np.allclose(fu.late_fusion(p, q, 0.0), q)
    assert np.allclose(fu.late_fusion(p, q, 0.3).sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="shape"):
        fu.late_fusion(p, q[:, :6])
    with pytest.raises(ValueError, match="text_weight"):
        fu.late_fusion(p, q, 1.5)
    labels = p.argmax(axis=1)
    weight, losses = fu.choose_late_weight(np.eye(7)[labels] * 0.9 + 0.1 / 7, np.full_like(q, 1 / 7), labels)
    assert weight == 1.0 and losses.idxmin() == 1.0  # a perfect text branch and a useless audio one


def test_gated_fusion_with_one_modality_zeroed():
    torch.manual_seed(0)
    head = fu.GatedFusion(6, 4, 7, hidden=5).eval()
    xt = torch.randn(3, 6)
    text_only = torch.tensor([[1.0, 0.0]] * 3)
    # marked absent: the audio gate is closed and the audio input has no effect whatever its values
    out_a = head(xt, torch.randn(3, 4), present=text_only)
    out_b = head(xt, 100 * torch.randn(3, 4), present=text_only)
    assert torch.allclose(out_a, out_b)
    g = head.gates(xt, torch.randn(3, 4), present=text_only)
    assert (g[:, 1] == 0).all() and (g[:, 0] > 0).all()
    manual = head.classifier(g[:, :1] * torch.tanh(head.text_proj(xt)))
    assert torch.allclose(out_a, manual)
    # zeroed (the average embedding after standardising) but not marked: tanh(bias) still enters, gated
    zero = torch.zeros(3, 4)
    g0 = head.gates(xt, zero)
    expected = head.classifier(
        g0[:, :1] * torch.tanh(head.text_proj(xt)) + g0[:, 1:] * torch.tanh(head.audio_proj.bias)
    )
    assert torch.allclose(head(xt, zero), expected, atol=1e-6)
    assert not torch.allclose(head(xt, zero), head(xt, torch.randn(3, 4)))


def _toy(n, rng):
    """The text embedding carries the label, the audio one is noise."""
    y = rng.integers(0, 7, n)
    text = np.eye(7)[y] * 3 + rng.normal(size=(n, 7))
    return text.astype(np.float32), rng.normal(size=(n, 5)).astype(np.float32), y


def test_training_a_head_learns_and_keeps_the_best_epoch():
    rng = np.random.default_rng(0)
    train, val, test = _toy(400, rng), _toy(200, rng), _toy(200, rng)
    torch.manual_seed(0)
    head = fu.EarlyFusion(7, 5, 7, hidden=32, dropout=0.0)
    history = fu.train_fusion_head(head, train, val, epochs=40, seed=0)
    assert history.best_epoch == int(np.argmin(history.val_loss)) + 1
    accuracy = (fu.fusion_proba(head, test[0], test[1]).argmax(axis=1) == test[2]).mean()
    best_possible = (test[0].argmax(axis=1) == test[2]).mean()  # the Bayes rule of this toy: the largest text entry
    assert accuracy > best_possible - 0.05
    with pytest.raises(ValueError, match="modality_dropout"):
        fu.train_fusion_head(head, train, val, modality_dropout=1.0)


def test_modality_dropout_teaches_a_head_to_do_without_a_modality():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 7, 600)

    def both(y):  # each modality alone gives the label; together they are redundant
        return (
            (np.eye(7)[y] * 3 + rng.normal(size=(len(y), 7))).astype(np.float32),
            (np.eye(7)[y] * 3 + rng.normal(size=(len(y), 7))).astype(np.float32),
            y,
        )

    train, val, test = both(y[:400]), both(y[400:500]), both(y[500:])
    scores = {}
    for p in (0.0, 0.5):
        torch.manual_seed(0)
        head = fu.EarlyFusion(7, 7, 7, hidden=16, dropout=0.0)
        fu.train_fusion_head(head, train, val, epochs=30, modality_dropout=p, seed=0)
        scores[p] = (fu.fusion_proba(head, np.zeros_like(test[0]), test[1]).argmax(axis=1) == test[2]).mean()
    assert scores[0.5] > 0.8 and scores[0.5] >= scores[0.0]


def test_standardizer_maps_the_training_mean_to_zero():
    x = np.random.default_rng(0).normal(5, 3, size=(50, 4))
    st = fu.Standardizer().fit(x)
    z = st.transform(x)
    assert np.allclose(z.mean(axis=0), 0, atol=1e-5) and np.allclose(z.std(axis=0), 1, atol=1e-3)
    assert np.allclose(st.transform(x.mean(axis=0, keepdims=True)), 0, atol=1e-5)


# --------------------------------------------------------------------------- pretrained branches


def _clustered(n=300, dim=24, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    centres = rng.standard_normal((classes, dim)) * 3.0
    return (centres[labels] + rng.standard_normal((n, dim))).astype(np.float32), labels


def test_embedding_text_branch_gives_probabilities_and_a_reduced_embedding():
    x, y = _clustered()
    branch = fu.EmbeddingTextBranch(dim=8, seed=0).fit(x[:200], y[:200])
    probs = branch.predict_proba(x[200:])
    assert probs.shape == (100, 3) and np.allclose(probs.sum(1), 1)
    assert (probs.argmax(1) == y[200:]).mean() > 0.9
    emb = branch.embed(x[200:])
    assert emb.shape == (100, 8) and emb.dtype == np.float32
    with pytest.raises(ValueError, match="one embedding row per label"):
        fu.EmbeddingTextBranch().fit(x[:10], y[:11])


def test_layer_head_audio_branch_keeps_the_setting_with_the_lowest_validation_loss():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 240)
    x = rng.standard_normal((240, 3, 6)).astype(np.float32)
    x[:, 1] += (np.eye(3)[y] * 3.0).repeat(2, axis=1)  # only layer 1 carries the class
    grid = (
        {"hidden": 8, "weight_decay": 1e-2, "learning_rate": 1e-2},
        {"hidden": 16, "weight_decay": 1e-1, "learning_rate": 1e-2},
    )
    branch = fu.LayerHeadAudioBranch(num_classes=3, grid=grid, epochs=15, seed=0).fit(
        x, y, np.arange(160), np.arange(160, 200)
    )
    probs = branch.predict_proba(x, np.arange(200, 240))
    assert probs.shape == (40, 3) and (probs.argmax(1) == y[200:]).mean() > 0.8
    emb = branch.embed(x, np.arange(200, 240))
    assert emb.shape == (40, branch.run.settings["hidden"]) and (emb >= 0).all()  # after the ReLU
    # the embedding is what the classifier reads: its last linear layer on emb gives the same probabilities
    with torch.no_grad():
        logits = branch.run.model.net[4](torch.from_numpy(emb))
    assert np.allclose(torch.softmax(logits, -1).numpy(), probs, atol=1e-5)
    # the chosen setting has the lowest best-epoch validation loss of the grid
    from helpers.audio.whisper_features import train_layer_head

    others = [
        train_layer_head(x, y, np.arange(160), np.arange(160, 200), num_classes=3, epochs=15, seed=0, **g) for g in grid
    ]
    assert np.isclose(branch.run.best_val_loss, min(r.best_val_loss for r in others))


def test_sentence_embeddings_are_cached_and_keyed_on_the_sentences(isolated_cache, monkeypatch):
    from helpers.pretrained import PretrainedNotFoundError, resolve_model

    try:
        monkeypatch.setenv("COURSE_MODEL_DIR", str(_real_models_dir()))
        resolve_model("e5-small")
    except (PretrainedNotFoundError, FileNotFoundError) as exc:
        pytest.skip(f"e5-small is not available here: {str(exc).splitlines()[0]}")
    texts = ["오늘 정말 행복해요", "너무 화가 나", "I am so sad today"]
    emb, origin = fu.sentence_embeddings(texts, num_layers=2, cache_name="test-sentences")
    assert emb.shape == (3, 384) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    assert "intfloat/multilingual-e5-small" in origin and "first 2 layers" in origin
    files = sorted((isolated_cache / "features").glob("test-sentences-*.npz"))
    assert len(files) == 1
    again, _ = fu.sentence_embeddings(texts, num_layers=2, cache_name="test-sentences")
    assert np.array_equal(again, emb)
    other, _ = fu.sentence_embeddings(texts[:2], num_layers=2, cache_name="test-sentences")
    assert np.allclose(other, emb[:2], atol=1e-5)  # each sentence on its own, whatever the batch
    assert len(sorted((isolated_cache / "features").glob("test-sentences-*.npz"))) == 2
    with pytest.raises(ValueError, match="no sentences"):
        fu.sentence_embeddings([], num_layers=2)


def _real_models_dir():
    """The repository's built model folders (data/models), used read-only through $COURSE_MODEL_DIR."""
    from helpers.core.env import REPO_ROOT

    return REPO_ROOT / "data" / "models"
