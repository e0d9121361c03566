"""Shared core: environment and seeds (``env``), data sets and splits (``data``), verified atomic files
(``download``), ``metrics``, ``plots``, headline results (``results``), the headless runner (``run``), the one
training loop (``training``) with its ``checkpoint`` and ``distributed`` options, and model-folder reading
(``model_folder``); ``source`` holds the notebooks' one ``show_source``. Core never imports ``helpers.text``,
``helpers.audio`` or ``helpers.cli``."""
