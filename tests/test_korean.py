"""helpers.text.korean: the four Korean tokeniser adapters, the corpus cache and the tokeniser statistics."""

from __future__ import annotations

import json

import pytest

from helpers.text import korean
from helpers.text.pipeline import TOKENIZERS, Vocab, encode_texts

BACKENDS = ["whitespace", "okt", "mecab", "kiwi"]
MORPH_BACKENDS = ["okt", "mecab", "kiwi"]
SENTENCES = [
    "이 영화가 정말 재밌었어요",
    "배우들의 연기는 좋았지만 스토리가 너무 지루했다",
    "시간이 아깝다 ㅠㅠ",
]


@pytest.fixture(scope="module")
def toks():
    return {name: korean.get_korean_tokenizer(name) for name in BACKENDS}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    return tmp_path / "tokenized"


@pytest.mark.parametrize("name", MORPH_BACKENDS)
def test_particles_are_split_off(toks, name):
    tokens = toks[name](SENTENCES[0])
    assert "영화" in tokens and "가" in tokens, tokens
    assert "영화가" not in tokens
    second = toks[name](SENTENCES[1])
    assert {"배우", "연기", "스토리"} <= set(second), second
    assert "ㅠㅠ" in toks[name](SENTENCES[2])


def test_whitespace_keeps_eojeols(toks):
    assert toks["whitespace"](SENTENCES[0]) == ["이", "영화가", "정말", "재밌었어요"]


def test_okt_options():
    assert korean.get_korean_tokenizer("okt", norm=False, stem=False)("재밌었어요 ㅋㅋㅋㅋㅋ") == [
        "재밌었어요",
        "ㅋㅋㅋㅋㅋ",
    ]
    normed = korean.get_korean_tokenizer("okt")("재밌었어요 ㅋㅋㅋㅋㅋ")  # norm and stem by default
    assert normed == ["재밌다", "ㅋㅋㅋ"]
    assert korean.get_korean_tokenizer("okt", stem=False).name == "ko-okt-norm"
    assert korean.get_korean_tokenizer("ko-okt-raw") == korean.KoreanTokenizer("okt", False, False)


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("text", ["", "   ", "\t\n", None])
def test_empty_inputs_give_no_tokens(toks, name, text):
    assert toks[name](text) == []


@pytest.mark.parametrize("name", BACKENDS)
def test_emoji_control_characters_and_mixed_english(toks, name):
    emoji = toks[name]("😀😂👍")
    assert emoji and "".join(emoji) == "😀😂👍"
    assert toks[name]("a\x00b") == ["a", "b"]  # MeCab alone would stop at the NUL
    mixed = toks[name]("이 movie 정말 good이에요 CGV에서 봤음")
    assert all(isinstance(t, str) and t and t == t.strip() for t in mixed)
    assert "movie" in mixed and "cgv" in " ".join(mixed)  # Latin letters are lower-cased
    if name != "whitespace":
        assert "good" in mixed and "에서" in mixed


@pytest.mark.parametrize("name", BACKENDS)
def test_very_long_text(toks, name):
    text = ("이 영화 정말 재밌어요 최고! 배우들 연기도 좋고 스토리도 탄탄함. " * 300)[:10_000]
    tokens = toks[name](text)
    assert len(tokens) > 1000 and all(tokens)
    unspaced = toks[name](text.replace(" ", "")[:3_000])  # long runs without spaces are cut, not choked on
    assert len(unspaced) >= 20


def test_short_texts_are_not_cut():
    review = "정말재밌게봤습니다" * 15  # 135 characters, no space: analysed in one piece
    assert korean._pieces(review) == [review]
    long = "가나다 " * 200
    pieces = korean._pieces(long.strip())
    assert all(len(p) <= korean._MAX_PIECE for p in pieces) and " ".join(pieces) == long.strip()


def test_registered_for_saved_models(toks):
    for name in ("ko-whitespace", "ko-okt", "ko-okt-raw", "ko-mecab", "ko-kiwi"):
        assert name in TOKENIZERS
    assert TOKENIZERS["ko-mecab"](SENTENCES[0]) == toks["mecab"](SENTENCES[0])
    vocab = Vocab.build([toks["mecab"](s) for s in SENTENCES])
    ids = encode_texts(["영화가 정말", ""], TOKENIZERS["ko-mecab"], vocab)
    assert ids[0] == [vocab["영화"], vocab["가"], vocab["정말"]] and ids[1] == [vocab.unk_id]


def test_unknown_names_fail_clearly():
    with pytest.raises(ValueError, match="unknown Korean tokeniser"):
        korean.get_korean_tokenizer("komoran")
    with pytest.raises(TypeError, match="norm and stem"):
        korean.get_korean_tokenizer("mecab", lowercase=False)


def test_cache_roundtrip_and_invalidation(cache):
    texts = SENTENCES + ["", "😀"]
    first = korean.tokenize_corpus(texts, "mecab", cache_name="t", progress=False)
    assert first == korean.get_korean_tokenizer("mecab").batch(texts)
    path = korean.corpus_cache_path(texts, "mecab", "t")
    assert path.is_file() and path.parent == cache
    assert korean.tokenize_corpus(texts, "mecab", cache_name="t", progress=False) == first
    # prove the second call read the file: doctor it and read again
    payload = json.loads(path.read_text(encoding="utf-8"))
    payload["tokens"] = [["doctored"]] * len(texts)
    path.write_text(json.dumps(payload), encoding="utf-8")
    assert korean.tokenize_corpus(texts, "mecab", cache_name="t", progress=False)[0] == ["doctored"]
    # a changed corpus (one character) gets its own key: the doctored file is never used for it
    changed = texts[:1] + ["배우들의 연기는 좋았지만 스토리가 너무 지루했어"] + texts[2:]
    again = korean.tokenize_corpus(changed, "mecab", cache_name="t", progress=False)
    assert again == korean.get_korean_tokenizer("mecab").batch(changed)
    assert not path.exists()  # the older file of the same cache name and tokeniser was removed
    # another tokeniser or other options never share a file either
    okt = korean.tokenize_corpus(changed, "okt", cache_name="t", progress=False, stem=False)
    assert okt == korean.get_korean_tokenizer("okt", stem=False).batch(changed)
    assert len(list(cache.glob("t-*.json"))) == 2


def test_damaged_cache_is_rebuilt(cache):
    path = korean.corpus_cache_path(SENTENCES, "whitespace", "d")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not JSON")
    assert korean.tokenize_corpus(SENTENCES, "whitespace", cache_name="d", progress=False) == [
        s.split() for s in SENTENCES
    ]
    assert json.loads(path.read_text(encoding="utf-8"))["tokens"] == [s.split() for s in SENTENCES]


def test_no_cache_without_a_name(cache):
    assert korean.tokenize_corpus(SENTENCES, "kiwi", progress=False)[0][:2] == ["이", "영화"]
    assert not cache.exists()
    with pytest.raises(ValueError, match="cache_name"):
        korean.tokenize_corpus(SENTENCES, "kiwi", cache_name="../x", progress=False)
    with pytest.raises(TypeError):
        korean.tokenize_corpus("영화", "kiwi")


def test_tokenizer_stats_exact():
    train = [["영화", "가", "좋", "다"], ["영화", "는", "별로"], ["좋", "다"]]
    test = [["영화", "가", "최고"], ["최고", "다", "ㅋㅋ"], []]
    stats = korean.tokenizer_stats(train, test)
    assert stats["vocab_size"] == 6  # 영화 가 좋 다 는 별로
    assert stats["test_tokens"] == 6 and stats["unk_tokens"] == 3  # 최고 ×2, ㅋㅋ
    assert stats["unk_rate"] == pytest.approx(0.5)
    assert stats["test_types"] == 5 and stats["oov_types"] == 2 and stats["oov_type_rate"] == pytest.approx(0.4)
    assert stats["tokens_per_text"] == pytest.approx(2.0) and stats["empty_texts"] == 1
    rare = korean.tokenizer_stats(train, test, min_freq=2)  # vocabulary: 영화 좋 다
    assert rare["vocab_size"] == 3 and rare["unk_tokens"] == 4 and rare["unk_rate"] == pytest.approx(4 / 6)


def test_measure_speed():
    speed = korean.measure_speed("whitespace", SENTENCES * 10)
    assert speed["texts"] == 30 and speed["tokens"] == 10 * sum(len(s.split()) for s in SENTENCES)
    assert speed["tokens_per_s"] > 0 and speed["tokens_per_text"] == pytest.approx(speed["tokens"] / 30)
