"""The pretrained registry's hub path, as a Colab student takes it, against stand-in checkpoints.

``tests/hub_standins.py`` writes tiny randomly initialised checkpoints of the registry's hub ids
(``intfloat/multilingual-e5-small``: BertModel + XLMRobertaTokenizerFast; ``openai/whisper-base``: WhisperModel +
WhisperFeatureExtractor; ``sentence-transformers/all-mpnet-base-v2``: MPNetModel + MPNetTokenizerFast) into a
temporary Hugging Face cache. With ``HF_HUB_OFFLINE=1``, no ``$COURSE_MODEL_DIR`` and an empty course cache,
``load_encoder(name)`` must find each one in the Hugging Face cache (step 3 of
:func:`helpers.pretrained.resolve_model`), say so in its origin line, give the registry's classes and embed / encode
with the right shapes. A snapshot whose configs declare ``auto_map`` is refused, with stdin answering ``y``, and its
Python file never runs.

huggingface_hub reads ``HF_HUB_CACHE`` when it is first imported, so the checks run in one child process that prints
what it saw as JSON; the assertions are made here.
"""

import json
import os
import subprocess
import sys

import hub_standins as hs
import pytest

from helpers.core.env import REPO_ROOT

CHILD = r"""
import json, sys
from pathlib import Path
import numpy as np
import huggingface_hub.constants as hc
import torch
from helpers.core.model_folder import UnsafeFolderError
from helpers.pretrained import describe, embed_sentences, get_spec, load_encoder, resolve_model
from helpers.audio.whisper_features import encode_layers, load_whisper_encoder

out = {"hf_hub_cache": hc.HF_HUB_CACHE, "offline": hc.HF_HUB_OFFLINE}
sentences = {"e5-small": ["I feel happy today", "너무 슬프고 외로운 밤이야"],  # multilingual
             "mpnet-base": ["I feel happy today", "The movie was boring"]}  # English (its vocabulary has no Hangul)
for name in ("e5-small", "mpnet-base"):
    model, tokenizer = load_encoder(name)
    ids = tokenizer([describe(name)["prefix"] + s for s in sentences[name]])["input_ids"]
    vectors = embed_sentences(model, tokenizer, sentences[name], prefix=describe(name)["prefix"])
    out[name] = {"folder": str(resolve_model(name)), "origin": model.config.course_origin,
                 "model": type(model).__name__, "processor": type(tokenizer).__name__,
                 "hidden": model.config.hidden_size, "shape": list(vectors.shape),
                 "norms": np.linalg.norm(vectors, axis=1).tolist(), "finite": bool(np.isfinite(vectors).all()),
                 "cosine": float(vectors[0] @ vectors[1]), "vocab_size": model.config.vocab_size,
                 "max_id": max(max(i) for i in ids), "unk": sum(i.count(tokenizer.unk_token_id) for i in ids),
                 "first_last": [[i[0], i[-1]] for i in ids],
                 "bos_eos": [tokenizer.bos_token_id, tokenizer.eos_token_id]}

encoder, extractor = load_encoder("whisper-base", window_s=6)
clip = (0.1 * np.sin(2 * np.pi * 220 * np.arange(int(2.5 * 16000)) / 16000)).astype(np.float32)
features = extractor(clip, sampling_rate=16000, return_tensors="pt")["input_features"]
long_features = extractor(np.zeros(20 * 16000, np.float32), sampling_rate=16000, return_tensors="pt")["input_features"]
with torch.no_grad():
    hidden = encoder(features).last_hidden_state
enc = load_whisper_encoder("whisper-base", window_seconds=6.0)
pooled = encode_layers(enc, [clip, clip[:8000]])
out["whisper-base"] = {"folder": str(resolve_model("whisper-base")), "origin": encoder.config.course_origin,
                       "model": type(encoder).__name__, "processor": type(extractor).__name__,
                       "features": list(features.shape), "long_features": list(long_features.shape),
                       "hidden": list(hidden.shape), "d_model": encoder.config.d_model,
                       "layers": len(encoder.layers), "pooled": list(pooled.shape),
                       "pooled_finite": bool(np.isfinite(pooled).all())}

# the same snapshot, now declaring its own code: refused before transformers reads it, whatever stdin says
folder = Path(resolve_model("e5-small"))
marker = Path(sys.argv[1])
(folder / "hostile.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n"
                                   "from transformers import BertModel as Hostile\n")
for config_name in ("config.json", "tokenizer_config.json"):
    config = json.loads((folder / config_name).read_text())
    config["auto_map"] = {"AutoModel": "hostile.Hostile", "AutoConfig": "hostile.Hostile",
                          "AutoTokenizer": ["hostile.Hostile", None]}
    (folder / config_name).write_text(json.dumps(config))
try:
    load_encoder("e5-small")
    out["auto_map"] = {"refused": False}
except UnsafeFolderError as exc:
    out["auto_map"] = {"refused": True, "message": str(exc), "folder": str(folder)}
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def seen(tmp_path_factory):
    root = tmp_path_factory.mktemp("registry-hub")
    cache = root / "hf" / "hub"
    folders = hs.write_registry_models(cache)
    env = {k: v for k, v in os.environ.items() if k not in ("COURSE_MODEL_DIR", "HF_TOKEN", "COURSE_HUB")}
    env.update(
        {
            "HF_HOME": str(root / "hf"),
            "HF_HUB_CACHE": str(cache),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "COURSE_CACHE_DIR": str(root / "course-cache"),
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]),
        }
    )
    marker = root / "hostile-code-ran"
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(marker)],
        env=env,
        input="y\n" * 20,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=root,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    assert len(line) == 1, done.stdout[-2000:]
    return {
        "out": json.loads(line[0][len("RESULT ") :]),
        "cache": cache,
        "folders": folders,
        "marker": marker,
        "course_cache": root / "course-cache",
        "stdout": done.stdout,
    }


def test_the_child_used_the_stand_in_cache_offline(seen):
    assert seen["out"]["hf_hub_cache"] == str(seen["cache"]) and seen["out"]["offline"] is True
    # nothing was built from the offline packages: the course cache has no models folder with content
    built = seen["course_cache"] / "models"
    assert not built.exists() or not any(built.iterdir())


@pytest.mark.parametrize(
    "name, hub_id, model, processor",
    [
        ("e5-small", "intfloat/multilingual-e5-small", "BertModel", "XLMRobertaTokenizer"),
        ("mpnet-base", "sentence-transformers/all-mpnet-base-v2", "MPNetModel", "MPNetTokenizer"),
    ],
)
def test_text_encoder_comes_from_the_hub_cache_and_embeds(seen, name, hub_id, model, processor):
    got = seen["out"][name]
    assert got["folder"] == str(seen["folders"][name]), "resolved from the Hugging Face cache snapshot"
    assert got["origin"] == f"{name}: {hub_id} from the Hugging Face hub", got["origin"]
    assert got["origin"] in seen["stdout"], "load_encoder prints its origin line"
    # transformers 5 names the fast classes' implementation without "Fast" (XLMRobertaTokenizerFast is an alias)
    assert got["model"] == model and got["processor"] == processor
    assert got["shape"] == [2, got["hidden"]] and got["hidden"] == 32 and got["finite"]
    assert got["norms"] == pytest.approx([1.0, 1.0], abs=1e-5)
    assert got["cosine"] < 0.9999, "two different sentences give two different vectors"
    assert got["max_id"] < got["vocab_size"] and got["unk"] == 0, {
        k: got[k] for k in ("max_id", "unk", "first_last", "bos_eos")
    }
    assert all(ids == got["bos_eos"] for ids in got["first_last"]), "<s> ... </s> around every sentence"


def test_whisper_comes_from_the_hub_cache_and_encodes_a_six_second_window(seen):
    got = seen["out"]["whisper-base"]
    assert got["folder"] == str(seen["folders"]["whisper-base"])
    assert got["origin"].startswith(
        "whisper-base: openai/whisper-base from the Hugging Face hub; 6 s window (300 positions"
    )
    assert got["model"] == "WhisperEncoder" and got["processor"] == "WhisperFeatureExtractor"
    assert got["features"] == [1, 80, 600], "a 2.5 s clip padded to the 6 s window: 600 mel frames of 10 ms"
    assert got["long_features"] == [1, 80, 600], "a 20 s clip cut to the window"
    assert got["hidden"] == [1, 300, got["d_model"]] and got["d_model"] == 32
    # notebooks 09/10's path: every hidden state (embeddings + each layer) pooled to mean and std
    assert got["pooled"] == [2, got["layers"] + 1, 2 * got["d_model"]] and got["pooled_finite"]


def test_a_hub_snapshot_declaring_auto_map_is_refused_and_nothing_runs(seen):
    got = seen["out"]["auto_map"]
    assert got["refused"], "load_encoder loaded a snapshot whose configs declare auto_map"
    assert "auto_map" in got["message"] and got["folder"] in got["message"] and "\n" not in got["message"]
    assert not seen["marker"].exists(), "the snapshot's Python file ran"
