"""Notebook 08's speaker-independent recipe for speech emotion, reusable: splits, features, train, predict, embed.

- :func:`speaker_splits`: ``(train, val, test)`` positional indices per fold: GroupKFold by actor
  (:func:`helpers.core.data.speaker_folds`), then one male and one female training actor of each fold held out for
  validation (seeded with ``seed + fold``); no actor is in two sets.
- :class:`SpeechCNNRecipe`: every setting of 08's CNN run (features, model, optimiser, augmentation).
- :func:`load_speech_features`: the clean log-mel features and the noisy copies used for augmentation, through
  the feature cache of :func:`helpers.audio.features.extract_features` (the same cache files as notebook 08).
- :func:`speech_dataset`: the :class:`helpers.audio.cnn.FeatureDataset` of some clips (augmented for training).
- :func:`new_speech_cnn`, :func:`speech_optimizer`, :func:`speech_schedule`: the model, AdamW and the one-cycle
  schedule of the recipe (``python -m helpers.cli.train_audio`` builds its run from the same three).
- :func:`train_speech_cnn`, :func:`predict_speech`, :func:`embed_speech`: one fold's training run (AdamW,
  one-cycle, label smoothing, best validation loss restored), its logits, and the pooled penultimate features.

**One copy.** ``speaker_splits``, ``speech_dataset``, the model/optimizer/schedule builders, ``train_speech_cnn`` and
``predict_speech`` are the code that
notebook 08 teaches: its cells marked ``# @save helpers/audio/cnn_recipe.py`` define them, and
``tests/test_saved_cells.py`` checks that the definitions here are the same (compared as syntax trees, so only
comments may differ). Change both together. Pass ``seed + fold`` as ``seed`` to :func:`train_speech_cnn` to
reproduce 08's runs fold by fold.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from helpers.audio.cnn import FeatureDataset, SpeechCNN
from helpers.audio.features import FeatureSet, extract_features
from helpers.core.data import speaker_folds
from helpers.core.env import get_device, seed_everything
from helpers.core.training import History, fit, predict_logits


class SpeechSetupError(ValueError):
    """The data or settings given to a speech helper cannot be used; the message says what to change."""


# --------------------------------------------------------------------------- recipe and features


def _default_spec_augment() -> dict:
    return {"n_freq_masks": 2, "freq_width": 6, "n_time_masks": 2, "time_width": 12}


@dataclass
class SpeechCNNRecipe:
    """Everything notebook 08's CNN run depends on; the defaults are 08's ``full`` settings."""

    n_mels: int = 40  # mel bands of the log-mel input
    n_frames: int = 128  # fixed input length: 128 frames of 20 ms = 2.56 s
    batch_size: int = 32
    learning_rate: float = 3e-3  # peak of the one-cycle schedule (AdamW)
    widths: tuple[int, ...] = (16, 32, 64, 128)  # channels of the conv blocks
    epochs: int = 40
    dropout: float = 0.3
    label_smoothing: float = 0.1
    weight_decay: float = 1e-2
    augment: bool = True  # noisy copies + time shift + SpecAugment in training
    noisy_copies: int = 2  # offline noisy versions of every clip (SNR drawn from noise_snr_db)
    noise_snr_db: tuple[float, float] = (10.0, 30.0)
    spec_augment: dict = field(default_factory=_default_spec_augment)
    n_fft: int = 1024
    win_length: int = 640  # 40 ms windows ...
    hop_length: int = 320  # ... every 20 ms
    trim_db: float | None = 30.0  # leading/trailing silence 30 dB below the peak is cut
    num_classes: int = 8  # RAVDESS's 8 emotions

    def feature_settings(self) -> dict:
        """Keyword arguments of :func:`helpers.audio.features.extract_features` for these features."""
        return {
            "kind": "logmel",
            "n_mels": self.n_mels,
            "n_fft": self.n_fft,
            "win_length": self.win_length,
            "hop_length": self.hop_length,
            "trim_db": self.trim_db,
        }

    def as_dict(self) -> dict:
        """JSON-friendly settings (e.g. for a model's config file)."""
        out = asdict(self)
        out["widths"], out["noise_snr_db"] = list(self.widths), list(self.noise_snr_db)
        return out


@dataclass
class SpeechFeatures:
    """Clean features of the kept clips and their noisy copies (same clips, same order)."""

    clean: FeatureSet
    noisy: list[FeatureSet]

    @property
    def frame(self) -> pd.DataFrame:
        """The rows of the kept clips (all of them unless a file was rejected)."""
        return self.clean.frame

    def __len__(self) -> int:
        return len(self.clean)


def feature_versions(
    features: SpeechFeatures | FeatureSet | Sequence[np.ndarray],
) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
    """``(clean arrays, [arrays of each noisy copy])`` of a :class:`SpeechFeatures`, a ``FeatureSet`` or a list of
    ``(n_mels, n_frames_i)`` arrays (the last two have no noisy copies)."""
    if isinstance(features, SpeechFeatures):
        return features.clean.features, [version.features for version in features.noisy]
    if isinstance(features, FeatureSet):
        return features.features, []
    return list(features), []


def load_speech_features(
    data: pd.DataFrame, recipe: SpeechCNNRecipe | None = None, cache_name: str | None = None, progress: bool = True
) -> SpeechFeatures:
    """Log-mel features of every clip of ``data`` and ``recipe.noisy_copies`` noisy versions, cached (as 08).

    The cache names default to 08's (``ravdess-logmel<n_mels>`` and ``…-noisy``), so a run after notebook 08
    loads its files. No noisy copy is computed when ``recipe.augment`` is off. Index the result with
    positional indices of ``features.frame`` (the same as ``data``'s unless a clip was rejected).
    """
    recipe = recipe or SpeechCNNRecipe()
    if "filepath" not in data.columns:
        raise SpeechSetupError(
            "the frame needs a 'filepath' column with one audio file per row (as load_ravdess gives)"
        )
    name = cache_name or f"ravdess-logmel{recipe.n_mels}"
    settings = recipe.feature_settings()
    clean = extract_features(data, cache_name=name, progress=progress, **settings)
    copies = recipe.noisy_copies if recipe.augment else 0
    noisy = [
        extract_features(
            data,
            noise_snr_db=tuple(recipe.noise_snr_db),
            noise_seed=copy,
            cache_name=f"{name}-noisy",
            progress=progress,
            **settings,
        )
        for copy in range(copies)
    ]
    for version in noisy:
        if version.frame.filepath.tolist() != clean.frame.filepath.tolist():
            raise SpeechSetupError(
                "the noisy copies kept other clips than the clean features; check the rejected files"
            )
    return SpeechFeatures(clean, noisy)


# --------------------------------------------------------------------------- notebook 08's code (@save cells)
# Everything from here to embed_speech is also in notebook 08, where a student reads and changes it;
# tests/test_saved_cells.py fails when the two copies differ.


def speaker_splits(
    data: pd.DataFrame, n_folds: int = 5, seed: int = 42
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(train, val, test)`` positional indices of ``data`` for each of ``n_folds`` speaker folds.

    The test actors of a fold come from ``GroupKFold`` by actor (``speaker_folds``); of the remaining actors,
    one male and one female (drawn with ``np.random.default_rng(seed + fold)``) become the validation actors.
    Every fold's training part must therefore hold at least two actors of each gender.
    """
    missing = [c for c in ("actor", "gender") if c not in data.columns]
    if missing:
        raise SpeechSetupError(
            f"the frame needs the columns 'actor' and 'gender' (as load_ravdess gives); missing {missing}"
        )
    if data.groupby("actor").gender.nunique().max() > 1:
        raise SpeechSetupError("every actor must have one gender; some actor has rows with two different genders")
    n_actors = data.actor.nunique()
    if not 2 <= n_folds <= n_actors:
        raise SpeechSetupError(f"n_folds must be between 2 and the number of actors ({n_actors}), got {n_folds}")
    splits = []
    for fold, (train_idx, test_idx) in enumerate(speaker_folds(data, n_folds=n_folds)):
        rng = np.random.default_rng(seed + fold)
        actors = data.iloc[train_idx].groupby("actor").gender.first()
        for gender in ("male", "female"):
            if (actors == gender).sum() < 2:
                raise SpeechSetupError(
                    f"fold {fold + 1}: the training actors hold {(actors == gender).sum()} {gender} actor(s); one {gender} "  # noqa: E501
                    f"validation actor needs at least two. Use fewer folds or more actors."
                )
        val_actors = sorted([rng.choice(actors[actors == g].index) for g in ("male", "female")])
        is_val = data.actor.iloc[train_idx].isin(val_actors).to_numpy()
        train_i, val_i = train_idx[~is_val], train_idx[is_val]
        groups = [set(data.actor.iloc[i]) for i in (train_i, val_i, test_idx)]
        assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2]), "an actor is in two sets"
        splits.append((train_i, val_i, test_idx))
    return splits


def speech_dataset(
    features, labels, indices, recipe: SpeechCNNRecipe, train: bool = False, seed: int = 0
) -> FeatureDataset:
    """The clips ``indices`` of ``features`` as a dataset of ``(1, n_mels, n_frames)`` inputs and their labels.

    Every clip is normalised per mel band and cropped or padded to ``recipe.n_frames`` frames. With ``train`` and
    ``recipe.augment``, each draw picks the clean clip or one of its noisy copies, places the window at random
    (time shift) and masks bands and frames (SpecAugment); otherwise the clean clip, centred.
    """
    clean, noisy = feature_versions(features)
    indices = np.asarray(indices, dtype=np.int64)
    if len(indices) == 0:
        raise SpeechSetupError("the index set is empty")
    if indices.min() < 0 or indices.max() >= len(clean):
        raise SpeechSetupError(f"indices must lie in [0, {len(clean)}), got {indices.min()}..{indices.max()}")
    labels = np.asarray(labels)
    if len(labels) != len(clean):
        raise SpeechSetupError(f"{len(labels)} labels for {len(clean)} feature arrays")
    augment = train and recipe.augment
    return FeatureDataset(
        [clean[i] for i in indices],
        labels[indices],
        recipe.n_frames,
        train=train,
        noisy=[[version[i] for i in indices] for version in noisy] if augment else (),
        shift=augment,
        spec_augment=recipe.spec_augment if augment else None,
        seed=seed,
    )


def new_speech_cnn(recipe: SpeechCNNRecipe, seed: int) -> SpeechCNN:
    """A fresh :class:`SpeechCNN` of the recipe, its weights drawn after ``seed_everything(seed)``, in the
    channels-last memory layout (faster convolutions on a CPU)."""
    seed_everything(seed)
    model = SpeechCNN(in_channels=1, num_classes=recipe.num_classes, widths=recipe.widths, dropout=recipe.dropout)
    return model.to(memory_format=torch.channels_last)


def speech_optimizer(model: torch.nn.Module, recipe: SpeechCNNRecipe) -> torch.optim.AdamW:
    """AdamW at the recipe's peak learning rate and weight decay."""
    return torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate, weight_decay=recipe.weight_decay)


def speech_schedule(optimizer, recipe: SpeechCNNRecipe, total_steps: int) -> torch.optim.lr_scheduler.OneCycleLR:
    """The one-cycle schedule: up to ``recipe.learning_rate`` and down again over ``total_steps`` batches."""
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe.learning_rate, total_steps=total_steps)


def train_speech_cnn(
    features,
    labels,
    train_i,
    val_i,
    recipe: SpeechCNNRecipe | None = None,
    seed: int = 42,
    device=None,
    progress: bool = True,
) -> tuple[SpeechCNN, History, float]:
    """Train a fresh :class:`SpeechCNN` on the clips ``train_i``; keep the epoch with the lowest loss on ``val_i``.

    AdamW with a one-cycle schedule, cross-entropy with label smoothing, no early cut (``patience=None``): the
    weights of the best validation epoch are restored at the end. ``features`` is a :class:`SpeechFeatures`
    (its noisy copies are used when ``recipe.augment``) or a list of ``(n_mels, n_frames_i)`` arrays.
    Returns ``(model, history, seconds)``.
    """
    recipe = recipe or SpeechCNNRecipe()
    device = get_device() if device is None else torch.device(device)
    labels = np.asarray(labels)
    train_set = speech_dataset(features, labels, train_i, recipe, train=True, seed=seed)
    val_set = speech_dataset(features, labels, val_i, recipe)
    if labels.min() < 0 or labels.max() >= recipe.num_classes:
        raise SpeechSetupError(f"labels must lie in [0, {recipe.num_classes}), got {labels.min()}..{labels.max()}")
    model = new_speech_cnn(recipe, seed)
    train_loader = DataLoader(
        train_set, batch_size=recipe.batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed)
    )
    val_loader = DataLoader(val_set, batch_size=64)
    optimizer = speech_optimizer(model, recipe)
    scheduler = speech_schedule(optimizer, recipe, total_steps=recipe.epochs * len(train_loader))
    start = time.perf_counter()
    history = fit(
        model,
        train_loader,
        val_loader,
        optimizer,
        recipe.epochs,
        device,
        loss_fn=torch.nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing),
        scheduler=scheduler,
        monitor="val_loss",
        patience=None,
        progress=progress,
    )
    return model, history, time.perf_counter() - start


def predict_speech(model: SpeechCNN, features, labels, idx, recipe: SpeechCNNRecipe | None = None, device=None):
    """``(logits, y_true)`` of the clips ``idx`` (clean, centred, never augmented), model in eval mode."""
    recipe = recipe or SpeechCNNRecipe()
    device = get_device() if device is None else torch.device(device)
    loader = DataLoader(speech_dataset(features, labels, idx, recipe), batch_size=64)
    return predict_logits(model, loader, device)


@torch.no_grad()
def embed_speech(model: SpeechCNN, features, idx, recipe: SpeechCNNRecipe | None = None) -> np.ndarray:
    """``(len(idx), widths[-1])`` pooled penultimate features (:meth:`SpeechCNN.embed`) of the clips ``idx``."""
    recipe = recipe or SpeechCNNRecipe()
    idx = np.asarray(idx, dtype=np.int64)
    dataset = speech_dataset(features, np.zeros(len(feature_versions(features)[0]), dtype=np.int64), idx, recipe)
    device = next(model.parameters()).device
    model.eval()
    parts = [model.embed(x.to(device)).cpu() for x, _ in DataLoader(dataset, batch_size=64)]
    return torch.cat(parts).numpy()


__all__ = [
    "SpeechSetupError",
    "SpeechCNNRecipe",
    "SpeechFeatures",
    "feature_versions",
    "load_speech_features",
    "speaker_splits",
    "speech_dataset",
    "new_speech_cnn",
    "speech_optimizer",
    "speech_schedule",
    "train_speech_cnn",
    "predict_speech",
    "embed_speech",
]
