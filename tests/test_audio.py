import numpy as np
import pytest
import soundfile as sf

from helpers.audio.features import AudioError, fix_length, load_audio


def _tone(seconds=1.0, sr=16_000, channels=1):
    t = np.arange(int(seconds * sr)) / sr
    wave = 0.3 * np.sin(2 * np.pi * 220 * t).astype("float32")
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


def test_reads_16k_mono_flac(tmp_path):
    path = tmp_path / "a.flac"
    sf.write(path, _tone(), 16_000)
    wave = load_audio(path)
    assert wave.dtype == np.float32 and wave.shape == (16_000,)


def test_stereo_44k_is_downmixed_and_resampled(tmp_path):
    path = tmp_path / "stereo.wav"
    sf.write(path, _tone(1.0, 44_100, channels=2), 44_100)
    wave = load_audio(path)
    assert wave.ndim == 1 and abs(len(wave) - 16_000) <= 1
    assert 0.15 < np.sqrt(np.mean(wave**2)) < 0.25  # a 0.3-amplitude sine keeps its level


def test_truncated_flac_is_rejected(tmp_path):
    path = tmp_path / "cut.flac"
    sf.write(path, _tone(2.0), 16_000)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(AudioError, match="cut.flac"):
        load_audio(path)


def test_not_audio_and_missing_file(tmp_path):
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not a wav file")
    with pytest.raises(AudioError, match="cannot be decoded"):
        load_audio(junk)
    with pytest.raises(AudioError, match="no such audio file"):
        load_audio(tmp_path / "missing.flac")


def test_silence_and_too_short(tmp_path):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16_000, dtype="float32"), 16_000)
    with pytest.raises(AudioError, match="silent"):
        load_audio(silent)
    short = tmp_path / "short.wav"
    sf.write(short, _tone(0.1), 16_000)
    with pytest.raises(AudioError, match="shorter"):
        load_audio(short)
    assert len(load_audio(short, min_seconds=0.05)) == 1600


def test_fix_length_pads_and_crops_centrally():
    wave = np.arange(10, dtype="float32") + 1
    assert fix_length(wave, 4).tolist() == [4, 5, 6, 7]
    padded = fix_length(wave, 14)
    assert len(padded) == 14 and padded[:2].tolist() == [0, 0] and padded[2] == 1
    with pytest.raises(ValueError):
        fix_length(wave, 0)
