"""Audio: loading, MFCC step by step and augmentation (``features``), the speech CNN (``cnn``), notebook 08's
speaker-independent recipe (``cnn_recipe``), the eGeMAPS + linear baseline (``egemaps``, openSMILE, optional) and
Wav2Vec2 (``wav2vec``). Imports ``helpers.core`` only."""
