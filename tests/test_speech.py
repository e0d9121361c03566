"""helpers.audio.cnn_recipe: notebook 08's speaker splits (and its published folds), feature loading, training,
prediction and embeddings."""

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from helpers.audio.cnn import SpeechCNN
from helpers.audio.cnn_recipe import (
    SpeechCNNRecipe,
    SpeechFeatures,
    SpeechSetupError,
    embed_speech,
    load_speech_features,
    predict_speech,
    speaker_splits,
    train_speech_cnn,
)
from helpers.audio.features import FeatureSet
from helpers.core.data import speaker_folds


def _actors_frame(n_actors=8, clips=6):
    """RAVDESS-like rows: odd actors male, even female, ``clips`` rows each."""
    rows = [
        {"actor": f"{a:02d}", "gender": "male" if a % 2 else "female", "label": c % 8}
        for a in range(1, n_actors + 1)
        for c in range(clips)
    ]
    return pd.DataFrame(rows)


def _actors(frame, idx):
    return set(frame.actor.iloc[idx])


# --------------------------------------------------------------------------- splits


def test_speaker_splits_keep_actors_apart_and_cover_every_clip_once():
    frame = _actors_frame()
    splits = speaker_splits(frame, n_folds=4, seed=42)
    assert len(splits) == 4
    tests = np.concatenate([te for _, _, te in splits])
    assert sorted(tests.tolist()) == list(range(len(frame)))  # every clip is tested exactly once
    gender = frame.groupby("actor").gender.first()
    for (tr, va, te), (fold_train, fold_test) in zip(splits, speaker_folds(frame, n_folds=4)):
        assert not (
            _actors(frame, tr) & _actors(frame, va)
            or _actors(frame, tr) & _actors(frame, te)
            or _actors(frame, va) & _actors(frame, te)
        )
        np.testing.assert_array_equal(te, fold_test)  # the test part is GroupKFold's
        assert sorted(np.concatenate([tr, va]).tolist()) == sorted(fold_train.tolist())  # nothing lost
        assert sorted(gender[sorted(_actors(frame, va))]) == ["female", "male"]  # one of each


def test_speaker_splits_are_seeded():
    frame = _actors_frame(n_actors=12)
    first = speaker_splits(frame, n_folds=3, seed=42)
    again = speaker_splits(frame, n_folds=3, seed=42)
    for a, b in zip(first, again):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    val_sets = {tuple(sorted(_actors(frame, va))) for seed in range(10) for _, va, _ in speaker_splits(frame, 3, seed)}
    assert len(val_sets) > 3  # the seed chooses the validation actors


def test_speaker_splits_reject_unusable_frames():
    with pytest.raises(SpeechSetupError, match="gender"):
        speaker_splits(_actors_frame().drop(columns="gender"))
    with pytest.raises(SpeechSetupError, match="n_folds"):
        speaker_splits(_actors_frame(), n_folds=9)
    with pytest.raises(SpeechSetupError, match="at least two"):
        speaker_splits(_actors_frame(n_actors=4), n_folds=2)  # 1 male + 1 female left for training


def test_speaker_splits_on_ravdess(mirror):
    from helpers.core.data import load_ravdess

    data = load_ravdess()
    splits = speaker_splits(data)
    assert len(splits) == 5
    for tr, va, te in splits:
        assert data.actor.iloc[te].nunique() == 4 and data.actor.iloc[va].nunique() == 2
        assert len(tr) + len(va) + len(te) == len(data)


# Notebook 08's published folds (its split table): (validation actors, test actors) of folds 1-5. Notebooks 09 and
# 10 and the scripts compare themselves with 08's published numbers on these folds, so they must not move.
PUBLISHED_FOLDS = [
    (["01", "16"], ["05", "10", "15", "20"]),
    (["11", "16"], ["04", "09", "14", "19"]),
    (["02", "15"], ["03", "08", "13", "18"]),
    (["14", "19"], ["02", "07", "12", "17"]),
    (["13", "20"], ["01", "06", "11", "16"]),
]


def _fold_actors(frame, splits):
    return [(sorted(_actors(frame, va)), sorted(_actors(frame, te))) for _, va, te in splits]


def test_speaker_splits_reproduce_the_published_folds_on_a_ravdess_shaped_frame():
    frame = _actors_frame(n_actors=20, clips=60)  # RAVDESS's layout: actors 01-20, odd male, 60 clips each, in order
    assert _fold_actors(frame, speaker_splits(frame, n_folds=5, seed=42)) == PUBLISHED_FOLDS
    assert _fold_actors(frame, speaker_splits(frame, n_folds=5, seed=7)) != PUBLISHED_FOLDS  # the seed matters


def test_speaker_splits_reproduce_the_published_folds_on_ravdess(mirror):
    from helpers.core.data import load_ravdess

    data = load_ravdess()
    assert _fold_actors(data, speaker_splits(data, n_folds=5, seed=42)) == PUBLISHED_FOLDS


# --------------------------------------------------------------------------- training on tiny synthetic features

TINY = SpeechCNNRecipe(
    n_mels=8,
    n_frames=16,
    batch_size=8,
    widths=(4, 8),
    epochs=2,
    noisy_copies=1,
    spec_augment={"n_freq_masks": 1, "freq_width": 2, "n_time_masks": 1, "time_width": 3},
)


def _tiny_features(n=32, seed=0):
    """Variable-length (8, frames) arrays whose mean level in band ``label`` is raised: learnable, cheap."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 8
    feats = []
    for label in labels:
        x = rng.standard_normal((8, int(rng.integers(12, 24)))).astype(np.float32)
        x[label] += 3.0
        feats.append(x)
    return feats, labels


def _feature_set(features):
    return FeatureSet(
        features, pd.DataFrame({"filepath": [f"clip{i}" for i in range(len(features))]}), [], {}, None, False
    )


def test_train_predict_embed_on_tiny_features():
    feats, labels = _tiny_features()
    noisy = [f + 0.1 * np.random.default_rng(1).standard_normal(f.shape).astype(np.float32) for f in feats]
    features = SpeechFeatures(_feature_set(feats), [_feature_set(noisy)])
    train_i, val_i, test_i = np.arange(0, 20), np.arange(20, 26), np.arange(26, 32)
    model, history, seconds = train_speech_cnn(
        features, labels, train_i, val_i, TINY, seed=3, device="cpu", progress=False
    )
    assert len(history.train_loss) == len(history.val_loss) == 2 and history.best_epoch in (1, 2)
    assert seconds > 0 and all(np.isfinite(history.train_loss))

    logits, y_true = predict_speech(model, features, labels, test_i, TINY, device="cpu")
    assert logits.shape == (6, 8)
    np.testing.assert_array_equal(y_true, labels[test_i])

    emb = embed_speech(model, features, test_i, TINY)
    assert emb.shape == (6, TINY.widths[-1])
    with torch.no_grad():  # the embedding is exactly what the final linear layer reads
        np.testing.assert_allclose(model.classifier(torch.from_numpy(emb)).numpy(), logits, rtol=1e-4, atol=1e-5)


def test_training_is_reproducible_from_the_seed():
    feats, labels = _tiny_features()
    runs = [
        train_speech_cnn(feats, labels, np.arange(24), np.arange(24, 32), TINY, seed=7, device="cpu", progress=False)
        for _ in range(2)
    ]
    assert runs[0][1].train_loss == runs[1][1].train_loss
    assert runs[0][1].val_loss == runs[1][1].val_loss


def test_training_errors():
    feats, labels = _tiny_features()
    with pytest.raises(SpeechSetupError, match="labels must lie"):
        train_speech_cnn(feats, labels + 8, np.arange(24), np.arange(24, 32), TINY, device="cpu", progress=False)
    with pytest.raises(SpeechSetupError, match="indices"):
        predict_speech(SpeechCNN(widths=(4,)), feats, labels, np.array([0, 99]), TINY, device="cpu")


# --------------------------------------------------------------------------- features through the cache


def test_load_speech_features_caches_clean_and_noisy_versions(tmp_path, isolated_cache):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        t = np.arange(16_000) / 16_000
        wave = 0.3 * np.sin(2 * np.pi * (150 + 100 * i) * t) * (t > 0.2) + 0.001 * rng.standard_normal(len(t))
        path = tmp_path / f"clip{i}.wav"
        sf.write(path, wave.astype(np.float32), 16_000)
        paths.append(str(path))
    frame = pd.DataFrame({"filepath": paths})
    recipe = SpeechCNNRecipe(noisy_copies=2)
    features = load_speech_features(frame, recipe, progress=False)
    assert len(features) == 3 and len(features.noisy) == 2
    assert not features.clean.from_cache and features.clean.features[0].shape[0] == recipe.n_mels
    for version in features.noisy:
        assert [f.shape for f in version.features] == [f.shape for f in features.clean.features]  # aligned
        assert not np.allclose(version.features[0], features.clean.features[0])
    assert not np.allclose(features.noisy[0].features[0], features.noisy[1].features[0])  # two different copies
    again = load_speech_features(frame, recipe, progress=False)
    assert again.clean.from_cache and all(v.from_cache for v in again.noisy)
    assert len(load_speech_features(frame, SpeechCNNRecipe(augment=False), progress=False).noisy) == 0
    with pytest.raises(SpeechSetupError, match="filepath"):
        load_speech_features(frame.rename(columns={"filepath": "path"}), recipe)
