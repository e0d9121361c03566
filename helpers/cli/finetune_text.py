"""``python -m helpers.cli.train_text finetune``: fine-tune a pretrained registry encoder as a text classifier.

    python -m helpers.cli.train_text finetune --model e5-small --data DIR --output OUT [--epochs 3] [--lr 5e-5]
                                              [--resume] [--num-layers 2] [--limit 2000] ...   (all flags: --help)
    python -m helpers.cli.train_text finetune --model e5-small --data ko_single_turn_emotion --fold 0 --output OUT

The model is :class:`helpers.text.encoder_finetune.EncoderClassifier` (mean pooling over the real tokens, the
registry's text prefix such as E5's ``query: ``, dropout and a linear head; word embeddings frozen unless
``--train-word-embeddings``), trained by the course's one loop (:func:`helpers.core.training.fit`) through
:mod:`helpers.cli.script_loop`: DDP under ``torchrun`` / ``accelerate launch``, mixed precision on CUDA,
checkpoints every epoch and an exact ``--resume``, the epoch with the lowest validation loss kept. ``--data`` is a
folder of ``train.csv``, ``validation.csv`` and optional ``test.csv`` (columns ``text,label``), or
``ko_single_turn_emotion`` with ``--fold K`` (notebook 06's split: fold K of the stratified k-fold for training and
validation, the held-out test split as test). ``OUT/model`` is a folder that
``python -m helpers.cli.evaluate --model OUT/model --data file.csv`` scores.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from helpers.cli.script_loop import TrainingJob, add_loop_arguments, parse_with_config, run_script
from helpers.cli.train_text import load_text_splits
from helpers.core.data import KO_EMOTION_LABELS, load_ko_single_turn_emotion, subsample
from helpers.core.env import REPO_ROOT
from helpers.core.inputs import check_number
from helpers.pretrained import MODELS
from helpers.text import encoder_finetune as ef
from helpers.text.korean_emotion import fold_frames

KO_DATA = "ko_single_turn_emotion"


def build_parser() -> argparse.ArgumentParser:
    text_models = sorted(n for n, s in MODELS.items() if s.model_type != "whisper")
    p = argparse.ArgumentParser(
        prog="python -m helpers.cli.train_text finetune",
        description="Fine-tune a pretrained encoder of the course's registry as a text classifier "
        "(one process, or DDP under torchrun / accelerate launch).",
    )
    p.add_argument("--model", choices=text_models, default="e5-small", help="registry name of the encoder")
    p.add_argument(
        "--model-path",
        type=Path,
        default=None,
        help="a folder holding that model (default: $COURSE_MODEL_DIR, the HF cache/hub or the offline build)",
    )
    p.add_argument(
        "--num-layers",
        type=int,
        default=None,
        help="keep only the first N encoder layers (a cheaper model of the same class, for smoke runs)",
    )
    p.add_argument("--data", required=True, help=f"a folder with train.csv, validation.csv [, test.csv], or {KO_DATA}")
    p.add_argument("--fold", type=int, default=None, help=f"with --data {KO_DATA}: the fold to validate on")
    p.add_argument("--n-folds", type=int, default=5, help=f"with --data {KO_DATA}: number of folds")
    p.add_argument("--limit", type=int, default=None, help="train on a stratified subset of this many rows")
    p.add_argument("--max-length", type=int, default=64, help="tokens per text, the prefix included")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-5, help="learning rate of the encoder")
    p.add_argument("--head-lr", type=float, default=1e-3, help="learning rate of the new classification head")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup", type=float, default=0.06, help="share of the steps with a linear warm-up")
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument(
        "--train-word-embeddings",
        action="store_true",
        help="also train the word-embedding table (most of the parameters; slow on a CPU)",
    )
    add_loop_arguments(p, epochs=3, patience=None, default_output=None)
    p.set_defaults(clip_grad_norm=1.0, eval_batch_size=128)
    return p


def _check(args: argparse.Namespace) -> None:
    check_number(args.max_length, "--max-length", int, 4, 512)
    check_number(args.batch_size, "--batch-size", int, 1, 65_536)
    check_number(args.lr, "--lr", float, 1e-9, 1.0)
    check_number(args.head_lr, "--head-lr", float, 1e-9, 10.0)
    check_number(args.weight_decay, "--weight-decay", float, 0.0, 1.0)
    check_number(args.warmup, "--warmup", float, 0.0, 1.0)
    check_number(args.dropout, "--dropout", float, 0.0, 0.99)
    if args.num_layers is not None:
        check_number(args.num_layers, "--num-layers", int, 1, 128)
    if args.limit is not None:
        check_number(args.limit, "--limit", int, 1, 10**9)
    if args.data == KO_DATA:
        check_number(args.n_folds, "--n-folds", int, 2, 100)
        if args.fold is None:
            raise ValueError(f"--data {KO_DATA} needs --fold (0 .. {args.n_folds - 1})")
        check_number(args.fold, "--fold", int, 0, args.n_folds - 1)
    elif args.fold is not None:
        raise ValueError(f"--fold is for --data {KO_DATA}; a folder of CSVs has its own train/validation split")


def load_splits(args: argparse.Namespace) -> tuple[dict, list[str], str]:
    """``({"train", "validation"[, "test"]}: frames with text and integer label), label names, data name)``."""
    if args.data == KO_DATA:
        parts = fold_frames(load_ko_single_turn_emotion(), args.fold, args.n_folds, args.seed)
        splits = {k: v[["text", "label_id"]].rename(columns={"label_id": "label"}) for k, v in parts.items()}
        labels, name = list(KO_EMOTION_LABELS), f"{KO_DATA}-fold{args.fold}of{args.n_folds}"
    else:
        splits, labels, name = load_text_splits(args.data)
    splits["train"] = subsample(splits["train"], args.limit, seed=args.seed)
    return splits, labels, name


def build_job(args: argparse.Namespace, ctx):
    """The :class:`helpers.cli.script_loop.TrainingJob` of ``train_text finetune``."""
    _check(args)
    splits, label_names, data_name = load_splits(args)
    model, tokenizer, prefix, origin = ef.build_classifier(
        args.model,
        len(label_names),
        path=args.model_path,
        num_layers=args.num_layers,
        dropout=args.dropout,
        freeze_embeddings=not args.train_word_embeddings,
        seed=args.seed,
        verbose=ctx.is_main,
    )

    def encoded(frame) -> list[tuple[list[int], int]]:
        return list(
            zip(ef.encode(tokenizer, frame["text"].tolist(), prefix, args.max_length), (int(y) for y in frame["label"]))
        )

    train_set = encoded(splits["train"])
    val_set, test_set = (
        sorted(encoded(splits[s]), key=lambda ex: len(ex[0])) if s in splits else None for s in ("validation", "test")
    )
    epoch_batches = ef.length_grouped_batches([len(ids) for ids, _ in train_set], args.batch_size, args.seed)
    total_steps = args.epochs * len(epoch_batches(0))
    config = {
        "model": args.model,
        "origin": origin,
        "num_layers": args.num_layers,
        "data": data_name,
        "fold": args.fold,
        "n_folds": args.n_folds if args.fold is not None else None,
        "limit": args.limit,
        "seed": args.seed,
        "max_length": args.max_length,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "head_lr": args.head_lr,
        "weight_decay": args.weight_decay,
        "warmup": args.warmup,
        "dropout": args.dropout,
        "train_word_embeddings": args.train_word_embeddings,
        "epochs": args.epochs,
        "train_size": len(train_set),
        "label_names": label_names,
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }

    def save_model(m, folder: Path, summary: dict) -> None:
        extra = {
            "trained_by": "python -m helpers.cli.train_text finetune",
            "data": data_name,
            "train_size": len(train_set),
            "seed": args.seed,
            "lr": args.lr,
            "epochs": args.epochs,
            "best_epoch": summary["best_epoch"],
            "validation": summary["validation"],
            "test": summary["test"],
        }
        ef.write_encoder_classifier(
            folder,
            m,
            tokenizer,
            labels=label_names,
            prefix=prefix,
            max_length=args.max_length,
            encoder_name=args.model,
            origin=origin,
            extra=extra,
        )

    return TrainingJob(
        name=f"{args.model} fine-tuned on {data_name}",
        model=model,
        train_set=train_set,
        epoch_batches=epoch_batches,
        collate=ef.collate_ids(tokenizer.pad_token_id),
        num_classes=len(label_names),
        make_optimizer=lambda m: ef.make_optimizer(m, args.lr, args.head_lr, args.weight_decay),
        make_scheduler=lambda opt: ef.linear_warmup(opt, total_steps, args.warmup),
        save_model=save_model,
        val_set=val_set,
        test_set=test_set,
        config=config,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m helpers.cli.train_text finetune ...``."""
    args = parse_with_config(build_parser(), argv)
    if args.output is None:
        name = args.data if args.data == KO_DATA else Path(args.data).resolve().name
        fold = f"-fold{args.fold}" if args.fold is not None else ""
        args.output = REPO_ROOT / "build" / "runs" / f"finetune-{args.model}-{name}{fold}"
    return run_script(build_job, args)


__all__ = ["KO_DATA", "build_parser", "build_job", "load_splits", "main"]
