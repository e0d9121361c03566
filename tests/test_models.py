"""helpers.text.lstm: packed vs unpacked final states, pooling, and the save/load round trip of a text classifier."""

import json

import pytest
import torch

from helpers.core.training import fit, predict_logits
from helpers.text.lstm import LSTMClassifier, TextClassifier, load_text_classifier, save_text_classifier
from helpers.text.pipeline import Vocab, basic_english, make_loader, pad_batch

LABELS = ["sad", "happy"]


def _features(model, ids, lengths):
    """The pooled vector the classifier sees (dropout is off in eval mode)."""
    captured = {}
    handle = model.fc.register_forward_hook(lambda mod, inp, out: captured.setdefault("x", inp[0]))
    model.eval()
    with torch.no_grad():
        model(ids, lengths)
    handle.remove()
    return captured["x"]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_packed_final_state_ignores_padding(cell, bidirectional):
    torch.manual_seed(0)
    model = LSTMClassifier(20, 3, embed_dim=8, hidden_dim=6, num_layers=2, bidirectional=bidirectional, cell=cell)
    short, long = [3, 4, 5], [6, 7, 8, 9, 10, 11]
    padded, lengths = pad_batch([short, long], pad_id=0)
    batched = _features(model, padded, lengths)
    alone = _features(model, torch.tensor([short]), torch.tensor([3]))
    assert batched.shape == (2, 12 if bidirectional else 6)
    torch.testing.assert_close(batched[0], alone[0], atol=1e-6, rtol=1e-5)


def test_unpacked_final_state_runs_over_the_pads():
    torch.manual_seed(0)
    model = LSTMClassifier(20, 3, embed_dim=8, hidden_dim=6, packed=False)
    short, long = [3, 4, 5], [6, 7, 8, 9, 10, 11]
    padded, lengths = pad_batch([short, long], pad_id=0)
    batched = _features(model, padded, lengths)
    alone = _features(model, torch.tensor([short]), torch.tensor([3]))
    assert not torch.allclose(batched[0], alone[0], atol=1e-4)  # three pad steps changed the state
    # ... and it equals running the RNN over the padded row itself: hidden[-1] of the padded batch
    emb = model.embedding(padded)
    _, (h_n, _) = model.rnn(emb)
    torch.testing.assert_close(batched, h_n[-1])
    # the longest row has no pads, so packed and unpacked agree on it
    model.packed = True
    torch.testing.assert_close(_features(model, padded, lengths)[1], batched[1], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("pooling", ["mean", "max"])
@pytest.mark.parametrize("packed", [True, False])
def test_mean_max_pooling_ignore_padding(pooling, packed):
    torch.manual_seed(0)
    model = LSTMClassifier(20, 3, embed_dim=8, hidden_dim=6, pooling=pooling, packed=packed)
    padded, lengths = pad_batch([[3, 4, 5], [6, 7, 8, 9, 10, 11]], pad_id=0)
    batched = _features(model, padded, lengths)
    alone = _features(model, torch.tensor([[3, 4, 5]]), torch.tensor([3]))
    torch.testing.assert_close(batched[0], alone[0], atol=1e-6, rtol=1e-5)


def test_bad_model_arguments_and_inputs():
    with pytest.raises(ValueError, match="cell"):
        LSTMClassifier(10, 2, cell="rnn")
    with pytest.raises(ValueError, match="pooling"):
        LSTMClassifier(10, 2, pooling="attention")
    model = LSTMClassifier(10, 2)
    with pytest.raises(ValueError, match="lengths"):
        model(torch.tensor([[1, 2, 0]]), torch.tensor([0]))
    with pytest.raises(ValueError, match="batch, time"):
        model(torch.tensor([1, 2, 3]), torch.tensor([3]))


def _trained_classifier(tmp_path):
    """A tiny model trained for a few epochs on a toy sad/happy corpus."""
    torch.manual_seed(0)
    texts = ["i feel sad", "so sad today", "i am happy", "happy happy day", "sad and lonely", "what a happy time"] * 4
    labels = [0, 0, 1, 1, 0, 1] * 4
    vocab = Vocab.build(basic_english(t) for t in texts)
    ids = [vocab.encode(basic_english(t)) for t in texts]
    model = LSTMClassifier(len(vocab), 2, embed_dim=16, hidden_dim=16, pad_id=vocab.pad_id, bidirectional=True)
    loader = make_loader(ids, labels, batch_size=4, pad_id=vocab.pad_id, shuffle=True, seed=0)
    fit(
        model,
        loader,
        None,
        torch.optim.Adam(model.parameters(), lr=1e-2),
        epochs=5,
        device=torch.device("cpu"),
        progress=False,
    )
    return model, vocab, ids, labels


def test_save_load_gives_identical_predictions(tmp_path):
    model, vocab, ids, labels = _trained_classifier(tmp_path)
    clf = TextClassifier(model, vocab, "basic_english", LABELS, max_len=32)
    texts = ["I feel SAD!", "", "   ", "🙂🙂", "happy " * 500, "words never seen before"]
    before = clf.predict(texts)
    folder = save_text_classifier(tmp_path / "m", model, vocab, {"max_len": 32, "lr": 1e-2}, LABELS, "basic_english")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.pt", "vocab.json"]
    config = json.loads((folder / "config.json").read_text())
    assert config["task"] == "text-classification-lstm" and config["max_len"] == 32 and config["extra"] == {"lr": 1e-2}
    loaded = load_text_classifier(folder)
    after = loaded.predict(texts)
    assert [p["label"] for p in after] == [p["label"] for p in before]
    for a, b in zip(after, before):
        assert a["probs"] == pytest.approx(b["probs"], abs=1e-6)
        assert set(a["probs"]) == set(LABELS) and sum(a["probs"].values()) == pytest.approx(1.0, abs=1e-5)
    assert loaded.predict("i feel sad")[0]["label"] == "sad"  # a single str works too
    assert loaded.predict([]) == []
    # the loaded model is the same function as the original on a whole loader
    loader = make_loader(ids, labels, batch_size=8, pad_id=vocab.pad_id, shuffle=False)
    torch.testing.assert_close(
        torch.from_numpy(predict_logits(loaded.model, loader, torch.device("cpu"))[0]),
        torch.from_numpy(predict_logits(model, loader, torch.device("cpu"))[0]),
    )


def test_predict_rejects_non_text(tmp_path):
    model, vocab, _, _ = _trained_classifier(tmp_path)
    clf = TextClassifier(model, vocab, "basic_english", LABELS)
    with pytest.raises(TypeError, match="item 1 is NoneType"):
        clf.predict(["fine", None])
    with pytest.raises(TypeError, match="str"):
        clf.predict(None)
    with pytest.raises(TypeError, match="item 0 is int"):
        clf.predict([3])


def test_save_and_load_errors(tmp_path):
    model, vocab, _, _ = _trained_classifier(tmp_path)
    with pytest.raises(FileNotFoundError, match="no saved model folder"):
        load_text_classifier(tmp_path / "nothing-here")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_text_classifier(tmp_path / "empty")
    other = tmp_path / "bert"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"task": "sequence-classification-bert"}))
    with pytest.raises(ValueError, match="not 'text-classification-lstm'"):
        load_text_classifier(other)
    with pytest.raises(ValueError, match="registered"):
        save_text_classifier(tmp_path / "x", model, vocab, {}, LABELS, "no-such-tokenizer")
    with pytest.raises(ValueError, match="disagrees"):
        save_text_classifier(tmp_path / "x", model, vocab, {"hidden_dim": 999}, LABELS, "basic_english")
    with pytest.raises(ValueError, match="label names"):
        save_text_classifier(tmp_path / "x", model, vocab, {}, ["only-one"], "basic_english")
