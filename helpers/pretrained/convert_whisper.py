"""A CTranslate2 Whisper ``model.bin`` → a transformers ``WhisperModel`` folder + ``WhisperFeatureExtractor``.

CTranslate2 fuses attention projections: self-attention ``linear_0`` is [q; k; v] (k has no bias: its part
of the fused bias is zero), cross-attention ``linear_0`` is q and ``linear_1`` is [k; v]; the output
projection is the last linear. Everything else maps one to one (see ``whisper_state_dict``).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from helpers.pretrained.ctranslate2_format import CT2FormatError, CT2Model, read_ct2

# special token ids of the multilingual Whisper vocabularies (51865 or 51866 tokens)
MULTILINGUAL_TOKENS = dict(
    bos_token_id=50257,
    eos_token_id=50257,
    pad_token_id=50257,
    decoder_start_token_id=50258,
    begin_suppress_tokens=[220, 50257],
)
NO_TOKENS = dict(
    bos_token_id=0, eos_token_id=0, pad_token_id=0, decoder_start_token_id=0, begin_suppress_tokens=[]
)  # tiny test models


def _norm(ct2: CT2Model, src: str, dst: str, out: dict[str, np.ndarray]) -> None:
    out[f"{dst}.weight"], out[f"{dst}.bias"] = ct2.get(f"{src}/gamma"), ct2.get(f"{src}/beta")


def _linear(ct2: CT2Model, src: str, dst: str, out: dict[str, np.ndarray]) -> None:
    out[f"{dst}.weight"], out[f"{dst}.bias"] = ct2.get(f"{src}/weight"), ct2.get(f"{src}/bias")


def _split(ct2: CT2Model, src: str, dsts: list[str], out: dict[str, np.ndarray]) -> None:
    """A fused linear → one projection per name in ``dsts``; ``k_proj`` gets no bias (Whisper has none)."""
    weights = np.split(ct2.get(f"{src}/weight"), len(dsts), axis=0)
    biases = np.split(ct2.get(f"{src}/bias"), len(dsts), axis=0)
    for dst, w, b in zip(dsts, weights, biases):
        out[f"{dst}.weight"] = w
        if dst.endswith("k_proj"):
            if np.any(b):
                raise CT2FormatError(f"{src}: the key part of the fused bias is not zero")
        else:
            out[f"{dst}.bias"] = b


def _layer_count(ct2: CT2Model, side: str) -> int:
    pattern = re.compile(rf"^{side}/layer_(\d+)/")
    return len({m.group(1) for m in map(pattern.match, ct2.variables) if m})


def whisper_state_dict(ct2: CT2Model) -> dict[str, np.ndarray]:
    """CTranslate2 variables → ``WhisperModel`` parameter names (float arrays as stored)."""
    if ct2.spec != "WhisperSpec":
        raise CT2FormatError(f"a {ct2.spec} model, not a Whisper model")
    out: dict[str, np.ndarray] = {}
    for conv in ("conv1", "conv2"):
        out[f"encoder.{conv}.weight"], out[f"encoder.{conv}.bias"] = (
            ct2.get(f"encoder/{conv}/weight"),
            ct2.get(f"encoder/{conv}/bias"),
        )
    out["encoder.embed_positions.weight"] = ct2.get("encoder/position_encodings/encodings")
    _norm(ct2, "encoder/layer_norm", "encoder.layer_norm", out)
    for i in range(_layer_count(ct2, "encoder")):
        src, dst = f"encoder/layer_{i}", f"encoder.layers.{i}"
        _norm(ct2, f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm", out)
        _split(ct2, f"{src}/self_attention/linear_0", [f"{dst}.self_attn.{p}_proj" for p in "qkv"], out)
        _linear(ct2, f"{src}/self_attention/linear_1", f"{dst}.self_attn.out_proj", out)
        _norm(ct2, f"{src}/ffn/layer_norm", f"{dst}.final_layer_norm", out)
        _linear(ct2, f"{src}/ffn/linear_0", f"{dst}.fc1", out)
        _linear(ct2, f"{src}/ffn/linear_1", f"{dst}.fc2", out)
    out["decoder.embed_tokens.weight"] = ct2.get("decoder/embeddings/weight")
    out["decoder.embed_positions.weight"] = ct2.get("decoder/position_encodings/encodings")
    _norm(ct2, "decoder/layer_norm", "decoder.layer_norm", out)
    for i in range(_layer_count(ct2, "decoder")):
        src, dst = f"decoder/layer_{i}", f"decoder.layers.{i}"
        _norm(ct2, f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm", out)
        _split(ct2, f"{src}/self_attention/linear_0", [f"{dst}.self_attn.{p}_proj" for p in "qkv"], out)
        _linear(ct2, f"{src}/self_attention/linear_1", f"{dst}.self_attn.out_proj", out)
        _norm(ct2, f"{src}/attention/layer_norm", f"{dst}.encoder_attn_layer_norm", out)
        _linear(ct2, f"{src}/attention/linear_0", f"{dst}.encoder_attn.q_proj", out)
        _split(ct2, f"{src}/attention/linear_1", [f"{dst}.encoder_attn.{p}_proj" for p in "kv"], out)
        _linear(ct2, f"{src}/attention/linear_2", f"{dst}.encoder_attn.out_proj", out)
        _norm(ct2, f"{src}/ffn/layer_norm", f"{dst}.final_layer_norm", out)
        _linear(ct2, f"{src}/ffn/linear_0", f"{dst}.fc1", out)
        _linear(ct2, f"{src}/ffn/linear_1", f"{dst}.fc2", out)
    return out


def whisper_config(ct2: CT2Model):
    """A ``WhisperConfig`` whose sizes come from the variables' shapes (token ids: the multilingual models')."""
    from transformers import WhisperConfig

    conv1 = ct2.get("encoder/conv1/weight")
    vocab, d_model = ct2.get("decoder/embeddings/weight").shape
    return WhisperConfig(
        vocab_size=vocab,
        num_mel_bins=conv1.shape[1],
        d_model=d_model,
        encoder_layers=_layer_count(ct2, "encoder"),
        decoder_layers=_layer_count(ct2, "decoder"),
        encoder_attention_heads=int(ct2.get("encoder/num_heads")),
        decoder_attention_heads=int(ct2.get("decoder/num_heads")),
        encoder_ffn_dim=ct2.get("encoder/layer_0/ffn/linear_0/weight").shape[0],
        decoder_ffn_dim=ct2.get("decoder/layer_0/ffn/linear_0/weight").shape[0],
        max_source_positions=ct2.get("encoder/position_encodings/encodings").shape[0],
        max_target_positions=ct2.get("decoder/position_encodings/encodings").shape[0],
        architectures=["WhisperModel"],
        **(MULTILINGUAL_TOKENS if vocab >= 51865 else NO_TOKENS),
    )


def build_whisper_folder(staging: Path, files: dict[str, Path]) -> None:
    """Write a float32 ``WhisperModel`` + feature extractor from ``files["model.bin.part1"]``, ``["model.bin.part2"]``…

    The parts (keys sorted) are concatenated in memory into one ``model.bin``.
    """
    import torch
    from transformers import WhisperFeatureExtractor, WhisperModel

    parts = [files[key] for key in sorted(files) if key.startswith("model.bin")]
    ct2 = read_ct2(b"".join(Path(p).read_bytes() for p in parts))
    config = whisper_config(ct2)
    model = WhisperModel(config)
    state = {k: torch.from_numpy(v.astype(np.float32)) for k, v in whisper_state_dict(ct2).items()}
    model.load_state_dict(state, strict=True)
    model.save_pretrained(staging)
    WhisperFeatureExtractor(feature_size=config.num_mel_bins).save_pretrained(staging)
