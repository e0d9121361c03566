"""Hostile and careless input (issue 12): nothing in a folder or cache runs, nothing a user owns is deleted,
every input is bounded, every mistake is one line.

The remote-code tests plant what transformers would import (``auto_map`` + a Python file that writes a marker
file) and answer ``y`` to any prompt — through stdin for the command-line entry points, through ``input`` for
the functions — then assert the marker was never written.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hostile import RunsCode  # tests/ is on sys.path under pytest
from test_evaluate import _tiny_wav2vec2

from helpers.cli import evaluate
from helpers.core.model_folder import UnsafeFolderError, confined_path, load_pretrained

REPO = Path(__file__).resolve().parents[1]
SENTENCES = ["오늘 정말 기뻐요", "너무 슬퍼요", "왜 화가 나", "정말 무서워요", "기쁜 하루"] * 20


# --------------------------------------------------------------------------- hostile folders


def _plant_remote_code(folder: Path, marker: Path, config_name: str) -> None:
    """``auto_map`` in ``config_name`` pointing at a module that creates ``marker`` when imported."""
    path = folder / config_name
    config = json.loads(path.read_text()) if path.is_file() else {}
    config["auto_map"] = {
        "AutoTokenizer": ["hostile.HostileTokenizer", None],
        "AutoConfig": "hostile.HostileConfig",
        "AutoModelForSequenceClassification": "hostile.HostileModel",
        "AutoFeatureExtractor": "hostile.HostileExtractor",
    }
    path.write_text(json.dumps(config))
    (folder / "hostile.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n"
        "class HostileTokenizer: pass\nclass HostileConfig: pass\n"
        "class HostileModel: pass\nclass HostileExtractor: pass\n"
    )


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    from helpers.text.subword import train_subword_tokenizer

    folder = tmp_path_factory.mktemp("tok") / "tokenizer"
    train_subword_tokenizer(SENTENCES, vocab_size=60, min_frequency=1).save_pretrained(folder)
    return folder


def _macaron(folder: Path, tokenizer_dir: Path, tokenizer_ref: str | None = None) -> Path:
    import shutil

    import torch

    from helpers.text import macaron as mac

    config = mac.MacaronConfig(
        vocab_size=60, num_classes=2, pad_id=0, max_len=16, dim=16, depth=1, heads=2, conv_channels=8
    )
    torch.manual_seed(0)
    mac.save_macaron(
        mac.MacaronClassifier(config),
        folder,
        extra={"labels": ["기쁨", "슬픔"], "max_len": 16, "tokenizer": tokenizer_ref or "no/such/folder"},
    )
    if tokenizer_ref is None:
        shutil.copytree(tokenizer_dir, folder / "tokenizer")
    return folder


def _tiny_bert(folder: Path, tokenizer_dir: Path) -> Path:
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir), trust_remote_code=False)
    config = BertConfig(
        vocab_size=len(tok),
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=8,
        num_labels=2,
        id2label={0: "a", 1: "b"},
        label2id={"a": 0, "b": 1},
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


LOADERS = {
    "subword.korean_subword_tokenizer": lambda f: __import__(
        "helpers.text.subword", fromlist=["x"]
    ).korean_subword_tokenizer(folder=f),
    "korean_emotion.make_classifier": lambda f: __import__(
        "helpers.text.korean_emotion", fromlist=["x"]
    ).make_classifier(str(f), 2),
    "hf_finetune.load_saved_classifier": lambda f: __import__(
        "helpers.text.hf_finetune", fromlist=["x"]
    ).load_saved_classifier(f),
    "wav2vec.load_hub_wav2vec2": lambda f: __import__("helpers.audio.wav2vec", fromlist=["x"]).load_hub_wav2vec2(
        str(f), ["a", "b"]
    ),
    "evaluate.load_model": lambda f: evaluate.load_model(f),
    "load_pretrained(AutoConfig)": lambda f: load_pretrained(__import__("transformers").AutoConfig, f),
}


@pytest.mark.parametrize("config_name", ["config.json", "tokenizer_config.json", "preprocessor_config.json"])
@pytest.mark.parametrize("loader", list(LOADERS))
def test_no_loader_runs_code_from_a_folder_even_when_told_yes(
    tokenizer_dir, tmp_path, monkeypatch, loader, config_name
):
    folder = _tiny_bert(tmp_path / "bert", tokenizer_dir)
    if loader == "wav2vec.load_hub_wav2vec2":
        import shutil

        shutil.rmtree(folder)
        folder = _tiny_wav2vec2(tmp_path / "w2v", ["a", "b"])
    marker = tmp_path / "code-ran"
    _plant_remote_code(folder, marker, config_name)
    monkeypatch.setattr("builtins.input", lambda *a, **k: "y")
    with pytest.raises(ValueError, match="auto_map"):
        LOADERS[loader](folder)
    assert not marker.exists()


def _run(args: list[str], cwd: Path = REPO, timeout: int = 240) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "COURSE_DATA_DIR": os.environ.get("COURSE_DATA_DIR", "/work/shared/data"),
    }
    return subprocess.run(
        [sys.executable, "-m", *args],
        input="y\n" * 20,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip() and "Warning" not in line and "warn(" not in line]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr[-2000:]
    return errors[0]


@pytest.mark.slow  # every CLI entry point in a subprocess: 144 s under load; make test only
def test_command_line_entry_points_never_run_folder_code_with_stdin_yes(tokenizer_dir, tmp_path):
    import shutil

    marker = tmp_path / "code-ran"
    macaron = _macaron(tmp_path / "mac", tokenizer_dir)
    _plant_remote_code(macaron / "tokenizer", marker, "tokenizer_config.json")
    data = tmp_path / "d.csv"
    data.write_text("text,label\n오늘 정말 기뻐요,기쁨\n", encoding="utf-8")
    hostile_tok = shutil.copytree(tokenizer_dir, tmp_path / "hostile-tok")
    _plant_remote_code(hostile_tok, marker, "tokenizer_config.json")
    runs = [
        ["helpers.cli.evaluate", "--model", str(macaron), "--data", str(data), "--no-progress"],
        [
            "helpers.cli.train_text",
            "fold",
            "--fold",
            "0",
            "--tokenizer",
            str(hostile_tok),
            "--epochs",
            "1",
            "--limit",
            "70",
            "--out",
            str(tmp_path / "f.json"),
            "--no-progress",
            "--threads",
            "1",
        ],
        [
            "helpers.cli.train_text",
            "fold",
            "--fold",
            "0",
            "--init",
            str(hostile_tok),
            "--epochs",
            "1",
            "--limit",
            "70",
            "--out",
            str(tmp_path / "g.json"),
            "--no-progress",
            "--threads",
            "1",
        ],
    ]
    for args in runs:
        result = _run(args)
        assert result.returncode == 2, (args, result.stderr[-2000:])
        assert "auto_map" in _one_error_line(result.stderr)
    assert not marker.exists()
    assert not (tmp_path / "f.json").exists() and not (tmp_path / "g.json").exists()


@pytest.mark.parametrize("value", ["/etc", "../../etc", "models/../../x", "~/x"])
def test_paths_inside_a_config_stay_in_the_model_folder(tmp_path, tokenizer_dir, value):
    import shutil

    outside = shutil.copytree(tokenizer_dir, tmp_path / "outside")
    folder = _macaron(tmp_path / "mac", tokenizer_dir, tokenizer_ref=value if value != "../../etc" else "../outside")
    with pytest.raises(evaluate.EvaluationError, match="relative|outside"):
        evaluate.load_model(folder)
    (tmp_path / "mac" / "link").symlink_to(outside)
    with pytest.raises(UnsafeFolderError, match="outside"):
        confined_path("link", [folder], "extra.tokenizer")


def test_pickle_payloads_under_every_cache_name_are_never_loaded(tmp_path, monkeypatch, tokenizer_dir):
    """The token cache of notebook 03, the clip-feature cache, model and checkpoint files: pickles never run."""
    import torch

    from helpers.audio import features as audio
    from helpers.core.checkpoint import CheckpointError, load_checkpoint
    from helpers.text import korean

    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr("helpers.core.data.cache_dir", lambda: tmp_path / "cache")
    marker = tmp_path / "code-ran"
    hostile = pickle.dumps({"key": "x", "tokens": [], "seconds": 0, "payload": RunsCode(marker)})
    texts = ["좋은 영화", "나쁜 영화"]
    json_cache = korean.corpus_cache_path(texts, "whitespace", "t")
    json_cache.parent.mkdir(parents=True)
    for path in (json_cache, json_cache.with_suffix(".pkl")):
        path.write_bytes(hostile)
    assert korean.tokenize_corpus(texts, "whitespace", cache_name="t", progress=False) == [
        ["좋은", "영화"],
        ["나쁜", "영화"],
    ]
    clip_cache = tmp_path / "cache" / "features" / "c.npz"
    clip_cache.parent.mkdir(parents=True)
    np.save(clip_cache.with_suffix(""), np.array([RunsCode(marker)], dtype=object), allow_pickle=True)
    os.replace(clip_cache.with_suffix(".npy"), clip_cache)
    with pytest.raises(ValueError, match="allow_pickle=False"):  # numpy refuses the object array
        audio.read_clip_cache(clip_cache, "features")
    ckpt = tmp_path / "epoch-0001.pt"
    torch.save({"epoch": 1, "payload": RunsCode(marker)}, ckpt)
    with pytest.raises(CheckpointError):
        load_checkpoint(ckpt)
    macaron = _macaron(tmp_path / "mac", tokenizer_dir)
    torch.save({"payload": RunsCode(marker)}, macaron / "model.pt")
    with pytest.raises(evaluate.EvaluationError):
        evaluate.load_model(macaron)
    assert not marker.exists()


def test_the_source_routes_every_transformers_load_through_the_guard():
    import re

    helpers_dir = REPO / "helpers"
    for path in sorted(helpers_dir.rglob("*.py")):
        if path.name == "model_folder.py" or "pretrained" in path.parts:
            continue
        source = path.read_text(encoding="utf-8")
        calls = re.findall(r"(\w+)\.from_pretrained\(", source)
        assert not calls, f"{path.relative_to(REPO)} calls {calls}.from_pretrained directly; use load_pretrained"
        assert not re.search(r"pickle\.loads?\(", source), f"{path.relative_to(REPO)} unpickles data"
        assert "trust_remote_code=True" not in source
