"""Korean tokenisers behind one interface, cached corpus tokenisation, and tokeniser statistics.

Korean is agglutinative: a word as written between spaces (an *eojeol*) is a stem plus particles and
endings, so "영화", "영화가", "영화는", "영화를", "영화도" … are five different white-space tokens for one noun.
A morphological analyser splits them back into morphemes. Four adapters, each a callable ``str -> list[str]``:

=============  ======================================================================================
``whitespace`` ``text.split()``: the naive baseline.
``okt``        konlpy's Open Korean Text (Twitter) analyser, ``Okt().morphs(text, norm, stem)``. Runs on the
               JVM (Java 8+; konlpy 0.6 starts it on first use). ``norm=True`` normalises chat spellings
               ("ㅋㅋㅋㅋㅋ" -> "ㅋㅋㅋ", "안녕하세욬" -> "안녕하세요"); ``stem=True`` turns verbs and adjectives into
               their dictionary form ("재밌었어요" -> "재밌다"). Both default to True; the slowest of the four.
``mecab``      MeCab with the mecab-ko-dic dictionary through **python-mecab-ko** (``from mecab import MeCab``;
               the wheel ships the dictionary, so nothing else is installed). konlpy's own
               ``konlpy.tag.Mecab`` wrapper needs a *system* MeCab and mecab-ko-dic install (C++ build,
               ``bash <(curl -s https://raw.githubusercontent.com/konlpy/konlpy/master/scripts/mecab.sh)``)
               and fails without one; the course therefore does not use it.
``kiwi``       kiwipiepy's ``Kiwi().tokenize`` (pure wheel, no Java): the forms of its tokens, with
               compatibility jamo (``"ㅂ니다"`` rather than the conjoining ``"ᆸ니다"``).
=============  ======================================================================================

Every adapter first cleans the text the same way: anything that is not a ``str`` (``None``, NaN) becomes
``""``, the text is NFC-normalised (macOS input is often decomposed), control characters become spaces, and
the result is stripped; an empty or white-space-only text gives ``[]``. Latin letters are lower-cased
("CGV" and "cgv" are one token). Texts longer than 300 characters are analysed in pieces cut at spaces
(runs of more than 150 characters without a space are cut hard), because Okt's time grows quickly with
long unspaced runs; NSMC reviews (at most 146 characters) are never cut.

The adapters are registered in :data:`helpers.text.pipeline.TOKENIZERS` as ``ko-whitespace``, ``ko-okt`` (norm and
stem), ``ko-okt-raw`` (neither), ``ko-okt-norm``, ``ko-okt-stem``, ``ko-mecab`` and ``ko-kiwi`` when this
module is imported, so a saved model names its tokeniser and :func:`helpers.text.lstm.load_text_classifier`
finds it (:func:`helpers.text.pipeline.get_tokenizer` imports this module on first use of a ``ko-*`` name).

:func:`tokenize_corpus` tokenises many texts with a progress bar and caches the result under
``helpers.core.data.cache_dir() / "tokenized"``; :func:`measure_speed` and :func:`tokenizer_stats` give the numbers
a tokeniser comparison needs (tokens per second, vocabulary size, unknown-token rate).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from tqdm.auto import tqdm

from helpers.core.data import cache_dir
from helpers.core.download import atomic_write_bytes
from helpers.text.pipeline import TOKENIZERS, register_tokenizer

BACKENDS = ("whitespace", "okt", "mecab", "kiwi")
CACHE_FORMAT = 1
_MAX_PIECE = 300  # texts longer than this are analysed in pieces cut at spaces
_MAX_RUN = 150  # unspaced runs longer than this are cut hard (Okt is slow on long runs)
_PACKAGES = {"whitespace": None, "okt": "konlpy", "mecab": "python-mecab-ko", "kiwi": "kiwipiepy"}
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200b\ufeff]")  # Unicode category Cc, zero-width space, BOM
_ENGINES: dict[str, object] = {}  # one analyser per backend and process, created on first use


# --------------------------------------------------------------------------- cleaning


def clean_text(text: object) -> str:
    """The cleaning every adapter applies: non-str -> "", NFC, control characters -> space, strip."""
    if not isinstance(text, str):
        return ""
    return _CONTROL.sub(" ", unicodedata.normalize("NFC", text)).strip()


def _pieces(text: str) -> list[str]:
    """``text`` itself when short, else pieces of at most ``_MAX_PIECE`` characters cut at spaces."""
    if len(text) <= _MAX_PIECE:
        return [text]
    words = []
    for word in text.split():
        words += [word[i : i + _MAX_RUN] for i in range(0, len(word), _MAX_RUN)]
    pieces, current, size = [], [], 0
    for word in words:
        if current and size + 1 + len(word) > _MAX_PIECE:
            pieces.append(" ".join(current))
            current, size = [], 0
        current.append(word)
        size += len(word) + (1 if size else 0)
    if current:
        pieces.append(" ".join(current))
    return pieces


# --------------------------------------------------------------------------- adapters


def _engine(backend: str):
    if backend not in _ENGINES:
        if backend == "okt":
            from konlpy.tag import Okt

            _ENGINES[backend] = Okt()
        elif backend == "mecab":
            from mecab import MeCab  # python-mecab-ko, not konlpy.tag.Mecab (which needs a system MeCab)

            _ENGINES[backend] = MeCab()
        elif backend == "kiwi":
            from kiwipiepy import Kiwi

            _ENGINES[backend] = Kiwi()
        else:
            raise ValueError(f"no engine for backend {backend!r}")
    return _ENGINES[backend]


@dataclass(frozen=True)
class KoreanTokenizer:
    """A Korean tokeniser: ``tok(text) -> list[str]``; ``tok.batch(texts)`` for many texts.

    ``backend`` is one of :data:`BACKENDS`; ``norm`` and ``stem`` are Okt's options (ignored elsewhere).
    The analyser is created on first use and is not pickled, so the object can be sent to worker processes.
    """

    backend: str
    norm: bool = True
    stem: bool = True

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown Korean tokeniser {self.backend!r}; choose one of {list(BACKENDS)}")

    @property
    def name(self) -> str:
        """The name it is registered under in :data:`helpers.text.pipeline.TOKENIZERS` (e.g. ``"ko-okt"``)."""
        if self.backend != "okt":
            return f"ko-{self.backend}"
        suffix = {(True, True): "", (False, False): "-raw", (True, False): "-norm", (False, True): "-stem"}
        return "ko-okt" + suffix[(self.norm, self.stem)]

    @property
    def version(self) -> str:
        """The analyser package's version (part of the cache key: a new analyser may split differently)."""
        package = _PACKAGES[self.backend]
        return metadata.version(package) if package else "builtin"

    def _analyse(self, text: str) -> list[str]:
        if self.backend == "whitespace":
            return text.split()
        if self.backend == "okt":
            return _engine("okt").morphs(text, norm=self.norm, stem=self.stem)
        if self.backend == "mecab":
            return _engine("mecab").morphs(text)
        return [token.form for token in _engine("kiwi").tokenize(text, compatible_jamo=True)]

    def __call__(self, text: str) -> list[str]:
        text = clean_text(text)
        if not text:
            return []
        tokens = []
        for piece in _pieces(text):
            tokens += self._analyse(piece)
        return [t.lower() for t in tokens if t.strip()]

    def batch(self, texts: Iterable[str]) -> list[list[str]]:
        """Tokenise many texts (the same result as calling the tokeniser on each)."""
        return [self(text) for text in texts]

    def __repr__(self) -> str:
        options = f", norm={self.norm}, stem={self.stem}" if self.backend == "okt" else ""
        return f"KoreanTokenizer({self.backend!r}{options})  # registered as {self.name!r}"


def get_korean_tokenizer(name: str, **options) -> KoreanTokenizer:
    """The tokeniser ``name``: a backend (``"okt"``) or a registered name (``"ko-okt-raw"``).

    ``options`` are ``norm`` and ``stem`` for Okt. Examples::

        get_korean_tokenizer("mecab")("영화가 재밌었어요")   # ['영화', '가', '재밌', '었', '어요']
        get_korean_tokenizer("okt", stem=False)          # registered as "ko-okt-norm"
    """
    if not isinstance(name, str):
        raise TypeError(f"the tokeniser name must be a str, got {type(name).__name__}")
    key = name.lower()
    if key in REGISTERED:
        base = REGISTERED[key]
        return KoreanTokenizer(base.backend, **{"norm": base.norm, "stem": base.stem, **options})
    unknown = set(options) - {"norm", "stem"}
    if unknown:
        raise TypeError(f"unknown option(s) {sorted(unknown)}; the Korean tokenisers take norm and stem (Okt only)")
    if key not in BACKENDS:
        raise ValueError(f"unknown Korean tokeniser {name!r}; choose one of {list(BACKENDS)} or {sorted(REGISTERED)}")
    return KoreanTokenizer(key, **options)


REGISTERED: dict[str, KoreanTokenizer] = {
    tok.name: tok
    for tok in (
        KoreanTokenizer("whitespace"),
        KoreanTokenizer("okt", True, True),
        KoreanTokenizer("okt", False, False),
        KoreanTokenizer("okt", True, False),
        KoreanTokenizer("okt", False, True),
        KoreanTokenizer("mecab"),
        KoreanTokenizer("kiwi"),
    )
}


def register_korean_tokenizers() -> list[str]:
    """Put the adapters into :data:`helpers.text.pipeline.TOKENIZERS` (done on import); returns their names."""
    for name, tok in REGISTERED.items():
        if TOKENIZERS.get(name) != tok:  # equal dataclasses: re-importing the module is harmless
            register_tokenizer(name, tok, overwrite=True)
    return list(REGISTERED)


register_korean_tokenizers()


# --------------------------------------------------------------------------- corpus tokenisation with a cache


def corpus_key(texts: Sequence[str], tokenizer: KoreanTokenizer) -> str:
    """SHA-256 of the texts (in order) and the tokeniser's settings and version: the cache's identity."""
    digest = hashlib.sha256(
        f"korean-tokens/{CACHE_FORMAT}/{tokenizer.backend}/{tokenizer.norm}/{tokenizer.stem}/{tokenizer.version}/{len(texts)}\n".encode()
    )
    for text in texts:
        data = (text if isinstance(text, str) else "\x00<not a str>").encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def corpus_cache_path(texts: Sequence[str], name: str, cache_name: str, **options) -> Path:
    """Where :func:`tokenize_corpus` keeps the tokens of ``texts`` (the name holds part of the key)."""
    tokenizer = get_korean_tokenizer(name, **options)
    key = corpus_key(texts, tokenizer)
    return cache_dir() / "tokenized" / f"{cache_name}-{tokenizer.name}-{key[:16]}.json"


def _tokenize_chunk(tokenizer: KoreanTokenizer, texts: list[str]) -> list[list[str]]:
    return tokenizer.batch(texts)


def tokenize_corpus(
    texts: Sequence[str],
    name: str,
    cache_name: str | None = None,
    progress: bool = True,
    workers: int = 1,
    chunk_size: int = 1000,
    **options,
) -> list[list[str]]:
    """Tokenise ``texts`` with the Korean tokeniser ``name``; cache the result when ``cache_name`` is given.

    The cache file is ``cache_dir()/tokenized/<cache_name>-<tokeniser>-<key>.json`` (plain JSON: reading it can
    never run code; older ``.pkl`` caches are ignored, never unpickled, and rebuilt) where the key hashes the
    texts, the tokeniser's options and its package version, so a changed corpus or analyser never reads a
    stale file (the full key is stored inside and checked too). The file is written atomically; older files
    with the same ``cache_name`` and tokeniser are removed. ``workers > 1`` tokenises chunks in that many
    processes (spawned, so each starts its own analyser; for Okt that is a JVM each, about 2 s).
    """
    if isinstance(texts, str):
        raise TypeError("tokenize_corpus expects a list of texts, not a single str")
    texts = list(texts)
    tokenizer = get_korean_tokenizer(name, **options)
    path = key = None
    if cache_name is not None:
        if not cache_name or any(ch in cache_name for ch in "/\\") or cache_name.startswith("."):
            raise ValueError(f"cache_name must be a plain file-name part, got {cache_name!r}")
        key = corpus_key(texts, tokenizer)
        path = cache_dir() / "tokenized" / f"{cache_name}-{tokenizer.name}-{key[:16]}.json"
        if path.is_file():
            try:
                payload = json.loads(path.read_text(encoding="utf-8"))
                tokens = payload["tokens"]
                if (
                    payload.get("key") == key
                    and isinstance(tokens, list)
                    and len(tokens) == len(texts)
                    and all(isinstance(t, list) for t in tokens)
                ):
                    if progress:
                        print(
                            f"{tokenizer.name}: {len(texts):,} texts read from the cache {path.name} "
                            f"(tokenised in {payload['seconds']:.1f} s when it was written)"
                        )
                    return payload["tokens"]
            except (OSError, ValueError, RecursionError, AttributeError, KeyError, TypeError):
                pass  # a damaged cache file is simply rebuilt
    start = time.perf_counter()
    chunks = [texts[i : i + chunk_size] for i in range(0, len(texts), chunk_size)]
    tokens: list[list[str]] = []
    with tqdm(total=len(texts), desc=tokenizer.name, unit="text", disable=not progress, leave=False) as bar:
        if workers > 1 and len(chunks) > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                for done in pool.map(_tokenize_chunk, [tokenizer] * len(chunks), chunks):
                    tokens += done
                    bar.update(len(done))
        else:
            for chunk in chunks:
                tokens += tokenizer.batch(chunk)
                bar.update(len(chunk))
    seconds = time.perf_counter() - start
    if progress:
        n_tokens = sum(map(len, tokens))
        print(
            f"{tokenizer.name}: {len(texts):,} texts, {n_tokens:,} tokens in {seconds:.1f} s "
            f"({len(texts) / max(seconds, 1e-9):,.0f} texts/s)" + (f"; cached as {path.name}" if path else "")
        )
    if path is not None:
        payload = {
            "format": CACHE_FORMAT,
            "key": key,
            "tokenizer": tokenizer.name,
            "version": tokenizer.version,
            "seconds": seconds,
            "tokens": tokens,
        }
        atomic_write_bytes(path, json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
        stale = re.compile(re.escape(f"{cache_name}-{tokenizer.name}-") + r"[0-9a-f]{16}")
        for old in path.parent.glob(f"{cache_name}-{tokenizer.name}-*.json"):
            if old != path and stale.fullmatch(old.stem):
                old.unlink(missing_ok=True)
    return tokens


# --------------------------------------------------------------------------- measurements


def measure_speed(name: str, texts: Sequence[str], **options) -> dict[str, float]:
    """Time the tokeniser ``name`` over ``texts``, one text per call, after a warm-up call.

    The warm-up keeps the one-off start (Okt's JVM, loading a dictionary) out of the figure. Returns
    ``texts``, ``tokens``, ``seconds``, ``texts_per_s``, ``tokens_per_s`` and ``tokens_per_text``.
    """
    tokenizer = get_korean_tokenizer(name, **options)
    texts = list(texts)
    if not texts:
        raise ValueError("need at least one text to time")
    tokenizer("워밍업 문장입니다.")
    start = time.perf_counter()
    n_tokens = sum(len(tokenizer(text)) for text in texts)
    seconds = max(time.perf_counter() - start, 1e-9)
    return {
        "texts": len(texts),
        "tokens": n_tokens,
        "seconds": seconds,
        "texts_per_s": len(texts) / seconds,
        "tokens_per_s": n_tokens / seconds,
        "tokens_per_text": n_tokens / len(texts),
    }


def tokenizer_stats(
    train_tokens: Iterable[list[str]], test_tokens: Iterable[list[str]], min_freq: int = 1
) -> dict[str, float]:
    """Vocabulary size on ``train_tokens`` and how much of ``test_tokens`` it does not cover.

    The vocabulary is every token type seen at least ``min_freq`` times in train (no special tokens counted).

    - ``unk_rate``: the share of test token *occurrences* outside it (what the model sees as ``<unk>``);
    - ``oov_type_rate``: the share of distinct test token *types* outside it;
    - ``tokens_per_text``: mean test tokens per text; ``empty_texts``: test texts with no token at all.
    """
    if not isinstance(min_freq, int) or min_freq < 1:
        raise ValueError(f"min_freq must be an int >= 1, got {min_freq!r}")
    train_counts: Counter[str] = Counter()
    for tokens in train_tokens:
        train_counts.update(tokens)
    vocab = {t for t, c in train_counts.items() if c >= min_freq}
    test_counts: Counter[str] = Counter()
    n_texts = empty = 0
    for tokens in test_tokens:
        test_counts.update(tokens)
        n_texts += 1
        empty += not tokens
    n_test = sum(test_counts.values())
    unk = sum(c for t, c in test_counts.items() if t not in vocab)
    oov_types = sum(1 for t in test_counts if t not in vocab)
    return {
        "vocab_size": len(vocab),
        "train_tokens": sum(train_counts.values()),
        "test_tokens": n_test,
        "unk_tokens": unk,
        "unk_rate": unk / n_test if n_test else 0.0,
        "test_types": len(test_counts),
        "oov_types": oov_types,
        "oov_type_rate": oov_types / len(test_counts) if test_counts else 0.0,
        "tokens_per_text": n_test / n_texts if n_texts else 0.0,
        "empty_texts": empty,
    }


__all__ = [
    "BACKENDS",
    "REGISTERED",
    "KoreanTokenizer",
    "clean_text",
    "get_korean_tokenizer",
    "register_korean_tokenizers",
    "corpus_key",
    "corpus_cache_path",
    "tokenize_corpus",
    "measure_speed",
    "tokenizer_stats",
]
