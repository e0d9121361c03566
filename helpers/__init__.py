"""Helpers shared by the course notebooks.

One small module per job: ``env`` (seeds, devices), ``data`` (data sets and splits), ``download``,
``text`` (tokenise, vocabulary, batches), ``train`` (the training loop), ``metrics``, ``plots``,
``audio``, ``results`` (headline metrics) and ``run`` (headless runner).
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
