"""Korean 7-emotion classification (notebook 06): fixed held-out test, stratified k-fold, class-imbalance losses,
the two-stage (neutral first) scheme, a small MLM-pretrained RoBERTa and a TF-IDF baseline, all behind one
:func:`run_fold` that the notebook and ``python -m helpers.cli.train_text`` share. (Rater-weighted soft labels live
in :mod:`helpers.text.soft_labels`.)

- Splits: :func:`holdout_split` keeps 10 % of the sentences (stratified, seed-fixed; the same test split that
  notebook 04's tokenizer never saw) out of everything; :func:`kfold_indices` / :func:`fold_frames` cut the rest
  into stratified folds.
- Losses for imbalance: :func:`class_weights` (for a weighted cross-entropy), :class:`FocalLoss`.
- Two stages: :func:`combine_two_stage` turns P(neutral) and P(emotion | not neutral) into 7-way probabilities.
- Models: :func:`small_roberta_config`, :func:`pretrain_mlm`, :func:`make_classifier`, :func:`finetune`,
  :func:`predict_proba`, :func:`tfidf_logreg`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from helpers.core.data import KO_EMOTION_LABELS, load_ko_single_turn_emotion, load_nsmc, stratified_split, subsample
from helpers.core.env import REPO_ROOT
from helpers.core.losses import FocalLoss, class_weights, make_loss  # re-exported: notebook 06 uses ke.*
from helpers.core.metrics import fold_metrics as _fold_metrics
from helpers.core.model_folder import load_pretrained
from helpers.core.parameters import weight_decay_groups
from helpers.core.training import fit
from helpers.text.baselines import fit_quietly, logreg, tfidf_logreg, tfidf_vectorizer  # noqa: F401  (re-exported)
from helpers.text.hf_finetune import TokenizedTexts, hub_status, make_dataloader
from helpers.text.pipeline import BucketBatchSampler
from helpers.text.subword import korean_subword_tokenizer

NUM_CLASSES = len(KO_EMOTION_LABELS)
NEUTRAL_ID = KO_EMOTION_LABELS.index("중립")  # 4
REST_IDS = tuple(i for i in range(NUM_CLASSES) if i != NEUTRAL_ID)  # 7-way ids of the six non-neutral emotions
TEST_SIZE = 0.1
MLM_DIR = REPO_ROOT / "models" / "ko-roberta-mlm"
HUB_MODEL = "klue/roberta-base"

# --------------------------------------------------------------------------- splits


def holdout_split(
    frame: pd.DataFrame, seed: int = 42, test_size: float = TEST_SIZE
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(pool, test)``: a stratified, seed-fixed held-out test split and the rest (the pool for k-fold).

    It is the first cut of :func:`helpers.core.data.stratified_split` (stratified on the Korean ``label``), so with
    the default seed the test sentences are exactly those notebook 04's tokenizer was not trained on.
    """
    split = stratified_split(frame, "label", test_size=test_size, val_size=0, seed=seed)
    return split["train"], split["test"]


def kfold_indices(labels: Sequence[int], n_folds: int = 5, seed: int = 42) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train_index, val_index)`` of a stratified, shuffled, seed-fixed k-fold over ``labels``."""
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(labels)
    if not isinstance(n_folds, int) or n_folds < 2:
        raise ValueError(f"n_folds must be an int >= 2, got {n_folds!r}")
    folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return [(np.sort(tr), np.sort(va)) for tr, va in folds.split(np.zeros(len(labels)), labels)]


def fold_frames(
    frame: pd.DataFrame, fold: int, n_folds: int = 5, seed: int = 42, limit: int | None = None
) -> dict[str, pd.DataFrame]:
    """``{"train", "validation", "test"}`` for one fold: the held-out test split and fold ``fold`` of the pool.

    ``limit`` (smoke tests, the quick profile) keeps a stratified subset of ``limit`` training rows and about a
    third as many validation and test rows; the rows still come from the same fold and test split.
    """
    if not 0 <= fold < n_folds:
        raise ValueError(f"fold must be in 0..{n_folds - 1}, got {fold}")
    pool, test = holdout_split(frame, seed)
    train_idx, val_idx = kfold_indices(pool["label_id"], n_folds, seed)[fold]
    parts = {"train": pool.iloc[train_idx], "validation": pool.iloc[val_idx], "test": test}
    if limit is not None:
        small = max(limit // 3, NUM_CLASSES * 2)
        parts = {k: subsample(v, limit if k == "train" else small, "label_id", seed) for k, v in parts.items()}
    return {k: v.reset_index(drop=True) for k, v in parts.items()}


# --------------------------------------------------------------------------- two stages


def combine_two_stage(
    p_neutral: Sequence[float], p_rest: np.ndarray, threshold: float = 0.5, neutral_id: int = NEUTRAL_ID
) -> tuple[np.ndarray, np.ndarray]:
    """7-way ``(probabilities, predictions)`` from stage 1 (P(neutral)) and stage 2 (P(emotion | not neutral)).

    ``probs[:, neutral] = p_neutral`` and ``probs[:, e] = (1 - p_neutral) · p_rest[:, e]`` for the six other
    emotions (in the order of the 7-way ids, neutral left out), so each row sums to 1. The prediction is decided
    by stage 1: neutral when ``p_neutral >= threshold``, otherwise stage 2's most probable emotion.
    """
    p_neutral = np.asarray(p_neutral, dtype=float).reshape(-1)
    p_rest = np.asarray(p_rest, dtype=float)
    k = p_rest.shape[1] + 1 if p_rest.ndim == 2 else 0
    if p_rest.ndim != 2 or len(p_rest) != len(p_neutral):
        raise ValueError(f"p_rest must be [n, k-1] with n = {len(p_neutral)}, got shape {p_rest.shape}")
    if ((p_neutral < 0) | (p_neutral > 1)).any():
        raise ValueError("p_neutral must hold probabilities in [0, 1]")
    rest_ids = np.array([i for i in range(k) if i != neutral_id])
    probs = np.zeros((len(p_neutral), k))
    probs[:, neutral_id] = p_neutral
    probs[:, rest_ids] = (1 - p_neutral)[:, None] * p_rest
    preds = np.where(p_neutral >= threshold, neutral_id, rest_ids[p_rest.argmax(axis=1)])
    return probs, preds


def to_rest_ids(labels: Sequence[int], neutral_id: int = NEUTRAL_ID) -> np.ndarray:
    """7-way ids of non-neutral labels → 0..5 (stage 2's classes); neutral labels are an error."""
    labels = np.asarray(labels, dtype=int)
    if (labels == neutral_id).any():
        raise ValueError("stage 2 sees only non-neutral labels")
    return labels - (labels > neutral_id)


# --------------------------------------------------------------------------- metrics


def fold_metrics(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int = NUM_CLASSES) -> dict[str, float]:
    """:func:`helpers.core.metrics.fold_metrics` for this task's 7 classes (the keys of
    :data:`helpers.core.metrics.FOLD_METRICS`)."""
    return _fold_metrics(y_true, y_pred, num_classes)


_FEATURES: dict[tuple, tuple] = {}  # TF-IDF matrices of recent folds: (key) -> (train, validation, test)


def _fold_features(key: tuple, parts: dict[str, pd.DataFrame]):
    """TF-IDF features of one fold, fitted on its training texts; computed once and reused by the configurations
    that share the fold (the vectorizer never sees a label, so the stages and losses can share it)."""
    if key not in _FEATURES:
        vec = tfidf_vectorizer()
        _FEATURES[key] = (
            vec.fit_transform(parts["train"]["text"]),
            vec.transform(parts["validation"]["text"]),
            vec.transform(parts["test"]["text"]),
        )
        while len(_FEATURES) > 6:
            _FEATURES.pop(next(iter(_FEATURES)))
    return _FEATURES[key]


# --------------------------------------------------------------------------- small RoBERTa


def small_roberta_config(
    tokenizer,
    hidden: int = 256,
    layers: int = 4,
    heads: int = 4,
    intermediate: int | None = None,
    max_length: int = 64,
    num_labels: int = 2,
    dropout: float = 0.1,
):
    """A ``RobertaConfig`` sized for CPU pretraining, matched to ``tokenizer`` (vocabulary and special tokens).

    RoBERTa numbers positions from ``pad_token_id + 1``, so ``max_position_embeddings`` is ``max_length + 2``.
    """
    from transformers import RobertaConfig

    if hidden % heads:
        raise ValueError(f"hidden={hidden} must be divisible by heads={heads}")
    return RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate or 4 * hidden,
        max_position_embeddings=max_length + 2,
        type_vocab_size=1,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        num_labels=num_labels,
    )


def mlm_texts(pool_texts: Sequence[str], nsmc_texts: int | None = None, seed: int = 42) -> list[str]:
    """Pretraining text: the pool's sentences (never the test split) plus ``nsmc_texts`` NSMC *train* reviews,
    shuffled."""
    texts = [t for t in pool_texts if isinstance(t, str) and t.strip()]
    if nsmc_texts:
        nsmc = [t for t in load_nsmc()["train"]["text"] if t.strip()]
        rng = np.random.default_rng(seed)
        texts += [nsmc[i] for i in sorted(rng.choice(len(nsmc), min(nsmc_texts, len(nsmc)), replace=False))]
    order = np.random.default_rng(seed).permutation(len(texts))
    return [texts[i] for i in order]


def mlm_loss(model, batch: dict) -> tuple[torch.Tensor, int]:
    """``(mean loss over the masked tokens, their number)``. For a RoBERTa/BERT MLM the vocabulary projection runs
    on the masked positions only (15 % of the tokens): the same loss as ``model(**batch).loss``, a third cheaper."""
    labels = batch["labels"]
    where = labels != -100
    n = int(where.sum())
    head = getattr(model, "lm_head", None) or getattr(model, "cls", None)
    if head is None:
        return model(**batch).loss, n
    hidden = model.base_model(
        input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask")
    ).last_hidden_state
    return F.cross_entropy(head(hidden[where]).float(), labels[where]), n


def encode_ids(tokenizer, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids of ``texts``, truncated to ``max_length`` (no padding: batches are padded when they are built)."""
    return tokenizer(list(texts), truncation=True, max_length=max_length, return_token_type_ids=False)["input_ids"]


@torch.no_grad()
def mlm_eval_loss(
    model,
    tokenizer,
    texts: Sequence[str],
    max_length: int = 64,
    batch_size: int = 128,
    seed: int = 0,
    mlm_probability: float = 0.15,
) -> float:
    """Masked-LM loss on ``texts`` with a fixed masking (same ``seed``, same masks), for before/after comparisons."""
    from transformers import DataCollatorForLanguageModeling

    collate = DataCollatorForLanguageModeling(tokenizer, mlm_probability=mlm_probability)
    ids = encode_ids(tokenizer, texts, max_length)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for start in range(0, len(ids), batch_size):
            batch = collate([{"input_ids": x} for x in ids[start : start + batch_size]])
            loss, n = mlm_loss(model, {k: v.to(device) for k, v in batch.items()})
            if n:
                total, count = total + loss.item() * n, count + n
    model.train(was_training)
    return total / max(count, 1)


def pretrain_mlm(
    model,
    tokenizer,
    texts: Sequence[str],
    steps: int,
    batch_size: int = 64,
    lr: float = 5e-4,
    max_length: int = 64,
    warmup: float = 0.06,
    weight_decay: float = 0.01,
    mlm_probability: float = 0.15,
    seed: int = 42,
    device: torch.device | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Masked-language-model pretraining of ``model`` (a ``RobertaForMaskedLM``) for ``steps`` batches.

    Texts are tokenised once and batched by length (little padding); ``DataCollatorForLanguageModeling`` masks
    15 % of the tokens afresh in every batch (80 % ``[MASK]``, 10 % random, 10 % kept). AdamW with linear warm-up
    and decay. Returns one row per step: ``step``, ``loss``, ``seconds`` (since the start).
    """
    from tqdm.auto import tqdm
    from transformers import DataCollatorForLanguageModeling, get_linear_schedule_with_warmup

    device = device or torch.device("cpu")
    model.to(device).train()
    ids = encode_ids(tokenizer, texts, max_length)
    sampler = BucketBatchSampler([len(x) for x in ids], batch_size, shuffle=True, seed=seed)
    collate = DataCollatorForLanguageModeling(tokenizer, mlm_probability=mlm_probability)
    optimizer = torch.optim.AdamW(weight_decay_groups(model, weight_decay), lr=lr)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(warmup * steps), steps)
    rows, start, step = [], time.perf_counter(), 0
    bar = tqdm(total=steps, desc="MLM pretraining", disable=not progress)
    torch.manual_seed(seed)
    while step < steps:
        for batch_idx in sampler:
            batch = collate([{"input_ids": ids[i]} for i in batch_idx])
            loss, _ = mlm_loss(model, {k: v.to(device) for k, v in batch.items()})
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            step += 1
            rows.append((step, loss.item(), time.perf_counter() - start))
            bar.update(1)
            if step % 10 == 0:
                bar.set_postfix(loss=f"{np.mean([r[1] for r in rows[-10:]]):.3f}")
            if step >= steps:
                break
    bar.close()
    model.eval()
    return pd.DataFrame(rows, columns=["step", "loss", "seconds"])


def quiet_transformers() -> None:
    """Silence transformers' expected chatter: "some weights were newly initialised" (true for every new head) and
    the progress bars of loading and saving weights."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def make_classifier(
    init: str, num_labels: int, tokenizer=None, arch: dict | None = None, seed: int = 42, max_length: int = 64
):
    """``(model, tokenizer)``: a ``…ForSequenceClassification`` with a fresh ``num_labels``-way head.

    ``init``: ``"random"`` (a :func:`small_roberta_config` model with random weights; needs ``tokenizer``,
    ``arch`` sets its size), a folder written by ``save_pretrained`` (e.g. the MLM-pretrained model in
    ``models/ko-roberta-mlm``, whose tokenizer is saved beside it), or a model hub name such as
    ``"klue/roberta-base"`` (downloaded, or read from the local cache). The head is seeded with ``seed``.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, RobertaForSequenceClassification

    quiet_transformers()
    torch.manual_seed(seed)
    if init == "random":
        if tokenizer is None:
            raise ValueError("init='random' needs the tokenizer")
        config = small_roberta_config(tokenizer, max_length=max_length, num_labels=num_labels, **(arch or {}))
        return RobertaForSequenceClassification(config), tokenizer
    folder = Path(init).expanduser()
    if folder.is_dir():
        tok = load_pretrained(AutoTokenizer, folder) if (folder / "tokenizer.json").exists() else tokenizer
        if tok is None:
            raise ValueError(f"{folder} has no tokenizer; pass tokenizer=")
        model = load_pretrained(
            AutoModelForSequenceClassification, folder, num_labels=num_labels, local_files_only=True
        )
        return model, tok
    try:  # the local Hugging Face cache first, then the hub
        tok = load_pretrained(AutoTokenizer, init, local_files_only=True)
        model = load_pretrained(AutoModelForSequenceClassification, init, num_labels=num_labels, local_files_only=True)
        return model, tok
    except OSError:
        pass
    reachable, why = hub_status()
    if not reachable:
        raise OSError(f"cannot load {init!r}: it is not in the local cache and {why}")
    tok = load_pretrained(AutoTokenizer, init)
    return load_pretrained(AutoModelForSequenceClassification, init, num_labels=num_labels), tok


def finetune(
    model,
    tokenizer,
    texts: Sequence[str],
    labels: Sequence[int],
    epochs: int = 2,
    batch_size: int = 32,
    lr: float = 5e-4,
    weight_decay: float = 0.01,
    warmup: float = 0.1,
    loss_fn: nn.Module | None = None,
    max_length: int = 64,
    seed: int = 42,
    device: torch.device | None = None,
    val: tuple | None = None,
    progress: bool = True,
):
    """Fine-tune a sequence classifier with :func:`helpers.core.training.fit` (AdamW, linear warm-up and decay,
    gradient clipping, batches grouped by length). ``val=(texts, labels)`` is scored after every epoch and the
    best epoch's weights (by validation loss) are kept. Returns the :class:`helpers.core.training.History`."""
    from transformers import get_linear_schedule_with_warmup

    device = device or torch.device("cpu")
    torch.manual_seed(seed)
    train_ds = TokenizedTexts(list(texts), list(labels), tokenizer, max_length)
    train_dl = make_dataloader(train_ds, tokenizer, batch_size, shuffle=True, seed=seed, group_by_length=True)
    val_dl = None
    if val is not None:
        val_ds = TokenizedTexts(list(val[0]), list(val[1]), tokenizer, max_length)
        val_dl = make_dataloader(val_ds, tokenizer, 128, group_by_length=False)
    optimizer = torch.optim.AdamW(weight_decay_groups(model, weight_decay), lr=lr)
    total = epochs * len(train_dl)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(warmup * total), total)
    return fit(
        model,
        train_dl,
        val_dl,
        optimizer,
        epochs,
        device,
        loss_fn=loss_fn,
        scheduler=scheduler,
        clip_grad_norm=1.0,
        progress=progress,
    )


@torch.no_grad()
def predict_proba(
    model,
    tokenizer,
    texts: Sequence[str],
    max_length: int = 64,
    batch_size: int = 128,
    device: torch.device | None = None,
) -> np.ndarray:
    """Softmax probabilities ``[len(texts), num_labels]`` (texts batched by length, results in input order)."""
    device = device or next(model.parameters()).device
    ids = tokenizer(list(texts), truncation=True, max_length=max_length, return_token_type_ids=False)["input_ids"]
    order = np.argsort([len(x) for x in ids], kind="stable")
    model.to(device).eval()
    out = np.zeros((len(ids), model.config.num_labels), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = tokenizer.pad({"input_ids": [ids[i] for i in idx]}, return_tensors="pt")
        logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
        out[idx] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
    return out


# --------------------------------------------------------------------------- one fold, shared with the CLI


@dataclasses.dataclass
class FoldConfig:
    """Everything that defines one training run on one fold (the CLI's options, one to one)."""

    model: str = "roberta"  # "roberta" or "tfidf"
    init: str = "random"  # roberta: "random", a saved folder (models/ko-roberta-mlm) or a hub name (klue/roberta-base)
    scheme: str = "7way"  # "7way" or "two-stage"
    loss: str = "ce"  # "ce", "weighted" (class-weighted CE) or "focal"
    fold: int = 0
    n_folds: int = 5
    seed: int = 42
    epochs: int = 2
    batch_size: int = 32
    lr: float = 5e-4
    max_length: int = 64
    limit: int | None = None
    hidden: int = 256  # the architecture of init="random"
    layers: int = 4
    heads: int = 4

    def __post_init__(self):
        if self.model not in ("roberta", "tfidf"):
            raise ValueError(f"model must be 'roberta' or 'tfidf', got {self.model!r}")
        if self.scheme not in ("7way", "two-stage"):
            raise ValueError(f"scheme must be '7way' or 'two-stage', got {self.scheme!r}")
        if self.loss not in ("ce", "weighted", "focal"):
            raise ValueError(f"loss must be 'ce', 'weighted' or 'focal', got {self.loss!r}")
        if self.model == "tfidf" and self.loss == "focal":
            raise ValueError("the TF-IDF baseline (logistic regression) supports loss 'ce' or 'weighted', not 'focal'")
        if not 0 <= self.fold < self.n_folds:
            raise ValueError(f"fold must be in 0..{self.n_folds - 1}, got {self.fold}")

    @property
    def name(self) -> str:
        init = "" if self.model == "tfidf" else f"-{Path(self.init).name if self.init != 'random' else 'random'}"
        return f"{self.model}{init}-{self.scheme}-{self.loss}"


def _train_predict(
    cfg: FoldConfig,
    train: pd.DataFrame,
    labels: np.ndarray,
    num_labels: int,
    predict_on: list,
    tokenizer,
    device,
    progress: bool,
    finetune_fn: Callable | None = None,
):
    """Train one model (one stage) on ``train`` with ``labels``; return probabilities on each of ``predict_on``.

    For ``tfidf``, ``train`` and ``predict_on`` are feature matrices. ``finetune_fn`` (default :func:`finetune`)
    trains a transformer: notebook 06 passes the loop defined in its own cell."""
    if cfg.model == "tfidf":
        model = fit_quietly(
            logreg(cfg.seed, class_weight="balanced" if cfg.loss == "weighted" else None), train, labels
        )
        return [model.predict_proba(x) for x in predict_on], None
    texts = train["text"].tolist()
    arch = {"hidden": cfg.hidden, "layers": cfg.layers, "heads": cfg.heads}
    model, tok = make_classifier(cfg.init, num_labels, tokenizer, arch, cfg.seed, cfg.max_length)
    history = (finetune_fn or finetune)(
        model,
        tok,
        texts,
        labels,
        cfg.epochs,
        cfg.batch_size,
        cfg.lr,
        loss_fn=make_loss(cfg.loss, labels, num_labels),
        max_length=cfg.max_length,
        seed=cfg.seed,
        device=device,
        progress=progress,
    )
    return [
        predict_proba(model, tok, frame["text"].tolist(), cfg.max_length, device=device) for frame in predict_on
    ], history


def run_fold(
    cfg: FoldConfig,
    frame: pd.DataFrame | None = None,
    tokenizer=None,
    device: torch.device | None = None,
    progress: bool = True,
    finetune_fn: Callable | None = None,
) -> dict:
    """Train ``cfg`` on one fold; score it on the fold's validation part and on the held-out test split.

    ``finetune_fn`` replaces :func:`finetune` (same arguments) for the transformer models: notebook 06 passes the
    fine-tuning loop of its own cell, so a student's edit there is what runs.

    Returns ``{"config", "sizes", "validation": metrics, "test": metrics, "seconds", "val_probs", "test_probs",
    "val_labels", "test_labels", "history"}`` (the arrays and the history are for the notebook; the CLI writes
    the rest as JSON). ``two-stage`` trains neutral-vs-rest on all training rows and a 6-way model on the
    non-neutral rows, then :func:`combine_two_stage`. TF-IDF features of a fold are computed once and shared by
    the configurations run on that fold (see :func:`_fold_features`).
    """
    start = time.perf_counter()
    frame = load_ko_single_turn_emotion() if frame is None else frame
    parts = fold_frames(frame, cfg.fold, cfg.n_folds, cfg.seed, cfg.limit)
    if cfg.model == "roberta" and cfg.init == "random" and tokenizer is None:
        tokenizer = korean_subword_tokenizer(seed=cfg.seed)
    device = device or torch.device("cpu")
    y = parts["train"]["label_id"].to_numpy()
    if cfg.model == "tfidf":
        key = (cfg.fold, cfg.n_folds, cfg.seed, cfg.limit, len(frame), frame["text"].iloc[0], frame["text"].iloc[-1])
        train, *evals = _fold_features(key, parts)
    else:
        train, evals = parts["train"], [parts["validation"], parts["test"]]
    histories = {}
    if cfg.scheme == "7way":
        (val_probs, test_probs), histories["7way"] = _train_predict(
            cfg, train, y, NUM_CLASSES, evals, tokenizer, device, progress, finetune_fn
        )
        val_pred, test_pred = val_probs.argmax(1), test_probs.argmax(1)
    else:
        (v1, t1), histories["stage1"] = _train_predict(
            cfg, train, (y == NEUTRAL_ID).astype(int), 2, evals, tokenizer, device, progress, finetune_fn
        )
        rest = train[y != NEUTRAL_ID]
        (v2, t2), histories["stage2"] = _train_predict(
            cfg, rest, to_rest_ids(y[y != NEUTRAL_ID]), NUM_CLASSES - 1, evals, tokenizer, device, progress, finetune_fn
        )
        val_probs, val_pred = combine_two_stage(v1[:, 1], v2)
        test_probs, test_pred = combine_two_stage(t1[:, 1], t2)
    y_val, y_test = parts["validation"]["label_id"].to_numpy(), parts["test"]["label_id"].to_numpy()
    return {
        "config": dataclasses.asdict(cfg),
        "name": cfg.name,
        "sizes": {k: len(v) for k, v in parts.items()},
        "validation": fold_metrics(y_val, val_pred),
        "test": fold_metrics(y_test, test_pred),
        "seconds": round(time.perf_counter() - start, 1),
        "val_probs": val_probs,
        "test_probs": test_probs,
        "val_labels": y_val,
        "test_labels": y_test,
        "history": {k: v for k, v in histories.items() if v is not None},
    }


__all__ = [
    "NUM_CLASSES",
    "NEUTRAL_ID",
    "REST_IDS",
    "TEST_SIZE",
    "MLM_DIR",
    "HUB_MODEL",
    "holdout_split",
    "kfold_indices",
    "fold_frames",
    "class_weights",
    "FocalLoss",
    "make_loss",
    "combine_two_stage",
    "to_rest_ids",
    "fold_metrics",
    "tfidf_vectorizer",
    "tfidf_logreg",
    "logreg",
    "small_roberta_config",
    "mlm_texts",
    "mlm_loss",
    "encode_ids",
    "mlm_eval_loss",
    "pretrain_mlm",
    "quiet_transformers",
    "make_classifier",
    "finetune",
    "predict_proba",
    "FoldConfig",
    "run_fold",
]
