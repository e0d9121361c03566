"""Pretrained encoders for the transfer-learning lessons, named once and found wherever they are.

``load_encoder("e5-small")`` → (BertModel, tokenizer) for intfloat/multilingual-e5-small;
``load_encoder("whisper-base", window_s=6)`` → (WhisperEncoder, WhisperFeatureExtractor);
``load_encoder("mpnet-base")`` / ``load_encoder("minilm")`` → English sentence encoders.
The folder comes from an explicit path, ``$COURSE_MODEL_DIR/<name>/``, the Hugging Face cache or hub, or
is converted once from the pinned offline packages of ``requirements-offline.txt`` (see
:mod:`helpers.pretrained.registry`). Converters (:mod:`convert_e5`, :mod:`convert_whisper`,
:mod:`convert_mpnet`) read bytes only: nothing from those packages is imported, run or unpickled.
"""

from helpers.pretrained.load import embed_sentences, load_encoder, shorten_whisper_window, truncate_layers
from helpers.pretrained.registry import (
    MODELS,
    ModelSpec,
    PretrainedNotFoundError,
    build_from_packages,
    describe,
    get_spec,
    hub_reachable,
    models_cache_dir,
    resolve_model,
)

__all__ = [
    "MODELS",
    "ModelSpec",
    "PretrainedNotFoundError",
    "build_from_packages",
    "describe",
    "embed_sentences",
    "get_spec",
    "hub_reachable",
    "load_encoder",
    "models_cache_dir",
    "resolve_model",
    "shorten_whisper_window",
    "truncate_layers",
]
