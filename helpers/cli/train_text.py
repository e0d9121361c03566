"""Train text classifiers from the command line, with the code the notebooks use.

    python -m helpers.cli.train_text lstm [--data emotion_en|FOLDER] [--config run.json] [--epochs 20] [--limit 2000]
                                      [--output build/runs/lstm-emotion_en] [--resume] ...   (all flags: --help)
    python -m helpers.cli.train_text fold --fold 0 [--n-folds 5] [--model roberta|tfidf]
                                      [--init random|DIR|klue/roberta-base] [--scheme 7way|two-stage]
                                      [--loss ce|weighted|focal] [--epochs 2] [--limit 300]
                                      [--out build/train_text/fold0.json]
    python -m helpers.cli.train_text finetune --model e5-small --data DIR|ko_single_turn_emotion [--fold 0]
                                      [--output build/runs/...] [--resume] ...   (all flags: --help)

**lstm** trains notebook 02's final model (a packed LSTM with max pooling over time and embedding dropout,
bucketed batches, Adam, early stopping on validation macro-F1) on dair-ai emotion, or on a folder holding
``train.csv``, ``validation.csv`` and optionally ``test.csv`` with the columns ``text,label``. It runs in one
process, or on N GPUs / processes with DistributedDataParallel when started by ``torchrun --nproc_per_node N`` or
``accelerate launch`` (:mod:`helpers.cli.script_loop`), and writes checkpoints every epoch (``--resume`` continues
after an interruption), ``metrics.json``, ``train.log`` and a model folder that
``python -m helpers.cli.evaluate --model OUTPUT/model`` reads.

**fold** runs :func:`helpers.text.korean_emotion.run_fold` on one fold of the Korean 7-emotion task (notebook 06
calls the same function) and writes the fold's validation and held-out test metrics as JSON. Run the folds of a
k-fold one by one, on one machine or several, and average the JSON files (``helpers.core.metrics.mean_std``).
``--init models/ko-roberta-mlm`` fine-tunes the MLM-pretrained RoBERTa that notebook 06 saves;
``--init klue/roberta-base`` the hub model (needs the internet once, and a GPU to be quick). The older form
without the word ``fold`` (``python -m helpers.cli.train_text --fold 0 ...``) still works.

**finetune** fine-tunes a pretrained encoder of :mod:`helpers.pretrained` (multilingual E5 for Korean) as a text
classifier on the same loop, DDP, checkpoints and ``--resume`` as ``lstm`` (:mod:`helpers.cli.finetune_text`);
its ``OUTPUT/model`` folder is read by ``python -m helpers.cli.evaluate``.

Imports of torch, pandas and the model modules sit inside the subcommands on purpose: ``--help`` and a mistyped
argument answer in about 0.4 s instead of the 5 s that importing torch and pandas takes on a busy 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from helpers.core.env import REPO_ROOT
from helpers.core.inputs import CourseInputError, describe_os_error

if TYPE_CHECKING:  # annotations only: pandas and the torch-based loop are imported where they are used
    import pandas as pd

    from helpers.cli.script_loop import TrainingJob

COMMANDS = ("lstm", "fold", "finetune")


# --------------------------------------------------------------------------- fold: notebook 06, one fold


def build_parser() -> argparse.ArgumentParser:
    """The flags of the ``fold`` command."""
    from helpers.text.korean_emotion import FoldConfig

    d = FoldConfig()
    p = argparse.ArgumentParser(
        prog="python -m helpers.cli.train_text fold",
        description="Train and score one fold of notebook 06's Korean 7-emotion task.",
    )
    p.add_argument("--fold", type=int, required=True, help="which fold to validate on (0 .. n-folds-1)")
    p.add_argument("--n-folds", type=int, default=d.n_folds)
    p.add_argument("--model", choices=("roberta", "tfidf"), default=d.model)
    p.add_argument("--init", default=d.init, help="roberta: 'random', a save_pretrained folder, or a hub name")
    p.add_argument("--scheme", choices=("7way", "two-stage"), default=d.scheme)
    p.add_argument("--loss", choices=("ce", "weighted", "focal"), default=d.loss)
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--max-length", type=int, default=d.max_length)
    p.add_argument("--hidden", type=int, default=d.hidden, help="size of a randomly initialised RoBERTa")
    p.add_argument("--layers", type=int, default=d.layers)
    p.add_argument("--heads", type=int, default=d.heads)
    p.add_argument(
        "--tokenizer",
        type=Path,
        default=None,
        help="tokenizer folder for --init random (default: the course's Korean WordPiece tokenizer of notebook 04)",
    )
    p.add_argument(
        "--limit", type=int, default=None, help="train on a stratified subset of this many rows (smoke tests)"
    )
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")
    p.add_argument(
        "--threads", type=int, default=None, help="CPU threads for torch (1 is fastest on a busy 2-core machine)"
    )
    p.add_argument("--out", type=Path, default=None, help="metrics JSON (default build/train_text/<name>-fold<k>.json)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _check_fold_out(out: Path) -> None:
    """``--out`` of ``fold``: a new file, or an earlier fold result (JSON with name/config/validation/test)."""
    from helpers.core.outputs import OutputFolderError

    if out.is_dir():
        raise OutputFolderError(f"--out {out} is a folder; give the path of a .json file")
    if out.exists():
        try:
            earlier = json.loads(out.read_text(encoding="utf-8"))
            ours = isinstance(earlier, dict) and {"name", "config", "validation", "test"} <= set(earlier)
        except (OSError, UnicodeDecodeError, ValueError):
            ours = False
        if not ours:
            raise OutputFolderError(
                f"--out {out} exists and is not a fold result of this script; it is left as it is: give another --out"
            )
    parent = out.parent if str(out.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputFolderError(
            f"cannot create the folder of --out {out} ({exc.strerror or exc}); choose another place"
        ) from None
    if not os.access(parent, os.W_OK):
        raise OutputFolderError(f"cannot write into {parent} (--out {out}); choose a place you can write to")


def fold_main(argv: Sequence[str] | None = None) -> int:
    """``python -m helpers.cli.train_text fold ...``: one fold of notebook 06, metrics as JSON."""
    args = build_parser().parse_args(argv)
    try:
        return _fold(args)
    except CourseInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    except (ValueError, KeyError, RuntimeError) as exc:  # the course's own checks in run_fold / FoldConfig
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        return 2


def _fold(args: argparse.Namespace) -> int:
    from helpers.core.download import atomic_write_bytes
    from helpers.core.env import describe_device, get_device, seed_everything
    from helpers.core.inputs import check_device, check_number, check_threads
    from helpers.text.korean_emotion import FoldConfig, run_fold

    check_number(args.n_folds, "--n-folds", int, 2, 100)
    check_number(args.fold, "--fold", int, 0, args.n_folds - 1)
    check_number(args.epochs, "--epochs", int, 1, 10_000)
    for name in ("batch_size", "max_length", "hidden", "layers", "heads"):
        check_number(getattr(args, name), f"--{name.replace('_', '-')}", int, 1, 1_000_000)
    check_number(args.lr, "--lr", float, 0, 10)
    if args.limit is not None:
        check_number(args.limit, "--limit", int, 1)
    check_threads(args.threads)
    check_device(args.device)
    if args.tokenizer is not None and not args.tokenizer.is_dir():
        raise CourseInputError(
            f"--tokenizer {args.tokenizer}: no such folder; give the folder notebook 04 saves "
            "(models/tokenizers/ko-wordpiece-4096), or leave --tokenizer out"
        )
    cfg = FoldConfig(
        model=args.model,
        init=args.init,
        scheme=args.scheme,
        loss=args.loss,
        fold=args.fold,
        n_folds=args.n_folds,
        seed=args.seed,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        max_length=args.max_length,
        limit=args.limit,
        hidden=args.hidden,
        layers=args.layers,
        heads=args.heads,
    )
    out = args.out or REPO_ROOT / "build" / "train_text" / f"{cfg.name}-fold{cfg.fold}.json"
    _check_fold_out(out)  # before training: a bad --out costs one line, not a run
    seed_everything(args.seed)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    device = get_device(args.device)
    print(f"{cfg.name}, fold {cfg.fold} of {cfg.n_folds}, on {describe_device(device)}", flush=True)
    tokenizer = None
    if args.tokenizer is not None:
        from transformers import AutoTokenizer

        from helpers.core.model_folder import load_pretrained

        if (
            not (args.tokenizer / "tokenizer.json").is_file()
            and not (args.tokenizer / "tokenizer_config.json").is_file()
        ):
            raise CourseInputError(
                f"--tokenizer {args.tokenizer}: no tokenizer there (a folder written by save_pretrained, "
                "with tokenizer.json); give the folder notebook 04 saves, or leave --tokenizer out"
            )
        tokenizer = load_pretrained(AutoTokenizer, args.tokenizer, local_files_only=True)
    result = run_fold(cfg, tokenizer=tokenizer, device=device, progress=not args.no_progress)
    payload = {k: result[k] for k in ("name", "config", "sizes", "validation", "test", "seconds")}
    atomic_write_bytes(out, (json.dumps(payload, indent=2) + "\n").encode("utf-8"))
    v, t = result["validation"], result["test"]
    print(
        f"validation: accuracy {v['accuracy']:.4f}, macro-F1 {v['macro_f1']:.4f} | "
        f"test: accuracy {t['accuracy']:.4f}, macro-F1 {t['macro_f1']:.4f} | {result['seconds']:.0f} s → {out}"
    )
    return 0


# --------------------------------------------------------------------------- lstm: notebook 02's final model


def build_lstm_parser() -> argparse.ArgumentParser:
    """The flags of the ``lstm`` command; the defaults are notebook 02's final model."""
    from helpers.cli.script_loop import add_loop_arguments

    p = argparse.ArgumentParser(
        prog="python -m helpers.cli.train_text lstm",
        description="Train notebook 02's LSTM classifier (one process, or DDP under torchrun / "
        "accelerate launch), with checkpoints and --resume.",
    )
    p.add_argument(
        "--data",
        default="emotion_en",
        help="'emotion_en' (dair-ai emotion) or a folder with train.csv, validation.csv [, test.csv] (text,label)",
    )
    p.add_argument(
        "--limit",
        type=int,
        default=None,
        help="train on a stratified subset of this many rows (validation and test stay whole)",
    )
    p.add_argument(
        "--tokenizer", default="basic_english", help="a registered tokeniser (helpers.text.pipeline.TOKENIZERS)"
    )
    p.add_argument("--min-freq", type=int, default=1, help="rarer training tokens become <unk>")
    p.add_argument("--max-len", type=int, default=128, help="tokens kept per text")
    p.add_argument("--embed-dim", type=int, default=128)
    p.add_argument("--hidden-dim", type=int, default=128)
    p.add_argument("--num-layers", type=int, default=1)
    p.add_argument("--bidirectional", action="store_true")
    p.add_argument("--cell", choices=("lstm", "gru"), default="lstm")
    p.add_argument("--pooling", choices=("last", "mean", "max"), default="max")
    p.add_argument("--dropout", type=float, default=0.3, help="on the pooled vector")
    p.add_argument("--embed-dropout", type=float, default=0.3)
    p.add_argument("--rnn-dropout", type=float, default=0.0, help="between stacked layers")
    p.add_argument("--batch-size", type=int, default=32, help="global batch size (split across the processes)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.0, help="> 0: AdamW instead of Adam")
    add_loop_arguments(p, epochs=20, patience=3, default_output=None, monitor="val_macro_f1")  # notebook 02's choice
    return p


def _read_split(path: Path) -> "pd.DataFrame":
    import pandas as pd

    from helpers.cli.script_loop import TrainingError

    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise TrainingError(f"{path} is not UTF-8 ({exc}); re-save it as UTF-8") from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        raise TrainingError(f"{path} is not a readable CSV ({exc})") from None
    missing = {"text", "label"} - set(frame.columns)
    if missing:
        raise TrainingError(f"{path} lacks the column(s) {sorted(missing)}; found {list(frame.columns)}")
    if frame.empty:
        raise TrainingError(f"{path} has a header but no rows")
    empty = frame.index[frame["text"].str.strip() == ""].tolist()
    if empty:
        raise TrainingError(f"{path}: rows {[i + 2 for i in empty[:10]]} (line numbers) have no text")
    return frame[["text", "label"]]


def load_text_splits(data: str) -> tuple[dict, list[str], str]:
    """``({"train", "validation"[, "test"]}: frames with text and integer label), label names, short name)``.

    ``data`` is ``"emotion_en"`` or a folder of ``train.csv``, ``validation.csv`` and optional ``test.csv``;
    labels there are names (``joy``) or ids (``0``).
    """
    from helpers.cli.script_loop import TrainingError

    if data == "emotion_en":
        from helpers.core.data import EMOTION_EN_LABELS, load_emotion_en

        splits = load_emotion_en()
        return {k: v[["text", "label"]] for k, v in splits.items()}, list(EMOTION_EN_LABELS), "emotion_en"
    folder = Path(data)
    if not folder.is_dir():
        raise TrainingError(
            f"--data {data!r} is neither 'emotion_en' nor a folder (with train.csv, validation.csv "
            "and optionally test.csv, columns text,label)"
        )
    splits = {}
    for split in ("train", "validation", "test"):
        path = folder / f"{split}.csv"
        if path.is_file():
            splits[split] = _read_split(path)
        elif split != "test":
            raise TrainingError(f"{folder} has no {split}.csv (columns text,label)")
    from helpers.core.data import labels_from_column

    label_names, _ = labels_from_column(splits["train"]["label"], str(folder / "train.csv"))
    if len(label_names) < 2:
        raise TrainingError(
            f"{folder / 'train.csv'} has a single label ({label_names}); a classifier needs two or more"
        )
    index = {name: i for i, name in enumerate(label_names)}
    for split, frame in splits.items():
        labels = frame["label"].str.strip()
        unknown = sorted(set(labels) - set(index))
        if unknown:
            raise TrainingError(f"{folder / (split + '.csv')} has labels that train.csv lacks: {unknown[:10]}")
        splits[split] = frame.assign(label=labels.map(index).astype(int))
    return splits, label_names, folder.resolve().name


def build_lstm_job(args: argparse.Namespace, ctx) -> "TrainingJob":
    """Data, vocabulary, model and optimizer of ``train_text lstm`` as a
    :class:`helpers.cli.script_loop.TrainingJob`."""
    import torch

    from helpers.cli.script_loop import TrainingError, TrainingJob
    from helpers.core.data import subsample
    from helpers.text.lstm import LSTMClassifier, save_text_classifier
    from helpers.text.pipeline import BucketBatchSampler, Vocab, encode_texts, get_tokenizer, pad_batch

    tokenize = get_tokenizer(args.tokenizer)
    for name in ("limit", "batch_size", "max_len", "min_freq"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise TrainingError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    splits, label_names, data_name = load_text_splits(args.data)
    train = subsample(splits["train"], args.limit, seed=args.seed)
    vocab = Vocab.build((tokenize(t) for t in train["text"]), min_freq=args.min_freq)

    def encoded(frame) -> list[tuple[list[int], int]]:
        return list(zip(encode_texts(frame["text"].tolist(), tokenize, vocab, args.max_len), frame["label"].tolist()))

    train_set = encoded(train)
    # evaluation order does not change the metrics; sorted by length, its batches carry little padding
    val_set, test_set = (
        sorted(encoded(splits[s]), key=lambda ex: len(ex[0])) if s in splits else None for s in ("validation", "test")
    )
    sampler = BucketBatchSampler([len(ids) for ids, _ in train_set], args.batch_size, shuffle=True, seed=args.seed)

    def collate(examples):
        ids, labels = zip(*examples)
        padded, lengths = pad_batch(ids, vocab.pad_id)
        return padded, lengths, torch.tensor(labels, dtype=torch.long)

    arch = dict(
        embed_dim=args.embed_dim,
        hidden_dim=args.hidden_dim,
        num_layers=args.num_layers,
        bidirectional=args.bidirectional,
        cell=args.cell,
        pooling=args.pooling,
        dropout=args.dropout,
        embed_dropout=args.embed_dropout,
        rnn_dropout=args.rnn_dropout,
    )
    model = LSTMClassifier(len(vocab), len(label_names), pad_id=vocab.pad_id, packed=True, **arch)

    def make_optimizer(m):
        fused = ctx.device.type in ("cpu", "cuda")  # the fused Adam kernel is several times faster
        if args.weight_decay:
            return torch.optim.AdamW(m.parameters(), lr=args.lr, weight_decay=args.weight_decay, fused=fused)
        return torch.optim.Adam(m.parameters(), lr=args.lr, fused=fused)

    config = {
        "data": data_name,
        "limit": args.limit,
        "seed": args.seed,
        "tokenizer": args.tokenizer,
        "min_freq": args.min_freq,
        "max_len": args.max_len,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        **arch,
        "vocab_size": len(vocab),
        "train_size": len(train_set),
        "label_names": label_names,
    }

    def save_model(m, folder: Path, summary: dict) -> None:
        extra = {
            "max_len": args.max_len,
            "min_freq": args.min_freq,
            "trained_by": "python -m helpers.cli.train_text lstm",
            "data": data_name,
            "train_size": len(train_set),
            "seed": args.seed,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "best_epoch": summary["best_epoch"],
            "validation": summary["validation"],
            "test": summary["test"],
        }
        save_text_classifier(folder, m, vocab, extra, label_names, args.tokenizer)

    return TrainingJob(
        name=f"lstm on {data_name}",
        model=model,
        train_set=train_set,
        epoch_batches=lambda epoch: sampler.batches(epoch=epoch),
        collate=collate,
        num_classes=len(label_names),
        make_optimizer=make_optimizer,
        save_model=save_model,
        val_set=val_set,
        test_set=test_set,
        config=config,
    )


def lstm_main(argv: Sequence[str] | None = None) -> int:
    """``python -m helpers.cli.train_text lstm ...``."""
    from helpers.cli.script_loop import parse_with_config, run_script

    args = parse_with_config(build_lstm_parser(), argv)
    if args.output is None:
        name = args.data if args.data == "emotion_en" else Path(args.data).resolve().name
        args.output = REPO_ROOT / "build" / "runs" / f"lstm-{name}"
    return run_script(build_lstm_job, args)


# --------------------------------------------------------------------------- entry point

USAGE = """usage: python -m helpers.cli.train_text {lstm,fold,finetune} ...

  lstm   train notebook 02's LSTM classifier (emotion_en or your CSVs); DDP under torchrun / accelerate launch,
         checkpoints, --resume, metrics.json, a model folder for helpers.cli.evaluate
  fold   train and score one fold of notebook 06's Korean 7-emotion task (also: --fold K without 'fold')
  finetune  fine-tune a pretrained encoder of the registry (e5-small, mpnet-base, minilm) on your CSVs or one fold
         of notebook 06's task; DDP, checkpoints, --resume, a model folder for helpers.cli.evaluate

python -m helpers.cli.train_text lstm --help  |  python -m helpers.cli.train_text fold --help
"""


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    if argv[0] == "lstm":
        return lstm_main(argv[1:])
    if argv[0] == "fold":
        return fold_main(argv[1:])
    if argv[0] == "finetune":
        from helpers.cli.finetune_text import main as finetune_main

        return finetune_main(argv[1:])
    return fold_main(argv)  # the original form: python -m helpers.cli.train_text --fold K ...


if __name__ == "__main__":
    sys.exit(main())
