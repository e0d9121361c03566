"""The kinds of model folder the course saves, each registered by the module that saves it.

A model module (``helpers.text.lstm``, ``helpers.audio.cnn`` …) calls :func:`register_model_kind` at import with
the ``task`` its ``config.json`` names and a loader that turns the folder into a :class:`Scorer` (label names and a
batch ``predict_proba``). ``python -m helpers.cli.evaluate`` looks the kind up with :func:`find_model_kind`; it knows
no kind itself. Adding a kind touches one module: write the loader beside the model and register it there
(:func:`import_model_kinds` finds every module under ``helpers/`` that registers one).

A loader receives ``(folder, config, max_seconds=...)`` (``config`` already read and checked by
:func:`helpers.core.model_folder.read_model_config`; ``max_seconds``: the longest clip a speech loader may decode)
and never runs code from the folder.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from helpers.core.inputs import CourseInputError

MODALITIES = ("text", "audio")  # text kinds read a CSV of text,label; audio kinds a folder with metadata.csv


@dataclass
class Scorer:
    """A saved model reduced to what scoring needs: its modality, label names and a batch probability function."""

    kind: str  # "text" or "audio"
    label_names: list[str]
    predict_proba: Callable[[Sequence], np.ndarray]
    description: str


class ScorerError(CourseInputError):
    """A model folder of a known kind cannot be scored as it is (the message says why and what to do)."""


def label_names_of(model) -> list[str]:
    """The label names in a transformers model's config, in id order."""
    id2label = model.config.id2label
    return [str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(model.config.num_labels)]


@dataclass(frozen=True)
class ModelKind:
    name: str  # the config's task, or a name for a kind recognised otherwise (e.g. "model_type=wav2vec2")
    modality: str
    loader: Callable[..., Scorer]
    matches: Callable[[dict], bool]
    fallback: bool  # tried after every other kind (a generic kind that would also match specific folders)
    module: str


_KINDS: dict[str, ModelKind] = {}


def register_model_kind(
    task: str,
    loader: Callable[..., Scorer],
    *,
    modality: str,
    matches: Callable[[dict], bool] | None = None,
    fallback: bool = False,
) -> ModelKind:
    """Register how a folder whose ``config.json`` says ``"task": task`` is loaded for scoring.

    ``matches(config)`` replaces the task test for folders written by other libraries (transformers' configs carry
    ``model_type`` and ``architectures``, not a course task); ``fallback`` kinds are tried last. Registering the
    same name again (a module re-imported) replaces the entry.
    """
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    if not isinstance(task, str) or not task:
        raise ValueError(f"a model kind needs a name, got {task!r}")
    kind = ModelKind(
        task,
        modality,
        loader,
        matches or (lambda config: config.get("task") == task),
        fallback,
        getattr(loader, "__module__", "?"),
    )
    _KINDS[task] = kind
    return kind


def model_kinds() -> list[ModelKind]:
    """The registered kinds, in the order :func:`find_model_kind` tries them (fallbacks last)."""
    return sorted(_KINDS.values(), key=lambda k: k.fallback)


def find_model_kind(config: dict) -> ModelKind | None:
    """The first registered kind whose test accepts ``config`` (call :func:`import_model_kinds` first)."""
    return next((kind for kind in model_kinds() if kind.matches(config)), None)


def import_model_kinds() -> list[str]:
    """Import every module of the package that registers a model kind; return their names.

    A module registers by calling ``register_model_kind(`` at import; its source is read (not run) to find it, so a
    new kind needs no list kept here or in the evaluator.
    """
    package = Path(__file__).resolve().parents[1]
    found = []
    for path in sorted(package.rglob("*.py")):
        if path.name.startswith("_") or path.resolve() == Path(__file__).resolve():
            continue
        if "register_model_kind(" in path.read_text(encoding="utf-8"):
            name = ".".join(("helpers", *path.relative_to(package).with_suffix("").parts))
            importlib.import_module(name)
            found.append(name)
    return found
