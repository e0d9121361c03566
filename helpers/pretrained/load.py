"""Loading a registry model by its course name, optionally cut down for the quick profile, and embedding text.

``load_encoder("e5-small")`` gives ``(model, tokenizer)``; ``load_encoder("whisper-base", window_s=6)`` gives
``(whisper_encoder, feature_extractor)`` for 6-second windows. Classes are explicit and
``trust_remote_code=False`` (:func:`helpers.core.model_folder.load_pretrained`): a folder whose config declares
``auto_map`` is refused with :class:`~helpers.core.model_folder.UnsafeFolderError`, and only safetensors weights
are read.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from helpers.core.model_folder import load_pretrained
from helpers.pretrained.registry import get_spec, origin, resolve_model

SAMPLING_RATE = 16_000
MEL_FRAMES_PER_SECOND = 100  # Whisper's hop of 160 samples at 16 kHz


def _has_pooler(folder) -> bool:
    """Whether a BERT folder's safetensors hold pooler weights (the offline E5 build has none)."""
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), framework="pt") as weights:
        return any(key.startswith("pooler.") for key in weights.keys())  # noqa: SIM118 (safe_open has no __iter__)


def _note_repr(note: str) -> str:
    return note


def _layers(model) -> tuple[object, str]:
    """The layer list of a text encoder or a Whisper encoder, and its config field."""
    if hasattr(model, "encoder") and hasattr(model.encoder, "layer"):
        return model.encoder, "num_hidden_layers"
    return model, "encoder_layers"


def truncate_layers(model, num_layers: int) -> str:
    """Keep the first ``num_layers`` layers in place (same class, same weights); returns a note saying so."""
    owner, field = _layers(model)
    attr = "layer" if hasattr(owner, "layer") else "layers"
    total = len(getattr(owner, attr))
    if not 1 <= num_layers <= total:
        raise ValueError(f"num_layers must be between 1 and {total}, got {num_layers}")
    setattr(owner, attr, getattr(owner, attr)[:num_layers])
    setattr(model.config, field, num_layers)
    return f"truncated: first {num_layers} of {total} layers"


def shorten_whisper_window(encoder, feature_extractor, window_s: float) -> str:
    """Make a Whisper encoder and its feature extractor work on ``window_s``-second inputs instead of 30 s.

    The position table keeps its first ``window_s * 50`` rows; the feature extractor pads or cuts to the
    window. The frames of a shorter clip are the same kind of features, computed with less padding.
    """
    frames = window_s * MEL_FRAMES_PER_SECOND
    positions = int(round(frames)) // 2
    if abs(frames - 2 * positions) > 1e-6 or not 0 < positions <= encoder.config.max_source_positions:
        raise ValueError(f"window_s must give an even number of 10 ms frames up to 30 s, got {window_s}")
    table = encoder.embed_positions.weight.data[:positions].clone()
    encoder.embed_positions = torch.nn.Embedding(positions, table.shape[1])
    encoder.embed_positions.weight.data.copy_(table)
    encoder.embed_positions.requires_grad_(False)
    encoder.config.max_source_positions = positions
    encoder.max_source_positions = positions
    feature_extractor.chunk_length = window_s
    feature_extractor.n_samples = int(round(window_s * SAMPLING_RATE))
    feature_extractor.nb_max_frames = 2 * positions
    return f"{window_s:g} s window ({positions} positions of 1500)"


def load_encoder(
    name: str, path=None, *, num_layers: int | None = None, window_s: float | None = None, verbose: bool = True
):
    """``(model, tokenizer or feature extractor)`` for registry model ``name``, in eval mode, float32.

    - ``num_layers``: keep only the first layers (a cheaper model of the same class, for the quick profile);
    - ``window_s`` (Whisper only): inputs of that many seconds instead of 30 (e.g. 6.0 for CPU speed);
    - for Whisper the model is the ``WhisperEncoder`` (the decoder is dropped).
    The model's repr and ``model.config.course_origin`` say where the weights came from and what was cut.
    """
    import transformers

    spec = get_spec(name)
    folder = resolve_model(name, path)
    kwargs = {"add_pooling_layer": _has_pooler(folder)} if spec.model_class == "BertModel" else {}
    # load_pretrained refuses a folder declaring auto_map (hub snapshot or local) before transformers reads it
    model = load_pretrained(
        getattr(transformers, spec.model_class), folder, use_safetensors=True, dtype=torch.float32, **kwargs
    )
    processor = load_pretrained(getattr(transformers, spec.processor_class), folder)
    notes = [origin(name, folder)]
    if spec.model_type == "whisper":
        model = model.get_encoder()
        if window_s is not None:
            notes.append(shorten_whisper_window(model, processor, window_s))
    elif window_s is not None:
        raise ValueError("window_s is for speech models (whisper-base)")
    if num_layers is not None:
        notes.append(truncate_layers(model, num_layers))
    note = f"{name}: " + "; ".join(notes)
    model.config.course_origin = note
    model.extra_repr = functools.partial(_note_repr, note)
    if verbose:
        print(note)
    return model.eval(), processor


@torch.no_grad()
def embed_sentences(
    model,
    tokenizer,
    texts: list[str],
    *,
    prefix: str = "query: ",
    max_length: int = 512,
    batch_size: int = 32,
    normalize: bool = True,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Mean-pooled sentence embeddings ``(len(texts), hidden)`` (E5's recipe: ``query: `` prefix, L2-normalised).

    Use ``prefix=""`` for models trained without one (MPNet, MiniLM). Texts are batched by length.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    order = np.argsort([len(t) for t in texts])
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    for start in range(0, len(texts), batch_size):
        idx = order[start : start + batch_size]
        batch = tokenizer(
            [prefix + texts[i] for i in idx], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        ).to(device)
        hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        if normalize:
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
        out[idx] = pooled.float().cpu().numpy()
    return out
