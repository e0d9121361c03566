"""The learning-rate sweep behind notebook 05's offline recipe, logged (``python -m benchmarks.gpu.minilm_lr_sweep``).

Fine-tunes all-MiniLM-L6-v2 on the whole ``emotion_en`` training split with **notebook 05's own loop**: the cell that
defines ``make_optimizer``, ``evaluate_model`` and ``train_by_hand`` is read from the notebook and run here, so the
sweep and the lesson cannot drift apart (no copy). Same data, tokenisation (max_length 128), AdamW with decay on the
weight matrices only, linear schedule without warm-up, gradient clipping at 1, early stopping on validation
macro-F1 with patience 1 and the best epoch's weights kept; mixed precision as the notebook picks it (fp16 on a
GPU). **Only the validation split is scored**: the test split is not loaded.

The rule that picks the recipe was fixed before the sweep ran: among the 3-epoch runs with batches grouped by length
(what a 2-core CPU affords in ``full``: 3 epochs of 16,000 tweets), the setting with the highest mean validation
macro-F1 over the seeds run (``--seeds``, default 42, 1 and 2). The longer and the reference-recipe runs are there
for comparison. The committed report came from one H200 in two calls (``--candidates-only --seeds 42`` for the
second): the 15 minutes of device time held seed 42 only (its ``calls`` entry says so).

Writes ``sweep.json`` (every run's per-epoch validation scores and times) and a log into ``--out``; the committed
copy is ``benchmarks/results/minilm_lr_sweep.json``, which notebook 05 renders as its table. Meant for a GPU (about
10 minutes on one H200 with seed 42 alone, about 15 with three seeds: the small model keeps the GPU waiting on Python,
at 300 to 700 tweets a second); on a CPU the 33 epochs take hours.

    python -m benchmarks.gpu.minilm_lr_sweep --model DIR --out DIR
"""

from __future__ import annotations

import argparse
import ast
import json
import time
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm
from transformers import AutoTokenizer, get_linear_schedule_with_warmup

import helpers
from helpers.core.data import EMOTION_EN_LABELS, load_emotion_en
from helpers.core.env import REPO_ROOT, package_versions
from helpers.core.metrics import classification_metrics
from helpers.core.model_folder import load_pretrained
from helpers.core.training import predict_logits
from helpers.text.hf_finetune import TokenizedTexts, load_classifier, make_dataloader

NOTEBOOK = REPO_ROOT / "notebooks" / "05_bert_emotion_en.ipynb"
LOOP_NAMES = {"make_optimizer", "evaluate_model", "train_by_hand"}
MAX_LENGTH = 128
#: (batch size, peak learning rate, epochs, batches grouped by length); each runs with seed 42
COMPARISONS = [
    (16, 2e-5, 5, False),  # the reference recipe (made for bert-base)
    (32, 5e-5, 5, False),
    (32, 1e-4, 5, False),
]
#: the candidates of the rule, each run with every seed of --seeds
CANDIDATES = [(32, 1e-4, 3, True), (32, 5e-5, 3, True)]


def notebook_loop(namespace: dict) -> dict:
    """Run notebook 05's cell that defines the fine-tuning loop in ``namespace``; return the namespace."""
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    for cell in cells:
        source = "".join(cell["source"])
        if cell["cell_type"] != "code" or "def train_by_hand" not in source:
            continue
        tree = ast.parse(source)
        defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        if not defined >= LOOP_NAMES or not all(isinstance(n, ast.FunctionDef) for n in tree.body):
            raise RuntimeError(f"notebook 05's loop cell should only define {sorted(LOOP_NAMES)}, found {defined}")
        exec(compile(tree, f"{NOTEBOOK.name} (loop cell)", "exec"), namespace)  # the project's own source
        return namespace
    raise RuntimeError(f"no cell of {NOTEBOOK} defines train_by_hand")


def choose(runs: list[dict]) -> dict | None:
    """The rule fixed before the sweep: best mean validation macro-F1 among the 3-epoch, grouped-by-length settings."""
    frame = pd.DataFrame([r for r in runs if r["epochs"] == 3 and r["by_length"]])
    if frame.empty:
        return None
    means = frame.groupby(["batch_size", "lr"])["best_val_macro_f1"].mean()
    batch_size, lr = means.idxmax()
    seeds = sorted(int(seed) for seed in set(frame["seed"]))
    return {
        "batch_size": int(batch_size),
        "lr": float(lr),
        "epochs": 3,
        "by_length": True,
        "mean_val_macro_f1": float(means.max()),
        "seeds": seeds,
        "rule": f"best mean validation macro-F1 (seeds {', '.join(map(str, seeds))}) among the 3-epoch runs with "
        "batches grouped by length",
    }


def _write(out: Path, device, amp_dtype, splits: dict, limit: int | None, runs: list[dict], start_all: float) -> dict:
    """Write ``sweep.json`` with the runs so far (and the chosen recipe once the candidates have run)."""
    report = {
        "what": "notebook 05's offline recipe: all-MiniLM-L6-v2 fine-tuned on the emotion_en training split, "
        "scored on its validation split only (the test split is not loaded)",
        "device": helpers.describe_device(device),
        "precision": str(amp_dtype),
        "max_length": MAX_LENGTH,
        "train_size": len(splits["train"]),
        "validation_size": len(splits["validation"]),
        "versions": package_versions(("torch", "transformers", "tokenizers")),
        "limit": limit,
        "date": time.strftime("%Y-%m-%d"),
        "minutes": round((time.perf_counter() - start_all) / 60, 2),
        "runs": runs,
        "chosen": choose(runs),
    }
    (out / "sweep.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="folder of all-MiniLM-L6-v2 (the packaged offline model)")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2], help="seeds of the candidate runs")
    parser.add_argument("--candidates-only", action="store_true", help="skip the comparison runs")
    parser.add_argument("--limit", type=int, help="smoke test only: the first N training and validation tweets")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    device = helpers.get_device()
    amp_dtype = torch.float16 if device.type == "cuda" else None  # the notebook's choice on a GPU
    namespace = notebook_loop(
        {
            "torch": torch,
            "time": time,
            "pd": pd,
            "tqdm": tqdm,
            "device": device,
            "amp_dtype": amp_dtype,
            "get_linear_schedule_with_warmup": get_linear_schedule_with_warmup,
            "classification_metrics": classification_metrics,
            "predict_logits": predict_logits,
        }
    )
    splits = load_emotion_en()  # train and validation only are used below
    if args.limit:
        splits = {name: frame.iloc[: args.limit] for name, frame in splits.items()}
    labels = list(EMOTION_EN_LABELS)
    tokenizer = load_pretrained(
        AutoTokenizer, args.model, local_files_only=True
    )  # the same for every run: tokenise the splits once
    train = TokenizedTexts(splits["train"]["text"], splits["train"]["label"], tokenizer, MAX_LENGTH)
    val = TokenizedTexts(splits["validation"]["text"], splits["validation"]["label"], tokenizer, MAX_LENGTH)
    val_loader = make_dataloader(val, tokenizer, 64)
    runs, start_all = [], time.perf_counter()
    plan = [] if args.candidates_only else [(*setting, 42) for setting in COMPARISONS]
    plan += [(*setting, seed) for seed in args.seeds for setting in CANDIDATES]
    report = _write(args.out, device, amp_dtype, splits, args.limit, runs, start_all)
    for batch_size, lr, epochs, by_length, seed in plan:
        helpers.seed_everything(seed)
        model = load_classifier(args.model, num_labels=len(labels), label_names=labels).model.float()
        train_loader = make_dataloader(train, tokenizer, batch_size, shuffle=True, seed=seed, group_by_length=by_length)
        start = time.perf_counter()
        history = namespace["train_by_hand"](
            model,
            train_loader,
            val_loader,
            epochs,
            lr,
            weight_decay=0.01,
            clip=1.0,
            warmup_steps=0,
            patience=1,
            desc=f"b{batch_size} lr{lr:g} e{epochs} seed{seed}",
        )
        best = history.loc[history.attrs["best_epoch"]]
        runs.append(
            {
                "batch_size": batch_size,
                "lr": lr,
                "epochs": epochs,
                "by_length": by_length,
                "seed": seed,
                "epochs_run": len(history),
                "best_epoch": int(history.attrs["best_epoch"]),
                "best_val_accuracy": float(best["val_accuracy"]),
                "best_val_macro_f1": float(best["val_macro_f1"]),
                "val_accuracy": history["val_accuracy"].round(6).tolist(),
                "val_macro_f1": history["val_macro_f1"].round(6).tolist(),
                "val_loss": history["val_loss"].round(6).tolist(),
                "seconds": round(time.perf_counter() - start, 1),
            }
        )
        print(json.dumps(runs[-1]), flush=True)
        # written after every run, so a call cut at its time limit keeps the runs it finished
        report = _write(args.out, device, amp_dtype, splits, args.limit, runs, start_all)
    print("chosen:", report["chosen"], f"in {report['minutes']} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
