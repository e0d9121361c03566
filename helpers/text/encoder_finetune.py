"""A sentence classifier on a pretrained registry encoder (multilingual E5, MPNet, MiniLM), fine-tuned with the
course's one loop, :func:`helpers.core.training.fit`.

- :class:`EncoderClassifier`: the encoder (a transformers ``BertModel`` / ``XLMRobertaModel`` / ``MPNetModel``),
  **mean pooling over the real tokens** (padding never enters the pool), dropout and one linear layer. The word
  embeddings are frozen by default (:func:`freeze_word_embeddings`): for E5-small they are ~96M of the 117.5M
  parameters, and with them frozen a CPU step is several times cheaper (21.6M trainable) and the rows of words the
  training data never shows keep their pretrained values.
- Text in: the registry's prefix (``"query: "`` for E5) + the sentence, truncated to ``max_length`` tokens;
  batches are padded to their longest sentence (dynamic padding) and grouped by length (:func:`length_grouped_batches`,
  fixed by ``(seed, epoch)`` so DDP ranks and a resumed run see the same batches).
- :func:`finetune_encoder`: AdamW (encoder and head learning rates), linear warm-up and decay, gradient clipping,
  validation after every epoch, the best epoch's weights kept (the loop's defaults: lowest validation loss).
- :func:`save_encoder_classifier` / :func:`load_encoder_classifier`: a standard folder — the encoder's
  ``save_pretrained`` (``config.json`` + ``model.safetensors``), the tokenizer, the head in
  ``classifier_head.safetensors`` and the course's settings inside ``config.json`` (``"task":
  "text-classification-encoder"``, ``"course": {...}``). Loading goes through
  :mod:`helpers.core.model_folder` (config checked, ``auto_map`` refused, ``trust_remote_code`` never set,
  safetensors only), so nothing in a folder is ever executed.
- :func:`cached_embeddings`: frozen mean-pooled sentence embeddings (the "frozen features + logistic regression"
  baseline), cached as ``.npz`` (no pickle) under the course cache, keyed by the weights' checksum, the prefix,
  the maximum length and the texts.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import transformers
from safetensors.torch import load_file, save_file
from torch import nn

from helpers.core.data import cache_dir
from helpers.core.download import atomic_folder, atomic_write_bytes, file_checksum
from helpers.core.model_folder import ModelConfigError, check_label_list, load_pretrained, read_model_config
from helpers.core.model_kinds import Scorer, register_model_kind
from helpers.core.training import IndexBatches, eval_batches, fit
from helpers.pretrained import get_spec, load_encoder, resolve_model
from helpers.pretrained.load import embed_sentences

TASK = "text-classification-encoder"
HEAD_FILE = "classifier_head.safetensors"
POOLER_TYPES = ("bert", "roberta", "xlm-roberta", "mpnet")  # model types whose __init__ takes add_pooling_layer


# --------------------------------------------------------------------------- the model


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` ``[batch, tokens, dim]`` over the positions where ``attention_mask`` is 1."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class EncoderClassifier(nn.Module):
    """``logits = linear(dropout(mean_pool(encoder(input_ids, attention_mask))))``.

    ``forward(input_ids, attention_mask)`` returns logits ``[batch, num_labels]`` (the loop's tuple batches
    ``(input_ids, attention_mask, labels)`` call it so). An encoder's pooler layer is dropped (mean pooling is used).
    """

    def __init__(self, encoder: nn.Module, num_labels: int, dropout: float = 0.1):
        super().__init__()
        if not isinstance(num_labels, int) or num_labels < 2:
            raise ValueError(f"num_labels must be an int >= 2, got {num_labels!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        if getattr(encoder, "pooler", None) is not None:
            encoder.pooler = None
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, num_labels)
        self.num_labels = num_labels

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return mean_pool(hidden, attention_mask)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.embed(input_ids, attention_mask)))


def freeze_word_embeddings(model: nn.Module, frozen: bool = True) -> int:
    """Freeze (or unfreeze) the encoder's word-embedding table; returns the number of parameters left trainable."""
    encoder = model.encoder if isinstance(model, EncoderClassifier) else model
    encoder.get_input_embeddings().weight.requires_grad_(not frozen)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build_classifier(
    name: str,
    num_labels: int,
    *,
    path=None,
    num_layers: int | None = None,
    dropout: float = 0.1,
    freeze_embeddings: bool = True,
    seed: int = 42,
    verbose: bool = True,
):
    """``(EncoderClassifier, tokenizer, prefix, origin)`` for registry model ``name`` (e.g. ``"e5-small"``).

    ``num_layers`` keeps only the first layers (a cheaper model of the same class: quick profile, tests); the
    origin line says so. The head is initialised from ``seed``.
    """

    spec = get_spec(name)
    if spec.model_type == "whisper":
        raise ValueError(f"{name} is a speech encoder; the text classifier needs a text model (e.g. e5-small)")
    encoder, tokenizer = load_encoder(name, path, num_layers=num_layers, verbose=verbose)
    torch.manual_seed(seed)
    model = EncoderClassifier(encoder, num_labels, dropout)
    freeze_word_embeddings(model, freeze_embeddings)
    return model.train(), tokenizer, spec.prefix, str(getattr(encoder.config, "course_origin", name))


# --------------------------------------------------------------------------- text in, batches out


def encode(tokenizer, texts: Sequence[str], prefix: str = "", max_length: int = 64) -> list[list[int]]:
    """Token ids of ``prefix + text`` for every text, truncated to ``max_length`` (special tokens included)."""
    if not isinstance(max_length, int) or not 4 <= max_length <= 512:
        raise ValueError(f"max_length must be an int between 4 and 512, got {max_length!r}")
    return tokenizer(
        [prefix + str(t) for t in texts],
        truncation=True,
        max_length=max_length,
        return_attention_mask=False,
        return_token_type_ids=False,
    )["input_ids"]


def collate_ids(pad_id: int) -> Callable[[list], tuple]:
    """``collate(examples)`` for examples ``(ids, label)``: ``(input_ids, attention_mask, labels)`` padded to the
    longest example of the batch (dynamic padding)."""

    def collate(examples: list) -> tuple:
        ids, labels = zip(*examples)
        width = max(len(x) for x in ids)
        input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for row, x in enumerate(ids):
            input_ids[row, : len(x)] = torch.as_tensor(x, dtype=torch.long)
            mask[row, : len(x)] = 1
        return input_ids, mask, torch.as_tensor(labels, dtype=torch.long)

    return collate


def length_grouped_batches(
    lengths: Sequence[int], batch_size: int, seed: int, group: int = 50
) -> Callable[[int], list[list[int]]]:
    """``epoch_batches(epoch)``: shuffled batches of similar lengths (little padding), fixed by ``(seed, epoch)``.

    Each epoch shuffles the examples, sorts each run of ``group`` batches' worth by length, cuts it into batches
    and shuffles the batch order.
    """
    lengths = np.asarray(lengths)
    if len(lengths) < 1 or batch_size < 1:
        raise ValueError(f"need at least one example and batch_size >= 1, got {len(lengths)} and {batch_size}")

    def batches(epoch: int) -> list[list[int]]:
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(len(lengths))
        out = []
        span = batch_size * group
        for start in range(0, len(order), span):
            chunk = order[start : start + span]
            chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
            out += [chunk[i : i + batch_size].tolist() for i in range(0, len(chunk), batch_size)]
        return [out[i] for i in rng.permutation(len(out))]

    return batches


def make_optimizer(
    model: EncoderClassifier, lr: float = 5e-5, head_lr: float = 1e-3, weight_decay: float = 0.01
) -> torch.optim.AdamW:
    """AdamW over the trainable parameters: the encoder at ``lr``, the new head at ``head_lr``; no weight decay
    on biases and LayerNorm weights."""
    groups = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        rate = head_lr if name.startswith("head.") else lr
        decay = weight_decay if p.ndim > 1 else 0.0
        groups.setdefault((rate, decay), []).append(p)
    return torch.optim.AdamW([{"params": ps, "lr": r, "weight_decay": d} for (r, d), ps in groups.items()])


def linear_warmup(optimizer, total_steps: int, warmup: float = 0.06):
    """A linear warm-up over ``warmup`` of ``total_steps``, then linear decay to zero (stepped after every batch)."""
    warm = max(1, int(warmup * total_steps))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (total_steps - step) / max(1, total_steps - warm))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def finetune_encoder(
    model: EncoderClassifier,
    tokenizer,
    texts: Sequence[str],
    labels: Sequence[int],
    *,
    prefix: str = "",
    val: tuple[Sequence[str], Sequence[int]] | None = None,
    epochs: int = 3,
    batch_size: int = 32,
    lr: float = 5e-5,
    head_lr: float = 1e-3,
    weight_decay: float = 0.01,
    warmup: float = 0.06,
    max_length: int = 64,
    seed: int = 42,
    device=None,
    loss_fn: Callable | None = None,
    eval_batch_size: int = 128,
    progress: bool = True,
    **fit_kwargs,
):
    """Fine-tune ``model`` on ``(texts, labels)`` with :func:`helpers.core.training.fit` and return its History.

    ``val=(texts, labels)`` is scored after every epoch and the best epoch's weights (lowest validation loss) are
    kept. Other keywords go to ``fit`` (``checkpoint_dir``, ``resume``, ``precision``, ``on_epoch_end``, ``log``,
    ``patience``, ``ctx`` ...).
    """

    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    ctx = fit_kwargs.get("ctx")
    device = torch.device(device) if device is not None else (ctx.device if ctx is not None else torch.device("cpu"))
    collate = collate_ids(tokenizer.pad_token_id)
    train_set = list(zip(encode(tokenizer, texts, prefix, max_length), (int(y) for y in labels)))
    batches = length_grouped_batches([len(ids) for ids, _ in train_set], batch_size, seed)
    train_loader = IndexBatches(train_set, batches, collate, ctx)
    val_loader = None
    if val is not None:
        val_set = sorted(
            zip(encode(tokenizer, val[0], prefix, max_length), (int(y) for y in val[1])), key=lambda ex: len(ex[0])
        )  # order does not change the metrics; little padding
        val_loader = eval_batches(val_set, collate, eval_batch_size, ctx)
    optimizer = make_optimizer(model, lr, head_lr, weight_decay)
    scheduler = linear_warmup(optimizer, epochs * len(batches(0)), warmup)
    fit_kwargs.setdefault("clip_grad_norm", 1.0)
    fit_kwargs.setdefault("generators", ())
    return fit(
        model,
        train_loader,
        val_loader,
        optimizer,
        epochs,
        device,
        loss_fn=loss_fn,
        scheduler=scheduler,
        progress=progress,
        **fit_kwargs,
    )


@torch.no_grad()
def predict_proba(
    model: EncoderClassifier,
    tokenizer,
    texts: Sequence[str],
    *,
    prefix: str = "",
    max_length: int = 64,
    batch_size: int = 128,
    device=None,
) -> np.ndarray:
    """Softmax probabilities ``[len(texts), num_labels]`` in input order (batched by length)."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    ids = encode(tokenizer, texts, prefix, max_length)
    order = np.argsort([len(x) for x in ids], kind="stable")
    collate = collate_ids(tokenizer.pad_token_id)
    model.to(device).eval()
    out = np.zeros((len(ids), model.num_labels), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        input_ids, mask, _ = collate([(ids[i], 0) for i in idx])
        logits = model(input_ids.to(device), mask.to(device))
        out[idx] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
    return out


# --------------------------------------------------------------------------- the folder


def write_encoder_classifier(
    folder: str | Path,
    model: EncoderClassifier,
    tokenizer,
    *,
    labels: Sequence[str],
    prefix: str = "",
    max_length: int = 64,
    encoder_name: str = "",
    origin: str = "",
    extra: dict | None = None,
) -> None:
    """Write the classifier's files into the (empty, existing) ``folder``: the encoder (``save_pretrained``), the
    tokenizer, the head (``classifier_head.safetensors``) and the settings (``config.json``: ``task``, ``course``).
    :func:`save_encoder_classifier` calls it inside an atomic folder; the script loop calls it on its staging folder."""

    folder = Path(folder)
    labels = [str(x) for x in labels]
    check_label_list(labels, "labels")
    if len(labels) != model.num_labels:
        raise ValueError(f"{len(labels)} label names for a {model.num_labels}-class model")
    encoder = model.encoder
    config = encoder.config
    config.task = TASK
    config.course = {
        "encoder": encoder_name,
        "origin": origin,
        "prefix": prefix,
        "max_length": int(max_length),
        "pooling": "mean",
        "dropout": float(model.dropout.p),
        "num_labels": int(model.num_labels),
        "labels": labels,
        "head": HEAD_FILE,
        "trainable_word_embeddings": bool(encoder.get_input_embeddings().weight.requires_grad),
        **(extra or {}),
    }
    saved_labels = config.id2label, config.label2id
    config.id2label = {i: name for i, name in enumerate(labels)}
    config.label2id = {name: i for i, name in enumerate(labels)}
    try:
        encoder.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in model.head.state_dict().items()}, str(folder / HEAD_FILE)
        )
    finally:
        del config.task, config.course
        config.id2label, config.label2id = saved_labels
    for path in folder.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


def save_encoder_classifier(folder: str | Path, model: EncoderClassifier, tokenizer, **settings) -> Path:
    """Save the classifier as a folder, atomically (readers see the old folder or the whole new one); the
    keywords are those of :func:`write_encoder_classifier`. An existing ``folder`` is replaced only when it is a
    saved encoder classifier itself: nothing else a user owns is overwritten."""

    folder = Path(folder)
    if folder.exists():
        try:
            read_model_config(folder, TASK)
        except (FileNotFoundError, ValueError):
            raise FileExistsError(
                f"{folder} exists and is not a saved encoder classifier; choose another folder"
            ) from None
    with atomic_folder(folder) as staging:
        write_encoder_classifier(staging, model, tokenizer, **settings)
    return folder


def load_encoder_classifier(folder: str | Path, device=None):
    """``(EncoderClassifier in eval mode, tokenizer, course settings)`` from a folder
    :func:`save_encoder_classifier` wrote.

    Raises ``FileNotFoundError`` / :class:`helpers.core.model_folder.ModelConfigError` (a ``ValueError``) with one
    clear line for a missing, foreign or damaged folder; nothing in the folder is executed.
    """

    folder = Path(folder)
    config = read_model_config(folder, TASK, "encoder classifier folder (python -m helpers.cli.train_text finetune)")
    course = config.get("course") or {}
    labels = course.get("labels")
    if not isinstance(labels, list) or len(labels) < 2 or course.get("num_labels") != len(labels):
        raise ModelConfigError(
            f"{folder}/config.json: course.labels must list num_labels (>= 2) names; save the model again"
        )
    max_length = course.get("max_length", 64)
    if not isinstance(max_length, int) or not 4 <= max_length <= 512:
        raise ModelConfigError(f"{folder}/config.json: course.max_length must be an int in 4..512, got {max_length!r}")
    if not isinstance(course.get("prefix", ""), str):
        raise ModelConfigError(f"{folder}/config.json: course.prefix must be text")
    for name in ("model.safetensors", HEAD_FILE):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder} lacks {name}: the save was interrupted or the folder is incomplete")
    kwargs = {"add_pooling_layer": False} if config.get("model_type") in POOLER_TYPES else {}
    encoder = load_pretrained(
        transformers.AutoModel, folder, local_files_only=True, use_safetensors=True, dtype=torch.float32, **kwargs
    )
    tokenizer = load_pretrained(transformers.AutoTokenizer, folder, local_files_only=True)
    model = EncoderClassifier(encoder, len(labels), float(course.get("dropout", 0.1)))
    head = load_file(str(folder / HEAD_FILE))
    if set(head) != {"weight", "bias"} or tuple(head["weight"].shape) != tuple(model.head.weight.shape):
        raise ModelConfigError(
            f"{folder}/{HEAD_FILE} does not fit a {len(labels)}-class head on a "
            f"{encoder.config.hidden_size}-wide encoder; save the model again"
        )
    model.head.load_state_dict(head)
    if device is not None:
        model.to(device)
    return model.eval(), tokenizer, course


def _scorer(folder: Path, config: dict, batch_size: int = 64, **_) -> Scorer:
    """A fine-tuned encoder folder (``train_text finetune``, notebook 06's E5) as ``python -m helpers.cli.evaluate``
    scores it: prefix and length from its config (registered at the end of this module)."""
    model, tokenizer, course = load_encoder_classifier(folder)
    prefix, max_length = course.get("prefix", ""), course.get("max_length", 64)

    def predict(texts: Sequence[str]) -> np.ndarray:
        return predict_proba(model, tokenizer, list(texts), prefix=prefix, max_length=max_length, batch_size=batch_size)

    what = f"{course.get('encoder') or model.encoder.config.model_type} encoder + mean pooling + linear head"
    return Scorer("text", [str(x) for x in course["labels"]], predict, what)


# --------------------------------------------------------------------------- frozen embeddings, cached


def _weights_checksum(folder: Path) -> str:
    """The SHA-256 of the folder's weights, from its verified build manifest when it has one (no re-hashing)."""

    manifest = folder / "course_manifest.json"
    weights = folder / "model.safetensors"
    try:
        entry = json.loads(manifest.read_text(encoding="utf-8"))["files"]["model.safetensors"]
        if weights.stat().st_size == entry["size"]:
            return str(entry["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return file_checksum(weights)


def embeddings_cache_path(
    name: str, texts: Sequence[str], *, max_length: int, prefix: str, folder=None, num_layers: int | None = None
) -> Path:
    """Where :func:`cached_embeddings` keeps the embeddings of ``texts``: ``<cache>/embeddings/<name>-<key>.npz``,
    the key covering the weights' checksum, the prefix, the maximum length, the layers kept and every text."""

    folder = Path(folder) if folder is not None else resolve_model(name)
    digest = hashlib.sha256()
    key = {
        "weights": _weights_checksum(folder),
        "prefix": prefix,
        "max_length": max_length,
        "pooling": "mean",
        "normalize": True,
        "n": len(texts),
    }
    if num_layers is not None:
        key["num_layers"] = num_layers
    digest.update(json.dumps(key).encode())
    for text in texts:
        digest.update(str(text).encode("utf-8") + b"\0")
    return cache_dir() / "embeddings" / f"{name}-{digest.hexdigest()[:20]}.npz"


def cached_embeddings(
    name: str,
    texts: Sequence[str],
    *,
    max_length: int = 64,
    prefix: str | None = None,
    batch_size: int = 64,
    path=None,
    num_layers: int | None = None,
    device=None,
    verbose: bool = True,
) -> np.ndarray:
    """L2-normalised mean-pooled embeddings ``[len(texts), hidden]`` of registry model ``name`` (frozen), from the
    cache when the same weights, prefix, length, layers (``num_layers``: the first N only, as in
    :func:`helpers.pretrained.load_encoder`) and texts were embedded before; else computed and cached."""

    prefix = get_spec(name).prefix if prefix is None else prefix
    folder = resolve_model(name, path)
    target = embeddings_cache_path(
        name, texts, max_length=max_length, prefix=prefix, folder=folder, num_layers=num_layers
    )
    if target.is_file():
        try:
            with np.load(target, allow_pickle=False) as saved:
                emb = saved["embeddings"]
            if emb.shape[0] == len(texts) and emb.dtype == np.float32 and np.isfinite(emb).all():
                if verbose:
                    print(f"{name}: {len(texts):,} embeddings from the cache ({target.name})")
                return emb
        except (OSError, ValueError, KeyError):
            pass
        if verbose:
            print(f"{name}: the cached embeddings in {target} are unreadable; computing them again")
    model, tokenizer = load_encoder(name, folder, num_layers=num_layers, verbose=verbose)
    if device is not None:  # embed_sentences moves the batches to `device`, not the model
        model.to(device)
    emb = embed_sentences(
        model, tokenizer, list(texts), prefix=prefix, max_length=max_length, batch_size=batch_size, device=device
    )
    buffer = io.BytesIO()
    np.savez(buffer, embeddings=emb.astype(np.float32))
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(target, buffer.getvalue())
    return emb


__all__ = [
    "TASK",
    "HEAD_FILE",
    "EncoderClassifier",
    "mean_pool",
    "freeze_word_embeddings",
    "build_classifier",
    "encode",
    "collate_ids",
    "length_grouped_batches",
    "make_optimizer",
    "linear_warmup",
    "finetune_encoder",
    "predict_proba",
    "write_encoder_classifier",
    "save_encoder_classifier",
    "load_encoder_classifier",
    "embeddings_cache_path",
    "cached_embeddings",
]


register_model_kind(TASK, _scorer, modality="text")
