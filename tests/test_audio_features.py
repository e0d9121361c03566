"""The MFCC pipeline of helpers.audio.features, step by step against librosa, plus deltas, fixed lengths, the feature
cache, bad-clip handling, augmentations and the speech CNN.

Tolerances: our steps run in float64. Where librosa is also fed float64 (filter bank, STFT, deltas) the
results agree to rounding (relative 1e-6 or better). librosa's MFCC on a float32 signal computes in float32,
so there the bound is an absolute 1e-3 (the coefficients are in the hundreds; float32 keeps ~7 digits)."""

import json
import os

import librosa
import numpy as np
import pandas as pd
import pytest
import scipy.fft
import soundfile as sf
import torch

from helpers.audio import features as A
from helpers.audio.cnn import FeatureDataset, SpeechCNN, load_speech_cnn, save_speech_cnn

SR = 16_000
STFT = dict(n_fft=512, win_length=400, hop_length=160)


def _chirp(seconds=1.3, sr=SR, seed=0):
    """A rising tone with a little noise: energy that moves across the mel bands."""
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    return (0.3 * np.sin(2 * np.pi * (200 + 600 * t) * t) + 0.02 * rng.standard_normal(len(t))).astype(np.float32)


# --------------------------------------------------------------------------- the MFCC steps


def test_frame_signal_is_centered_like_librosa():
    y = np.arange(1000, dtype=float)
    frames = A.frame_signal(y, 400, 160)
    assert frames.shape == (400, 1 + 1000 // 160)
    assert frames[200, 0] == 0 and frames[200, 1] == 160  # frame t is centred on sample t * hop
    padded = np.pad(y, 200)
    np.testing.assert_array_equal(frames, librosa.util.frame(padded, frame_length=400, hop_length=160))


@pytest.mark.parametrize(
    "n_mels,fmin,fmax,n_fft", [(64, 0.0, None, 512), (40, 50.0, 7600.0, 1024), (128, 0.0, 4000.0, 2048)]
)
def test_mel_filterbank_matches_librosa(n_mels, fmin, fmax, n_fft):
    ours = A.mel_filterbank(SR, n_fft, n_mels, fmin, fmax)
    theirs = librosa.filters.mel(sr=SR, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, dtype=np.float64)
    assert ours.shape == (n_mels, n_fft // 2 + 1)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-12)


def test_mel_scale_round_trip():
    hz = np.array([0.0, 100.0, 999.0, 1000.0, 4000.0, 8000.0])
    np.testing.assert_allclose(A.mel_to_hz(A.hz_to_mel(hz)), hz, atol=1e-9)
    np.testing.assert_allclose(A.hz_to_mel(hz), librosa.hz_to_mel(hz), atol=1e-9)


@pytest.mark.parametrize("win_length", [512, 400])
def test_power_spectrum_matches_librosa_stft(win_length):
    y = _chirp().astype(np.float64)
    ours = A.power_spectrum(A.frame_signal(y, win_length, 160), 512)
    stft = librosa.stft(
        y, n_fft=512, win_length=win_length, hop_length=160, window="hann", center=True, pad_mode="constant"
    )
    theirs = np.abs(stft) ** 2
    assert ours.shape == theirs.shape
    assert np.abs(ours - theirs).max() < 1e-9 * theirs.max()


def test_log_mel_matches_librosa():
    y = _chirp().astype(np.float64)
    ours = A.log_mel_spectrogram(y, SR, n_mels=64, **STFT)
    mel = librosa.feature.melspectrogram(y=y, sr=SR, n_mels=64, window="hann", pad_mode="constant", **STFT)
    theirs = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=80.0)
    assert np.abs(ours - theirs).max() < 1e-6


def test_dct_is_scipy_orthonormal_dct2():
    x = np.random.default_rng(1).normal(size=(64, 7))
    np.testing.assert_allclose(
        A.mfcc_from_log_mel(x, 20), scipy.fft.dct(x, type=2, norm="ortho", axis=0)[:20], atol=1e-12
    )
    basis = A.dct_matrix(64, 64)
    np.testing.assert_allclose(basis @ basis.T, np.eye(64), atol=1e-12)  # orthonormal


def test_mfcc_matches_librosa_within_1e_3():
    y = _chirp()
    ours = A.mfcc(y, SR, n_mfcc=40, n_mels=64, **STFT)
    theirs = librosa.feature.mfcc(y=y, sr=SR, n_mfcc=40, n_mels=64, **STFT)
    assert ours.shape == theirs.shape == (40, 1 + len(y) // 160)
    assert np.abs(ours - theirs).max() < 1e-3
    theirs64 = librosa.feature.mfcc(y=y.astype(np.float64), sr=SR, n_mfcc=40, n_mels=64, **STFT)
    assert np.abs(ours - theirs64).max() < 1e-5  # in float64 the two agree much more closely


# --------------------------------------------------------------------------- deltas, normalisation, fixed length


@pytest.mark.parametrize("width", [3, 5, 9])
def test_deltas_match_librosa(width):
    features = A.mfcc(_chirp(), SR, n_mfcc=13, **STFT)
    np.testing.assert_allclose(A.deltas(features, width), librosa.feature.delta(features, width=width), atol=1e-9)


def test_deltas_of_a_ramp_and_short_input():
    ramp = np.tile(np.arange(30, dtype=float) * 2.0, (3, 1))
    np.testing.assert_allclose(A.deltas(ramp), 2.0)  # slope 2 everywhere, edges included
    np.testing.assert_allclose(A.deltas(ramp, order=2), 0.0, atol=1e-12)
    assert A.deltas(ramp[:, :4]).shape == (3, 4)  # shorter than the window: still works
    with pytest.raises(ValueError):
        A.deltas(ramp, width=4)


def test_normalize_utterance():
    x = np.random.default_rng(2).normal(5.0, 3.0, size=(13, 200))
    z = A.normalize_utterance(x)
    np.testing.assert_allclose(z.mean(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=1), 1.0, atol=1e-4)


def test_fixed_frames_pads_and_crops():
    x = np.arange(10, dtype=float)[None].repeat(2, axis=0) + 1
    assert A.fixed_frames(x, 4).tolist()[0] == [4, 5, 6, 7]  # centre crop
    assert A.fixed_frames(x, 4, align="start").tolist()[0] == [1, 2, 3, 4]
    padded = A.fixed_frames(x, 14)
    assert (
        padded.shape == (2, 14)
        and padded[0, :2].tolist() == [0, 0]
        and padded[0, 2] == 1
        and padded[0, -2:].tolist() == [0, 0]
    )
    assert A.fixed_frames(x, 13, align="start", pad_value=-1)[0, 10:].tolist() == [-1, -1, -1]
    rng = np.random.default_rng(0)
    for _ in range(5):
        crop = A.fixed_frames(x, 6, align="random", rng=rng)[0]
        assert crop.shape == (6,) and np.all(np.diff(crop) == 1)  # a contiguous window
        pad = A.fixed_frames(x, 16, align="random", rng=rng)[0]
        assert pad.shape == (16,) and (pad != 0).sum() == 10
    assert A.fixed_frames(x, 10).tolist() == x.tolist()
    with pytest.raises(ValueError):
        A.fixed_frames(x, 0)


# --------------------------------------------------------------------------- augmentation


def test_add_noise_hits_the_snr():
    y = _chirp(2.0)
    noisy = A.add_noise(y, 10.0, np.random.default_rng(0))
    assert noisy.shape == y.shape and noisy.dtype == np.float32
    snr = 10 * np.log10(np.mean(y.astype(float) ** 2) / np.mean((noisy - y).astype(float) ** 2))
    assert abs(snr - 10.0) < 0.2


def test_time_shift_zero_fills():
    x = np.arange(1, 9, dtype=float)
    assert A.time_shift(x, 3, shift=2).tolist() == [0, 0, 1, 2, 3, 4, 5, 6]
    assert A.time_shift(x, 3, shift=-3).tolist() == [4, 5, 6, 7, 8, 0, 0, 0]
    features = np.ones((4, 20))
    shifted = A.time_shift(features, 5, np.random.default_rng(3))
    assert shifted.shape == features.shape


def test_spec_augment_masks_whole_bands_and_stretches():
    x = np.random.default_rng(0).normal(size=(40, 100)) + 10  # nothing is 0 before masking
    masked, mask = A.spec_augment(
        x, n_freq_masks=2, freq_width=8, n_time_masks=2, time_width=20, rng=np.random.default_rng(4), return_mask=True
    )
    assert masked.shape == x.shape and mask.any()
    assert np.all(masked[mask] == 0) and np.array_equal(masked[~mask], x[~mask])
    rows, cols = mask.all(axis=1), mask.all(axis=0)
    assert np.array_equal(mask, rows[:, None] | cols[None, :])  # masks are whole bands or whole stretches
    assert rows.sum() <= 16 and cols.sum() <= 40
    assert not np.shares_memory(masked, x)
    batch = A.spec_augment(np.ones((3, 40, 100)), rng=np.random.default_rng(5))  # channels share one mask
    assert batch.shape == (3, 40, 100) and np.array_equal(batch[0], batch[2])


# --------------------------------------------------------------------------- cached extraction and bad clips


def _write_clips(folder, n=3):
    paths = []
    for i in range(n):
        path = folder / f"clip{i}.wav"
        sf.write(path, _chirp(0.6, seed=i), SR)
        paths.append(str(path))
    return pd.DataFrame({"filepath": paths, "label": list(range(n))})


def test_feature_cache_hit_miss_and_invalidation(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    frame = _write_clips(tmp_path)
    first = A.extract_features(frame, "mfcc", n_mfcc=13, progress=False, cache_name="t")
    assert not first.from_cache and first.cache_path.parent == tmp_path / "cache" / "features"
    assert first.cache_path.name.startswith("t-") and len(first) == 3 and first.features[0].shape[0] == 13
    np.testing.assert_allclose(first.features[1], A.mfcc(A.load_audio(frame.filepath[1]), n_mfcc=13), atol=1e-4)
    again = A.extract_features(frame, "mfcc", n_mfcc=13, progress=False, cache_name="t")
    assert again.from_cache and again.cache_path == first.cache_path
    for a, b in zip(first.features, again.features):
        np.testing.assert_array_equal(a, b)
    other_setting = A.extract_features(frame, "mfcc", n_mfcc=20, progress=False, cache_name="t")
    assert not other_setting.from_cache and other_setting.cache_path != first.cache_path
    fewer_files = A.extract_features(frame.iloc[:2], "mfcc", n_mfcc=13, progress=False, cache_name="t")
    assert not fewer_files.from_cache and len(fewer_files) == 2
    sf.write(frame.filepath[0], _chirp(0.7, seed=9), SR)  # a file changes: its size changes, so does the key
    os.utime(frame.filepath[0], ns=(1, 1))
    changed = A.extract_features(frame, "mfcc", n_mfcc=13, progress=False, cache_name="t")
    assert not changed.from_cache and changed.features[0].shape[1] != first.features[0].shape[1]
    assert not list((tmp_path / "cache" / "features").glob("*.part"))  # atomic writes leave no partial files
    logmel = A.extract_features(frame, "logmel", n_mels=32, progress=False)
    assert logmel.features[0].shape[0] == 32 and logmel.cache_path.name.startswith("logmel-")


def test_noisy_versions_are_seeded_and_aligned(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    frame = _write_clips(tmp_path, 2)
    clean = A.extract_features(frame, "logmel", progress=False, use_cache=False)
    noisy = A.extract_features(frame, "logmel", noise_snr_db=(10, 20), noise_seed=1, progress=False, use_cache=False)
    same = A.extract_features(frame, "logmel", noise_snr_db=(10, 20), noise_seed=1, progress=False, use_cache=False)
    assert noisy.cache_path is None
    for c, n, s in zip(clean.features, noisy.features, same.features):
        assert c.shape == n.shape and not np.allclose(c, n)
        np.testing.assert_array_equal(n, s)


def test_bad_clips_are_rejected_with_their_names_and_the_rest_go_on(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    good = tmp_path / "good.flac"
    sf.write(good, _chirp(1.0), SR)
    corrupt = tmp_path / "corrupt.flac"
    corrupt.write_bytes(good.read_bytes()[:200])
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(SR, dtype=np.float32), SR)
    short = tmp_path / "short.wav"
    sf.write(short, _chirp(0.1), SR)
    stereo = tmp_path / "stereo44k.wav"
    tone = _chirp(1.0, sr=44_100)
    sf.write(stereo, np.stack([tone, 0.5 * tone], axis=1), 44_100)
    frame = pd.DataFrame({"filepath": [str(p) for p in (good, corrupt, silent, short, stereo)], "label": range(5)})
    with pytest.warns(A.RejectedClipsWarning) as record:
        result = A.extract_features(frame, "mfcc", progress=False)
    message = str(record[0].message)
    assert "3 of 5 clips were rejected" in message
    for name, reason in (("corrupt.flac", "cannot be decoded"), ("silent.wav", "silent"), ("short.wav", "shorter")):
        assert name in message and any(name in p and reason in r for p, r in result.rejected)
    assert result.frame.filepath.tolist() == [str(good), str(stereo)]  # stereo 44.1 kHz is accepted
    assert result.frame.label.tolist() == [0, 4]
    assert abs(result.features[1].shape[1] - (1 + SR // 160)) <= 1  # resampled to 16 kHz
    with pytest.warns(A.RejectedClipsWarning):  # the cache remembers the rejections
        cached = A.extract_features(frame, "mfcc", progress=False)
    assert cached.from_cache and cached.rejected == result.rejected
    with pytest.raises(A.AudioError, match="no clip could be used"):
        A.extract_features(frame.iloc[[1, 2]], "mfcc", progress=False)


# --------------------------------------------------------------------------- dataset and model


def test_feature_dataset_shapes_and_augmentation():
    rng = np.random.default_rng(0)
    feats = [rng.normal(size=(40, n)) for n in (50, 120, 80)]
    train = FeatureDataset(
        feats,
        [0, 1, 2],
        n_frames=100,
        train=True,
        noisy=[[f + 1 for f in feats]],
        shift=True,
        spec_augment=dict(n_freq_masks=1, freq_width=5, n_time_masks=1, time_width=10),
        seed=1,
    )
    x, y = train[1]
    assert x.shape == (1, 40, 100) and x.dtype == torch.float32 and y.item() == 1
    test = FeatureDataset(feats, [0, 1, 2], n_frames=100, noisy=[[f + 1 for f in feats]])
    a, _ = test[0]
    b, _ = test[0]
    assert torch.equal(a, b) and len(test.versions) == 1  # evaluation: no randomness, clean features only
    with pytest.raises(ValueError):
        FeatureDataset(feats, [0, 1], n_frames=10)


def test_speech_cnn_forward_and_save_load(tmp_path):
    torch.manual_seed(0)
    model = SpeechCNN(in_channels=3, num_classes=8, widths=(8, 16, 32))
    x = torch.randn(4, 3, 40, 96)
    assert model(x).shape == (4, 8)
    assert SpeechCNN(widths=(8, 16))(torch.randn(2, 40, 50)).shape == (2, 8)  # (batch, features, frames) = one channel
    model.eval()
    folder = save_speech_cnn(model, tmp_path / "m", extra={"labels": ["a"] * 8})
    again, config = load_speech_cnn(folder)
    assert config["labels"] == ["a"] * 8 and json.loads((folder / "config.json").read_text())["model"]["widths"] == [
        8,
        16,
        32,
    ]
    torch.testing.assert_close(again(x), model(x))


def test_normalize_whole_utterance_keeps_the_spectral_shape():
    x = np.random.default_rng(3).normal(size=(2, 8, 50)) + np.linspace(0, 20, 8)[None, :, None]  # a tilt
    z = A.normalize_utterance(x, per_band=False)
    np.testing.assert_allclose(z.mean(axis=(1, 2)), 0.0, atol=1e-5)  # per channel
    np.testing.assert_allclose(z.std(axis=(1, 2)), 1.0, atol=1e-4)
    assert np.all(np.diff(z.mean(axis=2), axis=1) > 0)  # band means still rise: the tilt survives
    assert np.allclose(A.normalize_utterance(x).mean(axis=2), 0.0, atol=1e-5)  # per band: the tilt is gone
