"""Helpers shared by the course notebooks, in four visible parts (one module per job):

- ``helpers.core``: env (seeds, devices), data (data sets and splits), download (atomic, verified), metrics,
  plots, results (headline metrics, README table), run (headless runner), training (the one training loop),
  checkpoint, distributed, model_folder;
- ``helpers.text``: pipeline (tokenise, vocabulary, batches), korean, subword, lstm, hf_finetune, rnn_cells,
  korean_emotion and soft_labels (notebook 06), macaron (notebook 07);
- ``helpers.audio``: features (loading, MFCC, augmentation), cnn, cnn_recipe and egemaps (notebook 08), wav2vec (09);
- ``helpers.multimodal``: kemdy20, fusion (10);  ``helpers.pretrained``: the pretrained-model registry;
- ``helpers.cli``: train_text, train_audio, evaluate, script_loop (``python -m helpers.cli.<name>``).

Dependencies point one way: cli → (text, audio, multimodal) → core.
"""

from helpers.core.env import describe_device, get_device, in_colab, seed_everything

__all__ = ["seed_everything", "get_device", "describe_device", "in_colab", "record_results"]
__version__ = "0.1.0"


def __getattr__(name: str):
    # imported on first use, so that `python -m helpers.core.results` does not import the module twice
    if name == "record_results":
        from helpers.core.results import record_results

        return record_results
    raise AttributeError(f"module 'helpers' has no attribute {name!r}")
