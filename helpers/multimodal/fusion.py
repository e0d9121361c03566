"""Text + audio fusion (notebook 10): a constructed paired set, a cheap text branch and three fusion heads.

- Pairing: :func:`build_paired_folds` pairs speech clips with sentences *of the same emotion*, fold by fold: the
  audio side keeps the given speaker splits (no speaker in two sets), the text side is a stratified k-fold (a
  fold's test sentences are never used for training), and no sentence is used twice. The pairing is
  **constructed**: the clip and the sentence share an emotion label and nothing else.
- Text branch: :class:`TextBranch`, character n-gram TF-IDF → logistic regression (class probabilities) and a
  truncated SVD (a dense embedding), fitted on sentences that are never paired.
- Pretrained branches: :func:`sentence_embeddings` (a registry encoder such as multilingual E5, cached) with
  :class:`EmbeddingTextBranch` (logistic regression + PCA on the vectors), and :class:`LayerHeadAudioBranch`
  (notebook 09's SUPERB head on frozen Whisper layer features: probabilities and its hidden-layer embedding).
- Fusion heads over the two branches' embeddings: :class:`EarlyFusion` (concatenate → MLP),
  :func:`late_fusion` (weighted average of the two branches' probabilities), :class:`GatedFusion` (one learned
  sigmoid gate per modality); :func:`train_fusion_head` trains a head (with optional modality dropout),
  :func:`fusion_proba` scores it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from sklearn.decomposition import TruncatedSVD
from sklearn.model_selection import StratifiedKFold, train_test_split
from torch import nn

from helpers.audio.whisper_features import predict_layer_head, train_layer_head, weights_fingerprint
from helpers.core.data import cache_dir
from helpers.core.download import atomic_write_bytes
from helpers.core.training import fit
from helpers.pretrained import describe, embed_sentences, load_encoder, resolve_model
from helpers.pretrained.registry import origin as model_origin
from helpers.text.baselines import fit_quietly, logreg, tfidf_vectorizer

# The seven emotions RAVDESS and the Korean single-turn sentences share (RAVDESS's names; "calm" has no Korean
# counterpart and is dropped).
FUSION_EMOTIONS = ("neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised")
KO_GLOSS_TO_FUSION = {
    "neutral": "neutral",
    "happiness": "happy",
    "sadness": "sad",
    "anger": "angry",
    "fear": "fearful",
    "disgust": "disgust",
    "surprise": "surprised",
}
SPLITS = ("train", "val", "test")


class PairingError(ValueError):
    """The clips, sentences or splits given to the pairing builder cannot be paired; the message says why."""

    def _render_traceback_(self) -> list[str]:
        return [f"PairingError: {self}"]


# --------------------------------------------------------------------------- pairing


def drop_duplicate_sentences(texts: pd.DataFrame, text_col: str = "text", label_col: str = "emotion") -> pd.DataFrame:
    """One row per distinct sentence: exact repeats keep their first row, sentences given two different labels
    are dropped altogether (their label is unknowable). The index is reset."""
    labels_per_text = texts.groupby(text_col)[label_col].nunique()
    conflicting = set(labels_per_text.index[labels_per_text > 1])
    kept = texts[~texts[text_col].isin(conflicting)].drop_duplicates(text_col)
    return kept.reset_index(drop=True)


@dataclass
class PairedFold:
    """One fold of the paired set.

    ``pairs``: one row per (clip, sentence) pair with ``split`` (train / val / test), ``clip_row`` and ``sentence_row``
    (positions in the clip and sentence frames), ``emotion``, ``label`` (its index in the emotion list) and
    ``speaker``. ``text_branch``: positions of the sentences the text branch may learn from (never paired).
    ``audio``: the clip positions of each split (the speaker split given to the builder).
    """

    fold: int
    pairs: pd.DataFrame
    text_branch: np.ndarray
    audio: dict[str, np.ndarray] = field(default_factory=dict)

    def split(self, name: str) -> pd.DataFrame:
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {name!r}")
        return self.pairs[self.pairs["split"] == name].reset_index(drop=True)


def _check_frames(
    clips: pd.DataFrame, texts: pd.DataFrame, label_col: str, speaker_col: str, text_col: str, emotions: Sequence[str]
) -> None:
    for name, frame, cols in (("clips", clips, (label_col, speaker_col)), ("texts", texts, (label_col, text_col))):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise PairingError(f"the {name} frame needs the columns {list(cols)}; missing {missing}")
    for name, frame in (("clips", clips), ("texts", texts)):
        stray = sorted(set(frame[label_col]) - set(emotions))
        if stray:
            raise PairingError(
                f"{name} have emotions {stray} outside the pairing emotions {list(emotions)}; "
                "map or drop them first (RAVDESS's 'calm' has no sentence counterpart)"
            )
    no_text = [e for e in emotions if e in set(clips[label_col]) and e not in set(texts[label_col])]
    if no_text:
        raise PairingError(f"emotion(s) {no_text} have clips but no candidate sentence at all")
    if texts[text_col].duplicated().any():
        n = int(texts[text_col].duplicated().sum())
        raise PairingError(
            f"{n} sentences occur more than once, so a sentence could land in two splits; "
            "remove repeats first (helpers.multimodal.fusion.drop_duplicate_sentences)"
        )


def _check_audio_split(
    clips: pd.DataFrame, split: Sequence[np.ndarray], fold: int, speaker_col: str
) -> dict[str, np.ndarray]:
    if len(split) != 3:
        raise PairingError(
            f"fold {fold}: an audio split must be (train, val, test) index arrays, got {len(split)} parts"
        )
    parts = {name: np.asarray(idx, dtype=np.int64) for name, idx in zip(SPLITS, split)}
    for name, idx in parts.items():
        if len(idx) == 0:
            raise PairingError(f"fold {fold}: the audio {name} split is empty")
        if idx.min() < 0 or idx.max() >= len(clips):
            raise PairingError(f"fold {fold}: audio {name} indices must lie in [0, {len(clips)})")
    speakers = {name: set(clips[speaker_col].iloc[idx]) for name, idx in parts.items()}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        shared = speakers[a] & speakers[b]
        if shared:
            raise PairingError(
                f"fold {fold}: speakers {sorted(shared)} are in both the audio {a} and {b} splits; "
                "the audio side must be speaker-independent (use helpers.audio.cnn_recipe.speaker_splits)"
            )
    return parts


def _draw(
    pool: np.ndarray, pool_labels: np.ndarray, need: Mapping[str, int], rng: np.random.Generator, fold: int, split: str
) -> dict[str, np.ndarray]:
    """For each emotion, ``need[emotion]`` distinct positions of ``pool`` with that label, in random order."""
    drawn = {}
    for emotion, n in need.items():
        candidates = pool[pool_labels == emotion]
        if len(candidates) < n:
            raise PairingError(
                f"fold {fold}, {split} split: emotion {emotion!r} needs {n} sentences but only "
                f"{len(candidates)} are available; use fewer partners per clip or more sentences"
            )
        drawn[emotion] = rng.permutation(candidates)[:n]
    return drawn


def build_paired_folds(
    clips: pd.DataFrame,
    texts: pd.DataFrame,
    audio_splits: Sequence[Sequence[np.ndarray]],
    *,
    partners: Mapping[str, int] | None = None,
    text_branch_limit: int | None = None,
    seed: int = 42,
    label_col: str = "emotion",
    speaker_col: str = "actor",
    text_col: str = "text",
    emotions: Sequence[str] = FUSION_EMOTIONS,
) -> list[PairedFold]:
    """Pair every clip of every split with sentences of the same emotion, one fold per audio split.

    - ``audio_splits``: ``(train, val, test)`` positions of ``clips`` per fold, speaker-independent (checked),
      e.g. :func:`helpers.audio.cnn_recipe.speaker_splits`.
    - Text side: a stratified k-fold over the sentences (k = number of folds, shuffled with ``seed``); fold ``f``'s
      test clips are paired with sentences of text fold ``f``; validation and training clips with sentences of
      the other folds, validation drawn first. Every sentence is used at most once in a fold (no sentence is in
      two splits, none is repeated), and the sentences of the pairs are never in ``text_branch``.
    - ``partners``: sentences per clip in each split (default ``{"train": 1, "val": 1, "test": 1}``); a clip with
      2 partners gives two pairs.
    - ``text_branch``: every unpaired sentence outside the test fold, or a stratified sample of
      ``text_branch_limit`` of them.

    The result depends only on the inputs and ``seed``. Raises :class:`PairingError` for unusable input: an
    emotion without candidate sentences, repeated sentences, a speaker in two audio splits, too few sentences.
    """

    partners = {"train": 1, "val": 1, "test": 1, **(partners or {})}
    if set(partners) - set(SPLITS) or any(int(n) < 1 for n in partners.values()):
        raise PairingError(f"partners must map {SPLITS} to counts >= 1, got {dict(partners)}")
    _check_frames(clips, texts, label_col, speaker_col, text_col, emotions)
    n_folds = len(audio_splits)
    if n_folds < 2:
        raise PairingError(f"need at least 2 folds (audio splits), got {n_folds}")
    emotion_id = {e: i for i, e in enumerate(emotions)}
    clip_labels = clips[label_col].to_numpy()
    text_labels = texts[label_col].to_numpy()
    text_folds = [
        te
        for _, te in StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(np.zeros(len(texts)), text_labels)
    ]
    folds = []
    for fold, split in enumerate(audio_splits):
        parts = _check_audio_split(clips, split, fold, speaker_col)
        rng = np.random.default_rng([seed, fold])
        test_pool = np.sort(text_folds[fold])
        rest_pool = np.setdiff1d(np.arange(len(texts)), test_pool)
        rows, used = [], set()
        for name in ("val", "train", "test"):
            idx = parts[name]
            need = pd.Series(clip_labels[idx]).value_counts().mul(int(partners[name])).to_dict()
            pool = test_pool if name == "test" else np.setdiff1d(rest_pool, np.fromiter(used, dtype=np.int64))
            drawn = _draw(pool, text_labels[pool], need, rng, fold, name)
            taken = {e: 0 for e in drawn}
            for _ in range(int(partners[name])):
                for clip in rng.permutation(idx):
                    emotion = clip_labels[clip]
                    sentence = int(drawn[emotion][taken[emotion]])
                    taken[emotion] += 1
                    used.add(sentence)
                    rows.append(
                        (name, int(clip), sentence, emotion, emotion_id[emotion], clips[speaker_col].iloc[clip])
                    )
        pairs = pd.DataFrame(rows, columns=["split", "clip_row", "sentence_row", "emotion", "label", "speaker"])
        branch = np.setdiff1d(rest_pool, pairs["sentence_row"].to_numpy())
        if text_branch_limit is not None and text_branch_limit < len(branch):
            branch, _ = train_test_split(
                branch, train_size=text_branch_limit, stratify=text_labels[branch], random_state=seed + fold
            )
        folds.append(PairedFold(fold, pairs, np.sort(branch), parts))
    return folds


# --------------------------------------------------------------------------- the text branch


class TextBranch:
    """Character n-gram TF-IDF (:func:`helpers.text.korean_emotion.tfidf_vectorizer`) with two heads on top: logistic
    regression (the text-only classifier: class probabilities) and a truncated SVD of the TF-IDF vectors (a dense
    ``svd_dim`` embedding for the fusion heads). Everything is fitted on the training sentences only."""

    def __init__(self, svd_dim: int = 64, C: float = 2.0, seed: int = 42):
        self.svd_dim, self.C, self.seed = svd_dim, C, seed

    def fit(self, texts: Sequence[str], labels: Sequence[int]) -> "TextBranch":
        start = time.perf_counter()
        self.vectorizer = tfidf_vectorizer()
        x = self.vectorizer.fit_transform(list(texts))
        self.classifier = fit_quietly(logreg(self.seed, C=self.C), x, np.asarray(labels))
        self.svd = TruncatedSVD(self.svd_dim, random_state=self.seed).fit(x)
        self.seconds = time.perf_counter() - start
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return self.classifier.predict_proba(self.vectorizer.transform(list(texts)))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.svd.transform(self.vectorizer.transform(list(texts))).astype(np.float32)


# --------------------------------------------------------------------------- pretrained branches


def sentence_embeddings(
    texts: Sequence[str],
    name: str = "e5-small",
    *,
    max_length: int = 64,
    num_layers: int | None = None,
    batch_size: int = 64,
    cache_name: str = "sentences",
    use_cache: bool = True,
) -> tuple[np.ndarray, str]:
    """``(embeddings, origin)``: mean-pooled, L2-normalised sentence vectors from registry encoder ``name``.

    The model's own prefix is used (E5: ``"query: "``, :func:`helpers.pretrained.describe`), sentences are cut at
    ``max_length`` tokens, and ``num_layers`` keeps only the first layers (a cheaper model of the same class). The
    result is cached in ``cache_dir()/features/<cache_name>-<hash>.npz`` (no pickles, atomic); the key covers the
    weights, these settings and every sentence, so the same call again is a read. ``origin`` says where the
    weights came from.
    """
    import hashlib
    import io
    import json

    texts = [str(t) for t in texts]
    if not texts:
        raise ValueError("no sentences to embed")
    folder = resolve_model(name)
    prefix = describe(name)["prefix"]
    settings = {
        "model": name,
        "weights": weights_fingerprint(folder),
        "max_length": max_length,
        "num_layers": num_layers,
        "prefix": prefix,
    }
    digest = hashlib.sha256(
        json.dumps({"settings": settings, "texts": texts}, ensure_ascii=False).encode()
    ).hexdigest()[:16]
    path = cache_dir() / "features" / f"{cache_name}-{digest}.npz"
    note = model_origin(name, folder) + (f"; first {num_layers} layers" if num_layers else "")
    if use_cache and path.exists():
        with np.load(path, allow_pickle=False) as npz:
            return npz["embeddings"], note
    model, tokenizer = load_encoder(name, folder, num_layers=num_layers, verbose=False)
    emb = embed_sentences(model, tokenizer, texts, prefix=prefix, max_length=max_length, batch_size=batch_size)
    if use_cache:
        buffer = io.BytesIO()
        np.savez(buffer, embeddings=emb)
        atomic_write_bytes(path, buffer.getvalue())
    return emb, note


class EmbeddingTextBranch:
    """The text branch on fixed sentence embeddings (e.g. E5's): standardised logistic regression (class
    probabilities) and a PCA to ``dim`` dimensions (the dense embedding for the fusion heads), fitted on the branch's
    training sentences only. The same two outputs as :class:`TextBranch`, from vectors instead of strings."""

    def __init__(self, dim: int = 64, C: float = 1.0, seed: int = 42):
        self.dim, self.C, self.seed = dim, C, seed

    def fit(self, embeddings: np.ndarray, labels: Sequence[int]) -> "EmbeddingTextBranch":
        from sklearn.decomposition import PCA
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        start = time.perf_counter()
        x = np.asarray(embeddings, dtype=np.float32)
        if x.ndim != 2 or len(x) != len(labels):
            raise ValueError(f"need one embedding row per label; got {x.shape} and {len(labels)} labels")
        self.classifier = fit_quietly(
            make_pipeline(StandardScaler(), logreg(self.seed, C=self.C)), x, np.asarray(labels)
        )
        self.pca = PCA(min(self.dim, x.shape[1]), random_state=self.seed).fit(x)
        self.seconds = time.perf_counter() - start
        return self

    def predict_proba(self, embeddings: np.ndarray) -> np.ndarray:
        return self.classifier.predict_proba(np.asarray(embeddings, dtype=np.float32))

    def embed(self, embeddings: np.ndarray) -> np.ndarray:
        return self.pca.transform(np.asarray(embeddings, dtype=np.float32)).astype(np.float32)


class LayerHeadAudioBranch:
    """The audio branch on frozen-encoder layer features (notebook 09's Whisper recipe): one
    :class:`helpers.audio.whisper_features.LayerWeightedHead` per setting of ``grid``, trained on the training clips,
    the one with the lowest validation loss kept (its best epoch restored). Class probabilities from its softmax,
    the embedding from its hidden layer (after the ReLU), like the CNN's pooled features."""

    def __init__(
        self,
        num_classes: int,
        grid: Sequence[Mapping] = (
            {"hidden": 256, "weight_decay": 1e-2, "batch_size": 64, "learning_rate": 2e-3},
            {"hidden": 256, "weight_decay": 1e-1, "batch_size": 64, "learning_rate": 2e-3},
        ),
        epochs: int = 50,
        seed: int = 42,
    ):
        self.num_classes, self.grid, self.epochs, self.seed = num_classes, [dict(g) for g in grid], epochs, seed

    def fit(self, features: np.ndarray, labels: Sequence[int], train_i, val_i) -> "LayerHeadAudioBranch":
        start = time.perf_counter()
        runs = [
            train_layer_head(
                features, labels, train_i, val_i, num_classes=self.num_classes, epochs=self.epochs, seed=self.seed, **g
            )
            for g in self.grid
        ]
        self.run = min(runs, key=lambda r: r.best_val_loss)
        self.seconds = time.perf_counter() - start
        return self

    def predict_proba(self, features: np.ndarray, idx=None) -> np.ndarray:
        return predict_layer_head(self.run, features, idx)

    @torch.no_grad()
    def embed(self, features: np.ndarray, idx=None) -> np.ndarray:
        x = np.asarray(features) if idx is None else np.asarray(features)[np.asarray(idx, dtype=np.int64)]
        model = self.run.model.eval()
        mixed = model.mix(torch.from_numpy(self.run.standardizer.transform(x)))
        return model.net[:3](mixed).numpy()  # dropout (off in eval) -> linear -> ReLU


# --------------------------------------------------------------------------- fusion heads


class Standardizer:
    """Per-dimension mean and standard deviation of training embeddings; after :meth:`transform` the training
    mean is the zero vector, so "missing modality → zeros" is "missing modality → the average embedding"."""

    def fit(self, x: np.ndarray) -> "Standardizer":
        x = np.asarray(x, dtype=np.float64)
        self.mean, self.std = x.mean(axis=0), x.std(axis=0) + 1e-6
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, dtype=np.float64) - self.mean) / self.std).astype(np.float32)


class EarlyFusion(nn.Module):
    """Early (feature-level) fusion: concatenate the two embeddings, then an MLP → class logits."""

    def __init__(self, text_dim: int, audio_dim: int, num_classes: int, hidden: int = 128, dropout: float = 0.3):
        super().__init__()
        self.net = nn.Sequential(
            nn.Dropout(dropout / 2),
            nn.Linear(text_dim + audio_dim, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, text: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([text, audio], dim=-1))


class GatedFusion(nn.Module):
    """Gated fusion: each modality is projected to ``hidden`` units (``tanh``), a learned sigmoid gate per modality
    (computed from both embeddings) scales it, and the gated sum goes to a linear classifier:

    ``h = g_t · tanh(W_t x_t) + g_a · tanh(W_a x_a)``, ``(g_t, g_a) = σ(W_g [x_t; x_a])``.

    The gates say, example by example, how much each modality is listened to. ``present`` (``[n, 2]``, 1 where the
    text / audio input exists) closes the gate of a missing modality, so its input has no effect at all.
    """

    def __init__(self, text_dim: int, audio_dim: int, num_classes: int, hidden: int = 64, dropout: float = 0.3):
        super().__init__()
        self.text_proj = nn.Linear(text_dim, hidden)
        self.audio_proj = nn.Linear(audio_dim, hidden)
        self.gate = nn.Linear(text_dim + audio_dim, 2)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden, num_classes)

    def gates(self, text: torch.Tensor, audio: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        """``[n, 2]`` gate values (text, audio) in [0, 1]; 0 for a modality marked absent in ``present``."""
        if present is not None:
            present = present.to(text.dtype)
            text, audio = text * present[:, :1], audio * present[:, 1:]
        g = torch.sigmoid(self.gate(torch.cat([text, audio], dim=-1)))
        return g if present is None else g * present

    def forward(self, text: torch.Tensor, audio: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        g = self.gates(text, audio, present)
        h = g[:, :1] * torch.tanh(self.text_proj(text)) + g[:, 1:] * torch.tanh(self.audio_proj(audio))
        return self.classifier(self.dropout(h))


def late_fusion(p_text: np.ndarray, p_audio: np.ndarray, text_weight: float = 0.5) -> np.ndarray:
    """Late (decision-level) fusion: ``w · p_text + (1 − w) · p_audio``, the weighted average of the two
    single-modality classifiers' class probabilities (``w = 0.5``: the plain average)."""
    if not 0.0 <= text_weight <= 1.0:
        raise ValueError(f"text_weight must lie in [0, 1], got {text_weight}")
    p_text, p_audio = np.asarray(p_text, dtype=float), np.asarray(p_audio, dtype=float)
    if p_text.shape != p_audio.shape:
        raise ValueError(f"the two probability arrays differ in shape: {p_text.shape} vs {p_audio.shape}")
    return text_weight * p_text + (1.0 - text_weight) * p_audio


def choose_late_weight(
    p_text: np.ndarray,
    p_audio: np.ndarray,
    labels: Sequence[int],
    grid: Sequence[float] = tuple(np.round(np.linspace(0, 1, 21), 2)),
) -> tuple[float, pd.Series]:
    """The text weight of :func:`late_fusion` with the lowest log-loss on (validation) ``labels``, and the
    log-loss of every weight of ``grid``."""
    labels = np.asarray(labels, dtype=int)
    losses = pd.Series(
        {
            float(w): float(
                -np.log(np.clip(late_fusion(p_text, p_audio, w)[np.arange(len(labels)), labels], 1e-9, None)).mean()
            )
            for w in grid
        },
        name="val log-loss",
    )
    return float(losses.idxmin()), losses


class ModalityDropout:
    """A ``batch_transform`` for :func:`helpers.core.training.fit`: zero one of the two (standardised, so zero =
    average) embeddings of a fraction ``p`` of the examples of each training batch ``(text, audio, labels)``,
    drawing from ``generator``, so the head learns to cope with one branch missing."""

    def __init__(self, p: float, generator: torch.Generator):
        if not 0.0 <= p < 1.0:
            raise ValueError(f"modality_dropout must lie in [0, 1), got {p}")
        self.p, self.generator = p, generator

    def __call__(self, batch):
        text, audio, labels = batch
        n = len(text)
        drop = torch.rand(n, generator=self.generator) < self.p
        which = torch.rand(n, generator=self.generator) < 0.5  # True: drop the text, False: drop the audio
        return text * (~(drop & which))[:, None], audio * (~(drop & ~which))[:, None], labels


class ShuffledTensors:
    """Batches ``(text, audio, labels)`` in a fresh order each epoch, drawn from ``generator`` when iteration starts."""

    def __init__(self, tensors: tuple[torch.Tensor, ...], batch_size: int, generator: torch.Generator):
        self.tensors, self.batch_size, self.generator = tensors, batch_size, generator

    def __len__(self) -> int:
        return -(-len(self.tensors[0]) // self.batch_size)

    def __iter__(self):
        order = torch.randperm(len(self.tensors[0]), generator=self.generator)
        for b in range(0, len(order), self.batch_size):
            i = order[b : b + self.batch_size]
            yield tuple(t[i] for t in self.tensors)


@dataclass
class FusionHistory:
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0


def train_fusion_head(
    model: nn.Module,
    train: tuple[np.ndarray, np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray, np.ndarray],
    *,
    epochs: int = 60,
    lr: float = 3e-3,
    weight_decay: float = 1e-3,
    batch_size: int = 64,
    modality_dropout: float = 0.0,
    label_smoothing: float = 0.1,
    seed: int = 42,
) -> FusionHistory:
    """Train a fusion head on ``(text_emb, audio_emb, labels)`` with AdamW on the course's loop
    (:func:`helpers.core.training.fit`, on the CPU in fp32); keep the epoch with the lowest validation loss (plain
    cross-entropy; its weights are restored). ``modality_dropout``: :class:`ModalityDropout` on every batch."""
    if not 0.0 <= modality_dropout < 1.0:
        raise ValueError(f"modality_dropout must lie in [0, 1), got {modality_dropout}")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)  # the batch order and the modality dropout draw from it
    dropout = ModalityDropout(modality_dropout, generator) if modality_dropout else None
    xt, xa, y = (torch.tensor(np.asarray(a)) for a in train)  # copies: pandas hands out read-only arrays
    vt, va, vy = (torch.tensor(np.asarray(a)) for a in val)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    history = fit(
        model,
        ShuffledTensors((xt, xa, y.long()), batch_size, generator),
        [(vt, va, vy.long())],
        optimizer,
        epochs,
        torch.device("cpu"),
        loss_fn=nn.CrossEntropyLoss(label_smoothing=label_smoothing),
        val_loss_fn=nn.CrossEntropyLoss(),
        batch_transform=dropout,
        monitor="val_loss",
        precision="fp32",
        progress=False,
    )
    model.eval()
    return FusionHistory(history.train_loss, history.val_loss, history.best_epoch, float(sum(history.epoch_seconds)))


@torch.no_grad()
def fusion_proba(model: nn.Module, text: np.ndarray, audio: np.ndarray) -> np.ndarray:
    """Class probabilities of a fusion head (eval mode)."""
    model.eval()
    text, audio = (torch.tensor(np.asarray(a, dtype=np.float32)) for a in (text, audio))
    return torch.softmax(model(text, audio), dim=-1).numpy()


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


__all__ = [
    "FUSION_EMOTIONS",
    "KO_GLOSS_TO_FUSION",
    "PairingError",
    "PairedFold",
    "drop_duplicate_sentences",
    "build_paired_folds",
    "TextBranch",
    "sentence_embeddings",
    "EmbeddingTextBranch",
    "LayerHeadAudioBranch",
    "Standardizer",
    "EarlyFusion",
    "GatedFusion",
    "late_fusion",
    "choose_late_weight",
    "ModalityDropout",
    "ShuffledTensors",
    "train_fusion_head",
    "FusionHistory",
    "fusion_proba",
    "softmax",
]
