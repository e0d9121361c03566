"""Text to tensors by hand: what ``torchtext`` used to do (tokenise, vocabulary, numericalise, pad, bucket).

torchtext is no longer developed (its last release, 0.18, was built for torch 2.3 and does not import with
current torch), so the course keeps the few pieces it needs here, small enough to read in one sitting:

- :func:`basic_english` — torchtext's ``get_tokenizer("basic_english")`` rules;
- :class:`Vocab` — token <-> id, with ``<pad>`` / ``<unk>``, ``min_freq`` and ``max_size``; saved as JSON;
- :func:`encode_texts`, :func:`pad_batch` — numericalise and right-pad a batch (with its lengths, for packing);
- :class:`BucketBatchSampler`, :func:`make_loader` — batches of similar lengths, yielding ``(ids, lengths, labels)``;
- :data:`TOKENIZERS` / :func:`register_tokenizer` / :func:`get_tokenizer` — tokenisers by name, so that a saved
  model can name the one it was trained with.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from helpers.core.download import atomic_write_bytes

# --------------------------------------------------------------------------- tokenisers

# torchtext.data.utils._basic_english_normalize, rule for rule (applied in this order after lower-casing)
_BASIC_ENGLISH_RULES = [
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"\'", " '  "),  # split off apostrophes: "don't" -> "don ' t"
        (r"\"", ""),  # drop double quotes
        (r"\.", " . "),
        (r"<br \/>", " "),  # HTML line breaks (IMDB reviews)
        (r",", " , "),
        (r"\(", " ( "),
        (r"\)", " ) "),
        (r"\!", " ! "),
        (r"\?", " ? "),
        (r"\;", " "),  # ; and : are removed
        (r"\:", " "),
        (r"\s+", " "),
    )
]


def basic_english(text: str) -> list[str]:
    """torchtext's ``basic_english`` tokeniser: lower-case, space out ``' . , ( ) ! ?``, drop ``" ; :``, split."""
    if not isinstance(text, str):
        raise TypeError(f"basic_english expects a str, got {type(text).__name__}")
    line = text.lower()
    for pattern, replacement in _BASIC_ENGLISH_RULES:
        line = pattern.sub(replacement, line)
    return line.split()


def whitespace(text: str) -> list[str]:
    """Split on white space only (``str.split``)."""
    if not isinstance(text, str):
        raise TypeError(f"whitespace tokeniser expects a str, got {type(text).__name__}")
    return text.split()


TOKENIZERS: dict[str, Callable[[str], list[str]]] = {"basic_english": basic_english, "whitespace": whitespace}


def register_tokenizer(name: str, fn: Callable[[str], list[str]], overwrite: bool = False) -> None:
    """Make ``fn`` available as ``TOKENIZERS[name]`` (so saved models can refer to it by name)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a tokeniser name must be a non-empty str, got {name!r}")
    if not callable(fn):
        raise TypeError(f"tokeniser {name!r} must be callable, got {type(fn).__name__}")
    if name in TOKENIZERS and TOKENIZERS[name] is not fn and not overwrite:
        raise ValueError(f"tokeniser {name!r} is already registered; pass overwrite=True to replace it")
    TOKENIZERS[name] = fn


def get_tokenizer(name: str) -> Callable[[str], list[str]]:
    """The tokeniser registered under ``name``, with a clear error when there is none.

    ``ko-*`` names (``ko-mecab``, ``ko-okt`` …) are registered by :mod:`helpers.text.korean`, which is imported here
    on first use, so loading a Korean model needs no import by the caller.
    """
    if isinstance(name, str) and name.startswith("ko-") and name not in TOKENIZERS:
        # here, not at the top: korean imports this module (a cycle), and it loads the Korean analysers' packages
        from helpers.text import korean  # noqa: F401  (registers the Korean tokenisers on import)
    try:
        return TOKENIZERS[name]
    except KeyError:
        raise KeyError(
            f"no tokeniser named {name!r}; known: {sorted(TOKENIZERS)}. "
            "Register it first with helpers.text.pipeline.register_tokenizer(name, fn)."
        ) from None


# --------------------------------------------------------------------------- vocabulary


class Vocab:
    """A token <-> id mapping. Unknown tokens map to ``unk_id``; ``itos[i]`` is the token of id ``i``."""

    FORMAT = "helpers.text.Vocab"  # a file-format tag (the module moved; saved files keep the tag)

    def __init__(
        self,
        itos: Sequence[str],
        pad_token: str = "<pad>",
        unk_token: str = "<unk>",
        specials: Sequence[str] | None = None,
    ):
        itos = list(itos)
        if len(set(itos)) != len(itos):
            dupes = sorted(t for t, c in Counter(itos).items() if c > 1)[:5]
            raise ValueError(f"a vocabulary cannot hold a token twice; repeated: {dupes}")
        for name, token in (("pad_token", pad_token), ("unk_token", unk_token)):
            if token not in itos:
                raise ValueError(f"{name} {token!r} is not in the vocabulary; add it to the specials")
        self._itos = itos
        self._stoi = {token: i for i, token in enumerate(itos)}
        self.pad_token, self.unk_token = pad_token, unk_token
        self.specials = tuple(specials) if specials is not None else (pad_token, unk_token)
        self.freqs: dict[str, int] = {}  # token counts of the kept tokens (filled by build, not saved)

    @classmethod
    def build(
        cls,
        token_lists: Iterable[list[str]],
        min_freq: int = 1,
        max_size: int | None = None,
        specials: Sequence[str] = ("<pad>", "<unk>"),
        pad_token: str = "<pad>",
        unk_token: str = "<unk>",
    ) -> "Vocab":
        """Count tokens and keep those seen at least ``min_freq`` times, most frequent first.

        Ties are broken alphabetically, so the same corpus always gives the same ids. ``specials`` come first
        (``<pad>`` = 0, ``<unk>`` = 1 by default); ``max_size`` caps the number of *other* tokens.
        """
        if not isinstance(min_freq, int) or min_freq < 1:
            raise ValueError(f"min_freq must be an int >= 1, got {min_freq!r}")
        if max_size is not None and (not isinstance(max_size, int) or max_size < 0):
            raise ValueError(f"max_size must be None or an int >= 0, got {max_size!r}")
        specials = list(specials)
        for name, token in (("pad_token", pad_token), ("unk_token", unk_token)):
            if token not in specials:
                raise ValueError(f"{name} {token!r} must be one of the specials {specials}")
        if isinstance(token_lists, (str, bytes)):
            raise TypeError("token_lists must be an iterable of token lists, not a single string")
        counts: Counter[str] = Counter()
        rows = 0
        for i, tokens in enumerate(token_lists):
            if isinstance(tokens, str):
                raise TypeError(f"row {i} is a str; pass lists of tokens (tokenise the texts first)")
            counts.update(tokens)
            rows += 1
        if rows == 0 or not counts:
            raise ValueError("cannot build a vocabulary from an empty corpus (no tokens)")
        for special in specials:
            counts.pop(special, None)
        kept = sorted((item for item in counts.items() if item[1] >= min_freq), key=lambda kv: (-kv[1], kv[0]))
        if max_size is not None:
            kept = kept[:max_size]
        vocab = cls(specials + [token for token, _ in kept], pad_token, unk_token, specials)
        vocab.freqs = dict(kept)
        return vocab

    # mapping
    def __len__(self) -> int:
        return len(self._itos)

    def __getitem__(self, token: str) -> int:
        return self._stoi.get(token, self._stoi[self.unk_token])

    def __contains__(self, token: object) -> bool:
        return token in self._stoi

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Vocab)
            and self._itos == other._itos
            and (self.pad_token, self.unk_token) == (other.pad_token, other.unk_token)
        )

    def __repr__(self) -> str:
        return f"Vocab({len(self)} tokens, pad_id={self.pad_id}, unk_id={self.unk_id})"

    @property
    def itos(self) -> list[str]:
        """Tokens in id order (a copy)."""
        return list(self._itos)

    @property
    def stoi(self) -> dict[str, int]:
        """Token -> id (a copy)."""
        return dict(self._stoi)

    @property
    def pad_id(self) -> int:
        return self._stoi[self.pad_token]

    @property
    def unk_id(self) -> int:
        return self._stoi[self.unk_token]

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Ids of ``tokens``; unknown tokens become ``unk_id``."""
        if isinstance(tokens, str):
            raise TypeError("encode expects a list of tokens, not a str; tokenise the text first")
        if isinstance(tokens, (bytes, bytearray)) or not hasattr(tokens, "__iter__"):
            raise TypeError(f"encode expects a list of str tokens, got {type(tokens).__name__}")
        unk = self._stoi[self.unk_token]
        return [self._stoi.get(t, unk) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens of ``ids`` (accepts a list or a 1-D tensor)."""
        if torch.is_tensor(ids):
            ids = ids.tolist()
        out = []
        for i in ids:
            if not 0 <= int(i) < len(self._itos):
                raise IndexError(f"id {i} is outside the vocabulary (0..{len(self._itos) - 1})")
            out.append(self._itos[int(i)])
        return out

    # persistence
    def to_dict(self) -> dict:
        return {
            "format": self.FORMAT,
            "version": 1,
            "pad_token": self.pad_token,
            "unk_token": self.unk_token,
            "specials": list(self.specials),
            "itos": self._itos,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Vocab":
        if not isinstance(data, dict) or data.get("format") != cls.FORMAT or not isinstance(data.get("itos"), list):
            raise ValueError(f"not a saved {cls.FORMAT} (expected a JSON object with format={cls.FORMAT!r} and 'itos')")
        return cls(data["itos"], data["pad_token"], data["unk_token"], data.get("specials"))

    def save(self, path: str | Path) -> Path:
        """Write the vocabulary as JSON (atomically: a reader never sees half a file)."""
        path = Path(path)
        atomic_write_bytes(path, json.dumps(self.to_dict(), ensure_ascii=False).encode("utf-8"))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Vocab":
        """Read a vocabulary written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no vocabulary file at {path}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} is not valid JSON ({exc})") from None
        return cls.from_dict(data)


# --------------------------------------------------------------------------- numericalise and pad


def encode_texts(
    texts: Iterable[str], tokenize: Callable[[str], list[str]], vocab: Vocab, max_len: int | None = None
) -> list[list[int]]:
    """Tokenise and numericalise each text, keeping its first ``max_len`` ids.

    A text without tokens (empty, white space only) becomes ``[unk_id]``, so no sequence has length 0.
    """
    if isinstance(texts, str):
        raise TypeError("encode_texts expects a list of texts, not a single str; wrap it in a list")
    if max_len is not None and max_len < 1:
        raise ValueError(f"max_len must be None or >= 1, got {max_len}")
    out = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(
                f"text at row {i} is {type(text).__name__} ({text!r}), not str; drop or fill missing texts first"
            )
        ids = vocab.encode(tokenize(text))[:max_len]
        out.append(ids or [vocab.unk_id])
    return out


def pad_batch(
    sequences: Sequence[Sequence[int]], pad_id: int, max_len: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id sequences into a ``LongTensor[B, T]`` (T = longest, capped at ``max_len``) and their lengths."""
    if len(sequences) == 0:
        raise ValueError("cannot pad an empty batch")
    lengths = [len(s) if max_len is None else min(len(s), max_len) for s in sequences]
    if min(lengths) == 0:
        raise ValueError(f"sequence {lengths.index(0)} is empty; every sequence needs at least one token")
    batch = torch.full((len(sequences), max(lengths)), pad_id, dtype=torch.long)
    for row, (seq, n) in enumerate(zip(sequences, lengths)):
        batch[row, :n] = torch.as_tensor(list(seq[:n]), dtype=torch.long)
    return batch, torch.tensor(lengths, dtype=torch.long)


# --------------------------------------------------------------------------- batching


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of examples with similar lengths, so little of each batch is padding.

    Each epoch: shuffle the indices, cut them into chunks of ``batch_size * bucket_size_multiplier``, sort each
    chunk by length, cut it into batches and shuffle the batches. The order depends only on ``seed`` and the
    epoch (which advances after every full pass, or is set with :meth:`set_epoch`). With ``shuffle=False`` the
    batches are simply the indices sorted by length.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        bucket_size_multiplier: int = 50,
        drop_last: bool = False,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if bucket_size_multiplier < 1:
            raise ValueError(f"bucket_size_multiplier must be >= 1, got {bucket_size_multiplier}")
        self.lengths = np.asarray(lengths)
        if self.lengths.ndim != 1 or len(self.lengths) == 0:
            raise ValueError("lengths must be a non-empty 1-D sequence")
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.bucket_size_multiplier, self.drop_last = bucket_size_multiplier, drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self, epoch: int | None = None) -> list[list[int]]:
        """The batches of one epoch (``epoch`` defaults to the current one)."""
        epoch = self.epoch if epoch is None else epoch
        if not self.shuffle:
            order = np.argsort(self.lengths, kind="stable")
            chunks = [order]
        else:
            rng = np.random.default_rng([self.seed, epoch])
            order = rng.permutation(len(self.lengths))
            size = self.batch_size * self.bucket_size_multiplier
            chunks = [
                chunk[np.argsort(self.lengths[chunk], kind="stable")]
                for chunk in (order[i : i + size] for i in range(0, len(order), size))
            ]
        batches = [
            chunk[i : i + self.batch_size].tolist() for chunk in chunks for i in range(0, len(chunk), self.batch_size)
        ]
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        if self.shuffle:
            perm = np.random.default_rng([self.seed, epoch, 1]).permutation(len(batches))
            batches = [batches[i] for i in perm]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.batches()
        self.epoch += 1
        return iter(batches)

    def __len__(self) -> int:
        n = len(self.lengths)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)


class _EncodedDataset(Dataset):
    def __init__(self, ids: Sequence[Sequence[int]], labels: Sequence[int]):
        if len(ids) != len(labels):
            raise ValueError(f"{len(ids)} sequences but {len(labels)} labels")
        self.ids, self.labels = ids, np.asarray(labels)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int):
        return self.ids[i], int(self.labels[i])


def make_loader(
    ids: Sequence[Sequence[int]],
    labels: Sequence[int],
    batch_size: int,
    pad_id: int,
    shuffle: bool,
    bucket: bool = True,
    seed: int = 0,
    max_len: int | None = None,
) -> DataLoader:
    """A DataLoader yielding ``(ids LongTensor[B, T], lengths LongTensor[B], labels LongTensor[B])``.

    ``model(ids, lengths)`` then fits :func:`helpers.core.training.fit`. With ``shuffle=True`` and ``bucket=True``
    batches hold similar lengths (:class:`BucketBatchSampler`); with ``bucket=False`` they are drawn at random, like a
    plain shuffled DataLoader. With ``shuffle=False`` the rows keep their order (``bucket`` is ignored), so
    predictions line up with the texts. Shuffling is seeded by ``seed``: the same seed gives the same batches.
    """
    dataset = _EncodedDataset(ids, labels)
    if len(dataset) == 0:
        raise ValueError("cannot make a loader from zero examples")

    def collate(items):
        seqs, ys = zip(*items)
        padded, lengths = pad_batch(seqs, pad_id, max_len)
        return padded, lengths, torch.tensor(ys, dtype=torch.long)

    if shuffle and bucket:
        sampler = BucketBatchSampler([len(s) for s in ids], batch_size, shuffle=True, seed=seed)
        return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate)
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, collate_fn=collate)


__all__ = [
    "basic_english",
    "whitespace",
    "TOKENIZERS",
    "register_tokenizer",
    "get_tokenizer",
    "Vocab",
    "encode_texts",
    "pad_batch",
    "BucketBatchSampler",
    "make_loader",
]
