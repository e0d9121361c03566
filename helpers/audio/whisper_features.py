"""A frozen Whisper encoder as a speech-emotion feature extractor (notebooks 09 and 10): every layer, pooled.

The SUPERB recipe (Yang et al., 2021) for using a pretrained speech encoder without fine-tuning it: run the frozen
encoder once, keep the output of **every** layer, and let a small head learn a softmax-weighted mix of the layers
plus a classifier on top. Different layers hold different things (the lowest ones acoustics, the middle ones
speaker and prosody, the top ones what the model was trained to output: for Whisper, the words), so the weights
the head learns say where emotion lives.

- :func:`load_whisper_encoder`: the encoder of a registry model (:mod:`helpers.pretrained`, e.g. ``"whisper-base"``:
  the hub where it answers, otherwise built from the offline packages), in eval mode with frozen weights,
  shortened to a ``window_seconds`` window (Whisper's position table is cut from 30 s; a 6 s window costs a fifth
  of the compute), optionally truncated to its first ``n_layers`` layers (the quick profile).
- :func:`real_encoder_frames`, :func:`pool_real_frames`: mean and standard deviation over time of each layer's
  frames, computed over the frames that hold audio only. Whisper always sees a full window; the zero padding
  after a short clip has encoder outputs of its own, and pooling them in would mix "how long was the clip" into
  every feature (measured on RAVDESS: about 7 accuracy points lost).
- :func:`encode_layers`: ``[n_clips, n_layers + 1, 2 * d_model]`` pooled features of a list of waveforms (the
  embeddings after the conv stem and position table, then each layer; the last one after the final layer norm).
- :func:`extract_whisper_features`: those features for every clip of a frame, decoded with
  :func:`helpers.audio.features.load_audio`, silence trimmed, optionally with white noise at a given SNR (seeded
  per clip as in :func:`helpers.audio.features.extract_features`), and cached per clip set (``.npz``, no pickles,
  atomic; the key covers the model weights, the window, the settings and every file's path, size and time).
- :class:`LayerStandardizer`, :class:`LayerWeightedHead`, :func:`train_layer_head`, :func:`predict_layer_head`:
  the head (learned softmax layer weights → MLP), trained with the course's loop (:func:`helpers.core.training.fit`,
  the epoch with the lowest validation loss restored).
- :func:`logreg_baseline`: the simple baseline, every layer's statistics concatenated → standardised logistic
  regression.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

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
from helpers.core.env import seed_everything
from helpers.core.training import fit
from helpers.pretrained import get_spec, load_encoder, resolve_model

WHISPER_FEATURE_VERSION = 1  # bump when the feature computation changes: every cached file is then recomputed
HOP = 160  # samples per log-mel frame (10 ms at 16 kHz)
ENCODER_STRIDE = 2  # the second conv layer halves the frame rate: one encoder frame per 20 ms


class WhisperFeatureError(ValueError):
    """Settings or inputs the Whisper feature helpers cannot use; the message says what to change."""


# --------------------------------------------------------------------------- the encoder


@dataclass
class WhisperAudioEncoder:
    """A frozen, shortened Whisper encoder with its feature extractor and a note on where the weights came from."""

    encoder: nn.Module  # transformers' WhisperEncoder
    extractor: object  # WhisperFeatureExtractor with chunk_length = window_seconds
    name: str
    origin: str  # one line: hub, offline build or a given folder
    window_seconds: float
    n_layers: int  # transformer layers kept
    fingerprint: str  # identifies the weights (for cache keys)

    @property
    def window_samples(self) -> int:
        return int(round(self.window_seconds * TARGET_SR))

    @property
    def n_states(self) -> int:
        """Hidden states per clip: the embeddings plus one per layer."""
        return self.n_layers + 1

    @property
    def d_model(self) -> int:
        return int(self.encoder.config.d_model)


def weights_fingerprint(folder: Path) -> str:
    """The weights' SHA-256 from a course manifest, else the weight file's size and modification time."""
    manifest = folder / "course_manifest.json"
    if manifest.is_file():
        try:
            return "sha256:" + json.loads(manifest.read_text(encoding="utf-8"))["files"]["model.safetensors"]["sha256"]
        except (ValueError, KeyError, TypeError):
            pass
    weights = folder / "model.safetensors"
    stat = weights.stat() if weights.is_file() else None
    return f"{folder.resolve()}:{stat.st_size}:{stat.st_mtime_ns}" if stat else str(folder.resolve())


def load_whisper_encoder(
    name: str = "whisper-base",
    path: str | Path | None = None,
    *,
    window_seconds: float = 6.0,
    n_layers: int | None = None,
) -> WhisperAudioEncoder:
    """The frozen encoder of registry model ``name``, shortened to ``window_seconds`` (and to ``n_layers`` layers).

    The folder is found by :func:`helpers.pretrained.registry.resolve_model` (hub, cache or the offline build) and
    loaded by :func:`helpers.pretrained.load_encoder`, which cuts the position table to the window and keeps the
    first ``n_layers`` layers (a cheaper model of the same class, e.g. for a quick run). Every parameter is frozen.
    """

    if get_spec(name).model_type != "whisper":
        raise WhisperFeatureError(f"{name!r} is not a Whisper model")
    folder = resolve_model(name, path)
    encoder, extractor = load_encoder(name, folder, num_layers=n_layers, window_s=window_seconds, verbose=False)
    encoder.requires_grad_(False)
    return WhisperAudioEncoder(
        encoder.eval(),
        extractor,
        name,
        encoder.config.course_origin,
        float(window_seconds),
        len(encoder.layers),
        weights_fingerprint(Path(folder)),
    )


# --------------------------------------------------------------------------- pooling over the real frames


def real_encoder_frames(n_samples: int | np.ndarray, window_samples: int) -> np.ndarray:
    """Encoder frames that hold audio for clips of ``n_samples`` samples in a ``window_samples`` window.

    A clip of ``n`` samples fills ``ceil(n / 160)`` log-mel frames of the feature extractor's mask; the encoder's
    stride-2 convolution turns ``m`` mel frames into ``ceil(m / 2)`` frames. At least one frame is kept.
    """
    n = np.minimum(np.asarray(n_samples, dtype=np.int64), int(window_samples))
    mel = -(-n // HOP)
    return np.maximum(-(-mel // ENCODER_STRIDE), 1)


def pool_real_frames(hidden: torch.Tensor, lengths: torch.Tensor | np.ndarray) -> torch.Tensor:
    """``[batch, time, dim]`` → ``[batch, 2 * dim]``: mean and standard deviation over the first ``lengths[i]`` frames.

    Frames after a clip's length (the encoder's outputs for the zero padding) have no influence at all.
    """
    lengths = torch.as_tensor(np.asarray(lengths), device=hidden.device)
    if lengths.shape != (hidden.shape[0],) or int(lengths.min()) < 1 or int(lengths.max()) > hidden.shape[1]:
        raise WhisperFeatureError(f"need one length in [1, {hidden.shape[1]}] per clip, got {lengths.tolist()}")
    mask = (torch.arange(hidden.shape[1], device=hidden.device)[None, :] < lengths[:, None]).to(hidden.dtype)[..., None]
    count = mask.sum(dim=1)
    mean = (hidden * mask).sum(dim=1) / count
    var = (((hidden - mean[:, None, :]) ** 2) * mask).sum(dim=1) / count
    return torch.cat([mean, var.clamp_min(0).sqrt()], dim=-1)


@torch.inference_mode()
def encode_layers(enc: WhisperAudioEncoder, waves: Sequence[np.ndarray], batch_size: int = 8) -> np.ndarray:
    """Pooled features ``[n_clips, n_states, 2 * d_model]`` (float32) of 16 kHz waveforms.

    Each waveform longer than the window is centre-cropped, shorter ones are zero-padded by the feature extractor;
    each hidden state (embeddings, then every layer) is pooled over the clip's real frames only.
    """
    if batch_size < 1:
        raise WhisperFeatureError(f"batch_size must be at least 1, got {batch_size}")
    device = next(enc.encoder.parameters()).device
    out = []
    for start in range(0, len(waves), batch_size):
        batch = [
            _center(np.asarray(w, dtype=np.float32), enc.window_samples) for w in waves[start : start + batch_size]
        ]
        if any(len(w) == 0 for w in batch):
            raise WhisperFeatureError("a waveform is empty")
        inputs = enc.extractor(batch, sampling_rate=TARGET_SR, return_tensors="pt")
        states = enc.encoder(inputs["input_features"].to(device), output_hidden_states=True).hidden_states
        lengths = real_encoder_frames([len(w) for w in batch], enc.window_samples)
        out.append(torch.stack([pool_real_frames(h, lengths) for h in states], dim=1).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, enc.n_states, 2 * enc.d_model), dtype=np.float32)


def _center(wave: np.ndarray, n: int) -> np.ndarray:
    if len(wave) <= n:
        return wave
    start = (len(wave) - n) // 2
    return wave[start : start + n]


# --------------------------------------------------------------------------- cached features of a clip frame


@dataclass
class WhisperFeatureSet:
    """Pooled layer features of the clips that could be read, their rows of the input frame, the rejected files."""

    features: np.ndarray  # [n_clips, n_states, 2 * d_model] float32
    frame: pd.DataFrame  # the kept rows, same order, index reset
    rejected: list[tuple[str, str]]
    settings: dict
    cache_path: Path | None
    from_cache: bool
    seconds: float = 0.0  # time spent computing (0 when read from the cache)
    speech_seconds: np.ndarray = field(default_factory=lambda: np.zeros(0))  # trimmed length of each clip

    def __len__(self) -> int:
        return len(self.features)


def extract_whisper_features(
    frame: pd.DataFrame,
    enc: WhisperAudioEncoder,
    *,
    path_col: str = "filepath",
    trim_db: float | None = 30.0,
    noise_snr_db: float | None = None,
    noise_seed: int = 0,
    batch_size: int = 8,
    cache_name: str = "whisper",
    use_cache: bool = True,
    progress: bool = True,
) -> WhisperFeatureSet:
    """:func:`encode_layers` of every clip in ``frame[path_col]``, computed once and cached.

    Each clip is decoded at 16 kHz (:func:`load_audio`; unreadable, silent or too short clips are left out with a
    :class:`helpers.audio.features.RejectedClipsWarning`), trimmed (``trim_db``), given white noise at
    ``noise_snr_db`` when set (seeded with ``[noise_seed, row]``), centre-cropped to the window and encoded.
    The cache file ``cache_dir()/features/<cache_name>-<hash>.npz`` is keyed by the weights, the window, the number
    of layers, these settings and every file's path, size and modification time.
    """
    from tqdm.auto import tqdm

    if path_col not in frame.columns:
        raise WhisperFeatureError(f"the frame needs a {path_col!r} column with one audio file per row")
    if len(frame) == 0:
        raise WhisperFeatureError("the frame holds no clips")
    paths = [str(p) for p in frame[path_col]]
    settings = {
        "version": WHISPER_FEATURE_VERSION,
        "model": enc.name,
        "weights": enc.fingerprint,
        "window_seconds": enc.window_seconds,
        "n_layers": enc.n_layers,
        "trim_db": trim_db,
        "noise_snr_db": noise_snr_db,
        "noise_seed": noise_seed if noise_snr_db is not None else None,
    }
    cache_path = clip_cache_path(cache_name, settings, paths)
    if use_cache and cache_path.exists():
        (features, speech), kept, rejected = read_clip_cache(cache_path, "features", "speech_seconds")
        result = WhisperFeatureSet(
            features, frame.iloc[kept].reset_index(drop=True), rejected, settings, cache_path, True, 0.0, speech
        )
    else:
        start = time.perf_counter()
        kept, rejected, chunks, speech, pending = [], [], [], [], []
        bar = tqdm(total=len(paths), desc=f"{enc.name} features", disable=not progress)
        for i, path in enumerate(paths):
            try:
                wave = load_audio(path)
            except AudioError as exc:
                rejected.append((path, str(exc)))
                bar.update()
                continue
            if trim_db is not None:
                wave = trim_silence(wave, trim_db)
            if noise_snr_db is not None:
                wave = add_noise(wave, float(noise_snr_db), np.random.default_rng([noise_seed, i]))
            pending.append(wave)
            kept.append(i)
            speech.append(len(wave) / TARGET_SR)
            if len(pending) == batch_size:
                chunks.append(encode_layers(enc, pending, batch_size))
                bar.update(len(pending))
                pending = []
        if pending:
            chunks.append(encode_layers(enc, pending, batch_size))
            bar.update(len(pending))
        bar.close()
        if not kept:
            raise AudioError("no clip could be used:\n" + "\n".join(f"  - {reason}" for _, reason in rejected))
        features, speech = np.concatenate(chunks).astype(np.float32), np.asarray(speech, dtype=np.float32)
        if use_cache:
            write_clip_cache(cache_path, kept, rejected, features=features, speech_seconds=speech)
        result = WhisperFeatureSet(
            features,
            frame.iloc[kept].reset_index(drop=True),
            rejected,
            settings,
            cache_path if use_cache else None,
            False,
            time.perf_counter() - start,
            speech,
        )
    warn_rejected(result.rejected, len(paths))
    return result


# --------------------------------------------------------------------------- the SUPERB head


class LayerStandardizer:
    """Per layer and dimension: subtract the training mean, divide by the training standard deviation.

    Whisper's layers differ in scale by orders of magnitude (the last one is layer-normed, the middle ones are
    not); standardising each first lets the learned layer weights compare like with like."""

    def fit(self, x: np.ndarray) -> "LayerStandardizer":
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 3:
            raise WhisperFeatureError(f"expected features [clips, layers, dims], got shape {x.shape}")
        self.mean, self.std = x.mean(axis=0), x.std(axis=0) + 1e-6
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, dtype=np.float64) - self.mean) / self.std).astype(np.float32)


class LayerWeightedHead(nn.Module):
    """SUPERB's weighted-sum head: ``h = Σ_l softmax(a)_l · x_l``, then dropout → linear → ReLU → dropout → linear.

    ``x_l`` is layer ``l``'s pooled (standardised) feature vector; the ``n_layers`` logits ``a`` start equal (every
    layer weighs ``1 / n_layers``) and are learned with the rest. ``layer_weights()`` reads them off.
    """

    def __init__(self, n_layers: int, dim: int, num_classes: int, hidden: int = 256, dropout: float = 0.3):
        super().__init__()
        self.layer_logits = nn.Parameter(torch.zeros(n_layers))
        self.net = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, num_classes)
        )

    def layer_weights(self) -> torch.Tensor:
        return torch.softmax(self.layer_logits, dim=0)

    def mix(self, x: torch.Tensor) -> torch.Tensor:
        """``[batch, layers, dim]`` → the weighted sum over layers, ``[batch, dim]`` (the head's embedding input)."""
        if x.shape[1] != len(self.layer_logits):
            raise WhisperFeatureError(
                f"the head has {len(self.layer_logits)} layer weights, the input {x.shape[1]} layers"
            )
        return torch.einsum("l,bld->bd", self.layer_weights(), x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.mix(x))


@dataclass
class HeadRun:
    """One trained head: the model, its input standardiser, the training history and the settings."""

    model: LayerWeightedHead
    standardizer: LayerStandardizer
    history: object  # helpers.core.training.History
    settings: dict
    seconds: float

    @property
    def best_val_loss(self) -> float:
        return float(self.history.val_loss[self.history.best_epoch - 1])

    @property
    def best_val_accuracy(self) -> float:
        return float(self.history.val_accuracy[self.history.best_epoch - 1])


def checked_indices(idx, n: int, what: str) -> np.ndarray:
    """``idx`` as int64 indices into ``n`` items; one clear error when empty or out of range (``what``: which set)."""
    idx = np.asarray(idx, dtype=np.int64)
    if len(idx) == 0:
        raise WhisperFeatureError(f"the {what} index set is empty")
    if idx.min() < 0 or idx.max() >= n:
        raise WhisperFeatureError(f"{what} indices must lie in [0, {n}), got {idx.min()}..{idx.max()}")
    return idx


def train_layer_head(
    features: np.ndarray,
    labels: Sequence[int],
    train_i,
    val_i,
    *,
    num_classes: int,
    hidden: int = 256,
    dropout: float = 0.3,
    epochs: int = 60,
    learning_rate: float = 1e-3,
    weight_decay: float = 1e-2,
    batch_size: int = 32,
    label_smoothing: float = 0.1,
    seed: int = 42,
    progress: bool = False,
) -> HeadRun:
    """Train a :class:`LayerWeightedHead` on ``features[train_i]``; the epoch with the lowest loss on ``val_i`` is kept.

    The features are standardised with the training clips' statistics; AdamW, cross-entropy with label smoothing,
    the course's training loop (:func:`helpers.core.training.fit`, ``monitor="val_loss"``).
    """
    from torch.utils.data import DataLoader, TensorDataset

    features = np.asarray(features)
    labels = np.asarray(labels, dtype=np.int64)
    if features.ndim != 3 or len(features) != len(labels):
        raise WhisperFeatureError(
            f"need features [clips, layers, dims] and one label per clip; got {features.shape} and {len(labels)} labels"
        )
    if labels.min() < 0 or labels.max() >= num_classes:
        raise WhisperFeatureError(f"labels must lie in [0, {num_classes})")
    train_i, val_i = (
        checked_indices(train_i, len(labels), "training"),
        checked_indices(val_i, len(labels), "validation"),
    )
    seed_everything(seed)
    scaler = LayerStandardizer().fit(features[train_i])

    def loader(idx, shuffle):
        data = TensorDataset(torch.from_numpy(scaler.transform(features[idx])), torch.from_numpy(labels[idx]))
        return DataLoader(data, batch_size=batch_size, shuffle=shuffle, generator=torch.Generator().manual_seed(seed))

    model = LayerWeightedHead(features.shape[1], features.shape[2], num_classes, hidden=hidden, dropout=dropout)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=weight_decay)
    start = time.perf_counter()
    history = fit(
        model,
        loader(train_i, True),
        loader(val_i, False),
        optimizer,
        epochs,
        torch.device("cpu"),
        loss_fn=nn.CrossEntropyLoss(label_smoothing=label_smoothing),
        monitor="val_loss",
        progress=progress,
    )
    settings = {
        "hidden": hidden,
        "dropout": dropout,
        "epochs": epochs,
        "learning_rate": learning_rate,
        "weight_decay": weight_decay,
        "batch_size": batch_size,
        "label_smoothing": label_smoothing,
        "seed": seed,
    }
    return HeadRun(model.eval(), scaler, history, settings, time.perf_counter() - start)


@torch.no_grad()
def predict_layer_head(run: HeadRun, features: np.ndarray, idx=None) -> np.ndarray:
    """Class probabilities ``[n, classes]`` of the clips ``idx`` (all when None)."""
    features = np.asarray(features)
    x = features if idx is None else features[checked_indices(idx, len(features), "prediction")]
    run.model.eval()
    return torch.softmax(run.model(torch.from_numpy(run.standardizer.transform(x))), dim=-1).numpy()


def logreg_baseline(features: np.ndarray, labels: Sequence[int], train_i, C: float = 1.0, seed: int = 0):
    """Every layer's pooled statistics concatenated → ``StandardScaler`` → logistic regression, fitted on ``train_i``.

    Returns the fitted scikit-learn pipeline; score it with ``predict_proba(features[idx].reshape(len(idx), -1))``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features = np.asarray(features)
    train_i = checked_indices(train_i, len(features), "training")
    x = features[train_i].reshape(len(train_i), -1)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000, random_state=seed))
    return model.fit(x, np.asarray(labels)[train_i])


def flatten_layers(features: np.ndarray) -> np.ndarray:
    """``[n, layers, dim]`` → ``[n, layers * dim]`` (the baseline's input)."""
    features = np.asarray(features)
    return features.reshape(len(features), -1)


__all__ = [
    "checked_indices",
    "WHISPER_FEATURE_VERSION",
    "WhisperFeatureError",
    "WhisperAudioEncoder",
    "load_whisper_encoder",
    "real_encoder_frames",
    "pool_real_frames",
    "encode_layers",
    "WhisperFeatureSet",
    "extract_whisper_features",
    "LayerStandardizer",
    "LayerWeightedHead",
    "HeadRun",
    "train_layer_head",
    "predict_layer_head",
    "logreg_baseline",
    "flatten_layers",
]
