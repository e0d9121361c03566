import pytest

from helpers.text import subword

CORPUS = [
    "영화가 정말 재밌었어요",
    "영화는 지루했다",
    "배우 연기가 좋았다",
    "the movie was fun",
    "재밌는 영화였다",
] * 20


@pytest.mark.parametrize(
    "kind, pre", [("bpe", "metaspace"), ("wordpiece", "whitespace"), ("unigram", "metaspace"), ("bpe", "whitespace")]
)
def test_trained_tokenizer_covers_the_corpus_and_adds_specials(kind, pre):
    tok = subword.train_subword_tokenizer(CORPUS, kind, vocab_size=120, pre_tokenizer=pre, min_frequency=1)
    assert len(tok) <= 120 + 1  # unigram may keep one piece over
    ids = tok("영화가 재밌었어요")["input_ids"]
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    assert tok.unk_token_id not in ids
    assert tok.pad_token == "[PAD]" and tok.mask_token == "[MASK]"


def test_training_is_deterministic():
    a = subword.train_subword_tokenizer(CORPUS, "bpe", vocab_size=80, pre_tokenizer="metaspace", min_frequency=1)
    b = subword.train_subword_tokenizer(CORPUS, "bpe", vocab_size=80, pre_tokenizer="metaspace", min_frequency=1)
    assert a.get_vocab() == b.get_vocab()


def test_metaspace_decodes_back_exactly():
    tok = subword.train_subword_tokenizer(CORPUS, "bpe", vocab_size=150, pre_tokenizer="metaspace", min_frequency=1)
    text = "영화가 정말 재밌었어요"
    assert tok.decode(tok(text)["input_ids"], skip_special_tokens=True) == text


def test_nfd_splits_syllables_into_jamo():
    tok = subword.train_subword_tokenizer(CORPUS, "wordpiece", vocab_size=60, normalization="nfd", min_frequency=1)
    assert all(0x1100 <= ord(ch) <= 0x11FF for ch in tok.backend_tokenizer.normalizer.normalize_str("영화"))


@pytest.mark.parametrize(
    "bad, error",
    [
        ("one string", TypeError),
        ([None, "ok"], TypeError),
        (["", "   "], ValueError),
    ],
)
def test_bad_training_input(bad, error):
    with pytest.raises(error):
        subword.train_subword_tokenizer(bad, "bpe", vocab_size=50)


def test_bad_options():
    with pytest.raises(ValueError, match="kind"):
        subword.train_subword_tokenizer(CORPUS, "sentencepiece")
    with pytest.raises(ValueError, match="pre_tokenizer"):
        subword.train_subword_tokenizer(CORPUS, "bpe", pre_tokenizer="mecab")
    with pytest.raises(ValueError, match="too small"):
        subword.train_subword_tokenizer(CORPUS, "bpe", vocab_size=3)


def test_length_stats_are_exact():
    stats = subword.length_stats(str.split, ["a b c", "d [UNK]", "   "], unk_token="[UNK]")
    assert stats == {"mean_tokens": 2.5, "std_tokens": 0.5, "max_tokens": 3, "fertility": 1.0, "unk_rate": 0.2}
    assert (
        subword.length_stats(lambda t: list(t.replace(" ", "")), ["ab cd"], known={"a", "b", "c"})["unk_rate"] == 0.25
    )
    with pytest.raises(ValueError):
        subword.length_stats(str.split, ["", None])


def test_retrain_offline_base_and_save_reload(tmp_path):
    base = subword.offline_base_tokenizer()
    new = subword.retrain_tokenizer(base, CORPUS, vocab_size=200)
    assert len(new) <= 200 and new.tokenize("영화가") != base.tokenize("영화가")
    folder = subword.save_tokenizer(new, tmp_path / "ko")
    from transformers import AutoTokenizer

    again = AutoTokenizer.from_pretrained(str(folder))
    assert all(again(t)["input_ids"] == new(t)["input_ids"] for t in CORPUS[:5] + ["", "🤣 mixed 한국어"])
    assert [p.name for p in tmp_path.iterdir()] == ["ko"]  # no staging folder left


def test_korean_subword_tokenizer_loads_a_saved_one(tmp_path):
    tok = subword.train_subword_tokenizer(CORPUS, "wordpiece", vocab_size=80, min_frequency=1)
    subword.save_tokenizer(tok, tmp_path / "saved")
    loaded = subword.korean_subword_tokenizer(folder=tmp_path / "saved")
    assert loaded.get_vocab() == tok.get_vocab()


def _shuffled_ids(tok, seed=0):
    """A copy of a trained WordPiece tokenizer with its non-special pieces under other ids (what another run of
    the trainer gives: huggingface/tokenizers#1794)."""
    import json
    import random

    from tokenizers import Tokenizer

    state = json.loads(tok.backend_tokenizer.to_str())
    vocab = state["model"]["vocab"]
    specials = {t.content for t in tok.backend_tokenizer.get_added_tokens_decoder().values()}
    pieces = [t for t in vocab if t not in specials]
    ids = [vocab[t] for t in pieces]
    random.Random(seed).shuffle(ids)
    state["model"]["vocab"] = {**{t: vocab[t] for t in specials}, **dict(zip(pieces, ids))}
    return Tokenizer.from_str(json.dumps(state))


@pytest.mark.parametrize("retrain", [False, True])
def test_wordpiece_ids_do_not_depend_on_the_run(retrain):
    # the trainer numbers '##' pieces in hash-map order; five trainings in one process differ without the fix
    if retrain:
        base = subword.offline_base_tokenizer()
        vocabs = [subword.retrain_tokenizer(base, CORPUS, vocab_size=200).get_vocab() for _ in range(5)]
    else:
        vocabs = [
            subword.train_subword_tokenizer(CORPUS, "wordpiece", 80, min_frequency=1).get_vocab() for _ in range(5)
        ]
    assert all(v == vocabs[0] for v in vocabs)


def test_repeatable_wordpiece_is_an_ordinary_wordpiece():
    tok = subword.train_subword_tokenizer(CORPUS, "wordpiece", vocab_size=80, min_frequency=1)
    assert subword.has_run_independent_ids(tok) and not subword.has_run_independent_ids(_shuffled_ids(tok))
    # the '##' pieces handed to the trainer are vocabulary entries again, not special or added tokens
    assert tok.all_special_tokens == ["[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]"]
    assert tok.get_added_vocab() == {t: i for i, t in enumerate(subword.SPECIAL_TOKENS)}
    assert "##가" in tok.get_vocab() and tok.tokenize("##가") == tok.tokenize("# # 가")
    assert tok.decode(tok("영화가 재밌는")["input_ids"], skip_special_tokens=True) == "영화가 재밌는"
    assert len(tok) == 80
    base = subword.offline_base_tokenizer()
    new = subword.retrain_tokenizer(base, CORPUS, vocab_size=200)
    assert type(new) is type(base) and new.all_special_tokens == base.all_special_tokens
    assert set(new.get_added_vocab()) == set(base.all_special_tokens) and subword.has_run_independent_ids(new)


def test_an_old_saved_tokenizer_is_used_as_saved_with_a_warning(tmp_path):
    from transformers import PreTrainedTokenizerFast

    tok = subword.train_subword_tokenizer(CORPUS, "wordpiece", vocab_size=80, min_frequency=1)
    old = PreTrainedTokenizerFast(tokenizer_object=_shuffled_ids(tok), unk_token="[UNK]", pad_token="[PAD]")
    subword.save_tokenizer(old, tmp_path / "old")
    with pytest.warns(UserWarning, match="older course version"):
        loaded = subword.korean_subword_tokenizer(folder=tmp_path / "old")
    assert loaded.get_vocab() == old.get_vocab() != tok.get_vocab()  # a model trained with it needs these ids


def test_two_saves_of_one_tokenizer_are_the_same_bytes(tmp_path):
    # the Rust tokenizer remembers the padding of its last call; the saved file must not
    base = subword.offline_base_tokenizer()
    fresh, used = (subword.retrain_tokenizer(base, CORPUS, vocab_size=200) for _ in range(2))
    used(["영화가 재밌다", "a"], padding=True, truncation=True, max_length=8)
    a, b = subword.save_tokenizer(fresh, tmp_path / "a"), subword.save_tokenizer(used, tmp_path / "b")
    assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
    assert all((a / f.name).read_bytes() == f.read_bytes() for f in b.iterdir())
    again = subword.korean_subword_tokenizer(folder=a)
    assert again("영화가 재밌다")["input_ids"] == fresh("영화가 재밌다")["input_ids"]
