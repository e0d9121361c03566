"""helpers.core.checkpoint: atomic saves, exact resumption, clear errors on damaged files, no code execution on load;
and the scripts' --resume after a run is killed with SIGKILL."""

import json
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hostile import RunsCode  # tests/ is on sys.path under pytest
from text_fixtures import write_text_data  # noqa: E402  (tests/ is on sys.path under pytest)
from torch import nn

import helpers.core.checkpoint as ck
from helpers.cli.train_text import main as train_text
from helpers.core.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from helpers.core.env import REPO_ROOT, seed_everything


def _model():
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))


def _steps(model, optimizer, scheduler, generator, n):
    """Training steps that draw from every RNG a run uses: torch (dropout, data), NumPy, Python and a Generator."""
    for _ in range(n):
        x = torch.randn(8, 4) + float(np.random.rand()) + random.random() + float(generator.random())
        loss = nn.functional.cross_entropy(model(x), torch.randint(0, 3, (8,)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()


def test_restored_checkpoint_continues_exactly_like_the_uninterrupted_run(tmp_path):
    seed_everything(0)
    generator = np.random.default_rng(5)
    model = _model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    _steps(model, optimizer, scheduler, generator, 3)
    path = save_checkpoint(
        tmp_path,
        3,
        model,
        optimizer,
        scheduler,
        config={"lr": 1e-2, "out": tmp_path},
        state={"history": [{"epoch": 1, "loss": 0.5}]},
        rng=ck.rng_state([generator]),
    )
    _steps(model, optimizer, scheduler, generator, 4)
    expected = {k: v.clone() for k, v in model.state_dict().items()}

    seed_everything(123)  # a fresh process: other weights, other RNG states
    generator2 = np.random.default_rng(99)
    model2 = _model()
    optimizer2 = torch.optim.AdamW(model2.parameters(), lr=1e-2)
    scheduler2 = torch.optim.lr_scheduler.StepLR(optimizer2, step_size=2, gamma=0.5)
    checkpoint = load_checkpoint(path)
    ck.restore(checkpoint, model2, optimizer2, scheduler2)
    ck.set_rng_state(checkpoint["rng"][0], [generator2])
    assert checkpoint["epoch"] == 3 and checkpoint["config"] == {"lr": 1e-2, "out": str(tmp_path)}
    assert checkpoint["state"]["history"] == [{"epoch": 1, "loss": 0.5}]
    _steps(model2, optimizer2, scheduler2, generator2, 4)
    for name, value in model2.state_dict().items():
        assert torch.equal(value, expected[name]), name


def test_saves_are_atomic_and_only_the_newest_are_kept(tmp_path, monkeypatch):
    model = _model()
    for epoch in range(1, 5):
        save_checkpoint(tmp_path, epoch, model, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["epoch-0003.pt", "epoch-0004.pt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0003.pt", "epoch-0004.pt"]  # no temporary files

    def crash_midway(obj, fh):  # the disk fills up, or the process dies, half-way through the write
        fh.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("No space left on device")

    monkeypatch.setattr(ck.torch, "save", crash_midway)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(tmp_path, 5, model, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0003.pt", "epoch-0004.pt"]
    monkeypatch.undo()
    assert load_checkpoint(latest_checkpoint(tmp_path))["epoch"] == 4


def test_latest_checkpoint_orders_by_epoch_and_ignores_other_files(tmp_path):
    assert latest_checkpoint(tmp_path / "missing") is None and latest_checkpoint(tmp_path) is None
    model = nn.Linear(2, 2)
    for epoch in (9, 10, 2):
        save_checkpoint(tmp_path, epoch, model, keep=None)
    (tmp_path / ".epoch-0011.pt.abc.part").write_bytes(b"unfinished")
    (tmp_path / "notes.pt").write_bytes(b"x")
    assert [p.name for p in list_checkpoints(tmp_path)] == ["epoch-0002.pt", "epoch-0009.pt", "epoch-0010.pt"]
    assert latest_checkpoint(tmp_path).name == "epoch-0010.pt"


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_a_damaged_checkpoint_gives_a_clear_error_and_the_previous_one_survives(tmp_path, damage):
    model = nn.Linear(3, 2)
    save_checkpoint(tmp_path, 1, model)
    newest = save_checkpoint(tmp_path, 2, model)
    data = newest.read_bytes()
    newest.write_bytes({"truncate": data[: len(data) // 2], "garbage": os.urandom(300), "empty": b""}[damage])
    with pytest.raises(
        CheckpointError,
        match=r"epoch-0002\.pt is not a readable checkpoint.*delete epoch-0002\.pt "
        r"to resume from the newest of them",
    ):
        load_checkpoint(newest)
    previous = load_checkpoint(tmp_path / "epoch-0001.pt")
    assert previous["epoch"] == 1 and torch.equal(previous["model"]["weight"], model.weight.detach())


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_loading_refuses_a_file_that_would_run_code(tmp_path, writer):
    marker = tmp_path / "code-ran"
    payload = {"format": ck.FORMAT, "format_version": 1, "epoch": 1, "model": {}, "config": {}, "x": RunsCode(marker)}
    path = tmp_path / "epoch-0001.pt"
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(CheckpointError, match="holds objects other than tensors and plain data.*arbitrary code"):
        load_checkpoint(path)
    assert not marker.exists()
    # a plain loader runs the code: what weights_only prevents
    torch.load(path, weights_only=False) if writer == "torch.save" else pickle.loads(path.read_bytes())
    assert marker.exists()


def test_a_file_of_another_kind_is_not_taken_for_a_checkpoint(tmp_path):
    torch.save({"weight": torch.zeros(2)}, tmp_path / "epoch-0001.pt")
    with pytest.raises(CheckpointError, match="not a checkpoint written by helpers.core.checkpoint"):
        load_checkpoint(tmp_path / "epoch-0001.pt")
    with pytest.raises(CheckpointError, match="no checkpoint file"):
        load_checkpoint(tmp_path / "epoch-0002.pt")


TINY = ["--embed-dim", "16", "--hidden-dim", "16", "--lr", "0.05", "--threads", "1", "--no-progress"]


def test_the_script_refuses_to_overwrite_a_run_or_resume_with_other_settings(tmp_path, capsys):
    data = write_text_data(tmp_path / "data", n_train=60)
    out = tmp_path / "run"
    base = ["lstm", "--data", str(data), "--output", str(out), "--batch-size", "16", *TINY]
    assert train_text([*base, "--epochs", "1"]) == 0
    assert train_text([*base, "--epochs", "2"]) == 2
    assert "already holds checkpoints (newest: epoch-0001.pt); pass --resume" in capsys.readouterr().err
    assert train_text([*base, "--epochs", "2", "--resume", "--batch-size", "8"]) == 2
    assert "other settings (batch_size: checkpoint 16, now 8)" in capsys.readouterr().err
    latest = latest_checkpoint(out / "checkpoints")
    latest.write_bytes(latest.read_bytes()[:100])
    assert train_text([*base, "--epochs", "2", "--resume"]) == 2
    assert "epoch-0001.pt is not a readable checkpoint" in capsys.readouterr().err
    # --config reproduces a run from its run_config.json; --resume extends it by more epochs
    latest.unlink()
    out2 = tmp_path / "again"
    assert train_text(["lstm", "--config", str(out / "run_config.json"), "--output", str(out2), "--epochs", "1"]) == 0
    assert (
        json.loads((out2 / "metrics.json").read_text())["config"]
        == json.loads((out / "metrics.json").read_text())["config"]
    )
    assert (
        train_text(
            ["lstm", "--config", str(out / "run_config.json"), "--output", str(out2), "--epochs", "2", "--resume"]
        )
        == 0
    )
    metrics = json.loads((out2 / "metrics.json").read_text())
    assert [r["epoch"] for r in metrics["history"]] == [1, 2] and metrics["resumed_at"] == [1] and metrics["finished"]


def test_bad_settings_give_one_clear_error(tmp_path, capsys):
    data = write_text_data(tmp_path / "data", n_train=30)
    (tmp_path / "bad.json").write_text('{"pooling": "maxx"}')
    with pytest.raises(SystemExit):
        train_text(["lstm", "--data", str(data), "--config", str(tmp_path / "bad.json")])
    assert "pooling='maxx' is not one of" in capsys.readouterr().err
    assert train_text(["lstm", "--data", str(tmp_path / "nowhere"), "--output", str(tmp_path / "o")]) == 2
    assert "neither 'emotion_en' nor a folder" in capsys.readouterr().err
    (data / "test.csv").write_text("text,label\nhello,sadness\n")
    assert train_text(["lstm", "--data", str(data), "--output", str(tmp_path / "o")]) == 2
    assert "test.csv has labels that train.csv lacks: ['sadness']" in capsys.readouterr().err


@pytest.mark.slow  # three training subprocesses: 59 s under load; make test only
def test_a_killed_run_resumes_from_its_last_checkpoint_to_the_same_weights(tmp_path):
    data = write_text_data(tmp_path / "data", n_train=240)
    # batches of 4: about 60 steps per epoch, long enough to kill the run between two checkpoints;
    # dropout stays on, so the result also depends on the restored RNG states
    flags = ["lstm", "--data", str(data), "--epochs", "8", "--patience", "0", "--batch-size", "4", *TINY]
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    killed, full = tmp_path / "killed", tmp_path / "full"

    run = subprocess.Popen(
        [sys.executable, "-m", "helpers.cli.train_text", *flags, "--output", str(killed)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not list_checkpoints(killed / "checkpoints") and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=30)
    assert run.returncode == -signal.SIGKILL, run.stderr.read().decode()[-2000:]
    run.stderr.close()
    assert not (killed / "model").exists()  # killed before the end (metrics.json may not even be written yet)
    assert not (killed / "metrics.json").exists() or not json.loads((killed / "metrics.json").read_text())["finished"]
    stopped_at = load_checkpoint(latest_checkpoint(killed / "checkpoints"))["epoch"]
    assert 1 <= stopped_at < 8

    # the restart and the uninterrupted reference run in this process (the same code, without paying for imports)
    assert train_text([*flags, "--output", str(killed), "--resume"]) == 0
    assert f"resumed from {killed / 'checkpoints'}" in (killed / "train.log").read_text()
    assert train_text([*flags, "--output", str(full)]) == 0

    resumed_w, full_w = (torch.load(out / "model" / "model.pt", weights_only=True) for out in (killed, full))
    for name, value in full_w.items():
        assert torch.equal(resumed_w[name], value), name
    resumed_m, full_m = (json.loads((out / "metrics.json").read_text()) for out in (killed, full))

    def without_times(history):
        return [{k: v for k, v in row.items() if k != "seconds"} for row in history]

    assert without_times(resumed_m["history"]) == without_times(full_m["history"])
    assert resumed_m["test"] == full_m["test"] and resumed_m["resumed_at"] == [stopped_at]
    assert full_m["history"][-1]["val_accuracy"] > 0.5  # the run learned (chance is 1/3)


def write_ravdess(folder: Path, actors: int = 8, sr: int = 16000) -> Path:
    """RAVDESS-named clips (``03-01-EE-01-SS-01-AA.wav``): a tone whose pitch depends on the emotion."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    t = np.arange(int(0.6 * sr)) / sr
    for actor in range(1, actors + 1):
        actor_dir = folder / "audio" / f"Actor_{actor:02d}"
        actor_dir.mkdir(parents=True, exist_ok=True)
        for emotion in range(1, 9):
            for statement in (1, 2):
                wave = 0.3 * np.sin(2 * np.pi * (150 + 60 * emotion + 5 * actor) * t) + 0.01 * rng.standard_normal(
                    len(t)
                )
                sf.write(
                    actor_dir / f"03-01-{emotion:02d}-01-{statement:02d}-01-{actor:02d}.wav",
                    wave.astype(np.float32),
                    sr,
                )
    return folder


def test_an_interrupted_audio_run_resumes_to_the_same_weights(tmp_path, monkeypatch):
    import helpers.core.training as loop
    from helpers.cli.evaluate import load_model
    from helpers.cli.train_audio import main as train_audio

    ravdess = write_ravdess(tmp_path / "ravdess")
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    # augmentation on (noisy copy, shift, SpecAugment drawn from the dataset's own generator), one-cycle schedule
    flags = [
        "--data",
        str(ravdess),
        "--fold",
        "1",
        "--n-folds",
        "4",
        "--epochs",
        "3",
        "--widths",
        "8,16",
        "--batch-size",
        "16",
        "--noisy-copies",
        "1",
        "--threads",
        "1",
        "--no-progress",
    ]
    full, part = tmp_path / "full", tmp_path / "part"
    assert train_audio([*flags, "--output", str(full)]) == 0

    calls, evaluate = [], loop.evaluate

    def interrupted(*args, **kwargs):  # Ctrl-C during the third epoch's validation
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(loop, "evaluate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_audio([*flags, "--output", str(part)])
    monkeypatch.setattr(loop, "evaluate", evaluate)
    assert latest_checkpoint(part / "checkpoints").name == "epoch-0002.pt" and not (part / "model").exists()
    assert train_audio([*flags, "--output", str(part), "--resume"]) == 0

    full_w, part_w = (torch.load(out / "model" / "model.pt", weights_only=True) for out in (full, part))
    for name, value in full_w.items():
        assert torch.equal(part_w[name], value), name
    full_m, part_m = (json.loads((out / "metrics.json").read_text()) for out in (full, part))
    assert [r["train_loss"] for r in part_m["history"]] == [r["train_loss"] for r in full_m["history"]]
    assert part_m["test"] == full_m["test"] and part_m["config"]["test_actors"] == full_m["config"]["test_actors"]
    scorer = load_model(full / "model")  # the course's evaluator reads the script's model folder
    probs = scorer.predict_proba(sorted(str(p) for p in (ravdess / "audio" / "Actor_01").glob("*.wav"))[:2])
    assert probs.shape == (2, 8) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
