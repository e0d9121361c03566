"""Recurrent cells written by hand: a vanilla RNN, an LSTM and a GRU cell, unrolled over time.

Notebook 01 shows this source and explains it line by line, then checks every cell against PyTorch's own
``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` with the same weights (``from_torch``). The last part holds the tools of
the backpropagation-through-time study: how large is ``d loss / d h_t`` for every time step ``t``?

Conventions: inputs are batch-first, ``x`` of shape ``(batch, time, features)``; weights use PyTorch's
names, shapes and gate order, so that copying them from a torch module is a plain ``copy_``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


def _init_uniform(module: nn.Module, hidden_size: int) -> None:
    """PyTorch's default initialisation for recurrent layers: every weight ~ U(-1/sqrt(H), 1/sqrt(H))."""
    bound = 1.0 / math.sqrt(hidden_size)
    for p in module.parameters():
        nn.init.uniform_(p, -bound, bound)


def _copy_from_torch(cell: nn.Module, module: nn.Module, layer: int, reverse: bool) -> nn.Module:
    """Copy ``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh`` of one layer and direction of ``module``."""
    if isinstance(module, nn.RNNCellBase):  # nn.RNNCell / nn.LSTMCell / nn.GRUCell: no layer suffix
        if layer != 0 or reverse:
            raise ValueError("a torch *Cell has a single layer and direction")
        suffix = ""
    else:
        if not 0 <= layer < module.num_layers:
            raise ValueError(f"layer {layer} out of range: the module has {module.num_layers} layer(s)")
        if reverse and not module.bidirectional:
            raise ValueError("reverse=True needs a bidirectional module")
        if getattr(module, "proj_size", 0):
            raise ValueError("LSTMs with proj_size are not supported")
        suffix = f"_l{layer}" + ("_reverse" if reverse else "")
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            source = getattr(module, name + suffix, None)
            target = getattr(cell, name)
            if source is None:  # bias=False in the torch module: the same as zero biases
                target.zero_()
                target.requires_grad_(False)
            else:
                if source.shape != target.shape:
                    raise ValueError(
                        f"{name}{suffix}: torch has shape {tuple(source.shape)}, the cell {tuple(target.shape)}"
                    )
                target.copy_(source)
    return cell


def _sizes(module: nn.Module, layer: int, reverse: bool) -> tuple[int, int]:
    """``(input_size, hidden_size)`` of one layer of a torch recurrent module."""
    hidden = module.hidden_size
    if isinstance(module, nn.RNNCellBase) or layer == 0:
        return module.input_size, hidden
    return hidden * (2 if module.bidirectional else 1), hidden


class ScratchRNNCell(nn.Module):
    """One step of a vanilla (Elman) RNN: ``h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``."""

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh"):
        super().__init__()
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.input_size, self.hidden_size, self.nonlinearity = input_size, hidden_size, nonlinearity
        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size))  # W_ih: input -> hidden
        self.weight_hh = nn.Parameter(torch.empty(hidden_size, hidden_size))  # W_hh: hidden -> hidden
        self.bias_ih = nn.Parameter(torch.empty(hidden_size))
        self.bias_hh = nn.Parameter(torch.empty(hidden_size))
        _init_uniform(self, hidden_size)

    def init_state(self, batch_size: int, device=None, dtype=None) -> torch.Tensor:
        """h_0 = 0, one row per sequence of the batch."""
        return torch.zeros(batch_size, self.hidden_size, device=device, dtype=dtype)

    def forward(self, x_t: torch.Tensor, h_prev: torch.Tensor) -> torch.Tensor:
        pre = x_t @ self.weight_ih.T + self.bias_ih + h_prev @ self.weight_hh.T + self.bias_hh
        return torch.tanh(pre) if self.nonlinearity == "tanh" else torch.relu(pre)

    @staticmethod
    def output(state: torch.Tensor) -> torch.Tensor:
        """What the cell shows the next layer: for a vanilla RNN the state *is* the output."""
        return state

    @classmethod
    def from_torch(cls, module: nn.RNN | nn.RNNCell, layer: int = 0, reverse: bool = False) -> "ScratchRNNCell":
        """A cell with the weights of one layer (and direction) of an ``nn.RNN`` or of an ``nn.RNNCell``."""
        if not isinstance(module, (nn.RNN, nn.RNNCell)):
            raise TypeError(f"expected nn.RNN or nn.RNNCell, got {type(module).__name__}")
        cell = cls(*_sizes(module, layer, reverse), nonlinearity=module.nonlinearity)
        return _copy_from_torch(cell, module, layer, reverse)


class ScratchLSTMCell(nn.Module):
    """One step of an LSTM, gates in PyTorch's order (input i, forget f, candidate g, output o).

    i = σ(W_ii x + b_ii + W_hi h + b_hi)      f = σ(W_if x + b_if + W_hf h + b_hf)
    g = tanh(W_ig x + b_ig + W_hg h + b_hg)   o = σ(W_io x + b_io + W_ho h + b_ho)
    c_t = f * c_{t-1} + i * g                 h_t = o * tanh(c_t)
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        # the four gates' weights stacked row-wise: rows [0:H] are i, [H:2H] f, [2H:3H] g, [3H:4H] o
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(4 * hidden_size))
        self.bias_hh = nn.Parameter(torch.empty(4 * hidden_size))
        _init_uniform(self, hidden_size)

    def init_state(self, batch_size: int, device=None, dtype=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(h_0, c_0) = (0, 0)."""
        zeros = torch.zeros(batch_size, self.hidden_size, device=device, dtype=dtype)
        return zeros, zeros.clone()

    def forward(self, x_t: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        h_prev, c_prev = state
        gates = x_t @ self.weight_ih.T + self.bias_ih + h_prev @ self.weight_hh.T + self.bias_hh
        i, f, g, o = gates.chunk(4, dim=1)  # each (batch, hidden)
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        c_t = f * c_prev + i * g  # forget part of the old memory, write part of the new candidate
        h_t = o * torch.tanh(c_t)  # show a gated view of the memory
        return h_t, c_t

    @staticmethod
    def output(state: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """The LSTM's output at a step is h_t; the cell state c_t stays inside."""
        return state[0]

    @classmethod
    def from_torch(cls, module: nn.LSTM | nn.LSTMCell, layer: int = 0, reverse: bool = False) -> "ScratchLSTMCell":
        """A cell with the weights of one layer (and direction) of an ``nn.LSTM`` or of an ``nn.LSTMCell``."""
        if not isinstance(module, (nn.LSTM, nn.LSTMCell)):
            raise TypeError(f"expected nn.LSTM or nn.LSTMCell, got {type(module).__name__}")
        return _copy_from_torch(cls(*_sizes(module, layer, reverse)), module, layer, reverse)


class ScratchGRUCell(nn.Module):
    """One step of a GRU, gates in PyTorch's order (reset r, update z, candidate n).

    r = σ(W_ir x + b_ir + W_hr h + b_hr)      z = σ(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    h_t = (1 - z) * n + z * h_{t-1}
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(3 * hidden_size, input_size))  # rows: r, z, n
        self.weight_hh = nn.Parameter(torch.empty(3 * hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(3 * hidden_size))
        self.bias_hh = nn.Parameter(torch.empty(3 * hidden_size))
        _init_uniform(self, hidden_size)

    def init_state(self, batch_size: int, device=None, dtype=None) -> torch.Tensor:
        return torch.zeros(batch_size, self.hidden_size, device=device, dtype=dtype)

    def forward(self, x_t: torch.Tensor, h_prev: torch.Tensor) -> torch.Tensor:
        x_r, x_z, x_n = (x_t @ self.weight_ih.T + self.bias_ih).chunk(3, dim=1)
        h_r, h_z, h_n = (h_prev @ self.weight_hh.T + self.bias_hh).chunk(3, dim=1)
        r = torch.sigmoid(x_r + h_r)  # how much of the past the candidate may look at
        z = torch.sigmoid(x_z + h_z)  # how much of the old state to keep
        n = torch.tanh(x_n + r * h_n)  # candidate state (the reset gate acts on W_hn h + b_hn)
        return (1 - z) * n + z * h_prev

    @staticmethod
    def output(state: torch.Tensor) -> torch.Tensor:
        return state

    @classmethod
    def from_torch(cls, module: nn.GRU | nn.GRUCell, layer: int = 0, reverse: bool = False) -> "ScratchGRUCell":
        """A cell with the weights of one layer (and direction) of an ``nn.GRU`` or of an ``nn.GRUCell``."""
        if not isinstance(module, (nn.GRU, nn.GRUCell)):
            raise TypeError(f"expected nn.GRU or nn.GRUCell, got {type(module).__name__}")
        return _copy_from_torch(cls(*_sizes(module, layer, reverse)), module, layer, reverse)


def from_torch(module: nn.Module, layer: int = 0, reverse: bool = False) -> nn.Module:
    """The scratch cell matching ``module`` (nn.RNN/LSTM/GRU or their *Cell), with its weights copied."""
    for torch_types, cls in (
        ((nn.LSTM, nn.LSTMCell), ScratchLSTMCell),
        ((nn.GRU, nn.GRUCell), ScratchGRUCell),
        ((nn.RNN, nn.RNNCell), ScratchRNNCell),
    ):
        if isinstance(module, torch_types):
            return cls.from_torch(module, layer=layer, reverse=reverse)
    raise TypeError(f"no scratch cell for {type(module).__name__}")


def scratch_rnn(cell: nn.Module, x: torch.Tensor, state=None, keep_states: bool = False):
    """Unroll ``cell`` over the time axis of ``x`` (batch, time, features): the same weights at every step.

    Returns ``(outputs, state)``: ``outputs`` (batch, time, hidden) stacks h_1 … h_T, ``state`` is the last
    state (h_T, or (h_T, c_T) for an LSTM). With ``keep_states`` a third value lists every step's state, still
    attached to the autograd graph (what the gradient study needs).
    """
    if x.dim() != 3:
        raise ValueError(f"x must be (batch, time, features), got shape {tuple(x.shape)}")
    if state is None:
        state = cell.init_state(x.shape[0], device=x.device, dtype=x.dtype)
    outputs, states = [], []
    for t in range(x.shape[1]):
        state = cell(x[:, t], state)  # h_t = f(x_t, h_{t-1})
        outputs.append(cell.output(state))
        states.append(state)
    result = torch.stack(outputs, dim=1), state
    return (*result, states) if keep_states else result


def hidden_grad_norms(cell: nn.Module, x: torch.Tensor, loss_fn=None) -> np.ndarray:
    """``||d loss / d h_t||`` for every step t = 1 … T, when the loss looks only at the last output h_T.

    ``cell`` is a scratch cell, or a torch ``nn.RNN``/``nn.LSTM``/``nn.GRU`` (its first layer is copied
    with :func:`from_torch` and cast to ``x``'s dtype). The default loss is ``h_T.sum()``, so ``d loss / d h_T`` is
    all ones and every earlier value says how much of that signal survives the way back through time. Use float64
    inputs for long sequences: in float32 the smallest norms underflow to 0. For an LSTM the gradient
    with respect to h_t includes the paths through the later cell states c_{t+1}, c_{t+2} …
    """
    if not hasattr(cell, "init_state"):
        cell = from_torch(cell).to(x.dtype)
    loss_fn = loss_fn or (lambda h_last: h_last.sum())
    outputs, _, states = scratch_rnn(cell, x, keep_states=True)
    hiddens = [cell.output(s) for s in states]
    for h in hiddens:
        h.retain_grad()  # keep the gradient of this intermediate tensor
    loss = loss_fn(outputs[:, -1])
    loss.backward()
    return np.array([float(h.grad.norm()) if h.grad is not None else 0.0 for h in hiddens])


def grad_ratio_first_last(norms) -> float:
    """``||d loss/d h_1|| / ||d loss/d h_T||``: far below 1 means vanishing, far above 1 exploding."""
    norms = np.asarray(norms, dtype=float)
    return float(norms[0] / norms[-1])


def draw_lstm_cell(ax=None):
    """A schematic LSTM cell: the cell-state 'conveyor belt' on top, the four gates below it."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    if ax is None:
        _, ax = plt.subplots(figsize=(9, 4.6))
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 6)
    ax.axis("off")
    ax.add_patch(FancyBboxPatch((1.2, 0.8), 7.6, 4.4, boxstyle="round,pad=0.1", fc="#f4f4f4", ec="grey"))

    def arrow(a, b, color="k", style="-|>", lw=1.4):
        ax.add_patch(FancyArrowPatch(a, b, arrowstyle=style, mutation_scale=12, color=color, lw=lw))

    def gate(x, label, fc, name):
        ax.add_patch(FancyBboxPatch((x - 0.35, 1.9), 0.7, 0.6, boxstyle="round,pad=0.05", fc=fc, ec="k"))
        ax.text(x, 2.2, label, ha="center", va="center", fontsize=12)
        ax.text(x, 0.95, name, ha="center", va="center", fontsize=9, color="dimgrey")

    def op(x, y, symbol):
        ax.add_patch(plt.Circle((x, y), 0.25, fc="white", ec="k", zorder=3))
        ax.text(x, y, symbol, ha="center", va="center", fontsize=13, zorder=4)

    # cell state: c_{t-1} -> ×f -> +(i·g) -> c_t
    arrow((0.2, 4.6), (9.8, 4.6), color="tab:red", lw=2.2)
    ax.text(0.2, 4.85, "$c_{t-1}$", color="tab:red", fontsize=12)
    ax.text(9.3, 4.85, "$c_t$", color="tab:red", fontsize=12)
    # input line: [h_{t-1}, x_t] feeds all four gates
    ax.plot([0.2, 6.9], [1.2, 1.2], color="tab:blue", lw=1.8)
    ax.text(0.2, 0.85, "$h_{t-1}$", color="tab:blue", fontsize=12)
    ax.text(1.6, 0.1, "$x_t$", color="tab:blue", fontsize=12)
    arrow((1.7, 0.4), (1.7, 1.15), color="tab:blue")
    xs = {"f": 2.6, "i": 3.9, "g": 5.0, "o": 6.9}
    gate(xs["f"], "σ", "#ffd8b1", "forget f")
    gate(xs["i"], "σ", "#c7e9c0", "input i")
    gate(xs["g"], "tanh", "#c6dbef", "candidate g")
    gate(xs["o"], "σ", "#dadaeb", "output o")
    for x in xs.values():
        arrow((x, 1.2), (x, 1.88), color="tab:blue")
    # f multiplies the old cell state
    op(xs["f"], 4.6, "×")
    arrow((xs["f"], 2.5), (xs["f"], 4.35))
    # i × g is added to it
    op(4.45, 3.4, "×")
    arrow((xs["i"], 2.5), (4.3, 3.2))
    arrow((xs["g"], 2.5), (4.6, 3.2))
    op(4.45, 4.6, "+")
    arrow((4.45, 3.65), (4.45, 4.35))
    # h_t = o × tanh(c_t)
    ax.add_patch(FancyBboxPatch((7.55, 3.55), 0.7, 0.45, boxstyle="round,pad=0.05", fc="#fdd0a2", ec="k"))
    ax.text(7.9, 3.77, "tanh", ha="center", va="center", fontsize=10)
    arrow((7.9, 4.6), (7.9, 4.02))
    op(7.9, 2.8, "×")
    arrow((7.9, 3.53), (7.9, 3.05))
    arrow((xs["o"], 2.5), (7.7, 2.7))
    arrow((8.15, 2.8), (9.8, 2.8), color="tab:purple", lw=2)
    ax.text(9.3, 3.0, "$h_t$", color="tab:purple", fontsize=12)
    arrow((8.6, 2.8), (8.6, 5.8), color="tab:purple")
    ax.text(8.7, 5.5, "output $h_t$", color="tab:purple", fontsize=10)
    ax.set_title("LSTM cell: gates read $[h_{t-1}, x_t]$; the cell state $c$ flows along the top", fontsize=11)
    return ax.figure
