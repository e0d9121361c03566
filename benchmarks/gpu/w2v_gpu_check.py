"""GPU check of notebook 09's offline path: the small Wav2Vec2 trained from scratch with the course's helpers."""

import json
import os
import time

import numpy as np
from transformers import Wav2Vec2ForSequenceClassification

import helpers
from helpers.audio.cnn_recipe import speaker_splits
from helpers.audio.wav2vec import (
    load_waveforms,
    make_feature_extractor,
    predict_wav2vec2,
    small_wav2vec2_config,
    train_wav2vec2,
)
from helpers.core.data import RAVDESS_LABELS, load_ravdess

device = helpers.get_device()
print(helpers.describe_device(device))
data = load_ravdess()
data = data.reset_index(drop=True)
waves = load_waveforms(data, progress=False)
data = waves.frame
labels = data.label.to_numpy()
fe = make_feature_extractor()
n = int(2.56 * 16000)
res = []
splits = speaker_splits(data, n_folds=4)
for fold, (tr, va, te) in enumerate(splits[: int(os.environ.get("W2V_FOLDS", 2))]):
    helpers.seed_everything(42 + fold)
    model = Wav2Vec2ForSequenceClassification(small_wav2vec2_config(list(RAVDESS_LABELS)))
    t = time.perf_counter()
    model, hist, secs = train_wav2vec2(
        model,
        waves.waves,
        labels,
        tr,
        va,
        fe,
        n,
        epochs=int(os.environ.get("W2V_EPOCHS", 20)),
        learning_rate=3e-3,
        device=device,
        progress=False,
    )
    logits, y = predict_wav2vec2(model, waves.waves, labels, te, fe, n, device=device)
    acc = float((logits.argmax(1) == y).mean())
    res.append(
        {
            "fold": fold,
            "test_acc": acc,
            "best_epoch": hist.best_epoch,
            "seconds": round(secs, 1),
            "epoch_seconds_median": float(np.median(hist.epoch_seconds)),
        }
    )
    print(res[-1])
with open(os.path.join(os.environ.get("OUT", "/tmp"), "w2v_gpu_check.json"), "w") as f:
    json.dump(res, f, indent=1)
