"""helpers.audio.whisper_features: shortening the encoder, pooling over real frames, the cache, the SUPERB head."""

import warnings

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from transformers import WhisperConfig, WhisperFeatureExtractor
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from helpers.audio import whisper_features as wf
from helpers.audio.features import RejectedClipsWarning
from helpers.pretrained import shorten_whisper_window, truncate_layers

SR = 16_000


def _tiny_encoder(layers: int = 3, seconds: float = 3.0, window: float = 1.0, n_layers=None) -> wf.WhisperAudioEncoder:
    """A randomly initialised WhisperEncoder (width 16) with a 3 s position table, shortened to ``window``."""
    torch.manual_seed(0)
    config = WhisperConfig(
        d_model=16,
        encoder_layers=layers,
        encoder_attention_heads=2,
        encoder_ffn_dim=32,
        num_mel_bins=80,
        max_source_positions=int(seconds * 50),
        dropout=0.0,
    )
    encoder, extractor = WhisperEncoder(config).eval(), WhisperFeatureExtractor(feature_size=80)
    shorten_whisper_window(encoder, extractor, window)
    if n_layers is not None:
        truncate_layers(encoder, n_layers)
    return wf.WhisperAudioEncoder(
        encoder.requires_grad_(False), extractor, "tiny", "random weights", window, len(encoder.layers), "tiny-0"
    )


def _tone(seconds: float, freq: float = 220.0, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


# --------------------------------------------------------------------------- the encoder


def test_a_shortened_encoder_reads_the_window_and_its_first_layers_are_the_full_models():
    """helpers.pretrained's window and layer cuts, as this module relies on them: same frames, same layers."""
    torch.manual_seed(0)
    config = WhisperConfig(
        d_model=16,
        encoder_layers=3,
        encoder_attention_heads=2,
        encoder_ffn_dim=32,
        num_mel_bins=80,
        max_source_positions=150,
        dropout=0.0,
    )
    full = WhisperEncoder(config).eval()
    x = torch.randn(2, 80, 300)
    with torch.no_grad():
        states_full = full(x, output_hidden_states=True).hidden_states
    short, extractor = full, WhisperFeatureExtractor(feature_size=80)
    shorten_whisper_window(short, extractor, 1.0)
    truncate_layers(short, 2)
    assert extractor.n_samples == SR and isinstance(extractor.n_samples, int)
    with torch.no_grad():
        states = short(x[..., :100], output_hidden_states=True).hidden_states  # 1 s of mel frames is now the window
    assert len(states) == 3
    # a shorter window changes nothing for the frames inside it (the last one's convolution sees the cut edge)
    assert torch.allclose(states[0][:, :49], states_full[0][:, :49], atol=1e-5)


@pytest.mark.parametrize("n_samples", [1, 159, 160, 161, 320, 321, 8_000, 15_999, 16_000, 40_000])
def test_real_encoder_frames_match_the_feature_extractors_mask(n_samples):
    extractor = _tiny_encoder(window=1.0).extractor
    mel_mask = extractor(
        np.ones(min(n_samples, SR), dtype=np.float32),
        sampling_rate=SR,
        return_attention_mask=True,
        truncation=True,
        return_tensors="np",
    )["attention_mask"][0]
    assert len(mel_mask) == 100
    expected = max(int(mel_mask[::2].sum()), 1)  # encoder frame j is centred on mel frame 2j
    assert int(wf.real_encoder_frames(n_samples, SR)) == expected


def test_pooling_ignores_everything_after_the_real_frames():
    torch.manual_seed(0)
    hidden = torch.randn(3, 20, 4)
    lengths = np.array([1, 7, 20])
    pooled = wf.pool_real_frames(hidden, lengths)
    changed = hidden.clone()
    changed[0, 1:] += 100.0
    changed[1, 7:] = -5.0
    assert torch.allclose(wf.pool_real_frames(changed, lengths), pooled)
    for i, n in enumerate(lengths):
        h = hidden[i, :n].numpy()
        assert np.allclose(pooled[i].numpy(), np.concatenate([h.mean(0), h.std(0)]), atol=1e-5)
    assert not torch.allclose(pooled[1], wf.pool_real_frames(hidden, np.array([20, 20, 20]))[1])  # padding would count
    with pytest.raises(wf.WhisperFeatureError):
        wf.pool_real_frames(hidden, np.array([0, 3, 3]))
    with pytest.raises(wf.WhisperFeatureError):
        wf.pool_real_frames(hidden, np.array([3, 21, 3]))


def test_encode_layers_pools_every_state_of_each_clip_on_its_own():
    enc = _tiny_encoder(layers=3, window=1.0)
    waves = [_tone(0.3), _tone(1.6, 330.0), _tone(0.7, 440.0)]
    out = wf.encode_layers(enc, waves, batch_size=2)
    assert out.shape == (3, 4, 32) and out.dtype == np.float32 and np.isfinite(out).all()
    alone = np.concatenate([wf.encode_layers(enc, [w], batch_size=1) for w in waves])
    assert np.allclose(out, alone, atol=1e-4)  # a clip's features do not depend on its batch
    # by hand for the first clip: 0.3 s = 30 mel frames = 15 encoder frames
    inputs = enc.extractor([waves[0]], sampling_rate=SR, return_tensors="pt")
    with torch.no_grad():
        states = enc.encoder(inputs["input_features"], output_hidden_states=True).hidden_states
    for layer, h in enumerate(states):
        real = h[0, :15].numpy()
        assert np.allclose(out[0, layer], np.concatenate([real.mean(0), real.std(0)]), atol=1e-4)
    # the long clip was centre-cropped to the 1 s window
    cropped = waves[1][(len(waves[1]) - SR) // 2 :][:SR]
    assert np.allclose(out[1], wf.encode_layers(enc, [cropped])[0], atol=1e-4)


# --------------------------------------------------------------------------- cached features of a clip frame


def test_extract_caches_rejects_and_keys_on_the_settings(tmp_path, isolated_cache):
    paths = []
    for i, seconds in enumerate((0.5, 0.8, 1.2)):
        path = tmp_path / f"clip{i}.wav"
        sf.write(path, _tone(seconds, 200.0 + 50 * i, seed=i), SR)
        paths.append(str(path))
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF0000WAVEnot really")
    frame = pd.DataFrame({"filepath": paths[:2] + [str(broken)] + paths[2:], "label": [0, 1, 2, 3]})
    enc = _tiny_encoder(window=1.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = wf.extract_whisper_features(frame, enc, trim_db=None, progress=False)
    assert any(issubclass(w.category, RejectedClipsWarning) and "broken.wav" in str(w.message) for w in caught)
    assert first.features.shape == (3, 4, 32) and not first.from_cache and first.frame.label.tolist() == [0, 1, 3]
    assert first.cache_path.is_file() and first.cache_path.parent == isolated_cache / "features"
    assert np.allclose(first.speech_seconds, [0.5, 0.8, 1.2])
    with np.load(first.cache_path, allow_pickle=False) as npz:  # a plain archive: no pickled objects
        assert npz["features"].shape == (3, 4, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RejectedClipsWarning)
        again = wf.extract_whisper_features(frame, enc, trim_db=None, progress=False)
        noisy = wf.extract_whisper_features(frame, enc, trim_db=None, noise_snr_db=0.0, noise_seed=1, progress=False)
        two_layers = wf.extract_whisper_features(
            frame, _tiny_encoder(window=1.0, n_layers=2), trim_db=None, progress=False
        )
    assert again.from_cache and np.array_equal(again.features, first.features) and again.rejected == first.rejected
    assert noisy.cache_path != first.cache_path and not np.allclose(noisy.features, first.features)
    assert two_layers.cache_path != first.cache_path and two_layers.features.shape == (3, 3, 32)
    with pytest.raises(wf.WhisperFeatureError, match="column"):
        wf.extract_whisper_features(frame.rename(columns={"filepath": "file"}), enc)
    with pytest.raises(wf.WhisperFeatureError, match="no clips"):
        wf.extract_whisper_features(frame.iloc[:0], enc)


# --------------------------------------------------------------------------- the head


def test_layer_weights_start_uniform_and_mix_is_the_weighted_sum():
    head = wf.LayerWeightedHead(n_layers=4, dim=6, num_classes=3)
    assert torch.allclose(head.layer_weights(), torch.full((4,), 0.25))
    with torch.no_grad():
        head.layer_logits.copy_(torch.tensor([0.0, 1.0, 2.0, -1.0]))
    x = torch.randn(5, 4, 6)
    w = torch.softmax(torch.tensor([0.0, 1.0, 2.0, -1.0]), 0)
    assert torch.allclose(head.mix(x), (w[None, :, None] * x).sum(1), atol=1e-6)
    assert head(x).shape == (5, 3)
    with pytest.raises(wf.WhisperFeatureError, match="layer"):
        head(torch.randn(5, 3, 6))


def _layered_data(n=480, layers=4, dim=8, informative=2, seed=0):
    """Features where only layer ``informative`` carries the class (as a shifted mean), the rest is noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    x = rng.standard_normal((n, layers, dim)).astype(np.float32)
    centres = rng.standard_normal((3, dim)) * 2.0
    x[:, informative] += centres[labels].astype(np.float32)
    x *= np.array([1.0, 50.0, 0.01, 3.0], dtype=np.float32)[:layers, None]  # very different scales per layer
    return x, labels


def test_train_layer_head_learns_and_weights_the_informative_layer():
    x, y = _layered_data()
    train_i, val_i, test_i = np.arange(0, 300), np.arange(300, 390), np.arange(390, 480)
    run = wf.train_layer_head(
        x, y, train_i, val_i, num_classes=3, hidden=16, epochs=12, learning_rate=1e-2, batch_size=64, seed=1
    )
    probs = wf.predict_layer_head(run, x, test_i)
    assert probs.shape == (90, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert (probs.argmax(1) == y[test_i]).mean() > 0.85  # chance is 1/3
    weights = run.model.layer_weights().detach().numpy()
    assert weights.argmax() == 2 and weights[2] > 0.3
    history = run.history
    assert 1 <= history.best_epoch <= 12 and run.best_val_loss == min(history.val_loss)
    # the restored model is the best epoch's: its validation loss (label-smoothed, as in training) is the minimum
    vp = wf.predict_layer_head(run, x, val_i)
    smoothed = torch.nn.CrossEntropyLoss(label_smoothing=0.1)(
        torch.log(torch.from_numpy(vp)), torch.from_numpy(y[val_i])
    )
    assert np.isclose(float(smoothed), run.best_val_loss, atol=1e-4)


def test_train_layer_head_refuses_bad_input():
    x, y = _layered_data(n=60)
    with pytest.raises(wf.WhisperFeatureError, match="layers"):
        wf.train_layer_head(x[:, 0], y, np.arange(30), np.arange(30, 60), num_classes=3)
    with pytest.raises(wf.WhisperFeatureError, match="labels"):
        wf.train_layer_head(x, y + 5, np.arange(30), np.arange(30, 60), num_classes=3)
    with pytest.raises(wf.WhisperFeatureError, match="empty"):
        wf.train_layer_head(x, y, np.arange(30), np.array([], dtype=int), num_classes=3)
    with pytest.raises(wf.WhisperFeatureError, match="indices"):
        wf.train_layer_head(x, y, np.arange(30), np.arange(30, 61), num_classes=3)


def test_logreg_baseline_on_concatenated_layers():
    x, y = _layered_data()
    model = wf.logreg_baseline(x, y, np.arange(300), C=0.1)
    flat = wf.flatten_layers(x[390:])
    assert flat.shape == (90, 32)
    assert (model.predict(flat) == y[390:]).mean() > 0.85


# --------------------------------------------------------------------------- the real model, where it can be had


@pytest.fixture(scope="module")
def whisper_base():
    from helpers.pretrained.registry import PretrainedNotFoundError

    try:
        return wf.load_whisper_encoder("whisper-base", window_seconds=2.0)
    except PretrainedNotFoundError as exc:
        pytest.skip(f"whisper-base is not available here: {str(exc).splitlines()[0]}")


def test_real_whisper_base_is_frozen_and_its_truncation_is_the_same_model(whisper_base):
    enc = whisper_base
    assert enc.n_layers == 6 and enc.d_model == 512 and enc.n_states == 7
    assert not any(p.requires_grad for p in enc.encoder.parameters()) and not enc.encoder.training
    assert enc.encoder.embed_positions.weight.shape == (100, 512)
    short = wf.load_whisper_encoder("whisper-base", window_seconds=2.0, n_layers=2)
    assert short.fingerprint == enc.fingerprint and short.n_states == 3
    wave = _tone(1.3, 180.0) + _tone(1.3, 260.0, seed=1)
    full, cut = wf.encode_layers(enc, [wave])[0], wf.encode_layers(short, [wave])[0]
    assert np.isfinite(full).all() and full.shape == (7, 1024)
    assert np.allclose(full[:2], cut[:2], atol=1e-4)  # embeddings and layer 1: the same weights
    assert not np.allclose(full[-1], cut[-1], atol=1e-2)
