"""Wav2Vec2 for speech emotion: frame geometry, a small from-scratch config, cached waveforms, training, saving.

- :func:`conv_geometry` / :func:`num_output_frames`: stride, receptive field and frame rate of a convolutional
  feature encoder, and how many frames it makes of ``n`` samples (the same arithmetic as the model's).
- :func:`small_wav2vec2_config`: a Wav2Vec2 small enough to train from scratch on a CPU (4 conv layers whose
  strides still multiply to 320 samples = 20 ms, 2 transformer layers of width 128), with the given labels.
- :func:`make_feature_extractor`: a ``Wav2Vec2FeatureExtractor`` (zero mean, unit variance per clip).
- :func:`load_waveforms`: every clip decoded once with :func:`helpers.audio.features.load_audio`, silence trimmed,
  centre-cropped to ``max_seconds`` and cached (16-bit, atomic ``.npz`` under ``cache_dir()/features``).
- :class:`WaveDataset`, :func:`train_wav2vec2`, :func:`predict_wav2vec2`: fixed-length batches (dicts, as
  :func:`helpers.core.training.fit` takes them) and one fold's training run with the best validation loss restored.
- :func:`pretraining_inputs`: the masked frames and sampled negatives of wav2vec 2.0's contrastive task.
- :func:`load_hub_wav2vec2`, :func:`save_wav2vec2`: the pretrained hub model (feature encoder frozen) and a
  ``save_pretrained`` folder that ``Wav2Vec2ForSequenceClassification`` / ``AutoFeatureExtractor`` reload.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from helpers.audio.features import (
    TARGET_SR,
    AudioError,
    add_noise,
    clip_cache_path,
    load_audio,
    read_clip_cache,
    trim_silence,
    warn_rejected,
    write_clip_cache,
)
from helpers.core.download import atomic_folder
from helpers.core.env import seed_everything
from helpers.core.model_folder import load_pretrained
from helpers.core.model_kinds import Scorer, ScorerError, label_names_of, register_model_kind
from helpers.core.training import History, fit, predict_logits

WAVE_CACHE_VERSION = 1  # bump when the waveform preparation changes: every cached file is then rebuilt
PCM_SCALE = 32768.0  # 16-bit PCM: the resolution of the course's FLAC files, so the cache is lossless for them


class Wav2Vec2SetupError(ValueError):
    """Inputs or settings that a wav2vec2 helper cannot use; the message says what to change."""


# --------------------------------------------------------------------------- frame geometry


@dataclass(frozen=True)
class ConvGeometry:
    """What one output frame of a conv stack sees (receptive field) and how far apart frames are (stride)."""

    stride: int  # samples between two output frames: the product of the strides
    receptive_field: int  # samples one output frame depends on
    sr: int = TARGET_SR

    @property
    def frame_rate(self) -> float:
        """Output frames per second."""
        return self.sr / self.stride

    @property
    def stride_ms(self) -> float:
        return 1000 * self.stride / self.sr

    @property
    def receptive_field_ms(self) -> float:
        return 1000 * self.receptive_field / self.sr


def _check_stack(conv_kernel: Sequence[int], conv_stride: Sequence[int]) -> None:
    if len(conv_kernel) != len(conv_stride) or not conv_kernel:
        raise Wav2Vec2SetupError(
            f"need one kernel per stride and at least one layer, got {list(conv_kernel)} and {list(conv_stride)}"
        )
    if any(int(v) < 1 for v in (*conv_kernel, *conv_stride)):
        raise Wav2Vec2SetupError("kernels and strides must be positive integers")


def conv_geometry(conv_kernel: Sequence[int], conv_stride: Sequence[int], sr: int = TARGET_SR) -> ConvGeometry:
    """Total stride and receptive field of a stack of unpadded 1-d convolutions.

    Layer ``l`` with kernel ``k_l`` widens the receptive field by ``(k_l - 1)`` times the product of the strides
    below it (its input frames are that many samples apart): ``r = 1 + Σ_l (k_l - 1) · Π_{j<l} s_j``.
    """
    _check_stack(conv_kernel, conv_stride)
    receptive, jump = 1, 1
    for kernel, stride in zip(conv_kernel, conv_stride):
        receptive += (kernel - 1) * jump
        jump *= stride
    return ConvGeometry(stride=jump, receptive_field=receptive, sr=sr)


def num_output_frames(n_samples: int, conv_kernel: Sequence[int], conv_stride: Sequence[int]) -> int:
    """Frames the conv stack makes of ``n_samples``: ``floor((n - k) / s) + 1`` layer by layer (0 if too short)."""
    _check_stack(conv_kernel, conv_stride)
    n = int(n_samples)
    for kernel, stride in zip(conv_kernel, conv_stride):
        if n < kernel:
            return 0
        n = (n - kernel) // stride + 1
    return n


# --------------------------------------------------------------------------- configs and feature extractor


def _label_maps(label_names: Sequence[str]) -> dict:
    names = [str(n) for n in label_names]
    if len(names) < 2 or len(set(names)) != len(names):
        raise Wav2Vec2SetupError(f"need at least two distinct label names, got {names}")
    return {
        "num_labels": len(names),
        "id2label": dict(enumerate(names)),
        "label2id": {n: i for i, n in enumerate(names)},
    }


SMALL_CONV = {"conv_dim": (32, 64, 128, 128), "conv_kernel": (20, 4, 4, 2), "conv_stride": (10, 4, 4, 2)}


def small_wav2vec2_config(label_names: Sequence[str], **overrides):
    """A ``Wav2Vec2Config`` for training from scratch on a CPU; ``overrides`` replace any field.

    Four conv layers instead of seven, with larger strides (10·4·4·2 = 320 samples, the default's 20 ms frames)
    and 32–128 channels instead of 512; group norm in the first conv layer as in wav2vec2-base (layer norm in every
    conv layer costs twice the time on a CPU); two pre-layer-norm transformer layers of width 128 (instead of twelve
    of 768), which train more stably from scratch. Small codebooks for the pretraining demonstration.
    """
    from transformers import Wav2Vec2Config

    settings = dict(
        **SMALL_CONV,
        conv_bias=True,
        feat_extract_norm="group",
        do_stable_layer_norm=True,
        hidden_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=256,
        num_conv_pos_embeddings=32,
        num_conv_pos_embedding_groups=8,
        layerdrop=0.0,
        hidden_dropout=0.1,
        attention_dropout=0.1,
        activation_dropout=0.0,
        feat_proj_dropout=0.1,
        final_dropout=0.1,
        mask_time_prob=0.05,
        mask_time_length=5,
        classifier_proj_size=128,
        num_codevector_groups=2,
        num_codevectors_per_group=32,
        codevector_dim=64,
        proj_codevector_dim=64,
        num_negatives=20,
    )
    settings.update(_label_maps(label_names))
    settings.update(overrides)
    for key in ("conv_dim", "conv_kernel", "conv_stride"):
        settings[key] = list(settings[key])
    if not len(settings["conv_dim"]) == len(settings["conv_kernel"]) == len(settings["conv_stride"]):
        raise Wav2Vec2SetupError("conv_dim, conv_kernel and conv_stride need one entry per conv layer")
    return Wav2Vec2Config(**settings)


def make_feature_extractor(return_attention_mask: bool = True, sr: int = TARGET_SR):
    """``Wav2Vec2FeatureExtractor``: raw 16 kHz samples, each clip to zero mean and unit variance, zero padding."""
    from transformers import Wav2Vec2FeatureExtractor

    return Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=sr,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=return_attention_mask,
    )


def load_hub_wav2vec2(name: str, label_names: Sequence[str], freeze_feature_encoder: bool = True):
    """``(model, feature_extractor)`` of a hub checkpoint with a new classification head; the conv encoder frozen."""
    from transformers import AutoFeatureExtractor, Wav2Vec2ForSequenceClassification

    extractor = load_pretrained(AutoFeatureExtractor, name)
    model = load_pretrained(Wav2Vec2ForSequenceClassification, name, **_label_maps(label_names))
    if freeze_feature_encoder:
        model.freeze_feature_encoder()
    return model, extractor


# --------------------------------------------------------------------------- waveforms, cached


@dataclass
class WaveSet:
    """Decoded waveforms (float32, 16 kHz) of the clips that could be read, with their rows and the rejected files."""

    waves: list[np.ndarray]
    frame: pd.DataFrame  # the kept rows of the input frame, same order, index reset
    rejected: list[tuple[str, str]]
    cache_path: Path | None
    from_cache: bool

    def __len__(self) -> int:
        return len(self.waves)


def crop_center(wave: np.ndarray, n_samples: int) -> np.ndarray:
    """The middle ``n_samples`` of ``wave`` (``wave`` itself when it is not longer)."""
    if len(wave) <= n_samples:
        return wave
    start = (len(wave) - n_samples) // 2
    return wave[start : start + n_samples]


def load_waveforms(
    frame: pd.DataFrame,
    max_seconds: float | None = 4.0,
    trim_db: float | None = 30.0,
    *,
    path_col: str = "filepath",
    cache_name: str = "waves",
    use_cache: bool = True,
    progress: bool = True,
) -> WaveSet:
    """Every clip of ``frame[path_col]`` as 16 kHz mono float32, silence trimmed, at most ``max_seconds`` (centre).

    Decoding 1,200 FLAC files takes a while; the result is stored once as 16-bit PCM in
    ``cache_dir()/features/<cache_name>-<hash>.npz`` (the hash covers the settings and every file's path, size and
    modification time) and loaded from there afterwards. Clips that :func:`load_audio` refuses are left out with a
    :class:`helpers.audio.features.RejectedClipsWarning`.
    """
    from tqdm.auto import tqdm

    if path_col not in frame.columns:
        raise Wav2Vec2SetupError(f"the frame needs a {path_col!r} column with one audio file per row")
    if len(frame) == 0:
        raise Wav2Vec2SetupError("the frame holds no clips")
    if max_seconds is not None and max_seconds <= 0:
        raise Wav2Vec2SetupError(f"max_seconds must be positive (or None), got {max_seconds}")
    paths = [str(p) for p in frame[path_col]]
    settings = {"version": WAVE_CACHE_VERSION, "sr": TARGET_SR, "max_seconds": max_seconds, "trim_db": trim_db}
    cache_path = clip_cache_path(cache_name, settings, paths)
    if use_cache and cache_path.exists():
        (pcm, lengths), kept, rejected = read_clip_cache(cache_path, "pcm", "lengths")
        waves = [w.astype(np.float32) / PCM_SCALE for w in np.split(pcm, np.cumsum(lengths)[:-1])]
        result = WaveSet(waves, frame.iloc[kept].reset_index(drop=True), rejected, cache_path, True)
    else:
        waves, kept, rejected = [], [], []
        limit = None if max_seconds is None else int(round(max_seconds * TARGET_SR))
        for i, path in enumerate(tqdm(paths, desc="decoding audio", disable=not progress)):
            try:
                wave = load_audio(path)
            except AudioError as exc:
                rejected.append((path, str(exc)))
                continue
            if trim_db is not None:
                wave = trim_silence(wave, trim_db)
            if limit is not None:
                wave = crop_center(wave, limit)
            pcm = np.clip(np.round(wave.astype(np.float64) * PCM_SCALE), -32768, 32767).astype(np.int16)
            waves.append(pcm.astype(np.float32) / PCM_SCALE)  # the same values the cache gives back
            kept.append(i)
        if not waves:
            raise AudioError("no clip could be used:\n" + "\n".join(f"  - {reason}" for _, reason in rejected))
        if use_cache:
            write_clip_cache(
                cache_path,
                kept,
                rejected,
                lengths=np.array([len(w) for w in waves]),
                pcm=np.concatenate([np.round(w * PCM_SCALE).astype(np.int16) for w in waves]),
            )
        result = WaveSet(
            waves, frame.iloc[kept].reset_index(drop=True), rejected, cache_path if use_cache else None, False
        )
    warn_rejected(result.rejected, len(paths))
    return result


# --------------------------------------------------------------------------- batches, training, prediction


class WaveDataset(Dataset):
    """Fixed-length, normalised waveforms as ``{"input_values", ["attention_mask"], "labels"}`` dicts.

    Each clip longer than ``n_samples`` is cropped (in training at a random position, otherwise in the middle);
    the feature extractor then normalises it over its real samples and pads it with zeros at the end. The
    attention mask is included when the feature extractor asks for one (``return_attention_mask``; models with
    layer norm in the conv stack). ``noise_snr_db=(low, high)`` adds white noise at a random SNR in training.
    """

    def __init__(
        self,
        waves: Sequence[np.ndarray],
        labels: Sequence[int],
        feature_extractor,
        n_samples: int,
        train: bool = False,
        noise_snr_db: tuple[float, float] | None = None,
        seed: int = 0,
    ):
        if len(waves) != len(labels):
            raise Wav2Vec2SetupError(f"{len(waves)} waveforms but {len(labels)} labels")
        if n_samples < 400:
            raise Wav2Vec2SetupError(f"n_samples={n_samples} is shorter than one 25 ms frame")
        self.waves, self.labels = list(waves), np.asarray(labels, dtype=np.int64)
        self.extractor, self.n_samples, self.train = feature_extractor, int(n_samples), train
        self.noise_snr_db = noise_snr_db if train else None
        self.with_mask = bool(getattr(feature_extractor, "return_attention_mask", False))
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        wave = self.waves[i]
        if len(wave) > self.n_samples:
            start = (
                int(self.rng.integers(len(wave) - self.n_samples + 1))
                if self.train
                else (len(wave) - self.n_samples) // 2
            )
            wave = wave[start : start + self.n_samples]
        if self.noise_snr_db is not None:
            wave = add_noise(wave, float(self.rng.uniform(*self.noise_snr_db)), self.rng)
        encoded = self.extractor(
            wave,
            sampling_rate=TARGET_SR,
            padding="max_length",
            max_length=self.n_samples,
            return_attention_mask=True,
            return_tensors="np",
        )
        item = {"input_values": torch.from_numpy(np.asarray(encoded["input_values"][0], dtype=np.float32))}
        if self.with_mask:
            item["attention_mask"] = torch.from_numpy(np.asarray(encoded["attention_mask"][0], dtype=np.int64))
        item["labels"] = torch.tensor(self.labels[i])
        return item


def wave_subset(waves: Sequence[np.ndarray], labels: Sequence[int], idx) -> tuple[list[np.ndarray], np.ndarray]:
    """The waveforms and labels at ``idx``; one clear error for mismatched lengths, an empty set or a bad index."""
    idx = np.asarray(idx, dtype=np.int64)
    labels = np.asarray(labels)
    if len(labels) != len(waves):
        raise Wav2Vec2SetupError(f"{len(labels)} labels for {len(waves)} waveforms")
    if len(idx) == 0:
        raise Wav2Vec2SetupError("the index set is empty")
    if idx.min() < 0 or idx.max() >= len(waves):
        raise Wav2Vec2SetupError(f"indices must lie in [0, {len(waves)}), got {idx.min()}..{idx.max()}")
    return [waves[i] for i in idx], labels[idx]


def train_wav2vec2(
    model,
    waves: Sequence[np.ndarray],
    labels: Sequence[int],
    train_i,
    val_i,
    feature_extractor,
    n_samples: int,
    epochs: int,
    learning_rate: float,
    batch_size: int = 16,
    weight_decay: float = 1e-2,
    label_smoothing: float = 0.1,
    noise_snr_db: tuple[float, float] | None = (10.0, 30.0),
    seed: int = 42,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> tuple[object, History, float]:
    """Fine-tune (or train from scratch) ``model`` on ``train_i``; keep the epoch with the lowest loss on ``val_i``.

    AdamW over the trainable parameters (a frozen feature encoder stays frozen), a one-cycle learning-rate
    schedule, cross-entropy with label smoothing, gradient clipping at 1; returns ``(model, history, seconds)``.
    """
    device = torch.device(device)
    train_waves, train_labels = wave_subset(waves, labels, train_i)
    val_waves, val_labels = wave_subset(waves, labels, val_i)
    if max(train_labels.max(), val_labels.max()) >= model.config.num_labels:
        raise Wav2Vec2SetupError(f"labels must lie in [0, {model.config.num_labels}), the model's num_labels")
    seed_everything(seed)
    train_loader = DataLoader(
        WaveDataset(
            train_waves, train_labels, feature_extractor, n_samples, train=True, noise_snr_db=noise_snr_db, seed=seed
        ),
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    val_loader = DataLoader(WaveDataset(val_waves, val_labels, feature_extractor, n_samples), batch_size=32)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=learning_rate, total_steps=epochs * len(train_loader), pct_start=0.2
    )
    start = time.perf_counter()
    history = fit(
        model,
        train_loader,
        val_loader,
        optimizer,
        epochs,
        device,
        loss_fn=torch.nn.CrossEntropyLoss(label_smoothing=label_smoothing),
        scheduler=scheduler,
        clip_grad_norm=1.0,
        monitor="val_loss",
        patience=None,
        progress=progress,
    )
    return model, history, time.perf_counter() - start


def predict_wav2vec2(
    model,
    waves,
    labels,
    idx,
    feature_extractor,
    n_samples: int,
    device: str | torch.device = "cpu",
    batch_size: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """``(logits, y_true)`` of the clips ``idx`` (centre crop, no noise), model in eval mode."""
    sub_waves, sub_labels = wave_subset(waves, labels, idx)
    loader = DataLoader(WaveDataset(sub_waves, sub_labels, feature_extractor, n_samples), batch_size=batch_size)
    return predict_logits(model, loader, torch.device(device))


# --------------------------------------------------------------------------- pretraining task, saving


def pretraining_inputs(
    model,
    input_values: torch.Tensor,
    mask_prob: float = 0.65,
    mask_length: int = 5,
    attention_mask: torch.Tensor | None = None,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """``mask_time_indices`` and ``sampled_negative_indices`` for ``Wav2Vec2ForPreTraining`` on ``input_values``.

    ``mask_prob`` follows transformers' convention: it is the share of frames the spans would cover without
    overlaps, so ``mask_prob * n_frames / mask_length`` span starts are drawn and ``mask_length`` frames are masked
    from each. The paper states the same thing as a start probability p = 0.065 per frame with spans of M = 10
    (p * M = 0.65); since spans overlap, about half of the frames end up masked. For each masked frame
    ``config.num_negatives`` distractor frames of the same clip are drawn, against which the true quantised frame
    must be recognised.
    """
    from transformers.models.wav2vec2.modeling_wav2vec2 import _compute_mask_indices, _sample_negative_indices

    np.random.seed(seed)  # both helpers draw from NumPy's global generator
    batch, n_samples = input_values.shape
    n_frames = int(model._get_feat_extract_output_lengths(torch.tensor(n_samples)).item())
    frame_mask = None
    if attention_mask is not None:
        frame_mask = model._get_feature_vector_attention_mask(n_frames, attention_mask).long()
    mask = _compute_mask_indices(
        (batch, n_frames), mask_prob=mask_prob, mask_length=mask_length, attention_mask=frame_mask, min_masks=2
    )
    negatives = _sample_negative_indices((batch, n_frames), model.config.num_negatives, mask_time_indices=mask)
    return {
        "mask_time_indices": torch.tensor(mask, dtype=torch.bool),
        "sampled_negative_indices": torch.tensor(negatives, dtype=torch.long),
    }


def save_wav2vec2(model, feature_extractor, folder: str | Path, extra: dict | None = None) -> Path:
    """``save_pretrained`` of model and feature extractor into ``folder`` (written whole, or not at all).

    ``extra`` (e.g. the preprocessing: trimming, fixed length) is stored in the model config as ``course``; the
    folder reloads with ``Wav2Vec2ForSequenceClassification.from_pretrained`` + ``AutoFeatureExtractor``.
    """
    id2label = getattr(model.config, "id2label", {}) or {}
    if not id2label or any(str(v).startswith("LABEL_") for v in id2label.values()):
        raise Wav2Vec2SetupError("set the label names (id2label/label2id) in the model config before saving")
    if extra is not None:
        model.config.course = json.loads(json.dumps(extra))  # only JSON-friendly values
    folder = Path(folder)
    with atomic_folder(folder) as staging:
        model.save_pretrained(staging)
        feature_extractor.save_pretrained(staging)
    return folder


__all__ = [
    "wave_subset",
    "Wav2Vec2SetupError",
    "ConvGeometry",
    "conv_geometry",
    "num_output_frames",
    "SMALL_CONV",
    "small_wav2vec2_config",
    "make_feature_extractor",
    "load_hub_wav2vec2",
    "WaveSet",
    "crop_center",
    "load_waveforms",
    "WaveDataset",
    "train_wav2vec2",
    "predict_wav2vec2",
    "pretraining_inputs",
    "save_wav2vec2",
]


# --------------------------------------------------------------------------- scoring a saved folder (evaluate)


def _scorer(folder: Path, config: dict, max_seconds: float | None = None, **_) -> Scorer:
    """A saved ``Wav2Vec2ForSequenceClassification`` folder as ``python -m helpers.cli.evaluate`` scores it.

    The model and ``AutoFeatureExtractor`` come from the folder (local files only); the preprocessing
    :func:`save_wav2vec2` stores under ``course`` in ``config.json`` (``trim_db``: silence trimming;
    ``clip_seconds``: centre crop, then zero padding at the end to that length) is repeated; without it each clip
    is scored whole, at its own length. Clips longer than ``max_seconds`` are refused before decoding.
    """
    from transformers import AutoFeatureExtractor, Wav2Vec2ForSequenceClassification

    if not (folder / "preprocessor_config.json").is_file():
        raise ScorerError(
            f"{folder} has no preprocessor_config.json: save the feature extractor with the model "
            "(Wav2Vec2FeatureExtractor.save_pretrained(folder))"
        )
    model = load_pretrained(Wav2Vec2ForSequenceClassification, folder, local_files_only=True).eval()
    extractor = load_pretrained(AutoFeatureExtractor, folder, local_files_only=True)
    course = config.get("course") or {}  # notebook 09's preprocessing (save_wav2vec2)
    sr = int(course.get("sampling_rate") or extractor.sampling_rate)
    trim_db = course.get("trim_db")
    n_samples = int(round(float(course["clip_seconds"]) * sr)) if course.get("clip_seconds") else None

    def inputs_of(wave: np.ndarray) -> dict:
        if trim_db is not None:
            wave = trim_silence(wave, float(trim_db))
        if n_samples is None:  # no fixed length stored: the clip as it is
            encoded = extractor(wave, sampling_rate=sr, return_tensors="pt")
        else:  # centre crop, then normalised over the real samples and zero-padded at the end, as in training
            if len(wave) > n_samples:
                start = (len(wave) - n_samples) // 2
                wave = wave[start : start + n_samples]
            encoded = extractor(
                wave,
                sampling_rate=sr,
                padding="max_length",
                max_length=n_samples,
                return_attention_mask=True,
                return_tensors="pt",
            )
            if not extractor.return_attention_mask:
                encoded.pop("attention_mask")
        return {k: v for k, v in encoded.items() if k in ("input_values", "attention_mask")}

    @torch.no_grad()
    def predict_proba(paths: Sequence[str]) -> np.ndarray:
        inputs = [inputs_of(load_audio(p, sr=sr, max_seconds=max_seconds)) for p in paths]  # one batch of clips
        logits = torch.cat([model(**x).logits for x in inputs])
        return torch.softmax(logits.float(), dim=1).numpy()

    length = f"{n_samples / sr:.2f} s clips" if n_samples else "clips at their own length"
    return Scorer("audio", label_names_of(model), predict_proba, f"Wav2Vec2ForSequenceClassification ({length})")


# transformers' config names no course task: recognised by model_type, before the generic text kind
register_model_kind(
    "model_type=wav2vec2", _scorer, modality="audio", matches=lambda config: config.get("model_type") == "wav2vec2"
)
