"""Training and tokenisation throughput (``python -m benchmarks.throughput``; about two minutes on 1 thread).

1. ``trainer``: the course's training loop (:func:`helpers.core.training.fit`) against ``transformers.Trainer`` on
   the same model (the packaged all-MiniLM-L6-v2 with a fresh 6-way head, identical initial weights), the same English
   tweets, batch size, optimiser (AdamW, weight decay 0.01 except biases and LayerNorm), linear schedule, gradient
   clipping at 1.0 and length-grouped batches; training only, no evaluation. Runs alternate own/Trainer/Trainer/own
   so that a change in the machine's load hits both; the headline is the examples/s ratio (target >= 1.0).
2. ``lstm``: the LSTM of notebook 02 on tweets with naive batches (random order, padded to the batch's longest
   tweet, the RNN also reads the padding: the reference recipe), packed batches, and packed + length-bucketed
   batches; examples/s of each and the ratio packed+bucketed / naive (runs alternate A B C C B A).
3. ``tokenizers``: tokens/s of the tokenisers of notebook 03 (whitespace, Okt, MeCab, Kiwi; one review per call
   after a warm-up on 50 reviews, :func:`helpers.text.korean.measure_speed`) and the Korean WordPiece of notebook 04
   (:func:`helpers.text.subword.korean_subword_tokenizer`; one review per call, and the whole list in one batch call).

Writes ``benchmarks/results/throughput.json`` and the ``throughput`` section of ``benchmarks/results/SUMMARY.md``.
Data come from the course's loaders (``COURSE_DATA_DIR`` or the cache).
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time

import numpy as np
import torch

from benchmarks.summary import load_average, machine, machine_line, write_json, write_section

PARTS = ("trainer", "lstm", "tokenizers")


def _timed(fn) -> tuple[float, float]:
    """``(wall seconds, CPU seconds of this process)`` of ``fn()``.

    On a shared machine the wall clock also counts the time other jobs held the cores; the process's CPU time
    (all its threads) does not, so speeds and ratios are computed from both and the CPU-time ones lead.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def _speeds(n: int, times: dict[str, list[tuple[float, float]]]) -> dict:
    """Seconds and examples/s (by wall clock and by CPU time) of each variant's runs of ``n`` examples."""
    return {
        "wall_seconds": {k: [round(w, 3) for w, _ in v] for k, v in times.items()},
        "cpu_seconds": {k: [round(c, 3) for _, c in v] for k, v in times.items()},
        "examples_per_s_wall": {k: round(n * len(v) / sum(w for w, _ in v), 2) for k, v in times.items()},
        "examples_per_s_cpu": {k: round(n * len(v) / sum(c for _, c in v), 2) for k, v in times.items()},
    }


def _ratio(speeds: dict, a: str, b: str) -> dict:
    return {
        clock: round(speeds[f"examples_per_s_{clock}"][a] / speeds[f"examples_per_s_{clock}"][b], 3)
        for clock in ("cpu", "wall")
    }


# --------------------------------------------------------------------------- own loop vs Trainer


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Trainer's rule: no weight decay on biases and LayerNorm weights."""
    no_decay = [n for n, _ in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
    return [
        {"params": [p for n, p in model.named_parameters() if n not in no_decay], "weight_decay": weight_decay},
        {"params": [p for n, p in model.named_parameters() if n in no_decay], "weight_decay": 0.0},
    ]


def bench_trainer(n_examples: int, batch_size: int, max_length: int, seed: int) -> dict:
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments, get_linear_schedule_with_warmup

    from helpers import seed_everything
    from helpers.core.data import EMOTION_EN_LABELS, load_emotion_en, subsample
    from helpers.core.training import fit
    from helpers.text.hf_finetune import TokenizedTexts, load_classifier, make_dataloader

    frame = subsample(load_emotion_en()["train"], n_examples, seed=seed)
    seed_everything(seed)
    loaded = load_classifier("offline-minilm", num_labels=len(EMOTION_EN_LABELS), label_names=EMOTION_EN_LABELS)
    initial, tokenizer = copy.deepcopy(loaded.model.state_dict()), loaded.tokenizer
    dataset = TokenizedTexts(frame["text"].tolist(), frame["label"].tolist(), tokenizer, max_length=max_length)
    lr, weight_decay = 1e-4, 0.01

    def fresh_model():
        model = copy.deepcopy(loaded.model)
        model.load_state_dict(initial)
        return model.train()

    def own_loop() -> tuple[float, float]:
        model = fresh_model()
        loader = make_dataloader(dataset, tokenizer, batch_size, shuffle=True, seed=seed, group_by_length=True)
        optimizer = torch.optim.AdamW(_param_groups(model, weight_decay), lr=lr)
        scheduler = get_linear_schedule_with_warmup(optimizer, 0, num_training_steps=len(loader))
        return _timed(
            lambda: fit(
                model,
                loader,
                None,
                optimizer,
                1,
                torch.device("cpu"),
                scheduler=scheduler,
                clip_grad_norm=1.0,
                use_amp=False,
                progress=False,
            )
        )

    def trainer_loop() -> tuple[float, float]:
        with tempfile.TemporaryDirectory(prefix="bench-trainer-") as output_dir:  # nothing is saved: save_strategy="no"
            return _trainer_run(output_dir)

    def _trainer_run(output_dir: str) -> tuple[float, float]:
        model = fresh_model()
        args = TrainingArguments(
            output_dir=output_dir,
            per_device_train_batch_size=batch_size,
            num_train_epochs=1,
            learning_rate=lr,
            weight_decay=weight_decay,
            lr_scheduler_type="linear",
            warmup_steps=0,
            max_grad_norm=1.0,
            use_cpu=True,
            dataloader_pin_memory=False,
            train_sampling_strategy="group_by_length",
            eval_strategy="no",
            logging_strategy="no",
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            seed=seed,
        )
        trainer = Trainer(
            model=model, args=args, train_dataset=dataset, data_collator=DataCollatorWithPadding(tokenizer)
        )
        return _timed(trainer.train)

    own_loop()  # warm-up: first-call costs (allocator, kernels) are paid before any timing
    times = {"own": [], "trainer": []}
    for name in ("own", "trainer", "trainer", "own"):
        times[name].append((own_loop if name == "own" else trainer_loop)())
    speeds = _speeds(len(dataset), times)
    return {
        "model": "all-MiniLM-L6-v2 + 6-way head (offline)",
        "examples": len(dataset),
        "batch_size": batch_size,
        "max_length": max_length,
        "epochs_per_run": 1,
        "runs_each": 2,
        **speeds,
        "ratio_own_over_trainer": _ratio(speeds, "own", "trainer"),
    }


# --------------------------------------------------------------------------- LSTM batching


def _pad_share(loader) -> float:
    real = total = 0
    for _, lengths, _ in loader:
        real += int(lengths.sum())
        total += int(lengths.numel() * lengths.max())
    return 1 - real / total


def bench_lstm(n_examples: int, batch_size: int, seed: int) -> dict:
    from helpers import seed_everything
    from helpers.core.data import load_emotion_en, subsample
    from helpers.core.training import fit
    from helpers.text.lstm import LSTMClassifier
    from helpers.text.pipeline import Vocab, basic_english, encode_texts, make_loader

    frame = subsample(load_emotion_en()["train"], n_examples, seed=seed)
    tokens = [basic_english(t) for t in frame["text"]]
    vocab = Vocab.build(tokens)
    ids = encode_texts(frame["text"], basic_english, vocab)
    labels = frame["label"].to_numpy()
    variants = {  # name: (packed, bucket)
        "naive": (False, False),
        "packed": (True, False),
        "packed_bucketed": (True, True),
    }

    def run(name: str) -> tuple[float, float]:
        packed, bucket = variants[name]
        seed_everything(seed)
        model = LSTMClassifier(len(vocab), 6, embed_dim=128, hidden_dim=128, pad_id=vocab.pad_id, packed=packed)
        loader = make_loader(ids, labels, batch_size, vocab.pad_id, shuffle=True, bucket=bucket, seed=seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        return _timed(lambda: fit(model, loader, None, optimizer, 1, torch.device("cpu"), progress=False))

    run("packed")  # warm-up
    order = list(variants) + list(variants)[::-1]
    times = {name: [] for name in variants}
    for name in order:
        times[name].append(run(name))
    speeds = _speeds(len(ids), times)
    pad = {
        name: _pad_share(make_loader(ids, labels, batch_size, vocab.pad_id, shuffle=True, bucket=b, seed=seed))
        for name, (_, b) in variants.items()
    }
    return {
        "model": "LSTMClassifier(embed 128, hidden 128, 1 layer), basic_english tokens",
        "examples": len(ids),
        "mean_tokens": round(float(np.mean([len(x) for x in ids])), 2),
        "max_tokens": max(len(x) for x in ids),
        "batch_size": batch_size,
        "runs_each": 2,
        **speeds,
        "pad_share": {k: round(v, 3) for k, v in pad.items()},
        "ratio_packed_bucketed_over_naive": _ratio(speeds, "packed_bucketed", "naive"),
        "ratio_packed_over_naive": _ratio(speeds, "packed", "naive"),
    }


# --------------------------------------------------------------------------- tokenisers


def bench_tokenizers(n_texts: int, seed: int) -> dict:
    from helpers.core.data import load_nsmc, subsample
    from helpers.text.korean import BACKENDS, measure_speed
    from helpers.text.subword import TOKENIZER_DIR, korean_subword_tokenizer

    frame = subsample(load_nsmc()["train"], n_texts, seed=seed)
    texts = [t for t in frame["text"] if t.strip()]
    out = {"texts": len(texts), "characters": sum(map(len, texts)), "tokenizers": {}}
    for backend in BACKENDS:
        measure_speed(backend, texts[:50])  # warm-up: the analysers' first calls are far slower than the rest
        cpu = time.process_time()
        speed = measure_speed(backend, texts)  # wall clock
        cpu = time.process_time() - cpu
        out["tokenizers"][f"ko-{backend}"] = {
            "tokens_per_s_cpu": round(speed["tokens"] / max(cpu, 1e-9), 1),
            "tokens_per_s_wall": round(speed["tokens_per_s"], 1),
            "tokens_per_text": round(speed["tokens_per_text"], 2),
        }
    saved = (TOKENIZER_DIR / "ko-wordpiece-4096" / "tokenizer.json").exists()
    wordpiece = korean_subword_tokenizer()
    for text in texts[:50]:  # warm-up, one text per call and a batch call
        wordpiece.tokenize(text)
    wordpiece(texts[:50], add_special_tokens=False)
    counts: dict[str, int] = {}
    single = _timed(lambda: counts.update(single=sum(len(wordpiece.tokenize(t)) for t in texts)))
    batch = _timed(
        lambda: counts.update(batch=sum(len(ids) for ids in wordpiece(texts, add_special_tokens=False)["input_ids"]))
    )
    out["tokenizers"]["wordpiece-4096"] = {
        "tokens_per_s_cpu": round(counts["single"] / max(single[1], 1e-9), 1),
        "tokens_per_s_wall": round(counts["single"] / single[0], 1),
        "tokens_per_text": round(counts["single"] / len(texts), 2),
        "batch_call_tokens_per_s_cpu": round(counts["batch"] / max(batch[1], 1e-9), 1),
        "batch_call_tokens_per_s_wall": round(counts["batch"] / batch[0], 1),
        "source": "models/tokenizers/ko-wordpiece-4096 (notebook 04)" if saved else "trained by this run",
    }
    return out


# --------------------------------------------------------------------------- report


def summary_markdown(report: dict) -> str:
    info = report["machine"]
    end_load = "/".join(f"{x:.2f}" for x in report["load_average_end"]) or "unknown"
    lines = [
        "## Throughput (`python -m benchmarks.throughput`)",
        "",
        machine_line(info),
        "",
        f"The machine was **shared** with other jobs while this ran (run at `nice -n 15`; load average at the end "
        f"{end_load} on {info['hardware'].split(', ')[1]}), so wall-clock speeds understate what an idle machine "
        "does. Speeds are therefore also given per CPU-second of the benchmark's own process (1 torch thread), "
        "which other jobs do not inflate, and the ratios (from alternating runs in one process) use those.",
        "",
    ]
    if "trainer" in report:
        t = report["trainer"]
        lines += [
            "**Own training loop vs `transformers.Trainer`** "
            f"({t['model']}, {t['examples']} tweets, batch {t['batch_size']}, max {t['max_length']} tokens, "
            f"same initial weights, optimiser, schedule and clipping; {t['runs_each']} alternating runs each):",
            "",
            "| loop | examples per CPU-second | examples/s (wall) |",
            "|---|---|---|",
            f"| `helpers.core.training.fit` | {t['examples_per_s_cpu']['own']:.1f} | "
            f"{t['examples_per_s_wall']['own']:.1f} |",
            f"| `transformers.Trainer` | {t['examples_per_s_cpu']['trainer']:.1f} | "
            f"{t['examples_per_s_wall']['trainer']:.1f} |",
            f"| **ratio own / Trainer** (target >= 1.0) | **{t['ratio_own_over_trainer']['cpu']:.2f}** | "
            f"{t['ratio_own_over_trainer']['wall']:.2f} |",
            "",
        ]
    if "lstm" in report:
        s = report["lstm"]
        lines += [
            f"**LSTM batching** ({s['model']}, {s['examples']} tweets, mean {s['mean_tokens']} / max "
            f"{s['max_tokens']} tokens, batch {s['batch_size']}, {s['runs_each']} alternating runs each):",
            "",
            "| batches | examples per CPU-second | examples/s (wall) | padding share |",
            "|---|---|---|---|",
        ]
        names = {
            "naive": "naive: random order, padded to the batch's longest, the RNN reads the pads",
            "packed": "packed, random order",
            "packed_bucketed": "packed + length-bucketed",
        }
        lines += [
            f"| {names[k]} | {s['examples_per_s_cpu'][k]:.0f} | {s['examples_per_s_wall'][k]:.0f} | "
            f"{s['pad_share'][k]:.0%} |"
            for k in names
        ]
        r = s["ratio_packed_bucketed_over_naive"]
        lines += [f"| **ratio packed+bucketed / naive** | **{r['cpu']:.2f}** | {r['wall']:.2f} | |", ""]
    if "tokenizers" in report:
        k = report["tokenizers"]
        lines += [
            f"**Tokenisers** ({k['texts']} NSMC reviews, {k['characters']:,} characters; one review per call "
            "after a warm-up):",
            "",
            "| tokeniser | tokens per CPU-second | tokens/s (wall) | tokens per review |",
            "|---|---|---|---|",
        ]
        for name, v in k["tokenizers"].items():
            lines.append(
                f"| `{name}` | {v['tokens_per_s_cpu']:,.0f} | {v['tokens_per_s_wall']:,.0f} | "
                f"{v['tokens_per_text']:.1f} |"
            )
        wp = k["tokenizers"].get("wordpiece-4096")
        if wp:
            lines += [
                "",
                f"The WordPiece tokenizer (source: {wp['source']}), called once on the whole list (batched, in Rust): "
                f"{wp['batch_call_tokens_per_s_cpu']:,.0f} tokens per CPU-second, "
                f"{wp['batch_call_tokens_per_s_wall']:,.0f} tokens/s (wall).",
            ]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Training and tokenisation throughput of the course's code.")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the machine is shared)")
    parser.add_argument("--trainer-examples", type=int, default=256)
    parser.add_argument("--lstm-examples", type=int, default=2000)
    parser.add_argument("--texts", type=int, default=500)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    report = {"machine": machine(), "parts": args.parts}
    started = time.perf_counter()
    if "trainer" in args.parts:
        report["trainer"] = bench_trainer(args.trainer_examples, 32, 64, args.seed)
        print(
            f"trainer: {report['trainer']['examples_per_s_cpu']} ratio {report['trainer']['ratio_own_over_trainer']}",
            flush=True,
        )
    if "lstm" in args.parts:
        report["lstm"] = bench_lstm(args.lstm_examples, 32, args.seed)
        print(
            f"lstm: {report['lstm']['examples_per_s_cpu']} ratio {report['lstm']['ratio_packed_bucketed_over_naive']}",
            flush=True,
        )
    if "tokenizers" in args.parts:
        report["tokenizers"] = bench_tokenizers(args.texts, args.seed)
        print(
            f"tokenizers: { {k: v['tokens_per_s_cpu'] for k, v in report['tokenizers']['tokenizers'].items()} }",
            flush=True,
        )
    report["load_average_end"] = load_average()
    report["wall_time_s"] = round(time.perf_counter() - started, 1)
    print(f"written: {write_json('throughput', report)}, {write_section('throughput', summary_markdown(report))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
