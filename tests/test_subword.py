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
