"""A Macaron-Net encoder (x-transformers) with a convolutional-attention head, for notebook 07.

- :class:`MacaronConfig` — every setting of the model, checked on creation (:class:`MacaronConfigError`).
- :func:`build_encoder` — an ``x_transformers.TransformerWrapper`` over an ``Encoder(macaron=True)``: each block
  is ½·FFN → self-attention → ½·FFN (Lu et al. 2019); ``macaron=False`` gives the usual attention → FFN block.
- :func:`layer_order` — the encoder's sub-layers in the order they run, to show the macaron sandwich.
- :class:`AttentionPooling`, :class:`ConvAttentionHead` — Conv1d ×3 → max-pool → attention pooling → linear,
  with padding masked at every step, so padded positions never change the output.
- :class:`MacaronClassifier` — encoder + head, called as ``model(ids, lengths)`` like
  :class:`helpers.text.lstm.LSTMClassifier`, so :func:`helpers.text.pipeline.make_loader` and
  :func:`helpers.core.training.fit` drive it.
- :func:`save_macaron` / :func:`load_macaron` — one folder with ``model.pt`` (a ``state_dict``, read back with
  ``weights_only=True``) and ``config.json``, written atomically.
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from helpers.core.download import atomic_folder
from helpers.core.env import REPO_ROOT
from helpers.core.model_folder import confined_path, load_pretrained, read_model_config, read_weights
from helpers.core.model_kinds import Scorer, ScorerError, register_model_kind
from helpers.core.parameters import count_parameters  # re-exported (mac.count_parameters)
from helpers.text.pipeline import pad_batch

TASK = "text-classification-macaron-conv-attention"
FORMAT_VERSION = 1


class MacaronConfigError(ValueError):
    """A setting of :class:`MacaronConfig` (or a saved model folder) is not usable; the message says which and why."""


@dataclasses.dataclass(frozen=True)
class MacaronConfig:
    """Settings of a :class:`MacaronClassifier`.

    Encoder: ``dim`` (model width), ``depth`` (blocks), ``heads`` (must divide ``dim``), ``ff_mult`` (hidden width of
    each feed-forward network as a multiple of ``dim``), ``macaron`` (½·FFN → attention → ½·FFN blocks, or the plain
    attention → FFN), ``max_len`` (longest input, in tokens; sets the position embeddings).
    Head: three ``Conv1d`` of ``conv_channels`` channels and odd ``kernel_size``, max-pooling over windows of
    ``pool_size`` positions, attention pooling with a hidden size of ``attn_dim``, a linear layer to
    ``num_classes``. ``dropout`` is used in the encoder (attention, feed-forward, embeddings) and before the linear
    layer.
    """

    vocab_size: int
    num_classes: int = 7
    pad_id: int = 0
    max_len: int = 64
    dim: int = 256
    depth: int = 2
    heads: int = 4
    ff_mult: float = 2.0
    macaron: bool = True
    conv_channels: int = 128
    kernel_size: int = 3
    pool_size: int = 2
    attn_dim: int = 64
    dropout: float = 0.1

    def __post_init__(self):
        ints = (
            "vocab_size",
            "num_classes",
            "pad_id",
            "max_len",
            "dim",
            "depth",
            "heads",
            "conv_channels",
            "kernel_size",
            "pool_size",
            "attn_dim",
        )
        for name in ints:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise MacaronConfigError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
        minimum = {
            "vocab_size": 2,
            "num_classes": 2,
            "max_len": 1,
            "dim": 2,
            "depth": 1,
            "heads": 1,
            "conv_channels": 1,
            "kernel_size": 1,
            "pool_size": 1,
            "attn_dim": 1,
        }
        for name, low in minimum.items():
            if getattr(self, name) < low:
                raise MacaronConfigError(f"{name} must be at least {low}, got {getattr(self, name)}")
        if not 0 <= self.pad_id < self.vocab_size:
            raise MacaronConfigError(f"pad_id {self.pad_id} is outside the vocabulary 0..{self.vocab_size - 1}")
        if self.dim % self.heads:
            raise MacaronConfigError(
                f"dim={self.dim} must be divisible by heads={self.heads} (each head gets dim / heads)"
            )
        if self.kernel_size % 2 == 0:
            raise MacaronConfigError(
                f"kernel_size must be odd (the same padding on both sides), got {self.kernel_size}"
            )
        if not isinstance(self.macaron, bool):
            raise MacaronConfigError(f"macaron must be True or False, got {self.macaron!r}")
        if isinstance(self.ff_mult, bool) or not isinstance(self.ff_mult, (int, float)) or not self.ff_mult > 0:
            raise MacaronConfigError(f"ff_mult must be a number > 0, got {self.ff_mult!r}")
        if int(self.dim * self.ff_mult) < 1:
            raise MacaronConfigError(
                f"dim * ff_mult = {self.dim * self.ff_mult} leaves the feed-forward network no hidden units"
            )
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise MacaronConfigError(f"dropout must be a number in [0, 1), got {self.dropout!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "MacaronConfig":
        """The inverse of :meth:`to_dict`; unknown or missing keys are a :class:`MacaronConfigError`."""
        if not isinstance(values, dict):
            raise MacaronConfigError(f"a model config must be a dict, got {type(values).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise MacaronConfigError(f"unknown config keys {unknown}; known: {sorted(names)}")
        if "vocab_size" not in values:
            raise MacaronConfigError("the config lacks vocab_size")
        return cls(**values)


# --------------------------------------------------------------------------- encoder


def build_encoder(config: MacaronConfig) -> nn.Module:
    """An ``x_transformers.TransformerWrapper`` that returns token embeddings ``[B, T, dim]``.

    ``Encoder(macaron=True)`` turns the usual block (attention → FFN) into FFN → attention → FFN and wraps each
    FFN in ``Scale(0.5, ·)``: two half steps of the feed-forward network around one full step of attention.
    Pre-norm residual blocks, learnt absolute positions, GELU feed-forward networks.
    """
    from x_transformers import Encoder, TransformerWrapper

    layers = Encoder(
        dim=config.dim,
        depth=config.depth,
        heads=config.heads,
        macaron=config.macaron,
        ff_mult=config.ff_mult,
        attn_dropout=config.dropout,
        ff_dropout=config.dropout,
    )
    return TransformerWrapper(
        num_tokens=config.vocab_size,
        max_seq_len=config.max_len,
        attn_layers=layers,
        emb_dropout=config.dropout,
        return_only_embed=True,
    )


def layer_order(encoder: nn.Module) -> list[str]:
    """The encoder's residual sub-layers in the order they run: ``"attention"``, ``"ffn"`` or ``"ffn ×0.5"``.

    Read from the built modules themselves (not from the config), so it shows what the model really does.
    """
    from x_transformers.x_transformers import Attention, FeedForward, Scale

    layers = getattr(encoder, "attn_layers", encoder)
    names = []
    for _, block, _ in layers.layers:
        inner, scale = block, 1.0
        while isinstance(inner, Scale):
            scale *= inner.scale
            inner = inner.fn
        if isinstance(inner, Attention):
            names.append("attention" if scale == 1.0 else f"attention ×{scale:g}")
        elif isinstance(inner, FeedForward):
            names.append("ffn" if scale == 1.0 else f"ffn ×{scale:g}")
        else:
            names.append(type(inner).__name__)
    return names


# --------------------------------------------------------------------------- head


def lengths_to_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """``BoolTensor[B, max_len]``: True at the first ``lengths[b]`` positions of row ``b``."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


class AttentionPooling(nn.Module):
    """Additive attention pooling: ``score_t = v · tanh(W h_t)``, softmax over the real positions, weighted sum.

    Returns ``(pooled [B, D], weights [B, T])``; the weights are exactly 0 at masked positions.
    """

    def __init__(self, in_dim: int, attn_dim: int = 64):
        super().__init__()
        self.proj = nn.Linear(in_dim, attn_dim)
        self.score = nn.Linear(attn_dim, 1, bias=False)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores = self.score(torch.tanh(self.proj(h))).squeeze(-1)  # [B, T]
        scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        return torch.einsum("bt,btd->bd", weights, h), weights


class ConvAttentionHead(nn.Module):
    """Conv1d ×3 (same length, GELU) → max-pool over ``pool_size`` positions → attention pooling → dropout → linear.

    Padded positions are zeroed before every convolution (so a filter at the edge of a sentence sees zeros, not
    whatever the encoder left there) and set to −∞ before the max-pool; a pooled window is real when any of its
    positions is. ``forward(h [B, T, D], mask [B, T])`` returns logits ``[B, num_classes]``.
    """

    def __init__(
        self,
        in_dim: int,
        num_classes: int,
        channels: int = 128,
        kernel_size: int = 3,
        pool_size: int = 2,
        attn_dim: int = 64,
        dropout: float = 0.1,
        n_convs: int = 3,
    ):
        super().__init__()
        dims = [in_dim] + [channels] * n_convs
        self.convs = nn.ModuleList(
            nn.Conv1d(a, b, kernel_size, padding=kernel_size // 2) for a, b in zip(dims, dims[1:])
        )
        self.pool_size = pool_size
        self.pool = AttentionPooling(channels, attn_dim)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)

    def features(self, h: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(pooled [B, C], attention weights [B, T'], pooled mask [B, T'])`` with ``T' = ceil(T / pool_size)``."""
        if h.dim() != 3 or mask.shape != h.shape[:2]:
            raise ValueError(f"need h [B, T, D] and mask [B, T]; got {tuple(h.shape)} and {tuple(mask.shape)}")
        keep = mask.unsqueeze(1)  # [B, 1, T]
        x = h.transpose(1, 2)  # [B, D, T]
        for conv in self.convs:
            x = F.gelu(conv(x.masked_fill(~keep, 0.0)))
        if self.pool_size > 1:
            x = F.max_pool1d(x.masked_fill(~keep, float("-inf")), self.pool_size, ceil_mode=True)
            keep = F.max_pool1d(keep.float(), self.pool_size, ceil_mode=True) > 0
            x = x.masked_fill(~keep, 0.0)  # windows of padding only: −∞ → 0 (their attention weight is 0 anyway)
        pooled, weights = self.pool(x.transpose(1, 2), keep.squeeze(1))
        return pooled, weights, keep.squeeze(1)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.features(h, mask)[0]))


# --------------------------------------------------------------------------- the classifier


class MacaronClassifier(nn.Module):
    """Token ids → Macaron encoder (x-transformers) → :class:`ConvAttentionHead` → logits.

    ``model(ids [B, T], lengths [B])`` with right-padded ``ids``; without ``lengths`` the real tokens are those
    that are not ``pad_id``. The encoder's self-attention ignores the padded keys (``mask``).
    """

    def __init__(self, config: MacaronConfig):
        super().__init__()
        if not isinstance(config, MacaronConfig):
            raise MacaronConfigError(f"config must be a MacaronConfig, got {type(config).__name__}")
        self.config = config
        self.encoder = build_encoder(config)
        self.head = ConvAttentionHead(
            config.dim,
            config.num_classes,
            config.conv_channels,
            config.kernel_size,
            config.pool_size,
            config.attn_dim,
            config.dropout,
        )

    def _mask(self, ids: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        if ids.dim() != 2:
            raise ValueError(f"ids must be [batch, time], got shape {tuple(ids.shape)}")
        if ids.shape[1] > self.config.max_len:
            raise ValueError(
                f"the batch has {ids.shape[1]} positions but the model takes at most max_len="
                f"{self.config.max_len}; cut the sequences (tokenizer truncation / make_loader max_len)"
            )
        if lengths is None:
            lengths = (ids != self.config.pad_id).sum(dim=1).clamp(min=1)
        lengths = lengths.to(ids.device)
        if int(lengths.min()) < 1 or int(lengths.max()) > ids.shape[1]:
            raise ValueError(f"lengths must lie in 1..{ids.shape[1]}, got {int(lengths.min())}..{int(lengths.max())}")
        return lengths_to_mask(lengths, ids.shape[1])

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        mask = self._mask(ids, lengths)
        return self.head(self.encoder(ids, mask=mask), mask)

    @torch.no_grad()
    def attention_weights(
        self, ids: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(weights [B, T'], pooled mask [B, T'])`` of the attention pooling: how much each max-pooled window
        (``pool_size`` tokens) counts in the sentence vector."""
        mask = self._mask(ids, lengths)
        _, weights, keep = self.head.features(self.encoder(ids, mask=mask), mask)
        return weights, keep


# --------------------------------------------------------------------------- save and load


def save_macaron(model: MacaronClassifier, folder: str | Path, extra: dict | None = None) -> Path:
    """Write ``model.pt`` (``state_dict``) and ``config.json`` (the :class:`MacaronConfig` and ``extra``, e.g. the
    tokenizer and label names) into ``folder``. The folder is filled beside the target and renamed into place, so
    a reader never sees half of it."""
    if not isinstance(model, MacaronClassifier):
        raise TypeError(f"save_macaron saves a MacaronClassifier, got {type(model).__name__}")
    payload = {
        "task": TASK,
        "format_version": FORMAT_VERSION,
        "model": model.config.to_dict(),
        "extra": dict(extra or {}),
    }
    text = json.dumps(payload, indent=2, ensure_ascii=False) + "\n"  # fails here, before anything is written
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    with atomic_folder(folder) as staging:
        (staging / "model.pt").write_bytes(buffer.getvalue())
        (staging / "config.json").write_text(text, encoding="utf-8")
    return Path(folder)


def load_macaron(folder: str | Path, device: str | torch.device = "cpu") -> tuple[MacaronClassifier, dict]:
    """Rebuild a model saved by :func:`save_macaron`: ``(model in eval mode, extra)``."""
    folder = Path(folder)
    if not (folder / "config.json").is_file() or not (folder / "model.pt").is_file():
        raise FileNotFoundError(
            f"{folder} is not a saved Macaron model: it needs config.json and model.pt "
            "(written by helpers.text.macaron.save_macaron)"
        )
    try:
        payload = read_model_config(folder, TASK, what="saved Macaron model")
    except ValueError as exc:  # not JSON, not an object, another task
        raise MacaronConfigError(str(exc)) from None
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise MacaronConfigError(
            f"{folder} was saved in format {payload['format_version']}; this code reads up to {FORMAT_VERSION}"
        )
    model = MacaronClassifier(MacaronConfig.from_dict(payload.get("model")))
    model.load_state_dict(read_weights(folder / "model.pt"))  # tensors only: a pickle that would run code is refused
    return model.to(device).eval(), payload.get("extra", {})


__all__ = [
    "MacaronConfigError",
    "MacaronConfig",
    "build_encoder",
    "layer_order",
    "lengths_to_mask",
    "AttentionPooling",
    "ConvAttentionHead",
    "MacaronClassifier",
    "count_parameters",
    "save_macaron",
    "load_macaron",
    "TASK",
]


def _scorer(folder: Path, config: dict, **_) -> Scorer:
    """Notebook 07's Macaron encoder as ``python -m helpers.cli.evaluate`` scores it: its weights, and the subword
    tokenizer named in its config.

    The tokenizer is read from ``folder/tokenizer/`` when the folder carries one, else from the path stored at
    save time (``extra["tokenizer"]``, relative to the repository), which notebook 04 writes. That path must stay
    inside the model folder or the repository's ``models/`` folder (no absolute path, no ``..``).
    """
    from transformers import AutoTokenizer  # transformers only when a Macaron folder is scored

    model, extra = load_macaron(folder)
    if not isinstance(extra, dict):
        raise ScorerError(f"{folder}/config.json: 'extra' must be a JSON object; save the model again")
    candidates = [folder / "tokenizer"]
    if extra.get("tokenizer"):
        rel = str(extra["tokenizer"]) if isinstance(extra["tokenizer"], str) else extra["tokenizer"]
        rel = rel.removeprefix("models/") if isinstance(rel, str) else rel  # saved relative to the repository
        candidates.append(confined_path(rel, [folder, REPO_ROOT / "models"], f"{folder}/config.json extra.tokenizer"))
    tokenizer_dir = next((c for c in candidates if (c / "tokenizer.json").is_file()), None)
    if tokenizer_dir is None:
        raise ScorerError(
            f"{folder}: its tokenizer is missing (looked in {', '.join(str(c) for c in candidates)}); "
            "run notebook 04 (or 07) to write it, or copy it into the model folder as tokenizer/"
        )
    tokenizer = load_pretrained(AutoTokenizer, tokenizer_dir, local_files_only=True)
    labels = [str(x) for x in extra.get("labels") or range(model.config.num_classes)]
    if len(labels) != model.config.num_classes:
        raise ScorerError(
            f"{folder}/config.json lists {len(labels)} labels for a {model.config.num_classes}-class model"
        )
    max_len = extra.get("max_len", 64)

    def predict_proba(texts: list[str]) -> np.ndarray:
        ids = tokenizer(list(texts), truncation=True, max_length=max_len, return_token_type_ids=False)["input_ids"]
        ids = [x if x else [tokenizer.unk_token_id] for x in ids]
        x, lengths = pad_batch(ids, tokenizer.pad_token_id)
        with torch.no_grad():
            return torch.softmax(model(x, lengths), dim=-1).numpy()

    return Scorer("text", labels, predict_proba, f"Macaron encoder + conv-attention head ({tokenizer_dir.name})")


register_model_kind(TASK, _scorer, modality="text")
