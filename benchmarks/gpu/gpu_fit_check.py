"""GPU smoke check of the notebooks' training loop (helpers.core.training.fit) with mixed precision on CUDA."""

import json
import os
import time

import torch
from torch.utils.data import DataLoader
from transformers import BertConfig, BertForSequenceClassification

import helpers
from helpers.core.data import load_emotion_en
from helpers.core.training import fit
from helpers.text.lstm import LSTMClassifier
from helpers.text.pipeline import Vocab, basic_english, encode_texts, make_loader

out = {}
device = helpers.get_device()
print("device:", helpers.describe_device(device))
assert device.type == "cuda", "expected the GPU to be picked automatically"
helpers.seed_everything(0)
splits = load_emotion_en()
train, val = splits["train"], splits["validation"]
tok = [basic_english(t) for t in train.text]
vocab = Vocab.build(tok, min_freq=2)
tr_ids = encode_texts(train.text, basic_english, vocab)
va_ids = encode_texts(val.text, basic_english, vocab)
tl = make_loader(tr_ids, train.label.tolist(), batch_size=64, pad_id=vocab.pad_id, shuffle=True, bucket=True, seed=0)
vl = make_loader(va_ids, val.label.tolist(), batch_size=256, pad_id=vocab.pad_id, shuffle=False)
model = LSTMClassifier(len(vocab), 6, pad_id=vocab.pad_id)
opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
t = time.perf_counter()
h = fit(model, tl, vl, opt, 6, device, progress=False)
out["lstm_packed_amp"] = {
    "val_accuracy": max(h.val_accuracy),
    "seconds": round(time.perf_counter() - t, 1),
    "epoch_seconds": [round(s, 2) for s in h.epoch_seconds],
}
print("LSTM on GPU (AMP):", out["lstm_packed_amp"])

cfg = BertConfig(
    vocab_size=1000, hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256, num_labels=6
)
bert = BertForSequenceClassification(cfg)
g = torch.Generator().manual_seed(0)
ids = torch.randint(5, 1000, (2048, 32), generator=g)
y = ids[:, 0] % 6


class D(torch.utils.data.Dataset):
    def __len__(self):
        return len(y)

    def __getitem__(self, i):
        return {"input_ids": ids[i], "attention_mask": torch.ones(32, dtype=torch.long), "labels": y[i]}


loader = DataLoader(D(), batch_size=64, shuffle=True)
opt = torch.optim.AdamW(bert.parameters(), lr=1e-3)
h2 = fit(bert, loader, loader, opt, 8, device, progress=False)
out["bert_amp"] = {
    "train_loss_first": h2.train_loss[0],
    "train_loss_last": h2.train_loss[-1],
    "val_accuracy": h2.val_accuracy[-1],
}
print("small BERT on GPU (AMP):", out["bert_amp"])
assert h2.train_loss[-1] < h2.train_loss[0]
with open(os.path.join(os.environ.get("OUT", "/tmp"), "gpu_fit_check.json"), "w") as f:
    json.dump(out, f, indent=1)
