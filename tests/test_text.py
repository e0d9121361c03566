"""helpers.text.pipeline: the hand-written torchtext replacement (tokeniser, vocabulary, padding, bucketing,
loaders)."""

import json

import pytest
import torch

from helpers.text.pipeline import (
    TOKENIZERS,
    BucketBatchSampler,
    Vocab,
    basic_english,
    encode_texts,
    get_tokenizer,
    make_loader,
    pad_batch,
    register_tokenizer,
)

CORPUS = [["i", "feel", "happy"], ["i", "feel", "sad"], ["i", "am", "happy"], ["so", "happy"]]


# --------------------------------------------------------------------------- basic_english


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "You can now install TorchText using pip!",
            ["you", "can", "now", "install", "torchtext", "using", "pip", "!"],
        ),
        ("I don't know.", ["i", "don", "'", "t", "know", "."]),
        ('He said "hi", (twice)?', ["he", "said", "hi", ",", "(", "twice", ")", "?"]),
        ("a;b:c<br />d", ["a", "b", "c", "d"]),
        ("  spaces\tand\nnewlines  ", ["spaces", "and", "newlines"]),
        ("", []),
        ("i feel 😊 today", ["i", "feel", "😊", "today"]),
    ],
)
def test_basic_english_matches_torchtext_rules(text, expected):
    assert basic_english(text) == expected


def test_basic_english_rejects_non_str():
    with pytest.raises(TypeError, match="str"):
        basic_english(None)


def test_tokenizer_registry():
    assert get_tokenizer("basic_english") is basic_english
    assert get_tokenizer("whitespace")("a  b") == ["a", "b"]
    with pytest.raises(KeyError, match="register_tokenizer"):
        get_tokenizer("no-such-tokenizer")
    fn = lambda s: list(s)  # noqa: E731
    try:
        register_tokenizer("test_chars", fn)
        assert get_tokenizer("test_chars")("ab") == ["a", "b"]
        register_tokenizer("test_chars", fn)  # same function again: fine
        with pytest.raises(ValueError, match="already registered"):
            register_tokenizer("test_chars", str.split)
        register_tokenizer("test_chars", str.split, overwrite=True)
    finally:
        TOKENIZERS.pop("test_chars", None)


# --------------------------------------------------------------------------- Vocab


def test_vocab_specials_order_and_unknown():
    vocab = Vocab.build(CORPUS)
    assert vocab.itos[:2] == ["<pad>", "<unk>"]
    assert (vocab.pad_id, vocab.unk_id) == (0, 1)
    assert vocab.itos[2:4] == ["happy", "i"]  # by frequency: happy 3, i 3 (tie -> alphabetical)
    assert vocab.itos[4] == "feel"
    assert vocab["never-seen"] == vocab.unk_id
    assert "happy" in vocab and "never-seen" not in vocab
    assert len(vocab) == 2 + 6


def test_vocab_ties_are_deterministic_regardless_of_corpus_order():
    assert Vocab.build(CORPUS).itos == Vocab.build(list(reversed(CORPUS))).itos


def test_vocab_min_freq_and_max_size():
    vocab = Vocab.build(CORPUS, min_freq=2)
    assert vocab.itos == ["<pad>", "<unk>", "happy", "i", "feel"]
    assert vocab["sad"] == vocab.unk_id
    assert Vocab.build(CORPUS, max_size=1).itos == ["<pad>", "<unk>", "happy"]


def test_vocab_custom_specials_and_special_tokens_in_corpus():
    vocab = Vocab.build([["<unk>", "a", "<cls>"]], specials=("<pad>", "<unk>", "<cls>"))
    assert vocab.itos == ["<pad>", "<unk>", "<cls>", "a"]


def test_vocab_encode_decode():
    vocab = Vocab.build(CORPUS)
    ids = vocab.encode(["i", "feel", "angry"])
    assert ids == [vocab["i"], vocab["feel"], vocab.unk_id]
    assert vocab.decode(ids) == ["i", "feel", "<unk>"]
    assert vocab.decode(torch.tensor(ids)) == ["i", "feel", "<unk>"]
    with pytest.raises(IndexError):
        vocab.decode([len(vocab)])
    with pytest.raises(TypeError, match="tokenise"):
        vocab.encode("i feel")


def test_vocab_bad_input():
    with pytest.raises(ValueError, match="min_freq"):
        Vocab.build(CORPUS, min_freq=0)
    with pytest.raises(ValueError, match="empty corpus"):
        Vocab.build([])
    with pytest.raises(ValueError, match="empty corpus"):
        Vocab.build([[], []])
    with pytest.raises(ValueError, match="specials"):
        Vocab.build(CORPUS, specials=("<pad>",))
    with pytest.raises(TypeError, match="tokenise"):
        Vocab.build(["i feel happy"])


def test_vocab_save_load_round_trip(tmp_path):
    vocab = Vocab.build(CORPUS, min_freq=1)
    path = vocab.save(tmp_path / "sub" / "vocab.json")
    loaded = Vocab.load(path)
    assert loaded == vocab and loaded.itos == vocab.itos
    assert (loaded.pad_id, loaded.unk_id) == (vocab.pad_id, vocab.unk_id)
    assert list(tmp_path.joinpath("sub").iterdir()) == [path]  # no temporary file left behind
    with pytest.raises(FileNotFoundError):
        Vocab.load(tmp_path / "missing.json")
    (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(ValueError, match="not a saved"):
        Vocab.load(tmp_path / "other.json")


# --------------------------------------------------------------------------- numericalise and pad


def test_encode_texts_empty_truncation_and_type_errors():
    vocab = Vocab.build(CORPUS)
    ids = encode_texts(["I feel happy!", "", "   ", "happy " * 10], basic_english, vocab, max_len=4)
    assert ids[0] == [vocab["i"], vocab["feel"], vocab["happy"], vocab.unk_id]  # "!" is unknown
    assert ids[1] == [vocab.unk_id] and ids[2] == [vocab.unk_id]
    assert len(ids[3]) == 4
    with pytest.raises(TypeError, match="row 1"):
        encode_texts(["fine", None], basic_english, vocab)
    with pytest.raises(TypeError, match="single str"):
        encode_texts("i feel", basic_english, vocab)


def test_pad_batch_shapes_and_lengths():
    padded, lengths = pad_batch([[5, 6, 7], [8], [9, 10]], pad_id=0)
    assert padded.shape == (3, 3) and padded.dtype == torch.long
    assert lengths.tolist() == [3, 1, 2]
    assert padded.tolist() == [[5, 6, 7], [8, 0, 0], [9, 10, 0]]
    padded, lengths = pad_batch([[1, 2, 3, 4], [5]], pad_id=9, max_len=2)
    assert padded.tolist() == [[1, 2], [5, 9]] and lengths.tolist() == [2, 1]
    with pytest.raises(ValueError, match="empty"):
        pad_batch([[1], []], pad_id=0)
    with pytest.raises(ValueError, match="empty batch"):
        pad_batch([], pad_id=0)


# --------------------------------------------------------------------------- batching


def test_bucket_sampler_covers_every_index_once_and_is_deterministic():
    lengths = [(i * 7919) % 53 + 1 for i in range(1000)]
    sampler = BucketBatchSampler(lengths, batch_size=32, seed=3, bucket_size_multiplier=5)
    epoch0 = list(sampler)
    flat = [i for batch in epoch0 for i in batch]
    assert sorted(flat) == list(range(1000))
    assert len(epoch0) == len(sampler) == 32
    again = BucketBatchSampler(lengths, batch_size=32, seed=3, bucket_size_multiplier=5)
    assert list(again) == epoch0  # same seed, same epoch -> same batches
    assert list(sampler) != epoch0  # the next epoch is shuffled differently
    assert sampler.batches(epoch=0) == epoch0
    assert BucketBatchSampler(lengths, 32, seed=4, bucket_size_multiplier=5).batches(0) != epoch0


def test_bucket_sampler_reduces_padding():
    lengths = [(i * 7919) % 53 + 1 for i in range(1000)]

    def pad_fraction(batches):
        return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches) / sum(lengths)

    bucketed = BucketBatchSampler(lengths, 32, seed=0).batches(0)
    random_batches = [list(range(i, min(i + 32, 1000))) for i in range(0, 1000, 32)]
    assert pad_fraction(bucketed) < 0.2 * pad_fraction(random_batches)
    unshuffled = BucketBatchSampler(lengths, 32, shuffle=False).batches()
    assert [lengths[i] for b in unshuffled for i in b] == sorted(lengths)


def test_make_loader_yields_ids_lengths_labels():
    ids = [[1, 2, 3], [4], [5, 6], [7, 8, 9, 10], [11]]
    labels = [0, 1, 0, 1, 1]
    loader = make_loader(ids, labels, batch_size=2, pad_id=0, shuffle=False)
    batches = list(loader)
    assert len(batches) == 3
    x, lengths, y = batches[0]
    assert x.tolist() == [[1, 2, 3], [4, 0, 0]] and lengths.tolist() == [3, 1] and y.tolist() == [0, 1]
    # shuffled loaders (bucketed or not) see every example once, the same way for the same seed
    for bucket in (True, False):
        first = [t.tolist() for b in make_loader(ids, labels, 2, 0, shuffle=True, bucket=bucket, seed=1) for t in b[2:]]
        second = [
            t.tolist() for b in make_loader(ids, labels, 2, 0, shuffle=True, bucket=bucket, seed=1) for t in b[2:]
        ]
        assert first == second
        seen = sorted(int(n) for b in make_loader(ids, labels, 2, 0, shuffle=True, bucket=bucket) for n in b[1])
        assert seen == sorted(len(s) for s in ids)
    with pytest.raises(ValueError, match="labels"):
        make_loader(ids, labels[:-1], 2, 0, shuffle=False)
