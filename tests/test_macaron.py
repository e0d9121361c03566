"""helpers.text.macaron: the conv-attention head's shapes and masking, the macaron layer order, learning, saving,
bad configs."""

import json

import pytest
import torch
from hostile import save_hostile_weights  # tests/ is on sys.path under pytest

from helpers.core.training import fit
from helpers.text.macaron import (
    AttentionPooling,
    ConvAttentionHead,
    MacaronClassifier,
    MacaronConfig,
    MacaronConfigError,
    layer_order,
    lengths_to_mask,
    load_macaron,
    save_macaron,
)
from helpers.text.pipeline import make_loader, pad_batch

TINY = dict(
    vocab_size=30,
    num_classes=3,
    pad_id=0,
    max_len=16,
    dim=16,
    depth=2,
    heads=2,
    conv_channels=8,
    attn_dim=8,
    dropout=0.0,
)


def _tiny(**overrides) -> MacaronClassifier:
    torch.manual_seed(0)
    return MacaronClassifier(MacaronConfig(**{**TINY, **overrides})).eval()


# --------------------------------------------------------------------------- head


@pytest.mark.parametrize("pool_size", [1, 2, 3])
def test_head_shapes(pool_size):
    torch.manual_seed(0)
    head = ConvAttentionHead(in_dim=12, num_classes=5, channels=7, kernel_size=3, pool_size=pool_size, attn_dim=4)
    h = torch.randn(4, 9, 12)
    mask = lengths_to_mask(torch.tensor([9, 5, 1, 3]), 9)
    pooled, weights, keep = head.features(h, mask)
    pooled_len = -(-9 // pool_size)
    assert pooled.shape == (4, 7)
    assert weights.shape == keep.shape == (4, pooled_len)
    assert head(h, mask).shape == (4, 5)
    # a pooled window is real when any of its positions is
    assert keep.sum(1).tolist() == [-(-n // pool_size) for n in (9, 5, 1, 3)]
    torch.testing.assert_close(weights.sum(1), torch.ones(4))
    assert (weights[~keep] == 0).all()


def test_head_rejects_mismatched_mask():
    head = ConvAttentionHead(in_dim=4, num_classes=2)
    with pytest.raises(ValueError, match="mask"):
        head(torch.randn(2, 5, 4), torch.ones(2, 6, dtype=torch.bool))


def test_attention_pooling_is_a_weighted_mean_of_the_real_positions():
    torch.manual_seed(0)
    pool = AttentionPooling(3, 4)
    h = torch.randn(1, 4, 3)
    mask = torch.tensor([[True, True, False, False]])
    pooled, weights = pool(h, mask)
    assert weights[0, 2:].abs().sum() == 0
    torch.testing.assert_close(pooled[0], (weights[0, :2, None] * h[0, :2]).sum(0))


def test_head_output_ignores_values_at_padded_positions():
    torch.manual_seed(0)
    head = ConvAttentionHead(in_dim=6, num_classes=3, channels=5, pool_size=2).eval()
    h = torch.randn(2, 7, 6)
    mask = lengths_to_mask(torch.tensor([7, 3]), 7)
    changed = h.clone()
    changed[1, 3:] = 100 * torch.randn(4, 6)  # garbage where row 1 is padding
    torch.testing.assert_close(head(h, mask), head(changed, mask))


# --------------------------------------------------------------------------- the whole model and padding


def test_padding_does_not_change_the_output():
    model = _tiny()
    short, long = [5, 6, 7], [8, 9, 10, 11, 12, 13, 14]
    ids, lengths = pad_batch([short, long], pad_id=0)
    reference = model(ids, lengths)
    # other token ids in the padded positions
    noisy = ids.clone()
    noisy[0, 3:] = torch.tensor([21, 22, 23, 24])
    torch.testing.assert_close(model(noisy, lengths), reference, atol=1e-5, rtol=1e-5)
    # more padding columns
    wider = torch.cat([ids, torch.zeros(2, 5, dtype=torch.long)], dim=1)
    torch.testing.assert_close(model(wider, lengths), reference, atol=1e-5, rtol=1e-5)
    # the short sentence alone, without any padding
    torch.testing.assert_close(model(torch.tensor([short]), torch.tensor([3]))[0], reference[0], atol=1e-5, rtol=1e-5)
    # ... while a change at a real position does change it
    real = ids.clone()
    real[0, 1] = 29
    assert not torch.allclose(model(real, lengths)[0], reference[0], atol=1e-4)


def test_lengths_default_to_the_non_pad_tokens():
    model = _tiny()
    ids, lengths = pad_batch([[5, 6, 7], [8, 9, 10, 11, 12]], pad_id=0)
    torch.testing.assert_close(model(ids), model(ids, lengths))


def test_model_rejects_bad_inputs():
    model = _tiny()
    with pytest.raises(ValueError, match=r"\[batch, time\]"):
        model(torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="max_len"):
        model(torch.ones(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match="lengths"):
        model(torch.ones(2, 4, dtype=torch.long), torch.tensor([2, 5]))


# --------------------------------------------------------------------------- macaron layout


def test_encoder_is_macaron():
    model = _tiny(depth=3)
    assert layer_order(model.encoder) == ["ffn ×0.5", "attention", "ffn ×0.5"] * 3


def test_plain_encoder_for_the_ablation():
    model = _tiny(macaron=False, depth=2)
    assert layer_order(model.encoder) == ["attention", "ffn"] * 2


def test_macaron_with_half_width_ffn_has_as_many_parameters_as_plain():
    macaron = _tiny(macaron=True, ff_mult=2.0)
    plain = _tiny(macaron=False, ff_mult=4.0)
    n_mac = sum(p.numel() for p in macaron.parameters())
    n_plain = sum(p.numel() for p in plain.parameters())
    # two FFNs of width 2·dim against one of 4·dim: the same weights, one more bias and LayerNorm per block
    assert abs(n_mac - n_plain) <= TINY["depth"] * 4 * TINY["dim"]


def test_half_step_scaling_is_real():
    """Each macaron FFN adds half of its output to the residual stream: doubling that scale changes the output."""
    from x_transformers.x_transformers import Scale

    model = _tiny()
    ids, lengths = pad_batch([[5, 6, 7, 8]], pad_id=0)
    before = model(ids, lengths)
    scales = [block for _, block, _ in model.encoder.attn_layers.layers if isinstance(block, Scale)]
    assert len(scales) == 2 * TINY["depth"] and all(s.scale == 0.5 for s in scales)
    for s in scales:
        s.scale = 1.0
    assert not torch.allclose(model(ids, lengths), before, atol=1e-4)


# --------------------------------------------------------------------------- learning


def test_tiny_model_overfits_a_tiny_batch():
    torch.manual_seed(0)
    model = MacaronClassifier(MacaronConfig(**TINY))
    seqs = [[1 + (i * 7 + j) % 29 for j in range(3 + i % 5)] for i in range(12)]
    labels = [i % 3 for i in range(12)]
    loader = make_loader(seqs, labels, batch_size=12, pad_id=0, shuffle=True, seed=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    history = fit(model, loader, None, optimizer, epochs=60, device=torch.device("cpu"), progress=False)
    assert history.train_loss[-1] < 0.2 * history.train_loss[0]
    assert history.train_accuracy[-1] == 1.0


# --------------------------------------------------------------------------- save and load


def test_save_load_round_trip_gives_identical_logits(tmp_path):
    model = _tiny(dropout=0.1)
    ids, lengths = pad_batch([[5, 6, 7], [8, 9, 10, 11, 12]], pad_id=0)
    folder = save_macaron(model, tmp_path / "m", extra={"labels": ["a", "b", "c"], "tokenizer": "ko-wordpiece-4096"})
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.pt"]
    loaded, extra = load_macaron(folder)
    assert extra == {"labels": ["a", "b", "c"], "tokenizer": "ko-wordpiece-4096"}
    assert loaded.config == model.config and not loaded.training
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids, lengths), model.eval()(ids, lengths), atol=0, rtol=0)


def test_save_leaves_nothing_when_it_fails(tmp_path):
    model = _tiny()
    with pytest.raises(TypeError):
        save_macaron(model, tmp_path / "m", extra={"not json": object()})
    assert list(tmp_path.iterdir()) == []


def test_load_gives_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json and model.pt"):
        load_macaron(tmp_path / "nothing")
    folder = save_macaron(_tiny(), tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "task": "something-else"}))
    with pytest.raises(MacaronConfigError, match="something-else"):
        load_macaron(folder)
    (folder / "config.json").write_text(json.dumps({**config, "model": {**config["model"], "width": 3}}))
    with pytest.raises(MacaronConfigError, match="unknown config keys"):
        load_macaron(folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(MacaronConfigError, match="not valid JSON"):
        load_macaron(folder)


# --------------------------------------------------------------------------- bad configs


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(dim=30, heads=4), "divisible by heads"),
        (dict(depth=0), "depth must be at least 1"),
        (dict(kernel_size=4), "kernel_size must be odd"),
        (dict(pad_id=30), "pad_id 30 is outside"),
        (dict(num_classes=1), "num_classes must be at least 2"),
        (dict(dropout=1.0), "dropout"),
        (dict(ff_mult=0), "ff_mult"),
        (dict(dim=16.0), "dim must be an int"),
        (dict(macaron="yes"), "macaron must be True or False"),
        (dict(max_len=0), "max_len must be at least 1"),
    ],
)
def test_bad_config_values_give_clear_errors(overrides, message):
    with pytest.raises(MacaronConfigError, match=message):
        MacaronConfig(**{**TINY, **overrides})


def test_classifier_needs_a_config_object():
    with pytest.raises(MacaronConfigError, match="MacaronConfig"):
        MacaronClassifier(TINY)


def test_weights_are_read_as_tensors_only_with_a_one_line_error(tmp_path):
    folder = save_macaron(_tiny(), tmp_path / "m")
    good = (folder / "model.pt").read_bytes()
    marker = tmp_path / "code-ran"
    save_hostile_weights(folder / "model.pt", marker)
    with pytest.raises(ValueError, match="cannot be read as plain weights") as hostile:
        load_macaron(folder)
    assert not marker.exists() and len(str(hostile.value).splitlines()) == 1
    (folder / "model.pt").write_bytes(good[: len(good) // 2])  # a save cut short
    with pytest.raises(ValueError, match="damaged or not a course checkpoint"):
        load_macaron(folder)
    (folder / "model.pt").write_bytes(good)
    assert isinstance(load_macaron(folder)[0], MacaronClassifier)
