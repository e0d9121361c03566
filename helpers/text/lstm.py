"""Recurrent text classifiers and a one-folder save format (weights + vocabulary + config) for them.

- :class:`LSTMClassifier` — embedding -> LSTM/GRU -> pooled state -> dropout -> linear, called as
  ``model(ids, lengths)``. ``packed=False, pooling="last"`` is the classic (and flawed) recipe: the final state
  of a right-padded batch, which has run over the pad tokens. ``packed=True`` stops each sequence at its last
  real token (``pack_padded_sequence``).
- :func:`save_text_classifier` / :func:`load_text_classifier` — one folder with ``config.json``, ``vocab.json``
  and ``model.pt`` (a ``state_dict`` read back with ``torch.load(weights_only=True)``).
- :class:`TextClassifier` — model + vocabulary + tokeniser: ``predict(texts)`` gives labels and probabilities.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from helpers.core.download import atomic_write_bytes
from helpers.core.model_folder import read_model_config, read_weights
from helpers.core.model_kinds import Scorer, register_model_kind
from helpers.text.pipeline import TOKENIZERS, Vocab, encode_texts, get_tokenizer, pad_batch

TASK = "text-classification-lstm"
FORMAT_VERSION = 1


class LSTMClassifier(nn.Module):
    """Embedding, a (bi)directional LSTM or GRU, a pooled sequence summary, dropout and a linear layer.

    - ``packed``: run the RNN on a packed batch so each sequence stops at its last real token; otherwise the
      RNN also reads the right padding (the reference notebook's set-up).
    - ``pooling``: ``"last"`` final hidden state of the last layer (both directions concatenated when
      bidirectional), ``"mean"`` / ``"max"`` over the outputs at the real (non-pad) positions.
    - ``dropout`` is applied to the pooled vector before the classifier (the reference's dropout on
      ``hidden[-1]``); ``rnn_dropout`` between stacked layers; ``embed_dropout`` on the embeddings.
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        embed_dim: int = 128,
        hidden_dim: int = 128,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.3,
        pad_id: int = 0,
        packed: bool = True,
        cell: str = "lstm",
        pooling: str = "last",
        rnn_dropout: float = 0.0,
        embed_dropout: float = 0.0,
    ):
        super().__init__()
        if cell not in ("lstm", "gru"):
            raise ValueError(f"cell must be 'lstm' or 'gru', not {cell!r}")
        if pooling not in ("last", "mean", "max"):
            raise ValueError(f"pooling must be 'last', 'mean' or 'max', not {pooling!r}")
        if vocab_size < 1 or num_classes < 2 or num_layers < 1:
            raise ValueError(
                f"need vocab_size >= 1, num_classes >= 2 and num_layers >= 1; got "
                f"{vocab_size}, {num_classes}, {num_layers}"
            )
        if not 0 <= pad_id < vocab_size:
            raise ValueError(f"pad_id {pad_id} is outside the vocabulary (size {vocab_size})")
        self.config = dict(
            vocab_size=vocab_size,
            num_classes=num_classes,
            embed_dim=embed_dim,
            hidden_dim=hidden_dim,
            num_layers=num_layers,
            bidirectional=bidirectional,
            dropout=dropout,
            pad_id=pad_id,
            packed=packed,
            cell=cell,
            pooling=pooling,
            rnn_dropout=rnn_dropout,
            embed_dropout=embed_dropout,
        )
        self.packed, self.pooling, self.cell, self.pad_id = packed, pooling, cell, pad_id
        self.bidirectional, self.num_layers = bidirectional, num_layers
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.embed_dropout = nn.Dropout(embed_dropout)
        rnn_cls = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn_cls(
            embed_dim,
            hidden_dim,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=rnn_dropout if num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout)
        self.out_dim = hidden_dim * (2 if bidirectional else 1)
        self.fc = nn.Linear(self.out_dim, num_classes)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``[B, num_classes]`` for right-padded ``ids [B, T]`` with real ``lengths [B]``."""
        if ids.dim() != 2:
            raise ValueError(f"ids must be [batch, time], got shape {tuple(ids.shape)}")
        if lengths is None:
            lengths = (ids != self.pad_id).sum(dim=1).clamp(min=1)
        lengths_cpu = lengths.detach().to("cpu", torch.long)
        if int(lengths_cpu.min()) < 1 or int(lengths_cpu.max()) > ids.shape[1]:
            raise ValueError(
                f"lengths must lie in 1..{ids.shape[1]}, got {lengths_cpu.min().item()}..{lengths_cpu.max().item()}"
            )
        x = self.embed_dropout(self.embedding(ids))
        if self.packed:
            packed_out, state = self.rnn(pack_padded_sequence(x, lengths_cpu, batch_first=True, enforce_sorted=False))
            out = (
                None
                if self.pooling == "last"
                else pad_packed_sequence(packed_out, batch_first=True, total_length=ids.shape[1])[0]
            )
        else:
            out, state = self.rnn(x)
        if self.pooling == "last":
            h_n = state[0] if self.cell == "lstm" else state  # [layers * directions, B, H]
            features = torch.cat([h_n[-2], h_n[-1]], dim=1) if self.bidirectional else h_n[-1]
        else:
            mask = (torch.arange(ids.shape[1], device=ids.device)[None, :] < lengths.to(ids.device)[:, None]).unsqueeze(
                -1
            )
            if self.pooling == "mean":
                features = (out * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
            else:
                features = out.masked_fill(~mask, float("-inf")).max(dim=1).values
        return self.fc(self.dropout(features))


# --------------------------------------------------------------------------- prediction wrapper


class TextClassifier:
    """A trained model with its vocabulary and tokeniser: raw texts in, labels and probabilities out."""

    def __init__(
        self,
        model: nn.Module,
        vocab: Vocab,
        tokenizer: str | Callable[[str], list[str]],
        label_names: Sequence[str],
        max_len: int | None = 256,
        device: str | torch.device = "cpu",
        config: dict | None = None,
    ):
        self.model, self.vocab, self.label_names = model, vocab, list(label_names)
        self.tokenizer_name = tokenizer if isinstance(tokenizer, str) else getattr(tokenizer, "__name__", "custom")
        self.tokenize = get_tokenizer(tokenizer) if isinstance(tokenizer, str) else tokenizer
        self.max_len, self.device, self.config = max_len, torch.device(device), dict(config or {})
        num_classes = getattr(model, "config", {}).get("num_classes", len(self.label_names))
        if num_classes != len(self.label_names):
            raise ValueError(f"the model has {num_classes} classes but {len(self.label_names)} label names were given")

    @staticmethod
    def _as_list(texts: Sequence[str] | str) -> list[str]:
        if isinstance(texts, str):
            return [texts]
        if isinstance(texts, (bytes, bytearray)):
            raise TypeError("predict got bytes; decode them first, e.g. data.decode('utf-8')")
        if texts is None or not hasattr(texts, "__iter__"):
            raise TypeError(f"predict expects a str or a list of str, got {type(texts).__name__}")
        texts = list(texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"predict expects str texts; item {i} is {type(text).__name__} ({text!r})")
        return texts

    @torch.no_grad()
    def predict_proba(self, texts: Sequence[str] | str, batch_size: int = 256) -> np.ndarray:
        """Class probabilities ``[len(texts), num_classes]``; texts longer than ``max_len`` tokens are cut."""
        texts = self._as_list(texts)
        if not texts:
            return np.zeros((0, len(self.label_names)), dtype=np.float32)
        ids = encode_texts(texts, self.tokenize, self.vocab, self.max_len)
        self.model.to(self.device).eval()
        probs = []
        for start in range(0, len(ids), batch_size):
            padded, lengths = pad_batch(ids[start : start + batch_size], self.vocab.pad_id)
            logits = self.model(padded.to(self.device), lengths.to(self.device))
            probs.append(torch.softmax(logits.float(), dim=-1).cpu())
        return torch.cat(probs).numpy()

    def predict(self, texts: Sequence[str] | str, batch_size: int = 256) -> list[dict]:
        """``[{"label": name, "probs": {name: p, ...}}, ...]``, one dict per text (a str gives a list of one)."""
        probs = self.predict_proba(texts, batch_size)
        return [
            {
                "label": self.label_names[int(row.argmax())],
                "probs": {name: float(p) for name, p in zip(self.label_names, row)},
            }
            for row in probs
        ]

    __call__ = predict

    def save(self, folder: str | Path, config: dict | None = None) -> Path:
        """Save to ``folder`` with :func:`save_text_classifier`."""
        extra = {**self.config, "max_len": self.max_len, **(config or {})}
        return save_text_classifier(folder, self.model, self.vocab, extra, self.label_names, self.tokenizer_name)


# --------------------------------------------------------------------------- saving and loading


def _is_registered(name: object) -> bool:
    """True when ``name`` names a tokeniser (``ko-*`` names import :mod:`helpers.text.korean`, which registers them)."""
    if not isinstance(name, str):
        return False
    try:
        get_tokenizer(name)
    except KeyError:
        return False
    return True


def save_text_classifier(
    folder: str | Path,
    model: LSTMClassifier,
    vocab: Vocab,
    config: dict | None,
    label_names: Sequence[str],
    tokenizer: str,
) -> Path:
    """Write ``config.json``, ``vocab.json`` and ``model.pt`` into ``folder`` (each file atomically).

    ``config`` holds anything worth keeping beside the architecture (``max_len`` is used by ``predict``;
    training settings are stored for the record). The architecture is taken from ``model.config``; keys of
    ``config`` that name an architecture setting must agree with it. ``config.json`` is written last, so a
    folder that has it is complete.
    """
    if not isinstance(model, LSTMClassifier):
        raise TypeError(f"save_text_classifier saves an LSTMClassifier, got {type(model).__name__}")
    if not _is_registered(tokenizer):
        raise ValueError(
            f"tokenizer must be the name of a registered tokeniser ({sorted(TOKENIZERS)}), got {tokenizer!r}"
        )
    config = dict(config or {})
    clashes = {k: (v, model.config[k]) for k, v in config.items() if k in model.config and model.config[k] != v}
    if clashes:
        raise ValueError(f"config disagrees with the model's architecture (given, actual): {clashes}")
    if len(vocab) != model.config["vocab_size"]:
        raise ValueError(
            f"the vocabulary has {len(vocab)} tokens but the model's embedding has {model.config['vocab_size']}"
        )
    if len(label_names) != model.config["num_classes"]:
        raise ValueError(f"{len(label_names)} label names for a model with {model.config['num_classes']} classes")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    atomic_write_bytes(folder / "model.pt", buffer.getvalue())
    vocab.save(folder / "vocab.json")
    extra = {k: v for k, v in config.items() if k not in model.config}
    payload = {
        "task": TASK,
        "format_version": FORMAT_VERSION,
        "architecture": "LSTMClassifier",
        "model": model.config,
        "label_names": list(label_names),
        "tokenizer": tokenizer,
        "max_len": extra.pop("max_len", None),
        "extra": extra,
    }
    atomic_write_bytes(
        folder / "config.json", (json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n").encode("utf-8")
    )
    return folder


def load_text_classifier(folder: str | Path, device: str | torch.device = "cpu") -> TextClassifier:
    """Load a folder written by :func:`save_text_classifier` into a ready-to-use :class:`TextClassifier`."""
    folder = Path(folder)
    config = read_model_config(folder, TASK, what="saved text classifier")
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(
            f"{folder} was saved with format version {config['format_version']}; this code reads up to {FORMAT_VERSION}"
        )
    for name in ("model.pt", "vocab.json"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder} lacks {name}; the save is incomplete")
    if not _is_registered(config.get("tokenizer")):
        raise KeyError(
            f"the model was trained with tokeniser {config.get('tokenizer')!r}, which is not registered here; "
            "call helpers.text.pipeline.register_tokenizer(name, fn) before loading"
        )
    vocab = Vocab.load(folder / "vocab.json")
    model = LSTMClassifier(**config["model"])
    model.load_state_dict(read_weights(folder / "model.pt"))  # tensors only: a pickle that would run code is refused
    model.eval()
    return TextClassifier(
        model.to(device),
        vocab,
        config["tokenizer"],
        config["label_names"],
        max_len=config.get("max_len"),
        device=device,
        config=config.get("extra", {}),
    )


__all__ = ["LSTMClassifier", "TextClassifier", "save_text_classifier", "load_text_classifier", "TASK"]


def _scorer(folder: Path, config: dict, **_) -> Scorer:
    """A saved LSTM folder as ``python -m helpers.cli.evaluate`` scores it."""
    clf = load_text_classifier(folder)
    return Scorer("text", clf.label_names, clf.predict_proba, f"LSTM classifier ({config.get('tokenizer')})")


register_model_kind(TASK, _scorer, modality="text")
