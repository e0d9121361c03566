"""Reading a CTranslate2 ``model.bin`` (binary version 6) as plain bytes: no ctranslate2 import needed.

Layout, little-endian (CTranslate2's ``ModelSpec._serialize``): u32 binary version; the spec name and u32
revision; u32 variable count; per variable a name, u8 rank, u32 dims[rank], u8 dtype, u32 byte count, the
bytes; then u32 alias count and (alias, target) name pairs. A name is a u16 length (with the final NUL)
and the UTF-8 bytes plus NUL. dtypes: 0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SUPPORTED_VERSIONS = (5, 6)
DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


class CT2FormatError(ValueError):
    """The file is not a CTranslate2 model.bin this reader understands."""


@dataclass
class CT2Model:
    spec: str
    revision: int
    variables: dict[str, np.ndarray]  # aliases resolved to the same array

    def get(self, name: str) -> np.ndarray:
        try:
            return self.variables[name]
        except KeyError:
            raise CT2FormatError(f"the {self.spec} model has no variable {name!r}") from None


class _Reader:
    def __init__(self, data: memoryview):
        self.data, self.at = data, 0

    def unpack(self, fmt: str):
        values = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def name(self) -> str:
        length = self.unpack("H")
        return bytes(self.take(length)[:-1]).decode("utf-8")

    def take(self, n: int) -> memoryview:
        if self.at + n > len(self.data):
            raise CT2FormatError("the file ends inside a variable: it is truncated")
        out = self.data[self.at : self.at + n]
        self.at += n
        return out


def read_ct2(data: bytes | memoryview | str | Path) -> CT2Model:
    """Parse a whole ``model.bin`` (bytes or a path) into arrays (copies, safe to keep)."""
    if isinstance(data, (str, Path)):
        data = Path(data).read_bytes()
    r = _Reader(memoryview(data))
    try:
        version = r.unpack("I")
        if version not in SUPPORTED_VERSIONS:
            raise CT2FormatError(f"CTranslate2 binary version {version}; this reader knows {SUPPORTED_VERSIONS}")
        spec, revision = r.name(), r.unpack("I")
        variables = {}
        for _ in range(r.unpack("I")):
            name = r.name()
            rank = r.unpack("B")
            dims = [r.unpack("I") for _ in range(rank)]
            dtype_id, nbytes = r.unpack("B"), r.unpack("I")
            if dtype_id not in DTYPES:
                raise CT2FormatError(f"variable {name}: dtype {dtype_id} is not supported")
            array = np.frombuffer(r.take(nbytes), dtype=np.dtype(DTYPES[dtype_id]).newbyteorder("<"))
            if array.size != int(np.prod(dims)):
                raise CT2FormatError(f"variable {name}: {array.size} values for shape {dims}")
            variables[name] = array.reshape(dims).copy()
        for _ in range(r.unpack("I")):
            alias, target = r.name(), r.name()
            if target not in variables:
                raise CT2FormatError(f"alias {alias} points to no variable ({target!r}): the file is damaged")
            variables[alias] = variables[target]
    except struct.error:
        raise CT2FormatError("the file ends early: it is truncated or not a CTranslate2 model") from None
    if r.at != len(r.data):
        raise CT2FormatError(f"{len(r.data) - r.at} unexpected bytes after the aliases")
    return CT2Model(spec, revision, variables)
