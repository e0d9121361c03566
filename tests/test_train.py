import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import helpers
from helpers.core.training import evaluate, fit


def _blobs(n=240, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.randn(n, 2, generator=g) * 0.4 + torch.tensor([[0, 0], [3, 0], [0, 3]], dtype=torch.float)[y]
    return x, y


def _loaders():
    x, y = _blobs()
    train = DataLoader(
        TensorDataset(x[:180], y[:180]), batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    val = DataLoader(TensorDataset(x[180:], y[180:]), batch_size=32)
    return train, val


def test_fit_learns_and_records_history():
    helpers.seed_everything(0)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))
    train, val = _loaders()
    history = fit(
        model,
        train,
        val,
        torch.optim.Adam(model.parameters(), 0.05),
        epochs=5,
        device=torch.device("cpu"),
        progress=False,
    )
    assert len(history.train_loss) == len(history.val_accuracy) == 5
    assert history.train_loss[-1] < history.train_loss[0]
    assert evaluate(model, val, torch.device("cpu"))["accuracy"] > 0.95
    assert list(history.as_frame().columns)[:2] == ["train_loss", "val_loss"]
    # the learning curve: one loss per optimiser step (12 batches of 180 examples per epoch), and each epoch's
    # training loss is the example-weighted mean of its steps (the last batch holds 180 - 11 * 16 = 4 examples)
    assert len(history.step_loss) == 5 * 12
    weights = [16] * 11 + [4]
    for epoch in range(5):
        steps = history.step_loss[12 * epoch : 12 * (epoch + 1)]
        assert abs(sum(w * s for w, s in zip(weights, steps)) / 180 - history.train_loss[epoch]) < 1e-5
    assert type(history).from_state(history.state_dict()).step_loss == history.step_loss  # kept by checkpoints


def test_early_stopping_restores_best_weights():
    helpers.seed_everything(0)
    model = nn.Linear(2, 3)
    train, val = _loaders()
    # a learning rate that diverges after a good first epoch: validation loss stops improving
    history = fit(
        model,
        train,
        val,
        torch.optim.SGD(model.parameters(), lr=3.0),
        epochs=30,
        device=torch.device("cpu"),
        patience=2,
        progress=False,
    )
    assert history.stopped_early and len(history.val_loss) < 30
    best = history.best_epoch
    assert history.val_loss[best - 1] == min(history.val_loss)
    restored = evaluate(model, val, torch.device("cpu"), nn.CrossEntropyLoss())["loss"]
    assert abs(restored - history.val_loss[best - 1]) < 1e-5


def test_same_seed_same_result():
    def run():
        helpers.seed_everything(3)
        model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 3))
        train, val = _loaders()
        return fit(
            model,
            train,
            val,
            torch.optim.Adam(model.parameters(), 0.01),
            epochs=2,
            device=torch.device("cpu"),
            progress=False,
        ).val_loss

    assert run() == run()


def test_dict_batches_and_bad_arguments():
    class HFStyle(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(2, 3)

        def forward(self, features):
            return type("Out", (), {"logits": self.linear(features)})()

    x, y = _blobs(60)
    loader = [{"features": x[i : i + 20], "labels": y[i : i + 20]} for i in range(0, 60, 20)]
    model = HFStyle()
    history = fit(
        model,
        loader,
        loader,
        torch.optim.Adam(model.parameters(), 0.1),
        epochs=2,
        device=torch.device("cpu"),
        progress=False,
    )
    assert len(history.val_macro_f1) == 2
    import pytest

    with pytest.raises(ValueError, match="epochs"):
        fit(model, loader, None, torch.optim.Adam(model.parameters()), epochs=0, device=torch.device("cpu"))
    with pytest.raises(ValueError, match="monitor"):
        fit(
            model,
            loader,
            None,
            torch.optim.Adam(model.parameters()),
            epochs=1,
            device=torch.device("cpu"),
            monitor="f1",
        )


def test_device_choice():
    import pytest

    assert helpers.get_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="unknown device"):
        helpers.get_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="not available"):
            helpers.get_device("cuda")
    with pytest.raises(ValueError):
        helpers.seed_everything(-1)
