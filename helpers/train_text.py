"""Train and score one fold of the Korean 7-emotion task from the command line (notebook 06's code).

    python -m helpers.train_text --fold 0 [--n-folds 5] [--model roberta|tfidf] [--init random|DIR|klue/roberta-base]
                                 [--scheme 7way|two-stage] [--loss ce|weighted|focal] [--epochs 2] [--limit 300]
                                 [--out build/train_text/fold0.json]

Runs :func:`helpers.korean_emotion.run_fold` (the notebook calls the same function) and writes the fold's
validation and held-out test metrics as JSON. Run the folds of a k-fold one by one, on one machine or several,
and average the JSON files (``helpers.metrics.mean_std``). ``--init models/ko-roberta-mlm`` fine-tunes the
MLM-pretrained RoBERTa that notebook 06 saves; ``--init klue/roberta-base`` the hub model (needs the internet
once, and a GPU to be quick).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .env import REPO_ROOT


def build_parser() -> argparse.ArgumentParser:
    from .korean_emotion import FoldConfig

    d = FoldConfig()
    p = argparse.ArgumentParser(prog="python -m helpers.train_text", description=__doc__.split("\n\n")[0])
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
    p.add_argument("--tokenizer", type=Path, default=None,
                   help="tokenizer folder for --init random (default: the course's Korean WordPiece tokenizer of notebook 04)")
    p.add_argument("--limit", type=int, default=None, help="train on a stratified subset of this many rows (smoke tests)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (1 is fastest on a busy 2-core machine)")
    p.add_argument("--out", type=Path, default=None, help="metrics JSON (default build/train_text/<name>-fold<k>.json)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .env import describe_device, get_device, seed_everything
    from .korean_emotion import FoldConfig, run_fold

    try:
        cfg = FoldConfig(model=args.model, init=args.init, scheme=args.scheme, loss=args.loss, fold=args.fold,
                         n_folds=args.n_folds, seed=args.seed, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                         max_length=args.max_length, limit=args.limit, hidden=args.hidden, layers=args.layers, heads=args.heads)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    seed_everything(args.seed)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    device = get_device(args.device)
    print(f"{cfg.name}, fold {cfg.fold} of {cfg.n_folds}, on {describe_device(device)}", flush=True)
    tokenizer = None
    if args.tokenizer is not None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(args.tokenizer))
    result = run_fold(cfg, tokenizer=tokenizer, device=device, progress=not args.no_progress)
    out = args.out or REPO_ROOT / "build" / "train_text" / f"{cfg.name}-fold{cfg.fold}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {k: result[k] for k in ("name", "config", "sizes", "validation", "test", "seconds")}
    out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    v, t = result["validation"], result["test"]
    print(f"validation: accuracy {v['accuracy']:.4f}, macro-F1 {v['f1_macro']:.4f} | "
          f"test: accuracy {t['accuracy']:.4f}, macro-F1 {t['f1_macro']:.4f} | {result['seconds']:.0f} s → {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
