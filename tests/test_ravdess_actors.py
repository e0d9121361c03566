"""RAVDESS: the course's folds use actors 01-20 everywhere; a full 24-actor download (Colab) gives the same frame,
says so in one line, and keeps actors 21-24 reachable as an extra speaker-independent check."""

import itertools
import warnings

import pytest

from helpers.core import data


def _full_download(root, n_actors=24):
    """A Zenodo-style RAVDESS folder (Actor_XX/03-01-EM-IN-ST-RE-AC.wav), 60 speech clips per actor (empty files:
    loading reads only the names)."""
    for actor in range(1, n_actors + 1):
        folder = root / f"Actor_{actor:02d}"
        folder.mkdir(parents=True)
        for emotion, intensity, statement, repetition in itertools.product(range(1, 9), (1, 2), (1, 2), (1, 2)):
            if emotion == 1 and intensity == 2:
                continue  # neutral has no strong intensity: 60 clips per actor
            (folder / f"03-01-{emotion:02d}-{intensity:02d}-{statement:02d}-{repetition:02d}-{actor:02d}.wav").touch()
        (folder / f"03-02-01-01-01-01-{actor:02d}.wav").touch()  # song clip: never kept
    return root


def test_24_actor_download_uses_actors_1_to_20(tmp_path, capsys):
    root = _full_download(tmp_path / "ravdess")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 1-20 complete: no count warning
        frame = data.load_ravdess(root)
    assert len(frame) == 1200 and sorted(frame.actor.astype(int).unique()) == list(range(1, 21))
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "actors 21-24 (240 clips) are left out" in out[0]
    extra = data.load_ravdess(root, actors=range(21, 25))
    assert len(extra) == 240 and set(extra.actor.astype(int)) == {21, 22, 23, 24}
    assert not set(extra.path) & set(frame.path)
    assert len(data.load_ravdess(root, actors=None)) == 1440


def test_20_actor_folder_prints_nothing(tmp_path, capsys):
    frame = data.load_ravdess(_full_download(tmp_path / "ravdess", n_actors=20))
    assert len(frame) == 1200 and capsys.readouterr().out == ""


def test_no_clip_of_the_asked_actors_is_one_clear_error(tmp_path):
    root = _full_download(tmp_path / "ravdess", n_actors=2)
    with pytest.raises(ValueError, match=r"no clip of actors \[30\]"):
        data.load_ravdess(root, actors=[30])
