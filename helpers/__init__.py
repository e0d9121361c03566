"""Helpers shared by the course notebooks.

One small module per job:

- basics: ``env`` (seeds, devices), ``data`` (data sets and splits), ``download`` (atomic, verified),
  ``metrics``, ``plots``, ``results`` (headline metrics, README table), ``run`` (headless runner);
- text: ``text`` (tokenise, vocabulary, batches: what torchtext did), ``korean`` (morphological analysers),
  ``subword`` (tokenizer training), ``models`` (LSTM classifiers), ``transformer`` (BERT-family fine-tuning),
  ``korean_emotion`` and ``soft_labels`` (notebook 06), ``macaron`` (notebook 07);
- speech: ``audio`` (loading, MFCC step by step, augmentation), ``audio_models`` (the CNN), ``speech``
  (notebook 08's recipe), ``wav2vec`` (notebook 09); ``fusion`` and ``kemdy20`` (notebook 10);
- beyond the notebooks: ``train`` (the notebooks' loop), ``script_loop``, ``distributed``, ``checkpoint``,
  ``train_text`` / ``train_audio`` (scripts), ``evaluate`` (score any saved model), ``model_folder``.
"""
from .env import describe_device, get_device, in_colab, seed_everything

__all__ = ["seed_everything", "get_device", "describe_device", "in_colab", "record_results"]
__version__ = "0.1.0"


def __getattr__(name: str):
    # imported on first use, so that `python -m helpers.results` does not import the module twice
    if name == "record_results":
        from .results import record_results

        return record_results
    raise AttributeError(f"module 'helpers' has no attribute {name!r}")
