"""Command line beyond the notebooks: ``python -m helpers.cli.train_text`` / ``train_audio`` (scripts with
checkpoints, ``--resume``, DDP and AMP), ``python -m helpers.cli.evaluate`` (score any saved model folder), and the
script side of the training loop (``script_loop``)."""
