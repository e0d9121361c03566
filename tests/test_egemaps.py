"""helpers.audio.egemaps: openSMILE's eGeMAPS functionals per clip (cached), and the linear baseline chosen on
validation."""

import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from helpers.audio.egemaps import (
    N_FUNCTIONALS,
    EgemapsUnavailable,
    egemaps_fold_scores,
    extract_egemaps,
    fit_on_validation,
    make_classifier,
)
from helpers.audio.features import RejectedClipsWarning

SR = 16_000


def _voice(f0: float, seconds: float = 1.5, seed: int = 0) -> np.ndarray:
    """A crude voiced sound: harmonics of ``f0`` with a slow vibrato, between short silences."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.02 * np.sin(2 * np.pi * 4 * t))) / SR
    wave = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = np.clip(np.minimum(t - 0.2, seconds - 0.2 - t) * 10, 0, 1)  # 0.2 s of silence at both ends
    return (0.3 * wave * envelope + 1e-3 * rng.standard_normal(len(t))).astype(np.float32)


def test_extract_egemaps_on_short_synthetic_clips(tmp_path, isolated_cache):
    pytest.importorskip("opensmile")
    paths = []
    for name, f0 in (("low", 110.0), ("high", 260.0)):
        sf.write(tmp_path / f"{name}.wav", _voice(f0), SR)
        paths.append(str(tmp_path / f"{name}.wav"))
    sf.write(tmp_path / "silent.wav", np.zeros(SR, dtype=np.float32), SR)
    frame = pd.DataFrame({"filepath": [*paths, str(tmp_path / "silent.wav")], "label": [0, 1, 2]})

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        feats = extract_egemaps(frame, progress=False)
    assert [w.category for w in caught] == [RejectedClipsWarning] and "silent.wav" in str(caught[0].message)
    assert feats.values.shape == (2, N_FUNCTIONALS) and feats.values.dtype == np.float32
    assert np.isfinite(feats.values).all() and len(feats.names) == N_FUNCTIONALS
    assert feats.frame.filepath.tolist() == paths and not feats.from_cache
    # the pitch functional measures pitch: 260 Hz is 14.5 semitones above 110 Hz
    f0 = feats.values[:, feats.names.index("F0semitoneFrom27.5Hz_sma3nz_amean")]
    assert 12.0 < f0[1] - f0[0] < 17.0, f0

    assert feats.cache_path.suffix == ".npz" and feats.cache_path.parent == isolated_cache / "features"
    with np.load(feats.cache_path, allow_pickle=False) as npz:  # plain arrays only
        assert npz["values"].shape == (2, N_FUNCTIONALS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RejectedClipsWarning)
        again = extract_egemaps(frame, progress=False)
    assert again.from_cache and again.names == feats.names and again.rejected == feats.rejected
    np.testing.assert_array_equal(again.values, feats.values)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RejectedClipsWarning)
        untrimmed = extract_egemaps(frame, trim_db=None, progress=False)  # another setting: another cache file
    assert not untrimmed.from_cache and untrimmed.cache_path != feats.cache_path
    with pytest.raises(KeyError, match="filepath"):
        extract_egemaps(frame.rename(columns={"filepath": "path"}))


def test_missing_opensmile_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "opensmile", None)  # `import opensmile` now raises ImportError
    with pytest.raises(EgemapsUnavailable, match=r"pip install opensmile==2\.6\.0"):
        extract_egemaps(pd.DataFrame({"filepath": [str(tmp_path / "a.wav")]}))


def _blobs(n_per_class=30, classes=4, seed=0, spread=1.0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), n_per_class)
    centres = rng.normal(0, 4, size=(classes, 6))
    x = centres[y] + spread * rng.standard_normal((len(y), 6))
    x[:, 0] *= 1000  # unscaled columns: the pipeline standardizes
    return x, y


def test_fit_on_validation_picks_the_best_validation_candidate_and_ignores_test():
    x, y = _blobs(spread=3.0)
    idx = np.random.default_rng(1).permutation(len(y))
    train_i, val_i, test_i = idx[:60], idx[60:90], idx[90:]
    model, table = fit_on_validation(x, y, train_i, val_i)
    assert len(table) == 8 and set(table.model) == {"logistic regression", "linear SVM"}
    best = table["val accuracy"].max()
    first_best = table[table["val accuracy"] == best].iloc[0]
    assert model.named_steps["standardscaler"] is not None
    expected = make_classifier(first_best.model, first_best.C).fit(x[train_i], y[train_i])
    np.testing.assert_array_equal(model.predict(x), expected.predict(x))  # the first of the best, trained on train only
    # the test labels play no part: scrambling them changes nothing
    y_scrambled = y.copy()
    y_scrambled[test_i] = np.random.default_rng(2).permutation(y[test_i])
    _, table2 = fit_on_validation(x, y_scrambled, train_i, val_i)
    pd.testing.assert_frame_equal(table, table2)
    with pytest.raises(ValueError, match="labels"):
        fit_on_validation(x, y[:-1], train_i, val_i)
    with pytest.raises(ValueError, match="name must be"):
        make_classifier("random forest", 1.0)


def test_egemaps_fold_scores_over_folds():
    x, y = _blobs(spread=0.3)
    order = np.random.default_rng(0).permutation(len(y))  # every part holds every class
    folds = np.empty(len(y), dtype=int)
    folds[order] = np.arange(len(y)) % 3
    splits = []
    for k in range(3):
        test_i = np.flatnonzero(folds == k)
        rest = order[np.isin(order, np.flatnonzero(folds != k))]
        splits.append((rest[: len(rest) * 3 // 4], rest[len(rest) * 3 // 4 :], test_i))
    table, predictions = egemaps_fold_scores(x, y, splits, num_classes=4)
    assert table.fold.tolist() == [1, 2, 3]
    assert (table["test accuracy"] == 1.0).all()  # well-separated classes
    for (_, _, test_i), pred in zip(splits, predictions):
        np.testing.assert_array_equal(pred, y[test_i])
    noise = np.random.default_rng(3).standard_normal(x.shape)  # features that carry no label information
    chance, _ = egemaps_fold_scores(noise, y, splits, num_classes=4)
    assert chance["test accuracy"].mean() < 0.5
    with pytest.raises(ValueError, match="fold 1: the test indices"):
        egemaps_fold_scores(x, y, [(splits[0][0], splits[0][1], np.array([len(y)]))])
