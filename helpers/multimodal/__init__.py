"""Text + audio: the KEMDy20-format reader (``kemdy20``) and early/late/gated fusion (``fusion``, notebook 10)."""
