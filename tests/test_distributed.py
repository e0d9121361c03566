"""helpers.core.distributed and the script loop under torchrun: two gloo ranks on CPU train exactly like one process."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from text_fixtures import write_text_data  # noqa: E402  (tests/ is on sys.path under pytest)
from torch import nn

from helpers.core.distributed import (
    DistContext,
    DistributedError,
    MixedPrecision,
    default_precision,
    init_distributed,
    shard,
)
from helpers.core.env import REPO_ROOT
from helpers.core.training import IndexBatches, ShardBatch, eval_batches, shuffled_batches


def test_without_launcher_variables_it_is_one_process(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    ctx = init_distributed("cpu")
    assert (ctx.rank, ctx.world_size, ctx.backend, ctx.is_main, ctx.is_distributed) == (0, 1, None, True, False)
    assert not torch.distributed.is_initialized()


def test_incomplete_launcher_variables_give_a_clear_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    with pytest.raises(DistributedError, match="MASTER_ADDR, MASTER_PORT not set.*torchrun"):
        init_distributed("cpu")
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(DistributedError, match="not an integer"):
        init_distributed("cpu")


def test_mixed_precision_only_on_cuda(monkeypatch):
    import helpers.core.distributed as dist_mod

    cpu = torch.device("cpu")
    monkeypatch.setattr(dist_mod, "cpu_supports_bf16", lambda: False)
    for asked in ("auto", "fp32", "bf16", "fp16"):
        amp = MixedPrecision(asked, cpu)
        assert amp.precision == "fp32" and amp.dtype is None and not amp.scaler.is_enabled()
        assert ("training in fp32" in amp.note) == (asked in ("bf16", "fp16"))
    # a CPU with bf16 units: bf16 only when asked for, "auto" stays fp32, fp16 is never used on a CPU
    monkeypatch.setattr(dist_mod, "cpu_supports_bf16", lambda: True)
    amp = MixedPrecision("bf16", cpu)
    assert amp.precision == "bf16" and amp.dtype is torch.bfloat16 and not amp.scaler.is_enabled() and not amp.note
    with amp.autocast():
        out = nn.Linear(4, 3)(torch.randn(2, 4))
    assert out.dtype == torch.bfloat16
    assert MixedPrecision("auto", cpu).dtype is None and MixedPrecision("fp16", cpu).dtype is None
    with pytest.raises(ValueError, match="precision must be one of"):
        MixedPrecision("fp8", cpu)
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    assert default_precision() == "bf16"
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "no")
    assert default_precision() == "fp32"
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION")
    assert default_precision() == "auto"


def test_global_batches_are_split_without_overlap_or_loss():
    batches = shuffled_batches(23, 8, seed=3)
    assert batches(0) == batches(0) and batches(0) != batches(1)
    assert sorted(i for b in batches(1) for i in b) == list(range(23))
    for batch in batches(0):
        parts = [shard(batch, DistContext(rank=r, world_size=3)) for r in range(3)]
        assert sorted(i for p in parts for i in p) == sorted(batch)
        assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_the_loaders_give_each_rank_its_share_of_the_same_batches():
    batches = shuffled_batches(23, 5, seed=1)
    data = list(range(100, 123))
    seen = []
    for rank in range(3):
        loader = IndexBatches(data, batches, list, DistContext(rank=rank, world_size=3))
        loader.set_epoch(1)
        items = list(loader)
        assert all(isinstance(b, ShardBatch) for b in items) and len(items) == len(batches(1)) == len(loader)
        assert [b.global_size for b in items] == [
            len(b) for b in batches(1)
        ]  # the last batch (3) still has one per rank
        seen += [x for b in items for x in b.batch]
        evaluated = [
            x for b in eval_batches(data, list, batch_size=4, ctx=DistContext(rank=rank, world_size=3)) for x in b
        ]
        assert evaluated == data[rank::3]
    assert sorted(seen) == data
    tiny = IndexBatches(data, lambda epoch: [[0, 1, 2, 3], [4]], list, DistContext(rank=0, world_size=2))
    assert [b.batch for b in tiny] == [[100, 102]] and tiny.skipped == 1  # a batch of 1 cannot feed 2 ranks


SPY = textwrap.dedent("""
    # runs `python -m helpers.cli.train_text` and saves the weights this rank ends with
    import os, sys, torch
    from helpers.cli import train_text
    jobs, build = [], train_text.build_lstm_job
    train_text.build_lstm_job = lambda args, ctx: jobs.append(build(args, ctx)) or jobs[-1]
    code = train_text.main(sys.argv[1:])
    torch.save(jobs[0].model.state_dict(), os.path.join(sys.argv[sys.argv.index("--output") + 1],
               f"rank{os.environ.get('RANK', '0')}.pt"))
    sys.exit(code)
""")


@pytest.mark.slow  # torchrun with two ranks: 59 s under load; make test only
def test_two_gloo_ranks_under_torchrun_match_a_single_process(tmp_path):
    data = write_text_data(tmp_path / "data", n_train=90)
    spy = tmp_path / "spy.py"
    spy.write_text(SPY)
    # batches of 9 are split 5 + 4 (the loss scaling must make that the global mean); no dropout: its masks
    # depend on how many examples each rank draws, the rest of the maths must agree
    flags = [
        "lstm",
        "--data",
        str(data),
        "--epochs",
        "3",
        "--batch-size",
        "9",
        "--lr",
        "0.05",
        "--embed-dim",
        "16",
        "--hidden-dim",
        "16",
        "--dropout",
        "0",
        "--embed-dropout",
        "0",
        "--threads",
        "1",
        "--no-progress",
        "--device",
        "cpu",
    ]  # gloo on CPU processes, also on a machine with a GPU
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    two, one = tmp_path / "two", tmp_path / "one"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    done = subprocess.run(
        [*launcher, str(spy), *flags, "--output", str(two)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    done = subprocess.run(
        [sys.executable, str(spy), *flags, "--output", str(one)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    rank0, rank1, single = (
        torch.load(p, weights_only=True) for p in (two / "rank0.pt", two / "rank1.pt", one / "rank0.pt")
    )
    for name in single:
        assert torch.equal(rank0[name], rank1[name]), f"the ranks disagree on {name}"
        torch.testing.assert_close(rank0[name], single[name], atol=1e-5, rtol=1e-5)
    saved = torch.load(two / "model" / "model.pt", weights_only=True)
    assert all(torch.equal(saved[name], rank0[name]) for name in saved)

    m2, m1 = (json.loads((out / "metrics.json").read_text()) for out in (two, one))
    assert (m2["settings"]["world_size"], m2["settings"]["backend"], m1["settings"]["world_size"]) == (2, "gloo", 1)
    assert m2["finished"] and m2["replica_max_abs_diff"] == 0.0
    assert [r["epoch"] for r in m2["history"]] == [1, 2, 3] and m2["best_epoch"] == m1["best_epoch"]
    for r2, r1 in zip(m2["history"], m1["history"]):
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_macro_f1"):
            assert r2[key] == pytest.approx(r1[key], abs=1e-5), key
    for key in ("loss", "accuracy", "macro_f1", "n"):
        assert m2["test"][key] == pytest.approx(m1["test"][key], abs=1e-5)
    assert m1["history"][-1]["train_loss"] < m1["history"][0]["train_loss"]  # it did learn something
    assert {p.name for p in two.iterdir()} == {
        "checkpoints",
        "metrics.json",
        "model",
        "run_config.json",
        "train.log",
        "rank0.pt",
        "rank1.pt",
    }
    assert (two / "train.log").read_text().count("epoch 3:") == 1  # one log, written by rank 0 only
