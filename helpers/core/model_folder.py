"""Reading the ``config.json`` of a model folder the course saved, with one set of clear errors.

Every saving function of the course (:func:`helpers.text.lstm.save_text_classifier`,
:func:`helpers.audio.cnn.save_speech_cnn`, …) writes a ``config.json`` naming its ``task``; loaders check it
before they touch the weights, so a folder from another task, a half-written save or a damaged file gives a
one-line error instead of a traceback from deep inside torch.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

from helpers.core.inputs import MAX_CLASSES, CourseInputError, check_number


def read_model_config(
    folder: str | Path, task: str | None = None, what: str = "model folder saved by the course"
) -> dict:
    """Return the JSON object in ``folder/config.json``, checking that it belongs to ``task`` when given.

    Raises ``FileNotFoundError`` for a missing folder or config and :class:`ModelConfigError` (a ``ValueError``) for
    a config that is not a JSON object, names another task, or holds a size of the wrong type or out of range
    (:func:`check_config_values`).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no saved model folder at {folder}")
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{folder} has no config.json: it is not a {what}")
    if config_path.stat().st_size > MAX_CONFIG_BYTES:
        raise ModelConfigError(f"{config_path} is {config_path.stat().st_size:,} bytes; a model config is a few KB")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ModelConfigError(f"{config_path} is not valid JSON ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not isinstance(config, dict):
        raise ModelConfigError(f"{config_path} holds a JSON {type(config).__name__}, not an object: not a model config")
    if task is not None and config.get("task") != task:
        raise ModelConfigError(f"{folder} holds a model for task {config.get('task')!r}, not {task!r}")
    check_config_values(config, str(config_path))
    return config


# --------------------------------------------------------------------------- values inside a config

MAX_CONFIG_BYTES = 16 << 20  # a model's config.json is a few KB; a larger one is not a config
OBJECT_KEYS = ("features", "course", "model", "extra", "id2label", "label2id")
# key (anywhere in the config, nested too) -> (int or float, lowest, highest): sizes that allocate memory or time
LIMITS: dict[str, tuple[type, float, float]] = {
    "n_frames": (int, 1, 100_000),
    "n_fft": (int, 16, 65_536),
    "win_length": (int, 1, 65_536),
    "hop_length": (int, 1, 65_536),
    "n_mels": (int, 1, 1_024),
    "n_mfcc": (int, 1, 1_024),
    "sr": (int, 8_000, 192_000),
    "sampling_rate": (int, 8_000, 192_000),
    "clip_seconds": (float, 0.01, 600),
    "min_seconds": (float, 0, 600),
    "trim_db": (float, 0, 200),
    "top_db": (float, 0, 200),
    "fmin": (float, 0, 96_000),
    "fmax": (float, 0, 96_000),
    "num_classes": (int, 1, 1_000),
    "num_labels": (int, 1, 1_000),
    "in_channels": (int, 1, 64),
    "hidden_size": (int, 1, 16_384),
    "hidden_dim": (int, 1, 16_384),
    "embed_dim": (int, 1, 16_384),
    "d_model": (int, 1, 16_384),
    "dim": (int, 1, 16_384),
    "intermediate_size": (int, 1, 65_536),
    "num_hidden_layers": (int, 0, 128),
    "num_layers": (int, 0, 128),
    "depth": (int, 0, 128),
    "num_attention_heads": (int, 1, 256),
    "heads": (int, 1, 256),
    "vocab_size": (int, 1, 1_000_000),
    "max_len": (int, 1, 100_000),
    "max_position_embeddings": (int, 1, 1_000_000),
}
LIST_LIMITS: dict[str, tuple[int, int, int]] = {"widths": (1, 4_096, 32)}  # key -> (lowest, highest, most entries)


class ModelConfigError(CourseInputError):
    """A model folder's config holds a value of the wrong type or outside a sane range (the key is named)."""


def check_config_values(config: dict, where: str) -> None:
    """Check every size-like value of ``config`` (see :data:`LIMITS`), nested objects included.

    Raises :class:`ModelConfigError` naming the key (``model.num_classes``) for a wrong type, NaN, a negative or a
    huge value, a list where an object belongs or more than 1,000 classes (duplicate label names are refused where
    labels are matched by name: :func:`check_label_list`, used by the evaluator).
    """

    def walk(node: dict, prefix: str) -> None:
        for key, value in node.items():
            name = f"{prefix}{key}"
            if key in OBJECT_KEYS and value is not None and not isinstance(value, dict):
                raise ModelConfigError(
                    f"{where}: {name} must be a JSON object, not {type(value).__name__}; "
                    "the config is damaged: save the model again"
                )
            if value is None:
                continue
            if key in LIMITS:
                kind, low, high = LIMITS[key]
                try:
                    check_number(value, name, kind, low, high, where)
                except CourseInputError as exc:
                    raise ModelConfigError(f"{exc}; the config is damaged or not from this course") from None
            elif key in LIST_LIMITS:
                low, high, most = LIST_LIMITS[key]
                if not isinstance(value, list) or not 0 < len(value) <= most:
                    raise ModelConfigError(f"{where}: {name} must be a list of 1 to {most} integers, got {value!r}")
                for i, item in enumerate(value):
                    check_number(item, f"{name}[{i}]", int, low, high, where)
            elif key in ("labels", "label_names") and isinstance(value, list) and len(value) > MAX_CLASSES:
                raise ModelConfigError(
                    f"{where}: {name} lists {len(value):,} labels; the course caps classes at {MAX_CLASSES:,}"
                )
            if key in ("id2label", "label2id") and len(value) > MAX_CLASSES:
                raise ModelConfigError(
                    f"{where}: {name} has {len(value):,} labels; the course caps classes at {MAX_CLASSES:,}"
                )
            if isinstance(value, dict):
                walk(value, f"{name}.")

    walk(config, "")


def check_label_list(labels: list, where: str) -> None:
    """Label names: at most :data:`MAX_CLASSES`, each a non-empty string or int, no two equal (ignoring case)."""
    if len(labels) > MAX_CLASSES:
        raise ModelConfigError(f"{where} lists {len(labels):,} labels; the course caps classes at {MAX_CLASSES:,}")
    seen: dict[str, int] = {}
    for i, label in enumerate(labels):
        if isinstance(label, bool) or not isinstance(label, (str, int)) or not str(label).strip():
            raise ModelConfigError(f"{where}: label {i} is {label!r}; labels must be non-empty names")
        norm = str(label).strip().lower()
        if norm in seen:
            raise ModelConfigError(f"{where}: labels {seen[norm]} and {i} are both {label!r}; label names must differ")
        seen[norm] = i


# --------------------------------------------------------------------------- nothing in a folder runs

REMOTE_CODE_KEYS = ("auto_map", "custom_pipelines")
CONFIG_FILES = (
    "config.json",
    "tokenizer_config.json",
    "preprocessor_config.json",
    "processor_config.json",
    "feature_extractor_config.json",
    "image_processor_config.json",
)


class UnsafeFolderError(CourseInputError):
    """A model or tokenizer folder asks for its own Python code to be run (``auto_map``), or points outside itself."""


def refuse_remote_code(folder: str | Path) -> None:
    """Raise :class:`UnsafeFolderError` when a config file of ``folder`` declares ``auto_map`` (custom code).

    transformers would otherwise offer to import the folder's ``*.py`` files; the course never runs them.
    """
    folder = Path(folder)
    for name in CONFIG_FILES:
        path = folder / name
        if not path.is_file():
            continue
        try:
            if path.stat().st_size > MAX_CONFIG_BYTES:
                raise UnsafeFolderError(
                    f"{path} is {path.stat().st_size:,} bytes; a config file is a few KB: not a model folder"
                )
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            continue  # not JSON: the loader that reads it says so
        if isinstance(data, dict):
            for key in REMOTE_CODE_KEYS:
                if data.get(key):
                    raise UnsafeFolderError(
                        f"{path} declares {key!r} (its own Python code); the course never runs code from a model "
                        f"folder: use a folder saved without custom code, or remove {key!r} if you wrote it yourself"
                    )


def read_weights(path: str | Path, map_location="cpu") -> dict:
    """The ``state_dict`` in a course ``model.pt``, read with ``torch.load(weights_only=True)``: tensors only.

    A file holding anything else (a pickle that would run code when loaded), a truncated file or one that is not a
    checkpoint at all gives a one-line ``ValueError``; nothing in it is executed.
    """
    import torch  # on first use: `import helpers` and the data-only entry points start without torch

    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
        raise ValueError(
            f"{path} cannot be read as plain weights ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); it is damaged or not a course checkpoint"
        ) from None


def load_pretrained(cls, source: str | Path, **kwargs):
    """``cls.from_pretrained(source, trust_remote_code=False, ...)``: the one way the course loads transformers objects.

    ``cls`` is a tokenizer, config, feature extractor, processor or model class (``AutoTokenizer``,
    ``Wav2Vec2ForSequenceClassification``, ...). A local folder is first checked by :func:`refuse_remote_code`;
    ``trust_remote_code`` is always ``False``, so transformers never asks to run code (it refuses instead).
    """
    folder = Path(str(source)).expanduser()
    if folder.is_dir():
        refuse_remote_code(folder)
        source = str(folder)
    kwargs["trust_remote_code"] = False
    return cls.from_pretrained(str(source), **kwargs)


def confined_path(value: object, roots: list[Path], what: str) -> Path:
    """The path ``value`` (relative, from a config) resolved inside one of ``roots``, else :class:`UnsafeFolderError`.

    Absolute paths, ``~`` and ``..`` are refused outright; a relative path is tried against each root in turn and
    must stay inside it after symbolic links are followed.
    """
    if not isinstance(value, str) or not value.strip():
        raise UnsafeFolderError(f"{what} must be a relative path (text), got {value!r}")
    rel = Path(value)
    if rel.is_absolute() or value.startswith("~") or ".." in rel.parts:
        raise UnsafeFolderError(
            f"{what} is {value!r}: paths in a model config must be relative, without '..' "
            f"(allowed under {', '.join(str(r) for r in roots)})"
        )
    escaped = None
    for root in roots:
        root = Path(root).resolve()
        candidate = (root / rel).resolve()
        if candidate != root and root not in candidate.parents:
            escaped = escaped or candidate
            continue
        if candidate.exists():
            return candidate
    if escaped is not None:
        raise UnsafeFolderError(
            f"{what} {value!r} leads outside its folder (to {escaped}, through a symbolic link); refused"
        )
    return (Path(roots[0]).resolve() / rel).resolve()
