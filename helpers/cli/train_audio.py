"""Train notebook 08's speech-emotion CNN on one RAVDESS speaker fold from the command line.

    python -m helpers.cli.train_audio --fold 0 [--n-folds 5] [--epochs 40] [--limit 200] [--no-augment]
                                  [--output build/runs/speech_cnn-fold0] [--resume] [--config run.json] ...

The recipe is :class:`helpers.audio.cnn_recipe.SpeechCNNRecipe` (log-mel features, noisy copies + time shift +
SpecAugment, AdamW with a one-cycle schedule, label smoothing, the epoch with the lowest validation loss kept)
and the split :func:`helpers.audio.cnn_recipe.speaker_splits`: fold ``K`` (0-based) tests on actors never heard in
training and validates on one male and one female training actor. Features come from the same cache as notebook 08.

The loop is :mod:`helpers.cli.script_loop`: one process, or N GPUs / processes with DistributedDataParallel under
``torchrun --nproc_per_node N`` or ``accelerate launch``; a checkpoint per epoch, ``--resume``, ``metrics.json``,
``train.log`` and ``OUTPUT/model`` (``save_speech_cnn``), which ``python -m helpers.cli.evaluate --model OUTPUT/model``
scores. ``--seed S`` seeds the model and the data order with ``S + fold``, as notebook 08 does.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch.utils.data import default_collate

from helpers.audio.cnn import save_speech_cnn
from helpers.audio.cnn_recipe import (
    SpeechCNNRecipe,
    load_speech_features,
    new_speech_cnn,
    speaker_splits,
    speech_dataset,
    speech_optimizer,
    speech_schedule,
)
from helpers.cli.script_loop import (
    TrainingError,
    TrainingJob,
    add_loop_arguments,
    parse_with_config,
    run_script,
    shuffled_batches,
)
from helpers.core.data import RAVDESS_LABELS, load_ravdess, subsample
from helpers.core.distributed import barrier
from helpers.core.env import REPO_ROOT


def build_parser() -> argparse.ArgumentParser:
    """The flags of ``python -m helpers.cli.train_audio``; the defaults are notebook 08's ``full`` recipe."""
    r = SpeechCNNRecipe()
    p = argparse.ArgumentParser(
        prog="python -m helpers.cli.train_audio",
        description="Train notebook 08's SpeechCNN on one RAVDESS speaker fold (one process, or "
        "DDP under torchrun / accelerate launch), with checkpoints and --resume.",
    )
    p.add_argument("--fold", type=int, default=None, help="the speaker fold to test on (0 .. n-folds-1); required")
    p.add_argument("--n-folds", type=int, default=5)
    p.add_argument(
        "--data",
        type=Path,
        default=None,
        help="a RAVDESS folder (audio/Actor_XX/*.wav|flac); default: the course's data set (COURSE_DATA_DIR)",
    )
    p.add_argument(
        "--limit",
        type=int,
        default=None,
        help="train on a stratified subset of this many clips of the fold (validation and test stay whole)",
    )
    p.add_argument(
        "--batch-size", type=int, default=r.batch_size, help="global batch size (split across the processes)"
    )
    p.add_argument("--lr", type=float, default=r.learning_rate, help="peak learning rate of the one-cycle schedule")
    p.add_argument("--weight-decay", type=float, default=r.weight_decay)
    p.add_argument("--label-smoothing", type=float, default=r.label_smoothing)
    p.add_argument(
        "--widths", default=",".join(map(str, r.widths)), help="channels of the conv blocks, e.g. 16,32,64,128"
    )
    p.add_argument("--dropout", type=float, default=r.dropout)
    p.add_argument("--n-mels", type=int, default=r.n_mels)
    p.add_argument("--n-frames", type=int, default=r.n_frames, help="fixed input length in frames (20 ms each)")
    p.add_argument("--no-augment", action="store_true", help="no noisy copies, time shift or SpecAugment")
    p.add_argument("--noisy-copies", type=int, default=r.noisy_copies)
    add_loop_arguments(p, epochs=r.epochs, patience=None, default_output=None, monitor="val_loss")
    return p


def _recipe(args: argparse.Namespace):
    try:
        widths = tuple(int(w) for w in str(args.widths).split(","))
    except ValueError:
        raise TrainingError(
            f"--widths must be comma-separated integers such as 16,32,64,128, not {args.widths!r}"
        ) from None
    for name in ("batch_size", "n_mels", "n_frames", "epochs"):
        if getattr(args, name) < 1:
            raise TrainingError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.limit is not None and args.limit < 1:
        raise TrainingError(f"--limit must be at least 1, got {args.limit}")
    return SpeechCNNRecipe(
        n_mels=args.n_mels,
        n_frames=args.n_frames,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        widths=widths,
        epochs=args.epochs,
        dropout=args.dropout,
        label_smoothing=args.label_smoothing,
        weight_decay=args.weight_decay,
        augment=not args.no_augment,
        noisy_copies=args.noisy_copies,
    )


def build_audio_job(args: argparse.Namespace, ctx) -> "TrainingJob":
    """Features, split, model, optimizer and schedule of one fold as a :class:`helpers.cli.script_loop.TrainingJob`."""
    recipe = _recipe(args)
    if args.fold is None or not 0 <= args.fold < args.n_folds:
        raise TrainingError(
            f"give --fold K with K in 0..{args.n_folds - 1} (the speaker fold to test on), got {args.fold}"
        )
    data = load_ravdess(args.data)
    run_seed = args.seed + args.fold
    train_i, val_i, test_i = speaker_splits(data, n_folds=args.n_folds, seed=args.seed)[args.fold]
    if args.limit is not None and args.limit < len(train_i):
        train_i = subsample(data.iloc[train_i].assign(position=train_i), args.limit, seed=run_seed)[
            "position"
        ].to_numpy()
        used = data.iloc[np.sort(np.concatenate([train_i, val_i, test_i]))].reset_index(drop=True)
    else:
        used = data  # the whole data set: the feature cache files of notebook 08
    # one process per machine computes the features (cached on disk); the others then read them
    if ctx.local_rank != 0:
        barrier(ctx)
    features = load_speech_features(used, recipe, progress=not args.no_progress and ctx.is_main)
    if ctx.local_rank == 0:
        barrier(ctx)
    position = {path: i for i, path in enumerate(features.frame.filepath)}

    def positions(indices) -> np.ndarray:  # rows of `data` -> rows of the kept (readable) clips
        return np.array([position[p] for p in data.filepath.iloc[indices] if p in position], dtype=np.int64)

    labels = features.frame.label.to_numpy()
    train_set = speech_dataset(features, labels, positions(train_i), recipe, train=True, seed=run_seed)
    val_set, test_set = (speech_dataset(features, labels, positions(i), recipe) for i in (val_i, test_i))
    model = new_speech_cnn(recipe, run_seed)  # the notebook's model, optimizer and schedule (cnn_recipe)
    steps = recipe.epochs * math.ceil(len(train_set) / recipe.batch_size)

    def make_optimizer(m):
        return speech_optimizer(m, recipe)

    def make_scheduler(optimizer):
        return speech_schedule(optimizer, recipe, steps)

    test_actors = sorted(data.actor.iloc[test_i].unique().tolist())
    config = {
        "data": str(args.data or "ravdess_speech"),
        "fold": args.fold,
        "n_folds": args.n_folds,
        "seed": args.seed,
        "limit": args.limit,
        **recipe.as_dict(),
        "train_size": len(train_set),
        "val_size": len(val_set),
        "test_size": len(test_set),
        "test_actors": test_actors,
    }

    def save_model(m, folder: Path, summary: dict) -> None:
        save_speech_cnn(
            m,
            folder,
            extra={
                "labels": list(RAVDESS_LABELS),
                "features": recipe.feature_settings(),
                "n_frames": recipe.n_frames,
                "normalize": "band",
                "fold": args.fold,
                "n_folds": args.n_folds,
                "augmentation": recipe.augment,
                "test_actors": test_actors,
                "recipe": recipe.as_dict(),
                "trained_by": "python -m helpers.cli.train_audio",
                "best_epoch": summary["best_epoch"],
                "validation": summary["validation"],
                "test": summary["test"],
            },
        )

    return TrainingJob(
        name=f"SpeechCNN, speaker fold {args.fold} of {args.n_folds}",
        model=model,
        train_set=train_set,
        epoch_batches=shuffled_batches(len(train_set), recipe.batch_size, run_seed),
        collate=default_collate,
        num_classes=recipe.num_classes,
        make_optimizer=make_optimizer,
        save_model=save_model,
        val_set=val_set,
        test_set=test_set,
        make_scheduler=make_scheduler,
        scheduler_step="batch",
        label_smoothing=recipe.label_smoothing,
        config=config,
        generators=[train_set.rng],
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_with_config(build_parser(), argv)
    if args.output is None:
        args.output = REPO_ROOT / "build" / "runs" / f"speech_cnn-fold{args.fold}"
    return run_script(build_audio_job, args)


if __name__ == "__main__":
    sys.exit(main())
