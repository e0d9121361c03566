"""The hand-written recurrent cells of helpers.text.rnn_cells agree with PyTorch's own modules."""

import numpy as np
import pytest
import torch
from torch import nn

from helpers.text.rnn_cells import (
    ScratchGRUCell,
    ScratchLSTMCell,
    ScratchRNNCell,
    draw_lstm_cell,
    from_torch,
    grad_ratio_first_last,
    hidden_grad_norms,
    scratch_rnn,
)

TOL = 1e-6
CASES = [  # (input size, hidden size, batch, time)
    (1, 1, 1, 1),
    (3, 5, 2, 7),
    (8, 16, 4, 30),
    (5, 33, 1, 100),
    (12, 7, 9, 3),
]
KINDS = [(nn.RNN, ScratchRNNCell), (nn.LSTM, ScratchLSTMCell), (nn.GRU, ScratchGRUCell)]


def _max_diff(a, b):
    return (a - b).abs().max().item()


@pytest.mark.parametrize("torch_cls, scratch_cls", KINDS, ids=["rnn", "lstm", "gru"])
@pytest.mark.parametrize("input_size, hidden, batch, steps", CASES)
def test_scratch_matches_torch(torch_cls, scratch_cls, input_size, hidden, batch, steps):
    torch.manual_seed(input_size * 1000 + hidden * 10 + steps)
    module = torch_cls(input_size, hidden, batch_first=True)
    with torch.no_grad():  # random weights, wider than the default U(-1/sqrt(H), 1/sqrt(H)), and random biases
        for name, p in module.named_parameters():
            # gain 0.9 keeps the recurrence stable: in the chaotic regime (gain > 1) float32 rounding
            # differences between two correct implementations grow exponentially over long sequences
            p.normal_(0, 0.9 / hidden**0.5 if name.startswith("weight") else 0.5)
    x = torch.randn(batch, steps, input_size)
    out, state = module(x)
    cell = scratch_cls.from_torch(module)
    out2, state2 = scratch_rnn(cell, x)
    assert out2.shape == out.shape == (batch, steps, hidden)
    assert _max_diff(out, out2) < TOL
    if torch_cls is nn.LSTM:
        assert _max_diff(state[0][0], state2[0]) < TOL and _max_diff(state[1][0], state2[1]) < TOL
    else:
        assert _max_diff(state[0], state2) < TOL


@pytest.mark.parametrize("torch_cls", [nn.RNN, nn.LSTM, nn.GRU])
def test_initial_state_is_used(torch_cls):
    torch.manual_seed(1)
    module = torch_cls(4, 6, batch_first=True)
    x = torch.randn(3, 11, 4)
    h0 = torch.randn(1, 3, 6)
    if torch_cls is nn.LSTM:
        c0 = torch.randn(1, 3, 6)
        out, _ = module(x, (h0, c0))
        out2, _ = scratch_rnn(from_torch(module), x, (h0[0], c0[0]))
    else:
        out, _ = module(x, h0)
        out2, _ = scratch_rnn(from_torch(module), x, h0[0])
    assert _max_diff(out, out2) < TOL


@pytest.mark.parametrize(
    "torch_cell", [nn.RNNCell(5, 8), nn.LSTMCell(5, 8), nn.GRUCell(5, 8)], ids=["rnn", "lstm", "gru"]
)
def test_single_step_matches_torch_cell(torch_cell):
    torch.manual_seed(2)
    x, h = torch.randn(4, 5), torch.randn(4, 8)
    cell = from_torch(torch_cell)
    if isinstance(torch_cell, nn.LSTMCell):
        c = torch.randn(4, 8)
        (h1, c1), (h2, c2) = torch_cell(x, (h, c)), cell(x, (h, c))
        assert _max_diff(h1, h2) < TOL and _max_diff(c1, c2) < TOL
    else:
        assert _max_diff(torch_cell(x, h), cell(x, h)) < TOL


def test_relu_rnn_and_bias_free_modules():
    torch.manual_seed(3)
    x = torch.randn(2, 9, 3)
    for module in (nn.RNN(3, 4, nonlinearity="relu", batch_first=True), nn.LSTM(3, 4, bias=False, batch_first=True)):
        out, _ = module(x)
        assert _max_diff(out, scratch_rnn(from_torch(module), x)[0]) < TOL


def test_stacked_bidirectional_rebuilt_from_layer_cells():
    torch.manual_seed(4)
    hidden, layers = 6, 3
    lstm = nn.LSTM(5, hidden, num_layers=layers, bidirectional=True, batch_first=True)
    x = torch.randn(2, 13, 5)
    out, (h_n, c_n) = lstm(x)
    layer_in = x
    for layer in range(layers):
        fwd, (h_f, _) = scratch_rnn(from_torch(lstm, layer), layer_in)
        bwd, (h_b, _) = scratch_rnn(from_torch(lstm, layer, reverse=True), layer_in.flip(1))
        layer_in = torch.cat([fwd, bwd.flip(1)], dim=2)
        assert _max_diff(h_n[2 * layer], h_f) < TOL and _max_diff(h_n[2 * layer + 1], h_b) < TOL
    assert _max_diff(out, layer_in) < TOL


def test_from_torch_rejects_bad_requests():
    with pytest.raises(TypeError):
        ScratchRNNCell.from_torch(nn.LSTM(2, 3))
    with pytest.raises(ValueError):
        from_torch(nn.RNN(2, 3), layer=1)
    with pytest.raises(ValueError):
        from_torch(nn.GRU(2, 3), reverse=True)
    with pytest.raises(TypeError):
        from_torch(nn.Linear(2, 3))


def test_scratch_cells_train_like_modules():
    """Gradients flow through the hand-written cells to their parameters."""
    torch.manual_seed(5)
    cell = ScratchLSTMCell(3, 4)
    out, _ = scratch_rnn(cell, torch.randn(2, 6, 3))
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in cell.parameters())


def test_grad_norms_one_per_step_and_vanish_for_small_weights():
    torch.manual_seed(6)
    cell = ScratchRNNCell(4, 16)
    with torch.no_grad():
        cell.weight_hh.mul_(0.5)  # spectral radius well below 1
    steps = 40
    norms = hidden_grad_norms(cell, torch.randn(3, steps, 4))
    assert norms.shape == (steps,)
    assert np.all(np.isfinite(norms)) and np.all(norms >= 0)
    assert norms[-1] == pytest.approx(np.sqrt(3 * 16))  # d(sum h_T)/d h_T is all ones
    assert np.all(np.diff(norms[-20:]) > 0)  # grows towards the loss = decays going back in time
    assert grad_ratio_first_last(norms) < 1e-6


def test_grad_norms_explode_for_large_weights_and_accept_torch_modules():
    torch.manual_seed(7)
    rnn = nn.RNN(4, 64, batch_first=True)
    with torch.no_grad():
        rnn.weight_hh_l0.normal_(0, 3.0 / 8)  # gain 3: the chaotic, exploding regime
    x = 0.1 * torch.randn(2, 30, 4, dtype=torch.float64)
    norms = hidden_grad_norms(rnn, x)
    assert norms.shape == (30,)
    assert grad_ratio_first_last(norms) > 1e3


def test_lstm_grad_norms_and_forget_bias():
    torch.manual_seed(8)
    x = torch.randn(2, 50, 3, dtype=torch.float64)
    lstm = nn.LSTM(3, 8, batch_first=True)
    default = hidden_grad_norms(lstm, x)
    with torch.no_grad():
        lstm.bias_hh_l0[8:16] += 3.0  # forget gate open: f ≈ 0.95
    remembering = hidden_grad_norms(lstm, x)
    assert grad_ratio_first_last(remembering) > 1e3 * grad_ratio_first_last(default)


def test_draw_lstm_cell():
    import matplotlib

    matplotlib.use("Agg")
    fig = draw_lstm_cell()
    assert fig.axes
