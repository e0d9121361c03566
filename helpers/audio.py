"""Reading speech clips safely: any rate or channel count in, 16 kHz mono float32 out, clear errors for bad files."""
from __future__ import annotations

from pathlib import Path

import numpy as np

TARGET_SR = 16_000


class AudioError(ValueError):
    """A clip cannot be used: unreadable, empty, silent or too short. The message names the file."""


def load_audio(
    path: str | Path,
    sr: int = TARGET_SR,
    min_seconds: float = 0.25,
    silence_rms: float = 1e-4,
) -> np.ndarray:
    """Read ``path`` as mono float32 at ``sr`` Hz.

    Stereo is averaged to mono and other sampling rates are resampled (soxr, via librosa). Raises
    :class:`AudioError` for a missing or unreadable file, a clip shorter than ``min_seconds``, or one whose
    RMS level is below ``silence_rms`` (digital silence).
    """
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such audio file")
    try:
        wave, file_sr = sf.read(path, dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile raises its own error types for corrupt or truncated files
        raise AudioError(f"{path}: cannot be decoded ({exc}); the file is corrupt, truncated or not audio") from None
    if wave.size == 0:
        raise AudioError(f"{path}: the file holds no samples")
    wave = wave.mean(axis=1)
    if file_sr != sr:
        import librosa

        wave = librosa.resample(wave, orig_sr=file_sr, target_sr=sr, res_type="soxr_hq").astype(np.float32)
    if len(wave) < min_seconds * sr:
        raise AudioError(f"{path}: {len(wave) / sr:.3f} s is shorter than the minimum {min_seconds} s")
    rms = float(np.sqrt(np.mean(wave.astype(np.float64) ** 2)))
    if not np.isfinite(rms) or rms < silence_rms:
        raise AudioError(f"{path}: the clip is silent (RMS {rms:.2e} below {silence_rms:.0e})")
    return wave


def fix_length(wave: np.ndarray, num_samples: int) -> np.ndarray:
    """Crop (centre) or zero-pad (both sides) ``wave`` to exactly ``num_samples`` samples."""
    if num_samples <= 0:
        raise ValueError(f"num_samples must be positive, got {num_samples}")
    n = len(wave)
    if n >= num_samples:
        start = (n - num_samples) // 2
        return wave[start:start + num_samples]
    left = (num_samples - n) // 2
    return np.pad(wave, (left, num_samples - n - left))
