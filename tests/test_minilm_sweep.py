"""The logged learning-rate sweep behind notebook 05's offline recipe (benchmarks/gpu/minilm_lr_sweep.py)."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks.gpu import minilm_lr_sweep as sweep
from helpers.core.env import REPO_ROOT

REPORT = REPO_ROOT / "benchmarks" / "results" / "minilm_lr_sweep.json"


def _run(lr: float, seed: int, f1: float, epochs: int = 3, by_length: bool = True) -> dict:
    return {"batch_size": 32, "lr": lr, "epochs": epochs, "by_length": by_length, "seed": seed, "best_val_macro_f1": f1}


def test_the_sweep_runs_notebook_05s_own_loop():
    namespace = sweep.notebook_loop({"torch": torch})  # @torch.no_grad() runs when the cell defines
    assert set(namespace) >= sweep.LOOP_NAMES
    assert namespace["train_by_hand"].__code__.co_filename.startswith("05_bert_emotion_en.ipynb")


def test_the_rule_takes_the_best_mean_over_seeds_among_3_epoch_runs_by_length():
    runs = [
        _run(1e-4, 42, 0.905),
        _run(1e-4, 1, 0.899),
        _run(5e-5, 42, 0.903),
        _run(5e-5, 1, 0.904),  # mean 0.9035 > 0.902
        _run(1e-4, 42, 0.950, epochs=5),  # better, but not a candidate: 5 epochs
        _run(1e-4, 42, 0.960, by_length=False),  # nor random batches
    ]
    chosen = sweep.choose(runs)
    assert (chosen["lr"], chosen["epochs"], chosen["seeds"]) == (5e-5, 3, [1, 42])
    assert chosen["mean_val_macro_f1"] == pytest.approx(0.9035)
    assert sweep.choose([_run(1e-4, 42, 0.9, epochs=5)]) is None


def test_the_committed_report_is_validation_only_and_its_choice_follows_the_rule():
    report = json.loads(REPORT.read_text(encoding="utf-8"))
    assert report["limit"] is None and report["train_size"] == 16_000 and report["validation_size"] == 2_000
    assert not any("test" in key for run in report["runs"] for key in run)  # nothing scored on the test split
    assert report["chosen"] == sweep.choose(report["runs"])
    candidates = {(r["batch_size"], r["lr"], r["epochs"], r["by_length"]) for r in report["runs"] if r["epochs"] == 3}
    assert candidates == set(sweep.CANDIDATES)
