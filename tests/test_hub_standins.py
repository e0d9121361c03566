"""The notebooks' model-hub branches, run end to end against stand-in checkpoints: the path a Colab student takes.

``tests/hub_standins.py`` writes tiny randomly initialised checkpoints with the real classes, configs and tokenizer /
feature-extractor types into a temporary Hugging Face cache under the real ids: the reference models
(``bert-base-uncased``, ``klue/roberta-base``, ``facebook/wav2vec2-base``) and the registry's text encoders
(``intfloat/multilingual-e5-small``, ``sentence-transformers/all-mpnet-base-v2``). With ``HF_HUB_OFFLINE=1`` and
``COURSE_HUB=cache`` (the hub counts as available, its models come from the cache) notebooks 05, 06 and 09 take their
hub branches in the quick profile through papermill: load, tokenize, train, save, reload. Then
``python -m helpers.cli.evaluate`` scores the saved folder. The scores mean nothing (random weights); what is tested
is that every step of the hub path runs.

In 05 and 06 the registry's text encoders come from the hub cache as well, as on Colab, never from the offline
packages (nothing is built in the run's own course cache), so the run repeats none of the offline path that nbval's
run of the same notebooks covers. 09 keeps the real Whisper-base from the offline packages and the course cache it
shares with nbval's run: its lesson asserts that a head on Whisper's features beats chance, which random weights
cannot (the Whisper stand-in is ``test_registry_hub``'s)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import hub_standins as hs
import nbformat
import pandas as pd
import pytest

from helpers.core import data
from helpers.core.data import CACHE_ENV
from helpers.core.env import REPO_ROOT
from helpers.core.results import RESULTS_ENV
from helpers.pretrained.registry import MODEL_DIR_ENV

pytestmark = [
    pytest.mark.skipif(not os.environ.get("COURSE_DATA_DIR"), reason="needs COURSE_DATA_DIR (the data mirror)"),
    pytest.mark.notebooks,  # executes notebooks 05, 06 and 09 through papermill: make test, not make unit
]


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub")
    cache = root / "hf" / "hub"
    english = data.load_emotion_en()["train"]["text"].tolist()[:3000]
    korean = data.load_ko_single_turn_emotion()["text"].tolist()[:5000]
    hs.write_bert_base_uncased(cache, english)
    hs.write_klue_roberta_base(cache, korean)
    hs.write_wav2vec2_base(cache)
    hs.write_multilingual_e5_small(cache, english + korean)  # what 06 (Korean) embeds
    hs.write_all_mpnet_base_v2(cache, english)  # what 05 (English) fine-tunes
    env = {
        **{k: v for k, v in os.environ.items() if k != MODEL_DIR_ENV},  # a model folder would win over the hub
        "HF_HOME": str(root / "hf"),
        "HF_HUB_CACHE": str(cache),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "COURSE_HUB": "cache",
        RESULTS_ENV: str(root / "results"),
        "MPLBACKEND": "Agg",
        "PYTHONUNBUFFERED": "1",
    }
    work = root / "work" / "notebooks"  # the notebooks run here: their ../models is root/work/models
    work.mkdir(parents=True)
    return {"root": root, "env": env, "work": work, "models": root / "work" / "models", "cache": root / "course-cache"}


def _run(hub, stem, own_cache=True, **parameters):
    """Execute notebook ``stem`` in quick through papermill; return the executed notebook's text outputs.

    ``own_cache``: the run's derived files (the stand-ins' sentence vectors, anything built) go to a folder of the
    test, not the checkout's cache, where weights that change with every run would leave a new file each time."""
    env = {**hub["env"], CACHE_ENV: str(hub["cache"])} if own_cache else hub["env"]
    out = hub["root"] / f"{stem}.out.ipynb"
    cmd = [
        sys.executable,
        "-m",
        "papermill",
        str(REPO_ROOT / "notebooks" / f"{stem}.ipynb"),
        str(out),
        "-p",
        "profile",
        "quick",
        "--cwd",
        str(hub["work"]),
        "--no-progress-bar",
        "--execution-timeout",
        "600",
    ]
    for key, value in parameters.items():
        cmd += ["-p", key, value] if isinstance(value, str) else ["-y", f"{key}: {json.dumps(value)}"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, cwd=hub["work"])
    assert done.returncode == 0, done.stderr[-3000:]
    nb = nbformat.read(out, as_version=4)
    text = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            text.append(o.get("text", "") if o.output_type == "stream" else o.get("data", {}).get("text/plain", ""))
    return "\n".join(text)


def _evaluate(hub, model_dir, data_path):
    report = hub["root"] / f"{Path(model_dir).name}.report.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "helpers.cli.evaluate",
            "--model",
            str(model_dir),
            "--data",
            str(data_path),
            "--out",
            str(report),
        ],
        env=hub["env"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=hub["root"],
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    scores = json.loads(report.read_text())
    return scores, done.stdout


def _accuracy(scores):
    found = scores.get("accuracy", scores.get("metrics", {}).get("accuracy"))
    assert found is not None and 0.0 <= found <= 1.0, scores
    return found


def _from_hub_cache(hub, text, name, hub_id):
    """The notebook's registry model ``name`` came from the stand-in hub cache, and nothing was built offline."""
    assert f"{name}: {hub_id} from the Hugging Face hub" in text, f"{name} did not come from the hub cache"
    assert "built offline from" not in text
    built = hub["cache"] / "models"
    assert not built.exists() or not any(built.iterdir()), f"built offline: {list(built.iterdir())}"


def test_05_bert_base_uncased_hub_branch(hub):
    models = hub["root"] / "models05"
    text = _run(hub, "05_bert_emotion_en", models_dir=str(models))
    assert "Model in use: bert-base-uncased (from the local Hugging Face cache)" in text
    assert "offline-minilm" not in text.split("Model in use:")[1].splitlines()[0]
    assert "reloaded model gives the same probabilities: True" in text
    _from_hub_cache(hub, text, "mpnet-base", "sentence-transformers/all-mpnet-base-v2")
    saved = [p for p in models.iterdir() if p.name.startswith("bert-base-uncased-emotion-en")]
    assert len(saved) == 1 and json.loads((saved[0] / "config.json").read_text())["model_type"] == "bert"
    csv = hub["root"] / "tweets.csv"
    data.load_emotion_en()["test"].head(40)[["text", "label_name"]].rename(columns={"label_name": "label"}).to_csv(
        csv, index=False
    )
    scores, _ = _evaluate(hub, saved[0], csv)
    _accuracy(scores)


def test_06_klue_roberta_hub_branch(hub):
    text = _run(hub, "06_korean_roberta_kfold", use_hub=True)
    assert "klue/roberta-base not used" not in text and "klue/roberta-base (hub)" in text
    _from_hub_cache(hub, text, "e5-small", "intfloat/multilingual-e5-small")
    # the same checkpoint through the helpers a student's script uses: load, tokenize, train a step, save, reload
    # (in a child process: huggingface_hub reads HF_HUB_CACHE when it is first imported)
    folder = hub["root"] / "models06"
    script = f"""
import torch
from helpers.core import data
from helpers.text import korean_emotion as ke
from helpers.text.hf_finetune import load_saved_classifier, save_classifier
labels = list(data.KO_EMOTION_LABELS)
model, tok = ke.make_classifier("klue/roberta-base", len(labels))
assert type(model).__name__ == "RobertaForSequenceClassification" and "Bert" in type(tok).__name__, (model, tok)
frame = data.load_ko_single_turn_emotion().head(16)
batch = tok(frame["text"].tolist(), padding=True, truncation=True, max_length=64, return_tensors="pt")
assert batch["input_ids"].max() < model.config.vocab_size
assert (batch["input_ids"] == tok.unk_token_id).float().mean() < 0.5, "the stand-in vocabulary covers the text"
out = model(**batch, labels=torch.tensor(frame["label_id"].to_numpy()))
out.loss.backward()
torch.optim.AdamW(model.parameters(), lr=1e-3).step()
model.config.id2label, model.config.label2id = dict(enumerate(labels)), {{n: i for i, n in enumerate(labels)}}
saved = save_classifier(model.eval(), tok, {str(folder)!r}, "klue-roberta-base-ko-emotion")
assert type(load_saved_classifier(saved).model).__name__ == "RobertaForSequenceClassification"
print(saved)
"""
    done = subprocess.run([sys.executable, "-c", script], env=hub["env"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    folder = Path(done.stdout.strip().splitlines()[-1])
    csv = hub["root"] / "ko.csv"
    data.load_ko_single_turn_emotion().head(40).assign(label=lambda f: f["label_id"])[["text", "label"]].to_csv(
        csv, index=False
    )
    scores, _ = _evaluate(hub, folder, csv)
    _accuracy(scores)


def test_09_wav2vec2_base_hub_branch(hub):
    text = _run(hub, "09_wav2vec2_speech_emotion", own_cache=False, use_hub=True)  # the real Whisper: see above
    assert "facebook/wav2vec2-base not used" not in text and "facebook/wav2vec2-base: " in text
    saved = hub["models"] / "09_wav2vec2-quick"
    config = json.loads((saved / "config.json").read_text())
    assert config["model_type"] == "wav2vec2" and config["course"]["kind"] == "facebook/wav2vec2-base"
    assert "reloaded model from the file = model in memory on the test set: True" in text
    clips = hub["root"] / "clips"
    clips.mkdir()
    rows = data.load_ravdess().groupby("emotion").head(1)
    for path in rows["filepath"]:
        shutil.copyfile(path, clips / Path(path).name)
    pd.DataFrame({"path": [Path(p).name for p in rows["filepath"]], "emotion": rows["emotion"]}).to_csv(
        clips / "metadata.csv", index=False
    )
    scores, _ = _evaluate(hub, saved, clips)
    _accuracy(scores)
