"""Reading the ``config.json`` of a model folder the course saved, with one set of clear errors.

Every saving function of the course (:func:`helpers.text.lstm.save_text_classifier`,
:func:`helpers.audio.cnn.save_speech_cnn`, …) writes a ``config.json`` naming its ``task``; loaders check it
before they touch the weights, so a folder from another task, a half-written save or a damaged file gives a
one-line error instead of a traceback from deep inside torch.
"""
from __future__ import annotations

import json
from pathlib import Path


def read_model_config(folder: str | Path, task: str | None = None, what: str = "model folder saved by the course") -> dict:
    """Return the JSON object in ``folder/config.json``, checking that it belongs to ``task`` when given.

    Raises ``FileNotFoundError`` for a missing folder or config and ``ValueError`` for a config that is not a JSON
    object or names another task.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no saved model folder at {folder}")
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{folder} has no config.json: it is not a {what}")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{config_path} is not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{config_path} holds a JSON {type(config).__name__}, not an object: not a model config")
    if task is not None and config.get("task") != task:
        raise ValueError(f"{folder} holds a model for task {config.get('task')!r}, not {task!r}")
    return config
