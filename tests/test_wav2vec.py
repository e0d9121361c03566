"""helpers.audio.wav2vec: frame geometry against real encoders, the small config, batches, training, cache,
save/reload."""

import warnings

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from transformers import (
    AutoFeatureExtractor,
    Wav2Vec2Config,
    Wav2Vec2ForPreTraining,
    Wav2Vec2ForSequenceClassification,
)
from transformers.models.wav2vec2.modeling_wav2vec2 import Wav2Vec2FeatureEncoder

from helpers.audio.features import RejectedClipsWarning
from helpers.audio.wav2vec import (
    SMALL_CONV,
    Wav2Vec2SetupError,
    WaveDataset,
    conv_geometry,
    load_hub_wav2vec2,
    load_waveforms,
    make_feature_extractor,
    num_output_frames,
    predict_wav2vec2,
    pretraining_inputs,
    save_wav2vec2,
    small_wav2vec2_config,
    train_wav2vec2,
)
from helpers.core.data import RAVDESS_LABELS

SR = 16_000
DEFAULT = Wav2Vec2Config()  # facebook/wav2vec2-base's conv stack: 7 layers, 20 ms frames


def _tiny_config(**overrides):
    """The small config, narrower still, so a test step takes milliseconds."""
    settings = dict(
        conv_dim=(8, 8, 16, 16),
        hidden_size=16,
        num_attention_heads=2,
        intermediate_size=32,
        num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=2,
        classifier_proj_size=16,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        feat_proj_dropout=0.0,
        final_dropout=0.0,
        mask_time_prob=0.0,
    )
    settings.update(overrides)
    return small_wav2vec2_config(RAVDESS_LABELS, **settings)


# --------------------------------------------------------------------------- frame geometry


def test_conv_geometry_of_the_default_and_the_small_stack():
    default = conv_geometry(DEFAULT.conv_kernel, DEFAULT.conv_stride)
    assert (default.stride, default.receptive_field) == (320, 400)  # 20 ms hop, 25 ms window
    assert default.frame_rate == 50 and default.stride_ms == 20 and default.receptive_field_ms == 25
    small = conv_geometry(SMALL_CONV["conv_kernel"], SMALL_CONV["conv_stride"])
    assert small.stride == 320 and small.receptive_field == 1 + 19 + 3 * 10 + 3 * 40 + 1 * 160
    cut = conv_geometry(DEFAULT.conv_kernel[:4], DEFAULT.conv_stride[:4])  # the first four default layers
    assert cut.stride == 40 and cut.frame_rate == 400


@pytest.mark.parametrize("stack", ["default", "small", "cut"])
@pytest.mark.parametrize("n_samples", [400, 1_000, 16_000, 48_000, 12_345])
def test_num_output_frames_matches_the_real_encoder(stack, n_samples):
    if stack == "default":
        config = Wav2Vec2Config(conv_dim=(4,) * 7)  # channels do not change the frame count
    elif stack == "small":
        config = _tiny_config()
    else:
        config = Wav2Vec2Config(
            conv_dim=(4,) * 4, conv_kernel=DEFAULT.conv_kernel[:4], conv_stride=DEFAULT.conv_stride[:4]
        )
    encoder = Wav2Vec2FeatureEncoder(config)
    with torch.no_grad():
        frames = encoder(torch.zeros(1, n_samples)).shape[-1]
    assert num_output_frames(n_samples, config.conv_kernel, config.conv_stride) == frames


def test_geometry_rejects_bad_stacks():
    with pytest.raises(Wav2Vec2SetupError):
        conv_geometry((10, 3), (5,))
    with pytest.raises(Wav2Vec2SetupError):
        num_output_frames(100, (0,), (1,))
    assert num_output_frames(5, (10,), (5,)) == 0  # shorter than the first kernel


# --------------------------------------------------------------------------- the small model


def test_small_config_builds_and_gives_eight_logits():
    config = small_wav2vec2_config(RAVDESS_LABELS)
    assert config.num_hidden_layers == 2 and len(config.conv_dim) == 4
    assert config.id2label[4] == "angry" and config.label2id["surprised"] == 7
    model = Wav2Vec2ForSequenceClassification(config).eval()
    x = torch.randn(3, 8_000)
    mask = torch.ones(3, 8_000, dtype=torch.long)
    mask[1, 5_000:] = 0
    with torch.no_grad():
        logits = model(x, attention_mask=mask).logits
        hidden = model.wav2vec2(x).last_hidden_state
    assert logits.shape == (3, 8)
    assert (
        hidden.shape[1] == num_output_frames(8_000, config.conv_kernel, config.conv_stride) == 24
    )  # 799, 199, 49, 24 frames after each layer
    with pytest.raises(Wav2Vec2SetupError):
        small_wav2vec2_config(["a", "a"])


def test_a_few_training_steps_reduce_the_loss():
    torch.manual_seed(0)
    model = Wav2Vec2ForSequenceClassification(_tiny_config())
    y = torch.arange(8)
    t = torch.arange(4_000) / SR
    x = torch.sin(2 * torch.pi * (200 + 150 * y[:, None]) * t) + 0.1 * torch.randn(8, 4_000)  # one pitch per class
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(10):
        loss = torch.nn.functional.cross_entropy(model(x).logits, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.1


def test_feature_extractor_normalises_the_real_samples_and_pads_with_zeros():
    extractor = make_feature_extractor()
    wave = (0.3 + 0.1 * np.random.default_rng(0).standard_normal(3_000)).astype(np.float32)
    data = WaveDataset(
        [wave, np.ones(6_000, np.float32) * np.linspace(-1, 1, 6_000, dtype=np.float32)],
        [2, 5],
        extractor,
        n_samples=4_000,
    )
    item = data[0]
    x, mask = item["input_values"].numpy(), item["attention_mask"].numpy()
    assert x.shape == mask.shape == (4_000,) and mask.sum() == 3_000 and item["labels"].item() == 2
    assert abs(x[:3_000].mean()) < 1e-4 and abs(x[:3_000].std() - 1) < 1e-3 and not x[3_000:].any()
    long = data[1]["input_values"].numpy()  # 6,000 samples, centre-cropped to 4,000
    np.testing.assert_allclose(
        long,
        (np.linspace(-1, 1, 6_000)[1_000:5_000] - np.linspace(-1, 1, 6_000)[1_000:5_000].mean())
        / np.linspace(-1, 1, 6_000)[1_000:5_000].std(),
        atol=1e-3,
    )
    no_mask = WaveDataset([wave], [0], make_feature_extractor(return_attention_mask=False), n_samples=4_000)[0]
    assert "attention_mask" not in no_mask


def test_train_and_predict_on_tiny_waves():
    rng = np.random.default_rng(0)
    waves = [
        (0.1 * (1 + i % 8) * rng.standard_normal(int(rng.integers(3_000, 5_000)))).astype(np.float32) for i in range(24)
    ]
    labels = np.arange(24) % 8
    model = Wav2Vec2ForSequenceClassification(_tiny_config())
    extractor = make_feature_extractor()
    model, history, seconds = train_wav2vec2(
        model,
        waves,
        labels,
        np.arange(16),
        np.arange(16, 24),
        extractor,
        n_samples=4_000,
        epochs=2,
        learning_rate=1e-3,
        batch_size=8,
        progress=False,
    )
    assert len(history.val_loss) == 2 and history.best_epoch in (1, 2) and seconds > 0
    logits, y_true = predict_wav2vec2(model, waves, labels, np.arange(16, 24), extractor, n_samples=4_000)
    assert logits.shape == (8, 8)
    np.testing.assert_array_equal(y_true, labels[16:])
    with pytest.raises(Wav2Vec2SetupError, match="num_labels"):
        train_wav2vec2(
            model, waves, labels + 8, np.arange(16), np.arange(16, 24), extractor, 4_000, 1, 1e-3, progress=False
        )
    with pytest.raises(Wav2Vec2SetupError, match="indices"):
        predict_wav2vec2(model, waves, labels, np.array([0, 99]), extractor, 4_000)


def test_pretraining_inputs_give_a_contrastive_loss():
    config = _tiny_config(num_negatives=5, mask_time_prob=0.05)  # mask_time_prob > 0: the model has a mask embedding
    model = Wav2Vec2ForPreTraining(config).train()
    x = torch.randn(2, 16_000)
    inputs = pretraining_inputs(model, x, mask_prob=0.5, mask_length=5)
    n_frames = num_output_frames(16_000, config.conv_kernel, config.conv_stride)
    assert inputs["mask_time_indices"].shape == (2, n_frames) and inputs["mask_time_indices"].any()
    assert inputs["sampled_negative_indices"].shape == (2, n_frames, 5)
    out = model(x, **inputs)
    assert torch.isfinite(out.loss) and out.contrastive_loss > 0 and out.codevector_perplexity > 1


# --------------------------------------------------------------------------- cache and save/reload


def test_load_waveforms_trims_crops_caches_and_rejects(tmp_path, isolated_cache):
    t = np.arange(3 * SR) / SR
    tone = (0.5 * np.sin(2 * np.pi * 220 * t) * ((t > 0.5) & (t < 2.9))).astype(np.float32)
    sf.write(tmp_path / "tone.wav", tone, SR, subtype="PCM_16")
    sf.write(tmp_path / "silent.wav", np.zeros(SR, np.float32), SR)
    frame = pd.DataFrame({"filepath": [str(tmp_path / "tone.wav"), str(tmp_path / "silent.wav")]})
    with pytest.warns(RejectedClipsWarning, match="silent"):
        first = load_waveforms(frame, max_seconds=2.0, trim_db=30.0, progress=False)
    assert len(first) == 1 and not first.from_cache and len(first.waves[0]) == 2 * SR  # 2.4 s of tone, centre 2 s
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RejectedClipsWarning)
        again = load_waveforms(frame, max_seconds=2.0, trim_db=30.0, progress=False)
        untrimmed = load_waveforms(frame, max_seconds=None, trim_db=None, progress=False)
    assert again.from_cache and again.cache_path == first.cache_path
    np.testing.assert_array_equal(again.waves[0], first.waves[0])  # 16-bit cache: lossless for 16-bit files
    np.testing.assert_array_equal(untrimmed.waves[0], sf.read(tmp_path / "tone.wav", dtype="float32")[0])
    with pytest.raises(Wav2Vec2SetupError, match="filepath"):
        load_waveforms(frame.rename(columns={"filepath": "f"}))


def test_save_and_reload_with_the_generic_classes(tmp_path):
    model = Wav2Vec2ForSequenceClassification(_tiny_config()).eval()
    extractor = make_feature_extractor()
    folder = save_wav2vec2(model, extractor, tmp_path / "w2v", extra={"max_seconds": 3.0, "trim_db": 30.0})
    reloaded = Wav2Vec2ForSequenceClassification.from_pretrained(folder).eval()
    extractor2 = AutoFeatureExtractor.from_pretrained(folder)
    assert reloaded.config.id2label == dict(enumerate(RAVDESS_LABELS)) and reloaded.config.course["max_seconds"] == 3.0
    wave = np.random.default_rng(1).standard_normal(5_000).astype(np.float32)
    a, b = (
        extractor(wave, sampling_rate=SR, return_tensors="pt"),
        extractor2(wave, sampling_rate=SR, return_tensors="pt"),
    )
    torch.testing.assert_close(a["input_values"], b["input_values"])
    with torch.no_grad():
        torch.testing.assert_close(model(**a).logits, reloaded(**b).logits)
    assert not any(p.name.endswith(".part") for p in tmp_path.iterdir())
    unnamed = Wav2Vec2ForSequenceClassification(
        Wav2Vec2Config(**{**_tiny_config().to_dict(), "id2label": None, "label2id": None, "num_labels": 8})
    )
    with pytest.raises(Wav2Vec2SetupError, match="label names"):
        save_wav2vec2(unnamed, extractor, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_load_hub_wav2vec2_freezes_only_the_feature_encoder(tmp_path):
    """The hub code path, fed a local folder (the hub itself cannot be reached in the tests)."""
    folder = save_wav2vec2(
        Wav2Vec2ForSequenceClassification(_tiny_config()),
        make_feature_extractor(return_attention_mask=False),
        tmp_path / "pretrained",
    )
    model, extractor = load_hub_wav2vec2(str(folder), RAVDESS_LABELS)
    assert not extractor.return_attention_mask and model.config.id2label[0] == "neutral"
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith("wav2vec2.feature_extractor.") for n in frozen)
    assert all(p.requires_grad for n, p in model.named_parameters() if n.startswith(("classifier", "wav2vec2.encoder")))
