"""A pickle that runs code when it is loaded: for the tests that check nothing from a data or model folder is
ever executed (weights, checkpoints, caches)."""

from pathlib import Path


class RunsCode:
    """Unpickling this creates ``marker`` (``Path.touch``): what a hostile file would do with ``os.system``."""

    def __init__(self, marker: Path):
        self.marker = Path(marker)

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def save_hostile_weights(path: Path, marker: Path) -> None:
    """A ``model.pt`` (or ``pytorch_model.bin``) of one tensor and a :class:`RunsCode`, written by ``torch.save``."""
    import torch

    torch.save({"weight": torch.zeros(1), "payload": RunsCode(marker)}, path)
