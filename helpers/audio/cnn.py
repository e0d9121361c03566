"""A small CNN for speech features, the dataset that feeds it, and a one-folder save format.

- :class:`SpeechCNN`: conv blocks (Conv 3×3 → BatchNorm → ReLU → max-pool) over a ``(channels, n_features,
  n_frames)`` "image" of MFCC or log-mel features, global average pooling, dropout, a linear layer.
- :class:`FeatureDataset`: per-utterance normalisation, fixed length and, for training, the augmentations of
  :mod:`helpers.audio.features` (noisy copies, time shift, SpecAugment); yields ``(features, label)`` tuples for
  :func:`helpers.core.training.fit`.
- :func:`save_speech_cnn` / :func:`load_speech_cnn`: ``model.pt`` (a ``state_dict``, read back with
  ``torch.load(weights_only=True)``) and ``config.json`` in one folder.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from helpers.audio import features as audio
from helpers.audio.features import fixed_frames, normalize_utterance, spec_augment
from helpers.core.download import atomic_write_bytes
from helpers.core.model_folder import read_model_config, read_weights
from helpers.core.model_kinds import Scorer, ScorerError, register_model_kind
from helpers.core.parameters import count_parameters  # noqa: F401 (re-exported: notebook 08 imports it from here)

TASK = "speech-emotion-cnn"
FORMAT_VERSION = 1


class SpeechCNN(nn.Module):
    """Conv blocks over a ``(batch, channels, n_features, n_frames)`` input → ``(batch, num_classes)`` logits.

    Each block is Conv2d 3×3 → BatchNorm → ReLU → MaxPool 2×2, so every block halves both axes and doubles
    (by default) the channels; global average pooling then makes the output independent of the input's
    size, and dropout + a linear layer give the class scores. A ``(batch, n_features, n_frames)`` input is
    read as one channel.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 8,
        widths: Sequence[int] = (24, 48, 96, 192),
        dropout: float = 0.3,
    ):
        super().__init__()
        if not widths:
            raise ValueError("widths must name at least one conv block")
        self.config = {
            "in_channels": in_channels,
            "num_classes": num_classes,
            "widths": list(widths),
            "dropout": dropout,
        }
        blocks, channels = [], in_channels
        for width in widths:
            blocks += [
                nn.Conv2d(channels, width, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            channels = width
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.embed(features)))

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """The pooled ``(batch, widths[-1])`` representation that the final linear layer reads (before dropout)."""
        if features.dim() == 3:
            features = features.unsqueeze(1)
        if features.dim() != 4:
            raise ValueError(f"expected (batch, channels, n_features, n_frames), got shape {tuple(features.shape)}")
        return self.pool(self.features(features)).flatten(1)


class FeatureDataset(Dataset):
    """``(features, label)`` pairs of fixed length, with optional training augmentations.

    - ``features``: one ``(n_features, n_frames_i)`` or ``(channels, n_features, n_frames_i)`` array per clip.
    - ``noisy``: extra versions of the same clips (e.g. features of noisy audio, same order); in training one
      version is picked at random for each draw (clean included).
    - ``shift``: in training the ``n_frames`` window is placed at random (a time shift); otherwise centred.
    - ``spec_augment``: keyword arguments of :func:`helpers.audio.features.spec_augment`, applied in training.
    - ``normalize``: per-utterance normalisation before the crop (so padding 0 is the mean): ``"band"`` every
      feature row on its own, ``"utterance"`` one mean and std per clip (see
      :func:`helpers.audio.features.normalize_utterance`), or ``None``.
    """

    def __init__(
        self,
        features: Sequence[np.ndarray],
        labels: Sequence[int],
        n_frames: int,
        train: bool = False,
        noisy: Sequence[Sequence[np.ndarray]] = (),
        shift: bool = False,
        spec_augment: dict | None = None,
        normalize: str | None = "band",
        seed: int = 0,
    ):
        if len(features) != len(labels):
            raise ValueError(f"{len(features)} feature arrays but {len(labels)} labels")
        for version in noisy:
            if len(version) != len(features):
                raise ValueError("every noisy version must hold one array per clip, in the same order")
        self.versions = [list(features), *[list(v) for v in noisy]] if train else [list(features)]
        self.labels = np.asarray(labels, dtype=np.int64)
        self.n_frames, self.train, self.shift = n_frames, train, shift
        self.spec_augment = spec_augment if train else None
        if normalize not in ("band", "utterance", None):
            raise ValueError(f"normalize must be 'band', 'utterance' or None, not {normalize!r}")
        self.normalize = normalize
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        version = int(self.rng.integers(len(self.versions))) if len(self.versions) > 1 else 0
        x = self.versions[version][i]
        if self.normalize:
            x = normalize_utterance(x, per_band=self.normalize == "band")
        else:
            x = np.asarray(x, dtype=np.float32)
        align = "random" if self.train and self.shift else "center"
        x = fixed_frames(x, self.n_frames, align=align, rng=self.rng)
        if self.spec_augment:
            x = spec_augment(x, rng=self.rng, **self.spec_augment)
        if x.ndim == 2:
            x = x[None]
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), torch.tensor(self.labels[i])


def save_speech_cnn(model: SpeechCNN, folder: str | Path, extra: dict | None = None) -> Path:
    """Write ``model.pt`` (state_dict) and ``config.json`` (model settings + ``extra``, e.g. feature settings, labels).

    Each file is written atomically and ``config.json`` last, so a folder that has it is complete.
    """
    if not isinstance(model, SpeechCNN):
        raise TypeError(f"save_speech_cnn saves a SpeechCNN, got {type(model).__name__}")
    config = {"task": TASK, "format_version": FORMAT_VERSION, "model": model.config, **(extra or {})}
    config_bytes = (json.dumps(config, indent=2, ensure_ascii=False) + "\n").encode("utf-8")  # fails before any write
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    atomic_write_bytes(folder / "model.pt", buffer.getvalue())
    atomic_write_bytes(folder / "config.json", config_bytes)
    return folder


def load_speech_cnn(folder: str | Path, map_location: str | torch.device = "cpu") -> tuple[SpeechCNN, dict]:
    """Rebuild a :class:`SpeechCNN` saved by :func:`save_speech_cnn`; returns ``(model in eval mode, config)``.

    The weights are read by :func:`helpers.core.model_folder.read_weights` (``torch.load(weights_only=True)``): a
    ``model.pt`` holding anything but tensors (which could run code when unpickled) is refused with a ``ValueError``.
    """
    folder = Path(folder)
    config = read_model_config(folder, TASK, what="folder written by save_speech_cnn")
    if not (folder / "model.pt").is_file():
        raise FileNotFoundError(f"{folder} lacks model.pt; the save is incomplete")
    model = SpeechCNN(**config["model"])
    model.load_state_dict(read_weights(folder / "model.pt", map_location))
    return model.eval(), config


# --------------------------------------------------------------------------- scoring a saved folder (evaluate)

_FEATURE_ARGS = ("sr", "n_fft", "win_length", "hop_length", "n_mels", "fmin", "fmax", "top_db")


def speech_cnn_features(wave: np.ndarray, config: dict) -> np.ndarray:
    """The ``(1, n_features, n_frames)`` input a SpeechCNN saved with ``config`` was trained on, from a mono clip.

    Repeats the training pipeline of notebook 08 (:func:`helpers.audio.features.extract_features` then
    :class:`FeatureDataset` at evaluation): optional silence trimming (``trim_db``),
    log-mel or MFCC features with the stored settings, per-utterance normalisation of every feature row
    (``normalize``: ``"band"`` / ``"per-utterance"`` / missing; ``"utterance"`` for one mean and std per clip;
    ``null`` / ``"none"`` for none) and a centred crop or pad to ``n_frames``.
    """
    settings = config.get("features") or {}
    kind = settings.get("kind", "logmel")
    common = {k: settings[k] for k in _FEATURE_ARGS if settings.get(k) is not None}
    if settings.get("trim_db") is not None:
        wave = audio.trim_silence(wave, float(settings["trim_db"]))
    if kind == "logmel":
        features = audio.log_mel_spectrogram(wave, **common)
    elif kind == "mfcc":
        features = audio.mfcc(wave, n_mfcc=int(settings.get("n_mfcc", 40)), **common)
    else:
        raise ScorerError(f"the model's config names feature kind {kind!r}; the evaluator computes 'logmel' and 'mfcc'")
    normalize = config.get("normalize", "band")
    if normalize in ("band", "per-band", "per-utterance", True):
        features = audio.normalize_utterance(features, per_band=True)
    elif normalize == "utterance":
        features = audio.normalize_utterance(features, per_band=False)
    elif normalize not in (None, False, "none"):
        raise ScorerError(f"the model's config names normalisation {normalize!r}; known: band, utterance, none")
    return audio.fixed_frames(features, int(config["n_frames"]))[None].astype(np.float32)


def _scorer(folder: Path, config: dict, max_seconds: float | None = None, **_) -> Scorer:
    """A saved SpeechCNN folder as ``python -m helpers.cli.evaluate`` scores it: features recomputed from each clip
    with the settings its config stores; clips longer than ``max_seconds`` are refused before decoding."""
    model, config = load_speech_cnn(folder)
    labels = config.get("labels") or config.get("label_names")
    if not isinstance(labels, list) or len(labels) != model.config["num_classes"]:
        raise ScorerError(
            f"{folder}/config.json must list the {model.config['num_classes']} label names under 'labels'"
        )
    if not isinstance(config.get("n_frames"), int) or config["n_frames"] < 1:
        raise ScorerError(f"{folder}/config.json lacks 'n_frames' (the fixed input length the model was trained on)")
    if model.config["in_channels"] != 1:
        raise ScorerError(
            f"{folder}: a SpeechCNN with {model.config['in_channels']} input channels; "
            "the evaluator builds 1-channel features"
        )
    settings = config.get("features") or {}
    sr, min_seconds = int(settings.get("sr") or audio.TARGET_SR), float(settings.get("min_seconds", 0.25))

    @torch.no_grad()
    def probabilities(features: list[np.ndarray]) -> np.ndarray:
        return torch.softmax(model(torch.from_numpy(np.stack(features))).float(), dim=1).numpy()

    # one second of a tone through features and model: a config that does not fit fails here, not on every row
    probabilities(
        [speech_cnn_features((0.1 * np.sin(np.arange(sr) * 2 * np.pi * 220 / sr)).astype(np.float32), config)]
    )

    def predict_proba(paths: Sequence[str]) -> np.ndarray:
        return probabilities(
            [
                speech_cnn_features(
                    audio.load_audio(p, sr=sr, min_seconds=min_seconds, max_seconds=max_seconds), config
                )
                for p in paths
            ]
        )

    kind = settings.get("kind", "logmel")
    return Scorer(
        "audio", [str(n) for n in labels], predict_proba, f"SpeechCNN on {kind} features ({config['n_frames']} frames)"
    )


register_model_kind(TASK, _scorer, modality="audio")
