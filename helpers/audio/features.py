"""Speech audio: safe reading, the MFCC pipeline step by step, augmentation and a cached feature extractor.

- :func:`load_audio`: any rate or channel count in, 16 kHz mono float32 out, clear errors for bad files.
- :func:`frame_signal` → :func:`power_spectrum` → :func:`mel_filterbank` / :func:`log_mel` →
  :func:`mfcc_from_log_mel`, composed by :func:`log_mel_spectrogram` and :func:`mfcc` (each step matches librosa);
  :func:`deltas`, :func:`normalize_utterance`, :func:`fixed_frames`, :func:`trim_silence`.
- :func:`add_noise`, :func:`time_shift`, :func:`spec_augment`: simple training augmentations.
- :func:`extract_features`: features of a frame of clips, cached as ``.npz`` under ``cache_dir()/features``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.core.data import cache_dir
from helpers.core.download import atomic_write_bytes

TARGET_SR = 16_000


class AudioError(ValueError):
    """A clip cannot be used: unreadable, empty, silent or too short. The message names the file."""


MAX_CLIP_SECONDS = 60.0  # default cap on one clip: longer files are refused before they are decoded
SAMPLE_RATE_RANGE = (8_000, 192_000)  # file sampling rates accepted (Hz); outside it the header is wrong or hostile


def load_audio(
    path: str | Path,
    sr: int = TARGET_SR,
    min_seconds: float = 0.25,
    silence_rms: float = 1e-4,
    max_seconds: float | None = MAX_CLIP_SECONDS,
) -> np.ndarray:
    """Read ``path`` as mono float32 at ``sr`` Hz.

    Stereo is averaged to mono and other sampling rates are resampled (soxr, via librosa). The header is read
    first (``soundfile.info``): a sampling rate outside 8-192 kHz or a clip longer than ``max_seconds``
    (default 60 s; ``None``: no cap) is refused before anything is decoded, and at most ``max_seconds`` of
    samples are ever decoded, whatever the header claims. Raises :class:`AudioError` for a missing or
    unreadable file, such a header, NaN or infinite samples, a clip shorter than ``min_seconds``, or one whose
    RMS level is below ``silence_rms`` (digital silence).
    """
    import soundfile as sf

    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise AudioError(f"load_audio needs the path of an audio file, got {path!r}")
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such audio file")
    try:
        info = sf.info(str(path))
    except Exception as exc:  # libsndfile raises its own error types for corrupt or truncated files
        raise AudioError(f"{path}: cannot be decoded ({exc}); the file is corrupt, truncated or not audio") from None
    file_sr = int(info.samplerate)
    low, high = SAMPLE_RATE_RANGE
    if not low <= file_sr <= high:
        raise AudioError(
            f"{path}: its header says {file_sr} Hz; the course reads {low // 1000}-{high // 1000} kHz audio "
            "(the file is damaged, or re-save it at 16 kHz)"
        )
    if not 1 <= info.channels <= 8:
        raise AudioError(f"{path}: its header says {info.channels} channels; the course reads 1 to 8 (mix it down)")
    max_frames = -1
    if max_seconds is not None:
        max_frames = int(max_seconds * file_sr) + 1
        if info.frames > max_frames:
            raise AudioError(
                f"{path}: {info.frames / file_sr:.1f} s is longer than the cap of {max_seconds:g} s per clip "
                "(cut it into shorter clips, or raise the cap: --max-seconds for the evaluator)"
            )
    try:
        wave, file_sr = sf.read(str(path), frames=max_frames, dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioError(f"{path}: cannot be decoded ({exc}); the file is corrupt, truncated or not audio") from None
    if wave.size == 0:
        raise AudioError(f"{path}: the file holds no samples")
    if max_seconds is not None and len(wave) >= max_frames:
        raise AudioError(
            f"{path}: longer than the cap of {max_seconds:g} s per clip (its header understated the length)"
        )
    if not np.isfinite(wave).all():
        bad = int((~np.isfinite(wave)).sum())
        raise AudioError(f"{path}: {bad:,} samples are NaN or infinite; the file is damaged (re-export it)")
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
        return wave[start : start + num_samples]
    left = (num_samples - n) // 2
    return np.pad(wave, (left, num_samples - n - left))


# --------------------------------------------------------------------------- MFCC, step by step
# Every step is a small function so that a notebook can show, plot and test it on its own. Conventions follow
# librosa's so that each step can be checked against it: features are (n_features, n_frames), time last.


def frame_signal(wave: np.ndarray, frame_length: int, hop_length: int, center: bool = True) -> np.ndarray:
    """Cut ``wave`` into overlapping frames, one per column: shape ``(frame_length, n_frames)``.

    With ``center`` the signal is zero-padded by ``frame_length // 2`` on both sides, so that frame ``t`` is
    centred on sample ``t * hop_length`` (librosa's ``center=True, pad_mode="constant"``) and there are
    ``1 + len(wave) // hop_length`` frames.
    """
    if frame_length <= 0 or hop_length <= 0:
        raise ValueError(f"frame_length and hop_length must be positive, got {frame_length}, {hop_length}")
    wave = np.asarray(wave)
    if wave.ndim != 1:
        raise ValueError(f"wave must be one-dimensional, got shape {wave.shape}")
    if center:
        wave = np.pad(wave, frame_length // 2)
    if len(wave) < frame_length:
        raise ValueError(f"a signal of {len(wave)} samples is shorter than one frame of {frame_length}")
    return np.lib.stride_tricks.sliding_window_view(wave, frame_length)[::hop_length].T


def power_spectrum(frames: np.ndarray, n_fft: int | None = None, window: str = "hann") -> np.ndarray:
    """``|FFT(window · frame)|²`` of every column of ``frames``: shape ``(n_fft // 2 + 1, n_frames)``.

    The window (scipy's periodic ``window`` of the frame's length) tapers each frame to zero at its ends, so
    the FFT does not see the jump of a cut-off signal. Frames shorter than ``n_fft`` are zero-padded.
    """
    from scipy.signal import get_window

    frame_length = frames.shape[0]
    n_fft = n_fft or frame_length
    if n_fft < frame_length:
        raise ValueError(f"n_fft={n_fft} must be at least the frame length {frame_length}")
    win = get_window(window, frame_length, fftbins=True)
    spectrum = np.fft.rfft(frames * win[:, None], n=n_fft, axis=0)
    return spectrum.real**2 + spectrum.imag**2


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Slaney's mel scale (librosa's default): linear below 1 kHz (3 mel per 200 Hz), logarithmic above."""
    hz = np.asarray(hz, dtype=float)
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    linear = hz / f_sp
    log = min_log_hz / f_sp + np.log(np.maximum(hz, min_log_hz) / min_log_hz) / logstep
    return np.where(hz >= min_log_hz, log, linear)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    mel = np.asarray(mel, dtype=float)
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), f_sp * mel)


@lru_cache(maxsize=16)
def mel_filterbank(sr: int, n_fft: int, n_mels: int = 64, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """Triangular mel filters, shape ``(n_mels, n_fft // 2 + 1)``, Slaney-normalised (as ``librosa.filters.mel``).

    The ``n_mels + 2`` corner frequencies are evenly spaced on the mel scale between ``fmin`` and ``fmax``
    (default ``sr / 2``); filter ``m`` rises from corner ``m`` to ``m + 1`` and falls to ``m + 2``. Each
    triangle is scaled by ``2 / (its width in Hz)`` so that it has unit area: wide high bands do not get
    more energy just for being wide. The array is read-only (it is cached).
    """
    fmax = sr / 2 if fmax is None else fmax
    if not 0 <= fmin < fmax <= sr / 2:
        raise ValueError(f"need 0 <= fmin < fmax <= sr/2, got fmin={fmin}, fmax={fmax}, sr={sr}")
    fft_freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    corners = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(corners)
    ramps = corners[:, None] - fft_freqs[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (corners[2:] - corners[:-2]))[:, None]
    weights.setflags(write=False)
    return weights


def power_to_db(power: np.ndarray, ref: float = 1.0, amin: float = 1e-10, top_db: float | None = 80.0) -> np.ndarray:
    """``10 · log10(power / ref)`` with a floor ``amin`` and, with ``top_db``, nothing below ``max - top_db``."""
    db = 10.0 * np.log10(np.maximum(amin, power)) - 10.0 * np.log10(max(amin, ref))
    if top_db is not None:
        db = np.maximum(db, db.max() - top_db)
    return db


def log_mel(power_spec: np.ndarray, mel_fb: np.ndarray, amin: float = 1e-10, top_db: float | None = 80.0) -> np.ndarray:
    """Mel band energies in dB: ``power_to_db(mel_fb @ power_spec)``, shape ``(n_mels, n_frames)``."""
    return power_to_db(mel_fb @ power_spec, amin=amin, top_db=top_db)


def dct_matrix(n_out: int, n_in: int) -> np.ndarray:
    """The orthonormal DCT-II as a matrix ``(n_out, n_in)``: row ``k`` is a cosine of ``k`` half periods."""
    n = np.arange(n_in)
    k = np.arange(n_out)[:, None]
    basis = np.cos(np.pi * k * (2 * n + 1) / (2 * n_in)) * np.sqrt(2.0 / n_in)
    basis[0] /= np.sqrt(2.0)
    return basis


def mfcc_from_log_mel(log_mel_spec: np.ndarray, n_mfcc: int = 40) -> np.ndarray:
    """The first ``n_mfcc`` coefficients of the orthonormal DCT-II of every column
    (``scipy.fft.dct(type=2, norm="ortho")``)."""
    n_mels = log_mel_spec.shape[0]
    if not 0 < n_mfcc <= n_mels:
        raise ValueError(f"n_mfcc must be in 1..{n_mels} (the number of mel bands), got {n_mfcc}")
    return dct_matrix(n_mfcc, n_mels) @ log_mel_spec


def log_mel_spectrogram(
    wave: np.ndarray,
    sr: int = TARGET_SR,
    n_fft: int = 512,
    win_length: int = 400,
    hop_length: int = 160,
    n_mels: int = 64,
    fmin: float = 0.0,
    fmax: float | None = None,
    top_db: float | None = 80.0,
) -> np.ndarray:
    """Frames → window → power spectrum → mel filters → dB: shape ``(n_mels, 1 + len(wave) // hop_length)``.

    The defaults are the usual speech settings: 25 ms windows every 10 ms at 16 kHz, a 512-point FFT.
    """
    frames = frame_signal(np.asarray(wave, dtype=np.float64), win_length, hop_length)
    spec = power_spectrum(frames, n_fft)
    return log_mel(spec, mel_filterbank(sr, n_fft, n_mels, fmin, fmax), top_db=top_db)


def mfcc(
    wave: np.ndarray,
    sr: int = TARGET_SR,
    n_mfcc: int = 40,
    n_fft: int = 512,
    win_length: int = 400,
    hop_length: int = 160,
    n_mels: int = 64,
    fmin: float = 0.0,
    fmax: float | None = None,
    top_db: float | None = 80.0,
) -> np.ndarray:
    """MFCCs, shape ``(n_mfcc, n_frames)``: :func:`log_mel_spectrogram` then :func:`mfcc_from_log_mel`.

    Matches ``librosa.feature.mfcc(y=wave, sr=sr, n_mfcc=n_mfcc, n_fft=n_fft, win_length=win_length,
    hop_length=hop_length, n_mels=n_mels, fmin=fmin, fmax=fmax)`` (librosa computes in float32; see the tests).
    """
    spec = log_mel_spectrogram(wave, sr, n_fft, win_length, hop_length, n_mels, fmin, fmax, top_db)
    return mfcc_from_log_mel(spec, n_mfcc)


def deltas(features: np.ndarray, width: int = 9, order: int = 1) -> np.ndarray:
    """Local slope over time of every feature row: the regression ``Σ n·(c[t+n] − c[t−n]) / (2·Σ n²)``, n = 1…width//2.

    The slope is the least-squares line through ``width`` frames centred on ``t``; the first and last
    ``width // 2`` frames take the slope of the first and last full window (as ``librosa.feature.delta``,
    whose ``order=1`` this matches). ``order=2`` applies the filter twice (delta-delta, the HTK convention).
    Utterances shorter than ``width`` frames are edge-padded instead.
    """
    if width < 3 or width % 2 == 0:
        raise ValueError(f"width must be an odd integer >= 3, got {width}")
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order}")
    features = np.asarray(features, dtype=np.float64)
    half, n_frames = width // 2, features.shape[-1]
    weights = np.arange(1, half + 1)
    denom = 2.0 * float((weights**2).sum())
    if n_frames >= width:
        padded, offset = features, 0
    else:
        padded, offset = np.pad(features, [(0, 0)] * (features.ndim - 1) + [(half, half)], mode="edge"), half
    length = padded.shape[-1]
    out = np.zeros_like(padded)
    for n in weights:
        out[..., half : length - half] += n * (
            padded[..., half + n : length - half + n] - padded[..., half - n : length - half - n]
        )
    out /= denom
    out[..., :half] = out[..., half : half + 1]
    out[..., length - half :] = out[..., length - half - 1 : length - half]
    out = out[..., offset : offset + n_frames]
    return deltas(out, width, 1) if order == 2 else out


def normalize_utterance(features: np.ndarray, per_band: bool = True, eps: float = 1e-5) -> np.ndarray:
    """Per-utterance mean and variance normalisation of a ``(..., n_features, n_frames)`` array.

    ``per_band=True`` (CMVN): every feature row gets mean 0 and std 1 over time. It removes what is constant over
    a recording (microphone, room, the speaker's overall level and timbre) and keeps how the features move, but
    also the average spectral shape. ``per_band=False``: one mean and one std over the whole utterance (per
    channel), which removes only the overall level and keeps the shape (e.g. the spectral tilt).
    """
    features = np.asarray(features, dtype=np.float32)
    axes = -1 if per_band else (-2, -1)
    mean = features.mean(axis=axes, keepdims=True)
    std = features.std(axis=axes, keepdims=True)
    return (features - mean) / (std + eps)


def fixed_frames(
    features: np.ndarray,
    n_frames: int,
    align: str = "center",
    pad_value: float = 0.0,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Crop or pad the last (time) axis to exactly ``n_frames``.

    ``align="center"`` crops the middle / pads both sides equally; ``"start"`` keeps the beginning / pads at
    the end; ``"random"`` picks the crop or the padding position at random with ``rng`` (a time-shift
    augmentation for training).
    """
    if n_frames <= 0:
        raise ValueError(f"n_frames must be positive, got {n_frames}")
    if align not in ("center", "start", "random"):
        raise ValueError(f"align must be 'center', 'start' or 'random', not {align!r}")
    features = np.asarray(features)
    extra = features.shape[-1] - n_frames
    if align == "center":
        start = abs(extra) // 2
    elif align == "start":
        start = 0
    else:
        start = int((rng or np.random.default_rng()).integers(0, abs(extra) + 1))
    if extra >= 0:
        return features[..., start : start + n_frames]
    pad = [(0, 0)] * (features.ndim - 1) + [(start, -extra - start)]
    return np.pad(features, pad, constant_values=pad_value)


# --------------------------------------------------------------------------- augmentation


def add_noise(wave: np.ndarray, snr_db: float, rng: np.random.Generator | None = None) -> np.ndarray:
    """``wave`` plus white Gaussian noise at a signal-to-noise ratio of ``snr_db`` decibels."""
    rng = rng or np.random.default_rng()
    wave = np.asarray(wave, dtype=np.float32)
    signal_power = float(np.mean(wave.astype(np.float64) ** 2))
    noise_power = signal_power / 10 ** (snr_db / 10)
    return (wave + rng.normal(0.0, np.sqrt(noise_power), size=wave.shape)).astype(np.float32)


def time_shift(
    x: np.ndarray, max_shift: int, rng: np.random.Generator | None = None, shift: int | None = None
) -> np.ndarray:
    """Shift the last axis by ``shift`` (default: random in ``[-max_shift, max_shift]``) samples or frames;
    zero fill."""
    x = np.asarray(x)
    if shift is None:
        shift = int((rng or np.random.default_rng()).integers(-max_shift, max_shift + 1))
    out = np.zeros_like(x)
    n = x.shape[-1]
    if shift >= 0:
        out[..., shift:] = x[..., : n - shift]
    else:
        out[..., : n + shift] = x[..., -shift:]
    return out


def spec_augment(
    features: np.ndarray,
    n_freq_masks: int = 2,
    freq_width: int = 8,
    n_time_masks: int = 2,
    time_width: int = 20,
    rng: np.random.Generator | None = None,
    mask_value: float = 0.0,
    return_mask: bool = False,
):
    """SpecAugment-style masking (Park et al., 2019) of a ``(..., n_features, n_frames)`` array.

    Sets ``n_freq_masks`` bands of up to ``freq_width`` rows and ``n_time_masks`` stretches of up to
    ``time_width`` frames to ``mask_value`` (0 is the mean after :func:`normalize_utterance`). Returns a copy,
    and the boolean mask too when ``return_mask``.
    """
    rng = rng or np.random.default_rng()
    out = np.array(features, copy=True)
    n_feat, n_time = out.shape[-2], out.shape[-1]
    mask = np.zeros((n_feat, n_time), dtype=bool)
    for _ in range(n_freq_masks):
        width = int(rng.integers(0, min(freq_width, n_feat) + 1))
        start = int(rng.integers(0, n_feat - width + 1))
        mask[start : start + width, :] = True
    for _ in range(n_time_masks):
        width = int(rng.integers(0, min(time_width, n_time) + 1))
        start = int(rng.integers(0, n_time - width + 1))
        mask[:, start : start + width] = True
    out[..., mask] = mask_value
    return (out, mask) if return_mask else out


# --------------------------------------------------------------------------- cached feature extraction

FEATURE_VERSION = 1  # bump when the feature code changes: every cached file is then recomputed


class RejectedClipsWarning(UserWarning):
    """Some clips could not be used and were left out; the message lists them."""


@dataclass
class FeatureSet:
    """Features of the clips that could be read, with their rows of the input frame and the rejected files."""

    features: list[np.ndarray]  # one (n_features, n_frames_i) float32 array per kept clip
    frame: pd.DataFrame  # the kept rows of the input frame, in the same order, index reset
    rejected: list[tuple[str, str]]  # (file, reason) of every clip left out
    settings: dict
    cache_path: Path | None
    from_cache: bool

    def __len__(self) -> int:
        return len(self.features)


def _feature_settings(kind: str, **settings) -> dict:
    if kind not in ("mfcc", "logmel"):
        raise ValueError(f"kind must be 'mfcc' or 'logmel', not {kind!r}")
    if kind == "logmel":
        settings.pop("n_mfcc")
    return {"kind": kind, "version": FEATURE_VERSION, **settings}


def _file_fingerprint(path: str) -> list:
    try:
        stat = os.stat(path)
        return [str(path), stat.st_size, stat.st_mtime_ns]
    except OSError:
        return [str(path), -1, -1]


# Per-clip caches (these features; notebook 09's decoded waveforms): one .npz holding the clips' arrays, which
# rows were kept and which files were rejected and why.


def clip_cache_path(cache_name: str, settings: dict, paths: Sequence[str]) -> Path:
    """``cache_dir()/features/<cache_name>-<hash>.npz``; the hash covers ``settings`` and every file's path, size
    and modification time, so changing either makes a new cache instead of reading a stale one."""
    key_source = json.dumps({"settings": settings, "files": [_file_fingerprint(p) for p in paths]}, sort_keys=True)
    digest = hashlib.sha256(key_source.encode("utf-8")).hexdigest()[:16]
    return cache_dir() / "features" / f"{cache_name}-{digest}.npz"


def read_clip_cache(path: Path, *names: str) -> tuple[list[np.ndarray], np.ndarray, list[tuple[str, str]]]:
    """The arrays ``names`` of a cache written by :func:`write_clip_cache`, the kept rows and the rejected files."""
    with np.load(path, allow_pickle=False) as npz:
        arrays, kept = [npz[name] for name in names], npz["kept"]
        rejected = list(zip(npz["rejected_paths"].tolist(), npz["rejected_reasons"].tolist()))
    return arrays, kept, rejected


def write_clip_cache(
    path: Path, kept: Sequence[int], rejected: Sequence[tuple[str, str]], **arrays: np.ndarray
) -> None:
    """Store ``arrays`` with the kept rows and the rejected files, atomically (never a half-written cache)."""
    buffer = io.BytesIO()
    np.savez(
        buffer,
        **arrays,
        kept=np.array(kept),
        rejected_paths=np.array([p for p, _ in rejected], dtype=str),
        rejected_reasons=np.array([r for _, r in rejected], dtype=str),
    )
    atomic_write_bytes(path, buffer.getvalue())


def warn_rejected(rejected: Sequence[tuple[str, str]], total: int, stacklevel: int = 3) -> None:
    """One :class:`RejectedClipsWarning` listing every rejected file and why (nothing when none was rejected)."""
    if rejected:
        lines = [f"{len(rejected)} of {total} clips were rejected and left out:"]
        lines += [f"  - {reason}" for _, reason in rejected]
        warnings.warn("\n".join(lines), RejectedClipsWarning, stacklevel=stacklevel)


def trim_silence(wave: np.ndarray, top_db: float = 30.0, frame_length: int = 1024, hop_length: int = 256) -> np.ndarray:
    """Cut the leading and trailing parts quieter than ``top_db`` below the loudest frame (``librosa.effects.trim``)."""
    import librosa

    trimmed, _ = librosa.effects.trim(wave, top_db=top_db, frame_length=frame_length, hop_length=hop_length)
    return trimmed if len(trimmed) >= frame_length else wave


def _features_of_wave(wave: np.ndarray, s: dict, noise_rng: np.random.Generator | None = None) -> np.ndarray:
    if s["trim_db"] is not None:
        wave = trim_silence(wave, s["trim_db"])
    if s["noise_snr_db"] is not None:  # after trimming, so that clean and noisy versions stay aligned
        snr = s["noise_snr_db"]
        snr = noise_rng.uniform(*snr) if isinstance(snr, list) else snr
        wave = add_noise(wave, snr, noise_rng)
    common = dict(
        sr=s["sr"],
        n_fft=s["n_fft"],
        win_length=s["win_length"],
        hop_length=s["hop_length"],
        n_mels=s["n_mels"],
        fmin=s["fmin"],
        fmax=s["fmax"],
        top_db=s["top_db"],
    )
    if s["kind"] == "mfcc":
        return mfcc(wave, n_mfcc=s["n_mfcc"], **common).astype(np.float32)
    return log_mel_spectrogram(wave, **common).astype(np.float32)


def extract_features(
    frame: pd.DataFrame,
    kind: str = "logmel",
    *,
    path_col: str = "filepath",
    sr: int = TARGET_SR,
    n_fft: int = 512,
    win_length: int = 400,
    hop_length: int = 160,
    n_mels: int = 64,
    n_mfcc: int = 40,
    fmin: float = 0.0,
    fmax: float | None = None,
    top_db: float | None = 80.0,
    trim_db: float | None = None,
    min_seconds: float = 0.25,
    noise_snr_db: float | tuple[float, float] | None = None,
    noise_seed: int = 0,
    cache_name: str | None = None,
    use_cache: bool = True,
    progress: bool = True,
) -> FeatureSet:
    """MFCC (``kind="mfcc"``) or log-mel (``"logmel"``) features of every clip in ``frame[path_col]``, cached.

    - Each clip is read with :func:`load_audio` (any rate, any channel count); ``trim_db`` cuts leading and
      trailing parts quieter than ``trim_db`` below the peak (:func:`trim_silence`); ``noise_snr_db`` then adds
      white noise at that SNR (or at an SNR drawn per clip from a ``(low, high)`` range), seeded by
      ``noise_seed`` and the clip's position: an offline noise augmentation, aligned with the clean version.
    - Clips that raise :class:`AudioError` (corrupt, silent, too short) are left out; a
      :class:`RejectedClipsWarning` lists them and the others go on.
    - The result is stored as ``cache_dir()/features/<cache_name>-<hash>.npz`` (atomic write). The hash covers
      the file list (path, size, modification time) and every setting, so a change of either is a cache miss
      and the same call again loads in a moment.
    """
    from tqdm.auto import tqdm

    settings = _feature_settings(
        kind,
        sr=sr,
        n_fft=n_fft,
        win_length=win_length,
        hop_length=hop_length,
        n_mels=n_mels,
        n_mfcc=n_mfcc,
        fmin=fmin,
        fmax=fmax,
        top_db=top_db,
        trim_db=trim_db,
        min_seconds=min_seconds,
        noise_snr_db=list(noise_snr_db) if isinstance(noise_snr_db, (tuple, list)) else noise_snr_db,
        noise_seed=noise_seed if noise_snr_db is not None else None,
    )
    if path_col not in frame:
        raise KeyError(f"the frame has no column {path_col!r} of audio paths; found {list(frame.columns)}")
    paths = [str(p) for p in frame[path_col]]
    if not paths:
        raise ValueError("the frame holds no clips")
    cache_path = clip_cache_path(cache_name or kind, settings, paths)

    if use_cache and cache_path.exists():
        (data, lengths), kept, rejected = read_clip_cache(cache_path, "data", "lengths")
        features = np.split(data, np.cumsum(lengths)[:-1], axis=1) if len(lengths) else []
        result = FeatureSet(features, frame.iloc[kept].reset_index(drop=True), rejected, settings, cache_path, True)
    else:
        features, kept, rejected = [], [], []
        try:  # per-clip matrix products are tiny: BLAS threads only get in each other's way
            from threadpoolctl import threadpool_limits

            single_thread = threadpool_limits(1)
        except ImportError:
            single_thread = contextlib.nullcontext()
        with single_thread:
            for i, path in enumerate(tqdm(paths, desc=f"{kind} features", disable=not progress)):
                try:
                    wave = load_audio(path, sr=sr, min_seconds=min_seconds)
                except AudioError as exc:
                    rejected.append((path, str(exc)))
                    continue
                features.append(_features_of_wave(wave, settings, np.random.default_rng([noise_seed, i])))
                kept.append(i)
        if not features:
            raise AudioError("no clip could be used:\n" + "\n".join(f"  - {reason}" for _, reason in rejected))
        if use_cache:
            write_clip_cache(
                cache_path,
                kept,
                rejected,
                data=np.concatenate(features, axis=1),
                lengths=np.array([f.shape[1] for f in features]),
            )
        result = FeatureSet(
            features,
            frame.iloc[kept].reset_index(drop=True),
            rejected,
            settings,
            cache_path if use_cache else None,
            False,
        )
    warn_rejected(result.rejected, len(paths))
    return result
