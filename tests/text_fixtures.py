"""Tiny text data sets written by the tests: the label is given away by one keyword among filler words."""

import random
from pathlib import Path

WORDS = {
    "joy": ["happy", "glad", "sunny", "smile"],
    "anger": ["mad", "angry", "furious", "rage"],
    "fear": ["scared", "afraid", "dark", "shaky"],
}
FILLER = ["the", "a", "day", "was", "i", "felt", "so", "very", "today", "and"]


def write_text_data(folder: Path, n_train: int, seed: int = 0) -> Path:
    """train/validation/test CSVs (text,label) whose label is given away by one keyword among filler words."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("validation", 45), ("test", 45)):
        rows = ["text,label"]
        for i in range(n):
            label = list(WORDS)[i % 3]
            tokens = [rng.choice(FILLER) for _ in range(rng.randint(1, 10))]
            tokens.insert(rng.randint(0, len(tokens)), rng.choice(WORDS[label]))
            rows.append(f"{' '.join(tokens)},{label}")
        (folder / f"{split}.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder
